//! When a key is found, and what the event says, with the in-memory store.
//! Workers are held at gates in the store, so no test depends on timing
//! beyond the deadlines it is about.

mod support;

use std::time::Instant;

use heat_observer::{Config, ConfigBuilder, LateObserver, ObsPoint, store::Event};
use support::rig::{Op, RiggedStore};
use support::{PATIENCE, events, ms, wait_stats};

fn config() -> ConfigBuilder {
    Config::builder().workers(1).max_wait(ms(2000)).poll(ms(20))
}

fn heat_key(plan: &str) -> String {
    Config::default().heat_key(plan)
}

fn field(entry: &heat_observer::store::StreamEntry, name: &str) -> u64 {
    entry.field(name).unwrap().parse().unwrap()
}

#[test]
fn key_written_before_observe_is_found_at_the_first_look() {
    let store = RiggedStore::new();
    store.insert_key(heat_key("p1"));
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    observer.observe_late("p1", "BTCUSDT").unwrap();
    wait_stats(&observer, "the event is written", |s| s.found == 1);
    let events = events(&store);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].field("heat_found"), Some("1"));
    assert_eq!(field(&events[0], "polls"), 1);
    assert!(field(&events[0], "wait_ms") < 2000);
}

#[test]
fn key_written_while_watching_is_found_at_the_next_look() {
    let store = RiggedStore::new();
    let gate = store.hold(Op::Exists);
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    observer.observe_late("p2", "ETHUSDT").unwrap();
    assert!(gate.wait_arrivals(1, PATIENCE));
    gate.pass(1); // first look: nothing yet
    assert!(gate.wait_arrivals(2, PATIENCE));
    store.insert_key(heat_key("p2")); // HeatBridge writes before the second look
    gate.pass(1);
    wait_stats(&observer, "the event is written", |s| s.found == 1);
    let events = events(&store);
    assert_eq!(field(&events[0], "polls"), 2);
    assert!(
        field(&events[0], "wait_ms") >= 20,
        "second look is a tick later"
    );
}

#[test]
fn key_written_after_the_last_tick_is_found_by_the_look_at_the_deadline() {
    // Looks: at once, at the tick (200 ms), then two spacings (20 ms)
    // before the deadline (330 ms), so that a key found was there by it; not at
    // the following tick (400 ms).
    let store = RiggedStore::new();
    let gate = store.hold(Op::Exists);
    let config = config().max_wait(ms(350)).poll(ms(200)).build().unwrap();
    let observer = LateObserver::start(config, store.clone()).unwrap();
    observer.observe_late("p3", "SOLUSDT").unwrap();
    gate.pass(2);
    // Written after the tick's look answered, before the deadline look,
    // which finds its way through the gate open.
    assert!(store.wait_answered(Op::Exists, 2, PATIENCE));
    store.insert_key(heat_key("p3"));
    gate.pass(1);
    wait_stats(&observer, "the event is written", |s| s.found == 1);
    let events = events(&store);
    assert_eq!(field(&events[0], "polls"), 3);
    let wait = field(&events[0], "wait_ms");
    assert!((330..=350).contains(&wait), "deadline look at {wait} ms");
}

#[test]
fn key_never_written_ends_not_found_at_the_deadline() {
    let store = RiggedStore::new();
    let config = config().max_wait(ms(100)).poll(ms(20)).build().unwrap();
    let observer = LateObserver::start(config, store.clone()).unwrap();
    observer.observe_late("p4", "XRPUSDT").unwrap();
    let stats = wait_stats(&observer, "the event is written", |s| s.not_found == 1);
    assert_eq!(stats.found, 0);
    let events = events(&store);
    assert_eq!(events[0].field("heat_found"), Some("0"));
    // The last look, two spacings (20 ms) before the deadline.
    assert!(field(&events[0], "wait_ms") >= 80);
    assert!(field(&events[0], "polls") >= 2);
    assert_eq!(field(&events[0], "max_wait_ms"), 100);
    let late = stats.point(ObsPoint::PUBLISH_PLAN_POST).unwrap();
    assert_eq!((late.found, late.not_found), (0, 1));
}

#[test]
fn observe_now_looks_once_at_create_apply_plan() {
    let store = RiggedStore::new();
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    observer.observe_now("p5", "BNBUSDT").unwrap();
    wait_stats(&observer, "the event is written", |s| s.not_found == 1);
    let events = events(&store);
    assert_eq!(events[0].field("obs_point"), Some("create_apply_plan"));
    assert_eq!(field(&events[0], "polls"), 1);
    assert_eq!(field(&events[0], "max_wait_ms"), 0);
}

#[test]
fn the_deadline_counts_from_the_call_so_time_queued_counts_against_it() {
    let store = RiggedStore::new();
    let gate = store.hold(Op::Exists);
    let config = config()
        .max_in_flight(1)
        .max_wait(ms(50))
        .poll(ms(10))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store.clone()).unwrap();
    observer.observe_now("first", "S").unwrap();
    assert!(gate.wait_arrivals(1, PATIENCE)); // the only slot is busy
    let queued_at = Instant::now();
    observer.observe_late("queued", "S").unwrap();
    // The behaviour under test is the clock itself: let the deadline pass
    // while the job sits in the queue.
    while queued_at.elapsed() < ms(60) {
        std::thread::sleep(ms(5));
    }
    drop(gate);
    wait_stats(&observer, "both events are written", |s| s.not_found == 2);
    let queued = events(&store)
        .into_iter()
        .find(|e| e.field("plan_id") == Some("queued"))
        .unwrap();
    assert_eq!(field(&queued, "polls"), 1, "one last look, no watching");
    assert!(field(&queued, "wait_ms") >= 60);
}

#[test]
fn events_carry_the_contract_fields_in_order() {
    let store = RiggedStore::new();
    store.insert_key(heat_key("p6"));
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    observer.observe_late("p6", "ADAUSDT").unwrap();
    wait_stats(&observer, "the event is written", |s| s.found == 1);
    let entry = &events(&store)[0];
    let names: Vec<&str> = entry.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, Event::FIELDS);
    assert_eq!(
        &names[..5],
        ["plan_id", "symbol", "obs_point", "wait_ms", "heat_found"]
    );
    assert_eq!(entry.field("plan_id"), Some("p6"));
    assert_eq!(entry.field("symbol"), Some("ADAUSDT"));
    assert_eq!(entry.field("obs_point"), Some("publish_plan_post"));
    assert!(field(entry, "ts_ms") > 1_700_000_000_000);
}

#[test]
fn one_event_per_plan_and_point_the_rest_deduplicated() {
    let store = RiggedStore::new();
    store.insert_key(heat_key("p7"));
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    observer.observe_late("p7", "S").unwrap();
    wait_stats(&observer, "the first event", |s| s.found == 1);
    observer.observe_late("p7", "S").unwrap();
    observer.observe_now("p7", "S").unwrap();
    let stats = wait_stats(&observer, "dedupe and the other point", |s| {
        s.deduplicated == 1 && s.found == 2
    });
    assert_eq!(
        stats
            .point(ObsPoint::PUBLISH_PLAN_POST)
            .unwrap()
            .deduplicated,
        1
    );
    assert_eq!(events(&store).len(), 2);
    let key = Config::default().dedupe_key(ObsPoint::PUBLISH_PLAN_POST, "p7");
    let ttl = store.ttl(&key).expect("dedupe key with a TTL");
    assert!(ttl > ms(86_000_000) && ttl <= ms(86_400_000), "{ttl:?}");
}

#[test]
fn two_observers_sharing_a_store_write_one_event_per_plan() {
    let store = RiggedStore::new();
    let plans: Vec<String> = (0..50).map(|i| format!("shared-{i}")).collect();
    for p in plans.iter().step_by(2) {
        store.insert_key(heat_key(p));
    }
    let config = config().max_wait(ms(40)).poll(ms(10)).build().unwrap();
    let a = LateObserver::start(config.clone(), store.clone()).unwrap();
    let b = LateObserver::start(config, store.clone()).unwrap();
    for p in &plans {
        a.observe_late(p, "S").unwrap();
        b.observe_late(p, "S").unwrap();
    }
    wait_stats(&a, "a settles", |s| s.finished() == 50);
    wait_stats(&b, "b settles", |s| s.finished() == 50);
    let (sa, sb) = (a.stats(), b.stats());
    assert_eq!(sa.found + sa.not_found + sb.found + sb.not_found, 50);
    assert_eq!(sa.deduplicated + sb.deduplicated, 50);
    assert_eq!(events(&store).len(), 50);
}

#[test]
fn a_caller_defined_point_gets_its_own_events_and_metrics() {
    let store = RiggedStore::new();
    store.insert_key(heat_key("p8"));
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    let point = ObsPoint::new("execute_post").unwrap();
    observer.observe(point, "p8", "S", ms(500)).unwrap();
    let stats = wait_stats(&observer, "the event is written", |s| s.found == 1);
    assert_eq!(stats.point(point).unwrap().found, 1);
    assert!(
        observer
            .render_metrics()
            .contains("p28_observed_total{obs_point=\"execute_post\",heat_found=\"1\"} 1\n")
    );
}

#[test]
fn one_job_at_a_time_still_finds_every_key() {
    let store = RiggedStore::new();
    for i in 0..5 {
        store.insert_key(heat_key(&format!("serial-{i}")));
    }
    let config = config().max_in_flight(1).build().unwrap();
    let observer = LateObserver::start(config, store.clone()).unwrap();
    for i in 0..5 {
        observer.observe_late(&format!("serial-{i}"), "S").unwrap();
    }
    wait_stats(&observer, "all found", |s| s.found == 5);
    assert!(store.calls(Op::Exists) >= 5, "one look per job");
}

#[test]
fn a_burst_is_checked_in_one_call_per_tick() {
    let store = RiggedStore::new();
    let gate = store.hold(Op::Exists);
    let config = config().max_wait(ms(200)).poll(ms(50)).build().unwrap();
    let observer = LateObserver::start(config, store.clone()).unwrap();
    observer.observe_late("burst-first", "S").unwrap();
    assert!(gate.wait_arrivals(1, PATIENCE));
    for i in 0..999 {
        observer.observe_late(&format!("burst-{i}"), "S").unwrap();
    }
    for i in 0..1000 {
        store.insert_key(heat_key(&format!("burst-{i}")));
    }
    store.insert_key(heat_key("burst-first"));
    drop(gate);
    let stats = wait_stats(&observer, "all found", |s| s.found == 1000);
    // The first look held one job; the next one saw all 999 others at once.
    assert!(
        stats.exists_calls <= 3,
        "{} exists calls",
        stats.exists_calls
    );
    assert!(
        stats.append_calls <= 3,
        "{} append calls",
        stats.append_calls
    );
}
