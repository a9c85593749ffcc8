//! The coverage report against a real Redis: known events and keys in,
//! every figure checked.

use heat_observer_lab::report;

use heat_observer_lab::server::{self, unique};
use redis::Commands;
use report::{CoverageReport, FetchOptions, ObservedEvent, Percentiles};

#[test]
fn the_report_reads_events_back_and_sorts_the_misses() {
    let Some(target) = server::any("the_report_reads_events_back") else {
        return;
    };
    let mut con = server::connect(&target.url());
    let ns = unique("report");
    let stream = format!("{ns}:observed");
    let prefix = format!("{ns}:by_plan:");
    // Late point: 10 found (waits 100..=1000), 3 misses whose key came
    // later, 2 misses that never got one. Early point: 5 misses, 2 of them
    // with keys now. One entry that is not an event.
    let mut add = |plan: String, point: &str, wait: u64, found: bool, max_wait: u64| {
        let fields = [
            ("plan_id", plan),
            ("symbol", "BTCUSDT".to_owned()),
            ("obs_point", point.to_owned()),
            ("wait_ms", wait.to_string()),
            ("heat_found", if found { "1" } else { "0" }.to_owned()),
            ("polls", "3".to_owned()),
            ("max_wait_ms", max_wait.to_string()),
            ("ts_ms", "1769600000000".to_owned()),
        ];
        let _: String = redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(&fields[..])
            .query(&mut con)
            .unwrap();
    };
    for i in 1..=10 {
        add(format!("f{i}"), "publish_plan_post", i * 100, true, 2000);
    }
    for i in 0..3 {
        add(format!("late{i}"), "publish_plan_post", 2004, false, 2000);
    }
    for i in 0..2 {
        add(format!("never{i}"), "publish_plan_post", 2002, false, 2000);
    }
    for i in 0..5 {
        add(format!("early{i}"), "create_apply_plan", 3, false, 0);
    }
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("*")
        .arg("something")
        .arg("else")
        .query(&mut con)
        .unwrap();
    for plan in ["late0", "late1", "late2", "early0", "early1"] {
        let _: () = con.set(format!("{prefix}{plan}"), 1).unwrap();
    }

    let options = FetchOptions {
        stream: stream.clone(),
        count: 100,
        heat_key_prefix: prefix,
        ..FetchOptions::default()
    };
    let report = CoverageReport::fetch(&target.url(), &options).unwrap();
    assert_eq!(report.skipped, 1);
    let [late, early] = &report.points[..] else {
        panic!("{report:?}")
    };
    assert_eq!(late.obs_point, "publish_plan_post");
    assert_eq!((late.events, late.found, late.missed()), (15, 10, 5));
    assert!((late.coverage() - 10.0 / 15.0).abs() < 1e-9);
    assert_eq!(
        late.wait_found_ms,
        Some(Percentiles {
            p50: 500,
            p90: 900,
            p99: 1000,
            max: 1000
        })
    );
    assert_eq!((late.came_late, late.never_came), (3, 2));
    assert_eq!(late.max_wait_ms, Some(2000));
    assert!(
        late.advice()
            .starts_with("3 of 5 misses (60.0%) got their key after the deadline"),
        "{}",
        late.advice()
    );
    assert_eq!(early.obs_point, "create_apply_plan");
    assert_eq!(
        (early.events, early.found, early.came_late, early.never_came),
        (5, 0, 2, 3)
    );
    let text = report.to_string();
    assert!(
        text.contains("events      15   heat_found=1      10   coverage   66.7%"),
        "{text}"
    );
    assert!(text.contains("(1 stream entries were not observed events)"));

    // --count reads the newest entries only.
    let newest = CoverageReport::fetch(
        &target.url(),
        &FetchOptions {
            count: 6,
            ..options.clone()
        },
    )
    .unwrap();
    assert_eq!(newest.points.len(), 1);
    assert_eq!(newest.points[0].events, 5);
    assert_eq!(newest.skipped, 1);

    let err = CoverageReport::fetch("redis://:hunter2@127.0.0.1:1", &options).unwrap_err();
    assert!(err.to_string().starts_with("127.0.0.1:1: "), "{err}");
    assert!(!err.to_string().contains("hunter2"));
}

#[test]
fn a_report_is_built_from_events_and_knows_which_misses_came_late() {
    let fields = |plan: &str, found: &str| -> Vec<(String, String)> {
        [
            ("plan_id", plan),
            ("symbol", "S"),
            ("obs_point", "publish_plan_post"),
            ("wait_ms", "600"),
            ("heat_found", found),
            ("max_wait_ms", "2000"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let events = vec![
        ObservedEvent::from_fields("1-0", &fields("a", "1")).unwrap(),
        ObservedEvent::from_fields("2-0", &fields("b", "0")).unwrap(),
    ];
    // "b" has its key now: it came after the deadline.
    let report = CoverageReport::build(&events, |e| e.plan_id == "b");
    let late = &report.points[0];
    assert_eq!((late.events, late.found, late.came_late), (2, 1, 1));
    assert_eq!(late.coverage(), 0.5);
}
