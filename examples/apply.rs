//! The drop-in use, as the Apply service writes it: start from the
//! environment at startup (never fails: a bad setting is logged and the
//! service runs without the observer), one line after each publish, the
//! metrics for `/metrics`, a draining stop.
//!
//! ```text
//! cargo run --example apply                                  # Redis at REDIS_URL or 127.0.0.1:6379
//! RUST_LOG=info P28_LATE_OBS_MAX_WAIT_MS=500 cargo run --example apply
//! ```
//!
//! Nothing here writes a heat key, so every plan is observed not found
//! after the max wait, unless HeatBridge runs against the same Redis. The
//! lab's `apply-sim` adds a simulated bridge, SIGTERM and `/metrics`.

use std::time::Duration;

use heat_observer::LateObserver;

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let redis_url =
        std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());

    // At startup: reads P28_LATE_OBS_* (and P28_LATE_OBS_REDIS_URL first).
    let observer = LateObserver::from_env(&redis_url);

    for i in 0..20 {
        let plan_id = format!("example-{}-{i}", std::process::id());
        // publish_plan(&plan) goes here; then the one line Apply adds,
        // which never blocks, never touches Redis and never panics:
        if let Err(refused) = observer.observe_late(&plan_id, "BTCUSDT") {
            log::debug!("plan {plan_id} not observed: {refused}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // What the /metrics handler serves (another thread would hold
    // `observer.handle()`).
    let metrics = observer.handle().render_metrics();
    let observed = metrics
        .lines()
        .filter(|l| l.starts_with("p28_observed_total"));
    observed.for_each(|line| println!("{line}"));

    // On SIGTERM: stop taking plans, finish watching those held, write them.
    let timeout = observer.config().shutdown_timeout();
    let report = observer.shutdown(timeout);
    println!(
        "held {} at the stop, drained {}, abandoned {}",
        report.held_at_stop,
        report.drained(),
        report.abandoned()
    );
}
