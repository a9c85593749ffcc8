//! A service's logger that panics (issue 27): the panic happens inside the
//! crate's ledger (a warning about a failing store, the outcome lines at
//! debug level) and inside `start` and `shutdown` on the caller's thread.
//! No worker stops, every call is accounted for, and neither `start` nor
//! `shutdown` panics into the caller. Its own binary: it installs the
//! process's logger.

mod support;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use heat_observer::{Config, LateObserver};
use log::{Log, Metadata, Record};
use support::rig::{Fault, Op, RiggedStore};
use support::{ms, quiet_injected_panics, wait_stats};

static LINES: AtomicU64 = AtomicU64::new(0);

struct PanickingLogger;

impl Log for PanickingLogger {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &Record<'_>) {
        if record.target() == "heat_observer" {
            LINES.fetch_add(1, Relaxed);
            panic!("injected: the logger panics on {:?}", record.level());
        }
    }

    fn flush(&self) {}
}

#[test]
fn a_logger_that_panics_stops_no_worker_and_never_reaches_the_caller() {
    quiet_injected_panics();
    log::set_logger(&PanickingLogger).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let store = RiggedStore::new();
    store.insert_key(Config::default().heat_key("found"));
    // Writes fail for a while: the ledger warns (and the logger panics).
    store.set_fault(Op::Append, Some(Fault::Error));
    let config = Config::builder()
        .max_wait(ms(100))
        .poll(ms(10))
        .warn_interval(ms(1))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store.clone()).expect("start returns");
    for i in 0..50 {
        observer.observe_late(&format!("p{i}"), "S").unwrap();
        observer.observe_late("found", "S").unwrap_or(());
    }
    wait_stats(&observer, "warnings about failed writes", |s| {
        s.store_errors >= 5
    });
    assert!(
        LINES.load(Relaxed) > 0,
        "the logger was called (and panicked)"
    );
    store.set_fault(Op::Append, None);
    let s = wait_stats(&observer, "every observation decided", |s| {
        s.finished() == s.accepted
    });
    assert_eq!(s.workers, 2, "no worker stopped: {s:?}");
    assert_eq!(s.panicked, 0, "{s:?}");
    let report = observer.shutdown(ms(2000));
    assert!(report.stats.is_balanced(), "{report:?}");
    assert_eq!(report.stats.calls(), 100);
    assert_eq!(
        report.stats.found + report.stats.not_found + report.stats.deduplicated,
        100
    );
}
