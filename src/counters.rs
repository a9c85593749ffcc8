//! The live counters behind [`Stats`], but for `accepted`, which lives with
//! the rest of what an accepted observe call touches (`observer::Front`).
//! The refusal counters, touched by callers on the cold paths only, have a
//! cache line of their own, away from the workers' counters.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use crate::ObsPoint;
use crate::stats::{PointStats, Stats};

/// Keeps a value on its own cache line (128 bytes covers adjacent-line
/// prefetching on x86).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// Why an observe call was refused; also the `reason` metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Disabled = 0,
    Invalid = 1,
    QueueFull = 2,
    ShutDown = 3,
}

impl Refusal {
    pub(crate) const ALL: [Refusal; 4] = [
        Refusal::Disabled,
        Refusal::Invalid,
        Refusal::QueueFull,
        Refusal::ShutDown,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Refusal::Disabled => "disabled",
            Refusal::Invalid => "invalid",
            Refusal::QueueFull => "queue_full",
            Refusal::ShutDown => "shut_down",
        }
    }
}

/// How an accepted observation ended, other than with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loss {
    Failed,
    Panicked,
    Abandoned,
}

#[derive(Debug)]
pub(crate) struct Counters {
    refused: Padded<[AtomicU64; 4]>,
    worker: WorkerCounters,
    points: Mutex<Vec<PointStats>>,
}

#[derive(Debug, Default)]
struct WorkerCounters {
    failed: AtomicU64,
    panicked: AtomicU64,
    abandoned: AtomicU64,
    in_flight: AtomicU64,
    workers: AtomicU64,
    store_errors: AtomicU64,
    exists_calls: AtomicU64,
    keys_checked: AtomicU64,
    append_calls: AtomicU64,
    claims_sent: AtomicU64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            refused: Padded::default(),
            worker: WorkerCounters::default(),
            points: Mutex::new(
                ObsPoint::BUILT_IN
                    .into_iter()
                    .map(PointStats::new)
                    .collect(),
            ),
        }
    }
}

impl Counters {
    #[cold]
    pub(crate) fn refused(&self, why: Refusal) {
        self.refused.0[why as usize].fetch_add(1, Relaxed);
    }

    /// Jobs a worker held that ended without an event.
    pub(crate) fn lost(&self, loss: Loss, jobs: u64) {
        let counter = match loss {
            Loss::Failed => &self.worker.failed,
            Loss::Panicked => &self.worker.panicked,
            Loss::Abandoned => &self.worker.abandoned,
        };
        counter.fetch_add(jobs, Relaxed);
        self.worker.in_flight.fetch_sub(jobs, Relaxed);
    }

    /// Jobs still in the queue at shutdown, never held by a worker.
    pub(crate) fn abandoned_in_queue(&self, jobs: u64) {
        self.worker.abandoned.fetch_add(jobs, Relaxed);
    }

    /// One event written (`deduplicated` false) or refused as a duplicate.
    pub(crate) fn recorded(&self, point: ObsPoint, found: bool, wait_ms: u64, deduplicated: bool) {
        let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        let stats = match points.iter().position(|p| p.obs_point == point) {
            Some(i) => &mut points[i],
            None => {
                points.push(PointStats::new(point));
                points.last_mut().expect("just pushed")
            }
        };
        if deduplicated {
            stats.deduplicated += 1;
        } else if found {
            stats.found += 1;
            stats.wait.record(wait_ms);
        } else {
            stats.not_found += 1;
        }
        drop(points);
        self.worker.in_flight.fetch_sub(1, Relaxed);
    }

    pub(crate) fn admitted(&self, jobs: u64) {
        self.worker.in_flight.fetch_add(jobs, Relaxed);
    }

    pub(crate) fn worker_started(&self) {
        self.worker.workers.fetch_add(1, Relaxed);
    }

    pub(crate) fn worker_stopped(&self) {
        self.worker.workers.fetch_sub(1, Relaxed);
    }

    pub(crate) fn exists_call(&self, keys: usize) {
        self.worker.exists_calls.fetch_add(1, Relaxed);
        self.worker.keys_checked.fetch_add(keys as u64, Relaxed);
    }

    pub(crate) fn append_call(&self, claims: usize) {
        self.worker.append_calls.fetch_add(1, Relaxed);
        self.worker.claims_sent.fetch_add(claims as u64, Relaxed);
    }

    pub(crate) fn store_error(&self) {
        self.worker.store_errors.fetch_add(1, Relaxed);
    }

    /// A snapshot; `accepted` and `queued` come from the observer's front
    /// and its channel, which only the caller of this function can see.
    pub(crate) fn snapshot(&self, accepted: u64, queued: u64) -> Stats {
        let w = &self.worker;
        let points = self
            .points
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let refused = |r: Refusal| self.refused.0[r as usize].load(Relaxed);
        Stats {
            accepted,
            refused_disabled: refused(Refusal::Disabled),
            refused_invalid: refused(Refusal::Invalid),
            refused_queue_full: refused(Refusal::QueueFull),
            refused_shut_down: refused(Refusal::ShutDown),
            found: points.iter().map(|p| p.found).sum(),
            not_found: points.iter().map(|p| p.not_found).sum(),
            deduplicated: points.iter().map(|p| p.deduplicated).sum(),
            failed: w.failed.load(Relaxed),
            panicked: w.panicked.load(Relaxed),
            abandoned: w.abandoned.load(Relaxed),
            queued,
            in_flight: w.in_flight.load(Relaxed),
            workers: w.workers.load(Relaxed),
            store_errors: w.store_errors.load(Relaxed),
            exists_calls: w.exists_calls.load(Relaxed),
            keys_checked: w.keys_checked.load(Relaxed),
            append_calls: w.append_calls.load(Relaxed),
            claims_sent: w.claims_sent.load(Relaxed),
            points,
        }
    }
}
