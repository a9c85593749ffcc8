//! Why an observe call was refused ([`Refused`], also the `reason` label of
//! `p28_refused_total`), and the validation of what callers pass. It runs on
//! the caller's thread, so it only scans the two short strings once.

use std::fmt;
use std::time::Duration;

use crate::config::MAX_WAIT_LIMIT;
use crate::text::is_hidden;

/// Longest accepted plan id, in bytes.
pub(crate) const MAX_PLAN_ID_LEN: usize = 128;
/// Longest accepted symbol, in bytes.
pub(crate) const MAX_SYMBOL_LEN: usize = 32;

/// Why an observe call was refused. Every refusal is counted in
/// [`Stats`](crate::Stats) and in `p28_refused_total{reason}`, and warned
/// about (throttled) by a worker, never on the caller's thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// Observing is switched off (`P28_LATE_OBS_ENABLED=false`).
    Disabled,
    /// The observer runs disabled because its configuration (or the Redis
    /// URL) was invalid at start; the error was logged then.
    ConfigError,
    /// The arguments were invalid; nothing was queued.
    Invalid(InvalidInput),
    /// The queue was full: the workers are behind. Dropped, not blocked on.
    QueueFull,
    /// The observer was shut down.
    ShutDown,
}

impl Refused {
    /// Number of reasons, for counters indexed by [`Refused::index`].
    pub(crate) const COUNT: usize = 5;
    /// One of each reason, in label order.
    pub(crate) const ALL: [Refused; Self::COUNT] = [
        Refused::Disabled,
        Refused::ConfigError,
        Refused::Invalid(InvalidInput::EmptyPlanId),
        Refused::QueueFull,
        Refused::ShutDown,
    ];

    /// The `reason` label of `p28_refused_total`: `disabled`,
    /// `config_error`, `invalid`, `queue_full` or `shut_down`.
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::Disabled => "disabled",
            Refused::ConfigError => "config_error",
            Refused::Invalid(_) => "invalid",
            Refused::QueueFull => "queue_full",
            Refused::ShutDown => "shut_down",
        }
    }

    pub(crate) fn index(&self) -> usize {
        match self {
            Refused::Disabled => 0,
            Refused::ConfigError => 1,
            Refused::Invalid(_) => 2,
            Refused::QueueFull => 3,
            Refused::ShutDown => 4,
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Disabled => f.write_str("late observer is disabled"),
            Refused::ConfigError => f.write_str("late observer is disabled by a config error"),
            Refused::Invalid(why) => write!(f, "invalid observation: {why}"),
            Refused::QueueFull => f.write_str("late observer queue is full"),
            Refused::ShutDown => f.write_str("late observer is shut down"),
        }
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refused::Invalid(why) => Some(why),
            _ => None,
        }
    }
}

/// Why an observation was refused as invalid. Nothing invalid is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidInput {
    /// The plan id is empty.
    EmptyPlanId,
    /// The symbol is empty.
    EmptySymbol,
    /// The plan id is longer than 128 bytes.
    PlanIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The symbol is longer than 32 bytes.
    SymbolTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The named field holds a control character (a newline would break
    /// the runbook's `redis-cli | awk` reading of the stream) or a format
    /// character (U+202E, U+200B, U+FEFF: the id would read differently in
    /// the stream and the logs than it is).
    ControlCharacter {
        /// `"plan_id"` or `"symbol"`.
        field: &'static str,
    },
    /// The wait is longer than an hour.
    WaitTooLong {
        /// The wait asked for, in milliseconds.
        ms: u128,
    },
    /// An observation point name outside the accepted alphabet.
    BadObsPoint,
}

impl InvalidInput {
    /// Number of kinds of invalid input, for counters indexed by
    /// [`InvalidInput::index`].
    pub(crate) const KINDS: usize = 8;

    /// What each kind says, in [`InvalidInput::index`] order (no value).
    pub(crate) const EACH_KIND: [&'static str; Self::KINDS] = [
        "plan_id is empty",
        "symbol is empty",
        "plan_id too long",
        "symbol too long",
        "plan_id holds a control or format character",
        "symbol holds a control or format character",
        "wait too long",
        "obs_point not accepted",
    ];

    pub(crate) fn index(&self) -> usize {
        match self {
            Self::EmptyPlanId => 0,
            Self::EmptySymbol => 1,
            Self::PlanIdTooLong { .. } => 2,
            Self::SymbolTooLong { .. } => 3,
            Self::ControlCharacter { field: "plan_id" } => 4,
            Self::ControlCharacter { .. } => 5,
            Self::WaitTooLong { .. } => 6,
            Self::BadObsPoint => 7,
        }
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyPlanId => f.write_str("plan_id is empty"),
            Self::EmptySymbol => f.write_str("symbol is empty"),
            Self::PlanIdTooLong { len } => {
                write!(
                    f,
                    "plan_id is {len} bytes long, more than {MAX_PLAN_ID_LEN}"
                )
            }
            Self::SymbolTooLong { len } => {
                write!(f, "symbol is {len} bytes long, more than {MAX_SYMBOL_LEN}")
            }
            Self::ControlCharacter { field } => {
                write!(f, "{field} holds a control or format character")
            }
            Self::WaitTooLong { ms } => write!(
                f,
                "wait of {ms} ms is longer than {} ms",
                MAX_WAIT_LIMIT.as_millis()
            ),
            Self::BadObsPoint => {
                f.write_str("obs_point must be 1 to 64 ASCII letters, digits, '_', '.' or '-'")
            }
        }
    }
}

impl std::error::Error for InvalidInput {}

/// Checks one observation's arguments.
pub(crate) fn validate(plan_id: &str, symbol: &str, wait: Duration) -> Result<(), InvalidInput> {
    if plan_id.is_empty() {
        return Err(InvalidInput::EmptyPlanId);
    }
    // Every plan has a symbol: an empty one is the caller's bug (a field
    // left unset), refused so that it shows in the metrics.
    if symbol.is_empty() {
        return Err(InvalidInput::EmptySymbol);
    }
    if plan_id.len() > MAX_PLAN_ID_LEN {
        return Err(InvalidInput::PlanIdTooLong { len: plan_id.len() });
    }
    if symbol.len() > MAX_SYMBOL_LEN {
        return Err(InvalidInput::SymbolTooLong { len: symbol.len() });
    }
    if has_hidden(plan_id) {
        return Err(InvalidInput::ControlCharacter { field: "plan_id" });
    }
    if has_hidden(symbol) {
        return Err(InvalidInput::ControlCharacter { field: "symbol" });
    }
    if wait > MAX_WAIT_LIMIT {
        return Err(InvalidInput::WaitTooLong {
            ms: wait.as_millis(),
        });
    }
    Ok(())
}

/// Whether `s` holds a control or format character (Unicode Cc or Cf,
/// [`is_hidden`]). It runs on the caller's thread. Plan ids and symbols are
/// printable ASCII: that is checked first, eight bytes at a time; only
/// other text is read character by character.
fn has_hidden(s: &str) -> bool {
    !is_printable_ascii(s.as_bytes()) && s.chars().any(is_hidden)
}

/// Whether every byte is in 0x20..=0x7e. Per 64-bit word: a byte below 0x20
/// borrows into its top bit when 0x20 is subtracted, a byte above 0x7e
/// carries into it when 0x01 is added, and a byte with its top bit set has
/// it already ("Bit Twiddling Hacks", hasless and hasmore).
fn is_printable_ascii(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        let below = w.wrapping_sub(ONES * 0x20) & !w;
        let above = w.wrapping_add(ONES) | w; // 0x7f + 1 reaches the top bit
        if (below | above) & HIGH != 0 {
            return false;
        }
    }
    words.remainder().iter().all(|&b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests;
