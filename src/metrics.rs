//! Prometheus text exposition (format 0.0.4) of a [`Stats`] snapshot.
//!
//! `p28_observed_total{obs_point,heat_found}` is the series the runbook's
//! Grafana panels use; every other family is `p28_`-prefixed too. Each family
//! is one contiguous block with one `HELP` and one `TYPE` line, the built-in
//! observation points are present at 0 from the start, and the output ends
//! with a newline.

use std::fmt::{self, Write};

use crate::counters::Refusal;
use crate::stats::Stats;

/// The `Content-Type` to serve [`render`]'s output with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Renders `stats` in the Prometheus text format.
///
/// ```
/// use heat_observer::{metrics, Stats};
///
/// let text = metrics::render(&Stats::default());
/// assert!(text.contains("# TYPE p28_observed_total counter\n"));
/// ```
pub fn render(stats: &Stats) -> String {
    let mut out = String::with_capacity(4096);
    write_to(&mut out, stats).expect("writing to a String cannot fail");
    out
}

/// Writes `stats` in the Prometheus text format to `out`.
///
/// # Errors
/// Only those of `out`.
pub fn write_to(out: &mut impl Write, stats: &Stats) -> fmt::Result {
    family(
        out,
        "p28_observed_total",
        "counter",
        "Events appended to the observed stream, by observation point and whether the heat key was found (1) or not (0).",
    )?;
    for p in &stats.points {
        for (flag, n) in [("0", p.not_found), ("1", p.found)] {
            sample(
                out,
                "p28_observed_total",
                &[("obs_point", p.obs_point.as_str()), ("heat_found", flag)],
                n,
            )?;
        }
    }

    family(
        out,
        "p28_deduplicated_total",
        "counter",
        "Observations not written because their (plan_id, obs_point) was already recorded.",
    )?;
    for p in &stats.points {
        sample(
            out,
            "p28_deduplicated_total",
            &[("obs_point", p.obs_point.as_str())],
            p.deduplicated,
        )?;
    }

    family(
        out,
        "p28_accepted_total",
        "counter",
        "Observe calls accepted into the queue.",
    )?;
    sample(out, "p28_accepted_total", &[], stats.accepted)?;

    family(
        out,
        "p28_refused_total",
        "counter",
        "Observe calls refused at the door, by reason.",
    )?;
    for r in Refusal::ALL {
        let n = match r {
            Refusal::Disabled => stats.refused_disabled,
            Refusal::Invalid => stats.refused_invalid,
            Refusal::QueueFull => stats.refused_queue_full,
            Refusal::ShutDown => stats.refused_shut_down,
        };
        sample(out, "p28_refused_total", &[("reason", r.label())], n)?;
    }

    let losses = [
        (
            "p28_failed_total",
            "Accepted observations that ended without an event because the store failed.",
            stats.failed,
        ),
        (
            "p28_panicked_total",
            "Accepted observations that ended because a store call panicked.",
            stats.panicked,
        ),
        (
            "p28_abandoned_total",
            "Accepted observations dropped at shutdown, undecided or unwritten.",
            stats.abandoned,
        ),
        (
            "p28_store_errors_total",
            "Store calls that returned an error.",
            stats.store_errors,
        ),
    ];
    for (name, help, n) in losses {
        family(out, name, "counter", help)?;
        sample(out, name, &[], n)?;
    }

    family(
        out,
        "p28_store_calls_total",
        "counter",
        "Store calls (round trips), by operation.",
    )?;
    sample(
        out,
        "p28_store_calls_total",
        &[("op", "exists")],
        stats.exists_calls,
    )?;
    sample(
        out,
        "p28_store_calls_total",
        &[("op", "append")],
        stats.append_calls,
    )?;

    let gauges = [
        (
            "p28_queue_depth",
            "Observations waiting in the queue.",
            stats.queued,
        ),
        (
            "p28_in_flight",
            "Observations held by workers, watched or awaiting their write.",
            stats.in_flight,
        ),
        ("p28_workers", "Worker threads running.", stats.workers),
    ];
    for (name, help, n) in gauges {
        family(out, name, "gauge", help)?;
        sample(out, name, &[], n)?;
    }

    family(
        out,
        "p28_heat_wait_seconds",
        "histogram",
        "Wait from the observe call to the look that found the heat key.",
    )?;
    for p in &stats.points {
        let point = p.obs_point.as_str();
        for (le, n) in p.wait.cumulative() {
            let le = le.map_or_else(|| "+Inf".to_owned(), seconds);
            sample(
                out,
                "p28_heat_wait_seconds_bucket",
                &[("obs_point", point), ("le", &le)],
                n,
            )?;
        }
        writeln!(
            out,
            "p28_heat_wait_seconds_sum{{obs_point=\"{}\"}} {}",
            escape_label(point),
            seconds(p.wait.sum_ms)
        )?;
        sample(
            out,
            "p28_heat_wait_seconds_count",
            &[("obs_point", point)],
            p.wait.count(),
        )?;
    }
    Ok(())
}

fn family(out: &mut impl Write, name: &str, kind: &str, help: &str) -> fmt::Result {
    writeln!(out, "# HELP {name} {}", escape_help(help))?;
    writeln!(out, "# TYPE {name} {kind}")
}

fn sample(out: &mut impl Write, name: &str, labels: &[(&str, &str)], value: u64) -> fmt::Result {
    out.write_str(name)?;
    if !labels.is_empty() {
        out.write_char('{')?;
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.write_char(',')?;
            }
            write!(out, "{k}=\"{}\"", escape_label(v))?;
        }
        out.write_char('}')?;
    }
    writeln!(out, " {value}")
}

/// Milliseconds as a seconds literal: 50 -> `0.05`, 2000 -> `2`.
fn seconds(ms: u64) -> String {
    format!("{}", ms as f64 / 1000.0)
}

/// Label values escape backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text escapes backslash and newline only.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ObsPoint;
    use crate::stats::{PointStats, WAIT_BUCKETS_MS};

    fn stats() -> Stats {
        let mut late = PointStats::new(ObsPoint::PUBLISH_PLAN_POST);
        late.found = 15;
        late.not_found = 5;
        for ms in [40, 120, 600, 600, 1900] {
            late.wait.record(ms);
        }
        Stats {
            accepted: 21,
            refused_queue_full: 3,
            points: vec![PointStats::new(ObsPoint::CREATE_APPLY_PLAN), late],
            ..Stats::default()
        }
    }

    #[test]
    fn observed_total_has_the_contract_shape_with_every_pair_present() {
        let text = render(&stats());
        assert!(text.contains("# TYPE p28_observed_total counter\n"));
        assert!(
            text.contains(
                "p28_observed_total{obs_point=\"publish_plan_post\",heat_found=\"1\"} 15\n"
            )
        );
        assert!(
            text.contains(
                "p28_observed_total{obs_point=\"publish_plan_post\",heat_found=\"0\"} 5\n"
            )
        );
        assert!(
            text.contains(
                "p28_observed_total{obs_point=\"create_apply_plan\",heat_found=\"1\"} 0\n"
            )
        );
        assert!(
            text.contains(
                "p28_observed_total{obs_point=\"create_apply_plan\",heat_found=\"0\"} 0\n"
            )
        );
        assert!(text.contains("p28_refused_total{reason=\"queue_full\"} 3\n"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn each_family_has_one_help_and_one_type_before_a_contiguous_block() {
        let text = render(&stats());
        let mut seen = Vec::<String>::new();
        let mut current = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let name = rest.split(' ').next().unwrap().to_owned();
                assert!(!seen.contains(&name), "TYPE of {name} twice");
                seen.push(name.clone());
                current = name;
            } else if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert_eq!(
                    text.matches(&format!("# HELP {name} ")).count(),
                    1,
                    "{name}"
                );
            } else {
                let name = line.split(['{', ' ']).next().unwrap();
                assert!(
                    name.starts_with(&current),
                    "{name} outside its family {current}"
                );
                assert!(name.starts_with("p28_"), "{name}");
            }
        }
        assert!(seen.len() >= 10, "{seen:?}");
    }

    #[test]
    fn histogram_is_cumulative_and_inf_equals_count() {
        let text = render(&stats());
        let buckets: Vec<(String, u64)> = text
            .lines()
            .filter(|l| {
                l.starts_with("p28_heat_wait_seconds_bucket{obs_point=\"publish_plan_post\"")
            })
            .map(|l| {
                let le = l
                    .split("le=\"")
                    .nth(1)
                    .unwrap()
                    .split('"')
                    .next()
                    .unwrap()
                    .to_owned();
                (le, l.rsplit(' ').next().unwrap().parse().unwrap())
            })
            .collect();
        assert_eq!(buckets.len(), WAIT_BUCKETS_MS.len() + 1);
        assert_eq!(buckets[0], ("0.05".to_owned(), 1));
        assert_eq!(buckets[1], ("0.1".to_owned(), 1));
        assert_eq!(buckets[2], ("0.2".to_owned(), 2));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        assert_eq!(buckets.last().unwrap(), &("+Inf".to_owned(), 5));
        assert!(text.contains("p28_heat_wait_seconds_count{obs_point=\"publish_plan_post\"} 5\n"));
        assert!(text.contains("p28_heat_wait_seconds_sum{obs_point=\"publish_plan_post\"} 3.26\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        assert_eq!(escape_label("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("a\\b\"c\nd"), "a\\\\b\"c\\nd");
        let mut out = String::new();
        sample(&mut out, "m", &[("k", "x\"y")], 1).unwrap();
        assert_eq!(out, "m{k=\"x\\\"y\"} 1\n");
    }
}
