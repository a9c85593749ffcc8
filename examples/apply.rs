//! The drop-in use of the late observer in the Apply service: read the
//! `P28_LATE_OBS_*` environment once, start the observer once, call it after
//! each publish, and let it go at exit.
//!
//! A simulated HeatBridge writes the `by_plan` keys. With a Redis URL
//! (`--redis URL` or `REDIS_URL`) or a cluster (`--redis-cluster
//! host:port,...`, feature `cluster`) everything goes there; without, to
//! the in-memory store:
//!
//! ```text
//! cargo run --example apply
//! cargo run --example apply -- --redis redis://127.0.0.1:6379
//! RUST_LOG=debug P28_LATE_OBS_MAX_WAIT_MS=500 cargo run --example apply
//! ```

#[path = "support/args.rs"]
mod args;
#[path = "support/target.rs"]
mod target;

use std::thread;
use std::time::{Duration, Instant};

use args::{Args, Flag, opt};
use heat_observer::{Config, Connector, LateObserver, MemoryStore, ObsPoint, RedisConnector};
use target::Target;

const PLANS: usize = 20;

const FLAGS: &[Flag] = &[
    opt(
        "--redis",
        "URL",
        "use this Redis (default: REDIS_URL, else in memory)",
    ),
    opt(
        "--redis-cluster",
        "HOST:PORT,...",
        "use this Redis Cluster (feature cluster)",
    ),
];

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse(
        "The drop-in use of the late observer, with a simulated HeatBridge.",
        FLAGS,
    );
    let target = Target::from_args(&args, true);
    let memory = MemoryStore::new();

    // --- Apply startup -----------------------------------------------------
    let observer = match &target {
        Target::Memory => start_observer(|_| Ok::<_, std::convert::Infallible>(memory.clone())),
        Target::Redis(url) => start_observer(|config| RedisConnector::new(url, config)),
        #[cfg(feature = "cluster")]
        Target::Cluster(nodes) => {
            start_observer(|config| heat_observer::RedisClusterConnector::new(nodes, config))
        }
        #[cfg(not(feature = "cluster"))]
        Target::Cluster(_) => unreachable!("refused by Target::from_args"),
    };

    // --- Simulated HeatGate + HeatBridge: writes by_plan keys later --------
    let bridge = {
        let (memory, target) = (memory.clone(), target.clone());
        let config = observer.config().clone();
        thread::spawn(move || {
            let mut redis = (!target.is_memory())
                .then(|| target.connect())
                .and_then(|con| {
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
                            .exec(&mut **con);
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
    if target.is_memory() {
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

fn plan_id(i: usize) -> String {
    format!("apply-demo-{i}")
}

fn publish_plan(_plan_id: &str) {
    // XADD quantum:stream:apply.plan ... in the real service.
}
