//! The store operators run: Redis through redis-rs's synchronous
//! `Connection`, one per worker.
//!
//! * One [`Node`]: the connection, its timeouts, backoff and subscriber.
//! * Looks are pipelined `EXISTS`, 1,024 keys a call; the claim and append
//!   one Lua script call per chunk (see `scripts`).
//! * Logs and errors name `host:port` only, never the URL: it may carry a
//!   password.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::link::store_error;
use super::node::{Endpoint, Node};
use super::pipelined::EXISTS_CHUNK;
use super::rights;
use super::scripts;
use super::url::connection_info;
use crate::config::checks::in_range;
use crate::config::{Config, ConfigError};
use crate::store::{
    Answers, Changes, Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec,
};

/// Makes one store per worker from a Redis URL. Nothing connects
/// until a worker's first call.
///
/// Accepted URLs: `redis://[[user]:password@]host[:port][/db]`,
/// `redis+unix:///path/to/socket` or `unix:///path/to/socket` (with
/// `?db=N&user=U&pass=P`), and `rediss://` with the `tls` feature.
///
/// ```
/// use heat_observer::{Config, RedisConnector, store::Connector};
///
/// let connector = RedisConnector::new("redis://:secret@10.0.0.5:6380/2", &Config::default())?;
/// assert_eq!(connector.describe(), "redis 10.0.0.5:6380");
/// # Ok::<(), heat_observer::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisConnector {
    endpoint: Endpoint,
    /// The names the rights are proven on (the heat key prefix, the
    /// stream) and the detection mode, when a call is refused for a right.
    rights: Arc<Config>,
}

impl RedisConnector {
    /// A connector for `url` with the config's Redis timeout
    /// (`P28_LATE_OBS_REDIS_TIMEOUT_MS`).
    ///
    /// # Errors
    /// A [`ConfigError`] if the URL does not parse or needs a feature this
    /// build lacks. It says what is wrong and where, and never repeats any
    /// part of the user or password:
    ///
    /// ```
    /// use heat_observer::RedisConnector;
    ///
    /// let url = "redis://default:S3cr/tPw@10.0.0.5:6379";
    /// let err = RedisConnector::new(url, &Default::default()).unwrap_err();
    /// assert_eq!(err.variable(), "Redis URL");
    /// assert!(err.to_string().starts_with("invalid Redis URL: the user and password"));
    /// assert!(!err.to_string().contains("S3cr") && !format!("{err:?}").contains("S3cr"));
    /// ```
    pub fn new(url: &str, config: &Config) -> Result<Self, ConfigError> {
        let mut connector = Self::with_timeout(url, config.redis_timeout())?;
        connector.rights = Arc::new(config.clone());
        Ok(connector)
    }

    /// A connector for `url` whose connect, read and write timeouts are
    /// `timeout`, 1 ms to 60 s (as `P28_LATE_OBS_REDIS_TIMEOUT_MS`).
    ///
    /// # Errors
    /// As [`RedisConnector::new`], and when `timeout` is out of range (a
    /// zero timeout would fail every call).
    ///
    /// ```
    /// use std::time::Duration;
    /// use heat_observer::RedisConnector;
    ///
    /// let err = RedisConnector::with_timeout("redis://127.0.0.1", Duration::ZERO).unwrap_err();
    /// assert_eq!(err.to_string(), r#"invalid timeout="0": must be at least 1"#);
    /// ```
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, ConfigError> {
        let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        in_range("timeout", ms, 1, 60_000)?;
        let (info, address) = connection_info(url)?;
        let endpoint = Endpoint::new(info, address, timeout, None)
            .map_err(|e| ConfigError::url(e.to_string()))?;
        Ok(Self {
            endpoint,
            rights: Arc::new(Config::default()),
        })
    }

    /// A connector for a `rediss://` URL that trusts `certs`' root
    /// certificate instead of the system's, and presents its client
    /// certificate if it has one.
    ///
    /// # Errors
    /// As [`RedisConnector::new`].
    #[cfg(feature = "tls")]
    pub fn with_tls(
        url: &str,
        config: &Config,
        certs: super::TlsCerts,
    ) -> Result<Self, ConfigError> {
        let (info, address) = connection_info(url)?;
        let endpoint = Endpoint::new(info, address, config.redis_timeout(), Some(certs))
            .map_err(|e| ConfigError::url(e.to_string()))?;
        Ok(Self {
            endpoint,
            rights: Arc::new(config.clone()),
        })
    }

    /// `host:port` (or `unix:/path`) of the server, for logs.
    pub fn address(&self) -> &str {
        self.endpoint.address()
    }

    /// Connects (with this connector's timeout) and proves each right the
    /// observer needs with `config`'s names and detection mode, writing
    /// nothing: what `check-config --connect` prints, and what a store
    /// refused for a right says it lacks. Each right comes as an ACL rule
    /// with the key it was tried on (`+xadd on
    /// quantum:stream:apply.heat.observed`) and why it is missing (the
    /// server's `NOPERM`), `None` when the user has it.
    ///
    /// # Errors
    /// A [`StoreError`] when the connection cannot be made or a probe gets
    /// no answer (authentication failed, said by kind).
    pub fn check_rights(
        &self,
        config: &Config,
    ) -> Result<Vec<(String, Option<String>)>, StoreError> {
        let address = self.endpoint.address();
        let error = |e: &redis::RedisError| {
            let error = store_error(address, e);
            match error.kind() {
                StoreErrorKind::Auth => StoreError::new(
                    StoreErrorKind::Auth,
                    format!("{address}: authentication failed: check the user and password"),
                ),
                _ => error,
            }
        };
        let mut con = self.endpoint.open().map_err(|e| error(&e))?;
        rights::check(&mut con, config).map_err(|e| error(&e))
    }
}

impl fmt::Debug for RedisConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnector")
            .field("address", &self.endpoint.address())
            .field("timeout", &self.endpoint.timeout())
            .finish_non_exhaustive()
    }
}

impl Connector for RedisConnector {
    type Store = RedisStore;

    fn connect(&self, _worker: usize) -> RedisStore {
        RedisStore {
            node: Node::new(self.endpoint.clone()),
            rights: Arc::clone(&self.rights),
            diagnosed: None,
        }
    }

    fn describe(&self) -> String {
        format!("redis {}", self.endpoint.address())
    }
}

/// One worker's Redis connection, opened lazily and replaced after errors.
/// Not exported: users name [`RedisConnector`], never its store.
pub struct RedisStore {
    node: Node,
    rights: Arc<Config>,
    /// When the rights were last proven after a refusal, and what was
    /// missing: proven again at most every [`DIAGNOSE_EVERY`].
    diagnosed: Option<(Instant, Option<String>)>,
}

/// How often a store refused for a right proves its rights again.
const DIAGNOSE_EVERY: Duration = Duration::from_secs(10);

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.node.address())
            .field("connected", &self.node.is_connected())
            .field("subscribed", &self.node.is_subscribed())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// `error`, if a refusal for a right, with the rights the user lacks
    /// named as `check-config --connect` names them (proven on the same
    /// connection, at most every [`DIAGNOSE_EVERY`]).
    fn name_the_rights(&mut self, error: StoreError) -> StoreError {
        if error.kind() != StoreErrorKind::Permission {
            return error;
        }
        let now = Instant::now();
        let fresh = self
            .diagnosed
            .as_ref()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) < DIAGNOSE_EVERY);
        if !fresh {
            let config = Arc::clone(&self.rights);
            let checks = self.node.call(|c| rights::check(c, &config));
            let phrase = checks.ok().and_then(|c| rights::missing_phrase(&c));
            self.diagnosed = Some((now, phrase));
        }
        match self.diagnosed.as_ref().and_then(|(_, p)| p.as_deref()) {
            Some(phrase) => StoreError::new(
                StoreErrorKind::Permission,
                format!("{}: {phrase} (NOPERM)", self.node.address()),
            ),
            None => error,
        }
    }

    /// Which of `keys` exist, 1,024 a call, and when the server looked;
    /// the first key's error, if any, is the call's (every reply read, the
    /// connection kept).
    fn looks(&mut self, keys: &[&str], register: bool) -> Result<Answers, StoreError> {
        let mut answers = Answers::all(Vec::with_capacity(keys.len()));
        for chunk in keys.chunks(EXISTS_CHUNK) {
            let (found, by) = self.node.look(chunk, register)?;
            for answer in found {
                let exists = answer.map_err(|e| store_error(self.node.address(), &e))?;
                answers.found.push(Some(exists));
                answers.looked_by.push(Some(by));
            }
        }
        Ok(answers)
    }
}

impl Store for RedisStore {
    /// Subscribed, a watching look registers interest in its keys.
    fn look(&mut self, keys: &[&str], watch: bool) -> Result<Answers, StoreError> {
        let answer = self.looks(keys, watch);
        answer.map_err(|e| self.name_the_rights(e))
    }

    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        let address = self.node.address().to_owned();
        let answer = super::claim_in_chunks(stream, claims, &address, |call| {
            self.node.call(|c| scripts::run_claim(c, call))
        });
        answer.map_err(|e| self.name_the_rights(e))
    }

    fn subscribe(&mut self) -> Result<bool, StoreError> {
        self.node.subscribe().map_err(|e| self.name_the_rights(e))?;
        Ok(true)
    }

    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        self.node.changes(timeout)
    }
}
