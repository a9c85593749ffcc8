//! Feature `metrics`: every series also goes through the `metrics` facade,
//! same names and labels, checked with metrics-util's debugging recorder.
//! In a binary of its own: the recorder is the process's global one.
#![cfg(feature = "metrics")]

use std::time::Duration;

use heat_observer::{Config, LateObserver, MemoryStore, metrics::MetricKind};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::{CompositeKey, MetricKind as Kind};

#[test]
fn every_series_reaches_the_facade_with_its_labels() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let store = MemoryStore::new();
    store.insert_key(Config::default().heat_key("found"));
    let config = Config::builder()
        .name("eu")
        .max_wait(Duration::from_millis(50))
        .poll(Duration::from_millis(10))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store).unwrap();
    observer.observe_late("found", "S").unwrap();
    observer.observe_late("missed", "S").unwrap();
    let _ = observer.observe_late("", "S");
    let families = observer.metric_families();
    let report = observer.shutdown(Duration::from_secs(5));
    assert_eq!((report.stats.found, report.stats.not_found), (1, 1));

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |kind: Kind, name: &str, labels: &[(&str, &str)]| -> Option<&DebugValue> {
        snapshot
            .iter()
            .find_map(|(key, _, _, value): &(CompositeKey, _, _, DebugValue)| {
                let k = key.key();
                let same = key.kind() == kind
                    && k.name() == name
                    && labels
                        .iter()
                        .all(|(n, v)| k.labels().any(|l| l.key() == *n && l.value() == *v));
                same.then_some(value)
            })
    };
    let counter = |name, labels: &[(&str, &str)]| match find(Kind::Counter, name, labels) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{name} {labels:?}: {other:?}"),
    };
    let late = [("observer", "eu"), ("obs_point", "publish_plan_post")];
    assert_eq!(
        counter(
            "p28_observed_total",
            &[late[0], late[1], ("heat_found", "1")]
        ),
        1
    );
    assert_eq!(
        counter(
            "p28_observed_total",
            &[late[0], late[1], ("heat_found", "0")]
        ),
        1
    );
    assert_eq!(
        counter(
            "p28_refused_total",
            &[("observer", "eu"), ("reason", "invalid")]
        ),
        1
    );
    assert_eq!(counter("p28_accepted_total", &[("observer", "eu")]), 2);
    match find(Kind::Gauge, "p28_workers", &[("observer", "eu")]) {
        Some(DebugValue::Gauge(v)) => assert_eq!(v.into_inner(), 0.0, "after the stop"),
        other => panic!("p28_workers: {other:?}"),
    }
    match find(Kind::Histogram, "p28_heat_wait_seconds", &late) {
        Some(DebugValue::Histogram(values)) => assert_eq!(values.len(), 1),
        other => panic!(
            "p28_heat_wait_seconds: {other:?} in {:?}",
            snapshot
                .iter()
                .map(|(k, _, _, _)| k.key().name().to_owned())
                .collect::<Vec<_>>()
        ),
    }
    // Every family of the text rendering is in the facade too.
    for family in families {
        let kind = match family.kind {
            MetricKind::Counter => Kind::Counter,
            MetricKind::Gauge => Kind::Gauge,
            _ => Kind::Histogram,
        };
        let seen = snapshot
            .iter()
            .any(|(k, _, _, _)| k.kind() == kind && k.key().name() == family.name);
        assert!(seen, "{} is missing from the facade", family.name);
    }
}
