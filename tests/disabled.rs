//! The runbook's rollback: `P28_LATE_OBS_ENABLED=false` and a restart. The
//! flag gates the late observer only: `observe_late` is a counted no-op,
//! while the original early look at `create_apply_plan` keeps its events
//! and counts (the baseline operators compare against). What still runs
//! for it: the worker threads and their connections. `LateObserver::
//! disabled()` starts nothing at all. In a binary of its own so that no
//! other test's workers are around.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use heat_observer::{Config, LateObserver, MemoryStore, ObsPoint, Refused, store::Connector};

/// Counts `connect` calls, and hands out one shared memory store.
struct CountingConnector(Arc<AtomicUsize>, MemoryStore);

impl Connector for CountingConnector {
    type Store = MemoryStore;
    fn connect(&self, _worker: usize) -> MemoryStore {
        self.0.fetch_add(1, Ordering::SeqCst);
        self.1.clone()
    }
    fn describe(&self) -> String {
        "counting".into()
    }
}

#[test]
fn a_rollback_stops_the_late_observer_and_keeps_the_early_look() {
    let config = Config::from_vars([("P28_LATE_OBS_ENABLED", "false")]).unwrap();
    assert_eq!(
        config.startup_line(),
        "P2.8A.3 Late Observer: False (wait=2000ms, poll=100ms)"
    );
    let connects = Arc::new(AtomicUsize::new(0));
    let store = MemoryStore::new();
    store.insert_key(config.heat_key("p2"));
    let connector = CountingConnector(Arc::clone(&connects), store.clone());
    let observer = LateObserver::start(config, connector).unwrap();
    for plan in ["p1", "p2"] {
        assert_eq!(observer.observe_now(plan, "S"), Ok(()));
        assert_eq!(observer.observe_late(plan, "S"), Err(Refused::Disabled));
    }
    // What a rollback still runs: the workers, for the early look.
    support::wait_until("two worker threads", || {
        support::threads_named("heat-observer").len() == 2
    });
    let stats = support::wait_stats(&observer, "both early looks", |s| s.finished() == 2);
    assert_eq!((stats.refused_disabled, stats.accepted), (2, 2));
    let early = stats.point(ObsPoint::CREATE_APPLY_PLAN).unwrap();
    assert_eq!((early.found, early.not_found), (1, 1));
    assert!(!stats.enabled);
    let text = observer.render_metrics();
    for line in [
        "p28_enabled 0\n",
        "p28_refused_total{reason=\"disabled\"} 2\n",
        "p28_observed_total{obs_point=\"create_apply_plan\",heat_found=\"1\"} 1\n",
        "p28_observed_total{obs_point=\"publish_plan_post\",heat_found=\"1\"} 0\n",
    ] {
        assert!(text.contains(line), "{line}");
    }
    let report = observer.shutdown(support::PATIENCE);
    assert!(report.stats.is_balanced());
    assert_eq!(support::events(&store).len(), 2);
    assert!(connects.load(Ordering::SeqCst) >= 1);
}

#[test]
fn a_disabled_observer_spawns_nothing_connects_nothing_and_counts_each_call() {
    let observer = LateObserver::disabled();
    assert_eq!(observer.observe_late("p1", "S"), Err(Refused::Disabled));
    assert_eq!(observer.observe_now("p1", "S"), Err(Refused::Disabled));
    assert_eq!(observer.observe_late("", "S"), Err(Refused::Disabled));
    let stats = observer.stats();
    assert_eq!(
        (stats.refused_disabled, stats.accepted, stats.workers),
        (3, 0, 0)
    );
    assert!(stats.is_balanced());
    assert!(
        observer
            .render_metrics()
            .contains("p28_refused_total{reason=\"disabled\"} 3\n")
    );
    let report = observer.shutdown(support::PATIENCE);
    assert_eq!((report.workers_stopped, report.workers_not_stopped), (0, 0));
}
