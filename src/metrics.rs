//! The metrics as data, and their two text renderings.
//!
//! Every series is one row of a table: name, type, help, and how to read
//! its samples from a [`Stats`] snapshot. [`MetricFamily`] is that row with
//! its samples, so a collector for any registry is a loop over
//! [`LateObserver::metric_families`](crate::ObserverHandle::metric_families),
//! and [`MetricsFormat`] renders a set of families as Prometheus text
//! (0.0.4) or OpenMetrics. `p28_observed_total{obs_point,heat_found}` is the
//! series the runbook's panels use; every family is `p28_`-prefixed, the
//! built-in observation points are present at 0 from the start.

use std::fmt::{self, Write as _};

use crate::refusal::Refused;
use crate::stats::Count;
use crate::stats::{Stats, WaitHistogram};

/// The type of a [`MetricFamily`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MetricKind {
    /// Only goes up (its name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets (`_bucket` with `le`), `_sum` and `_count`.
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// One metric family and its samples: what a registry's collector needs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct MetricFamily {
    /// The name as in the Prometheus text format, e.g. `p28_observed_total`.
    pub name: &'static str,
    /// The help text.
    pub help: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// The samples, in order.
    pub samples: Vec<Sample>,
}

/// One sample of a [`MetricFamily`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Sample {
    /// Appended to the family name: `""`, or `_bucket`, `_sum`, `_count`
    /// for a histogram.
    pub suffix: &'static str,
    /// Label names and values, in order (the observer's name first, when
    /// it has one).
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

/// How to render a set of [`MetricFamily`].
///
/// ```
/// use heat_observer::{Config, LateObserver, MemoryStore, metrics::MetricsFormat};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let a = LateObserver::start(Config::builder().name("eu").build()?, MemoryStore::new())?;
/// let b = LateObserver::start(Config::builder().name("us").build()?, MemoryStore::new())?;
/// // One HELP and TYPE per family, the samples of both observers below it.
/// let families = MetricsFormat::merge([a.metric_families(), b.metric_families()]);
/// let text = MetricsFormat::Prometheus.render(&families);
/// assert_eq!(text.matches("# TYPE p28_observed_total counter").count(), 1);
/// assert!(text.contains(r#"p28_accepted_total{observer="us"} 0"#));
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetricsFormat {
    /// The Prometheus text format, version 0.0.4.
    #[default]
    Prometheus,
    /// OpenMetrics 1.0 text: counters' `TYPE` without `_total`, and a final
    /// `# EOF`.
    OpenMetrics,
}

impl MetricsFormat {
    /// The `Content-Type` to serve this format with.
    pub fn content_type(self) -> &'static str {
        match self {
            MetricsFormat::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            MetricsFormat::OpenMetrics => {
                "application/openmetrics-text; version=1.0.0; charset=utf-8"
            }
        }
    }

    /// Joins the families of several observers: one family per name, the
    /// samples of each observer in turn. Give each observer its own
    /// [`name`](crate::ConfigBuilder::name), or their series would collide.
    pub fn merge(sets: impl IntoIterator<Item = Vec<MetricFamily>>) -> Vec<MetricFamily> {
        let mut merged: Vec<MetricFamily> = Vec::new();
        for family in sets.into_iter().flatten() {
            match merged.iter_mut().find(|m| m.name == family.name) {
                Some(m) => m.samples.extend(family.samples),
                None => merged.push(family),
            }
        }
        merged
    }

    /// The families as text in this format.
    pub fn render(self, families: &[MetricFamily]) -> String {
        let mut out = String::with_capacity(8192);
        self.write(families, &mut out)
            .expect("writing to a String cannot fail");
        out
    }

    fn write(self, families: &[MetricFamily], out: &mut String) -> fmt::Result {
        for family in families {
            let open = self == MetricsFormat::OpenMetrics;
            // OpenMetrics names a counter family without its `_total`.
            let head = match (open, family.kind) {
                (true, MetricKind::Counter) => family.name.trim_end_matches("_total"),
                _ => family.name,
            };
            writeln!(out, "# HELP {head} {}", escape(family.help, false))?;
            writeln!(out, "# TYPE {head} {}", family.kind.as_str())?;
            for sample in &family.samples {
                write_sample(out, family.name, sample)?;
            }
        }
        if self == MetricsFormat::OpenMetrics {
            out.write_str("# EOF\n")?;
        }
        Ok(())
    }
}

fn write_sample(out: &mut String, name: &str, sample: &Sample) -> fmt::Result {
    write!(out, "{name}{}", sample.suffix)?;
    if !sample.labels.is_empty() {
        out.write_char('{')?;
        for (i, (k, v)) in sample.labels.iter().enumerate() {
            let comma = if i > 0 { "," } else { "" };
            write!(out, "{comma}{k}=\"{}\"", escape(v, true))?;
        }
        out.write_char('}')?;
    }
    writeln!(out, " {}", sample.value)
}

/// Backslash and newline are escaped in both; the double quote in label
/// values only.
fn escape(v: &str, quote: bool) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '"' if quote => s.push_str("\\\""),
            c => s.push(c),
        }
    }
    s
}

/// One row of the table: a family and how to read its samples.
struct Row {
    name: &'static str,
    kind: MetricKind,
    help: &'static str,
    read: fn(&Stats, &mut Samples),
}

/// Every family's name, type and help, and how to read it: the rows of
/// the table, then the simple counters of [`Stats`].
fn rows() -> impl Iterator<Item = (&'static str, MetricKind, &'static str, Read)> {
    let table = TABLE
        .iter()
        .map(|r| (r.name, r.kind, r.help, Read::Samples(r.read)));
    let simple = Count::ALL
        .iter()
        .map(|&(_, name, help, get)| (name, MetricKind::Counter, help, Read::One(get)));
    table.chain(simple)
}

/// How a family's samples are read from a snapshot.
#[derive(Clone, Copy)]
enum Read {
    Samples(fn(&Stats, &mut Samples)),
    /// One unlabelled value.
    One(fn(&Stats) -> u64),
}

/// Collects samples, putting the observer's own labels first.
struct Samples<'a> {
    base: &'a [(&'static str, String)],
    out: Vec<Sample>,
}

impl Samples<'_> {
    fn push(&mut self, suffix: &'static str, labels: &[(&'static str, &str)], value: u64) {
        self.push_f64(suffix, labels, value as f64);
    }

    fn push_f64(&mut self, suffix: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let own = labels.iter().map(|&(k, v)| (k, v.to_owned()));
        self.out.push(Sample {
            suffix,
            labels: self.base.iter().cloned().chain(own).collect(),
            value,
        });
    }

    fn one(&mut self, value: u64) {
        self.push("", &[], value);
    }
}

const fn counter(name: &'static str, help: &'static str, read: fn(&Stats, &mut Samples)) -> Row {
    Row {
        name,
        kind: MetricKind::Counter,
        help,
        read,
    }
}

const fn gauge(name: &'static str, help: &'static str, read: fn(&Stats, &mut Samples)) -> Row {
    Row {
        name,
        kind: MetricKind::Gauge,
        help,
        read,
    }
}

/// Every series the observer exports. A new metric is a counter in
/// [`Stats`] and a row here.
static TABLE: [Row; 14] = [
    counter(
        "p28_observed_total",
        "Events appended to the observed stream, by observation point and whether the heat key was found (1) or not (0).",
        |s, out| {
            for p in &s.points {
                let point = p.obs_point.as_str();
                out.push(
                    "",
                    &[("obs_point", point), ("heat_found", "0")],
                    p.not_found,
                );
                out.push("", &[("obs_point", point), ("heat_found", "1")], p.found);
            }
        },
    ),
    counter(
        "p28_deduplicated_total",
        "Observations not written because their (plan_id, obs_point) was already recorded.",
        |s, out| {
            for p in &s.points {
                out.push("", &[("obs_point", p.obs_point.as_str())], p.deduplicated);
            }
        },
    ),
    counter(
        "p28_accepted_total",
        "Observe calls accepted into the queue.",
        |s, out| out.one(s.accepted),
    ),
    counter(
        "p28_refused_total",
        "Observe calls refused at the door, by reason.",
        |s, out| {
            for r in Refused::ALL {
                out.push("", &[("reason", r.reason())], s.refused_for(&r));
            }
        },
    ),
    counter(
        "p28_store_errors_total",
        "Store calls that returned an error, by kind; auth, permission and database are operators' errors.",
        |s, out| {
            for (kind, n) in &s.store_errors_by_kind {
                out.push("", &[("kind", kind)], *n);
            }
        },
    ),
    counter(
        "p28_store_calls_total",
        "Store calls (round trips), by operation.",
        |s, out| {
            out.push("", &[("op", "exists")], s.exists_calls);
            out.push("", &[("op", "append")], s.append_calls);
        },
    ),
    gauge(
        "p28_queue_depth",
        "Observations waiting in the queue.",
        |s, out| out.one(s.queued),
    ),
    gauge(
        "p28_in_flight",
        "Observations held by workers, watched or awaiting their write.",
        |s, out| out.one(s.in_flight),
    ),
    gauge("p28_workers", "Worker threads running.", |s, out| {
        out.one(s.workers)
    }),
    gauge(
        "p28_detect_mode",
        "Worker threads by how they detect a written key: push (subscribed) or poll.",
        |s, out| {
            let push = s.push_workers.min(s.workers);
            out.push("", &[("mode", "poll")], s.workers - push);
            out.push("", &[("mode", "push")], push);
        },
    ),
    gauge(
        "p28_enabled",
        "1 when the late observer is on, 0 when it is switched off (P28_LATE_OBS_ENABLED=false: early looks still run) or its config was invalid.",
        |s, out| out.one(u64::from(s.enabled)),
    ),
    gauge(
        "p28_stopped",
        "1 once the observer was shut down in an orderly way (its workers are gone on purpose).",
        |s, out| out.one(u64::from(s.stopped)),
    ),
    gauge(
        "p28_config_error",
        "1 when the observer runs disabled because its configuration was invalid at start.",
        |s, out| out.one(u64::from(s.config_error)),
    ),
    Row {
        name: "p28_heat_wait_seconds",
        kind: MetricKind::Histogram,
        help: "Wait from the observe call to the look that found the heat key.",
        read: |s, out| {
            for p in &s.points {
                wait_histogram(out, p.obs_point.as_str(), &p.wait);
            }
        },
    },
];

fn wait_histogram(out: &mut Samples, point: &str, wait: &WaitHistogram) {
    for (le, n) in wait.cumulative() {
        let le = le.map_or_else(|| "+Inf".to_owned(), |ms| (ms as f64 / 1000.0).to_string());
        out.push("_bucket", &[("obs_point", point), ("le", &le)], n);
    }
    out.push_f64(
        "_sum",
        &[("obs_point", point)],
        wait.sum_ms() as f64 / 1000.0,
    );
    out.push("_count", &[("obs_point", point)], wait.count());
}

/// Every family read from `stats`, each sample labelled with `base` first.
pub(crate) fn families(stats: &Stats, base: &[(&'static str, String)]) -> Vec<MetricFamily> {
    rows()
        .map(|(name, kind, help, read)| {
            let mut samples = Samples {
                base,
                out: Vec::new(),
            };
            match read {
                Read::Samples(read) => read(stats, &mut samples),
                Read::One(get) => samples.one(get(stats)),
            }
            MetricFamily {
                name,
                help,
                kind,
                samples: samples.out,
            }
        })
        .collect()
}

/// Every family's name, type and help, for the facade's descriptions.
#[cfg(feature = "metrics")]
pub(crate) fn families_described() -> impl Iterator<Item = (&'static str, MetricKind, &'static str)>
{
    rows().map(|(name, kind, help, _)| (name, kind, help))
}

#[cfg(test)]
mod tests;
