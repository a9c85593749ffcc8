//! The fail-open start from the environment ([`LateObserver::from_env`]):
//! whatever the variables hold, a service gets an observer and carries on.

use std::ffi::OsString;

use log::Level;

use super::{LateObserver, Launch};
use crate::config::Config;
use crate::config::{ConfigError, ENV_ENABLED, ENV_NAME, ENV_REDIS_URL, PREFIX, late_only};
use crate::ledger::Mode;
use crate::refusal::Refused;
use crate::say::say;
use crate::store::redis::RedisConnector;

impl LateObserver {
    /// The fail-open start in one call, for services: reads every
    /// `P28_LATE_OBS_*` variable, connects lazily to
    /// `P28_LATE_OBS_REDIS_URL` if set, else to `redis_url`, and starts.
    /// Either may name a Redis Cluster as a comma-separated list of nodes
    /// (`redis://:pw@10.0.0.5:7000,redis://:pw@10.0.0.6:7000`; feature
    /// `cluster`), which it starts the same way.
    /// It never fails. An invalid setting is logged as one error line,
    /// `Late observer disabled: ...`, naming the variable (never a
    /// password), and `p28_config_error` is 1. A setting only the late look
    /// uses (`_MAX_WAIT_MS`, `_POLL_MS`, `_ENABLED`, `_DETECT`) or an
    /// unknown `P28_LATE_OBS_*` name turns the late look off as
    /// `config_error` and keeps the early look, as the rollback does; any
    /// other turns both off. The startup line says which.
    ///
    /// ```no_run
    /// use heat_observer::LateObserver;
    ///
    /// let observer = LateObserver::from_env("redis://127.0.0.1:6379");
    /// // In publish_plan:
    /// let _ = observer.observe_late("plan-42", "BTCUSDT");
    /// # observer.shutdown_now(std::time::Duration::ZERO);
    /// ```
    pub fn from_env(redis_url: &str) -> LateObserver {
        let vars: Vec<(String, OsString)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .collect();
        Self::from_vars_or(vars, redis_url)
    }

    /// [`LateObserver::from_env`] over `vars` instead of the process
    /// environment.
    pub(crate) fn from_vars_or(vars: Vec<(String, OsString)>, redis_url: &str) -> LateObserver {
        let name = vars
            .iter()
            .find(|(k, _)| k == ENV_NAME)
            .and_then(|(_, v)| v.to_str().map(str::to_owned));
        match Config::from_vars(vars.iter().cloned()) {
            Ok(config) => {
                let source = enabled_source(&vars);
                let line = config.startup_line_noting(&source);
                let late = config.enabled();
                Self::connect_and_launch(config, redis_url, Launch::plain(late, line))
            }
            Err(e) if late_only(e.variable()) => Self::early_only(&vars, &e, redis_url, name),
            Err(e) => Self::broken(&e.to_string(), &e.summary(), name),
        }
    }

    /// A setting of the late look's was invalid: the early look runs with
    /// every other setting, the late look is off as a config error.
    fn early_only(
        vars: &[(String, OsString)],
        error: &ConfigError,
        redis_url: &str,
        name: Option<String>,
    ) -> LateObserver {
        // Every late-only and unknown variable left out, the rest read.
        let kept = vars
            .iter()
            .filter(|(k, _)| !k.to_ascii_uppercase().starts_with(PREFIX) || !late_only(k));
        let config = match Config::from_vars(kept.cloned()) {
            Ok(config) => config.to_builder().enabled(false).build(),
            Err(e) => Err(e),
        };
        let config = match config {
            Ok(config) => config,
            Err(e) => return Self::broken(&e.to_string(), &e.summary(), name),
        };
        say!(
            Level::Error,
            "Late observer disabled: {error}; the early look (create_apply_plan) still runs"
        );
        let launch = Launch {
            late: false,
            late_off: Refused::ConfigError,
            why_off: error.summary(),
            line: format!(
                "P2.8A.3 Late Observer: False ({}; the early look still runs)",
                error.summary()
            ),
        };
        Self::connect_and_launch(config, redis_url, launch)
    }

    /// Connects to `P28_LATE_OBS_REDIS_URL` or `redis_url` and launches;
    /// an invalid URL or a thread that cannot be spawned turns both off. A
    /// comma-separated list of nodes is a Redis Cluster (feature
    /// `cluster`).
    fn connect_and_launch(config: Config, redis_url: &str, launch: Launch) -> LateObserver {
        let (url, source) = match config.redis_url() {
            Some(url) => (url.to_owned(), ENV_REDIS_URL),
            None => (redis_url.to_owned(), "Redis URL"),
        };
        let name = config.name().map(str::to_owned);
        let refused = |why: ConfigError| {
            let long = why.naming(source).to_string();
            Self::broken(&long, &long, name.clone())
        };
        let launched = match cluster_nodes(&url) {
            None => match RedisConnector::new(&url, &config) {
                Ok(connector) => Self::launch(config, connector, launch),
                Err(e) => return refused(e),
            },
            #[cfg(feature = "cluster")]
            Some(nodes) => match crate::RedisClusterConnector::new(&nodes, &config) {
                Ok(connector) => Self::launch(config, connector, launch),
                Err(e) => return refused(e),
            },
            #[cfg(not(feature = "cluster"))]
            Some(_) => {
                return refused(ConfigError::url(
                    "a list of cluster nodes needs the crate feature `cluster`",
                ));
            }
        };
        match launched {
            Ok(observer) => observer,
            Err(e) => Self::broken(&e.to_string(), "could not start its workers", name),
        }
    }

    /// An observer for a service whose configuration could not be used
    /// (for a start path of its own, such as [`LateObserver::start`] with
    /// a connector it builds): nothing starts, `why` is logged as `Late
    /// observer disabled: ...`, the startup line says `False (...)`,
    /// `p28_config_error` is 1 and every call is refused as
    /// `config_error`. Never reported as a rollback, which
    /// [`LateObserver::disabled`] is.
    ///
    /// ```
    /// use heat_observer::{Config, LateObserver, MemoryStore, Refused};
    ///
    /// let observer = match Config::from_vars([("P28_LATE_OBS_POLL_MS", "abc")]) {
    ///     Ok(config) => LateObserver::start(config, MemoryStore::new()).unwrap(),
    ///     Err(e) => LateObserver::misconfigured(&e),
    /// };
    /// assert!(observer.stats().config_error);
    /// assert_eq!(observer.observe_now("p", "S"), Err(Refused::ConfigError));
    /// ```
    pub fn misconfigured(why: &dyn std::fmt::Display) -> LateObserver {
        let why = why.to_string();
        Self::broken(&why, &why, None)
    }

    /// Runs with nothing started because of `why` (logged in full), the
    /// startup line naming `short`; its metrics keep the observer's `name`,
    /// if it had a valid one, so that the alert says which observer.
    pub(crate) fn broken(why: &str, short: &str, name: Option<String>) -> LateObserver {
        say!(Level::Error, "Late observer disabled: {why}");
        say!(
            Level::Info,
            "P2.8A.3 Late Observer: False ({short}; the early look is off too)"
        );
        let mode = Mode {
            late: false,
            workers: false,
            config_error: true,
        };
        let named = name.and_then(|n| Config::disabled().to_builder().name(n).build().ok());
        let config = named.unwrap_or_else(Config::disabled);
        Self::assemble(config, None, mode, Refused::ConfigError)
    }
}

/// The nodes of a Redis Cluster given as a comma-separated list
/// (`redis://h1:7000,redis://h2:7000`, or bare `host:port` after the
/// first), or `None` for one server's URL.
fn cluster_nodes(url: &str) -> Option<Vec<String>> {
    let nodes: Vec<String> = url
        .split(',')
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    (url.contains(',')).then_some(nodes)
}

/// Where `enabled` came from, as the startup line says it.
fn enabled_source(vars: &[(String, OsString)]) -> String {
    match vars.iter().find(|(k, _)| k == ENV_ENABLED) {
        Some((_, v)) => format!("{ENV_ENABLED}={}", v.to_string_lossy().trim()),
        None => format!("{ENV_ENABLED} not set: on by default"),
    }
}
