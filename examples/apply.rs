//! The drop-in use of the late observer in the Apply service: read the
//! `P28_LATE_OBS_*` environment once, start the observer once, call it after
//! each publish, and let it go at exit.
//!
//! Runs with the in-memory store and a simulated HeatBridge:
//!
//! ```text
//! cargo run --example apply
//! RUST_LOG=debug P28_LATE_OBS_MAX_WAIT_MS=500 cargo run --example apply
//! ```

use std::thread;
use std::time::{Duration, Instant};

use heat_observer::{Config, LateObserver, MemoryStore, ObsPoint};

const PLANS: usize = 20;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    // --- Apply startup -----------------------------------------------------
    let store = MemoryStore::new(); // production: a Redis connector
    let observer = start_observer(store.clone());

    // --- Simulated HeatGate + HeatBridge: writes by_plan keys later --------
    let bridge = {
        let store = store.clone();
        let config = observer.config().clone();
        thread::spawn(move || {
            for i in 0..PLANS {
                // Every fourth plan never gets a key (missing_inputs).
                if i % 4 != 3 {
                    thread::sleep(Duration::from_millis(40));
                    store.insert_key(config.heat_key(&plan_id(i)));
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
    println!(
        "events in the stream: {}",
        store.stream_len(observer.config().stream())
    );
    let report = observer.shutdown(observer.config().shutdown_timeout());
    println!("every call accounted for: {}", report.stats.is_balanced());
}

/// Fail open at startup too: a bad setting or a failed start logs an error
/// and Apply runs on without the observer.
fn start_observer(store: MemoryStore) -> LateObserver {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            log::error!("late observer disabled: {err}");
            return LateObserver::disabled();
        }
    };
    LateObserver::start(config, store).unwrap_or_else(|err| {
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
