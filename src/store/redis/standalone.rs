//! The store operators run: Redis through redis-rs's synchronous
//! `Connection`, one per worker.
//!
//! * Connections open lazily, with a connect timeout, and get read and write
//!   timeouts (connect clears them). Any error other than a server's reply
//!   drops the connection; reconnecting backs off exponentially with jitter
//!   ([`Link`]).
//! * Each batch is one Lua script call per chunk (see `scripts`), so a
//!   stalled server costs one read timeout per call, whatever the batch size
//!   (a pipeline of N commands would wait N timeouts).
//! * Logs and errors name `host:port` only, never the URL: it may carry a
//!   password.

use std::fmt;
use std::time::Duration;

use redis::{Client, RedisError};

use super::link::Link;
use super::scripts::{self, EXISTS_CHUNK};
use super::tracking::Tracking;
use super::url::{RedisUrlError, connection_info};
use crate::Config;
use crate::store::{Changes, Claim, Claimed, Connector, Store, StoreError, StreamSpec};

/// Makes one store per worker from a Redis URL. Nothing connects
/// until a worker's first call.
///
/// Accepted URLs: `redis://[[user]:password@]host[:port][/db]`,
/// `redis+unix:///path/to/socket` or `unix:///path/to/socket` (with
/// `?db=N&user=U&pass=P`), and `rediss://` with the `tls` feature.
///
/// ```
/// use heat_observer::{Config, Connector, RedisConnector};
///
/// let connector = RedisConnector::new("redis://:secret@10.0.0.5:6380/2", &Config::default())?;
/// assert_eq!(connector.describe(), "redis 10.0.0.5:6380");
/// # Ok::<(), heat_observer::RedisUrlError>(())
/// ```
#[derive(Clone)]
pub struct RedisConnector {
    client: Client,
    timeout: Duration,
    address: String,
    /// The URL's user, for "authentication failed for user ...".
    user: Option<String>,
}

impl RedisConnector {
    /// A connector for `url` with the config's Redis timeout
    /// (`P28_LATE_OBS_REDIS_TIMEOUT_MS`).
    ///
    /// # Errors
    /// [`RedisUrlError`] if the URL does not parse or needs a feature this
    /// build lacks.
    pub fn new(url: &str, config: &Config) -> Result<Self, RedisUrlError> {
        Self::with_timeout(url, config.redis_timeout())
    }

    /// A connector for `url` whose connect, read and write timeouts are
    /// `timeout`.
    ///
    /// # Errors
    /// As [`RedisConnector::new`].
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, RedisUrlError> {
        let (info, address) = connection_info(url)?;
        let user = info.redis_settings().username().map(str::to_owned);
        let client = Client::open(info).map_err(|e| RedisUrlError::new(e.to_string()))?;
        Ok(Self {
            client,
            timeout,
            address,
            user,
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
    ) -> Result<Self, RedisUrlError> {
        let (info, address) = connection_info(url)?;
        let user = info.redis_settings().username().map(str::to_owned);
        let client = Client::build_with_tls(info, certs.into_redis())
            .map_err(|e| RedisUrlError::new(e.to_string()))?;
        Ok(Self {
            client,
            timeout: config.redis_timeout(),
            address,
            user,
        })
    }

    /// `host:port` (or `unix:/path`) of the server, for logs.
    pub fn address(&self) -> &str {
        &self.address
    }
}

impl fmt::Debug for RedisConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConnector")
            .field("address", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Connector for RedisConnector {
    type Store = RedisStore;

    fn connect(&self, _worker: usize) -> RedisStore {
        RedisStore {
            client: self.client.clone(),
            timeout: self.timeout,
            link: Link::new(self.address.clone(), self.user.clone()),
            tracking: Tracking::new(),
        }
    }

    fn describe(&self) -> String {
        format!("redis {}", self.address)
    }
}

/// One worker's Redis connection, opened lazily and replaced after errors.
/// Not exported: users name [`RedisConnector`], never its store.
pub struct RedisStore {
    client: Client,
    timeout: Duration,
    link: Link<redis::Connection>,
    /// Push detection's subscriber, when asked for.
    tracking: Tracking,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.link.address())
            .field("connected", &self.link.is_connected())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let (client, timeout) = (&self.client, self.timeout);
        let open = || -> Result<redis::Connection, RedisError> {
            let c = client.get_connection_with_timeout(timeout)?;
            // Connecting clears the timeouts it used; set them for good.
            c.set_read_timeout(Some(timeout))?;
            c.set_write_timeout(Some(timeout))?;
            Ok(c)
        };
        self.link.call(open, f)
    }
}

impl Store for RedisStore {
    fn exists(&mut self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(EXISTS_CHUNK) {
            let call = scripts::exists(chunk);
            let reply = self.call(|c| scripts::run(c, &scripts::EXISTS, &call))?;
            found.extend(scripts::found(reply, chunk.len(), self.link.address())?);
        }
        Ok(found)
    }

    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        let address = self.link.address().to_owned();
        super::claim_in_chunks(stream, claims, &address, |call| {
            self.call(|c| scripts::run_claim(c, call))
        })
    }

    fn watch_prefix(&mut self, prefix: &str) -> Result<bool, StoreError> {
        let address = self.link.address().to_owned();
        self.tracking
            .subscribe(&self.client, self.timeout, prefix, &address)
    }

    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        let address = self.link.address().to_owned();
        self.tracking.changes(timeout, &address)
    }
}
