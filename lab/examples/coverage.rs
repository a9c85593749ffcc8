//! The coverage report: reads the newest events of the observed stream and
//! prints, per observation point, events, `heat_found=1`, coverage and the
//! wait percentiles of found keys; for the misses, whether the `by_plan` key
//! exists now (it came after the deadline) or not (it never came), with a
//! sentence of advice on `P28_LATE_OBS_MAX_WAIT_MS`, and the picture to
//! choose it from: the waits of found keys in bins up to the deadline, what
//! came after it and what never came (in the terminal; `--svg` also writes
//! it as an SVG file).
//!
//! ```text
//! cargo run --example coverage -- --redis redis://127.0.0.1:6379 --count 1000
//! cargo run --example coverage -- --svg coverage.svg
//! cargo run --example coverage -- --json
//! cargo run --features cluster --example coverage -- --redis-cluster 10.0.0.1:7000,10.0.0.2:7000
//! ```

use heat_observer_lab::{args, histogram, report, target};

use args::{Args, Flag, fail, flag, opt};
use report::{CoverageReport, DEFAULT_HEAT_KEY_PREFIX, DEFAULT_STREAM, FetchOptions};
use serde_json::{Value, json};
use target::Target;

const ABOUT: &str = "Heat coverage per observation point, read from the observed stream.";

const FLAGS: &[Flag] = &[
    opt(
        "--redis",
        "URL",
        "the Redis to read (default: REDIS_URL, else redis://127.0.0.1:6379)",
    ),
    opt(
        "--redis-cluster",
        "HOST:PORT,...",
        "read from this Redis Cluster instead (feature cluster)",
    ),
    opt(
        "--stream",
        "NAME",
        "the observed stream (default quantum:stream:apply.heat.observed)",
    ),
    opt(
        "--count",
        "N",
        "how many of the newest events to read (default 1000)",
    ),
    opt(
        "--heat-key-prefix",
        "PREFIX",
        "prefix of the by_plan keys (default quantum:harvest:heat:by_plan:)",
    ),
    opt(
        "--svg",
        "PATH",
        "also draw the waits of the late point (or the first that waits) as an SVG file",
    ),
    flag("--json", "print one JSON object instead of the table"),
];

fn main() {
    let args = Args::parse(ABOUT, FLAGS);
    let target = match Target::from_args(&args, true) {
        Target::Memory => Target::Redis("redis://127.0.0.1:6379".to_owned()),
        target => target,
    };
    let options = FetchOptions {
        stream: args
            .opt("--stream")
            .unwrap_or_else(|| DEFAULT_STREAM.to_owned()),
        count: args.get("--count", 1000),
        heat_key_prefix: args
            .opt("--heat-key-prefix")
            .unwrap_or_else(|| DEFAULT_HEAT_KEY_PREFIX.to_owned()),
        ..FetchOptions::default()
    };
    if options.count == 0 {
        fail("--count must be at least 1");
    }
    let report = match &target {
        #[cfg(feature = "cluster")]
        Target::Cluster(nodes) => CoverageReport::fetch_cluster(nodes, &options),
        Target::Redis(url) => CoverageReport::fetch(url, &options),
        _ => unreachable!("a Redis or a cluster"),
    };
    let report = report.unwrap_or_else(|e| {
        eprintln!("error: {e}");
        std::process::exit(1)
    });
    if args.flag("--json") {
        println!("{}", to_json(&options, &report));
    } else if report.points.is_empty() {
        println!(
            "no observed events in {} (read the newest {})",
            options.stream, options.count
        );
    } else {
        println!(
            "heat coverage of the newest {} entries of {}\n",
            options.count, options.stream
        );
        print!("{report}");
    }
    // The picture of the point that waits (the late observer's).
    let waiting = report
        .points
        .iter()
        .filter(|p| p.max_wait_ms.unwrap_or(0) > 0)
        .max_by_key(|p| p.obs_point == "publish_plan_post");
    if let Some(p) = waiting {
        let picture = histogram::WaitHistogram::new(
            &p.obs_point,
            p.max_wait_ms.unwrap_or(0),
            p.waits_found_ms.iter().copied(),
            [],
            p.came_late,
            p.never_came,
        );
        if !args.flag("--json") {
            println!("\n{}", picture.terminal(50));
        }
        if let Some(path) = args.opt("--svg") {
            picture.svg(&path).unwrap_or_else(|e| fail(&e));
            eprintln!("wrote {path}");
        }
    }
}

fn to_json(options: &FetchOptions, report: &CoverageReport) -> Value {
    let points: serde_json::Map<String, Value> = report
        .points
        .iter()
        .map(|p| {
            let waits = p
                .wait_found_ms
                .map(|w| json!({"p50": w.p50, "p90": w.p90, "p99": w.p99, "max": w.max}));
            let value = json!({
                "events": p.events,
                "found": p.found,
                "coverage": p.coverage(),
                "wait_found_ms": waits,
                "missed": p.missed(),
                "came_late": p.came_late,
                "never_came": p.never_came,
                "max_wait_ms": p.max_wait_ms,
                "advice": p.advice(),
            });
            (p.obs_point.clone(), value)
        })
        .collect();
    json!({
        "stream": options.stream,
        "count": options.count,
        "skipped": report.skipped,
        "points": points,
    })
}
