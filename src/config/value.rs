//! [`Value`]: how each type of setting is read from the environment,
//! shown as an env file writes it, got and set. One impl per type, so that
//! a setting's row in the table says only what is its own.

use std::ffi::OsString;
use std::time::Duration;

use super::env;
use super::{Config, ConfigError, Detect, RedisUrl};

pub(crate) trait Value: Clone {
    /// What the getter returns.
    type Get<'a>
    where
        Self: 'a;
    /// What the builder's setter takes (through `Into`).
    type Set;

    /// Parses the raw environment value of variable `name`.
    fn parse(name: &'static str, raw: OsString) -> Result<Self, ConfigError>;
    /// The value as an env file writes it (empty: unset).
    fn show(&self, config: &Config) -> String;
    fn get<'a>(&'a self, config: &Config) -> Self::Get<'a>;
    fn set(value: Self::Set) -> Self;
}

/// A type that is got and set as itself, shown with `show`.
macro_rules! plain {
    ($($ty:ty => $parse:path, $show:expr;)*) => {$(
        impl Value for $ty {
            type Get<'a> = $ty;
            type Set = $ty;
            fn parse(name: &'static str, raw: OsString) -> Result<Self, ConfigError> {
                $parse(name, raw)
            }
            fn show(&self, _: &Config) -> String {
                ($show)(self)
            }
            fn get(&self, _: &Config) -> $ty {
                *self
            }
            fn set(value: $ty) -> Self {
                value
            }
        }
    )*};
}

plain! {
    bool => env::flag, ToString::to_string;
    Duration => env::millis, |d: &Duration| super::ms(*d).to_string();
    usize => env::size, ToString::to_string;
    u64 => env::count, ToString::to_string;
    Detect => env::detect, |d: &Detect| d.as_str().to_owned();
}

impl Value for String {
    type Get<'a> = &'a str;
    type Set = String;
    fn parse(name: &'static str, raw: OsString) -> Result<Self, ConfigError> {
        env::text(name, raw).map(|t| t.trim().to_owned())
    }
    fn show(&self, _: &Config) -> String {
        self.clone()
    }
    fn get(&self, _: &Config) -> &str {
        self
    }
    fn set(value: String) -> Self {
        value
    }
}

impl Value for Option<String> {
    type Get<'a> = Option<&'a str>;
    type Set = String;
    fn parse(name: &'static str, raw: OsString) -> Result<Self, ConfigError> {
        String::parse(name, raw).map(Some)
    }
    fn show(&self, _: &Config) -> String {
        self.clone().unwrap_or_default()
    }
    fn get(&self, _: &Config) -> Option<&str> {
        self.as_deref()
    }
    fn set(value: String) -> Self {
        Some(value)
    }
}

impl Value for Option<usize> {
    type Get<'a> = Option<usize>;
    type Set = usize;
    fn parse(name: &'static str, raw: OsString) -> Result<Self, ConfigError> {
        env::size(name, raw).map(Some)
    }
    fn show(&self, _: &Config) -> String {
        self.map_or_else(String::new, |n| n.to_string())
    }
    fn get(&self, _: &Config) -> Option<usize> {
        *self
    }
    fn set(value: usize) -> Self {
        Some(value)
    }
}

impl Value for Option<RedisUrl> {
    type Get<'a> = Option<&'a str>;
    type Set = String;
    fn parse(name: &'static str, raw: OsString) -> Result<Self, ConfigError> {
        env::secret_url(name, raw).map(|url| Some(RedisUrl(url)))
    }
    /// Everything before the URL's last `@` hidden.
    fn show(&self, _: &Config) -> String {
        self.as_ref().map_or_else(String::new, RedisUrl::redacted)
    }
    fn get(&self, _: &Config) -> Option<&str> {
        self.as_ref().map(|u| u.0.as_str())
    }
    fn set(value: String) -> Self {
        Some(RedisUrl(value))
    }
}

/// The shutdown timeout: set, or the max wait plus a margin (so that a
/// default stop drains every watched plan).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ShutdownTimeout(pub(crate) Option<Duration>);

impl Value for ShutdownTimeout {
    type Get<'a> = Duration;
    type Set = Duration;
    fn parse(name: &'static str, raw: OsString) -> Result<Self, ConfigError> {
        env::millis(name, raw).map(|d| ShutdownTimeout(Some(d)))
    }
    fn show(&self, config: &Config) -> String {
        super::ms(self.get(config)).to_string()
    }
    fn get(&self, config: &Config) -> Duration {
        self.0
            .unwrap_or(config.max_wait.saturating_add(super::SHUTDOWN_MARGIN))
    }
    fn set(value: Duration) -> Self {
        ShutdownTimeout(Some(value))
    }
}
