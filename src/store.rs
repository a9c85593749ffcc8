//! The seam between the workers and Redis: what a worker needs, in batches,
//! and what the Redis store reports.
//!
//! A [`Connector`] makes one [`Store`] per worker thread (on that thread, with
//! no I/O: stores connect lazily). A store answers two batched questions per
//! tick: which of these keys exist, and "claim these dedupe keys and append
//! one event per claim won". [`MemoryStore`] implements both traits in memory;
//! everything Redis-specific lives in `store/redis`.
//!
//! **Stability.** A service needs none of this module but [`StoreError`]
//! (what [`RedisConnector::check_rights`](crate::RedisConnector::check_rights)
//! and the logs report) and [`StreamEntry`], what [`MemoryStore`] holds.
//! The traits and their types (`Store`, `Connector`, `Answers`, `Changes`,
//! `Claim`, `Claimed`, `StreamSpec`, `Event`, `StoreErrorKind`) are for
//! those who write a store of their own (a test double, another database):
//! they are hidden from these docs and may change in a minor release, with
//! a note in the changelog.

pub(crate) mod memory;
pub(crate) mod redis;

use std::fmt;
use std::time::{Duration, Instant};

#[doc(hidden)]
pub use crate::event::Event;
pub use memory::{MemoryStore, StreamEntry};

/// One worker's access to the key-value store. Calls may block, but should
/// be bounded by the store's own timeouts; a call that panics is caught by
/// the worker, its jobs are counted as panicked, and the store is replaced
/// with a fresh one from the [`Connector`].
#[doc(hidden)]
pub trait Store: Send {
    /// Whether each key exists, in the order given, one answer per key.
    /// A store whose keys live on several nodes (a cluster) answers the
    /// keys whose node answered and leaves the others `None`, with the
    /// error that kept them from it. With `watch` (push detection, after
    /// [`Store::subscribe`] said yes), it also registers interest in each
    /// key (also in one that does not exist), so that its next change is
    /// told through [`Store::changes`], once.
    ///
    /// # Errors
    /// A [`StoreError`] when no key could be answered; the worker keeps the
    /// jobs and looks again.
    fn look(&mut self, keys: &[&str], watch: bool) -> Result<Answers, StoreError>;

    /// For each claim, in order: set its dedupe key (only if absent, with the
    /// stream's TTL, holding the claim's owner token) and, if that won,
    /// append its event to the stream, trimmed to about `stream.maxlen`.
    /// Claim and append are atomic together. A dedupe key already holding
    /// the same owner token counts as [`Claimed::Appended`]: it is this
    /// observer's own earlier attempt whose reply was lost.
    ///
    /// # Errors
    /// A [`StoreError`] when the outcome is unknown; the worker retries the
    /// same claims later, which the owner token makes safe.
    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Push detection: asks to be told, through [`Store::changes`], when a
    /// key this store watches with [`Store::look`] from now on is
    /// written. One message comes per key, after which its interest is
    /// spent until it is watched again. `Ok(false)` (the default) when
    /// this store cannot push: the worker polls.
    ///
    /// # Errors
    /// A [`StoreError`] of kind [`StoreErrorKind::Server`],
    /// [`StoreErrorKind::Permission`] or [`StoreErrorKind::Auth`] when the
    /// server refuses (too old, an ACL without the rights): the worker
    /// polls for good. Other errors: it polls and asks again later.
    fn subscribe(&mut self) -> Result<bool, StoreError> {
        Ok(false)
    }

    /// Push detection: waits up to `timeout` for messages about the keys
    /// this store registered. Called only after [`Store::subscribe`] said
    /// yes. A zero `timeout` takes what has come, without waiting.
    ///
    /// # Errors
    /// A [`StoreError`] when the subscription broke: messages may have been
    /// lost, and the worker asks again with [`Store::subscribe`].
    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        std::thread::sleep(timeout);
        Ok(Changes::Quiet)
    }
}

/// What [`Store::look`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(hidden)]
pub struct Answers {
    /// Per key, in the order asked: whether it exists, or `None` when its
    /// node did not answer.
    pub found: Vec<Option<bool>>,
    /// Why some keys were not answered.
    pub failed: Option<StoreError>,
    /// Per key, when known: a moment by which its node had looked (from
    /// the node's clock), earlier than the answer's arrival. Missing (or
    /// shorter than `found`): the arrival bounds it.
    pub looked_by: Vec<Option<Instant>>,
}

impl Answers {
    /// Every key answered.
    pub fn all(found: Vec<bool>) -> Answers {
        Answers {
            found: found.into_iter().map(Some).collect(),
            failed: None,
            looked_by: Vec::new(),
        }
    }

    /// Whether each key exists, or the error if any key went unanswered.
    ///
    /// # Errors
    /// The error that kept a key unanswered.
    pub fn whole(self) -> Result<Vec<bool>, StoreError> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(self.found.into_iter().map(|f| f == Some(true)).collect()),
        }
    }
}

/// What [`Store::changes`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
#[doc(hidden)]
pub enum Changes {
    /// Nothing within the timeout.
    Quiet,
    /// These keys were invalidated: written, deleted or expired, or dropped
    /// from the server's tracking table when it was full. Not a proof of a
    /// write: the worker confirms with a look.
    Invalidated(Vec<String>),
    /// Messages may have been lost (the server flushed its keys, a
    /// connection was rebuilt and the registered interest with it): every
    /// watched key must be looked at again.
    Lost,
}

/// Makes the [`Store`] of each worker. Called on the worker's thread when it
/// starts and again after a store panicked; it must not block.
#[doc(hidden)]
pub trait Connector: Send + Sync + 'static {
    /// The store it makes.
    type Store: Store + 'static;

    /// A store for worker `worker` (0-based). Connecting, if any, happens
    /// lazily inside the store's calls.
    fn connect(&self, worker: usize) -> Self::Store;

    /// A description for logs, such as `redis 10.0.0.5:6379`; never
    /// credentials.
    fn describe(&self) -> String;
}

/// Where events go: the stream, its approximate length, the dedupe TTL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[doc(hidden)]
pub struct StreamSpec {
    /// The stream name.
    pub name: String,
    /// Approximate maximum length (`MAXLEN ~`).
    pub maxlen: u64,
    /// Lifetime of each dedupe key.
    pub dedupe_ttl: Duration,
}

/// One event to append if its dedupe key can be claimed.
#[derive(Debug, Clone, Copy)]
#[doc(hidden)]
pub struct Claim<'a> {
    /// The key that makes the event unique per `(plan_id, obs_point)`.
    pub dedupe_key: &'a str,
    /// A token unique to this attempt's event, stored as the key's value.
    pub owner: &'a str,
    /// The event to append.
    pub event: &'a Event,
}

/// What became of one [`Claim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[doc(hidden)]
pub enum Claimed {
    /// The event is in the stream (appended now or by an earlier attempt
    /// with the same owner).
    Appended,
    /// Someone else already recorded this `(plan_id, obs_point)`.
    Duplicate,
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

/// The broad class of a [`StoreError`], for those who write a store (the
/// `kind` label of `p28_store_errors_total` names it for everyone else).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// No connection could be made, or reconnecting is backing off.
    Unavailable,
    /// The server did not answer within the timeout.
    Timeout,
    /// The connection broke.
    Io,
    /// The server answered with an error.
    Server,
    /// A reply that does not fit the request.
    Protocol,
    /// The server refused the credentials (`WRONGPASS`, a user that is
    /// off): an operator's error, said every warning interval.
    Auth,
    /// The user lacks a right the call needs (`NOPERM`): an operator's
    /// error, said every warning interval.
    Permission,
    /// The database index in the URL does not exist on the server: an
    /// operator's error, said every warning interval.
    Database,
    /// Anything else, including faults injected in tests.
    Other,
}

impl StoreErrorKind {
    /// Every kind, in the order of the `kind` label of
    /// `p28_store_errors_total`.
    pub const ALL: [StoreErrorKind; 9] = [
        StoreErrorKind::Unavailable,
        StoreErrorKind::Timeout,
        StoreErrorKind::Io,
        StoreErrorKind::Server,
        StoreErrorKind::Protocol,
        StoreErrorKind::Auth,
        StoreErrorKind::Permission,
        StoreErrorKind::Database,
        StoreErrorKind::Other,
    ];

    /// The `kind` label of `p28_store_errors_total`: `unavailable`,
    /// `timeout`, `io`, `server`, `protocol`, `auth`, `permission`,
    /// `database` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Timeout => "timeout",
            StoreErrorKind::Io => "io",
            StoreErrorKind::Server => "server",
            StoreErrorKind::Protocol => "protocol",
            StoreErrorKind::Auth => "auth",
            StoreErrorKind::Permission => "permission",
            StoreErrorKind::Database => "database",
            StoreErrorKind::Other => "other",
        }
    }

    /// Whether this kind is an operator's error (credentials, rights, the
    /// database index) rather than a fault that passes.
    pub fn is_configuration(self) -> bool {
        matches!(
            self,
            StoreErrorKind::Auth | StoreErrorKind::Permission | StoreErrorKind::Database
        )
    }

    pub(crate) fn index(self) -> usize {
        Self::ALL.iter().position(|k| *k == self).unwrap_or(8)
    }
}

impl StoreError {
    /// An error of `kind` described by `message`.
    #[doc(hidden)]
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Its class.
    #[doc(hidden)]
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Its description.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            StoreErrorKind::Unavailable => "store unavailable",
            StoreErrorKind::Timeout => "store timed out",
            StoreErrorKind::Io => "store connection broke",
            StoreErrorKind::Server => "store refused the command",
            StoreErrorKind::Protocol => "unexpected store reply",
            StoreErrorKind::Auth => "store refused the credentials",
            StoreErrorKind::Permission => "store refused a right",
            StoreErrorKind::Database => "store has no such database",
            StoreErrorKind::Other => "store error",
        };
        write!(f, "{kind}: {}", self.message)
    }
}

impl std::error::Error for StoreError {}
