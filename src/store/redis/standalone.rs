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
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::{Client, ProtocolVersion, RedisError};

use super::link::{Link, store_error};
use super::pipelined::exists_pipelined;
use super::rights::{self, RightCheck};
use super::scripts::{self, EXISTS_CHUNK};
use super::tracking::{self, Subscriber};
use super::url::{RedisUrlError, connection_info};
use crate::config::Config;
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
/// # Ok::<(), heat_observer::store::RedisUrlError>(())
/// ```
#[derive(Clone)]
pub struct RedisConnector {
    client: Client,
    /// The same server in RESP3, for push detection's subscriber.
    push_client: Client,
    timeout: Duration,
    address: String,
    /// The URL's user, for "authentication failed for user ...".
    user: Option<String>,
    /// The names the rights are proven on (the heat key prefix, the
    /// stream) and the detection mode, when a call is refused for a right.
    rights: Arc<Config>,
}

impl RedisConnector {
    /// A connector for `url` with the config's Redis timeout
    /// (`P28_LATE_OBS_REDIS_TIMEOUT_MS`).
    ///
    /// # Errors
    /// [`RedisUrlError`] if the URL does not parse or needs a feature this
    /// build lacks.
    pub fn new(url: &str, config: &Config) -> Result<Self, RedisUrlError> {
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
    /// assert!(err.to_string().contains("timeout of 0 ms"));
    /// ```
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, RedisUrlError> {
        if !(Duration::from_millis(1)..=Duration::from_secs(60)).contains(&timeout) {
            return Err(RedisUrlError::new(format!(
                "the connector's timeout of {} ms is out of range: it must be 1 ms to 60 s \
                 (a zero timeout fails every call)",
                timeout.as_millis()
            )));
        }
        let (info, address) = connection_info(url)?;
        let user = info.redis_settings().username().map(str::to_owned);
        let push = resp3(&info);
        let client = Client::open(info).map_err(|e| RedisUrlError::new(e.to_string()))?;
        let push_client = Client::open(push).map_err(|e| RedisUrlError::new(e.to_string()))?;
        Ok(Self {
            client,
            push_client,
            timeout,
            address,
            user,
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
    ) -> Result<Self, RedisUrlError> {
        let (info, address) = connection_info(url)?;
        let user = info.redis_settings().username().map(str::to_owned);
        let push = resp3(&info);
        let client = Client::build_with_tls(info, certs.clone().into_redis())
            .map_err(|e| RedisUrlError::new(e.to_string()))?;
        let push_client = Client::build_with_tls(push, certs.into_redis())
            .map_err(|e| RedisUrlError::new(e.to_string()))?;
        Ok(Self {
            client,
            push_client,
            timeout: config.redis_timeout(),
            address,
            user,
            rights: Arc::new(config.clone()),
        })
    }

    /// `host:port` (or `unix:/path`) of the server, for logs.
    pub fn address(&self) -> &str {
        &self.address
    }

    /// Connects (with this connector's timeout) and proves each right the
    /// observer needs with `config`'s names and detection mode, writing
    /// nothing: what `check-config --connect` prints, and what a store
    /// refused for a right says it lacks.
    ///
    /// # Errors
    /// A [`StoreError`] when the connection cannot be made or a probe gets
    /// no answer (authentication failed, said by kind).
    pub fn check_rights(&self, config: &Config) -> Result<Vec<RightCheck>, StoreError> {
        let opened = self
            .client
            .get_connection_with_timeout(self.timeout)
            .and_then(|c| {
                c.set_read_timeout(Some(self.timeout))?;
                c.set_write_timeout(Some(self.timeout))?;
                Ok(c)
            });
        let mut con = opened.map_err(|e| store_error(&self.address, &e))?;
        rights::check(&mut con, config).map_err(|e| store_error(&self.address, &e))
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
            push_client: self.push_client.clone(),
            timeout: self.timeout,
            link: Link::new(self.address.clone(), self.user.clone()),
            subscriber: None,
            tracked: 0,
            lost: false,
            read_only_looks: true,
            rights: Arc::clone(&self.rights),
            diagnosed: None,
        }
    }

    fn describe(&self) -> String {
        format!("redis {}", self.address)
    }
}

/// `info` speaking RESP3, for the subscriber.
fn resp3(info: &redis::ConnectionInfo) -> redis::ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.clone().set_redis_settings(settings)
}

/// One worker's Redis connection, opened lazily and replaced after errors.
/// Not exported: users name [`RedisConnector`], never its store.
pub struct RedisStore {
    client: Client,
    push_client: Client,
    timeout: Duration,
    link: Link<redis::Connection>,
    /// Push detection's subscriber, once subscribed.
    subscriber: Option<Subscriber>,
    /// The data connection (by `Link::opened`) whose looks register
    /// interest for the subscriber.
    tracked: u64,
    /// The data connection was replaced while subscribed: the interest its
    /// looks registered is gone.
    lost: bool,
    /// Looks are read-only scripts (`EVALSHA_RO`), until a server says it
    /// does not know them (Redis 6).
    read_only_looks: bool,
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
            .field("address", &self.link.address())
            .field("connected", &self.link.is_connected())
            .field("subscribed", &self.subscriber.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let answer = self.call_raw(f);
        match answer {
            Err(e) if e.kind() == StoreErrorKind::Permission => Err(self.name_the_rights(e)),
            other => other,
        }
    }

    /// `f` on the data connection, opened (with tracking redirected to the
    /// subscriber, when subscribed) if need be.
    fn call_raw<T>(
        &mut self,
        f: impl FnOnce(&mut redis::Connection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let (client, timeout) = (&self.client, self.timeout);
        let redirect = self.subscriber.as_ref().map(Subscriber::id);
        let open = || -> Result<redis::Connection, RedisError> {
            let mut c = client.get_connection_with_timeout(timeout)?;
            // Connecting clears the timeouts it used; set them for good.
            c.set_read_timeout(Some(timeout))?;
            c.set_write_timeout(Some(timeout))?;
            // Subscribed: this connection's looks register their keys.
            if let Some(id) = redirect {
                tracking::enable(id).exec(&mut c)?;
            }
            Ok(c)
        };
        let answer = self.link.call(open, f);
        if self.subscriber.is_some() && self.link.opened() != self.tracked {
            self.tracked = self.link.opened();
            self.lost = true;
        }
        answer
    }

    /// `error`, a refusal for a right, with the rights the user lacks named
    /// as `check-config --connect` names them (proven on the same
    /// connection, at most every [`DIAGNOSE_EVERY`]).
    fn name_the_rights(&mut self, error: StoreError) -> StoreError {
        let now = Instant::now();
        let fresh = self
            .diagnosed
            .as_ref()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) < DIAGNOSE_EVERY);
        if !fresh {
            let config = Arc::clone(&self.rights);
            // On the data connection, as any call (a new one is set up as
            // the looks need it).
            let checks = self.call_raw(|c| rights::check(c, &config));
            let phrase = checks.ok().and_then(|c| rights::missing_phrase(&c));
            self.diagnosed = Some((now, phrase));
        }
        match self.diagnosed.as_ref().and_then(|(_, p)| p.as_deref()) {
            Some(phrase) => StoreError::new(
                StoreErrorKind::Permission,
                format!("{}: {phrase} (NOPERM)", self.link.address()),
            ),
            None => error,
        }
    }
}

impl RedisStore {
    /// A registering look: `CLIENT CACHING yes`, a multi-key `EXISTS` and
    /// the exists script, in one write. The plain multi-key `EXISTS`
    /// registers its keys; a script's declared keys register too, but cost
    /// the server about 13 times as much (29 against 2.2 µs a key, measured
    /// on Redis 7.0.15). The script, right after it, gives each key's
    /// answer and registers nothing (`CACHING yes` covers one command): a
    /// key written before the `EXISTS` is found by the script, one written
    /// after it is told.
    fn look_registering(&mut self, keys: &[&str]) -> Result<redis::Value, StoreError> {
        let call = scripts::exists(keys, self.read_only_looks);
        self.call(|c| {
            let registering = [tracking::register(), redis::cmd("EXISTS").arg(keys).clone()];
            scripts::run_after(c, &registering, &scripts::EXISTS, &call)
        })
    }

    /// Which of `keys` exist, in chunks; with `register`, registering
    /// interest in them ([`Self::look_registering`]).
    fn looks(&mut self, keys: &[&str], register: bool) -> Result<Vec<bool>, StoreError> {
        let mut found = Vec::with_capacity(keys.len());
        if !register {
            // A plain look: pipelined EXISTS, cheaper for Redis than the
            // script (see `pipelined`); the first key's error, if any, is
            // the call's (every reply read, the connection kept).
            for chunk in keys.chunks(EXISTS_CHUNK) {
                let answers = self.call(|c| {
                    exists_pipelined(c, chunk, false)?
                        .into_iter()
                        .collect::<redis::RedisResult<Vec<bool>>>()
                })?;
                found.extend(answers);
            }
            return Ok(found);
        }
        for chunk in keys.chunks(EXISTS_CHUNK) {
            let mut reply = self.look_registering(chunk);
            if self.read_only_looks && matches!(&reply, Err(e) if no_read_only_scripts(e)) {
                // Redis 6 has no EVALSHA_RO, and a user from before it may
                // lack the right: its looks are EVALSHA.
                self.read_only_looks = false;
                reply = self.look_registering(chunk);
            }
            found.extend(scripts::found(reply?, chunk.len(), self.link.address())?);
        }
        Ok(found)
    }
}

impl Store for RedisStore {
    /// Subscribed, a watching look registers interest in its keys.
    fn look(&mut self, keys: &[&str], watch: bool) -> Result<Answers, StoreError> {
        let register = watch && self.subscriber.is_some();
        self.looks(keys, register).map(Answers::all)
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

    /// Opens the subscriber and turns tracking on for the data connection
    /// (now, and on any later one as it opens).
    fn subscribe(&mut self) -> Result<bool, StoreError> {
        self.subscriber = None;
        let address = self.link.address().to_owned();
        let subscriber = Subscriber::open(&self.push_client, self.timeout, &address)?;
        let id = subscriber.id();
        // Tracking on for the data connection before the store counts as
        // subscribed: a refusal (a missing right) must not make the
        // connection itself fail to open, and back off, for the looks.
        // Without tracking no message would come: no subscription (and a
        // refusal is for good).
        self.call(|c| tracking::enable(id).exec(c))?;
        self.subscriber = Some(subscriber);
        self.tracked = self.link.opened();
        self.lost = false;
        Ok(true)
    }

    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        if std::mem::take(&mut self.lost) {
            return Ok(Changes::Lost);
        }
        let address = self.link.address().to_owned();
        let Some(subscriber) = self.subscriber.as_mut() else {
            let why = format!("{address}: no subscription");
            return Err(StoreError::new(StoreErrorKind::Unavailable, why));
        };
        subscriber.changes(timeout, &address).inspect_err(|_| {
            // The next subscription opens a new subscriber; the data
            // connection's redirect is set to it then.
            self.subscriber = None;
        })
    }
}

/// Whether a look refused as `EVALSHA_RO` can be sent as `EVALSHA`: the
/// server does not know the command (Redis 6), or the user lacks the
/// right (an ACL written for EVALSHA only).
pub(crate) fn no_read_only_scripts(e: &StoreError) -> bool {
    e.message().contains("unknown command") || e.message().contains("+evalsha_ro")
}
