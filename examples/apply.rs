//! The drop-in use of the late observer in the Apply service: read the
//! `P28_LATE_OBS_*` environment once, start the observer once, call it after
//! each publish, and let it go at exit.
//!
//! A simulated HeatBridge writes the `by_plan` keys. With a Redis URL
//! (`--redis URL` or `REDIS_URL`) everything goes to that Redis; without,
//! to the in-memory store:
//!
//! ```text
//! cargo run --example apply
//! cargo run --example apply -- --redis redis://127.0.0.1:6379
//! RUST_LOG=debug P28_LATE_OBS_MAX_WAIT_MS=500 cargo run --example apply
//! ```

use std::thread;
use std::time::{Duration, Instant};

use heat_observer::{Config, Connector, LateObserver, MemoryStore, ObsPoint, RedisConnector};

const PLANS: usize = 20;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let redis_url = redis_url();
    let memory = MemoryStore::new();

    // --- Apply startup -----------------------------------------------------
    let observer = match &redis_url {
        Some(url) => start_observer(|config| RedisConnector::new(url, config)),
        None => start_observer(|_| Ok::<_, std::convert::Infallible>(memory.clone())),
    };

    // --- Simulated HeatGate + HeatBridge: writes by_plan keys later --------
    let bridge = {
        let (memory, url) = (memory.clone(), redis_url.clone());
        let config = observer.config().clone();
        thread::spawn(move || {
            let mut redis = url.and_then(|u| {
                let con = redis::Client::open(u).and_then(|c| c.get_connection());
                con.inspect_err(|e| log::error!("bridge cannot reach Redis: {e}"))
                    .ok()
            });
            for i in 0..PLANS {
                // Every fourth plan never gets a key (missing_inputs).
                if i % 4 == 3 {
                    continue;
                }
                thread::sleep(Duration::from_millis(40));
                let key = config.heat_key(&plan_id(i));
                match &mut redis {
                    Some(con) => {
                        let _ = redis::cmd("SET")
                            .arg(&key)
                            .arg(1)
                            .arg("EX")
                            .arg(3600)
                            .exec(con);
                    }
                    None => memory.insert_key(key),
                }
            }
        })
    };

    // --- Apply's loop: create, early look, publish, late look --------------
    for i in 0..PLANS {
        let plan = plan_id(i);
        let _ = observer.observe_now(&plan, "BTCUSDT"); // at create_apply_plan
        publish_plan(&plan);
        // The one line Apply adds after publish. The result says whether the
        // observation was taken; it is counted either way.
        if let Err(refused) = observer.observe_late(&plan, "BTCUSDT") {
            log::debug!("plan {plan} not observed: {refused}");
        }
    }
    bridge.join().expect("bridge thread");

    // --- Report and exit ----------------------------------------------------
    let deadline = Instant::now() + observer.config().max_wait() + Duration::from_secs(1);
    while observer.stats().finished() < observer.stats().accepted && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    let stats = observer.stats();
    for point in ObsPoint::BUILT_IN {
        if let Some(p) = stats.point(point) {
            let coverage = p
                .coverage()
                .map_or("-".to_owned(), |c| format!("{:.0}%", c * 100.0));
            println!(
                "{point:<18} found {:>3} / {:>3}  coverage {coverage}",
                p.found,
                p.found + p.not_found
            );
        }
    }
    if redis_url.is_none() {
        let events = memory.stream_len(observer.config().stream());
        println!("events in the stream: {events}");
    }
    let report = observer.shutdown(observer.config().shutdown_timeout());
    println!("every call accounted for: {}", report.stats.is_balanced());
}

/// Fail open at startup too: a bad setting, a bad URL or a failed start logs
/// an error and Apply runs on without the observer. Nothing here needs Redis
/// to be up.
fn start_observer<C, E>(connector: impl FnOnce(&Config) -> Result<C, E>) -> LateObserver
where
    C: Connector,
    E: std::fmt::Display,
{
    let started = Config::from_env()
        .map_err(|e| e.to_string())
        .and_then(|config| {
            let connector = connector(&config).map_err(|e| e.to_string())?;
            LateObserver::start(config, connector).map_err(|e| e.to_string())
        });
    started.unwrap_or_else(|err| {
        log::error!("late observer disabled: {err}");
        LateObserver::disabled()
    })
}

/// `--redis URL`, else `REDIS_URL`, else none (the in-memory store).
fn redis_url() -> Option<String> {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--redis" {
            return args.next();
        }
    }
    std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty())
}

fn plan_id(i: usize) -> String {
    format!("apply-demo-{i}")
}

fn publish_plan(_plan_id: &str) {
    // XADD quantum:stream:apply.plan ... in the real service.
}
