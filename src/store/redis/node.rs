//! [`Node`]: one Redis server as a worker uses it, the one path by which a
//! connection is opened, configured and retried. The standalone store has
//! one; the cluster store one per master (and per node it asks for the slot
//! map or follows an `ASK` to).
//!
//! * The data connection opens lazily with a connect timeout, gets read and
//!   write timeouts (connect clears them) and, while push detection is on,
//!   `CLIENT TRACKING ... REDIRECT` to the subscriber; after any error but a
//!   server's reply it is dropped and reopened with backoff ([`Link`]).
//! * Looks are pipelined `EXISTS` ([`send_exists`]), registering
//!   interest in their keys when asked, then `TIME`: when the server
//!   looked, on the worker's clock ([`ServerClock`]).
//! * A data connection replaced while subscribed has lost the interest its
//!   looks registered: [`Node::changes`] says `Lost` once.

use std::time::{Duration, Instant};

use redis::{Client, Connection, ConnectionInfo, ProtocolVersion, RedisResult};

use super::link::Link;
use super::pipelined::{PerKey, read_exists, send_exists};
use super::server_clock::ServerClock;
use super::tracking::{self, Subscriber};
use crate::store::{Changes, StoreError, StoreErrorKind};

/// How to reach one server: a client for calls, a RESP3 one for the
/// subscriber, the timeout, and what errors name.
#[derive(Clone)]
pub(crate) struct Endpoint {
    client: Client,
    push_client: Client,
    timeout: Duration,
    /// `host:port` or `unix:/path`: errors and logs name it, never the URL.
    address: String,
    /// The URL's user, for "authentication failed for user ...".
    user: Option<String>,
    /// A cluster replica read in its master's place: `READONLY` on each
    /// connection, so that it answers reads of its master's slots. Never
    /// on a master's connection: a master demoted by a failover would
    /// then answer from its copy instead of redirecting (`MOVED`), and
    /// the store would not learn of the failover.
    readonly: bool,
}

#[cfg(feature = "tls")]
pub(crate) type Certs = Option<super::tls::TlsCerts>;
#[cfg(not(feature = "tls"))]
pub(crate) type Certs = Option<std::convert::Infallible>;

impl Endpoint {
    pub(crate) fn new(
        info: ConnectionInfo,
        address: String,
        timeout: Duration,
        #[cfg_attr(not(feature = "tls"), allow(unused_variables))] certs: Certs,
    ) -> RedisResult<Endpoint> {
        let user = info.redis_settings().username().map(str::to_owned);
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let push = info.clone().set_redis_settings(settings);
        let open = |info| {
            #[cfg(feature = "tls")]
            if let Some(certs) = &certs {
                return Client::build_with_tls(info, certs.clone().into_redis());
            }
            Client::open(info)
        };
        Ok(Endpoint {
            client: open(info)?,
            push_client: open(push)?,
            timeout,
            address,
            user,
            readonly: false,
        })
    }

    /// The same server as a replica to read (see `readonly`).
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn readonly(self) -> Endpoint {
        Endpoint {
            readonly: true,
            ..self
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A new connection with the timeouts set.
    pub(crate) fn open(&self) -> RedisResult<Connection> {
        let mut c = self.client.get_connection_with_timeout(self.timeout)?;
        c.set_read_timeout(Some(self.timeout))?;
        c.set_write_timeout(Some(self.timeout))?;
        if self.readonly {
            // Refused (an ACL without `+readonly`, a server without
            // cluster mode): the node still serves its own slots.
            match redis::cmd("READONLY").exec(&mut c) {
                Err(e) if !super::link::is_server_reply(&e) => return Err(e),
                _ => {}
            }
        }
        Ok(c)
    }
}

/// A look sent by [`Node::send_look`], its answers still to be read.
#[must_use = "its answers must be read before the node is used again"]
pub(crate) struct SentLook {
    keys: usize,
    register: bool,
    time: bool,
    sent: Instant,
    /// The connection (by `Link::opened`) it was sent on.
    connection: u64,
}

/// One server's data connection and, with push detection, its subscriber.
pub(crate) struct Node {
    endpoint: Endpoint,
    link: Link<Connection>,
    subscriber: Option<Subscriber>,
    /// The data connection (by `Link::opened`) whose looks register
    /// interest for the subscriber.
    tracked: u64,
    /// The data connection was replaced while subscribed.
    lost: bool,
    clock: ServerClock,
    /// The server refused `TIME` (an ACL without `+time`): looks are
    /// bounded by their arrival.
    no_time: bool,
}

impl Node {
    pub(crate) fn new(endpoint: Endpoint) -> Node {
        let link = Link::new(endpoint.address.clone(), endpoint.user.clone());
        Node {
            endpoint,
            link,
            subscriber: None,
            tracked: 0,
            lost: false,
            clock: ServerClock::new(),
            no_time: false,
        }
    }

    /// A cluster node: it reconnects at every call instead of backing
    /// off. Its slots move to another node when it fails, and a backoff
    /// kept it unused after it came back: with a 250 ms cap, 150 s of
    /// cluster chaos in push left 356 late observations without an event
    /// across 3 paused masters, 16 without.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn eager(mut self) -> Node {
        self.link = self.link.eager();
        self
    }

    pub(crate) fn address(&self) -> &str {
        self.link.address()
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.link.is_connected()
    }

    /// `f` on the data connection, opened (with tracking redirected to the
    /// subscriber, when subscribed) if need be.
    pub(crate) fn call<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.on_link(f, true)
    }

    /// `f` on the data connection; `reads`: whether `f` reads an answer
    /// (a write alone proves no connection, see [`Link::send`]).
    fn on_link<T>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> RedisResult<T>,
        reads: bool,
    ) -> Result<T, StoreError> {
        let endpoint = &self.endpoint;
        let redirect = self.subscriber.as_ref().map(Subscriber::id);
        let open = || {
            let mut c = endpoint.open()?;
            if let Some(id) = redirect {
                tracking::enable(id).exec(&mut c)?;
            }
            Ok(c)
        };
        let answer = match reads {
            true => self.link.call(open, f),
            false => self.link.send(open, f),
        };
        if self.subscriber.is_some() && self.link.opened() != self.tracked {
            self.tracked = self.link.opened();
            self.lost = true;
        }
        answer
    }

    /// Whether each key exists, each its own answer (a key's error is a
    /// redirect or a refusal), and the moment by which the server had
    /// looked at them all; with `register`, interest in each key is
    /// registered with the subscriber.
    pub(crate) fn look(
        &mut self,
        keys: &[&str],
        register: bool,
    ) -> Result<(PerKey, Instant), StoreError> {
        let sent = self.send_look(keys, register)?;
        self.read_look(sent)
    }

    /// [`Node::look`]'s first half: the look sent, its answers unread.
    /// Nothing else may use the node until [`Node::read_look`] has read
    /// them.
    pub(crate) fn send_look(
        &mut self,
        keys: &[&str],
        register: bool,
    ) -> Result<SentLook, StoreError> {
        let register = register && self.subscriber.is_some();
        let time = !self.no_time;
        let send = |c: &mut Connection| {
            let sent = Instant::now();
            send_exists(c, keys, register, time).map(|()| sent)
        };
        let sent = self.on_link(send, false)?;
        Ok(SentLook {
            keys: keys.len(),
            register,
            time,
            sent,
            connection: self.link.opened(),
        })
    }

    /// [`Node::look`]'s second half: the answers to `look`.
    pub(crate) fn read_look(&mut self, look: SentLook) -> Result<(PerKey, Instant), StoreError> {
        if !self.link.is_connected() || self.link.opened() != look.connection {
            // Not on a connection opened since: it would wait for answers
            // to a look it never saw.
            let why = format!("{}: the look's connection is gone", self.address());
            return Err(StoreError::new(StoreErrorKind::Io, why));
        }
        let (found, time) = self.call(|c| read_exists(c, look.keys, look.register, look.time))?;
        let arrived = Instant::now();
        let by = match time {
            Some(Ok(us)) => self.clock.read_by(us, look.sent, arrived),
            Some(Err(e)) => {
                self.no_time = super::link::is_server_reply(&e);
                arrived
            }
            None => arrived,
        };
        Ok((found, by))
    }

    /// Opens the subscriber and turns tracking on for the data connection
    /// (now, and on any later one as it opens).
    pub(crate) fn subscribe(&mut self) -> Result<(), StoreError> {
        self.subscriber = None;
        let subscriber = Subscriber::open(
            &self.endpoint.push_client,
            self.endpoint.timeout,
            &self.endpoint.address,
        )?;
        let id = subscriber.id();
        // Tracking on for the data connection before the node counts as
        // subscribed: a refusal (a missing right) must not make the
        // connection itself fail to open, and back off, for the looks.
        self.call(|c| tracking::enable(id).exec(c))?;
        self.subscriber = Some(subscriber);
        self.tracked = self.link.opened();
        self.lost = false;
        Ok(())
    }

    pub(crate) fn is_subscribed(&self) -> bool {
        self.subscriber.is_some()
    }

    /// Drops the subscriber (it broke) and the data connection whose
    /// tracking it was the target of: its looks open anew, plain until the
    /// next [`Node::subscribe`].
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn unsubscribe(&mut self) {
        self.subscriber = None;
        self.link.close();
    }

    /// Whether the interest the looks registered was lost since asked last.
    pub(crate) fn take_lost(&mut self) -> bool {
        std::mem::take(&mut self.lost)
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn subscriber(&mut self) -> Option<&mut Subscriber> {
        self.subscriber.as_mut()
    }

    /// Waits up to `timeout` for messages; `Lost` first if the interest
    /// was lost. A broken subscriber is dropped (the next subscription
    /// opens a new one, and the data connection's redirect is set to it).
    pub(crate) fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        if self.take_lost() {
            return Ok(Changes::Lost);
        }
        let address = &self.endpoint.address;
        let Some(subscriber) = self.subscriber.as_mut() else {
            let why = format!("{address}: no subscription");
            return Err(StoreError::new(StoreErrorKind::Unavailable, why));
        };
        subscriber
            .changes(timeout, address)
            .inspect_err(|_| self.subscriber = None)
    }
}
