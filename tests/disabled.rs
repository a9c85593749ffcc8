//! The runbook's rollback: `P28_LATE_OBS_ENABLED=false` and a restart. Then
//! nothing starts, nothing connects, and observing is a counted no-op. In a
//! binary of its own so that no other test's workers are around.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use heat_observer::{Config, Connector, LateObserver, MemoryStore, Refused};

/// Counts `connect` calls; any call would mean the disabled observer
/// reached for the store.
struct CountingConnector(Arc<AtomicUsize>);

impl Connector for CountingConnector {
    type Store = MemoryStore;
    fn connect(&self, _worker: usize) -> MemoryStore {
        self.0.fetch_add(1, Ordering::SeqCst);
        MemoryStore::new()
    }
    fn describe(&self) -> String {
        "counting".into()
    }
}

#[test]
fn disabled_observer_spawns_nothing_connects_nothing_and_counts_each_call() {
    let config =
        Config::from_lookup(|name| (name == "P28_LATE_OBS_ENABLED").then(|| "false".to_string()))
            .unwrap();
    let connects = Arc::new(AtomicUsize::new(0));
    let observer = LateObserver::start(config, CountingConnector(Arc::clone(&connects))).unwrap();
    assert_eq!(observer.observe_late("p1", "S"), Err(Refused::Disabled));
    assert_eq!(observer.observe_now("p1", "S"), Err(Refused::Disabled));
    assert_eq!(observer.observe_late("", "S"), Err(Refused::Disabled));
    assert!(support::threads_named("heat-observer").is_empty());
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
    drop(observer);
    assert_eq!(connects.load(Ordering::SeqCst), 0);

    // The same connector type does get used when enabled: the check above
    // could fail.
    let enabled =
        LateObserver::start(Config::default(), CountingConnector(Arc::clone(&connects))).unwrap();
    support::wait_until("both workers connect", || {
        connects.load(Ordering::SeqCst) == 2
    });
    assert_eq!(support::threads_named("heat-observer").len(), 2);
    drop(enabled);
}
