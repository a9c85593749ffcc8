//! [`MemoryStore`]: the store in memory, shared between clones, for tests
//! and simulations. (The crate's own fault-injecting store wraps it in
//! `tests/support/rig.rs`.)

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use super::{
    Answers, Changes, Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec,
};

/// One entry of a stream kept by a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamEntry {
    /// The entry id, `"{n}-0"`, increasing.
    pub id: String,
    /// The fields in the order they were written.
    pub fields: Vec<(String, String)>,
}

impl StreamEntry {
    /// The value of field `name`, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The store in memory, in place of Redis (give it to
/// [`LateObserver::start`](crate::LateObserver::start)). Clones share one
/// state, so a test or a simulator can write `by_plan` keys while workers
/// read them.
///
/// Push detection works as Redis's client tracking does: a key a worker
/// looks at while pushing is told to it once, at its next change (a write
/// or a deletion).
///
/// ```
/// use heat_observer::{MemoryStore, store::Store};
///
/// let store = MemoryStore::new();
/// store.insert_key("quantum:harvest:heat:by_plan:p1");
/// let mut worker_view = store.clone();
/// let answers = worker_view.look(&["quantum:harvest:heat:by_plan:p1", "other"], false)?;
/// assert_eq!(answers.whole()?, [true, false]);
/// # Ok::<(), heat_observer::store::StoreError>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
    /// This clone's subscription (push detection): its id among the
    /// subscribers, and where its messages come. Never shared by clones.
    subscription: Option<(u64, Receiver<Changes>)>,
}

impl Clone for MemoryStore {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            subscription: None,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    data: Mutex<Data>,
    /// Who is told of changes to the keys they looked at (push detection).
    subscribers: Mutex<Subscribers>,
}

#[derive(Debug, Default)]
struct Subscribers {
    next_id: u64,
    list: Vec<Subscriber>,
}

#[derive(Debug)]
struct Subscriber {
    id: u64,
    tx: Sender<Changes>,
    /// Keys looked at since their last change.
    interest: HashSet<String>,
}

#[derive(Debug, Default)]
struct Data {
    keys: HashMap<String, Value>,
    streams: HashMap<String, VecDeque<StreamEntry>>,
    next_entry: u64,
}

#[derive(Debug)]
struct Value {
    text: String,
    expires: Option<Instant>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic in a caller's thread must not poison the store for the others.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `key` (as HeatBridge writes a `by_plan` key), with no expiry,
    /// and tells the subscribers that looked at it.
    pub fn insert_key(&self, key: impl Into<String>) {
        let key = key.into();
        lock(&self.inner.data).keys.insert(
            key.clone(),
            Value {
                text: "1".to_owned(),
                expires: None,
            },
        );
        self.notify(&key);
    }

    /// Writes `key` to live for `ttl` (a key that "expires quickly"), and
    /// tells the subscribers that looked at it.
    pub fn insert_key_for(&self, key: impl Into<String>, ttl: Duration) {
        let key = key.into();
        let value = Value {
            text: "1".to_owned(),
            expires: Some(Instant::now() + ttl),
        };
        lock(&self.inner.data).keys.insert(key.clone(), value);
        self.notify(&key);
    }

    /// Deletes `key`, and tells the subscribers that looked at it; returns
    /// whether it existed.
    pub fn remove_key(&self, key: &str) -> bool {
        let existed = lock(&self.inner.data).keys.remove(key).is_some();
        self.notify(key);
        existed
    }

    /// Tells every subscriber that messages may have been lost, as a Redis
    /// `FLUSHALL` does, and forgets every interest.
    pub fn flush_subscribers(&self) {
        lock(&self.inner.subscribers).list.retain_mut(|s| {
            s.interest.clear();
            s.tx.send(Changes::Lost).is_ok()
        });
    }

    fn notify(&self, key: &str) {
        lock(&self.inner.subscribers).list.retain_mut(|s| {
            if !s.interest.remove(key) {
                return true;
            }
            s.tx.send(Changes::Invalidated(vec![key.to_owned()]))
                .is_ok()
        });
    }

    /// Whether `key` exists (and has not expired).
    pub fn contains_key(&self, key: &str) -> bool {
        lock(&self.inner.data).live(key, Instant::now()).is_some()
    }

    /// The value of `key`, if it exists.
    pub fn get(&self, key: &str) -> Option<String> {
        let data = lock(&self.inner.data);
        data.live(key, Instant::now()).map(|v| v.text.clone())
    }

    /// Time left before `key` expires; `None` if it does not exist or never
    /// expires.
    pub fn ttl(&self, key: &str) -> Option<Duration> {
        let now = Instant::now();
        let data = lock(&self.inner.data);
        data.live(key, now)?.expires.map(|at| at - now)
    }

    /// The entries of `stream`, oldest first.
    pub fn entries(&self, stream: &str) -> Vec<StreamEntry> {
        lock(&self.inner.data)
            .streams
            .get(stream)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of entries in `stream`.
    pub fn stream_len(&self, stream: &str) -> usize {
        lock(&self.inner.data)
            .streams
            .get(stream)
            .map_or(0, VecDeque::len)
    }
}

impl Data {
    fn live(&self, key: &str, now: Instant) -> Option<&Value> {
        self.keys
            .get(key)
            .filter(|v| v.expires.is_none_or(|at| at > now))
    }
}

impl Store for MemoryStore {
    fn look(&mut self, keys: &[&str], watch: bool) -> Result<Answers, StoreError> {
        let now = Instant::now();
        let data = lock(&self.inner.data);
        let answers = Answers::all(keys.iter().map(|k| data.live(k, now).is_some()).collect());
        drop(data);
        if let Some((id, _)) = self.subscription.as_ref().filter(|_| watch) {
            let mut subscribers = lock(&self.inner.subscribers);
            if let Some(s) = subscribers.list.iter_mut().find(|s| s.id == *id) {
                s.interest.extend(keys.iter().map(|k| (*k).to_owned()));
            }
        }
        Ok(answers)
    }

    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        let now = Instant::now();
        let mut data = lock(&self.inner.data);
        let mut out = Vec::with_capacity(claims.len());
        for claim in claims {
            if let Some(held) = data.live(claim.dedupe_key, now) {
                out.push(if held.text == claim.owner {
                    Claimed::Appended
                } else {
                    Claimed::Duplicate
                });
                continue;
            }
            data.keys.insert(
                claim.dedupe_key.to_owned(),
                Value {
                    text: claim.owner.to_owned(),
                    expires: Some(now + stream.dedupe_ttl),
                },
            );
            data.next_entry += 1;
            let entry = StreamEntry {
                id: format!("{}-0", data.next_entry),
                fields: claim
                    .event
                    .fields()
                    .into_iter()
                    .map(|(n, v)| (n.to_owned(), v))
                    .collect(),
            };
            let entries = data.streams.entry(stream.name.clone()).or_default();
            entries.push_back(entry);
            while entries.len() as u64 > stream.maxlen {
                entries.pop_front();
            }
            out.push(Claimed::Appended);
        }
        Ok(out)
    }

    fn subscribe(&mut self) -> Result<bool, StoreError> {
        let (tx, rx) = unbounded();
        let mut subscribers = lock(&self.inner.subscribers);
        subscribers.next_id += 1;
        let id = subscribers.next_id;
        subscribers.list.push(Subscriber {
            id,
            tx,
            interest: HashSet::new(),
        });
        self.subscription = Some((id, rx));
        Ok(true)
    }

    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        let Some((_, rx)) = &self.subscription else {
            std::thread::sleep(timeout);
            return Ok(Changes::Quiet);
        };
        match rx.recv_timeout(timeout) {
            Ok(change) => Ok(change),
            Err(RecvTimeoutError::Timeout) => Ok(Changes::Quiet),
            Err(RecvTimeoutError::Disconnected) => {
                self.subscription = None;
                let why = "memory store subscription closed";
                Err(StoreError::new(StoreErrorKind::Unavailable, why))
            }
        }
    }
}

impl Connector for MemoryStore {
    type Store = MemoryStore;

    fn connect(&self, _worker: usize) -> MemoryStore {
        self.clone()
    }

    fn describe(&self) -> String {
        "memory store".to_owned()
    }
}

#[cfg(test)]
mod tests;
