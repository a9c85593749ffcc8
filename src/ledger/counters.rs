//! [`Counters`]: the live atomics behind [`Stats`](crate::Stats). Only the
//! ledger writes them.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};

use crate::core::Loss;
use crate::obs_point::ObsPoint;
use crate::refusal::InvalidInput;
use crate::refusal::Refused;
use crate::stats::{Count, PointStats, Stats};
use crate::store::StoreErrorKind;

/// Keeps a value on its own cache line (128 bytes covers adjacent-line
/// prefetching on x86), so callers and workers do not share one.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// By [`Refused::index`]; touched by callers, on a line of their own.
    pub(crate) refused: Padded<[AtomicU64; Refused::COUNT]>,
    /// Invalid input by [`InvalidInput::index`].
    pub(crate) invalid: [AtomicU64; InvalidInput::KINDS],
    /// The simple counters, by [`Count`].
    pub(crate) counts: [AtomicU64; Count::ALL.len()],
    pub(crate) in_flight: AtomicU64,
    pub(crate) workers: AtomicU64,
    pub(crate) push_workers: AtomicU64,
    /// By [`StoreErrorKind::index`].
    pub(crate) store_errors: [AtomicU64; StoreErrorKind::ALL.len()],
    pub(crate) exists_calls: AtomicU64,
    pub(crate) append_calls: AtomicU64,
    /// Beyond the built-in points, which the snapshot adds at 0.
    pub(crate) points: Mutex<Vec<PointStats>>,
}

impl Counters {
    pub(crate) fn refused(&self, why: &Refused) {
        self.refused.0[why.index()].fetch_add(1, Relaxed);
        if let Refused::Invalid(input) = why {
            self.invalid[input.index()].fetch_add(1, Relaxed);
        }
    }

    pub(crate) fn refused_count(&self, why: &Refused) -> u64 {
        self.refused.0[why.index()].load(Relaxed)
    }

    pub(crate) fn count(&self, count: Count, n: u64) {
        self.counts[count as usize].fetch_add(n, Relaxed);
    }

    /// Jobs a worker held that ended without an event.
    pub(crate) fn lost(&self, loss: Loss, jobs: u64) {
        let count = match loss {
            Loss::Failed => Count::failed,
            Loss::Panicked => Count::panicked,
            Loss::Abandoned => Count::abandoned,
        };
        self.count(count, jobs);
        self.in_flight.fetch_sub(jobs, Relaxed);
    }

    /// Every simple counter into `stats`.
    pub(crate) fn fill(&self, stats: &mut Stats) {
        for (count, ..) in Count::ALL {
            stats.set_count(*count, self.counts[*count as usize].load(Relaxed));
        }
    }

    /// One event written (`duplicate` false) or refused as a duplicate.
    pub(crate) fn recorded(&self, point: ObsPoint, found: bool, wait_ms: u64, duplicate: bool) {
        let mut points = self.points.lock().unwrap_or_else(PoisonError::into_inner);
        let i = match points.iter().position(|p| p.obs_point == point) {
            Some(i) => i,
            None => {
                points.push(PointStats::new(point));
                points.len() - 1
            }
        };
        let stats = &mut points[i];
        if duplicate {
            stats.deduplicated += 1;
        } else if found {
            stats.found += 1;
            stats.wait.record(wait_ms);
        } else {
            stats.not_found += 1;
        }
        drop(points);
        self.in_flight.fetch_sub(1, Relaxed);
    }

    pub(crate) fn taken(&self, jobs: u64) {
        self.in_flight.fetch_add(jobs, Relaxed);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn sub(counter: &AtomicU64, n: u64) {
        counter.fetch_sub(n, Relaxed);
    }

    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Relaxed)
    }

    pub(crate) fn points(&self) -> Vec<PointStats> {
        let mut points = self
            .points
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for point in ObsPoint::BUILT_IN {
            if !points.iter().any(|p| p.obs_point == point) {
                points.push(PointStats::new(point));
            }
        }
        let rank = |p: &PointStats| ObsPoint::BUILT_IN.iter().position(|&b| b == p.obs_point);
        // Built-in points first; the others keep the order they came in.
        points.sort_by_key(|p| rank(p).unwrap_or(ObsPoint::BUILT_IN.len()));
        points
    }
}
