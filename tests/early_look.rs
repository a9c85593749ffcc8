//! An early look (`observe_now`, obs_point `create_apply_plan`) is one look
//! at the moment of the call: it is decided by its own look, or it ends as
//! `failed`; never by a push message that comes later, never by a look
//! retried after an outage. (Issue: with looks refused, push mode wrote
//! `create_apply_plan heat_found=1 decided_by=push` for keys written 300 ms
//! after the call, and retried early looks wrote `wait_ms=1100`.) And a
//! message decides a late plan only while it is watched: after its
//! deadline, only a retried look does, and says so.

mod support;

use heat_observer::{Config, ConfigBuilder, Detect, LateObserver, ObsPoint};
use support::rig::{Fault, Op, RiggedStore};
use support::{PATIENCE, events, ms, wait_stats};

fn config(detect: Detect) -> ConfigBuilder {
    Config::builder()
        .workers(1)
        .detect(detect)
        .max_wait(ms(300))
        .poll(ms(10))
}

fn heat_key(plan: &str) -> String {
    Config::default().heat_key(plan)
}

fn start(store: &RiggedStore, config: Config) -> LateObserver {
    let push = config.detect() == Detect::Push;
    let observer = LateObserver::start(config, store.clone()).unwrap();
    if push {
        wait_stats(&observer, "subscribed", |s| s.push_workers == 1);
    }
    observer
}

#[test]
fn a_refused_early_look_is_failed_not_decided_by_a_later_message() {
    let store = RiggedStore::new();
    let observer = start(&store, config(Detect::Push).build().unwrap());
    let gate = store.hold(Op::Exists);
    store.set_fault(Op::Exists, Some(Fault::Error)); // NOPERM, say
    observer.observe_now("early", "S").unwrap();
    assert!(gate.wait_arrivals(1, PATIENCE));
    gate.pass(1);
    wait_stats(&observer, "the look failed", |s| s.store_errors >= 1);
    // HeatBridge writes the key after the call: Redis says so.
    store.insert_key(heat_key("early"));
    let stats = wait_stats(&observer, "the early look ends", |s| s.finished() == 1);
    assert_eq!((stats.failed, stats.found), (1, 0), "{stats:?}");
    assert!(
        events(&store).is_empty(),
        "no event claims a look that failed"
    );
    drop(gate);
}

#[test]
fn an_early_look_failing_in_an_outage_is_failed_not_retried_later() {
    let store = RiggedStore::new();
    store.insert_key(heat_key("outage"));
    let config = config(Detect::Poll).retry_window(ms(5000)).build().unwrap();
    let observer = start(&store, config);
    store.set_fault(Op::Exists, Some(Fault::Error));
    observer.observe_now("outage", "S").unwrap();
    wait_stats(&observer, "the look failed", |s| s.store_errors >= 1);
    // The outage ends at once; a retried look would find the key.
    store.set_fault(Op::Exists, None);
    let stats = wait_stats(&observer, "the early look ends", |s| s.finished() == 1);
    assert_eq!((stats.failed, stats.found, stats.late_answers), (1, 0, 0));
    // A late look at the same plan still finds the key: the store is back.
    observer.observe_late("outage", "S").unwrap();
    let stats = wait_stats(&observer, "the late look", |s| s.found == 1);
    assert_eq!(stats.failed, 1);
    let events = events(&store);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].field("obs_point"),
        Some(ObsPoint::PUBLISH_PLAN_POST.as_str())
    );
}

#[test]
fn a_message_after_the_deadline_does_not_decide_a_plan_whose_deadline_look_failed() {
    let store = RiggedStore::new();
    let config = config(Detect::Push)
        .max_wait(ms(100))
        .retry_window(ms(2000))
        .build()
        .unwrap();
    let observer = start(&store, config);
    observer.observe_late("late", "S").unwrap();
    // At or after the plan's own deadline.
    let deadline = std::time::Instant::now() + ms(100);
    wait_stats(&observer, "the intake look", |s| s.exists_calls == 1);
    // The deadline look fails (a failover): the plan is retried, no longer
    // watched. (Pushing, it is made 5 ms ahead, and again until the
    // deadline has passed.)
    store.set_fault(Op::Exists, Some(Fault::Error));
    wait_stats(&observer, "the deadline look failed", |s| {
        s.store_errors >= 1
    });
    support::wait_until("the deadline has passed", || {
        std::time::Instant::now() > deadline + ms(5)
    });
    // The key comes after the deadline; its message decides nothing, and
    // neither does the retried look that finds it: the key was not there
    // by the deadline, and a retry after it cannot tell. Unknown: failed.
    store.insert_key(heat_key("late"));
    store.set_fault(Op::Exists, None);
    let stats = wait_stats(&observer, "the retried look", |s| s.failed == 1);
    assert!(stats.store_errors >= 1);
    assert_eq!(
        (stats.found, stats.not_found, stats.late_answers),
        (0, 0, 0)
    );
    assert!(events(&store).is_empty(), "no event says heat_found=1");
}
