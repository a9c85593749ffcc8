//! Parsing of raw environment values. Strict on purpose: a trading system
//! should refuse `P28_LATE_OBS_MAX_WAIT_MS=2s` at startup rather than run
//! with a default the operator did not ask for.

use std::ffi::OsString;
use std::time::Duration;

use super::{ConfigError, ConfigErrorKind};

/// Returns the trimmed UTF-8 text of a raw value, refusing empty and
/// non-UTF-8 values (the contract lists the empty string as invalid).
pub(crate) fn text(variable: &'static str, raw: OsString) -> Result<String, ConfigError> {
    let raw = raw.into_string().map_err(|bad| {
        ConfigError::new(variable, bad.to_string_lossy(), ConfigErrorKind::NotUnicode)
    })?;
    if raw.trim().is_empty() {
        return Err(ConfigError::new(variable, raw, ConfigErrorKind::Empty));
    }
    Ok(raw)
}

/// `true/false`, `1/0`, `yes/no`, `on/off`, any case, blanks around ignored.
pub(crate) fn flag(variable: &'static str, raw: OsString) -> Result<bool, ConfigError> {
    let raw = text(variable, raw)?;
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(variable, raw, ConfigErrorKind::NotAFlag)),
    }
}

/// A whole, non-negative number of milliseconds such as `2000`.
pub(crate) fn millis(variable: &'static str, raw: OsString) -> Result<Duration, ConfigError> {
    let raw = text(variable, raw)?;
    match raw.trim().parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => Err(ConfigError::new(
            variable,
            raw,
            ConfigErrorKind::NotMilliseconds,
        )),
    }
}

/// A whole, non-negative count such as `16384`.
pub(crate) fn count(variable: &'static str, raw: OsString) -> Result<u64, ConfigError> {
    let raw = text(variable, raw)?;
    raw.trim()
        .parse::<u64>()
        .map_err(|_| ConfigError::new(variable, raw, ConfigErrorKind::NotACount))
}

/// `poll` or `push`, any case, blanks around ignored.
pub(crate) fn detect(variable: &'static str, raw: OsString) -> Result<super::Detect, ConfigError> {
    let raw = text(variable, raw)?;
    match raw.trim().to_ascii_lowercase().as_str() {
        "poll" => Ok(super::Detect::Poll),
        "push" => Ok(super::Detect::Push),
        _ => Err(ConfigError::new(
            variable,
            raw,
            ConfigErrorKind::NotADetectMode,
        )),
    }
}

/// A count that fits a `usize` (saturating: range checks come later).
pub(crate) fn size(variable: &'static str, raw: OsString) -> Result<usize, ConfigError> {
    count(variable, raw).map(|n| usize::try_from(n).unwrap_or(usize::MAX))
}

/// A Redis URL, trimmed, not empty. A value that is refused is shown
/// redacted in the error: it may hold a password.
pub(crate) fn secret_url(variable: &'static str, raw: OsString) -> Result<String, ConfigError> {
    let shown = crate::store::redis::redact(&raw.to_string_lossy());
    text(variable, raw)
        .map(|t| t.trim().to_owned())
        .map_err(|e| ConfigError::new(variable, shown, e.kind().clone()))
}

#[cfg(test)]
mod tests;
