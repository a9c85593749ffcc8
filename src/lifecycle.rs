//! Stopping the pool within a bound: signal, wait for each worker's "done"
//! until the deadline, join only the workers that finished, count what is
//! still queued as abandoned, and detach the rest.

use std::sync::{MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{info, warn};

use crate::observer::Inner;
use crate::{LOG_TARGET, Stats};

pub(crate) enum Lifecycle {
    /// Observing disabled: nothing was started.
    Disabled,
    Running {
        /// Dropping it wakes every worker and tells it to stop.
        stop: Sender<()>,
        handles: Vec<Option<JoinHandle<()>>>,
        /// Each worker sends its index here as it exits.
        done: Receiver<usize>,
    },
    /// A shutdown call is waiting for the workers.
    Stopping,
    Stopped(ShutdownReport),
}

impl Lifecycle {
    pub(crate) fn running(
        stop: Sender<()>,
        handles: Vec<JoinHandle<()>>,
        done: Receiver<usize>,
    ) -> Self {
        Lifecycle::Running {
            stop,
            handles: handles.into_iter().map(Some).collect(),
            done,
        }
    }
}

/// What [`LateObserver::shutdown`](crate::LateObserver::shutdown) found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// How long the shutdown took.
    pub elapsed: Duration,
    /// Workers that stopped within the timeout and were joined.
    pub workers_stopped: usize,
    /// Workers still busy (a store call hanging) when the timeout passed;
    /// they were detached and count their jobs as abandoned when they return.
    pub workers_not_stopped: usize,
    /// The counters at the end of the shutdown.
    pub stats: Stats,
}

impl ShutdownReport {
    /// Events written, found or not.
    pub fn emitted(&self) -> u64 {
        self.stats.found + self.stats.not_found
    }

    /// Observations abandoned at shutdown so far.
    pub fn abandoned(&self) -> u64 {
        self.stats.abandoned
    }

    /// Whether every worker stopped in time.
    pub fn is_complete(&self) -> bool {
        self.workers_not_stopped == 0
    }
}

impl Inner {
    fn lifecycle(&self) -> MutexGuard<'_, Lifecycle> {
        self.lifecycle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        let start = Instant::now();
        // A timeout too large to add is as good as forever.
        let deadline = start.checked_add(timeout);
        let mut life = self.lifecycle();
        let (stop, mut handles, done) = match std::mem::replace(&mut *life, Lifecycle::Stopping) {
            Lifecycle::Running {
                stop,
                handles,
                done,
            } => (stop, handles, done),
            Lifecycle::Stopped(report) => {
                *life = Lifecycle::Stopped(report.clone());
                return report;
            }
            Lifecycle::Disabled => {
                self.close();
                let report = self.report(start, 0, 0);
                *life = Lifecycle::Stopped(report.clone());
                return report;
            }
            Lifecycle::Stopping => {
                *life = Lifecycle::Stopping;
                return self.await_other_shutdown(life, start, deadline);
            }
        };
        drop(life);

        self.close();
        drop(stop);
        let mut stopped = 0;
        while stopped < handles.len() {
            let next = match deadline {
                Some(d) => done.recv_deadline(d).ok(),
                None => done.recv().ok(),
            };
            let Some(index) = next else { break };
            // It has sent "done" from its last statement, so this join is short.
            if let Some(handle) = handles.get_mut(index).and_then(Option::take) {
                let _ = handle.join();
            }
            stopped += 1;
        }
        if let Some(rx) = &self.rx {
            let queued = rx.try_iter().count() as u64;
            self.shared.counters.abandoned_in_queue(queued);
        }
        let report = self.report(start, stopped, handles.len() - stopped);
        log_summary(&report);
        *self.lifecycle() = Lifecycle::Stopped(report.clone());
        self.stopped.notify_all();
        report
    }

    /// Another thread is shutting down: wait for its report, within our own
    /// deadline.
    fn await_other_shutdown(
        &self,
        mut life: MutexGuard<'_, Lifecycle>,
        start: Instant,
        deadline: Option<Instant>,
    ) -> ShutdownReport {
        loop {
            if let Lifecycle::Stopped(report) = &*life {
                return report.clone();
            }
            let left = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            if left.is_zero() {
                let busy = self.stats().workers as usize;
                return self.report(start, 0, busy);
            }
            life = self
                .stopped
                .wait_timeout(life, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    fn report(&self, start: Instant, stopped: usize, not_stopped: usize) -> ShutdownReport {
        ShutdownReport {
            elapsed: start.elapsed(),
            workers_stopped: stopped,
            workers_not_stopped: not_stopped,
            stats: self.stats(),
        }
    }
}

fn log_summary(report: &ShutdownReport) {
    let s = &report.stats;
    let line = format!(
        "Late observer stopped in {} ms: accepted {}, found {}, not found {}, deduplicated {}, \
         failed {}, panicked {}, abandoned {}; refused: queue full {}, invalid {}, shut down {}, \
         disabled {}",
        report.elapsed.as_millis(),
        s.accepted,
        s.found,
        s.not_found,
        s.deduplicated,
        s.failed,
        s.panicked,
        s.abandoned,
        s.refused_queue_full,
        s.refused_invalid,
        s.refused_shut_down,
        s.refused_disabled
    );
    if report.is_complete() {
        info!(target: LOG_TARGET, "{line}");
    } else {
        warn!(
            target: LOG_TARGET,
            "{line}; {} worker(s) did not stop in time and were detached, {} observation(s) still held",
            report.workers_not_stopped,
            s.in_flight
        );
    }
}
