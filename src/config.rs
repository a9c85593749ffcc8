//! [`Config`]: what the observer does, read from `P28_LATE_OBS_*` variables
//! and overridable in code.
//!
//! `settings.rs` holds the one table of settings (a row each: name,
//! default, bounds, parser, doc line); `Config`'s fields, getters, setters
//! and docs are generated from it. Values are parsed strictly: anything
//! that does not parse, or is out of range, is a [`ConfigError`] naming the
//! variable and the value, and so is an unknown variable under the prefix.

pub(crate) mod checks;
mod env;
mod error;
mod settings;
mod value;

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use crate::obs_point::ObsPoint;

pub use error::ConfigError;
pub(crate) use error::ConfigErrorKind;
pub use settings::Config;
pub(crate) use settings::*;

/// The prefix of every variable the observer reads.
pub(crate) const PREFIX: &str = "P28_LATE_OBS_";
/// The longest accepted wait: one hour.
pub(crate) const MAX_WAIT_LIMIT: Duration = Duration::from_secs(3600);
const MAX_WORKERS: usize = 64;
/// The longest dedupe key lifetime: a year. Redis refuses a `PX` whose
/// expiry overflows its millisecond clock, which would fail every write.
const MAX_DEDUPE_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// The longest stream `MAXLEN`: Redis takes at most `i64::MAX`; a billion
/// events is far past any retention this stream needs.
const MAX_STREAM_LEN: u64 = 1_000_000_000;
/// Worker stack bounds: below 256 KiB a debug build's redis-rs parse can
/// overflow the stack (an abort of the whole process, not a panic); above
/// 1 GiB the system may not give it.
const MIN_STACK: u64 = 256 * 1024;
const MAX_STACK: u64 = 1 << 30;
const MAX_CAPACITY: usize = 1 << 20;
/// What the default shutdown timeout adds to the max wait: the deadline
/// look and the last write.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(500);

/// How a worker learns that a watched plan's heat key was written.
///
/// ```
/// use heat_observer::{Config, Detect};
/// let config = Config::builder().detect(Detect::Push).build()?;
/// assert_eq!(config.detect(), Detect::Push);
/// assert_eq!(Detect::Push.as_str(), "push");
/// # Ok::<(), heat_observer::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Detect {
    /// Look at every watched key each poll (one batched call per worker).
    #[default]
    Poll,
    /// Redis tells the worker when a watched key is written (client
    /// tracking); a watched plan is looked at when taken and at its
    /// deadline, and again whenever a message may have been lost. Where
    /// the store cannot push, the worker polls.
    Push,
}

impl Detect {
    /// `poll` or `push`: the value of `P28_LATE_OBS_DETECT`, the event's
    /// `decided_by` field and the metric's `mode` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Detect::Poll => "poll",
            Detect::Push => "push",
        }
    }
}

/// A Redis URL whose `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl(pub(crate) String);

impl RedisUrl {
    /// The URL as it may be shown: everything before its last `@` (user,
    /// password) as `***`.
    pub(crate) fn redacted(&self) -> String {
        // A cluster's nodes, comma-separated: each shown on its own.
        self.0
            .split(',')
            .map(crate::store::redis::redact)
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl Config {
    /// A builder starting from the defaults, ignoring the environment.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::default(),
        }
    }

    /// The defaults with observing off: what to start with when the
    /// configuration cannot be read and Apply must carry on without the
    /// observer (it then logs `P2.8A.3 Late Observer: False`).
    pub fn disabled() -> Config {
        Config {
            enabled: false,
            ..Config::default()
        }
    }

    /// Reads every `P28_LATE_OBS_*` variable over the defaults and validates.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable whose value does not parse
    /// or is out of range, for example `P28_LATE_OBS_POLL_MS="2s"`, an empty
    /// value, or a poll longer than the wait; or a variable under the
    /// `P28_LATE_OBS_` prefix (in any case) that is none of the known ones,
    /// named with the nearest known name (a typo in a rollback must not
    /// leave the observer on unnoticed).
    pub fn from_env() -> Result<Config, ConfigError> {
        ConfigBuilder::from_env()?.build()
    }

    /// Like [`Config::from_env`], reading the variables from `vars` (`(name,
    /// value)` pairs, such as an env file's) instead of the process
    /// environment; unknown names under the prefix are refused the same way.
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_vars<K: AsRef<str>, V: Into<OsString>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Config, ConfigError> {
        ConfigBuilder::from_vars(vars)?.build()
    }

    /// The line logged at start, which the runbook greps for.
    ///
    /// ```
    /// use heat_observer::Config;
    /// assert_eq!(
    ///     Config::default().startup_line(),
    ///     "P2.8A.3 Late Observer: True (wait=2000ms, poll=100ms)"
    /// );
    /// ```
    pub fn startup_line(&self) -> String {
        format!(
            "P2.8A.3 Late Observer: {} (wait={}ms, poll={}ms)",
            if self.enabled { "True" } else { "False" },
            self.max_wait.as_millis(),
            self.poll.as_millis()
        )
    }

    /// The startup line with `note` after the wait and poll, such as where
    /// `enabled` came from.
    pub(crate) fn startup_line_noting(&self, note: &str) -> String {
        let line = self.startup_line();
        format!("{}; {note})", &line[..line.len() - 1])
    }

    /// A builder starting from this config, to change a setting or two.
    pub fn to_builder(&self) -> ConfigBuilder {
        ConfigBuilder {
            config: self.clone(),
        }
    }

    /// Every `P28_LATE_OBS_*` variable with its effective value, as it
    /// would be written in an env file (the Redis URL's password hidden; an
    /// unset optional value is empty).
    ///
    /// ```
    /// use heat_observer::Config;
    /// let settings = Config::default().variables();
    /// assert_eq!(settings[0], ("P28_LATE_OBS_ENABLED", "true".to_string()));
    /// assert!(settings.iter().any(|(name, _)| *name == "P28_LATE_OBS_POLL_MS"));
    /// ```
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        SETTINGS
            .iter()
            .filter(|s| s.env)
            .map(|s| (s.name, (s.show)(self)))
            .collect()
    }

    /// A warning about settings that are valid but work against each other,
    /// which [`LateObserver::start`](crate::LateObserver::start) logs: a
    /// Redis timeout at or above the poll lets one stalled call hold a worker
    /// past its next look.
    pub fn advice(&self) -> Option<String> {
        (self.redis_timeout >= self.poll).then(|| {
            format!(
                "{ENV_REDIS_TIMEOUT_MS}={} is not below {ENV_POLL_MS}={}: a stalled Redis \
                 holds a worker past its next look",
                ms(self.redis_timeout),
                ms(self.poll)
            )
        })
    }

    /// The key HeatBridge writes for `plan_id`: the heat key prefix followed
    /// by the plan id.
    pub fn heat_key(&self, plan_id: &str) -> String {
        format!("{}{}", self.heat_key_prefix, plan_id)
    }

    /// The dedupe key of `(plan_id, point)`:
    /// `{<stream>}:dedupe:<obs_point>:<plan_id>`. The braces make the stream
    /// name a Redis Cluster hash tag, so the key lives in the stream's slot
    /// and claim and append can run in one script.
    ///
    /// ```
    /// use heat_observer::{Config, ObsPoint};
    /// assert_eq!(
    ///     Config::default().dedupe_key(ObsPoint::PUBLISH_PLAN_POST, "p1"),
    ///     "{quantum:stream:apply.heat.observed}:dedupe:publish_plan_post:p1"
    /// );
    /// ```
    pub fn dedupe_key(&self, point: ObsPoint, plan_id: &str) -> String {
        format!("{{{}}}:dedupe:{}:{}", self.stream, point, plan_id)
    }
}

/// Builds a [`Config`]. Setters override whatever the environment said.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build() is called"]
pub struct ConfigBuilder {
    config: Config,
}

impl ConfigBuilder {
    /// A builder starting from the `P28_LATE_OBS_*` environment over the
    /// defaults; setters called afterwards override the environment.
    ///
    /// # Errors
    /// A [`ConfigError`] for the first variable that does not parse, or
    /// one under the prefix that is unknown. Range checks happen in
    /// [`ConfigBuilder::build`].
    pub fn from_env() -> Result<ConfigBuilder, ConfigError> {
        let vars = std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v)));
        Self::from_vars(vars)
    }

    /// Like [`ConfigBuilder::from_env`], reading `vars`.
    ///
    /// # Errors
    /// As [`ConfigBuilder::from_env`].
    pub fn from_vars<K: AsRef<str>, V: Into<OsString>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<ConfigBuilder, ConfigError> {
        let mut known: Vec<(&'static str, OsString)> = Vec::new();
        for (name, value) in vars {
            let name = name.as_ref();
            if !name.to_ascii_uppercase().starts_with(PREFIX) {
                continue;
            }
            match SETTINGS.iter().find(|s| s.env && s.name == name) {
                Some(setting) => known.push((setting.name, value.into())),
                None => return Err(ConfigError::unknown(name, nearest(name))),
            }
        }
        Self::from_lookup(|name| {
            let at = known.iter().position(|(n, _)| *n == name)?;
            Some(known.swap_remove(at).1)
        })
    }

    /// The known settings `lookup` gives, over the defaults.
    fn from_lookup<V: Into<OsString>>(
        mut lookup: impl FnMut(&str) -> Option<V>,
    ) -> Result<ConfigBuilder, ConfigError> {
        let mut config = Config::default();
        for setting in SETTINGS.iter().filter(|s| s.env) {
            if let Some(raw) = lookup(setting.name) {
                (setting.parse)(&mut config, raw.into())?;
            }
        }
        Ok(ConfigBuilder { config })
    }

    /// Validates every setting and returns the config.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting out of range: a zero poll,
    /// a poll longer than the wait, zero workers, a zero queue capacity (a
    /// rendezvous channel would refuse nearly everything), and the like.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = self.config;
        for setting in SETTINGS {
            (setting.check)(&c)?;
        }
        if c.poll > c.max_wait {
            return Err(ConfigError::new(
                ENV_POLL_MS,
                ms(c.poll).to_string(),
                ConfigErrorKind::PollExceedsWait {
                    max_wait_ms: ms(c.max_wait),
                },
            ));
        }
        Ok(c)
    }
}

/// Whether an invalid `name` turns off only the late look: a setting only
/// it uses, or an unknown name under the prefix (a typo, most likely of
/// one of those).
pub(crate) fn late_only(name: &str) -> bool {
    match SETTINGS.iter().find(|s| s.env && s.name == name) {
        Some(setting) => setting.late,
        None => name.to_ascii_uppercase().starts_with(PREFIX),
    }
}

/// Whole milliseconds of `d`, saturating.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The known variable nearest to `name` (edit distance, any case).
fn nearest(name: &str) -> &'static str {
    let name = name.to_ascii_uppercase();
    SETTINGS
        .iter()
        .filter(|s| s.env)
        .min_by_key(|s| distance(s.name, &name))
        .map_or("", |s| s.name)
}

/// Edit distance, for "did you mean".
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}
