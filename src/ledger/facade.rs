//! The ledger's route to the `metrics` facade (feature `metrics`), for
//! services that pick their exporter (metrics-exporter-prometheus, say).
//!
//! * Every family is described (help text) and every series reported when
//!   the observer starts, also when nothing runs (disabled, or a config
//!   error): `p28_enabled 0` and `p28_config_error 1` reach the exporter.
//! * Each written event increments `p28_observed_total` and records its
//!   wait in `p28_heat_wait_seconds` at the same moment, so the two agree
//!   in every scrape.
//! * The other series are reported from a snapshot at most every 100 ms
//!   by a worker, and at the stop; with no worker (disabled), a refusal is
//!   counted by its caller.
//!
//! Install the recorder before starting the observer: handles are taken
//! from the recorder installed at their first use.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use metrics::{Counter, Label};

use crate::metrics::{MetricFamily, MetricKind, families_described};
use crate::refusal::Refused;

/// Least time between two reports from a snapshot.
const EVERY: Duration = Duration::from_millis(100);

pub(crate) struct Facade {
    labels: Vec<(&'static str, String)>,
    last: Mutex<Option<Instant>>,
    /// `p28_observed_total` per (point, found), taken at first use.
    observed: Mutex<HashMap<(&'static str, bool), Counter>>,
    /// `p28_refused_total` per reason, for callers when nothing runs.
    refused: OnceLock<Vec<(&'static str, Counter)>>,
}

impl Facade {
    pub(crate) fn new(labels: &[(&'static str, String)]) -> Facade {
        for (name, kind, help) in families_described() {
            match kind {
                MetricKind::Counter => metrics::describe_counter!(name, help),
                MetricKind::Gauge => metrics::describe_gauge!(name, help),
                MetricKind::Histogram => {
                    metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
                }
            }
        }
        Facade {
            labels: labels.to_vec(),
            last: Mutex::new(None),
            observed: Mutex::default(),
            refused: OnceLock::new(),
        }
    }

    fn labels(&self, own: &[(&'static str, &str)]) -> Vec<Label> {
        let base = self.labels.iter().map(|(k, v)| Label::new(*k, v.clone()));
        base.chain(own.iter().map(|(k, v)| Label::new(*k, v.to_string())))
            .collect()
    }

    /// Whether a report from a snapshot is due (and claims it).
    pub(crate) fn due(&self, now: Instant) -> bool {
        let Ok(mut last) = self.last.try_lock() else {
            return false; // another worker is at it
        };
        if last.is_some_and(|t| now < t + EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Reports every counter and gauge of `families` as it stands
    /// (counters as absolute values, which never go down), and registers
    /// every histogram series so that it shows before its first wait.
    pub(crate) fn sync(&self, families: &[MetricFamily]) {
        for family in families {
            for sample in &family.samples {
                let labels: Vec<Label> = sample
                    .labels
                    .iter()
                    .map(|(k, v)| Label::new(*k, v.clone()))
                    .collect();
                match family.kind {
                    MetricKind::Counter => {
                        metrics::counter!(family.name, labels).absolute(sample.value as u64);
                    }
                    MetricKind::Gauge => metrics::gauge!(family.name, labels).set(sample.value),
                    MetricKind::Histogram if sample.suffix == "_count" => {
                        let _ = metrics::histogram!(family.name, labels);
                    }
                    MetricKind::Histogram => {}
                }
            }
        }
    }

    /// One event written: its count and, if found, its wait, together.
    pub(crate) fn recorded(&self, point: &'static str, found: bool, wait_ms: u64) {
        let flag = if found { "1" } else { "0" };
        let counter = {
            let mut observed = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
            observed
                .entry((point, found))
                .or_insert_with(|| {
                    let labels = self.labels(&[("obs_point", point), ("heat_found", flag)]);
                    metrics::counter!("p28_observed_total", labels)
                })
                .clone()
        };
        counter.increment(1);
        if found {
            let labels = self.labels(&[("obs_point", point)]);
            metrics::histogram!("p28_heat_wait_seconds", labels).record(wait_ms as f64 / 1000.0);
        }
    }

    /// A refusal counted on the caller's thread (nothing else runs).
    pub(crate) fn refused(&self, reason: &'static str) {
        let handles = self.refused.get_or_init(|| {
            Refused::ALL
                .iter()
                .map(|r| {
                    let labels = self.labels(&[("reason", r.reason())]);
                    (r.reason(), metrics::counter!("p28_refused_total", labels))
                })
                .collect()
        });
        if let Some((_, counter)) = handles.iter().find(|(r, _)| *r == reason) {
            counter.increment(1);
        }
    }
}
