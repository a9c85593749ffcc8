//! Scenario `chaos`: the pipeline's chaos run (`examples/pipeline.rs
//! --chaos`) in poll and in push, each in a process of its own: a steady
//! rate while a private Redis is restarted, stopped, has its clients
//! killed, its scripts flushed, its writes paused, its loop put to sleep
//! and (push) its tracking table shrunk. Every event is held against what
//! happened (the audit); every call must end in exactly one outcome; the
//! memory at the end must stay within 1.1x of the memory after one fault
//! of each kind; a fault may cost at most two warnings.

use serde_json::{Value, json};

use crate::args::{Args, fail};
use crate::pipeline;

/// The modes the scenario runs: the pool's defaults (poll) and push.
pub const MODES: [&str; 2] = ["pool", "push"];

/// One case, in this process: `mode` for `--seconds` at `--rate`.
pub fn run_case(args: &Args, mode: &str) -> Value {
    let rate: f64 = args.get("--rate", 5000.0);
    let seconds: f64 = args.get("--seconds", 60.0);
    if !pipeline::server::available() {
        fail("the chaos scenario needs redis-server on PATH");
    }
    let server = pipeline::server::Server::start(
        pipeline::server::free_port(),
        &["--enable-debug-command", "local"],
    );
    let options = pipeline::Options {
        plans: (rate * seconds) as usize,
        rate,
        median_ms: args.get("--bridge-median-ms", 500.0),
        sigma: 0.8,
        missing_pct: args.get("--missing-pct", 10.0),
        seed: args.get("--seed", 42),
        run_id: pipeline::sim::fresh_run_id(),
        target: pipeline::target::Target::Redis(server.url()),
        metrics_addr: None,
        linger: std::time::Duration::ZERO,
        json: true,
        key_ttl: None,
    };
    let detect = match mode {
        "push" => heat_observer::Detect::Push,
        _ => heat_observer::Detect::Poll,
    };
    let config = heat_observer::Config::builder()
        .max_wait(std::time::Duration::from_millis(
            args.get("--max-wait-ms", 2000),
        ))
        .poll(std::time::Duration::from_millis(args.get("--poll-ms", 100)))
        .detect(detect)
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let (outcome, _) = pipeline::run_with(&options, config.clone(), Some(server));
    let mut row = pipeline::to_json(&options, &config, &outcome);
    row["scenario"] = json!("chaos");
    row["mode"] = json!(mode);
    row["seconds"] = json!(seconds);
    row["rate"] = json!(rate);
    row
}

pub fn print(rows: &[Value]) {
    println!(
        "\n{:<6} {:>8} {:>7} {:>7} {:>7} {:>9} {:>8} {:>9} {:>6} {:>9} {:>7} {:>7} {:>7} {:>11} {:>6}",
        "mode",
        "plans",
        "faults",
        "f.found",
        "f.nf",
        "wait err",
        "in fault",
        "unjudged",
        "acct",
        "RSS base",
        "warm",
        "end",
        "ratio",
        "heap w/e",
        "lines"
    );
    for r in rows {
        let a = &r["audit"];
        let c = &r["chaos"];
        let n = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x}"));
        let f = |v: &Value, d: usize| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.d$}"));
        println!(
            "{:<6} {:>8} {:>7} {:>7} {:>7} {:>9} {:>8} {:>9} {:>6} {:>9} {:>7} {:>7} {:>7} {:>11} {:>6}",
            r["mode"].as_str().unwrap_or(""),
            n(&r["plans"]),
            n(&c["faults"]),
            n(&a["false_found"]),
            n(&a["false_not_found"]),
            n(&a["wait_errors"]),
            n(&a["wait_errors_in_faults"]),
            n(&a["unknown"]),
            if r["balanced"] == true { "yes" } else { "NO" },
            f(&c["rss_mb"]["base"], 1),
            f(&c["rss_mb"]["warm"], 1),
            f(&c["rss_mb"]["end"], 1),
            f(&c["rss_mb"]["ratio"], 3),
            format!(
                "{}/{}",
                f(&c["heap_mb_over_base"]["samples"][0], 1),
                f(&c["heap_mb_over_base"]["end"], 1)
            ),
            n(&c["max_log_lines_per_fault"]),
        );
    }
}
