//! Scenario `refusals`: what a refused observe call costs the caller, with
//! a logger installed (env_logger to stderr). Refusals are only counted on
//! the caller's thread and logged by a worker, so a 1 MB plan id or a full
//! queue costs about what an accepted call does, with no tail from I/O.
//! In this process, on the in-memory store: Redis plays no part.

use std::time::{Duration, Instant};

use heat_observer::{Config, LateObserver, MemoryStore};
use serde_json::{Value, json};

const CALLS: usize = 20_000;

/// Times `CALLS` calls of `f`, one by one, 20 µs apart (as Apply's calls
/// come between other work); returns each call's cost in ns.
fn timed(mut f: impl FnMut(usize)) -> Vec<u64> {
    let mut costs = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let pause = Instant::now() + Duration::from_micros(20);
        while Instant::now() < pause {
            std::hint::spin_loop();
        }
        let t = Instant::now();
        f(i);
        costs.push(t.elapsed().as_nanos() as u64);
    }
    costs
}

fn summary(mut v: Vec<u64>) -> Value {
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    let over_5us = v.iter().filter(|&&ns| ns > 5_000).count();
    json!({"p50": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": at(1.0), "over_5us": over_5us})
}

pub fn run() -> Value {
    let config = Config::builder()
        .workers(1)
        .max_in_flight(1)
        .queue_capacity(16)
        .max_wait(Duration::from_secs(600))
        .warn_interval(Duration::from_millis(100))
        .build()
        .expect("config");
    let observer = LateObserver::start(config, MemoryStore::new()).expect("start");
    let huge = "p".repeat(1 << 20);
    let invalid = timed(|_| {
        let _ = observer.observe_late(&huge, "BTCUSDT");
    });
    // Fill the queue: one job held by the worker, 16 queued; then every
    // call is refused as queue_full.
    let mut i = 0;
    while observer
        .observe_late(&format!("fill-{i}"), "BTCUSDT")
        .is_ok()
    {
        i += 1;
    }
    let ids: Vec<String> = (0..CALLS).map(|i| format!("full-{i}")).collect();
    let full = timed(|i| {
        let _ = observer.observe_late(&ids[i], "BTCUSDT");
    });
    let floor = timed(|_| {});
    let stats = observer.shutdown_now(Duration::from_secs(1)).stats;
    // For comparison, accepted calls (a queue with room for all of them).
    let roomy = Config::builder()
        .queue_capacity(CALLS * 2)
        .build()
        .expect("config");
    let accepting = LateObserver::start(roomy, MemoryStore::new()).expect("start");
    let ids: Vec<String> = (0..CALLS).map(|i| format!("ok-{i}")).collect();
    let accepted = timed(|i| {
        let _ = accepting.observe_late(&ids[i], "BTCUSDT");
    });
    accepting.shutdown_now(Duration::from_secs(1));
    json!({
        "scenario": "refusals",
        "calls": CALLS,
        "invalid_1mb_ns": summary(invalid),
        "queue_full_ns": summary(full),
        "empty_body_ns": summary(floor),
        "accepted_ns": summary(accepted),
        "refused_invalid": stats.refused_invalid,
        "refused_queue_full": stats.refused_queue_full,
    })
}

pub fn print(r: &Value) {
    println!(
        "refusals ({} calls each, a logger installed; ns per call)",
        r["calls"]
    );
    println!(
        "{:<22} {:>6} {:>6} {:>7} {:>8} {:>9}",
        "call", "p50", "p99", "p99.9", "max", ">5 µs"
    );
    for (name, key) in [
        ("invalid, 1 MB plan id", "invalid_1mb_ns"),
        ("queue full", "queue_full_ns"),
        ("accepted", "accepted_ns"),
        ("empty body (timer)", "empty_body_ns"),
    ] {
        let n = |k: &str| r[key][k].as_u64().unwrap_or(0);
        println!(
            "{name:<22} {:>6} {:>6} {:>7} {:>8} {:>9}",
            n("p50"),
            n("p99"),
            n("p999"),
            n("max"),
            n("over_5us")
        );
    }
}
