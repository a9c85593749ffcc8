use super::*;
use crate::obs_point::ObsPoint;
use crate::stats::PointStats;

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

fn text() -> String {
    MetricsFormat::Prometheus.render(&families(&stats(), &[]))
}

#[test]
fn observed_total_has_the_contract_shape_with_every_pair_present() {
    let text = text();
    assert!(text.contains("# TYPE p28_observed_total counter\n"));
    for (point, flag, n) in [
        ("publish_plan_post", 1, 15),
        ("publish_plan_post", 0, 5),
        ("create_apply_plan", 1, 0),
        ("create_apply_plan", 0, 0),
    ] {
        let line =
            format!("p28_observed_total{{obs_point=\"{point}\",heat_found=\"{flag}\"}} {n}\n");
        assert!(text.contains(&line), "{line}");
    }
    assert!(text.contains("p28_refused_total{reason=\"queue_full\"} 3\n"));
    assert!(text.contains("p28_refused_total{reason=\"config_error\"} 0\n"));
    assert!(text.ends_with('\n'));
}

#[test]
fn each_family_has_one_help_and_one_type_before_a_contiguous_block() {
    let text = text();
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
            assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1);
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(name.starts_with(&current), "{name} outside {current}");
            assert!(name.starts_with("p28_"), "{name}");
        }
    }
    assert_eq!(seen.len(), TABLE.len() + Count::ALL.len());
}

#[test]
fn histogram_is_cumulative_and_inf_equals_count() {
    let text = text();
    let prefix = "p28_heat_wait_seconds_bucket{obs_point=\"publish_plan_post\",le=\"";
    let buckets: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| {
            let (le, n) = rest.split_once("\"} ").unwrap();
            (le.to_owned(), n.parse().unwrap())
        })
        .collect();
    assert_eq!(
        buckets.len(),
        crate::stats::PointStats::WAIT_BUCKETS_MS.len() + 1
    );
    assert_eq!(buckets[0], ("0.05".to_owned(), 1));
    assert_eq!(buckets[2], ("0.2".to_owned(), 2));
    assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
    assert_eq!(buckets.last().unwrap(), &("+Inf".to_owned(), 5));
    assert!(text.contains("p28_heat_wait_seconds_count{obs_point=\"publish_plan_post\"} 5\n"));
    assert!(text.contains("p28_heat_wait_seconds_sum{obs_point=\"publish_plan_post\"} 3.26\n"));
}

#[test]
fn openmetrics_names_counters_without_total_and_ends_with_eof() {
    let text = MetricsFormat::OpenMetrics.render(&families(&stats(), &[]));
    assert!(text.contains("# TYPE p28_observed counter\n"));
    assert!(text.contains("# HELP p28_observed "));
    assert!(
        text.contains("p28_observed_total{obs_point=\"publish_plan_post\",heat_found=\"1\"} 15\n")
    );
    assert!(text.contains("# TYPE p28_queue_depth gauge\n"));
    assert!(text.ends_with("\n# EOF\n"));
}

#[test]
fn the_observer_label_comes_first_and_values_are_escaped() {
    let base = [("observer", "a\"b\\c\nd".to_owned())];
    let text = MetricsFormat::Prometheus.render(&families(&stats(), &base));
    assert!(text.contains("p28_accepted_total{observer=\"a\\\"b\\\\c\\nd\"} 21\n"));
    assert_eq!(escape("a\\b\"c\nd", false), "a\\\\b\"c\\nd");
}
