//! Stopping without losing observations: the drain, the fast stop, the
//! owner and its handles.

mod support;

use std::time::{Duration, Instant};

use heat_observer::{Config, ConfigBuilder, LateObserver, Refused};
use support::rig::{Op, RiggedStore};
use support::{PATIENCE, events, ms, wait_until};

fn config() -> ConfigBuilder {
    Config::builder().max_wait(ms(300)).poll(ms(10))
}

fn heat_key(plan: &str) -> String {
    Config::default().heat_key(plan)
}

#[test]
fn shutdown_drains_what_is_watched_and_abandons_nothing() {
    let store = RiggedStore::new();
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    observer.observe_late("comes", "S").unwrap();
    observer.observe_late("never", "S").unwrap();
    // Both held by a worker (not queued) when the stop comes.
    support::wait_stats(&observer, "both held", |s| s.in_flight == 2);
    // The key comes while the observer is already stopping.
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            wait_until("a look during the stop", || store.calls(Op::Exists) >= 3);
            store.insert_key(heat_key("comes"));
        })
    };
    let start = Instant::now();
    let handle = observer.handle();
    let report = observer.shutdown(PATIENCE);
    writer.join().unwrap();
    assert!(report.is_complete());
    assert_eq!((report.held_at_stop, report.written), (2, 2), "{report:?}");
    assert_eq!((report.abandoned(), report.drained()), (0, 2));
    assert_eq!((report.stats.found, report.stats.not_found), (1, 1));
    assert!(report.stats.is_balanced());
    // It waited for the "never" plan's deadline, not for its own timeout.
    let took = start.elapsed();
    assert!(took >= ms(250) && took < PATIENCE / 2, "{took:?}");
    assert_eq!(events(&store).len(), 2);
    // Calls after the stop are refused and counted.
    assert_eq!(handle.observe_late("late", "S"), Err(Refused::ShutDown));
}

#[test]
fn shutdown_now_abandons_what_is_watched_at_once() {
    let store = RiggedStore::new();
    let observer =
        LateObserver::start(config().max_wait(ms(60_000)).build().unwrap(), store).unwrap();
    for i in 0..5 {
        observer.observe_late(&format!("p{i}"), "S").unwrap();
    }
    support::wait_stats(&observer, "the jobs are held", |s| s.in_flight == 5);
    let report = observer.shutdown_now(PATIENCE);
    assert!(report.elapsed < ms(1000), "{report:?}");
    assert_eq!(
        (report.held_at_stop, report.abandoned(), report.written),
        (5, 5, 0)
    );
    assert!(report.stats.is_balanced());
}

#[test]
fn a_drain_that_runs_out_of_time_abandons_and_counts_the_rest() {
    let store = RiggedStore::new();
    let observer =
        LateObserver::start(config().max_wait(ms(60_000)).build().unwrap(), store).unwrap();
    observer.observe_late("slow", "S").unwrap();
    let report = observer.shutdown(ms(200));
    assert!(
        report.elapsed >= ms(100) && report.elapsed < ms(1000),
        "{report:?}"
    );
    assert_eq!(report.abandoned(), 1);
    assert!(report.stats.is_balanced());
}

#[test]
fn dropping_the_owner_drains_within_the_default_timeout() {
    let store = RiggedStore::new();
    let config = config().build().unwrap();
    assert_eq!(config.shutdown_timeout(), ms(800), "max wait + 500 ms");
    let observer = LateObserver::start(config, store.clone()).unwrap();
    let handle = observer.handle();
    for i in 0..50 {
        observer.observe_late(&format!("d{i}"), "S").unwrap();
    }
    drop(observer);
    let stats = handle.stats();
    assert_eq!(
        (stats.abandoned, stats.not_found, stats.workers),
        (0, 50, 0),
        "{stats:?}"
    );
    assert_eq!(events(&store).len(), 50);
}

#[test]
fn a_handle_on_another_thread_neither_keeps_the_pool_alive_nor_loses_calls() {
    let store = RiggedStore::new();
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    let handle = observer.handle();
    let (started, go) = std::sync::mpsc::channel();
    let elsewhere = std::thread::spawn(move || {
        let mut calls = 0u64;
        loop {
            let result = handle.observe_late(&format!("h{calls}"), "S");
            calls += 1;
            if calls == 100 {
                started.send(()).unwrap();
            }
            if result == Err(Refused::ShutDown) {
                return (calls, handle);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    go.recv_timeout(PATIENCE).unwrap();
    // The owner goes away while the other thread still holds its handle.
    drop(observer);
    let (calls, handle) = elsewhere.join().unwrap();
    let stats = handle.stats();
    assert_eq!(stats.workers, 0, "the pool stopped with its owner");
    assert_eq!(stats.calls(), calls);
    assert!(stats.is_balanced(), "{stats:?}");
    assert_eq!(
        stats.finished(),
        stats.accepted,
        "every accepted call ended"
    );
    assert_eq!(stats.abandoned, 0, "drained: {stats:?}");
    assert!(stats.refused_shut_down >= 1);
}
