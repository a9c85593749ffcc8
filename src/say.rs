//! Every log line the crate writes, through the service's logger, which
//! the crate does not own: a logger that panics is caught here, so that a
//! log line can neither stop a worker (leaving its observations uncounted)
//! nor panic into the caller of `start` or `shutdown`.

use std::panic::{AssertUnwindSafe, catch_unwind};

use log::Level;

use crate::LOG_TARGET;

/// Writes one line at `level` under the crate's target; see [`line`].
macro_rules! say {
    ($level:expr, $($arg:tt)+) => {
        $crate::say::line($level, format_args!($($arg)+))
    };
}
pub(crate) use say;

/// Writes `args` at `level` under the crate's target; a panic in the
/// logger is caught and the line is lost (the panic hook has printed it).
pub(crate) fn line(level: Level, args: std::fmt::Arguments<'_>) {
    let _ = catch_unwind(AssertUnwindSafe(|| {
        log::log!(target: LOG_TARGET, level, "{args}");
    }));
}

/// Whether lines at `level` are written; `false` if the logger panics.
pub(crate) fn enabled(level: Level) -> bool {
    catch_unwind(|| log::log_enabled!(target: LOG_TARGET, level)).unwrap_or(false)
}
