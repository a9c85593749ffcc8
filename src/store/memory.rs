//! [`MemoryStore`]: the store in memory, shared between clones, for tests
//! and simulations. (The crate's own fault-injecting store wraps it in
//! `tests/support/rig.rs`.)

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};

use super::{Changes, Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec};

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

/// An in-memory [`Store`] and [`Connector`]. Clones share one state, so a
/// test or a simulator can write `by_plan` keys while workers read them.
///
/// ```
/// use heat_observer::{MemoryStore, Store};
///
/// let store = MemoryStore::new();
/// store.insert_key("quantum:harvest:heat:by_plan:p1");
/// let mut worker_view = store.clone();
/// let found = worker_view.exists(&["quantum:harvest:heat:by_plan:p1", "other"])?;
/// assert_eq!(found, [true, false]);
/// # Ok::<(), heat_observer::StoreError>(())
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
    /// This clone's subscription (push detection); never shared by clones.
    subscription: Option<Receiver<Changes>>,
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
    /// Who is told of writes under a prefix (push detection).
    subscribers: Mutex<Vec<(String, Sender<Changes>)>>,
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
    /// and tells the subscribers whose prefix it has.
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
    /// tells the subscribers.
    pub fn insert_key_for(&self, key: impl Into<String>, ttl: Duration) {
        let key = key.into();
        let value = Value {
            text: "1".to_owned(),
            expires: Some(Instant::now() + ttl),
        };
        lock(&self.inner.data).keys.insert(key.clone(), value);
        self.notify(&key);
    }

    /// Deletes `key`, and tells the subscribers; returns whether it existed.
    pub fn remove_key(&self, key: &str) -> bool {
        let existed = lock(&self.inner.data).keys.remove(key).is_some();
        self.notify(key);
        existed
    }

    /// Tells every subscriber that messages may have been lost, as a Redis
    /// `FLUSHALL` does.
    pub fn flush_subscribers(&self) {
        lock(&self.inner.subscribers).retain(|(_, tx)| tx.send(Changes::Lost).is_ok());
    }

    fn notify(&self, key: &str) {
        let mut subscribers = lock(&self.inner.subscribers);
        subscribers.retain(|(prefix, tx)| {
            !key.starts_with(prefix.as_str())
                || tx.send(Changes::Keys(vec![key.to_owned()])).is_ok()
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
    fn exists(&mut self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        let now = Instant::now();
        let data = lock(&self.inner.data);
        Ok(keys.iter().map(|k| data.live(k, now).is_some()).collect())
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

    fn watch_prefix(&mut self, prefix: &str) -> Result<bool, StoreError> {
        let (tx, rx) = unbounded();
        lock(&self.inner.subscribers).push((prefix.to_owned(), tx));
        self.subscription = Some(rx);
        Ok(true)
    }

    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        let Some(rx) = &self.subscription else {
            std::thread::sleep(timeout);
            return Ok(Changes::Keys(Vec::new()));
        };
        let mut keys = match rx.recv_timeout(timeout) {
            Ok(Changes::Keys(keys)) => keys,
            Ok(Changes::Lost) => return Ok(Changes::Lost),
            Err(RecvTimeoutError::Timeout) => return Ok(Changes::Keys(Vec::new())),
            Err(RecvTimeoutError::Disconnected) => {
                self.subscription = None;
                let why = "memory store subscription closed";
                return Err(StoreError::new(StoreErrorKind::Unavailable, why));
            }
        };
        // Whatever else is waiting, in one answer.
        for more in rx.try_iter() {
            match more {
                Changes::Keys(more) => keys.extend(more),
                Changes::Lost => return Ok(Changes::Lost),
            }
        }
        Ok(Changes::Keys(keys))
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
mod tests {
    use super::*;
    use crate::{Event, ObsPoint};

    fn event(plan: &str) -> Event {
        Event {
            plan_id: plan.into(),
            symbol: "S".into(),
            obs_point: ObsPoint::PUBLISH_PLAN_POST,
            wait_ms: 1,
            heat_found: true,
            polls: 1,
            max_wait_ms: 2000,
            ts_ms: 0,
            decided_by: crate::Detect::Poll,
        }
    }

    fn spec(maxlen: u64) -> StreamSpec {
        StreamSpec {
            name: "s".into(),
            maxlen,
            dedupe_ttl: Duration::from_secs(60),
        }
    }

    #[test]
    fn claims_dedupe_recognise_their_owner_and_trim() {
        let mut store = MemoryStore::new();
        let (a, b, c) = (event("a"), event("b"), event("c"));
        let claim = |e, key, owner| Claim {
            dedupe_key: key,
            owner,
            event: e,
        };
        let first = store
            .claim_and_append(&spec(2), &[claim(&a, "d:a", "o1"), claim(&b, "d:b", "o1")])
            .unwrap();
        assert_eq!(first, [Claimed::Appended, Claimed::Appended]);
        // The same owner retrying (reply lost) is not a duplicate; another is.
        let again = store
            .claim_and_append(&spec(2), &[claim(&a, "d:a", "o1"), claim(&a, "d:a", "o2")])
            .unwrap();
        assert_eq!(again, [Claimed::Appended, Claimed::Duplicate]);
        assert_eq!(store.stream_len("s"), 2);
        store
            .claim_and_append(&spec(2), &[claim(&c, "d:c", "o1")])
            .unwrap();
        let ids: Vec<_> = store
            .entries("s")
            .iter()
            .map(|e| e.field("plan_id").unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["b", "c"]);
        let ttl = store.ttl("d:a").unwrap();
        assert!(ttl <= Duration::from_secs(60) && ttl > Duration::from_secs(50));
    }
}
