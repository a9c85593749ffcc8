//! [`MemoryStore`]: the store in memory, shared between clones, with the
//! switches tests need to make faults happen without sleeping: fail, panic,
//! or block at a [`Gate`] until the test lets the call through.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::{Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec};

/// Which store call a fault or gate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Store::exists`].
    Exists,
    /// [`Store::claim_and_append`].
    Append,
}

impl Op {
    fn index(self) -> usize {
        match self {
            Op::Exists => 0,
            Op::Append => 1,
        }
    }
}

/// A fault a [`MemoryStore`] can be told to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Return a [`StoreError`] of kind [`StoreErrorKind::Other`].
    Error,
    /// Panic inside the call.
    Panic,
}

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
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    data: Mutex<Data>,
    control: Mutex<Control>,
    changed: Condvar,
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

#[derive(Debug, Default)]
struct Control {
    faults: [Option<Fault>; 2],
    closed: [bool; 2],
    permits: [u64; 2],
    arrivals: [u64; 2],
    calls: [u64; 2],
    keys_checked: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic injected by a test must not poison the store for later calls.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes `key` (as HeatBridge writes a `by_plan` key), with no expiry.
    pub fn insert_key(&self, key: impl Into<String>) {
        lock(&self.inner.data).keys.insert(
            key.into(),
            Value {
                text: "1".to_owned(),
                expires: None,
            },
        );
    }

    /// Deletes `key`; returns whether it existed.
    pub fn remove_key(&self, key: &str) -> bool {
        lock(&self.inner.data).keys.remove(key).is_some()
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

    /// Makes every later `op` call fail or panic (`Some`), or behave (`None`).
    pub fn set_fault(&self, op: Op, fault: Option<Fault>) {
        lock(&self.inner.control).faults[op.index()] = fault;
    }

    /// Closes a gate in front of `op`: calls block on entry until the
    /// returned [`Gate`] lets them through or is dropped.
    pub fn hold(&self, op: Op) -> Gate {
        let mut c = lock(&self.inner.control);
        c.closed[op.index()] = true;
        c.permits[op.index()] = 0;
        Gate {
            store: self.clone(),
            op,
            base: c.arrivals[op.index()],
        }
    }

    /// Number of `op` calls that got past their gate.
    pub fn calls(&self, op: Op) -> u64 {
        lock(&self.inner.control).calls[op.index()]
    }

    /// Number of keys asked about in all [`Store::exists`] calls.
    pub fn keys_checked(&self) -> u64 {
        lock(&self.inner.control).keys_checked
    }

    /// Waits at the gate, counts the call, then applies the fault, if any.
    fn enter(&self, op: Op, keys: usize) -> Result<(), StoreError> {
        let i = op.index();
        let mut c = lock(&self.inner.control);
        c.arrivals[i] += 1;
        self.inner.changed.notify_all();
        while c.closed[i] && c.permits[i] == 0 {
            c = self
                .inner
                .changed
                .wait(c)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if c.closed[i] {
            c.permits[i] -= 1;
        }
        c.calls[i] += 1;
        if op == Op::Exists {
            c.keys_checked += keys as u64;
        }
        let fault = c.faults[i];
        drop(c);
        match fault {
            None => Ok(()),
            Some(Fault::Error) => Err(StoreError::new(
                StoreErrorKind::Other,
                format!("injected {op:?} failure"),
            )),
            Some(Fault::Panic) => panic!("injected {op:?} panic"),
        }
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
        self.enter(Op::Exists, keys.len())?;
        let now = Instant::now();
        let data = lock(&self.inner.data);
        Ok(keys.iter().map(|k| data.live(k, now).is_some()).collect())
    }

    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        self.enter(Op::Append, 0)?;
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

/// A closed gate in front of one [`MemoryStore`] operation, from
/// [`MemoryStore::hold`]. Dropping it opens the gate for good.
#[derive(Debug)]
#[must_use = "dropping the gate opens it at once"]
pub struct Gate {
    store: MemoryStore,
    op: Op,
    base: u64,
}

impl Gate {
    /// Waits until `n` calls have arrived at the gate since it was closed;
    /// false if `timeout` passed first.
    pub fn wait_arrivals(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let inner = &self.store.inner;
        let mut c = lock(&inner.control);
        while c.arrivals[self.op.index()] - self.base < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            c = inner
                .changed
                .wait_timeout(c, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Lets `n` more calls through; the gate stays closed behind them.
    pub fn pass(&self, n: u64) {
        lock(&self.store.inner.control).permits[self.op.index()] += n;
        self.store.inner.changed.notify_all();
    }

    /// Opens the gate (same as dropping it).
    pub fn open(self) {}
}

impl Drop for Gate {
    fn drop(&mut self) {
        let mut c = lock(&self.store.inner.control);
        c.closed[self.op.index()] = false;
        c.permits[self.op.index()] = 0;
        drop(c);
        self.store.inner.changed.notify_all();
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

    #[test]
    fn faults_and_gates_apply_to_their_operation_only() {
        let mut store = MemoryStore::new();
        store.set_fault(Op::Append, Some(Fault::Error));
        assert!(store.exists(&["k"]).is_ok());
        assert!(store.claim_and_append(&spec(10), &[]).is_err());
        store.set_fault(Op::Append, None);
        assert!(store.claim_and_append(&spec(10), &[]).is_ok());

        let gate = store.hold(Op::Exists);
        let mut worker = store.clone();
        let t = std::thread::spawn(move || worker.exists(&["k"]).unwrap());
        assert!(gate.wait_arrivals(1, Duration::from_secs(5)));
        assert_eq!(
            store.calls(Op::Exists),
            1,
            "the held call has not passed yet"
        );
        gate.pass(1);
        assert_eq!(t.join().unwrap(), [false]);
        assert_eq!(store.calls(Op::Exists), 2);
        assert!(!gate.wait_arrivals(2, Duration::from_millis(1)));
    }
}
