//! The drop-in use of the late observer in the Apply service: start it once
//! from the environment (fail open), call it after each publish, and on
//! SIGTERM or Ctrl-C stop taking plans, let it finish watching those it
//! holds, print its report and exit 0, as `systemctl restart` expects.
//!
//! The observer finds its Redis as the library does:
//! `P28_LATE_OBS_REDIS_URL`, else `--redis URL`, else `REDIS_URL`, else the
//! in-memory store, and says which. A simulated HeatBridge writes the
//! `by_plan` keys of three plans in four, 300 ms after their publish, on
//! its own connection (`--bridge-redis URL`, default the observer's Redis:
//! the observer's least-privilege user cannot write heat keys), which it
//! opens again after an outage. `--metrics-addr` serves `/metrics` (also
//! of an observer that a bad setting left disabled, for the
//! `HeatObserverConfigError` alert), `--linger-s` keeps serving after the
//! stop (for the orderly-stop side of `HeatObserverNotRunning`) until it
//! ends or a second SIGTERM or Ctrl-C comes. The report measures the stop
//! from the signal's arrival, as an operator's clock does:
//!
//! ```text
//! cargo run --example apply-sim
//! cargo run --example apply-sim -- --redis redis://127.0.0.1:6379 --plans 5000 --rate 500 --json
//! cargo run --features cluster --example apply-sim -- --redis-cluster 127.0.0.1:7000,127.0.0.1:7001
//! RUST_LOG=heat_observer=debug P28_LATE_OBS_MAX_WAIT_MS=500 cargo run --example apply-sim
//! P28_LATE_OBS_POLL_MS=abc cargo run --example apply-sim -- --redis redis://127.0.0.1:6379 --metrics-addr 9185
//! ```

use heat_observer_lab::{args, metrics_http, target};

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
        "--redis-cluster",
        "HOST:PORT,...",
        "a Redis Cluster, some of its nodes (feature `cluster`)",
    ),
    opt(
        "--bridge-redis",
        "URL",
        "the simulated HeatBridge writes keys there (default: the observer's Redis)",
    ),
    opt(
        "--metrics-addr",
        "HOST:PORT",
        "serve /metrics there (a bare port means loopback)",
    ),
    opt(
        "--linger-s",
        "S",
        "keep serving /metrics this long after the stop, or until a second signal (default 0)",
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

    // SIGTERM (systemctl stop/restart) and Ctrl-C: the first stops taking
    // plans (the loop below sees the flag between plans), a second ends a
    // linger. Each signal's arrival is taken on a thread of its own, so the
    // report measures from it, not from when the loop noticed.
    let signals = Signals::watch();

    // --- Apply startup: one call, never fails --------------------------------
    let observer = match &target {
        Target::Redis(url) => LateObserver::from_env(url),
        // A cluster as the library takes it: its nodes, comma-separated
        // (a trailing comma makes a one-node list a list).
        Target::Cluster(nodes) => LateObserver::from_env(&format!("{},", nodes.join(","))),
        Target::Memory => start_in_memory(&memory),
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
        let memory = memory.clone();
        let bridge_target = match args.opt("--bridge-redis") {
            Some(url) => Target::Redis(url),
            None => target.clone(),
        };
        let config = observer.config().clone();
        thread::spawn(move || run_bridge(&bridge_rx, &memory, &bridge_target, &config))
    };

    // --- Apply's loop: create, early look, publish, late look ---------------
    let start = Instant::now();
    for i in 0..plans {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        while Instant::now() < due && !signals.stopping() {
            thread::sleep((due - Instant::now()).min(Duration::from_millis(5)));
        }
        if signals.stopping() {
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
    let signalled_at = signals.first();
    let timeout = observer.config().shutdown_timeout();
    let report = if args.flag("--stop-now") && signalled_at.is_some() {
        observer.shutdown_now(timeout)
    } else {
        observer.shutdown(timeout)
    };
    let drained_ms = signalled_at.map(|t| t.elapsed().as_millis() as u64);
    let _ = bridge.join();
    let linger = Duration::from_secs_f64(args.get("--linger-s", 0.0));
    let metrics = match metrics {
        Some(server) if !linger.is_zero() => Some(server),
        other => {
            drop(other); // stops serving before the exit is measured
            None
        }
    };
    let exit_ms = signalled_at.map(|t| t.elapsed().as_millis() as u64);
    print_report(&args, &report, &run_id, drained_ms, exit_ms);
    if let Some(server) = metrics {
        log::info!(
            "stopped; serving http://{}/metrics for {linger:?} more, or until a signal",
            server.addr()
        );
        signals.wait_for_another(linger);
    }
}

/// The signals that stop Apply, as they arrive.
struct Signals {
    /// Set at the first signal.
    stop: Arc<AtomicBool>,
    /// Each signal's arrival.
    arrived: mpsc::Receiver<Instant>,
    first: std::cell::Cell<Option<Instant>>,
}

impl Signals {
    fn watch() -> Signals {
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, arrived) = mpsc::channel();
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
        ])
        .expect("signal handlers");
        let flag = Arc::clone(&stop);
        thread::spawn(move || {
            for _ in signals.forever() {
                let _ = tx.send(Instant::now());
                flag.store(true, Ordering::SeqCst);
            }
        });
        Signals {
            stop,
            arrived,
            first: std::cell::Cell::new(None),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// When the first signal arrived, if one did.
    fn first(&self) -> Option<Instant> {
        if self.first.get().is_none() {
            self.first.set(self.arrived.try_recv().ok());
        }
        self.first.get()
    }

    /// Waits up to `linger` for another signal.
    fn wait_for_another(&self, linger: Duration) {
        let _ = self.first();
        let _ = self.arrived.recv_timeout(linger);
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
/// order, until the plans stop coming. After a failed write it opens its
/// connection again (at most every 200 ms) and writes the keys that came
/// due meanwhile, late, as a HeatBridge catching up would: one line when
/// it fails, one when it is back.
fn run_bridge(
    plans: &mpsc::Receiver<(String, Instant)>,
    memory: &MemoryStore,
    target: &Target,
    config: &Config,
) {
    const RECONNECT_EVERY: Duration = Duration::from_millis(200);
    let mut redis: Option<Box<dyn redis::ConnectionLike + Send>> = None;
    let mut last_try: Option<Instant> = None;
    let mut failures = 0u64;
    let mut failing_since: Option<Instant> = None;
    let mut due: VecDeque<(String, Instant)> = VecDeque::new();
    let mut open = true;
    while open || !due.is_empty() {
        // Publishing is over and Redis stays away: the rest is given up, so
        // that the stop is not held by a bridge that cannot write.
        if !open && failing_since.is_some_and(|t| t.elapsed() > Duration::from_secs(2)) {
            log::warn!("bridge gives up {} key(s): Redis is unreachable", due.len());
            return;
        }
        let wait = due.front().map_or(Duration::from_millis(50), |(_, at)| {
            (*at + BRIDGE_DELAY)
                .saturating_duration_since(Instant::now())
                .max(if failures > 0 {
                    RECONNECT_EVERY
                } else {
                    Duration::ZERO
                })
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
            if target.is_memory() {
                memory.insert_key(key);
                due.pop_front();
                continue;
            }
            if redis.is_none() {
                if last_try.is_some_and(|t| t.elapsed() < RECONNECT_EVERY) {
                    break;
                }
                last_try = Some(Instant::now());
                match target.connect() {
                    Ok(con) => redis = Some(con),
                    Err(e) => {
                        failures += 1;
                        failing_since.get_or_insert_with(Instant::now);
                        if failures == 1 {
                            log::warn!("bridge cannot reach Redis: {e}; retrying every 200 ms");
                        }
                        break;
                    }
                }
            }
            let Some(con) = redis.as_mut() else { break };
            let set = redis::cmd("SET")
                .arg(&key)
                .arg(1)
                .arg("EX")
                .arg(3600)
                .exec(&mut **con);
            match set {
                Ok(()) => {
                    if failures > 0 {
                        log::info!("bridge writes again after {failures} failed attempt(s)");
                        failures = 0;
                        failing_since = None;
                    }
                    due.pop_front();
                }
                Err(e) => {
                    failures += 1;
                    failing_since.get_or_insert_with(Instant::now);
                    if failures == 1 {
                        log::warn!("bridge write of {key} failed: {e}; reconnecting");
                    }
                    // Its state is unknown: open it again, and write this
                    // key then.
                    redis = None;
                    break;
                }
            }
        }
    }
}

fn print_report(
    args: &Args,
    report: &ShutdownReport,
    run_id: &str,
    drained_ms: Option<u64>,
    exit_ms: Option<u64>,
) {
    let stats = &report.stats;
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
            "signalled": exit_ms.is_some(),
            "signal_to_drained_ms": drained_ms,
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
        drained_ms
            .zip(exit_ms)
            .map_or(String::new(), |(d, e)| format!(
                ", drained {d} ms and ready to exit {e} ms after the signal"
            ))
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
