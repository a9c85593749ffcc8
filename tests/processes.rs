//! Several Apply processes on one Redis emit one event per
//! `(plan_id, obs_point)`. The test runs its own binary twice more, each
//! time as one "Apply process" (`apply_process`, ignored unless run that
//! way), observing the same plans at the same time, then counts the events.

mod support;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use heat_observer::{Config, LateObserver, RedisConnector};
use redis::Commands;
use support::server::{self, unique, xrange};
use support::{PATIENCE, ms, wait_stats};

const PLANS: usize = 300;
/// Tells `apply_process` where to work; set only by the parent test.
const ENV: &str = "HEAT_OBSERVER_TEST_PROCESS";

fn config(ns: &str) -> Config {
    Config::builder()
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(format!("{ns}:by_plan:"))
        .max_wait(ms(300))
        .poll(ms(20))
        // What this test is about is dedupe across processes: a generous
        // timeout keeps an early look delayed by a busy CPU (its answer
        // more than a store timeout after the call: unknown) from leaving
        // a pair without its event.
        .redis_timeout(ms(1000))
        .build()
        .unwrap()
}

#[test]
fn two_processes_observing_the_same_plans_write_one_event_per_plan_and_point() {
    let Some(target) = server::any("two_processes_observing_the_same_plans") else {
        return;
    };
    let url = target.url();
    let ns = unique("procs");
    let config = config(&ns);
    let mut con = server::connect(&url);
    for i in (0..PLANS).step_by(3) {
        let _: () = con.set(config.heat_key(&format!("p{i}")), 1).unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "apply_process",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ENV, format!("{url}|{ns}"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a child process")
        })
        .collect();
    let mut deduplicated = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "child failed:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        // The report shares its line with the harness's "test apply_process ...".
        let report = stdout
            .split("deduplicated=")
            .nth(1)
            .unwrap_or_else(|| panic!("no report in:\n{stdout}"));
        let n: String = report.chars().take_while(char::is_ascii_digit).collect();
        deduplicated += n.parse::<u64>().unwrap();
    }
    let mut per_pair: HashMap<(String, String), usize> = HashMap::new();
    for (_, fields) in xrange(&mut con, config.stream()) {
        let f: HashMap<_, _> = fields.into_iter().collect();
        *per_pair
            .entry((f["plan_id"].clone(), f["obs_point"].clone()))
            .or_default() += 1;
    }
    assert_eq!(per_pair.len(), 2 * PLANS, "every plan at both points");
    assert!(
        per_pair.values().all(|n| *n == 1),
        "one event per plan and point"
    );
    // Each pair was observed twice, once by each process: one deduplicated.
    assert_eq!(deduplicated, 2 * PLANS as u64);
}

/// One "Apply process": observes every plan early and late, then reports.
#[test]
#[ignore = "run as a child process by two_processes_observing_the_same_plans_..."]
fn apply_process() {
    let Ok(spec) = std::env::var(ENV) else { return };
    let (url, ns) = spec.split_once('|').unwrap();
    let config = config(ns);
    let observer =
        LateObserver::start(config.clone(), RedisConnector::new(url, &config).unwrap()).unwrap();
    for i in 0..PLANS {
        let plan = format!("p{i}");
        observer.observe_now(&plan, "S").unwrap();
        observer.observe_late(&plan, "S").unwrap();
    }
    let stats = wait_stats(&observer, "every job ends", |s| {
        s.finished() == 2 * PLANS as u64
    });
    assert_eq!(
        stats.failed + stats.panicked + stats.abandoned,
        0,
        "{stats:?}"
    );
    let _ = observer.shutdown(PATIENCE);
    println!("deduplicated={}", stats.deduplicated);
}
