//! [`Config`]: what the observer does, read from `P28_LATE_OBS_*` variables
//! and overridable in code.
//!
//! [`VARIABLES`] is the one list of variables: how each is parsed and how
//! its effective value is shown. Values are parsed strictly: anything that
//! does not parse, or is out of range, is a [`ConfigError`] naming the
//! variable and the value.

mod env;
mod error;

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use crate::ObsPoint;

pub use error::{ConfigError, ConfigErrorKind};

pub(crate) const ENV_ENABLED: &str = "P28_LATE_OBS_ENABLED";
pub(crate) const ENV_MAX_WAIT_MS: &str = "P28_LATE_OBS_MAX_WAIT_MS";
pub(crate) const ENV_POLL_MS: &str = "P28_LATE_OBS_POLL_MS";
pub(crate) const ENV_WORKERS: &str = "P28_LATE_OBS_WORKERS";
pub(crate) const ENV_QUEUE_CAPACITY: &str = "P28_LATE_OBS_QUEUE_CAPACITY";
pub(crate) const ENV_IN_FLIGHT: &str = "P28_LATE_OBS_IN_FLIGHT";
pub(crate) const ENV_DEDUPE_TTL_MS: &str = "P28_LATE_OBS_DEDUPE_TTL_MS";
pub(crate) const ENV_STREAM_MAXLEN: &str = "P28_LATE_OBS_STREAM_MAXLEN";
pub(crate) const ENV_REDIS_TIMEOUT_MS: &str = "P28_LATE_OBS_REDIS_TIMEOUT_MS";
pub(crate) const ENV_SHUTDOWN_TIMEOUT_MS: &str = "P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS";
pub(crate) const ENV_RETRY_MS: &str = "P28_LATE_OBS_RETRY_MS";
pub(crate) const ENV_REDIS_URL: &str = "P28_LATE_OBS_REDIS_URL";
pub(crate) const ENV_NAME: &str = "P28_LATE_OBS_NAME";
pub(crate) const ENV_DETECT: &str = "P28_LATE_OBS_DETECT";

/// The longest accepted wait: one hour.
pub(crate) const MAX_WAIT_LIMIT: Duration = Duration::from_secs(3600);
const MAX_WORKERS: usize = 64;
const MAX_CAPACITY: usize = 1 << 20;
/// What the default shutdown timeout adds to the max wait: the deadline
/// look and the last write.
const SHUTDOWN_MARGIN: Duration = Duration::from_millis(500);

/// One environment variable: how it is read into a [`Config`] and how its
/// effective value is shown (by `check-config`).
pub(crate) struct Variable {
    pub(crate) name: &'static str,
    parse: fn(&mut Config, OsString) -> Result<(), ConfigError>,
    show: fn(&Config) -> String,
}

macro_rules! variable {
    ($name:expr, $field:ident, $parse:expr) => {
        variable!($name, $field, $parse, |c| Show::show(&c.$field))
    };
    ($name:expr, $field:ident, $parse:expr, $show:expr) => {
        Variable {
            name: $name,
            parse: |c, raw| {
                c.$field = $parse($name, raw)?;
                Ok(())
            },
            show: $show,
        }
    };
}

/// Every `P28_LATE_OBS_*` variable, in the order the README lists them.
pub(crate) const VARIABLES: &[Variable] = &[
    variable!(ENV_ENABLED, enabled, env::flag),
    variable!(ENV_MAX_WAIT_MS, max_wait, env::millis),
    variable!(ENV_POLL_MS, poll, env::millis),
    variable!(ENV_WORKERS, workers, env::size),
    variable!(ENV_QUEUE_CAPACITY, queue_capacity, env::size),
    variable!(ENV_IN_FLIGHT, max_in_flight, env::size),
    variable!(ENV_DEDUPE_TTL_MS, dedupe_ttl, env::millis),
    variable!(ENV_STREAM_MAXLEN, stream_maxlen, env::count),
    variable!(ENV_REDIS_TIMEOUT_MS, redis_timeout, env::millis),
    variable!(
        ENV_SHUTDOWN_TIMEOUT_MS,
        shutdown_timeout,
        env::some_millis,
        |c| { c.shutdown_timeout().show() }
    ),
    variable!(ENV_RETRY_MS, retry_window, env::millis),
    variable!(ENV_REDIS_URL, redis_url, env::some_secret_url),
    variable!(ENV_NAME, name, env::some_text),
    variable!(ENV_DETECT, detect, env::detect),
];

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
    /// Redis tells the worker when a key under the heat prefix is written
    /// (client tracking in broadcast mode); a watched plan is looked at
    /// when taken and at its deadline, and again whenever a message may
    /// have been lost. Where the store cannot push, the worker polls.
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

impl Show for Detect {
    fn show(&self) -> String {
        self.as_str().to_owned()
    }
}

/// A setting's value as an env file writes it.
trait Show {
    fn show(&self) -> String;
}

impl Show for Duration {
    fn show(&self) -> String {
        ms(*self).to_string()
    }
}

impl<T: Show> Show for Option<T> {
    fn show(&self) -> String {
        self.as_ref().map_or_else(String::new, Show::show)
    }
}

macro_rules! show_as_display {
    ($($t:ty),*) => { $(impl Show for $t { fn show(&self) -> String { self.to_string() } })* };
}
show_as_display!(bool, usize, u64, String);

impl Show for RedisUrl {
    fn show(&self) -> String {
        self.redacted()
    }
}

/// A Redis URL whose `Debug` and `Display` hide the password.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RedisUrl(String);

impl RedisUrl {
    /// The URL as it may be shown: everything before its last `@` (user,
    /// password) as `***`.
    pub(crate) fn redacted(&self) -> String {
        crate::store::redis::redact(&self.0)
    }
}

impl From<String> for RedisUrl {
    fn from(url: String) -> Self {
        RedisUrl(url)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

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
    /// `None`: the max wait plus [`SHUTDOWN_MARGIN`].
    shutdown_timeout: Option<Duration>,
    retry_window: Duration,
    redis_url: Option<RedisUrl>,
    name: Option<String>,
    detect: Detect,
    heat_key_prefix: String,
    stream: String,
    warn_interval: Duration,
    worker_stack_size: Option<usize>,
}

impl Default for Config {
    /// The defaults of every setting; the environment is not read.
    fn default() -> Self {
        Self {
            enabled: true,
            max_wait: Duration::from_millis(2000),
            poll: Duration::from_millis(100),
            workers: 2,
            // The channel allocates every slot up front (128 bytes each,
            // 2 MiB); a burst of 10,000 plans fits before a worker wakes.
            queue_capacity: 16_384,
            // With two workers, 65,536 plans are watched at once: 20,000 a
            // second for the default 2 s wait, or a burst, from their first
            // tick. A held job costs about 200 bytes.
            max_in_flight: 32_768,
            dedupe_ttl: Duration::from_secs(24 * 3600),
            stream_maxlen: 100_000,
            // Half a default tick: a stalled Redis costs a worker at most
            // one timeout per tick.
            redis_timeout: Duration::from_millis(50),
            shutdown_timeout: None,
            retry_window: Duration::from_secs(5),
            redis_url: None,
            name: None,
            detect: Detect::Poll,
            heat_key_prefix: "quantum:harvest:heat:by_plan:".to_owned(),
            stream: "quantum:stream:apply.heat.observed".to_owned(),
            warn_interval: Duration::from_secs(10),
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

    /// Whether observing is on (`P28_LATE_OBS_ENABLED`).
    pub fn enabled(&self) -> bool {
        self.enabled
    }
    /// How long after `observe_late` a plan is watched (`P28_LATE_OBS_MAX_WAIT_MS`).
    pub fn max_wait(&self) -> Duration {
        self.max_wait
    }
    /// Time between two looks at one plan's key (`P28_LATE_OBS_POLL_MS`).
    pub fn poll(&self) -> Duration {
        self.poll
    }
    /// Number of worker threads (`P28_LATE_OBS_WORKERS`).
    pub fn workers(&self) -> usize {
        self.workers
    }
    /// Capacity of the queue in front of the workers (`P28_LATE_OBS_QUEUE_CAPACITY`).
    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
    }
    /// Jobs one worker watches at once (`P28_LATE_OBS_IN_FLIGHT`).
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight
    }
    /// Lifetime of a dedupe key (`P28_LATE_OBS_DEDUPE_TTL_MS`).
    pub fn dedupe_ttl(&self) -> Duration {
        self.dedupe_ttl
    }
    /// Approximate length of the observed stream (`P28_LATE_OBS_STREAM_MAXLEN`).
    pub fn stream_maxlen(&self) -> u64 {
        self.stream_maxlen
    }
    /// Timeout of each store call (`P28_LATE_OBS_REDIS_TIMEOUT_MS`).
    pub fn redis_timeout(&self) -> Duration {
        self.redis_timeout
    }
    /// How long shutdown (and dropping the observer) may take
    /// (`P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS`; default: the max wait plus
    /// 500 ms, so that a default stop drains every watched plan).
    pub fn shutdown_timeout(&self) -> Duration {
        self.shutdown_timeout
            .unwrap_or(self.max_wait.saturating_add(SHUTDOWN_MARGIN))
    }
    /// How long a failed write of a decided event is retried (`P28_LATE_OBS_RETRY_MS`).
    pub fn retry_window(&self) -> Duration {
        self.retry_window
    }
    /// The Redis URL from `P28_LATE_OBS_REDIS_URL`, if set. It may hold a
    /// password: never log it (`Config`'s `Debug` hides it).
    pub fn redis_url(&self) -> Option<&str> {
        self.redis_url.as_ref().map(|u| u.0.as_str())
    }
    /// The observer's name (`P28_LATE_OBS_NAME`), added to every metric as
    /// label `observer` so that several observers can share one `/metrics`.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }
    /// How workers detect a written key (`P28_LATE_OBS_DETECT`).
    pub fn detect(&self) -> Detect {
        self.detect
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
        VARIABLES.iter().map(|v| (v.name, (v.show)(self))).collect()
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
        let mut config = Config::default();
        for variable in VARIABLES {
            if let Some(raw) = lookup(variable.name) {
                (variable.parse)(&mut config, raw.into())?;
            }
        }
        Ok(ConfigBuilder { config })
    }

    /// Turns observing on or off (`P28_LATE_OBS_ENABLED`, default on). When
    /// off, nothing starts, nothing connects, and every observe call is a
    /// counted no-op.
    pub fn enabled(mut self, enabled: bool) -> Self {
        self.config.enabled = enabled;
        self
    }
    /// How long `observe_late` watches a plan's key, counted from the call,
    /// 1 ms to 1 h (`P28_LATE_OBS_MAX_WAIT_MS`, default 2000).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.config.max_wait = max_wait;
        self
    }
    /// Time between two looks at one plan's key, at least 1 ms and at most
    /// the wait (`P28_LATE_OBS_POLL_MS`, default 100).
    pub fn poll(mut self, poll: Duration) -> Self {
        self.config.poll = poll;
        self
    }
    /// Number of worker threads, 1 to 64 (`P28_LATE_OBS_WORKERS`, default 2).
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers;
        self
    }
    /// Capacity of the queue in front of the workers, 1 to 2^20; a full
    /// queue refuses (and counts) further observations
    /// (`P28_LATE_OBS_QUEUE_CAPACITY`, default 16384).
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.config.queue_capacity = capacity;
        self
    }
    /// Jobs one worker watches at once, 1 to 2^20; `1` gives the literal
    /// one-job-at-a-time loop (`P28_LATE_OBS_IN_FLIGHT`, default 32768).
    pub fn max_in_flight(mut self, jobs: usize) -> Self {
        self.config.max_in_flight = jobs;
        self
    }
    /// Lifetime of a dedupe key, at least 1 ms
    /// (`P28_LATE_OBS_DEDUPE_TTL_MS`, default 86400000: a day).
    pub fn dedupe_ttl(mut self, ttl: Duration) -> Self {
        self.config.dedupe_ttl = ttl;
        self
    }
    /// Approximate length the stream is trimmed to, at least 1
    /// (`P28_LATE_OBS_STREAM_MAXLEN`, default 100000).
    pub fn stream_maxlen(mut self, maxlen: u64) -> Self {
        self.config.stream_maxlen = maxlen;
        self
    }
    /// Connect, read and write timeout of each store call, 1 ms to 60 s;
    /// keep it below the poll, or a warning is logged at start
    /// (`P28_LATE_OBS_REDIS_TIMEOUT_MS`, default 50).
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.config.redis_timeout = timeout;
        self
    }
    /// Bound of [`LateObserver::shutdown`](crate::LateObserver::shutdown)
    /// on drop, up to 10 minutes (`P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS`,
    /// default: the max wait plus 500 ms).
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.config.shutdown_timeout = Some(timeout);
        self
    }
    /// How long a decided event whose write failed is retried before it
    /// counts as failed, up to 10 minutes (`P28_LATE_OBS_RETRY_MS`, default
    /// 5000).
    pub fn retry_window(mut self, window: Duration) -> Self {
        self.config.retry_window = window;
        self
    }
    /// The Redis URL [`LateObserver::from_env`](crate::LateObserver::from_env)
    /// connects to (`P28_LATE_OBS_REDIS_URL`, default: none, the caller's
    /// URL is used).
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.config.redis_url = Some(RedisUrl(url.into()));
        self
    }
    /// The observer's name, added to every metric as label `observer`
    /// (`P28_LATE_OBS_NAME`, default: none, no label).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.config.name = Some(name.into());
        self
    }
    /// How workers learn that a key was written: [`Detect::Poll`] or
    /// [`Detect::Push`] (`P28_LATE_OBS_DETECT=poll|push`, default poll).
    pub fn detect(mut self, detect: Detect) -> Self {
        self.config.detect = detect;
        self
    }
    /// Prefix of the per-plan heat key (code only; default
    /// `quantum:harvest:heat:by_plan:`).
    pub fn heat_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.heat_key_prefix = prefix.into();
        self
    }
    /// The stream events are appended to (code only; default
    /// `quantum:stream:apply.heat.observed`).
    pub fn stream(mut self, stream: impl Into<String>) -> Self {
        self.config.stream = stream.into();
        self
    }
    /// Least time between two warnings of one kind (code only; default 10 s).
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
        if let Some(timeout) = c.shutdown_timeout {
            millis_in(ENV_SHUTDOWN_TIMEOUT_MS, timeout, 0, 600_000)?;
        }
        millis_in(ENV_RETRY_MS, c.retry_window, 0, 600_000)?;
        millis_in("warn_interval", c.warn_interval, 1, u64::MAX)?;
        name("heat_key_prefix", &c.heat_key_prefix, false)?;
        // Braces would break the hash tag the dedupe key builds from it.
        name("stream", &c.stream, true)?;
        if let Some(observer) = &c.name {
            name(ENV_NAME, observer, false)?;
        }
        Ok(c)
    }
}

/// Whole milliseconds of `d`, saturating.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
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
