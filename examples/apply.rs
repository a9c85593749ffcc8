//! The drop-in use of the late observer in the Apply service: start it once
//! from the environment (fail open), call it after each publish, and on
//! SIGTERM or Ctrl-C stop taking plans, let it finish watching those it
//! holds, print its report and exit 0, as `systemctl restart` expects.
//!
//! A simulated HeatBridge writes the `by_plan` keys of three plans in four,
//! 300 ms after their publish. It finds its Redis as the library does:
//! `P28_LATE_OBS_REDIS_URL`, else `--redis URL`, else `REDIS_URL`, else the
//! in-memory store, and says which. `--metrics-addr` serves `/metrics`
//! (also of an observer that a bad setting left disabled, for the
//! `HeatObserverConfigError` alert), `--linger-s` keeps serving after the
//! stop (for the orderly-stop side of `HeatObserverNotRunning`):
//!
//! ```text
//! cargo run --example apply
//! cargo run --example apply -- --redis redis://127.0.0.1:6379 --plans 5000 --rate 500 --json
//! RUST_LOG=heat_observer=debug P28_LATE_OBS_MAX_WAIT_MS=500 cargo run --example apply
//! P28_LATE_OBS_POLL_MS=abc cargo run --example apply -- --redis redis://127.0.0.1:6379 --metrics-addr 9185
//! ```

#[path = "support/args.rs"]
mod args;
#[path = "support/metrics_http.rs"]
mod metrics_http;
#[path = "support/target.rs"]
mod target;

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use args::{Args, Flag, flag, opt};
use heat_observer::{Config, LateObserver, MemoryStore, ObsPoint, ShutdownReport};
use serde_json::json;
use target::Target;

const FLAGS: &[Flag] = &[
    opt(
        "--redis",
        "URL",
        "use this Redis, unless P28_LATE_OBS_REDIS_URL is set (default: REDIS_URL, else in memory)",
    ),
    opt(
        "--metrics-addr",
        "HOST:PORT",
        "serve /metrics there (a bare port means loopback)",
    ),
    opt(
        "--linger-s",
        "S",
        "keep serving /metrics this long after the stop (default 0)",
    ),
    opt("--plans", "N", "plans to publish (default 20)"),
    opt("--rate", "PER_SEC", "plans a second (default 25)"),
    opt(
        "--run-id",
        "ID",
        "prefix of plan ids (default: fresh per run)",
    ),
    flag("--json", "print the report as one JSON object"),
    flag(
        "--stop-now",
        "on a signal, abandon what is watched instead of draining",
    ),
];

/// The bridge writes a plan's key this long after its publish.
const BRIDGE_DELAY: Duration = Duration::from_millis(300);

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse(
        "The drop-in use of the late observer, with a simulated HeatBridge and SIGTERM handling.",
        FLAGS,
    );
    let (target, source) = Target::like_the_library(&args, true);
    log::info!("apply: {} ({source})", target.describe());
    let plans: usize = args.get("--plans", 20);
    let rate: f64 = args.get("--rate", 25.0);
    let run_id = args.opt("--run-id").unwrap_or_else(fresh_run_id);
    let memory = MemoryStore::new();

    // SIGTERM (systemctl stop/restart) and Ctrl-C set a flag; the loop
    // below sees it between plans.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&stop)).expect("signal handler");
    }

    // --- Apply startup: one call, never fails --------------------------------
    let observer = match &target {
        Target::Redis(url) => LateObserver::from_env(url),
        _ => start_in_memory(&memory),
    };

    let metrics = args.opt("--metrics-addr").map(|addr| {
        let serving = observer.handle();
        let server =
            metrics_http::MetricsServer::start(&loopback(&addr), move || serving.metric_families())
                .unwrap_or_else(|e| args::fail(&e));
        log::info!("serving http://{}/metrics", server.addr());
        server
    });

    // --- Simulated HeatGate + HeatBridge -------------------------------------
    let (published, bridge_rx) = mpsc::channel::<(String, Instant)>();
    let bridge = {
        let (memory, target) = (memory.clone(), target.clone());
        let config = observer.config().clone();
        thread::spawn(move || run_bridge(&bridge_rx, &memory, &target, &config))
    };

    // --- Apply's loop: create, early look, publish, late look ---------------
    let start = Instant::now();
    let mut signalled_at = None;
    for i in 0..plans {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        while Instant::now() < due && !stop.load(Ordering::Relaxed) {
            thread::sleep((due - Instant::now()).min(Duration::from_millis(5)));
        }
        if stop.load(Ordering::Relaxed) {
            signalled_at = Some(Instant::now());
            break;
        }
        let plan = format!("{run_id}-{i}");
        let _ = observer.observe_now(&plan, "BTCUSDT"); // at create_apply_plan
        publish_plan(&plan);
        // The one line Apply adds after publish; counted either way.
        if let Err(refused) = observer.observe_late(&plan, "BTCUSDT") {
            log::debug!("plan {plan} not observed: {refused}");
        }
        if i % 4 != 3 {
            let _ = published.send((plan, Instant::now()));
        }
    }
    drop(published);

    // --- Stop: drain (default) or abandon, then report -----------------------
    let report = if args.flag("--stop-now") && signalled_at.is_some() {
        observer.shutdown_now(observer.config().shutdown_timeout())
    } else {
        observer.shutdown(observer.config().shutdown_timeout())
    };
    let _ = bridge.join();
    print_report(&args, &report, &run_id, signalled_at);
    let linger = Duration::from_secs_f64(args.get("--linger-s", 0.0));
    if let Some(server) = metrics.filter(|_| !linger.is_zero()) {
        log::info!(
            "stopped; serving http://{}/metrics for {linger:?} more",
            server.addr()
        );
        thread::sleep(linger);
    }
}

/// `9185` or `:9185` mean loopback; anything else is used as given.
fn loopback(addr: &str) -> String {
    let port = addr.strip_prefix(':').unwrap_or(addr);
    match port.parse::<u16>() {
        Ok(_) => format!("127.0.0.1:{port}"),
        Err(_) => addr.to_owned(),
    }
}

/// Without Redis: the same settings, the in-memory store. A bad setting
/// exits 2 naming it (the Redis path logs it and runs disabled instead).
fn start_in_memory(memory: &MemoryStore) -> LateObserver {
    let config = Config::from_env().unwrap_or_else(|e| args::fail(&e.to_string()));
    LateObserver::start(config, memory.clone()).unwrap_or_else(|e| args::fail(&e.to_string()))
}

/// Writes each plan's key `BRIDGE_DELAY` after its publish, in publish
/// order, until the plans stop coming.
fn run_bridge(
    plans: &mpsc::Receiver<(String, Instant)>,
    memory: &MemoryStore,
    target: &Target,
    config: &Config,
) {
    let mut redis = (!target.is_memory())
        .then(|| target.connect())
        .and_then(|con| {
            con.inspect_err(|e| log::error!("bridge cannot reach Redis: {e}"))
                .ok()
        });
    let mut due: VecDeque<(String, Instant)> = VecDeque::new();
    let mut open = true;
    while open || !due.is_empty() {
        let wait = due.front().map_or(Duration::from_millis(50), |(_, at)| {
            (*at + BRIDGE_DELAY).saturating_duration_since(Instant::now())
        });
        match plans.recv_timeout(wait) {
            Ok(plan) => due.push_back(plan),
            Err(mpsc::RecvTimeoutError::Disconnected) => open = false,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        while let Some((plan, at)) = due.front() {
            if *at + BRIDGE_DELAY > Instant::now() {
                break;
            }
            let key = config.heat_key(plan);
            match &mut redis {
                Some(con) => {
                    let set = redis::cmd("SET")
                        .arg(&key)
                        .arg(1)
                        .arg("EX")
                        .arg(3600)
                        .exec(&mut **con);
                    if let Err(e) = set {
                        log::warn!("bridge write of {key} failed: {e}");
                    }
                }
                None => memory.insert_key(key),
            }
            due.pop_front();
        }
    }
}

fn print_report(args: &Args, report: &ShutdownReport, run_id: &str, signalled_at: Option<Instant>) {
    let stats = &report.stats;
    let exit_ms = signalled_at.map(|t| t.elapsed().as_millis() as u64);
    if args.flag("--json") {
        let outcomes: serde_json::Map<_, _> = stats
            .outcomes()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), json!(v)))
            .collect();
        let run = json!({
            "run_id": run_id,
            "calls": stats.calls(),
            "outcomes": outcomes,
            "balanced": stats.is_balanced(),
            "signalled": signalled_at.is_some(),
            "signal_to_exit_ms": exit_ms,
            "held_at_stop": report.held_at_stop,
            "drained": report.drained(),
            "written": report.written,
            "abandoned": report.abandoned(),
        });
        println!("{run}");
        return;
    }
    for point in ObsPoint::BUILT_IN {
        if let Some(p) = stats.point(point) {
            let total = p.found + p.not_found;
            let share = 100.0 * p.found as f64 / total.max(1) as f64;
            println!(
                "{point:<18} found {:>5} / {:>5}  ({share:.0}%)",
                p.found, total
            );
        }
    }
    println!(
        "stop: held {}, drained {}, written {}, abandoned {}{}",
        report.held_at_stop,
        report.drained(),
        report.written,
        report.abandoned(),
        exit_ms.map_or(String::new(), |ms| format!(", {ms} ms from the signal"))
    );
    println!(
        "calls {}, every one accounted for: {}",
        stats.calls(),
        stats.is_balanced()
    );
}

fn fresh_run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("apply-{:x}", nanos % (1 << 40))
}

fn publish_plan(_plan_id: &str) {
    // XADD quantum:stream:apply.plan ... in the real service.
}
