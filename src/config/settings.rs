//! The one table of settings. Each row is one setting: its field and type,
//! its default, the environment variable that carries it (or the builder
//! method, for settings in code only), the default as the docs show it, its
//! bounds, and its doc line. From the table come the `Config` fields and
//! their defaults, the getters, the builder's setters, the list
//! [`SETTINGS`] that `from_env`, `variables()` and `check-config` read, and
//! the table of variables in `Config`'s docs; a test holds the README's
//! table against it (OpenTelemetry's `OTEL_BSP_*` name and `_DEFAULT` pairs
//! are the model). A new setting is one row here and the code that uses it.

use std::ffi::OsString;
use std::time::Duration;

use super::checks::{any, count_in, millis_in, name, some_millis_in};
use super::value::{ShutdownTimeout, Value};
use super::{
    ConfigBuilder, ConfigError, Detect, MAX_CAPACITY, MAX_DEDUPE_TTL, MAX_STACK, MAX_STREAM_LEN,
    MAX_WAIT_LIMIT, MAX_WORKERS, MIN_STACK, RedisUrl, ms,
};

/// One setting as the tools see it.
pub(crate) struct Setting {
    /// The environment variable, or the builder method for code-only ones.
    pub(crate) name: &'static str,
    /// Whether `from_env` reads it.
    pub(crate) env: bool,
    /// Whether only the late look uses it: an invalid value turns the late
    /// look off and keeps the early one (see `LateObserver::from_env`).
    pub(crate) late: bool,
    /// The default, as the docs show it (read by the README's test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) default: &'static str,
    /// What it means, with its bounds (read by the README's test).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) doc: &'static str,
    pub(crate) parse: fn(&mut Config, OsString) -> Result<(), ConfigError>,
    pub(crate) show: fn(&Config) -> String,
    pub(crate) check: fn(&Config) -> Result<(), ConfigError>,
}

/// The "used by" column: `late` (an invalid value keeps the early look) or
/// `both`.
macro_rules! used_by {
    (true) => {
        "late"
    };
    (false) => {
        "both"
    };
}

macro_rules! settings {
    ($(
        $field:ident: $ty:ty = $default:expr;
            $key:ident = $name:literal, env: $env:literal, late: $late:tt, get: $get:ty, set: $set:ty,
            default: $shown:literal, check: $check:expr,
            doc: $doc:literal;
    )*) => {
        $(#[allow(dead_code)] pub(crate) const $key: &str = $name;)*

        /// The observer's settings. Build one with [`Config::from_env`] or
        /// [`Config::builder`]; both validate, so a `Config` is always
        /// usable.
        ///
        /// ```
        /// use std::time::Duration;
        /// use heat_observer::Config;
        ///
        /// # fn main() -> Result<(), heat_observer::ConfigError> {
        /// let config = Config::builder()
        ///     .max_wait(Duration::from_millis(3000))
        ///     .workers(4)
        ///     .build()?;
        /// assert_eq!(config.poll(), Duration::from_millis(100));
        /// # Ok(())
        /// # }
        /// ```
        ///
        /// Every setting, with the variable that carries it (settings in
        /// code only are named by their builder method):
        ///
        /// | setting | default | used by | meaning |
        /// | --- | --- | --- | --- |
        $(#[doc = concat!("| `", $name, "` | `", $shown, "` | ", used_by!($late), " | ", $doc, " |")])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct Config {
            $(pub(crate) $field: $ty,)*
        }

        impl Default for Config {
            /// The defaults of every setting; the environment is not read.
            fn default() -> Self {
                Self { $($field: $default,)* }
            }
        }

        impl Config {
            $(
                #[doc = concat!("The ", $doc, " (`", $name, "`, default `", $shown, "`).")]
                pub fn $field(&self) -> $get {
                    Value::get(&self.$field, self)
                }
            )*
        }

        impl ConfigBuilder {
            $(
                #[doc = concat!("Sets the ", $doc, " (`", $name, "`, default `", $shown, "`).")]
                pub fn $field(mut self, value: $set) -> Self {
                    self.config.$field = <$ty as Value>::set(value.into());
                    self
                }
            )*
        }

        /// Every setting, in the order of the docs.
        pub(crate) const SETTINGS: &[Setting] = &[$(
            Setting {
                name: $name,
                env: $env,
                late: $late,
                default: $shown,
                doc: $doc,
                parse: |c, raw| {
                    c.$field = <$ty as Value>::parse($name, raw)?;
                    Ok(())
                },
                show: |c| Value::show(&c.$field, c),
                check: |c| ($check)($name, &c.$field),
            },
        )*];
    };
}

settings! {
    enabled: bool = true;
        ENV_ENABLED = "P28_LATE_OBS_ENABLED", env: true, late: true, get: bool, set: bool, default: "true",
        check: any,
        doc: "feature flag of the late observer: `true/false`, `1/0`, `yes/no`, `on/off`; \
              off (the runbook's rollback), `observe_late` is a counted no-op and the early \
              look (`observe_now`) still runs";
    max_wait: Duration = Duration::from_millis(2000);
        ENV_MAX_WAIT_MS = "P28_LATE_OBS_MAX_WAIT_MS", env: true, late: true, get: Duration, set: Duration, default: "2000",
        check: millis_in(1, ms(MAX_WAIT_LIMIT)),
        doc: "time a plan is watched after `observe_late`, 1 ms to 1 h";
    poll: Duration = Duration::from_millis(100);
        ENV_POLL_MS = "P28_LATE_OBS_POLL_MS", env: true, late: true, get: Duration, set: Duration, default: "100",
        check: millis_in(1, u64::MAX),
        doc: "time between two looks at a plan's key, 1 ms to the max wait";
    workers: usize = 2;
        ENV_WORKERS = "P28_LATE_OBS_WORKERS", env: true, late: false, get: usize, set: usize, default: "2",
        check: count_in(1, MAX_WORKERS as u64),
        doc: "number of worker threads, 1 to 64";
    // The channel allocates every slot up front (128 bytes each, 2 MiB); a
    // burst of 10,000 plans fits before a worker wakes.
    queue_capacity: usize = 16_384;
        ENV_QUEUE_CAPACITY = "P28_LATE_OBS_QUEUE_CAPACITY", env: true, late: false, get: usize, set: usize,
        default: "16384", check: count_in(1, MAX_CAPACITY as u64),
        doc: "capacity of the queue in front of the workers, 1 to 2^20; a full queue \
              drops (and counts) observations";
    // Two workers watch 65,536 plans at once: 20,000 a second for the
    // default 2 s wait. A held job costs about 200 bytes.
    max_in_flight: usize = 32_768;
        ENV_IN_FLIGHT = "P28_LATE_OBS_IN_FLIGHT", env: true, late: false, get: usize, set: usize, default: "32768",
        check: count_in(1, MAX_CAPACITY as u64),
        doc: "number of jobs one worker watches at once, 1 to 2^20; `1` is the \
              one-job-at-a-time loop";
    dedupe_ttl: Duration = Duration::from_secs(24 * 3600);
        ENV_DEDUPE_TTL_MS = "P28_LATE_OBS_DEDUPE_TTL_MS", env: true, late: false, get: Duration, set: Duration,
        default: "86400000", check: millis_in(1, ms(MAX_DEDUPE_TTL)),
        doc: "lifetime of a dedupe key, 1 ms to 365 days (Redis refuses a `PX` that \
              overflows its clock)";
    stream_maxlen: u64 = 100_000;
        ENV_STREAM_MAXLEN = "P28_LATE_OBS_STREAM_MAXLEN", env: true, late: false, get: u64, set: u64,
        default: "100000", check: count_in(1, MAX_STREAM_LEN),
        doc: "approximate length the stream is trimmed to (`MAXLEN ~`), 1 to 10^9";
    // Half a default tick: a stalled Redis costs a worker at most one
    // timeout per tick.
    redis_timeout: Duration = Duration::from_millis(50);
        ENV_REDIS_TIMEOUT_MS = "P28_LATE_OBS_REDIS_TIMEOUT_MS", env: true, late: false, get: Duration, set: Duration,
        default: "50", check: millis_in(1, 60_000),
        doc: "connect, read and write timeout of each store call, 1 ms to 60 s; one at or \
              above the poll is warned about at start";
    shutdown_timeout: ShutdownTimeout = ShutdownTimeout(None);
        ENV_SHUTDOWN_TIMEOUT_MS = "P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS", env: true, late: false, get: Duration,
        set: Duration, default: "max wait + 500", check: some_millis_in(0, 600_000),
        doc: "bound of `shutdown` on drop, up to 10 minutes (the default drains every \
              watched plan)";
    retry_window: Duration = Duration::from_secs(5);
        ENV_RETRY_MS = "P28_LATE_OBS_RETRY_MS", env: true, late: false, get: Duration, set: Duration, default: "5000",
        check: millis_in(0, 600_000),
        doc: "time a failed event write, or a failed deadline look, is retried before the \
              observation counts as failed, up to 10 minutes";
    redis_url: Option<RedisUrl> = None;
        ENV_REDIS_URL = "P28_LATE_OBS_REDIS_URL", env: true, late: false, get: Option<&str>, set: impl Into<String>,
        default: "unset", check: any,
        doc: "Redis URL `LateObserver::from_env` uses instead of the caller's; never shown \
              with its user or password";
    name: Option<String> = None;
        ENV_NAME = "P28_LATE_OBS_NAME", env: true, late: false, get: Option<&str>, set: impl Into<String>, default: "unset",
        check: |n, v: &Option<String>| v.as_deref().map_or(Ok(()), |v| name(n, v, false)),
        doc: "observer's name, the label `observer` on every metric (several observers on \
              one `/metrics`)";
    detect: Detect = Detect::Poll;
        ENV_DETECT = "P28_LATE_OBS_DETECT", env: true, late: true, get: Detect, set: Detect, default: "poll",
        check: any,
        doc: "way workers learn that a key was written: `poll`, or `push` (Redis tells \
              them)";
    heat_key_prefix: String = "quantum:harvest:heat:by_plan:".to_owned();
        CODE_HEAT_KEY_PREFIX = "heat_key_prefix", env: false, late: false, get: &str, set: impl Into<String>,
        default: "quantum:harvest:heat:by_plan:",
        check: |n, v: &String| name(n, v, false),
        doc: "prefix of the key HeatBridge writes per plan (in code only)";
    // Braces would break the hash tag the dedupe key builds from it.
    stream: String = "quantum:stream:apply.heat.observed".to_owned();
        CODE_STREAM = "stream", env: false, late: false, get: &str, set: impl Into<String>,
        default: "quantum:stream:apply.heat.observed",
        check: |n, v: &String| name(n, v, true),
        doc: "stream events are appended to (in code only)";
    warn_interval: Duration = Duration::from_secs(10);
        CODE_WARN_INTERVAL = "warn_interval", env: false, late: false, get: Duration, set: Duration, default: "10000",
        check: millis_in(1, ms(MAX_WAIT_LIMIT)),
        doc: "least time in milliseconds between two warnings of one kind, 1 ms to 1 h \
              (in code only)";
    worker_stack_size: Option<usize> = None;
        CODE_WORKER_STACK_SIZE = "worker_stack_size", env: false, late: false, get: Option<usize>, set: usize, default: "unset",
        check: |n, v: &Option<usize>| v.map_or(Ok(()), |b| count_in(MIN_STACK, MAX_STACK)(n, &b)),
        doc: "stack size of the worker threads in bytes, 256 KiB to 1 GiB; unset is the \
              standard library's (in code only)";
}

/// The README's table of settings, as the rows give it.
#[cfg(test)]
pub(crate) fn readme_table() -> String {
    let mut table =
        String::from("| setting | default | used by | meaning |\n| --- | --- | --- | --- |\n");
    for s in SETTINGS {
        let used_by = if s.late { "late" } else { "both" };
        table.push_str(&format!(
            "| `{}` | `{}` | {used_by} | {} |\n",
            s.name, s.default, s.doc
        ));
    }
    table
}

#[cfg(test)]
mod tests;
