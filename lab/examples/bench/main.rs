//! The benchmark: what publish pays and what a burst of plans costs, for the
//! crate's pool and for the design it replaces, side by side in one run,
//! against a real Redis.
//!
//! ```text
//! cargo run --release --example bench                       # every scenario and mode
//! cargo run --release --example bench -- --scenario burst --mode pool
//! cargo run --release --example bench -- --json bench.json --minutes 2
//! ```
//!
//! Scenarios: `burst` (N plans at once), `steady` (R plans a second for T
//! seconds), `steady-20k` (20,000 a second), `short-lived` (keys that live
//! 20 ms), `down` (Redis unreachable throughout), `soak` (steady load for
//! M minutes, Redis restarted every 30 s); alone: `processes` (K Apply
//! processes on one Redis), `refusals` and `chaos` (faults on a schedule,
//! every event audited; modes `pool` and `push`). Modes: `channel-floor` (a bare
//! bounded channel, the floor), `oracle` (told when each key is written:
//! one look per plan at the right moment, the floor of detection; steady
//! scenarios and `processes` only), `keyspace` (the oracle, told by
//! keyspace notifications instead: what that detection would cost; the
//! same scenarios), `pool` (the crate's defaults), `push`
//! (push detection), `one-per-worker` (one job in flight per worker: the
//! literal loop), `thread-per-plan` (the seed's design, see
//! `baseline.rs`).
//!
//! Each case runs in a fresh process (this program, with `--case`), against
//! a private redis-server of its own unless `--redis` is given, so that its
//! peak RSS, thread count and Redis are its own.

mod baseline;
mod case;
mod chaos;
mod floor;
mod keyspace;
mod oracle;
mod probe;
mod processes;
mod refusals;
// The lab's parts the cases use: arguments, the private redis-server of
// each case, the simulated bridge, the target, and the pipeline (chaos).
use heat_observer_lab::{args, pipeline, server, sim, target};

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use args::{Args, Flag, fail, opt};
use serde_json::{Value, json};

const ABOUT: &str = "Benchmarks the late observer's pool against one job per worker and a thread per \
plan (the design it replaces), on a real Redis.";

const FLAGS: &[Flag] = &[
    opt(
        "--redis",
        "URL",
        "use this Redis (default: a private redis-server per case)",
    ),
    opt(
        "--scenario",
        "NAMES",
        "burst, steady, steady-20k, short-lived, down, soak, a comma list of them, or all \
         (default all); processes, refusals and chaos run alone",
    ),
    opt(
        "--mode",
        "NAMES",
        "channel-floor, oracle, keyspace, pool, push, one-per-worker, thread-per-plan, a comma list \
         of them, or all (default all)",
    ),
    opt("--plans", "N", "plans in the burst (default 10000)"),
    opt(
        "--rate",
        "PER_SEC",
        "plans a second in steady, down and soak (default 5000)",
    ),
    opt(
        "--seconds",
        "T",
        "length of steady and down (default 10) and of chaos (default 60)",
    ),
    opt("--minutes", "M", "length of soak (default 1)"),
    opt(
        "--max-wait-ms",
        "MS",
        "how long each plan is watched (default 2000)",
    ),
    opt("--poll-ms", "MS", "time between looks (default 100)"),
    opt(
        "--bridge-median-ms",
        "MS",
        "median delay of the bridge (default 500)",
    ),
    opt(
        "--missing-pct",
        "PCT",
        "plans that never get a key (default 10)",
    ),
    opt("--seed", "N", "seed of the bridge delays (default 42)"),
    opt(
        "--processes",
        "LIST",
        "processes: the counts of Apply processes, a comma list (default 1,4)",
    ),
    opt(
        "--other-writes",
        "PER_SEC",
        "processes: other clients' writes a second, of keys nobody watches (default 0)",
    ),
    opt(
        "--load",
        "N",
        "chaos: N busy threads in another process for the whole run (default 0)",
    ),
    opt(
        "--burn",
        "N",
        "(internal) spin N threads until killed: the load of --load",
    ),
    opt("--json", "PATH", "also write the results there as JSON"),
    opt(
        "--latencies",
        "PREFIX",
        "write every call's latency (ns) to PREFIX-<scenario>-<mode>.txt",
    ),
    opt(
        "--case",
        "SCENARIO:MODE",
        "(internal) run one case in this process, print its JSON",
    ),
];

const SCENARIOS: [&str; 6] = [
    "burst",
    "steady",
    "steady-20k",
    "short-lived",
    "down",
    "soak",
];
const MODES: [&str; 7] = [
    "channel-floor",
    "oracle",
    "keyspace",
    "pool",
    "push",
    "one-per-worker",
    "thread-per-plan",
];
/// Flags passed on to each case's process.
const PASSED_ON: [&str; 11] = [
    "--redis",
    "--plans",
    "--rate",
    "--seconds",
    "--minutes",
    "--max-wait-ms",
    "--poll-ms",
    "--bridge-median-ms",
    "--missing-pct",
    "--seed",
    "--latencies",
];

fn main() {
    // Counts the crate's warnings per fault in the chaos scenario.
    heat_observer_lab::chaos::install_counting_logger("warn");
    let args = Args::parse(ABOUT, FLAGS);
    if let Some(case) = args.opt("--case") {
        return run_one(&args, &case);
    }
    if let Some(n) = args.opt("--burn") {
        return burn(n.parse().unwrap_or_else(|_| fail("--burn wants a number")));
    }
    let scenario = args.opt("--scenario");
    if let Some(chaos_scenario @ ("chaos" | "chaos-cluster")) = scenario.as_deref() {
        // A busy machine: other processes take the CPU the workers, Redis
        // and the bridge need. Lies are lies whatever the load.
        let load = Load::start(args.get("--load", 0usize));
        let modes = match args.opt("--mode").as_deref() {
            None | Some("all") => chaos::MODES.to_vec(),
            Some(list) => list
                .split(',')
                .map(|m| {
                    *chaos::MODES.iter().find(|k| **k == m).unwrap_or_else(|| {
                        fail(&format!("chaos runs in modes {}", chaos::MODES.join(", ")))
                    })
                })
                .collect(),
        };
        let rows: Vec<Value> = modes
            .iter()
            .map(|mode| {
                eprintln!("running {chaos_scenario} / {mode} ...");
                run_child(&args, chaos_scenario, mode)
            })
            .collect();
        drop(load);
        chaos::print(&rows);
        if let Some(path) = args.opt("--json") {
            let load: usize = args.get("--load", 0);
            let doc = json!({ "machine": machine(), "load_threads": load, "scenarios": rows });
            std::fs::write(&path, doc.to_string())
                .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        }
        return;
    }
    if args.opt("--scenario").as_deref() == Some("processes") {
        let rows = processes::run(&args);
        processes::print(&rows);
        if let Some(path) = args.opt("--json") {
            let doc = json!({ "machine": machine(), "scenarios": rows });
            std::fs::write(&path, doc.to_string())
                .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        }
        return;
    }
    if args.opt("--scenario").as_deref() == Some("refusals") {
        let result = refusals::run();
        refusals::print(&result);
        if let Some(path) = args.opt("--json") {
            let doc = json!({ "machine": machine(), "scenarios": [result] });
            std::fs::write(&path, doc.to_string())
                .unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        }
        return;
    }
    // One name, a comma list, or all.
    let pick = |flag: &str, all: &'static [&'static str]| -> Vec<&'static str> {
        match args.opt(flag).as_deref() {
            None | Some("all") => all.to_vec(),
            Some(list) => list
                .split(',')
                .map(|one| {
                    *all.iter().find(|a| **a == one).unwrap_or_else(|| {
                        fail(&format!(
                            "unknown {flag} {one} (one of: {})",
                            all.join(", ")
                        ))
                    })
                })
                .collect(),
        }
    };
    if args.opt("--redis").is_none() && !server::available() {
        fail("redis-server is not on PATH; install it or pass --redis URL");
    }
    let mut cases = Vec::new();
    for scenario in pick("--scenario", &SCENARIOS) {
        if scenario == "soak" && args.opt("--redis").is_some() {
            eprintln!(
                "soak skipped: it restarts Redis, so it needs a private server (run without --redis)"
            );
            continue;
        }
        for mode in pick("--mode", &MODES) {
            if scenario == "steady-20k" && mode == "thread-per-plan" {
                eprintln!("steady-20k / thread-per-plan skipped: 40,000 threads and connections");
                continue;
            }
            if scenario == "short-lived" && matches!(mode, "one-per-worker" | "thread-per-plan") {
                continue; // the question there is poll against push
            }
            if matches!(mode, "oracle" | "keyspace") && !matches!(scenario, "steady" | "steady-20k")
            {
                continue; // a reference for what a steady flow costs Redis
            }
            eprintln!("running {scenario} / {mode} ...");
            let case = run_child(&args, scenario, mode);
            eprintln!("  {}", row(&case));
            cases.push(case);
        }
    }
    add_floor_ratios(&mut cases);
    let poll_ms: u64 = args.get("--poll-ms", 100);
    println!("\n{}\n", setup(&args));
    print_table(&cases);
    print_targets(&cases, poll_ms);
    if let Some(path) = args.opt("--json") {
        let doc = json!({ "setup": setup(&args), "machine": machine(), "scenarios": cases });
        let text = serde_json::to_string_pretty(&doc).expect("json");
        std::fs::write(&path, text).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
        eprintln!("wrote {path}");
    }
}

/// Runs one case in a fresh process and returns its JSON.
/// `n` busy threads in a process of their own, killed when dropped.
struct Load(Option<std::process::Child>);

impl Load {
    fn start(n: usize) -> Load {
        if n == 0 {
            return Load(None);
        }
        let exe = std::env::current_exe()
            .unwrap_or_else(|e| fail(&format!("cannot find this program: {e}")));
        let child = Command::new(exe)
            .arg("--burn")
            .arg(n.to_string())
            .spawn()
            .unwrap_or_else(|e| fail(&format!("cannot start the load: {e}")));
        eprintln!("load: {n} busy thread(s) in process {}", child.id());
        Load(Some(child))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Spins `n` threads until the process is killed (by its parent's `Load`,
/// or after an hour at the latest).
fn burn(n: usize) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3600);
    let threads: Vec<_> = (0..n)
        .map(|_| {
            std::thread::spawn(move || {
                let mut x = 0u64;
                while std::time::Instant::now() < until {
                    for _ in 0..100_000 {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

fn run_child(args: &Args, scenario: &str, mode: &str) -> Value {
    let exe =
        std::env::current_exe().unwrap_or_else(|e| fail(&format!("cannot find this program: {e}")));
    let mut cmd = Command::new(exe);
    cmd.arg("--case").arg(format!("{scenario}:{mode}"));
    for flag in PASSED_ON {
        if let Some(value) = args.opt(flag) {
            cmd.arg(flag).arg(value);
        }
    }
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| fail(&format!("cannot run a case: {e}")));
    if !out.status.success() {
        fail(&format!("case {scenario}/{mode} failed: {}", out.status));
    }
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| fail(&format!("case {scenario}/{mode}: bad output: {e}")))
}

/// The `--case` process: one case, its JSON on stdout.
fn run_one(args: &Args, case: &str) {
    let Some((scenario, mode)) = case.split_once(':') else {
        fail("--case wants SCENARIO:MODE")
    };
    if scenario == "chaos" || scenario == "chaos-cluster" {
        println!(
            "{}",
            chaos::run_case(args, mode, scenario == "chaos-cluster")
        );
        return;
    }
    let load = case::Load {
        plans: args.get("--plans", 10_000),
        rate: args.get("--rate", 5000.0),
        seconds: args.get("--seconds", 10.0),
        minutes: args.get("--minutes", 1.0),
        max_wait: Duration::from_millis(args.get("--max-wait-ms", 2000)),
        poll: Duration::from_millis(args.get("--poll-ms", 100)),
        median_ms: args.get("--bridge-median-ms", 500.0),
        missing_pct: args.get("--missing-pct", 10.0),
        seed: args.get("--seed", 42),
    };
    let (url, server) = match args.opt("--redis") {
        Some(url) => (url, None),
        None => {
            // Room for the baseline's connection per plan.
            let s = server::Server::start(server::free_port(), &["--maxclients", "19000"]);
            (s.url(), Some(s))
        }
    };
    let result = case::run(
        &load,
        scenario,
        mode,
        &url,
        server,
        args.opt("--latencies").as_deref(),
    );
    println!("{result}");
}

/// Each case's observe cost over the floor's (mode `channel-floor`) in the
/// same scenario of the same run, at p50, p99 and p99.9.
fn add_floor_ratios(cases: &mut [Value]) {
    let floors: Vec<(String, Value)> = cases
        .iter()
        .filter(|c| c["mode"] == "channel-floor")
        .map(|c| {
            (
                c["scenario"].as_str().unwrap_or("").to_owned(),
                c["submit_ns"].clone(),
            )
        })
        .collect();
    for case in cases.iter_mut() {
        let scenario = case["scenario"].as_str().unwrap_or("").to_owned();
        let Some((_, floor)) = floors.iter().find(|(s, _)| *s == scenario) else {
            continue;
        };
        let ratio = |k: &str| {
            let (c, f) = (case["submit_ns"][k].as_f64(), floor[k].as_f64());
            c.zip(f).map(|(c, f)| c / f.max(1.0))
        };
        let ratios = json!({"p50": ratio("p50"), "p99": ratio("p99"), "p999": ratio("p999")});
        case["vs_floor"] = ratios;
    }
}

fn num(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .fold(v, |v, k| &v[*k])
        .as_f64()
        .unwrap_or(f64::NAN)
}

/// A figure, or `-` where there is none (NaN).
fn fig(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        "-".to_owned()
    } else {
        format!("{x:.decimals$}")
    }
}

fn row(c: &Value) -> String {
    let s = |k: &str| num(c, &["submit_ns", k]);
    let opt4 = |k: &str| c[k].as_f64().map_or("-".to_owned(), |x| format!("{x:.4}"));
    let lag = c["lag_ms"].as_object().map_or("-".to_owned(), |_| {
        format!(
            "{}/{}",
            num(c, &["lag_ms", "p50"]),
            num(c, &["lag_ms", "p99"])
        )
    });
    let floor = |k: &str| fig(num(c, &["vs_floor", k]), 1);
    format!(
        "{:<10} {:<15} {:>6} {:>6} {:>7} {:>8} {:>10} {:>13} {:>7} {:>7} {:>9} {:>6} {:>6} {:>6} {:>6} {:>5} {:>6.1} {:>6} {:>6.1}",
        c["scenario"].as_str().unwrap_or(""),
        c["mode"].as_str().unwrap_or(""),
        num(c, &["plans"]),
        s("p50"),
        s("p99"),
        s("p999"),
        s("max"),
        format!("{}/{}/{}", floor("p50"), floor("p99"), floor("p999")),
        opt4("coverage"),
        opt4("bound"),
        lag,
        fig(num(c, &["round_trips_per_plan"]), 3),
        fig(num(c, &["commands_per_plan"]), 2),
        fig(num(c, &["worker_cpu_us_per_plan"]), 1),
        num(c, &["dropped"]),
        if c["accounted"].as_bool() == Some(true) {
            "yes"
        } else {
            "NO"
        },
        num(c, &["rss_mb"]),
        num(c, &["threads"]),
        num(c, &["wall_s"])
    )
}

fn print_table(cases: &[Value]) {
    println!(
        "{:<10} {:<15} {:>6} {:>6} {:>7} {:>8} {:>10} {:>13} {:>7} {:>7} {:>9} {:>6} {:>6} {:>6} {:>6} {:>5} {:>6} {:>6} {:>6}",
        "case",
        "mode",
        "plans",
        "ns p50",
        "p99",
        "p99.9",
        "max",
        "x floor",
        "cover",
        "bound",
        "lag ms",
        "rt/pl",
        "cmd/pl",
        "cpu µs",
        "drops",
        "acct",
        "RSS MB",
        "thrds",
        "wall s"
    );
    for c in cases {
        println!("{}", row(c));
        if let Some((first, last)) = soak_rss(c) {
            println!(
                "        soak: RSS {first:.1} MB after warm-up, {last:.1} MB at the end; accounting after each restart: {}",
                c["restarts_accounted"]
            );
        }
    }
    println!();
    for scenario in SCENARIOS {
        let find = |m: &str| {
            cases
                .iter()
                .find(|c| c["scenario"] == scenario && c["mode"] == m)
        };
        let (Some(p), Some(t)) = (find("pool"), find("thread-per-plan")) else {
            continue;
        };
        // A ratio where both figures exist and the pool's is not zero.
        let r = |path: &[&str], decimals: usize| {
            let (tv, pv) = (num(t, path), num(p, path));
            if pv > 0.0 {
                format!("{}x", fig(tv / pv, decimals))
            } else {
                "-".to_owned()
            }
        };
        println!(
            "{scenario}: thread-per-plan / pool: submit p50 {}, p99 {}, p99.9 {}; round trips {}; RSS {}; threads {} vs {}",
            r(&["submit_ns", "p50"], 0),
            r(&["submit_ns", "p99"], 0),
            r(&["submit_ns", "p999"], 0),
            r(&["round_trips_per_plan"], 0),
            r(&["rss_mb"], 1),
            num(t, &["threads"]),
            num(p, &["threads"])
        );
    }
}

/// RSS after warm-up (10 s) and at the end of a soak.
fn soak_rss(c: &Value) -> Option<(f64, f64)> {
    let samples: Vec<f64> = c["rss_samples_mb"]
        .as_array()?
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    let first = *samples.get(9).or(samples.first())?;
    Some((first, *samples.last()?))
}

/// The issue's targets for `pool`, checked against this run.
fn print_targets(cases: &[Value], poll_ms: u64) {
    let mut out = String::new();
    for c in cases
        .iter()
        .filter(|c| c["mode"] == "pool" || c["mode"] == "push")
    {
        let scenario = c["scenario"].as_str().unwrap_or("");
        let mode = c["mode"].as_str().unwrap_or("");
        let mut check = |what: String, ok: bool| {
            let _ = writeln!(
                out,
                "  [{}] {scenario} {mode}: {what}",
                if ok { "pass" } else { "FAIL" }
            );
        };
        if mode == "push" {
            push_targets(cases, c, scenario, &mut check);
            continue;
        }
        let floor = |k: &str| num(c, &["vs_floor", k]);
        if matches!(scenario, "steady" | "soak") {
            let (p50, p99, p999) = (floor("p50"), floor("p99"), floor("p999"));
            check(format!("observe p50 {p50:.2}x floor <= 1.5x"), p50 <= 1.5);
            check(format!("observe p99 {p99:.2}x floor <= 1.5x"), p99 <= 1.5);
            check(format!("observe p99.9 {p999:.2}x floor <= 2x"), p999 <= 2.0);
        }
        check(
            "every call accounted for".to_owned(),
            c["accounted"].as_bool() == Some(true),
        );
        let (cover, bound) = (num(c, &["coverage"]), num(c, &["bound"]));
        let coverage_ok = cover >= 0.995 * bound;
        match scenario {
            "burst" => {
                check(
                    format!("coverage {cover:.4} >= 0.995 x bound {bound:.4}"),
                    coverage_ok,
                );
                let lag = num(c, &["lag_ms", "p99"]);
                check(
                    format!("lag p99 {lag} ms <= poll + 20"),
                    lag <= (poll_ms + 20) as f64,
                );
                let rt = num(c, &["round_trips_per_plan"]);
                check(format!("round trips per plan {rt:.3} <= 0.2"), rt <= 0.2);
                let rss = num(c, &["rss_mb"]);
                check(format!("peak RSS {rss:.1} MB <= 30"), rss <= 30.0);
                let (threads, workers) = (
                    num(c, &["threads"]),
                    heat_observer::Config::default().workers() as f64,
                );
                check(
                    format!("threads {threads} = workers {workers}"),
                    threads == workers,
                );
            }
            "steady" | "steady-20k" => {
                let drops = num(c, &["dropped"]);
                check(format!("drops {drops} = 0"), drops == 0.0);
                check(
                    format!("coverage {cover:.4} >= 0.995 x bound {bound:.4}"),
                    coverage_ok,
                );
                let cpu = num(c, &["worker_cpu_us_per_plan"]);
                if scenario == "steady" {
                    check(
                        format!("worker CPU {cpu:.1} µs per plan <= 10"),
                        cpu <= 10.0,
                    );
                } else {
                    let lag = num(c, &["lag_ms", "p99"]);
                    check(
                        format!("lag p99 {lag} ms <= poll + 20"),
                        lag <= (poll_ms + 20) as f64,
                    );
                    let rss = num(c, &["rss_mb"]);
                    check(format!("peak RSS {rss:.1} MB <= 40"), rss <= 40.0);
                    let (threads, workers) = (
                        num(c, &["threads"]),
                        heat_observer::Config::default().workers() as f64,
                    );
                    check(
                        format!("threads {threads} = workers {workers}"),
                        threads == workers,
                    );
                    check(format!("worker CPU {cpu:.1} µs per plan (reported)"), true);
                }
            }
            "soak" => {
                if let Some((first, last)) = soak_rss(c) {
                    check(
                        format!("RSS flat: {last:.1} MB within 10% of {first:.1} MB"),
                        last <= first * 1.1,
                    );
                }
                let restarts: Vec<bool> = c["restarts_accounted"]
                    .as_array()
                    .map_or(Vec::new(), |a| a.iter().map(|x| x == true).collect());
                let exact = !restarts.is_empty() && restarts.iter().all(|x| *x);
                check(
                    format!("accounting exact after every restart {restarts:?}"),
                    exact,
                );
            }
            _ => {}
        }
    }
    if !out.is_empty() {
        println!("\ntargets (pool, push):\n{out}");
    }
}

/// Issue 12's targets for `push`, against `pool` (poll) in the same run.
fn push_targets(cases: &[Value], c: &Value, scenario: &str, check: &mut impl FnMut(String, bool)) {
    let poll = cases
        .iter()
        .find(|p| p["scenario"] == scenario && p["mode"] == "pool");
    let (cover, bound) = (num(c, &["coverage"]), num(c, &["bound"]));
    match scenario {
        "burst" | "steady" => {
            let lag = num(c, &["lag_ms", "p99"]);
            check(format!("lag p99 {lag} ms <= 5"), lag <= 5.0);
            check(
                format!("coverage {cover:.4} >= 0.995 x bound {bound:.4}"),
                cover >= 0.995 * bound,
            );
            let cmd = num(c, &["commands_per_plan"]);
            check(format!("commands per plan {cmd:.2} <= 3.3"), cmd <= 3.3);
            let rt = num(c, &["round_trips_per_plan"]);
            check(format!("round trips per plan {rt:.3} <= 0.1"), rt <= 0.1);
        }
        "short-lived" => {
            check(
                format!("coverage {cover:.4} >= 0.99 x bound {bound:.4}"),
                cover >= 0.99 * bound,
            );
            if let Some(p) = poll {
                check(
                    format!("(poll found {:.4} of the same)", num(p, &["coverage"])),
                    true,
                );
            }
        }
        _ => {}
    }
    if let Some(p) = poll {
        let (threads, rss, prss) = (
            num(c, &["threads"]),
            num(c, &["rss_mb"]),
            num(p, &["rss_mb"]),
        );
        check(
            format!("threads {threads} = poll's {}", num(p, &["threads"])),
            threads == num(p, &["threads"]),
        );
        check(
            format!("RSS {rss:.1} MB within 2 MB of poll's {prss:.1}"),
            (rss - prss).abs() <= 2.0,
        );
        let (o, po) = (num(c, &["submit_ns", "p99"]), num(p, &["submit_ns", "p99"]));
        check(
            format!("observe p99 {o} ns against poll's {po} ns (same run)"),
            true,
        );
    }
}

fn setup(args: &Args) -> String {
    format!(
        "max_wait {} ms, poll {} ms, bridge median {} ms, {}% never keyed, seed {}; {}",
        args.get::<u64>("--max-wait-ms", 2000),
        args.get::<u64>("--poll-ms", 100),
        args.get::<f64>("--bridge-median-ms", 500.0),
        args.get::<f64>("--missing-pct", 10.0),
        args.get::<u64>("--seed", 42),
        machine()
    )
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), Redis on loopback")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_names_every_scenario_and_mode() {
        let help = |name: &str| {
            FLAGS
                .iter()
                .find(|f| f.name == name)
                .map(|f| f.help)
                .unwrap_or_default()
        };
        for scenario in SCENARIOS.iter().chain(&["processes", "refusals"]) {
            assert!(help("--scenario").contains(scenario), "{scenario}");
        }
        for mode in MODES {
            assert!(help("--mode").contains(mode), "{mode}");
        }
    }
}
