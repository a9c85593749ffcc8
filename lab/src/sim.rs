//! The simulated HeatGate + HeatBridge of the examples: after a plan is
//! published, its `by_plan` key is written after a delay drawn from a
//! lognormal distribution (seeded, so runs repeat), or never, for a share of
//! plans (`missing_inputs`). The bridge records when each key was really
//! written, which gives the best coverage possible for a run (the bound).
// Each example uses a part of this module.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, unbounded};
use heat_observer::MemoryStore;

use super::audit::SLACK_MS;
use super::target::Target;

/// SplitMix64: small, seedable, good enough to draw delays.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    pub fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Bridge delays: lognormal around a median, and a share of plans with no
/// key at all.
pub struct Delays {
    median_ms: f64,
    sigma: f64,
    missing: f64,
    rng: Rng,
}

impl Delays {
    pub fn new(median_ms: f64, sigma: f64, missing_pct: f64, seed: u64) -> Self {
        Delays {
            median_ms,
            sigma,
            missing: missing_pct / 100.0,
            rng: Rng::new(seed),
        }
    }

    /// The delay from publish to the key, or `None` if it never comes.
    pub fn draw(&mut self) -> Option<Duration> {
        let missing = self.rng.unit() <= self.missing;
        let ms = self.median_ms * (self.sigma * self.rng.normal()).exp();
        (!missing).then(|| Duration::from_secs_f64(ms / 1000.0))
    }
}

/// Where the bridge writes keys, and how long they live (`None`: an hour).
pub enum Sink {
    Memory(MemoryStore, Option<Duration>),
    /// Redis or a cluster; the connection is opened on first use and again
    /// after an error (Redis may be restarted under the bridge).
    Redis(
        Target,
        Option<Box<dyn redis::ConnectionLike + Send>>,
        Option<Duration>,
    ),
}

impl Sink {
    pub fn new(target: &Target, memory: &MemoryStore) -> Sink {
        match target {
            Target::Memory => Sink::Memory(memory.clone(), None),
            other => Sink::Redis(other.clone(), None, None),
        }
    }

    /// Keys live `ttl` (`None`: an hour), as HeatBridge's may "expire quickly".
    pub fn key_ttl(self, ttl: Option<Duration>) -> Sink {
        match self {
            Sink::Memory(store, _) => Sink::Memory(store, ttl),
            Sink::Redis(target, con, _) => Sink::Redis(target, con, ttl),
        }
    }

    /// Writes `keys` (one round trip on a single Redis, one per key on a
    /// cluster); returns whether it worked. Redis gets `PSETEX`, a command
    /// nothing else here sends, so a benchmark can tell the bridge's commands
    /// from the observer's.
    fn write(&mut self, keys: &[String]) -> bool {
        match self {
            Sink::Memory(store, ttl) => {
                for key in keys {
                    match ttl {
                        Some(ttl) => store.insert_key_for(key.clone(), *ttl),
                        None => store.insert_key(key.clone()),
                    }
                }
                true
            }
            Sink::Redis(target, con, ttl) => {
                if con.is_none() {
                    *con = target.connect().ok();
                }
                let Some(c) = con else { return false };
                let px = ttl.map_or(3_600_000, |t| t.as_millis().max(1) as u64);
                let setex = |key: &String| redis::cmd("PSETEX").arg(key).arg(px).arg(1).clone();
                let ok = if c.supports_pipelining() {
                    let mut pipe = redis::pipe();
                    keys.iter().for_each(|k| {
                        pipe.add_command(setex(k)).ignore();
                    });
                    pipe.exec(&mut **c).is_ok()
                } else {
                    keys.iter().all(|k| setex(k).exec(&mut **c).is_ok())
                };
                if !ok {
                    *con = None;
                }
                ok
            }
        }
    }
}

/// What became of one plan's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyWrite {
    /// No key was scheduled (missing inputs).
    Never,
    /// Written on schedule: the write was sent at `sent` and acknowledged
    /// at `done`, so the key appeared in between.
    At { sent: Instant, done: Instant },
    /// The write failed: the key may or may not have reached Redis (a
    /// pipeline fails as a whole although some of its keys may land).
    Unknown,
    /// Scheduled after the run ended and written then, early: it counts as
    /// having come, never as written before a deadline.
    Flushed,
}

impl KeyWrite {
    /// Whether the key may have been there by `deadline`: its write was
    /// sent by then (within the events' whole milliseconds, as the audit
    /// reads them). A write sent before a deadline and acknowledged after
    /// it (a redirect followed, a master stalled by `MIGRATE`) may have
    /// landed in time, so a found event for it is true, and the best
    /// coverage possible counts it.
    pub fn by(self, deadline: Instant) -> bool {
        let slack = Duration::from_millis(SLACK_MS as u64);
        matches!(self, KeyWrite::At { sent, .. } if sent <= deadline + slack)
    }

    /// Whether the key was ever written (or may have been).
    pub fn exists(self) -> bool {
        self != KeyWrite::Never
    }
}

struct Due {
    at: Instant,
    plan: usize,
    key: String,
}

/// The bridge thread: takes (plan, key, due time), writes each key when due.
pub struct Bridge {
    tx: Sender<Vec<Due>>,
    stop: Sender<()>,
    handle: JoinHandle<Written>,
}

/// What the bridge did: when each plan's key was written, and how many of
/// its writes failed (the keys of a failed write are not tried again).
#[derive(Default)]
pub struct Written {
    pub keys: Vec<KeyWrite>,
    pub failed_writes: u64,
    pub failed_keys: u64,
}

impl Bridge {
    pub fn start(sink: Sink, plans: usize) -> Bridge {
        Bridge::telling(sink, plans, None)
    }

    /// [`Bridge::start`], also sending on `tell` the plan of each key just
    /// written (the benchmark's oracle).
    pub fn telling(sink: Sink, plans: usize, tell: Option<Sender<usize>>) -> Bridge {
        let (tx, rx) = unbounded();
        let (stop, stop_rx) = unbounded();
        let handle = thread::Builder::new()
            .name("sim-bridge".into())
            .spawn(move || run(sink, plans, rx, stop_rx, tell))
            .expect("spawn the bridge thread");
        Bridge { tx, stop, handle }
    }

    /// Schedules plan `plan`'s key to be written at `at`.
    pub fn schedule(&self, plan: usize, key: String, at: Instant) {
        self.schedule_many(vec![(plan, key, at)]);
    }

    /// Schedules many keys with one message, so the bridge thread wakes
    /// once for them all.
    pub fn schedule_many(&self, keys: Vec<(usize, String, Instant)>) {
        let batch = keys
            .into_iter()
            .map(|(plan, key, at)| Due { at, plan, key })
            .collect();
        let _ = self.tx.send(batch);
    }

    /// Writes every key still scheduled at once (they come late, as they
    /// would have), stops, and says what became of each plan's key.
    pub fn finish(self) -> Written {
        let _ = self.stop.send(());
        self.handle.join().expect("bridge thread")
    }
}

fn run(
    mut sink: Sink,
    plans: usize,
    rx: Receiver<Vec<Due>>,
    stop: Receiver<()>,
    tell: Option<Sender<usize>>,
) -> Written {
    let mut written = vec![KeyWrite::Never; plans];
    let mut heap: BinaryHeap<Reverse<(Instant, usize, String)>> = BinaryHeap::new();
    let mut stopping = false;
    let mut failures = 0u64;
    let mut failed_keys = 0u64;
    loop {
        while let Ok(batch) = rx.try_recv() {
            heap.extend(batch.into_iter().map(|d| Reverse((d.at, d.plan, d.key))));
        }
        stopping |= stop.try_recv().is_ok();
        let now = Instant::now();
        let mut due = Vec::new();
        while heap
            .peek()
            .is_some_and(|Reverse((at, ..))| stopping || *at <= now)
        {
            let Reverse((_, plan, key)) = heap.pop().expect("peeked");
            due.push((plan, key));
        }
        if !due.is_empty() {
            let keys: Vec<String> = due.iter().map(|(_, k)| k.clone()).collect();
            let sent = Instant::now();
            let what = if sink.write(&keys) {
                match stopping {
                    true => KeyWrite::Flushed,
                    false => KeyWrite::At {
                        sent,
                        done: Instant::now(),
                    },
                }
            } else {
                failures += 1;
                failed_keys += due.len() as u64;
                KeyWrite::Unknown
            };
            due.iter().for_each(|(plan, _)| written[*plan] = what);
            if let (Some(tell), KeyWrite::At { .. }) = (&tell, what) {
                due.iter().for_each(|(plan, _)| {
                    let _ = tell.send(*plan);
                });
            }
            continue;
        }
        if stopping {
            break;
        }
        let next = heap.peek().map(|Reverse((at, ..))| *at);
        let wake = next
            .unwrap_or(now + Duration::from_millis(50))
            .min(now + Duration::from_millis(50));
        match rx.recv_deadline(wake) {
            Ok(batch) => heap.extend(batch.into_iter().map(|d| Reverse((d.at, d.plan, d.key)))),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
        }
    }
    if failures > 0 {
        log::warn!("the simulated bridge failed {failures} writes ({failed_keys} keys)");
    }
    Written {
        keys: written,
        failed_writes: failures,
        failed_keys,
    }
}

/// A run id no other run has: `run-<unix ms in hex>-<pid>`.
pub fn fresh_run_id() -> String {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("run-{ms:x}-{}", std::process::id())
}
