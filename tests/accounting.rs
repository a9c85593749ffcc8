//! Every observe call ends in exactly one counted outcome, also under
//! concurrency and faults.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use heat_observer::{Config, InvalidInput, LateObserver, Refused, Stats};
use support::rig::{Fault, Op, RiggedStore};
use support::{PATIENCE, events, ms};

const THREADS: usize = 4;
const PER_THREAD: usize = 10_000;

fn hammer(observer: &LateObserver) -> Vec<Result<(), Refused>> {
    thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                s.spawn(move || {
                    (0..PER_THREAD)
                        .map(|i| match i % 1000 {
                            // A few invalid calls, and a few repeats to dedupe.
                            999 => observer.observe_late("", "S"),
                            998 => observer.observe_late("repeat", "S"),
                            _ => observer.observe_late(&format!("t{t}-{i}"), "S"),
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

fn assert_accounted(results: &[Result<(), Refused>], stats: &Stats) {
    let count = |want: Option<Refused>| {
        results
            .iter()
            .filter(|r| match (r, want) {
                (Ok(()), None) => true,
                (Err(e), Some(w)) => *e == w,
                _ => false,
            })
            .count() as u64
    };
    assert_eq!(stats.calls(), (THREADS * PER_THREAD) as u64);
    assert_eq!(stats.accepted, count(None));
    assert_eq!(stats.refused_queue_full, count(Some(Refused::QueueFull)));
    assert_eq!(
        stats.refused_invalid,
        count(Some(Refused::Invalid(InvalidInput::EmptyPlanId)))
    );
    assert_eq!(stats.refused_invalid, (THREADS * PER_THREAD / 1000) as u64);
    assert_eq!((stats.queued, stats.in_flight), (0, 0), "{stats:?}");
    assert!(stats.is_balanced(), "{stats:?}");
}

#[test]
fn four_threads_of_ten_thousand_calls_through_a_small_queue_all_accounted() {
    let store = RiggedStore::new();
    for t in 0..THREADS {
        for i in (0..PER_THREAD).step_by(3) {
            store.insert_key(Config::default().heat_key(&format!("t{t}-{i}")));
        }
    }
    let config = Config::builder()
        .workers(2)
        .queue_capacity(64)
        .max_in_flight(16)
        .max_wait(ms(5))
        .poll(ms(1))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store.clone()).unwrap();
    let results = hammer(&observer);
    support::wait_stats(&observer, "every accepted job ends", |s| {
        s.finished() == s.accepted
    });
    let report = observer.shutdown(PATIENCE);
    assert!(report.is_complete());
    assert_accounted(&results, &report.stats);
    // Every counted event is really in the stream, and "repeat" only once.
    let events = events(&store);
    assert_eq!(
        events.len() as u64,
        report.stats.found + report.stats.not_found
    );
    let repeats = events
        .iter()
        .filter(|e| e.field("plan_id") == Some("repeat"))
        .count();
    assert!(repeats <= 1);
    // The store never fails; a job that waited in the queue past its
    // deadline plus the store timeout (a busy CPU) and then finds its key
    // cannot vouch that the key was there by the deadline, and fails: the
    // count adds up either way.
    assert_eq!(report.stats.panicked + report.stats.abandoned, 0);
}

#[test]
fn accounting_holds_while_the_store_fails_panics_and_shutdown_cuts_in() {
    support::quiet_injected_panics();
    let store = RiggedStore::new();
    let config = Config::builder()
        .workers(2)
        .queue_capacity(128)
        .max_in_flight(32)
        .max_wait(ms(20))
        .poll(ms(2))
        .retry_window(ms(10))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store.clone()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let chaos = {
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            // Periods 6 and 5, so every combination of faults comes up.
            let exists = [
                None,
                None,
                None,
                Some(Fault::Error),
                None,
                Some(Fault::Panic),
            ];
            let append = [None, None, Some(Fault::Error), None, Some(Fault::Panic)];
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                store.set_fault(Op::Exists, exists[i % exists.len()]);
                store.set_fault(Op::Append, append[i % append.len()]);
                i += 1;
                thread::sleep(ms(1));
            }
            store.set_fault(Op::Exists, None);
            store.set_fault(Op::Append, None);
        })
    };
    let results = hammer(&observer);
    // Shut down with work in flight: the rest must be counted as abandoned.
    let report = observer.shutdown(PATIENCE);
    stop.store(true, Ordering::Relaxed);
    chaos.join().unwrap();
    assert!(report.is_complete());
    assert_accounted(&results, &report.stats);
    assert_eq!(
        events(&store).len() as u64,
        report.stats.found + report.stats.not_found
    );
}

#[test]
fn invalid_input_is_refused_counted_and_never_queued() {
    let store = RiggedStore::new();
    let observer = LateObserver::start(Config::default(), store.clone()).unwrap();
    let long = "p".repeat(128 + 1);
    let cases = [
        (observer.observe_late("", "S"), InvalidInput::EmptyPlanId),
        (observer.observe_late("p", ""), InvalidInput::EmptySymbol),
        (
            observer.observe_late(&long, "S"),
            InvalidInput::PlanIdTooLong { len: long.len() },
        ),
        (
            observer.observe_now("a\nb", "S"),
            InvalidInput::ControlCharacter { field: "plan_id" },
        ),
        (
            observer.observe_late("p", "S\t"),
            InvalidInput::ControlCharacter { field: "symbol" },
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, Err(Refused::Invalid(want)));
    }
    let err = observer.observe_late("", "S").unwrap_err();
    assert_eq!(err.to_string(), "invalid observation: plan_id is empty");
    let report = observer.shutdown(PATIENCE);
    assert_eq!(
        (report.stats.refused_invalid, report.stats.accepted),
        (6, 0)
    );
    assert!(events(&store).is_empty());
}

#[test]
fn observe_after_shutdown_is_a_counted_refusal() {
    let observer = LateObserver::start(Config::default(), RiggedStore::new()).unwrap();
    let clone = observer.handle();
    let report = observer.shutdown(PATIENCE);
    assert!(report.is_complete());
    assert_eq!(report.workers_stopped, 2);
    assert_eq!(clone.observe_late("p", "S"), Err(Refused::ShutDown));
    assert_eq!(clone.observe_now("p", "S"), Err(Refused::ShutDown));
    assert_eq!(clone.stats().refused_shut_down, 2);
    assert_eq!(clone.stats().workers, 0);
    assert!(clone.stats().stopped);
}

#[test]
fn handles_and_snapshots_cross_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LateObserver>();
    assert_send_sync::<RiggedStore>();
    assert_send_sync::<Stats>();
    assert_send_sync::<heat_observer::ConfigError>();
    assert_send_sync::<heat_observer::store::StoreError>();
    assert_send_sync::<heat_observer::ObserverHandle>();
}
