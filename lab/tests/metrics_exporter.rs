//! Feature `metrics`, read the way a service on metrics-exporter-prometheus
//! reads it: the exporter's scrape holds, series for series, what the
//! crate's own `render_metrics()` holds, for an observer after a run, one
//! after a rollback (late observer off), one whose configuration was
//! invalid and one disabled in code; and `promtool check metrics` accepts
//! the scrape (help text for every family). One test in a binary of its
//! own: the recorder is the process's, and it sets the environment.
#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::time::Duration;

use heat_observer::{
    Config, LateObserver, MemoryStore, ObserverHandle, PointStats, metrics::MetricsFormat,
};
use heat_observer_lab::{PATIENCE, ms, promtool, wait_stats, wait_until};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Every `p28_` sample of a scrape: its name with its labels sorted (and
/// `le` as a number), and its value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("p28_")) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut labels: Vec<String> = labels
            .split("\",")
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').unwrap();
                let v = v.trim_matches('"');
                match (k, v.parse::<f64>()) {
                    ("le", Ok(le)) => format!("le={le}"),
                    _ => format!("{k}={v}"),
                }
            })
            .collect();
        labels.sort();
        let value = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap(),
        };
        out.insert(format!("{name}{{{}}}", labels.join(",")), value);
    }
    out
}

/// The samples where the two scrapes differ (missing on either side too).
fn differences(ours: &BTreeMap<String, f64>, theirs: &BTreeMap<String, f64>) -> Vec<String> {
    let mut diff = Vec::new();
    for (series, value) in ours {
        match theirs.get(series) {
            Some(v) if v == value => {}
            other => diff.push(format!("{series}: ours {value}, exporter {other:?}")),
        }
    }
    for series in theirs.keys().filter(|s| !ours.contains_key(*s)) {
        diff.push(format!("{series}: only in the exporter"));
    }
    diff
}

fn install() -> PrometheusHandle {
    // The crate's buckets, in seconds, as the README says to set them.
    let buckets: Vec<f64> = PointStats::WAIT_BUCKETS_MS
        .iter()
        .map(|ms| *ms as f64 / 1000.0)
        .collect();
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full("p28_heat_wait_seconds".into()), &buckets)
        .unwrap()
        .install_recorder()
        .unwrap()
}

/// Waits until the exporter's scrape and the observers' own rendering hold
/// the same series and values, and returns the scrape.
fn matches(handle: &PrometheusHandle, observers: &[ObserverHandle], what: &str) -> String {
    let mut last = Vec::new();
    let mut scrape = String::new();
    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(what, || {
            let families = MetricsFormat::merge(observers.iter().map(|o| o.metric_families()));
            let ours = samples(&MetricsFormat::Prometheus.render(&families));
            scrape = handle.render();
            last = differences(&ours, &samples(&scrape));
            last.is_empty()
        });
    }));
    assert!(ok.is_ok(), "{what}: {} differences: {last:#?}", last.len());
    scrape
}

#[test]
fn the_exporters_scrape_is_the_crates_own_rendering() {
    // SAFETY: set first, before this test starts any thread (no observer,
    // no recorder yet); the binary has this one test, so no other test's
    // thread runs, and the harness's main thread only waits for it.
    unsafe {
        std::env::set_var("P28_LATE_OBS_NAME", "broken");
        std::env::set_var("P28_LATE_OBS_POLL_MS", "abc");
    }
    let handle = install();
    let store = MemoryStore::new();
    store.insert_key(Config::default().heat_key("found"));
    let config = Config::builder()
        .name("run")
        .max_wait(ms(50))
        .poll(ms(10))
        .build()
        .unwrap();
    let run = LateObserver::start(config, store.clone()).unwrap();
    for plan in ["found", "missed"] {
        run.observe_late(plan, "S").unwrap();
        run.observe_now(plan, "S").unwrap();
    }
    let _ = run.observe_late("", "S");
    wait_stats(&run, "the run's four events", |s| {
        s.found + s.not_found == 4
    });

    // A rollback: the late observer off, the early look on.
    let config = Config::builder()
        .name("rollback")
        .enabled(false)
        .build()
        .unwrap();
    let rollback = LateObserver::start(config, store.clone()).unwrap();
    let _ = rollback.observe_late("found", "S");
    rollback.observe_now("found", "S").unwrap();
    wait_stats(&rollback, "the rollback's early look", |s| {
        s.finished() == 1
    });

    // A configuration error, through the fail-open start (its variables
    // were set before any thread started).
    let broken = LateObserver::from_env("redis://127.0.0.1:1");
    let _ = broken.observe_late("p", "S");
    assert!(broken.stats().config_error);

    // Disabled in code: no name, nothing runs; its caller counts.
    let disabled = LateObserver::disabled();
    let _ = disabled.observe_late("p", "S");
    let _ = disabled.observe_late("q", "S");

    let all = [&run, &rollback, &broken, &disabled].map(|o| o.handle());
    let scrape = matches(&handle, &all, "the running observers");
    for line in [
        "p28_config_error{observer=\"broken\"} 1",
        "p28_enabled{observer=\"broken\"} 0",
        "p28_refused_total{observer=\"rollback\",reason=\"disabled\"} 1",
        "p28_refused_total{reason=\"disabled\"} 2",
    ] {
        assert!(scrape.lines().any(|l| l == line), "{line} in:\n{scrape}");
    }
    if let Some((ok, said)) = promtool(&scrape) {
        assert!(
            ok,
            "promtool check metrics on the exporter's scrape:\n{said}"
        );
    }

    // After the stop: the final figures, and the stop said.
    run.shutdown(Duration::from_secs(5));
    rollback.shutdown(Duration::from_secs(5));
    let scrape = matches(&handle, &all, "the stopped observers");
    assert!(
        scrape.contains("p28_stopped{observer=\"run\"} 1"),
        "{scrape}"
    );
    let _ = PATIENCE;
}
