//! The bounds a setting's row names: each is a function of the setting's
//! name and value that says what is wrong, naming both.

use std::time::Duration;

use super::value::ShutdownTimeout;
use super::{ConfigError, ConfigErrorKind, ms};
use crate::text::is_hidden;

/// No bounds beyond what parses.
pub(crate) fn any<T>(_: &'static str, _: &T) -> Result<(), ConfigError> {
    Ok(())
}

/// A duration of `min` to `max` whole milliseconds.
pub(crate) fn millis_in(
    min: u64,
    max: u64,
) -> impl Fn(&'static str, &Duration) -> Result<(), ConfigError> {
    move |name, d| in_range(name, ms(*d), min, max)
}

/// A count of `min` to `max`.
pub(crate) fn count_in<T: Copy + TryInto<u64>>(
    min: u64,
    max: u64,
) -> impl Fn(&'static str, &T) -> Result<(), ConfigError> {
    move |name, n| in_range(name, (*n).try_into().unwrap_or(u64::MAX), min, max)
}

/// A shutdown timeout, if set, of `min` to `max` milliseconds.
pub(crate) fn some_millis_in(
    min: u64,
    max: u64,
) -> impl Fn(&'static str, &ShutdownTimeout) -> Result<(), ConfigError> {
    move |name, t| t.0.map_or(Ok(()), |d| in_range(name, ms(d), min, max))
}

pub(crate) fn in_range(name: &'static str, n: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    let kind = if n < min {
        ConfigErrorKind::TooSmall { min }
    } else if n > max {
        ConfigErrorKind::TooLarge { max }
    } else {
        return Ok(());
    };
    Err(ConfigError::new(name, n.to_string(), kind))
}

/// A key prefix, stream or observer name: not empty, no control or format
/// character (and, with `no_braces`, no braces).
pub(crate) fn name(setting: &'static str, value: &str, no_braces: bool) -> Result<(), ConfigError> {
    let braces = no_braces && value.contains(['{', '}']);
    if value.is_empty() || braces || value.chars().any(is_hidden) {
        return Err(ConfigError::new(setting, value, ConfigErrorKind::BadName));
    }
    Ok(())
}
