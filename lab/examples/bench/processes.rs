//! Scenario `processes`: K Apply processes (K = 1 and 4, or those
//! `--processes` lists; each a process of its own, with its own simulated
//! bridge) on one private Redis, at the same total rate, in poll and in
//! push, and in `keyspace` (detection by keyspace notifications, measured
//! before it is built: `keyspace.rs`). `--other-writes N` adds the shared
//! server's other clients: N writes a second of keys nobody watches, in
//! every mode (with notifications on, each pays for one). What each plan costs Redis (CPU
//! from `INFO cpu`, bytes sent from `total_net_output_bytes`) and the
//! observers' worker threads, and the coverage against its bound, each
//! also as a ratio to mode `oracle` in the same run (one look per plan at
//! the right moment: the floor of detection). Push used to reach
//! exactness by broadcast, which cost Redis more than the poll and grew
//! with every process; this shows where it stands.

use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::args::{Args, fail};
use crate::probe;
use crate::server;

/// Plans in all, and plans a second in all, by default.
const PLANS: usize = 20_000;
const RATE: f64 = 5_000.0;

pub fn run(args: &Args) -> Vec<Value> {
    let rate: f64 = args.get("--rate", RATE);
    let plans: usize = args.get("--plans", PLANS);
    let seconds = plans as f64 / rate;
    let server = server::Server::start(server::free_port(), &[]);
    let mut admin = server::connect(&server.url());
    let mut rows = Vec::new();
    let counts: Vec<usize> = args
        .opt("--processes")
        .unwrap_or_else(|| "1,4".to_owned())
        .split(',')
        .map(|k| {
            k.trim()
                .parse()
                .unwrap_or_else(|_| fail(&format!("--processes: not a count: {k:?}")))
        })
        .collect();
    let other_writes: f64 = args.get("--other-writes", 0.0);
    for processes in counts {
        let mut oracle: Option<Value> = None;
        for mode in ["oracle", "keyspace", "pool", "push"] {
            eprintln!("running processes / {mode} / {processes} process(es) ...");
            // The shared server's other clients, writing keys nobody
            // watches, in every mode alike.
            let others = (other_writes > 0.0).then(|| Others::start(&server.url(), other_writes));
            let (cpu_before, out_before) = probe::redis_cpu_and_output(&mut admin);
            let calls_before = probe::command_calls(&mut admin);
            // One prefix for the heat keys of every process, as in
            // production: push must not send a process what others watch.
            let heat_prefix = format!("bench:{processes}:{mode}:heat:by_plan:");
            let mut children: Vec<_> = (0..processes)
                .map(|_| {
                    let share = rate / processes as f64;
                    spawn(args, mode, &server.url(), share, seconds, &heat_prefix)
                })
                .collect();
            // Every process done with its load, none reading back yet.
            let mut readers: Vec<_> = children.iter_mut().map(settled).collect();
            let (cpu_after, out_after) = probe::redis_cpu_and_output(&mut admin);
            let calls_after = probe::command_calls(&mut admin);
            let other_writes_made = others.map_or(0, Others::stop);
            if mode == "keyspace" {
                // Off again: the other modes' writes pay for no message.
                redis::cmd("CONFIG")
                    .arg("SET")
                    .arg("notify-keyspace-events")
                    .arg("")
                    .exec(&mut admin)
                    .unwrap_or_else(|e| fail(&format!("CONFIG SET: {e}")));
            }
            for child in &mut children {
                go(child);
            }
            let cases: Vec<Value> = children
                .into_iter()
                .zip(readers.iter_mut())
                .map(|(child, reader)| finish(child, reader))
                .collect();
            let scripts = probe::delta(
                &calls_before,
                &calls_after,
                &["evalsha", "evalsha_ro", "eval", "script|load"],
            );
            let plain = probe::delta(
                &calls_before,
                &calls_after,
                &["exists", "set", "get", "del", "xadd", "client|caching"],
            );
            let total: f64 = cases
                .iter()
                .map(|c| c["plans"].as_f64().unwrap_or(0.0))
                .sum();
            let sum = |k: &str| {
                cases
                    .iter()
                    .map(|c| c[k].as_f64().unwrap_or(0.0))
                    .sum::<f64>()
            };
            let weighted = |k: &str| {
                cases
                    .iter()
                    .map(|c| c[k].as_f64().unwrap_or(0.0) * c["plans"].as_f64().unwrap_or(0.0))
                    .sum::<f64>()
                    / total.max(1.0)
            };
            let lag_p99 = cases
                .iter()
                .filter_map(|c| c["lag_ms"]["p99"].as_f64())
                .fold(0.0, f64::max);
            let mut row = json!({
                "scenario": "processes",
                "mode": if mode == "pool" { "poll" } else { mode },
                "processes": processes,
                "plans": total,
                "redis_cpu_us_per_plan": (cpu_after - cpu_before) * 1e6 / total.max(1.0),
                "redis_out_bytes_per_plan": (out_after.saturating_sub(out_before)) as f64 / total.max(1.0),
                "worker_cpu_us_per_plan": weighted("worker_cpu_us_per_plan"),
                "process_cpu_us_per_plan": sum("process_cpu_s") * 1e6 / total.max(1.0),
                "coverage": weighted("coverage"),
                "bound": weighted("bound"),
                "lag_p99_ms": lag_p99,
                "commands_per_plan": (scripts + plain) as f64 / total.max(1.0),
                "other_writes": other_writes_made,
                "accounted": cases.iter().all(|c| c["accounted"] == true),
            });
            let floor = oracle.get_or_insert_with(|| row.clone());
            for k in [
                "redis_cpu_us_per_plan",
                "redis_out_bytes_per_plan",
                "worker_cpu_us_per_plan",
                "commands_per_plan",
            ] {
                let of = floor[k].as_f64().unwrap_or(f64::NAN);
                let ratio = row[k].as_f64().unwrap_or(f64::NAN) / of;
                row[format!("{k}_x_oracle")] = json!(ratio);
            }
            eprintln!("  {row}");
            rows.push(row);
        }
    }
    drop(server);
    rows
}

/// One Apply process: a `steady` case in `mode` at `rate` for `seconds`.
fn spawn(
    args: &Args,
    mode: &str,
    url: &str,
    rate: f64,
    seconds: f64,
    heat_prefix: &str,
) -> std::process::Child {
    let exe =
        std::env::current_exe().unwrap_or_else(|e| fail(&format!("cannot find this program: {e}")));
    let mut cmd = Command::new(exe);
    cmd.arg("--case")
        .arg(format!("steady:{mode}"))
        .arg("--redis")
        .arg(url)
        .arg("--rate")
        .arg(rate.to_string())
        .arg("--seconds")
        .arg(seconds.to_string());
    for flag in [
        "--max-wait-ms",
        "--poll-ms",
        "--bridge-median-ms",
        "--missing-pct",
        "--seed",
    ] {
        if let Some(value) = args.opt(flag) {
            cmd.arg(flag).arg(value);
        }
    }
    cmd.env("BENCH_BARRIER", "1")
        .env("BENCH_HEAT_PREFIX", heat_prefix)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| fail(&format!("cannot start a process: {e}")))
}

/// Waits until the process says its load is over; returns its stdout.
fn settled(child: &mut std::process::Child) -> std::io::BufReader<std::process::ChildStdout> {
    use std::io::BufRead;
    let stdout = child.stdout.take().unwrap_or_else(|| fail("no stdout"));
    let mut reader = std::io::BufReader::new(stdout);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    if line.trim() != "SETTLED" {
        fail(&format!("a process said {line:?}"));
    }
    reader
}

/// Lets the process read its events back and report.
fn go(child: &mut std::process::Child) {
    use std::io::Write;
    if let Some(stdin) = child.stdin.as_mut() {
        let _ = writeln!(stdin, "go");
    }
}

fn finish(
    child: std::process::Child,
    reader: &mut std::io::BufReader<std::process::ChildStdout>,
) -> Value {
    use std::io::Read;
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    let status = child
        .wait_with_output()
        .unwrap_or_else(|e| fail(&format!("a process failed: {e}")))
        .status;
    if !status.success() {
        fail(&format!("a process failed: {status}"));
    }
    serde_json::from_str(rest.trim()).unwrap_or_else(|e| fail(&format!("bad output: {e}")))
}

/// The table of the rows, as the README shows it.
pub fn print(rows: &[Value]) {
    println!(
        "\n{:<8} {:>3} {:>7} {:>14} {:>9} {:>16} {:>15} {:>9} {:>15} {:>8} {:>7} {:>8} {:>7}",
        "mode",
        "K",
        "plans",
        "Redis CPU µs/pl",
        "x oracle",
        "Redis out B/pl",
        "worker CPU µs/pl",
        "x oracle",
        "process µs/pl",
        "cover",
        "bound",
        "lag p99",
        "cmd/pl"
    );
    for r in rows {
        let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
        println!(
            "{:<8} {:>3} {:>7} {:>14.1} {:>9.2} {:>16.1} {:>15.1} {:>9.2} {:>15.1} {:>8.4} {:>7.4} {:>8} {:>7.2}",
            r["mode"].as_str().unwrap_or(""),
            f("processes"),
            f("plans"),
            f("redis_cpu_us_per_plan"),
            f("redis_cpu_us_per_plan_x_oracle"),
            f("redis_out_bytes_per_plan"),
            f("worker_cpu_us_per_plan"),
            f("worker_cpu_us_per_plan_x_oracle"),
            f("process_cpu_us_per_plan"),
            f("coverage"),
            f("bound"),
            f("lag_p99_ms"),
            f("commands_per_plan"),
        );
    }
}

/// Other clients of a shared Redis: `SET other:<n> x EX 60`, paced at a
/// rate, 1 ms of writes pipelined at a time.
struct Others {
    stop: crossbeam_channel::Sender<()>,
    thread: std::thread::JoinHandle<u64>,
}

impl Others {
    fn start(url: &str, rate: f64) -> Others {
        let mut con = server::connect(url);
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let thread = std::thread::spawn(move || {
            let start = std::time::Instant::now();
            let mut made = 0u64;
            while stopped.try_recv().is_err() {
                let due = (start.elapsed().as_secs_f64() * rate) as u64;
                if due <= made {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    continue;
                }
                let mut pipe = redis::pipe();
                for n in made..due {
                    pipe.cmd("SET")
                        .arg(format!("other:{n}"))
                        .arg("x")
                        .arg("EX")
                        .arg(60)
                        .ignore();
                }
                if pipe.exec(&mut con).is_err() {
                    break;
                }
                made = due;
            }
            made
        });
        Others { stop, thread }
    }

    /// Stops the writers; how many writes they made.
    fn stop(self) -> u64 {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or(0)
    }
}
