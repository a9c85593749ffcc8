//! [`Throttle`]: warn on the first occurrence, then at most once per
//! interval with the count since the last warning. A flood of drops gives
//! one line per interval, never one per drop, and never only one line.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Throttle {
    origin: Instant,
    interval_ms: u64,
    /// Milliseconds since `origin` before which no warning is due.
    next_ms: AtomicU64,
    /// Occurrences since the last warning.
    unreported: AtomicU64,
}

impl Throttle {
    pub(crate) fn new(interval: Duration) -> Self {
        Self {
            origin: Instant::now(),
            interval_ms: u64::try_from(interval.as_millis()).unwrap_or(u64::MAX),
            next_ms: AtomicU64::new(0),
            unreported: AtomicU64::new(0),
        }
    }

    /// Counts one occurrence. Returns `Some(n)` when the caller should warn
    /// now, `n` being the occurrences since the last warning, this one
    /// included. Lock-free: callers race on a compare-exchange and exactly
    /// one of them wins each interval.
    pub(crate) fn hit(&self) -> Option<u64> {
        self.unreported.fetch_add(1, Relaxed);
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        let next = self.next_ms.load(Relaxed);
        if now < next {
            return None;
        }
        self.next_ms
            .compare_exchange(next, now.saturating_add(self.interval_ms), Relaxed, Relaxed)
            .ok()?;
        Some(self.unreported.swap(0, Relaxed))
    }

    /// Occurrences not yet reported by a warning.
    #[cfg(test)]
    pub(crate) fn unreported(&self) -> u64 {
        self.unreported.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_hit_warns_then_the_interval_holds_the_rest() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.hit(), Some(1));
        for _ in 0..1000 {
            assert_eq!(t.hit(), None);
        }
        assert_eq!(t.unreported(), 1000);
    }

    #[test]
    fn after_the_interval_the_next_hit_reports_the_count_since() {
        let t = Throttle::new(Duration::from_millis(1));
        assert_eq!(t.hit(), Some(1));
        let start = Instant::now();
        let mut total = 1;
        // Hits keep coming until the interval has passed and one reports.
        let reported = loop {
            total += 1;
            if let Some(n) = t.hit() {
                break n;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "never reported");
        };
        assert_eq!(reported, total - 1);
        assert_eq!(t.unreported(), 0);
    }
}
