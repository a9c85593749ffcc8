//! Scenarios `chaos` and `chaos-cluster`: the pipeline's chaos run
//! (`pipeline --chaos`, with `--cluster` for the second) in
//! poll and in push, each in a process of its own. On one server: a steady
//! rate while a private Redis is restarted, stopped, has its clients
//! killed, its scripts flushed, its writes paused, its loop put to sleep
//! and (push) its tracking table shrunk. On a cluster: a master killed and
//! failed over (the stream's, a heat key's), a live reshard of 3,000 slots
//! and back, a planned `CLUSTER FAILOVER`, a master paused past the node
//! timeout (see `support/cluster_faults.rs`). Every event is held against what
//! happened (the audit); every call must end in exactly one outcome; the
//! memory at the end must stay within 1.1x of the memory after one fault
//! of each kind; a fault may cost at most two warnings.

use serde_json::{Value, json};

use crate::args::{Args, fail};
use crate::pipeline;

/// The modes the scenario runs: the pool's defaults (poll) and push.
pub const MODES: [&str; 2] = ["pool", "push"];

/// One case, in this process: `mode` for `--seconds` at `--rate`, on a
/// private redis-server or (`cluster`) a private Redis Cluster of three
/// masters with a replica each.
pub fn run_case(args: &Args, mode: &str, cluster: bool) -> Value {
    let rate: f64 = args.get("--rate", if cluster { 1000.0 } else { 5000.0 });
    let seconds: f64 = args.get("--seconds", 60.0);
    if !heat_observer_lab::server::available() {
        fail("the chaos scenarios need redis-server on PATH");
    }
    let troubled = if cluster {
        troubled_cluster()
    } else {
        heat_observer_lab::chaos::Troubled::Server(heat_observer_lab::server::Server::start(
            heat_observer_lab::server::free_port(),
            &["--enable-debug-command", "local"],
        ))
    };
    let target = match &troubled {
        heat_observer_lab::chaos::Troubled::Server(server) => {
            heat_observer_lab::target::Target::Redis(server.url())
        }
        #[cfg(feature = "cluster")]
        heat_observer_lab::chaos::Troubled::Cluster(cluster) => {
            heat_observer_lab::target::Target::Cluster(cluster.addresses())
        }
    };
    let options = pipeline::Options {
        plans: (rate * seconds) as usize,
        rate,
        median_ms: args.get("--bridge-median-ms", 500.0),
        sigma: 0.8,
        missing_pct: args.get("--missing-pct", 10.0),
        seed: args.get("--seed", 42),
        run_id: heat_observer_lab::sim::fresh_run_id(),
        target,
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
        // The whole run stays in the stream, which is read again after it
        // (what a failover lost, what it holds twice).
        .stream_maxlen(1 << 22)
        .build()
        .unwrap_or_else(|e| fail(&e.to_string()));
    let (outcome, _) = pipeline::run_with(&options, config.clone(), Some(troubled));
    let mut row = pipeline::to_json(&options, &config, &outcome);
    row["scenario"] = json!(if cluster { "chaos-cluster" } else { "chaos" });
    row["mode"] = json!(mode);
    row["seconds"] = json!(seconds);
    row["rate"] = json!(rate);
    row
}

#[cfg(feature = "cluster")]
fn troubled_cluster() -> heat_observer_lab::chaos::Troubled {
    match heat_observer_lab::cluster::Cluster::start_with("bench --scenario chaos-cluster", 1, 1000)
    {
        Some(cluster) => heat_observer_lab::chaos::Troubled::Cluster(cluster),
        None => fail("chaos-cluster could not start its cluster"),
    }
}

#[cfg(not(feature = "cluster"))]
fn troubled_cluster() -> heat_observer_lab::chaos::Troubled {
    fail("chaos-cluster needs the crate's feature cluster (--features cluster)")
}

pub fn print(rows: &[Value]) {
    println!(
        "\n{:<6} {:>8} {:>7} {:>7} {:>7} {:>9} {:>8} {:>9} {:>6} {:>9} {:>7} {:>7} {:>7} {:>11} {:>6} {:>13}",
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
        "lines",
        "no event e/l"
    );
    for r in rows {
        let a = &r["audit"];
        let c = &r["chaos"];
        let n = |v: &Value| v.as_f64().map_or("-".to_owned(), |x| format!("{x}"));
        let f = |v: &Value, d: usize| v.as_f64().map_or("-".to_owned(), |x| format!("{x:.d$}"));
        println!(
            "{:<6} {:>8} {:>7} {:>7} {:>7} {:>9} {:>8} {:>9} {:>6} {:>9} {:>7} {:>7} {:>7} {:>11} {:>6} {:>13}",
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
            format!(
                "{}/{}",
                n(&r["points"]["create_apply_plan"]["without_event"]),
                n(&r["points"]["publish_plan_post"]["without_event"])
            ),
        );
    }
}
