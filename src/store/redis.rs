//! The store operators run: Redis through redis-rs's synchronous
//! `Connection`, one per worker.
//!
//! * Connections open lazily, with a connect timeout, and get read and write
//!   timeouts (connect clears them). Any error other than a server's reply
//!   drops the connection; reconnecting backs off exponentially with jitter.
//! * Each batch is one Lua script call per chunk, so a call has one reply
//!   and a stalled server costs one read timeout per call, whatever the
//!   batch size (a pipeline of N commands would wait N timeouts).
//! * Logs and errors name `host:port` only, never the URL: it may carry a
//!   password.

use std::fmt;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use redis::io::tcp::TcpSettings;
use redis::{Client, ConnectionAddr, ErrorKind, RedisError, Script};

use super::backoff::Backoff;
use super::{Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec};
use crate::{Config, EVENT_FIELDS};

/// Keys asked about per script call. 1,024 `EXISTS` run in about a
/// millisecond inside Redis, far below the default 50 ms timeout, and keep
/// Redis free for other clients between chunks.
pub const EXISTS_CHUNK: usize = 1024;
/// Events claimed and appended per script call (a `SET NX PX` and an `XADD`
/// each).
pub const CLAIM_CHUNK: usize = 256;

static EXISTS_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/exists.lua")));
static CLAIM_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/claim_and_append.lua")));

/// A Redis URL the observer cannot use. The message never repeats the URL,
/// which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrlError {
    reason: String,
}

impl fmt::Display for RedisUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid Redis URL: {}", self.reason)
    }
}

impl std::error::Error for RedisUrlError {}

/// Makes one [`RedisStore`] per worker from a Redis URL. Nothing connects
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
        let invalid = |e: RedisError| RedisUrlError {
            reason: describe_error(&e),
        };
        let info = redis::IntoConnectionInfo::into_connection_info(url).map_err(invalid)?;
        if !info.addr().is_supported() {
            return Err(RedisUrlError {
                reason: "TLS (rediss://) needs the crate feature `tls`".to_owned(),
            });
        }
        let address = match info.addr() {
            ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
            addr => addr.to_string(),
        };
        // Redis 1.x leaves Nagle on; small commands would wait for ACKs.
        let tcp = TcpSettings::default().set_nodelay(true);
        // No CLIENT SETINFO on connect: each setup command is one more read
        // timeout when the server is stalled.
        let redis = info.redis_settings().clone().set_skip_set_lib_name();
        let info = info.set_tcp_settings(tcp).set_redis_settings(redis);
        let client = Client::open(info).map_err(invalid)?;
        Ok(Self {
            client,
            timeout,
            address,
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
            address: self.address.clone(),
            connection: None,
            reconnect: Backoff::new(),
        }
    }

    fn describe(&self) -> String {
        format!("redis {}", self.address)
    }
}

/// One worker's Redis connection, opened lazily and replaced after errors.
pub struct RedisStore {
    client: Client,
    timeout: Duration,
    address: String,
    connection: Option<redis::Connection>,
    reconnect: Backoff,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("address", &self.address)
            .field("connected", &self.connection.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// The open connection, or a new one unless reconnecting is backing off.
    fn connection(&mut self) -> Result<&mut redis::Connection, StoreError> {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.open()?,
        };
        Ok(self.connection.insert(connection))
    }

    fn open(&mut self) -> Result<redis::Connection, StoreError> {
        let now = Instant::now();
        if let Some(left) = self.reconnect.wait(now) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("{}: reconnecting in {} ms", self.address, left.as_millis()),
            ));
        }
        let t = Some(self.timeout);
        let opened = self
            .client
            .get_connection_with_timeout(self.timeout)
            .and_then(|c| {
                // Connecting clears the timeouts it used; set them for good.
                c.set_read_timeout(t)?;
                c.set_write_timeout(t)?;
                Ok(c)
            });
        opened.map_err(|e| {
            self.reconnect.failed(now);
            self.error(&e)
        })
    }

    /// Runs `f` on the connection. A server's error reply keeps the
    /// connection; anything else (I/O, timeout, a reply that does not parse)
    /// drops it, since its state is unknown.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let connection = self.connection()?;
        match f(connection) {
            Ok(value) => {
                self.reconnect.succeeded();
                Ok(value)
            }
            Err(e) => {
                if !is_server_reply(&e) {
                    self.connection = None;
                    self.reconnect.failed(Instant::now());
                }
                Err(self.error(&e))
            }
        }
    }

    fn error(&self, e: &RedisError) -> StoreError {
        let kind = if e.is_timeout() {
            StoreErrorKind::Timeout
        } else if e.is_connection_refusal() {
            StoreErrorKind::Unavailable
        } else if e.is_io_error() || e.is_connection_dropped() {
            StoreErrorKind::Io
        } else if is_server_reply(e) || e.kind() == ErrorKind::AuthenticationFailed {
            StoreErrorKind::Server
        } else if matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType) {
            StoreErrorKind::Protocol
        } else {
            StoreErrorKind::Other
        };
        StoreError::new(kind, format!("{}: {}", self.address, describe_error(e)))
    }
}

impl Store for RedisStore {
    fn exists(&mut self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(EXISTS_CHUNK) {
            let mut call = EXISTS_SCRIPT.prepare_invoke();
            for key in chunk {
                call.key(*key);
            }
            let part: Vec<bool> = self.call(|c| call.invoke(c))?;
            found.extend(part);
        }
        Ok(found)
    }

    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        let ttl_ms = u64::try_from(stream.dedupe_ttl.as_millis()).unwrap_or(u64::MAX);
        let mut claimed = Vec::with_capacity(claims.len());
        for chunk in claims.chunks(CLAIM_CHUNK) {
            let mut call = CLAIM_SCRIPT.prepare_invoke();
            call.key(&stream.name);
            for claim in chunk {
                call.key(claim.dedupe_key);
            }
            call.arg(stream.maxlen).arg(ttl_ms).arg(EVENT_FIELDS.len());
            for name in EVENT_FIELDS {
                call.arg(name);
            }
            for claim in chunk {
                call.arg(claim.owner);
                for (_, value) in claim.event.fields() {
                    call.arg(value);
                }
            }
            // A chunk that fails fails the call: the worker retries every
            // claim, and those already written come back as Appended (their
            // dedupe key holds the same owner).
            let codes: Vec<i64> = self.call(|c| call.invoke(c))?;
            for code in codes {
                claimed.push(match code {
                    1 => Claimed::Appended,
                    0 => Claimed::Duplicate,
                    other => {
                        return Err(StoreError::new(
                            StoreErrorKind::Protocol,
                            format!("{}: claim script answered {other}", self.address),
                        ));
                    }
                });
            }
        }
        Ok(claimed)
    }
}

/// Whether `e` is the server's error reply (the connection is still in step).
fn is_server_reply(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

/// redis-rs's message for `e`; it names the failure, never the URL.
fn describe_error(e: &RedisError) -> String {
    e.to_string()
}
