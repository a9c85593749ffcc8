//! [`RiggedStore`]: the crate's `MemoryStore` with the switches tests need
//! to make faults happen without sleeping: fail, panic, or block at a
//! [`Gate`] until the test lets the call through. It derefs to the
//! `MemoryStore` it wraps (keys, streams) and is a `Connector` like it.

use std::ops::Deref;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use heat_observer::{
    MemoryStore,
    store::{
        Answers, Changes, Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec,
    },
};

/// Which store call a fault or gate applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Exists,
    Append,
}

/// A fault a [`RiggedStore`] can be told to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Return a `StoreError` of kind `Other`.
    Error,
    /// Panic inside the call.
    Panic,
}

#[derive(Debug, Default)]
struct Control {
    faults: [Option<Fault>; 2],
    closed: [bool; 2],
    permits: [u64; 2],
    arrivals: [u64; 2],
    calls: [u64; 2],
    /// Calls that returned (answered by the memory store).
    answered: [u64; 2],
    keys_checked: u64,
    /// Push messages are dropped, as a subscriber that lost them would.
    withhold: bool,
    /// Keys named by the messages dropped so far.
    withheld: u64,
    /// When each `exists` call was entered and when it returned.
    looks: Vec<(Instant, Option<Instant>)>,
}

#[derive(Debug, Default)]
struct Rig {
    control: Mutex<Control>,
    changed: Condvar,
}

#[derive(Debug, Clone, Default)]
pub struct RiggedStore {
    memory: MemoryStore,
    rig: Arc<Rig>,
}

impl Deref for RiggedStore {
    type Target = MemoryStore;
    fn deref(&self) -> &MemoryStore {
        &self.memory
    }
}

impl Rig {
    fn lock(&self) -> MutexGuard<'_, Control> {
        // A panic injected by a test must not poison the rig.
        self.control.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until `done` holds; false if `timeout` passed first.
    fn wait_until(&self, timeout: Duration, done: impl Fn(&Control) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut c = self.lock();
        while !done(&c) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            c = self
                .changed
                .wait_timeout(c, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl RiggedStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes every later `op` call fail or panic (`Some`), or behave (`None`).
    pub fn set_fault(&self, op: Op, fault: Option<Fault>) {
        self.rig.lock().faults[op as usize] = fault;
    }

    /// Closes a gate in front of `op`: calls block on entry until the
    /// returned [`Gate`] lets them through or is dropped.
    pub fn hold(&self, op: Op) -> Gate {
        let mut c = self.rig.lock();
        c.closed[op as usize] = true;
        c.permits[op as usize] = 0;
        Gate {
            rig: Arc::clone(&self.rig),
            op,
            base: c.arrivals[op as usize],
        }
    }

    /// Drops every push message from now on (`true`) or lets them through.
    pub fn withhold_messages(&self, withhold: bool) {
        self.rig.lock().withhold = withhold;
    }

    /// Keys named by the messages dropped so far (while withholding).
    pub fn withheld(&self) -> u64 {
        self.rig.lock().withheld
    }

    /// Number of `op` calls that got past their gate.
    pub fn calls(&self, op: Op) -> u64 {
        self.rig.lock().calls[op as usize]
    }

    /// Waits until `n` `op` calls have returned; false if `timeout` passed
    /// first.
    pub fn wait_answered(&self, op: Op, n: u64, timeout: Duration) -> bool {
        self.rig
            .wait_until(timeout, |c| c.answered[op as usize] >= n)
    }

    /// Counts an `op` call as returned.
    fn answered(&self, op: Op) {
        let mut c = self.rig.lock();
        c.answered[op as usize] += 1;
        if op == Op::Exists
            && let Some(look) = c.looks.last_mut()
        {
            look.1 = Some(Instant::now());
        }
        drop(c);
        self.rig.changed.notify_all();
    }

    /// When each `exists` call was entered and when it returned (`None`
    /// while it has not), in order.
    pub fn look_times(&self) -> Vec<(Instant, Option<Instant>)> {
        self.rig.lock().looks.clone()
    }

    /// Number of keys asked about in all `exists` calls.
    pub fn keys_checked(&self) -> u64 {
        self.rig.lock().keys_checked
    }

    /// Waits at the gate, counts the call, then applies the fault, if any.
    fn enter(&self, op: Op, keys: usize) -> Result<(), StoreError> {
        let i = op as usize;
        let mut c = self.rig.lock();
        c.arrivals[i] += 1;
        self.rig.changed.notify_all();
        while c.closed[i] && c.permits[i] == 0 {
            c = self
                .rig
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
            c.looks.push((Instant::now(), None));
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

impl Store for RiggedStore {
    fn look(&mut self, keys: &[&str], watch: bool) -> Result<Answers, StoreError> {
        self.enter(Op::Exists, keys.len())?;
        let found = self.memory.look(keys, watch);
        self.answered(Op::Exists);
        found
    }

    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        self.enter(Op::Append, 0)?;
        self.memory.claim_and_append(stream, claims)
    }

    fn subscribe(&mut self) -> Result<bool, StoreError> {
        self.memory.subscribe()
    }

    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        let changes = self.memory.changes(timeout)?;
        let mut c = self.rig.lock();
        match changes {
            Changes::Invalidated(keys) if c.withhold => {
                c.withheld += keys.len() as u64;
                Ok(Changes::Quiet)
            }
            other => Ok(other),
        }
    }
}

impl Connector for RiggedStore {
    type Store = RiggedStore;

    fn connect(&self, _worker: usize) -> RiggedStore {
        self.clone()
    }

    fn describe(&self) -> String {
        "rigged memory store".to_owned()
    }
}

/// A closed gate in front of one operation, from [`RiggedStore::hold`].
/// Dropping it opens the gate for good.
#[derive(Debug)]
#[must_use = "dropping the gate opens it at once"]
pub struct Gate {
    rig: Arc<Rig>,
    op: Op,
    base: u64,
}

impl Gate {
    /// Waits until `n` calls have arrived at the gate since it was closed;
    /// false if `timeout` passed first.
    pub fn wait_arrivals(&self, n: u64, timeout: Duration) -> bool {
        let (op, base) = (self.op as usize, self.base);
        self.rig.wait_until(timeout, |c| c.arrivals[op] - base >= n)
    }

    /// Lets `n` more calls through; the gate stays closed behind them.
    pub fn pass(&self, n: u64) {
        self.rig.lock().permits[self.op as usize] += n;
        self.rig.changed.notify_all();
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let mut c = self.rig.lock();
        c.closed[self.op as usize] = false;
        c.permits[self.op as usize] = 0;
        drop(c);
        self.rig.changed.notify_all();
    }
}
