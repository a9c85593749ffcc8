use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::*;
use crate::config::Config;
use crate::config::Detect;
use crate::core::StopMode;
use crate::ledger::Mode;
use crate::obs_point::ObsPoint;
use crate::store::memory::MemoryStore;
use crate::store::{Claim, Claimed};

/// A memory store that counts its waits for messages.
#[derive(Clone, Default)]
struct Counting(MemoryStore, Arc<AtomicU64>);

impl Store for Counting {
    fn look(&mut self, keys: &[&str], watch: bool) -> Result<Answers, StoreError> {
        self.0.look(keys, watch)
    }
    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        self.0.claim_and_append(stream, claims)
    }
    fn subscribe(&mut self) -> Result<bool, StoreError> {
        self.0.subscribe()
    }
    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        self.1.fetch_add(1, Relaxed);
        self.0.changes(timeout)
    }
}

impl Connector for Counting {
    type Store = Counting;
    fn connect(&self, _worker: usize) -> Counting {
        Counting(self.0.clone(), Arc::clone(&self.1))
    }
    fn describe(&self) -> String {
        "counting".into()
    }
}

/// One worker's context on `store`, and the sender of its queue.
fn context(config: &Config, store: &Counting) -> (Arc<Context<Counting>>, Sender<Job>) {
    let (tx, rx) = crossbeam_channel::bounded(16);
    let mode = Mode {
        late: true,
        workers: true,
        config_error: false,
    };
    let shared = Arc::new(Shared::new(
        config.clone(),
        None,
        mode,
        crate::Refused::Disabled,
    ));
    let ctx = Context {
        connector: store.clone(),
        jobs: rx,
        shared,
        owner_prefix: "t".into(),
        stream: StreamSpec {
            name: config.stream().into(),
            maxlen: 100,
            dedupe_ttl: Duration::from_secs(60),
        },
    };
    (Arc::new(ctx), tx)
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_draining_worker_goes_on_reading_messages() {
    let config = Config::builder()
        .detect(Detect::Push)
        .max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let store = Counting::default();
    let (ctx, tx) = context(&config, &store);
    let thread = {
        let ctx = Arc::clone(&ctx);
        std::thread::spawn(move || run(0, &ctx))
    };
    let at = Instant::now();
    let job = Job::new(
        ObsPoint::PUBLISH_PLAN_POST,
        "p",
        "S",
        Duration::from_secs(5),
        at,
    );
    tx.send(job).unwrap();
    let stats = || ctx.shared.ledger.snapshot(1);
    wait_for("the intake look", || stats().exists_calls == 1);
    ctx.shared.close(StopMode::Drain {
        until: at + Duration::from_secs(8),
    });
    // Two more waits on the socket: the worker has seen the stop and
    // still listens.
    let waits = store.1.load(Relaxed);
    wait_for("waits for messages after the stop", || {
        store.1.load(Relaxed) >= waits + 2
    });
    store.0.insert_key(config.heat_key("p"));
    thread.join().unwrap();
    let events = store.0.entries(config.stream());
    assert_eq!(events[0].field("decided_by"), Some("push"));
    assert!(
        at.elapsed() < Duration::from_secs(4),
        "decided at the message"
    );
    assert_eq!(
        stats().exists_calls,
        2,
        "the intake look and the one that confirms the message"
    );
}

/// Clocks that tick as told: the monotonic one from `steps` (µs after
/// `t0` at each read), the wall clock 1,000 s after the monotonic one.
fn scripted(t0: Instant, steps: &[u64]) -> (impl FnMut() -> Instant, impl FnMut() -> Duration) {
    let reads = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let last = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let steps = steps.to_vec();
    let (r, l) = (reads.clone(), last.clone());
    let instant = move || {
        let us = steps[r.get().min(steps.len() - 1)];
        r.set(r.get() + 1);
        l.set(us);
        t0 + Duration::from_micros(us)
    };
    // The wall clock is read right after the first monotonic read of a pair.
    let unix = move || Duration::from_secs(1000) + Duration::from_micros(last.get() + 1);
    (instant, unix)
}

#[test]
fn a_pair_of_clock_reads_split_by_a_preemption_is_read_again() {
    let t0 = Instant::now();
    // First pair: 5 ms between the monotonic reads (preempted after the
    // wall clock read); second pair: 2 µs.
    let (instant, unix) = scripted(t0, &[100, 5_100, 5_200, 5_202]);
    let now = paired(instant, unix);
    let wall_at =
        |now: &Now| now.unix.as_micros() as i64 - now.at.duration_since(t0).as_micros() as i64;
    // The wall clock, read 1 µs after the pair's first read, is 1,000 s
    // ahead of the midpoint of a 2 µs pair; the first pair's midpoint
    // would have made it 2.5 ms behind (every `ts_ms` 2.5 ms early).
    assert_eq!(wall_at(&now), 1_000_000_000);
    assert_eq!(now.at, t0 + Duration::from_micros(5_201));
}

#[test]
fn when_no_pair_is_close_the_closest_is_kept() {
    let t0 = Instant::now();
    let (instant, unix) = scripted(
        t0,
        &[0, 9_000, 10_000, 13_000, 20_000, 30_000, 40_000, 44_000],
    );
    let now = paired(instant, unix);
    // Gaps of 9, 3, 10 and 4 ms: the second pair's midpoint.
    assert_eq!(now.at, t0 + Duration::from_micros(11_500));
    assert_eq!(
        now.unix,
        Duration::from_secs(1000) + Duration::from_micros(10_001)
    );
}
