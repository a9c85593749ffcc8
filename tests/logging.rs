//! What the crate logs: the startup line the runbook greps, throttled
//! warnings written by workers that add up, one summary at shutdown, per
//! job lines at debug only. A
//! capturing logger is installed for this binary; tests take turns with it.

mod support;

use std::sync::{Mutex, MutexGuard, PoisonError};

use heat_observer::{Config, LateObserver};
use support::rig::{Fault, Op, RiggedStore};

/// The target the README tells operators to filter on.
const LOG_TARGET: &str = "heat_observer";
use log::{Level, Log, Metadata, Record};
use support::{PATIENCE, ms, wait_stats};

struct Capture;

/// Level, target, message, and the name of the thread that logged it.
static LINES: Mutex<Vec<(Level, String, String, String)>> = Mutex::new(Vec::new());
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
            std::thread::current().name().unwrap_or("").to_owned(),
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

fn all_lines() -> Vec<(Level, String, String, String)> {
    LINES.lock().unwrap().clone()
}

fn lines(min: Level) -> Vec<(Level, String, String)> {
    all_lines()
        .into_iter()
        .filter(|(l, _, _, _)| *l <= min)
        .map(|(l, t, m, _)| (l, t, m))
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
    let on = LateObserver::start(Config::default(), RiggedStore::new()).unwrap();
    let off = LateObserver::start(Config::disabled(), RiggedStore::new()).unwrap();
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

/// The numbers `N` in lines "... {N} {what} ...", summed.
fn counted(lines: &[String], before: &str) -> u64 {
    lines
        .iter()
        .map(|l| {
            let head = l.split(before).next().unwrap();
            head.rsplit(' ')
                .find(|w| !w.is_empty())
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

#[test]
fn refusals_are_logged_by_a_worker_never_on_the_callers_thread() {
    let _turn = turn();
    let store = RiggedStore::new();
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
    let _ = observer.observe_late("", "S");
    // The only worker is held at the gate: nobody has logged the drops yet.
    assert!(containing(Level::Warn, "queue full").is_empty());
    drop(gate);
    support::wait_until("the worker warns", || {
        !containing(Level::Warn, "queue full").is_empty()
    });
    let warnings = containing(Level::Warn, "queue full");
    assert_eq!(
        warnings,
        [
            "Late observer queue full (capacity 1): 1000 observation(s) dropped since the last \
          warning; raise P28_LATE_OBS_QUEUE_CAPACITY or P28_LATE_OBS_WORKERS"
        ]
    );
    // Later drops are reported once the interval has passed, while the
    // worker is busy watching.
    for i in 0..5 {
        assert!(observer.observe_late(&format!("e{i}"), "S").is_err());
    }
    support::wait_until("the second warning", || {
        containing(Level::Warn, "queue full").len() == 2
    });
    assert!(containing(Level::Warn, "queue full")[1].contains(": 5 observation(s) dropped"));
    let report = observer.shutdown(PATIENCE);
    assert_eq!(report.stats.refused_queue_full, 1005);
    let invalid = containing(Level::Warn, "invalid observation");
    assert_eq!(
        invalid,
        [
            "Late observer refused 1 invalid observation(s) since the last warning: 1 plan_id is empty"
        ]
    );
    for (level, _, line, thread) in all_lines() {
        if level == Level::Warn {
            assert!(
                thread.starts_with("heat-observer-"),
                "{line:?} logged on {thread:?}"
            );
        }
    }
}

#[test]
fn store_errors_add_up_and_recovery_is_reported() {
    let _turn = turn();
    let store = RiggedStore::new();
    store.set_fault(Op::Exists, Some(Fault::Error));
    let config = Config::builder()
        .workers(1)
        .max_wait(ms(200))
        .poll(ms(1))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store.clone()).unwrap();
    observer.observe_late("p", "S").unwrap();
    wait_stats(&observer, "many failed looks", |s| s.store_errors > 5);
    store.set_fault(Op::Exists, None);
    support::wait_until("recovery is reported", || {
        !containing(Level::Info, "store recovered").is_empty()
    });
    let report = observer.shutdown(PATIENCE);
    let failed = containing(Level::Warn, "store call failed");
    assert_eq!(failed.len(), 1, "the first at once: {failed:?}");
    assert!(failed[0].contains("heat key check: store error: injected Exists failure"));
    let recovered = containing(Level::Info, "store recovered");
    assert_eq!(recovered.len(), 1, "the rest with the recovery");
    assert_eq!(
        counted(&failed, " time(s)") + counted(&recovered, " of them not in an earlier warning"),
        report.stats.store_errors,
        "{failed:?} {recovered:?}"
    );
    let after = format!(
        "recovered after {} error(s) on 1 worker(s) in ",
        report.stats.store_errors
    );
    assert!(
        recovered[0].starts_with("Late observer store") && recovered[0].contains(&after),
        "{recovered:?}"
    );
    let summary = containing(Level::Info, "Late observer stopped");
    assert!(summary[0].contains(&format!("store errors {}", report.stats.store_errors)));
    // At debug, every failed call has a line of its own.
    let each: Vec<(Level, String, String)> = lines(Level::Debug)
        .into_iter()
        .filter(|(_, _, m)| m.contains("worker 0: heat key check failed: store error"))
        .collect();
    assert_eq!(each.len() as u64, report.stats.store_errors);
    assert!(
        each.iter()
            .all(|(l, t, _)| *l == Level::Debug && t == LOG_TARGET)
    );
}

#[test]
fn shutdown_logs_one_summary_and_jobs_log_nothing_above_debug() {
    let _turn = turn();
    let store = RiggedStore::new();
    for i in 0..100 {
        store.insert_key(Config::default().heat_key(&format!("p{i}")));
    }
    let observer = LateObserver::start(Config::default(), store).unwrap();
    for i in 0..100 {
        observer.observe_late(&format!("p{i}"), "S").unwrap();
    }
    wait_stats(&observer, "all found", |s| s.found == 100);
    observer.shutdown(PATIENCE);
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
    // At debug, one plan can be followed from intake to its event.
    let p7: Vec<String> = containing(Level::Debug, "plan p7 ");
    assert_eq!(p7.len(), 3, "{p7:?}");
    assert!(
        p7[0].contains("took plan p7 (publish_plan_post, wait 2000 ms)"),
        "{p7:?}"
    );
    assert!(
        p7[1].contains("decided plan p7 (publish_plan_post): heat_found=1 wait_ms="),
        "{p7:?}"
    );
    assert!(
        p7[2].contains("written plan p7 (publish_plan_post)"),
        "{p7:?}"
    );
}

#[test]
fn a_redis_timeout_not_below_the_poll_is_warned_about_at_start() {
    let _turn = turn();
    let config = Config::builder()
        .poll(ms(100))
        .redis_timeout(ms(500))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, RiggedStore::new()).unwrap();
    assert_eq!(
        containing(Level::Warn, "Late observer config"),
        [
            "Late observer config: P28_LATE_OBS_REDIS_TIMEOUT_MS=500 is not below \
          P28_LATE_OBS_POLL_MS=100: a stalled Redis holds a worker past its next look"
        ]
    );
    drop(observer);
    let quiet = LateObserver::start(Config::default(), RiggedStore::new()).unwrap();
    drop(quiet);
    assert_eq!(containing(Level::Warn, "Late observer config").len(), 1);
}

#[test]
fn the_owner_going_away_logs_the_stop_while_a_handle_lives_on() {
    let _turn = turn();
    let observer = LateObserver::start(Config::default(), RiggedStore::new()).unwrap();
    let handle = observer.handle();
    drop(observer);
    assert_eq!(containing(Level::Info, "Late observer stopped").len(), 1);
    assert_eq!(handle.stats().workers, 0);
}

#[test]
fn a_rerun_with_the_same_plan_ids_is_said_in_the_log() {
    // A rerun after a restart, with the plan ids of the run before: every
    // event is a duplicate (dedupe keys live a day), nothing is written,
    // and the log says why, once an interval.
    let _turn = turn();
    let store = RiggedStore::new();
    let config = Config::builder()
        .max_wait(ms(50))
        .poll(ms(10))
        .warn_interval(ms(200))
        .build()
        .unwrap();
    for run in 0..2 {
        let observer = LateObserver::start(config.clone(), store.clone()).unwrap();
        for i in 0..30 {
            observer.observe_late(&format!("reused-{i}"), "S").unwrap();
        }
        let stats = wait_stats(&observer, "every plan decided", |s| s.finished() == 30);
        assert_eq!(stats.deduplicated, if run == 0 { 0 } else { 30 });
        drop(observer);
    }
    let said = containing(Level::Warn, "plan ids reused?");
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with("Late observer deduplicated 30 of 30 event(s)"),
        "{said:?}"
    );
}
