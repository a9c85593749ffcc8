//! [`Shared`]: what the caller's side and the workers share: the counters,
//! the shutdown flag, and the throttled warnings. Every log line that can
//! repeat goes through a [`Throttle`] here, so none can flood the log.
//! Messages start with "Late observer" so the runbook's
//! `grep "Late observer"` finds them.

use log::{error, warn};

use crate::config::{ENV_QUEUE_CAPACITY, ENV_WORKERS};
use crate::counters::{Counters, Refusal};
use crate::throttle::Throttle;
use crate::{Config, InvalidInput, LOG_TARGET, StoreError};

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) counters: Counters,
    queue_capacity: usize,
    queue_full: Throttle,
    invalid: Throttle,
    store_errors: Throttle,
    panics: Throttle,
}

impl Shared {
    pub(crate) fn new(config: &Config) -> Self {
        let every = config.warn_interval();
        Self {
            counters: Counters::default(),
            queue_capacity: config.queue_capacity(),
            queue_full: Throttle::new(every),
            invalid: Throttle::new(every),
            store_errors: Throttle::new(every),
            panics: Throttle::new(every),
        }
    }

    // The refusal paths are kept out of line so that the accepting path of
    // observe stays a few cache lines of code.
    #[cold]
    #[inline(never)]
    pub(crate) fn refuse_queue_full(&self) {
        self.counters.refused(Refusal::QueueFull);
        if let Some(n) = self.queue_full.hit() {
            warn!(
                target: LOG_TARGET,
                "Late observer queue full (capacity {}): {n} observation(s) dropped since the last warning; \
                 raise {ENV_QUEUE_CAPACITY} or {ENV_WORKERS}",
                self.queue_capacity
            );
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn refuse_invalid(&self, why: InvalidInput) {
        self.counters.refused(Refusal::Invalid);
        if let Some(n) = self.invalid.hit() {
            warn!(
                target: LOG_TARGET,
                "Late observer refused invalid input: {why} ({n} refused since the last warning)"
            );
        }
    }

    pub(crate) fn store_failed(&self, op: &str, err: &StoreError) {
        self.counters.store_error();
        if let Some(n) = self.store_errors.hit() {
            warn!(
                target: LOG_TARGET,
                "Late observer {op} failed: {err} ({n} store error(s) since the last warning)"
            );
        }
    }

    pub(crate) fn store_panicked(&self, op: &str, jobs: usize) {
        if let Some(n) = self.panics.hit() {
            error!(
                target: LOG_TARGET,
                "Late observer {op} panicked; its {jobs} observation(s) are counted as panicked and \
                 the store is replaced ({n} panic(s) since the last report)"
            );
        }
    }
}
