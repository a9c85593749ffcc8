//! [`Shared`]: what the callers and the workers share: the counters, the
//! stop request, and the throttled warnings. Callers only count; every log
//! line is written by a worker, so an observe call never does I/O.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::stats::Counters;
use crate::warnings::Warnings;
use crate::{Config, InvalidInput, Refused};

/// How the workers are asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopMode {
    /// Keep watching what is held (and queued) until each job is decided
    /// or `until` passes, write what was decided, abandon the rest.
    Drain { until: Instant },
    /// Write what is decided, abandon the rest at once.
    Now,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    pub(crate) warnings: Warnings,
    /// The last invalid input refused, for the warning a worker writes.
    last_invalid: Mutex<Option<InvalidInput>>,
    stop: Mutex<Option<StopMode>>,
}

impl Shared {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            counters: Counters::default(),
            warnings: Warnings::new(config),
            last_invalid: Mutex::new(None),
            stop: Mutex::new(None),
        }
    }

    /// Counts a refusal; nothing else happens on the caller's thread.
    #[cold]
    #[inline(never)]
    pub(crate) fn refuse(&self, why: Refused) -> Refused {
        // try_lock: a caller never waits, it at worst leaves an older one.
        if let (Refused::Invalid(input), Ok(mut last)) = (why, self.last_invalid.try_lock()) {
            *last = Some(input);
        }
        self.counters.refused(&why);
        why
    }

    pub(crate) fn last_invalid(&self) -> Option<InvalidInput> {
        *self
            .last_invalid
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn stop_lock(&self) -> MutexGuard<'_, Option<StopMode>> {
        self.stop.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn request_stop(&self, mode: StopMode) {
        *self.stop_lock() = Some(mode);
    }

    /// How to stop, once asked to; `Now` if the stop signal came without a
    /// mode (the observer went away).
    pub(crate) fn stop_mode(&self) -> StopMode {
        self.stop_lock().unwrap_or(StopMode::Now)
    }
}
