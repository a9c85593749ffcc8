//! What the crate logs: the startup line the runbook greps, throttled
//! warnings, one summary at shutdown, nothing per job above debug. A
//! capturing logger is installed for this binary; tests take turns with it.

mod support;

use std::sync::{Mutex, MutexGuard, PoisonError};

use heat_observer::{Config, LOG_TARGET, LateObserver, MemoryStore, Op};
use log::{Level, Log, Metadata, Record};
use support::{PATIENCE, ms, wait_stats};

struct Capture;

static LINES: Mutex<Vec<(Level, String, String)>> = Mutex::new(Vec::new());
static TURN: Mutex<()> = Mutex::new(());

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &Record<'_>) {
        let line = (
            record.level(),
            record.target().to_owned(),
            record.args().to_string(),
        );
        LINES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }
    fn flush(&self) {}
}

/// Installs the logger (once), waits for this test's turn and clears the
/// captured lines.
fn turn() -> MutexGuard<'static, ()> {
    static LOGGER: Capture = Capture;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Trace);
    let guard = TURN.lock().unwrap_or_else(PoisonError::into_inner);
    LINES.lock().unwrap().clear();
    guard
}

fn lines(min: Level) -> Vec<(Level, String, String)> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|(l, _, _)| *l <= min)
        .cloned()
        .collect()
}

fn containing(min: Level, text: &str) -> Vec<String> {
    lines(min)
        .into_iter()
        .filter(|(_, _, m)| m.contains(text))
        .map(|(_, _, m)| m)
        .collect()
}

#[test]
fn the_startup_line_is_the_runbooks_at_info_on_the_crate_target() {
    let _turn = turn();
    let on = LateObserver::start(Config::default(), MemoryStore::new()).unwrap();
    let off = LateObserver::start(Config::disabled(), MemoryStore::new()).unwrap();
    let startup: Vec<_> = lines(Level::Info)
        .into_iter()
        .filter(|(_, _, m)| m.contains("P2.8A"))
        .collect();
    assert_eq!(
        startup,
        [
            (
                Level::Info,
                LOG_TARGET.to_owned(),
                "P2.8A.3 Late Observer: True (wait=2000ms, poll=100ms)".to_owned()
            ),
            (
                Level::Info,
                LOG_TARGET.to_owned(),
                "P2.8A.3 Late Observer: False (wait=2000ms, poll=100ms)".to_owned()
            ),
        ]
    );
    drop((on, off));
}

#[test]
fn a_flood_of_drops_gives_one_warning_per_interval_with_the_count_since_the_last() {
    let _turn = turn();
    let store = MemoryStore::new();
    let gate = store.hold(Op::Exists);
    let config = Config::builder()
        .workers(1)
        .max_in_flight(1)
        .queue_capacity(1)
        .warn_interval(ms(40))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store).unwrap();
    observer.observe_late("held", "S").unwrap();
    assert!(gate.wait_arrivals(1, PATIENCE));
    observer.observe_late("queued", "S").unwrap();
    for i in 0..1000 {
        assert!(observer.observe_late(&format!("d{i}"), "S").is_err());
    }
    let warnings = containing(Level::Warn, "queue full");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("Late observer queue full (capacity 1): 1 observation(s) dropped"),
        "{}",
        warnings[0]
    );
    assert!(warnings[0].contains("P28_LATE_OBS_QUEUE_CAPACITY"));
    // The interval is the behaviour under test: let it pass, then drop more.
    std::thread::sleep(ms(50));
    assert!(observer.observe_late("late", "S").is_err());
    let warnings = containing(Level::Warn, "queue full");
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(
        warnings[1].contains(": 1000 observation(s) dropped since the last warning"),
        "{}",
        warnings[1]
    );
    drop(gate);
}

#[test]
fn invalid_input_and_store_errors_are_throttled_too() {
    let _turn = turn();
    let store = MemoryStore::new();
    store.set_fault(Op::Exists, Some(heat_observer::Fault::Error));
    let config = Config::builder()
        .workers(1)
        .max_wait(ms(30))
        .poll(ms(1))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store).unwrap();
    for _ in 0..100 {
        let _ = observer.observe_late("bad\nid", "S");
    }
    observer.observe_late("p", "S").unwrap();
    wait_stats(&observer, "the job fails after many failed looks", |s| {
        s.failed == 1 && s.store_errors > 5
    });
    let invalid = containing(Level::Warn, "invalid input");
    assert_eq!(
        invalid,
        [
            "Late observer refused invalid input: plan_id holds a control character (1 refused since the last warning)"
        ]
    );
    let store_errors = containing(Level::Warn, "heat key check failed");
    assert_eq!(store_errors.len(), 1, "{store_errors:?}");
}

#[test]
fn shutdown_logs_one_summary_and_jobs_log_nothing_above_debug() {
    let _turn = turn();
    let store = MemoryStore::new();
    for i in 0..100 {
        store.insert_key(Config::default().heat_key(&format!("p{i}")));
    }
    let observer = LateObserver::start(Config::default(), store).unwrap();
    for i in 0..100 {
        observer.observe_late(&format!("p{i}"), "S").unwrap();
    }
    wait_stats(&observer, "all found", |s| s.found == 100);
    observer.shutdown(PATIENCE);
    drop(observer);
    let all: Vec<String> = lines(Level::Info).into_iter().map(|(_, _, m)| m).collect();
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(all[0].starts_with("P2.8A.3 Late Observer: True"));
    assert!(
        all[1].starts_with("Late observer started: 2 workers"),
        "{}",
        all[1]
    );
    assert!(
        all[2].starts_with("Late observer stopped in "),
        "{}",
        all[2]
    );
    assert!(
        all[2].contains("accepted 100, found 100, not found 0"),
        "{}",
        all[2]
    );
}
