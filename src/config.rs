//! [`Config`]: what the observer does, read from `P28_LATE_OBS_*` variables
//! and overridable in code.
//!
//! Each environment variable is a `pub const` beside its default. Values are
//! parsed strictly: anything that does not parse, or is out of range, is a
//! [`ConfigError`] naming the variable and the value.

mod env;
mod error;

use std::ffi::OsString;
use std::time::Duration;

use crate::ObsPoint;

pub use error::{ConfigError, ConfigErrorKind};

/// Feature flag: `true/false`, `1/0`, `yes/no`, `on/off`, any case.
pub const ENV_ENABLED: &str = "P28_LATE_OBS_ENABLED";
/// Observing is on unless [`ENV_ENABLED`] says otherwise.
pub const DEFAULT_ENABLED: bool = true;

/// How long after publish a plan is watched, in milliseconds.
pub const ENV_MAX_WAIT_MS: &str = "P28_LATE_OBS_MAX_WAIT_MS";
/// Default of [`ENV_MAX_WAIT_MS`]: 2 s, as in the runbook.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_millis(2000);
/// The longest accepted wait: one hour.
pub const MAX_WAIT_LIMIT: Duration = Duration::from_secs(3600);

/// Time between two looks at one plan's key, in milliseconds.
pub const ENV_POLL_MS: &str = "P28_LATE_OBS_POLL_MS";
/// Default of [`ENV_POLL_MS`]: 100 ms, as in the runbook.
pub const DEFAULT_POLL: Duration = Duration::from_millis(100);

/// Number of worker threads.
pub const ENV_WORKERS: &str = "P28_LATE_OBS_WORKERS";
/// Default of [`ENV_WORKERS`].
pub const DEFAULT_WORKERS: usize = 2;
/// The largest accepted number of workers.
pub const MAX_WORKERS: usize = 64;

/// Capacity of the queue between `observe_*` and the workers.
pub const ENV_QUEUE_CAPACITY: &str = "P28_LATE_OBS_QUEUE_CAPACITY";
/// Default of [`ENV_QUEUE_CAPACITY`]. The channel allocates every slot up
/// front (128 bytes each, 2 MiB in all), and a burst of 10,000 plans fits
/// even before a worker wakes up.
pub const DEFAULT_QUEUE_CAPACITY: usize = 16_384;
/// The largest accepted queue capacity or in-flight limit.
pub const MAX_CAPACITY: usize = 1 << 20;

/// How many jobs one worker watches at once, all checked in one call per tick.
pub const ENV_IN_FLIGHT: &str = "P28_LATE_OBS_IN_FLIGHT";
/// Default of [`ENV_IN_FLIGHT`]: with two workers, 16,384 plans watched at
/// once, so a burst of 10,000 is watched from its first tick. `1` gives the
/// literal one-job-at-a-time loop.
pub const DEFAULT_IN_FLIGHT: usize = 8192;

/// Lifetime of a dedupe key, in milliseconds.
pub const ENV_DEDUPE_TTL_MS: &str = "P28_LATE_OBS_DEDUPE_TTL_MS";
/// Default of [`ENV_DEDUPE_TTL_MS`]: 24 hours.
pub const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Approximate length the observed stream is trimmed to (`MAXLEN ~`).
pub const ENV_STREAM_MAXLEN: &str = "P28_LATE_OBS_STREAM_MAXLEN";
/// Default of [`ENV_STREAM_MAXLEN`].
pub const DEFAULT_STREAM_MAXLEN: u64 = 100_000;

/// Connect, read and write timeout of every store call, in milliseconds.
pub const ENV_REDIS_TIMEOUT_MS: &str = "P28_LATE_OBS_REDIS_TIMEOUT_MS";
/// Default of [`ENV_REDIS_TIMEOUT_MS`]: half a default tick, so a stalled
/// Redis costs a worker at most one timeout per tick.
pub const DEFAULT_REDIS_TIMEOUT: Duration = Duration::from_millis(50);

/// How long shutdown (and Drop) waits for workers, in milliseconds.
pub const ENV_SHUTDOWN_TIMEOUT_MS: &str = "P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS";
/// Default of [`ENV_SHUTDOWN_TIMEOUT_MS`].
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_millis(1000);

/// How long a decided event whose write failed is retried, in milliseconds.
pub const ENV_RETRY_MS: &str = "P28_LATE_OBS_RETRY_MS";
/// Default of [`ENV_RETRY_MS`].
pub const DEFAULT_RETRY_WINDOW: Duration = Duration::from_secs(5);

/// The key HeatBridge writes is this prefix followed by the plan id.
pub const DEFAULT_HEAT_KEY_PREFIX: &str = "quantum:harvest:heat:by_plan:";
/// The stream observed events are appended to.
pub const DEFAULT_STREAM: &str = "quantum:stream:apply.heat.observed";
/// Least time between two warnings of one kind (queue full, store errors).
pub const DEFAULT_WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The observer's settings. Build one with [`Config::from_env`] or
/// [`Config::builder`]; both validate, so a `Config` is always usable.
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    enabled: bool,
    max_wait: Duration,
    poll: Duration,
    workers: usize,
    queue_capacity: usize,
    max_in_flight: usize,
    dedupe_ttl: Duration,
    stream_maxlen: u64,
    redis_timeout: Duration,
    shutdown_timeout: Duration,
    retry_window: Duration,
    heat_key_prefix: String,
    stream: String,
    warn_interval: Duration,
    worker_stack_size: Option<usize>,
}

impl Default for Config {
    /// The defaults of every setting; the environment is not read.
    fn default() -> Self {
        Self {
            enabled: DEFAULT_ENABLED,
            max_wait: DEFAULT_MAX_WAIT,
            poll: DEFAULT_POLL,
            workers: DEFAULT_WORKERS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            max_in_flight: DEFAULT_IN_FLIGHT,
            dedupe_ttl: DEFAULT_DEDUPE_TTL,
            stream_maxlen: DEFAULT_STREAM_MAXLEN,
            redis_timeout: DEFAULT_REDIS_TIMEOUT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            retry_window: DEFAULT_RETRY_WINDOW,
            heat_key_prefix: DEFAULT_HEAT_KEY_PREFIX.to_owned(),
            stream: DEFAULT_STREAM.to_owned(),
            warn_interval: DEFAULT_WARN_INTERVAL,
            worker_stack_size: None,
        }
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
    /// value, or a poll longer than the wait.
    pub fn from_env() -> Result<Config, ConfigError> {
        ConfigBuilder::from_env()?.build()
    }

    /// Like [`Config::from_env`], reading variables through `lookup` instead
    /// of the process environment (for tests, or settings kept elsewhere).
    ///
    /// # Errors
    /// As [`Config::from_env`].
    pub fn from_lookup<V: Into<OsString>>(
        lookup: impl FnMut(&str) -> Option<V>,
    ) -> Result<Config, ConfigError> {
        ConfigBuilder::from_lookup(lookup)?.build()
    }

    /// Whether observing is on ([`ENV_ENABLED`]).
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// How long after `observe_late` a plan is watched ([`ENV_MAX_WAIT_MS`]).
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }
    /// Time between two looks at one plan's key ([`ENV_POLL_MS`]).
    pub fn poll(&self) -> Duration {
        self.poll
    }
    /// Number of worker threads ([`ENV_WORKERS`]).
    pub fn workers(&self) -> usize {
        self.workers
    }
    /// Capacity of the queue in front of the workers ([`ENV_QUEUE_CAPACITY`]).
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }
    /// Jobs one worker watches at once ([`ENV_IN_FLIGHT`]).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
    /// Lifetime of a dedupe key ([`ENV_DEDUPE_TTL_MS`]).
    pub fn dedupe_ttl(&self) -> Duration {
        self.dedupe_ttl
    }
    /// Approximate length of the observed stream ([`ENV_STREAM_MAXLEN`]).
    pub fn stream_maxlen(&self) -> u64 {
        self.stream_maxlen
    }
    /// Timeout of each store call ([`ENV_REDIS_TIMEOUT_MS`]).
    pub fn redis_timeout(&self) -> Duration {
        self.redis_timeout
    }
    /// Bound of shutdown and Drop ([`ENV_SHUTDOWN_TIMEOUT_MS`]).
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
    }
    /// How long a failed write of a decided event is retried ([`ENV_RETRY_MS`]).
    pub fn retry_window(&self) -> Duration {
        self.retry_window
    }
    /// Prefix of the key HeatBridge writes per plan.
    pub fn heat_key_prefix(&self) -> &str {
        &self.heat_key_prefix
    }
    /// The stream observed events are appended to.
    pub fn stream(&self) -> &str {
        &self.stream
    }
    /// Least time between two warnings of one kind.
    pub fn warn_interval(&self) -> Duration {
        self.warn_interval
    }
    /// Stack size of worker threads; `None` is the standard library's default.
    pub fn worker_stack_size(&self) -> Option<usize> {
        self.worker_stack_size
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
    /// A [`ConfigError`] for the first variable that does not parse. Range
    /// checks happen in [`ConfigBuilder::build`].
    pub fn from_env() -> Result<ConfigBuilder, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Like [`ConfigBuilder::from_env`], reading through `lookup`.
    ///
    /// # Errors
    /// As [`ConfigBuilder::from_env`].
    pub fn from_lookup<V: Into<OsString>>(
        mut lookup: impl FnMut(&str) -> Option<V>,
    ) -> Result<ConfigBuilder, ConfigError> {
        let mut get = |name: &str| lookup(name).map(Into::into);
        let mut c = Config::default();
        if let Some(raw) = get(ENV_ENABLED) {
            c.enabled = env::flag(ENV_ENABLED, raw)?;
        }
        if let Some(raw) = get(ENV_MAX_WAIT_MS) {
            c.max_wait = env::millis(ENV_MAX_WAIT_MS, raw)?;
        }
        if let Some(raw) = get(ENV_POLL_MS) {
            c.poll = env::millis(ENV_POLL_MS, raw)?;
        }
        if let Some(raw) = get(ENV_WORKERS) {
            c.workers = saturate(env::count(ENV_WORKERS, raw)?);
        }
        if let Some(raw) = get(ENV_QUEUE_CAPACITY) {
            c.queue_capacity = saturate(env::count(ENV_QUEUE_CAPACITY, raw)?);
        }
        if let Some(raw) = get(ENV_IN_FLIGHT) {
            c.max_in_flight = saturate(env::count(ENV_IN_FLIGHT, raw)?);
        }
        if let Some(raw) = get(ENV_DEDUPE_TTL_MS) {
            c.dedupe_ttl = env::millis(ENV_DEDUPE_TTL_MS, raw)?;
        }
        if let Some(raw) = get(ENV_STREAM_MAXLEN) {
            c.stream_maxlen = env::count(ENV_STREAM_MAXLEN, raw)?;
        }
        if let Some(raw) = get(ENV_REDIS_TIMEOUT_MS) {
            c.redis_timeout = env::millis(ENV_REDIS_TIMEOUT_MS, raw)?;
        }
        if let Some(raw) = get(ENV_SHUTDOWN_TIMEOUT_MS) {
            c.shutdown_timeout = env::millis(ENV_SHUTDOWN_TIMEOUT_MS, raw)?;
        }
        if let Some(raw) = get(ENV_RETRY_MS) {
            c.retry_window = env::millis(ENV_RETRY_MS, raw)?;
        }
        Ok(ConfigBuilder { config: c })
    }

    /// Turns observing on or off. Corresponding environment variable:
    /// [`ENV_ENABLED`]. When off, nothing starts, nothing connects, and every
    /// observe call is a counted no-op.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }
    /// How long `observe_late` watches a plan's key, counted from the call.
    /// Corresponding environment variable: [`ENV_MAX_WAIT_MS`].
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.config.max_wait = max_wait;
        self
    }
    /// Time between two looks at one plan's key; at least 1 ms and at most
    /// the wait. Corresponding environment variable: [`ENV_POLL_MS`].
    pub fn poll(mut self, poll: Duration) -> Self {
        self.config.poll = poll;
        self
    }
    /// Number of worker threads, 1 to [`MAX_WORKERS`]. Corresponding
    /// environment variable: [`ENV_WORKERS`].
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers;
        self
    }
    /// Capacity of the queue in front of the workers, 1 to [`MAX_CAPACITY`];
    /// a full queue refuses (and counts) further observations. Corresponding
    /// environment variable: [`ENV_QUEUE_CAPACITY`].
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.queue_capacity = capacity;
        self
    }
    /// Jobs one worker watches at once, 1 to [`MAX_CAPACITY`]. Corresponding
    /// environment variable: [`ENV_IN_FLIGHT`].
    pub fn max_in_flight(mut self, jobs: usize) -> Self {
        self.config.max_in_flight = jobs;
        self
    }
    /// Lifetime of a dedupe key, at least 1 ms. Corresponding environment
    /// variable: [`ENV_DEDUPE_TTL_MS`].
    pub fn dedupe_ttl(mut self, ttl: Duration) -> Self {
        self.config.dedupe_ttl = ttl;
        self
    }
    /// Approximate length the stream is trimmed to, at least 1. Corresponding
    /// environment variable: [`ENV_STREAM_MAXLEN`].
    pub fn stream_maxlen(mut self, maxlen: u64) -> Self {
        self.config.stream_maxlen = maxlen;
        self
    }
    /// Timeout of each store call, 1 ms to 60 s; keep it below the poll
    /// interval. Corresponding environment variable: [`ENV_REDIS_TIMEOUT_MS`].
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.config.redis_timeout = timeout;
        self
    }
    /// Bound of [`LateObserver::shutdown`](crate::LateObserver::shutdown) on
    /// Drop, up to 10 minutes (0 = do not wait). Corresponding environment
    /// variable: [`ENV_SHUTDOWN_TIMEOUT_MS`].
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = timeout;
        self
    }
    /// How long a decided event whose write failed is retried before it
    /// counts as failed, up to 10 minutes. Corresponding environment
    /// variable: [`ENV_RETRY_MS`].
    pub fn retry_window(mut self, window: Duration) -> Self {
        self.config.retry_window = window;
        self
    }
    /// Prefix of the per-plan heat key (code only; default
    /// [`DEFAULT_HEAT_KEY_PREFIX`]).
    pub fn heat_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.heat_key_prefix = prefix.into();
        self
    }
    /// The stream events are appended to (code only; default
    /// [`DEFAULT_STREAM`]).
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.config.stream = stream.into();
        self
    }
    /// Least time between two warnings of one kind (code only; default
    /// [`DEFAULT_WARN_INTERVAL`]).
    pub fn warn_interval(mut self, interval: Duration) -> Self {
        self.config.warn_interval = interval;
        self
    }
    /// Stack size of the worker threads, in bytes (code only; default: the
    /// standard library's). A size the system cannot provide makes
    /// [`LateObserver::start`](crate::LateObserver::start) fail.
    pub fn worker_stack_size(mut self, bytes: usize) -> Self {
        self.config.worker_stack_size = Some(bytes);
        self
    }

    /// Validates every setting and returns the config.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first setting out of range: a zero poll,
    /// a poll longer than the wait, zero workers, a zero queue capacity (a
    /// rendezvous channel would refuse nearly everything), and the like.
    pub fn build(self) -> Result<Config, ConfigError> {
        let c = self.config;
        millis_in(ENV_MAX_WAIT_MS, c.max_wait, 1, ms(MAX_WAIT_LIMIT))?;
        millis_in(ENV_POLL_MS, c.poll, 1, u64::MAX)?;
        if c.poll > c.max_wait {
            return Err(ConfigError::new(
                ENV_POLL_MS,
                ms(c.poll).to_string(),
                ConfigErrorKind::PollExceedsWait {
                    max_wait_ms: ms(c.max_wait),
                },
            ));
        }
        count_in(ENV_WORKERS, c.workers as u64, 1, MAX_WORKERS as u64)?;
        count_in(
            ENV_QUEUE_CAPACITY,
            c.queue_capacity as u64,
            1,
            MAX_CAPACITY as u64,
        )?;
        count_in(
            ENV_IN_FLIGHT,
            c.max_in_flight as u64,
            1,
            MAX_CAPACITY as u64,
        )?;
        millis_in(ENV_DEDUPE_TTL_MS, c.dedupe_ttl, 1, u64::MAX)?;
        count_in(ENV_STREAM_MAXLEN, c.stream_maxlen, 1, u64::MAX)?;
        millis_in(ENV_REDIS_TIMEOUT_MS, c.redis_timeout, 1, 60_000)?;
        millis_in(ENV_SHUTDOWN_TIMEOUT_MS, c.shutdown_timeout, 0, 600_000)?;
        millis_in(ENV_RETRY_MS, c.retry_window, 0, 600_000)?;
        millis_in("warn_interval", c.warn_interval, 1, u64::MAX)?;
        name("heat_key_prefix", &c.heat_key_prefix, false)?;
        // Braces would break the hash tag the dedupe key builds from it.
        name("stream", &c.stream, true)?;
        Ok(c)
    }
}

/// Whole milliseconds of `d`, saturating.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn saturate(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn millis_in(variable: &'static str, d: Duration, min: u64, max: u64) -> Result<(), ConfigError> {
    count_in(variable, ms(d), min, max)
}

fn count_in(variable: &'static str, n: u64, min: u64, max: u64) -> Result<(), ConfigError> {
    let kind = if n < min {
        ConfigErrorKind::TooSmall { min }
    } else if n > max {
        ConfigErrorKind::TooLarge { max }
    } else {
        return Ok(());
    };
    Err(ConfigError::new(variable, n.to_string(), kind))
}

fn name(setting: &'static str, value: &str, no_braces: bool) -> Result<(), ConfigError> {
    let braces = no_braces && value.contains(['{', '}']);
    if value.is_empty() || braces || value.chars().any(char::is_control) {
        return Err(ConfigError::new(setting, value, ConfigErrorKind::BadName));
    }
    Ok(())
}
