//! The main job, the lab's `pipeline`, run in-process: its story (early
//! look in single digits, late look at the best possible), its accounting,
//! and its JSON. Also the simulated bridge it rests on (`heat_observer_lab::sim`).

use heat_observer_lab::pipeline;

use std::time::{Duration, Instant};

use heat_observer::{Config, MemoryStore, ObsPoint};
use heat_observer_lab::ms;
use heat_observer_lab::server::{self, unique};
use heat_observer_lab::sim;

fn options(plans: usize) -> pipeline::Options {
    pipeline::Options {
        plans,
        rate: 0.0,
        median_ms: 150.0,
        sigma: 0.8,
        missing_pct: 10.0,
        seed: 7,
        run_id: unique("run"),
        target: heat_observer_lab::target::Target::Memory,
        metrics_addr: None,
        linger: Duration::ZERO,
        json: true,
        key_ttl: None,
    }
}

/// The runbook's timeline at a quarter of the scale: keys come after about
/// 150 ms, the late observer waits 600 ms.
fn config() -> Config {
    Config::builder()
        .stream(unique("observed"))
        .max_wait(ms(600))
        .poll(ms(25))
        .build()
        .unwrap()
}

#[test]
fn late_coverage_reaches_the_bound_and_the_early_look_stays_in_single_digits() {
    let options = options(500);
    let config = config();
    let (outcome, _) = pipeline::run(&options, config.clone());
    let [(early_point, early_bound), (late_point, late_bound)] = outcome.bound;
    assert_eq!(
        (early_point, late_point),
        (ObsPoint::CREATE_APPLY_PLAN, ObsPoint::PUBLISH_PLAN_POST)
    );
    let late = outcome.stats.point(late_point).unwrap();
    let early = outcome.stats.point(early_point).unwrap();
    let coverage = share_found(late);
    assert!((0.75..0.95).contains(&late_bound), "bound {late_bound}");
    assert!(
        coverage >= late_bound - 0.01,
        "late {coverage} vs bound {late_bound}"
    );
    assert!(
        share_found(early) < 0.10,
        "early {:?}",
        Some(share_found(early))
    );
    assert!(early_bound < 0.10);
    assert_eq!(outcome.stats.calls(), 1000);
    assert!(outcome.stats.is_balanced(), "{:?}", outcome.stats);
    // Every event held against the bridge's writes: none says found for a
    // key not yet written, none not-found for one there long enough.
    let audit = &outcome.audit;
    assert_eq!((audit.events, audit.lies()), (1000, 0), "{audit:?}");

    let json = pipeline::to_json(&options, &config, &outcome);
    assert_eq!(json["plans"], 500);
    assert_eq!(json["bound"], late_bound);
    for point in ["create_apply_plan", "publish_plan_post"] {
        let p = &json["points"][point];
        assert_eq!(p["observed"], 500, "{point}");
        assert!(
            p["found"].is_u64() && p["coverage"].is_f64(),
            "{point}: {p}"
        );
    }
    let outcomes = json["outcomes"].as_object().unwrap();
    let sum: u64 = outcomes.values().map(|v| v.as_u64().unwrap()).sum();
    assert_eq!(sum, 1000, "{outcomes:?}");
    for name in [
        "refused_disabled",
        "refused_invalid",
        "refused_queue_full",
        "refused_shut_down",
        "found",
        "not_found",
        "deduplicated",
        "failed",
        "panicked",
        "abandoned",
    ] {
        assert!(outcomes.contains_key(name), "{name}");
    }
    // The report read back from the stream agrees with the counters.
    let read = outcome
        .report
        .points
        .iter()
        .find(|p| p.obs_point == "publish_plan_post")
        .unwrap();
    // Every heat_found=1 event: in time, or answered after the deadline
    // (a deadline look is found as of its answer, which may come a few ms
    // after the deadline; the report counts those with the misses).
    assert_eq!(
        (read.events, read.found + read.found_late),
        (500, late.found)
    );
}

#[test]
fn a_rollback_run_keeps_the_early_look_and_counts_every_call() {
    let options = options(100);
    let (outcome, _) = pipeline::run(&options, Config::disabled());
    let stats = &outcome.stats;
    assert_eq!((stats.refused_disabled, stats.accepted), (100, 100));
    assert!(stats.is_balanced(), "{stats:?}");
    let points: Vec<&str> = outcome
        .report
        .points
        .iter()
        .map(|p| p.obs_point.as_str())
        .collect();
    assert_eq!(
        points,
        ["create_apply_plan"],
        "the early look's events only"
    );
}

#[test]
fn the_advice_names_refused_calls_before_what_the_events_say() {
    let small_queue = config().to_builder().queue_capacity(10).build().unwrap();
    let (outcome, _) = pipeline::run(&options(2000), small_queue);
    let stats = &outcome.stats;
    assert!(stats.refused_queue_full > 0, "{stats:?}");
    let said = pipeline::advice(stats, Some("what the events say".into())).unwrap();
    assert!(
        said.starts_with(&format!("{} of ", stats.refused_queue_full))
            && said.contains("the queue was full"),
        "{said}"
    );
    // Nothing refused or lost: the events' own advice.
    let (outcome, _) = pipeline::run(&options(200), config());
    let said = pipeline::advice(&outcome.stats, Some("what the events say".into()));
    assert_eq!(said.as_deref(), Some("what the events say"));
}

#[test]
fn a_redis_run_writes_the_real_stream_and_a_rerun_with_its_id_is_deduplicated() {
    let Some(target) = server::any("a_redis_run_writes_the_real_stream") else {
        return;
    };
    let mut options = options(200);
    options.target = heat_observer_lab::target::Target::Redis(target.url());
    let config = config();
    let (first, _) = pipeline::run(&options, config.clone());
    assert_eq!(first.stats.found + first.stats.not_found, 400);
    assert_eq!(
        (first.audit.events, first.audit.lies()),
        (400, 0),
        "{:?}",
        first.audit
    );
    assert!(
        first.store.starts_with("redis 127.0.0.1:"),
        "{}",
        first.store
    );
    // Same run id, as a second Apply process observing the same plans.
    let (second, _) = pipeline::run(&options, config.clone());
    assert_eq!(second.stats.deduplicated, 400, "{:?}", second.stats);
    let mut con = server::connect(&target.url());
    assert_eq!(server::xrange(&mut con, config.stream()).len(), 400);
}

#[test]
fn delays_repeat_per_seed_and_follow_the_requested_shape() {
    let draw = |seed| {
        let mut d = sim::Delays::new(500.0, 0.8, 10.0, seed);
        (0..20_000).map(|_| d.draw()).collect::<Vec<_>>()
    };
    let (a, b) = (draw(1), draw(1));
    assert_eq!(a, b);
    assert_ne!(a, draw(2));
    let missing = a.iter().filter(|d| d.is_none()).count() as f64 / a.len() as f64;
    assert!((0.09..0.11).contains(&missing), "missing share {missing}");
    let mut ms: Vec<f64> = a
        .iter()
        .flatten()
        .map(|d| d.as_secs_f64() * 1000.0)
        .collect();
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    assert!((470.0..530.0).contains(&median), "median {median}");
}

#[test]
fn the_bridge_writes_on_schedule_and_flushes_the_rest_as_late() {
    let store = MemoryStore::new();
    let bridge = sim::Bridge::start(sim::Sink::Memory(store.clone(), None), 3);
    let now = Instant::now();
    bridge.schedule(0, "k0".into(), now);
    bridge.schedule(1, "k1".into(), now + Duration::from_secs(3600));
    heat_observer_lab::wait_until("k0 is written", || store.contains_key("k0"));
    assert!(!store.contains_key("k1"));
    let written = bridge.finish().keys;
    assert!(matches!(written[0], sim::KeyWrite::At { sent, done } if sent <= done));
    assert!(written[0].by(Instant::now()));
    assert_eq!(written[1], sim::KeyWrite::Flushed);
    assert!(
        !written[1].by(Instant::now() + Duration::from_secs(7200)),
        "flushed keys never count as on time"
    );
    assert_eq!(written[2], sim::KeyWrite::Never);
    assert!(store.contains_key("k1"));
}

#[test]
fn a_write_sent_by_the_deadline_counts_as_possible_even_if_acknowledged_after() {
    // A redirect followed or a stalled master: the key may have landed in
    // time, so a found event for it is true and the bound counts it. One
    // sent after the deadline (beyond the events' whole ms) does not.
    let sent = Instant::now();
    let write = sim::KeyWrite::At {
        sent,
        done: sent + Duration::from_millis(40),
    };
    assert!(write.by(sent + Duration::from_millis(10)));
    assert!(write.by(sent));
    assert!(!write.by(sent - Duration::from_millis(3)));
}

/// Share of written events with `heat_found=1`.
fn share_found(p: &heat_observer::PointStats) -> f64 {
    p.found as f64 / (p.found + p.not_found).max(1) as f64
}
