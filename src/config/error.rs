//! The error a bad setting produces: it names the variable and the value.

use std::borrow::Cow;
use std::fmt;

/// A setting that cannot be used, from the environment or from code.
///
/// The message names the environment variable that carries the setting and
/// the value that was refused, so an operator can fix the env file without
/// reading code:
///
/// ```
/// use heat_observer::Config;
///
/// let err = Config::from_vars([("P28_LATE_OBS_POLL_MS", "2s")]).unwrap_err();
/// assert_eq!(err.variable(), "P28_LATE_OBS_POLL_MS");
/// assert_eq!(err.value(), "2s");
/// assert_eq!(
///     err.to_string(),
///     r#"invalid P28_LATE_OBS_POLL_MS="2s": expected a whole number of milliseconds"#
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    variable: Cow<'static, str>,
    value: String,
    kind: ConfigErrorKind,
}

/// What was wrong with a setting; the message says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigErrorKind {
    /// The value was empty or blank.
    Empty,
    /// The value was not valid UTF-8.
    NotUnicode,
    /// A flag that is none of `true/false`, `1/0`, `yes/no`, `on/off`.
    NotAFlag,
    /// A detection mode that is neither `poll` nor `push`.
    NotADetectMode,
    /// A number of milliseconds that is not a non-negative whole number.
    NotMilliseconds,
    /// A count that is not a non-negative whole number.
    NotACount,
    /// Below the smallest value the setting accepts.
    TooSmall {
        /// The smallest accepted value.
        min: u64,
    },
    /// Above the largest value the setting accepts.
    TooLarge {
        /// The largest accepted value.
        max: u64,
    },
    /// The poll interval is longer than the wait it divides.
    PollExceedsWait {
        /// The configured maximum wait, in milliseconds.
        max_wait_ms: u64,
    },
    /// A key prefix or stream name that is empty or holds a control
    /// character, or a stream name with braces.
    BadName,
    /// A variable under the `P28_LATE_OBS_` prefix (in any case) that the
    /// observer does not know: a typo, which would otherwise be ignored.
    UnknownVariable {
        /// The known variable nearest to it.
        nearest: &'static str,
    },
    /// A Redis URL (or TLS material) that cannot be used: why, said by
    /// position, never quoting the URL (it may hold a password).
    BadUrl(String),
}

impl ConfigError {
    pub(crate) fn new(
        variable: &'static str,
        value: impl Into<String>,
        kind: ConfigErrorKind,
    ) -> Self {
        Self {
            variable: Cow::Borrowed(variable),
            value: value.into(),
            kind,
        }
    }

    /// An unknown variable under the prefix; its value is not kept (it
    /// could be a misspelt URL with a password).
    pub(crate) fn unknown(variable: &str, nearest: &'static str) -> Self {
        Self {
            variable: Cow::Owned(variable.to_owned()),
            value: String::new(),
            kind: ConfigErrorKind::UnknownVariable { nearest },
        }
    }

    /// A Redis URL given to a connector that cannot be used, named `Redis
    /// URL`; `why` says what is wrong and where without quoting it.
    pub(crate) fn url(why: impl Into<String>) -> Self {
        Self {
            variable: Cow::Borrowed("Redis URL"),
            value: String::new(),
            kind: ConfigErrorKind::BadUrl(why.into()),
        }
    }

    /// The same error, naming where the value came from (a URL from
    /// `P28_LATE_OBS_REDIS_URL` rather than from code).
    pub(crate) fn naming(mut self, variable: &'static str) -> Self {
        self.variable = Cow::Borrowed(variable);
        self
    }

    /// The short form the startup line gives: `invalid NAME="value"`, or
    /// `unknown NAME`.
    pub(crate) fn summary(&self) -> String {
        match self.kind {
            ConfigErrorKind::UnknownVariable { .. } => format!("unknown {}", self.variable),
            ConfigErrorKind::BadUrl(_) => format!("invalid {}", self.variable),
            _ => format!("invalid {}={:?}", self.variable, self.value),
        }
    }

    /// The environment variable that carries the refused setting, for example
    /// `P28_LATE_OBS_POLL_MS`. Settings that exist only in code are named by
    /// their builder method, for example `stream`; a URL given to a
    /// connector is `Redis URL`.
    pub fn variable(&self) -> &str {
        &self.variable
    }

    /// The refused value, as it was written (milliseconds for durations set in
    /// code; empty for an unknown variable, whose value is not read, and
    /// for a URL given to a connector, which may hold a password).
    pub fn value(&self) -> &str {
        &self.value
    }

    pub(crate) fn kind(&self) -> &ConfigErrorKind {
        &self.kind
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let ConfigErrorKind::UnknownVariable { nearest } = &self.kind {
            return write!(
                f,
                "unknown variable {} (did you mean {nearest}?): it would be ignored; fix its \
                 name or remove it",
                self.variable
            );
        }
        if let ConfigErrorKind::BadUrl(why) = &self.kind {
            return write!(f, "invalid {}: {why}", self.variable);
        }
        write!(f, "invalid {}={:?}: ", self.variable, self.value)?;
        match &self.kind {
            ConfigErrorKind::Empty => f.write_str("the value is empty"),
            ConfigErrorKind::NotUnicode => f.write_str("the value is not valid UTF-8"),
            ConfigErrorKind::NotAFlag => {
                f.write_str("expected one of true/false, 1/0, yes/no, on/off")
            }
            ConfigErrorKind::NotADetectMode => f.write_str("expected poll or push"),
            ConfigErrorKind::NotMilliseconds => {
                f.write_str("expected a whole number of milliseconds")
            }
            ConfigErrorKind::NotACount => f.write_str("expected a whole number"),
            ConfigErrorKind::TooSmall { min } => write!(f, "must be at least {min}"),
            ConfigErrorKind::TooLarge { max } => write!(f, "must be at most {max}"),
            ConfigErrorKind::PollExceedsWait { max_wait_ms } => write!(
                f,
                "the poll interval must not exceed {}={max_wait_ms}",
                super::ENV_MAX_WAIT_MS
            ),
            ConfigErrorKind::BadName => f.write_str(
                "must be non-empty, without control or format characters (or braces, in a stream name)",
            ),
            ConfigErrorKind::UnknownVariable { .. } | ConfigErrorKind::BadUrl(_) => Ok(()),
        }
    }
}

impl std::error::Error for ConfigError {}
