//! [`Warnings`]: every log line that can repeat, throttled. The first of a
//! kind is written at once; later ones are counted and written at most once
//! per interval with the count since the previous line; whatever is still
//! counted when the condition stops is written within an interval, and at
//! shutdown. Only workers (and shutdown) call in here: callers count, never
//! log. Messages start with "Late observer" for the runbook's grep.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use log::{Level, info, log};

use crate::config::{ENV_QUEUE_CAPACITY, ENV_WORKERS};
use crate::stats::Counters;
use crate::{Config, InvalidInput, LOG_TARGET, Refused, StoreError};

/// One kind of warning: what is counted but not yet written.
#[derive(Debug, Default)]
struct Throttled {
    pending: u64,
    last_written: Option<Instant>,
    /// The newest detail (an error message), written with the count.
    detail: String,
}

impl Throttled {
    fn add(&mut self, n: u64, detail: Option<String>) {
        self.pending += n;
        if let Some(detail) = detail {
            self.detail = detail;
        }
    }

    /// The pending count, if there is one and a line is due (`force`: now).
    fn due(&mut self, now: Instant, every: Duration, force: bool) -> Option<(u64, String)> {
        let quiet = self.last_written.is_some_and(|t| now < t + every);
        if self.pending == 0 || (quiet && !force) {
            return None;
        }
        self.last_written = Some(now);
        Some((std::mem::take(&mut self.pending), self.detail.clone()))
    }
}

#[derive(Debug, Default)]
struct State {
    queue_full: Throttled,
    invalid: Throttled,
    store_errors: Throttled,
    panics: Throttled,
    /// Refusals already taken into `queue_full` and `invalid`.
    seen_queue_full: u64,
    seen_invalid: u64,
    /// Since when the store has failed, and how often, until it answers.
    outage: Option<(Instant, u64)>,
}

#[derive(Debug)]
pub(crate) struct Warnings {
    every: Duration,
    queue_capacity: usize,
    state: Mutex<State>,
    /// Set while an outage is open, so a successful call checks a flag,
    /// not a lock.
    failing: AtomicBool,
    /// Whether "push detection unavailable" was said.
    push_said: AtomicBool,
}

impl Warnings {
    pub(crate) fn new(config: &Config) -> Self {
        Self {
            every: config.warn_interval(),
            queue_capacity: config.queue_capacity(),
            state: Mutex::default(),
            failing: AtomicBool::new(false),
            push_said: AtomicBool::new(false),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the refusals counted since the last call and writes what is
    /// due. `force` writes everything pending (at shutdown).
    pub(crate) fn tick(
        &self,
        counters: &Counters,
        last_invalid: Option<InvalidInput>,
        force: bool,
    ) {
        let now = Instant::now();
        let mut s = self.state();
        let full = counters.refused_count(&Refused::QueueFull);
        let invalid = counters.refused_count(&Refused::ALL[2]);
        let new_full = full - std::mem::replace(&mut s.seen_queue_full, full);
        let new_invalid = invalid - std::mem::replace(&mut s.seen_invalid, invalid);
        s.queue_full.add(new_full, None);
        s.invalid
            .add(new_invalid, last_invalid.map(|why| why.to_string()));
        let lines = [
            s.queue_full.due(now, self.every, force).map(|(n, _)| {
                format!(
                    "Late observer queue full (capacity {}): {n} observation(s) dropped since the \
                     last warning; raise {ENV_QUEUE_CAPACITY} or {ENV_WORKERS}",
                    self.queue_capacity
                )
            }),
            s.invalid.due(now, self.every, force).map(|(n, why)| {
                format!("Late observer refused {n} invalid observation(s) since the last warning, the last: {why}")
            }),
            s.store_errors
                .due(now, self.every, force)
                .map(|(n, err)| store_line(n, &err)),
            s.panics.due(now, self.every, force).map(|(n, what)| {
                format!("Late observer store call panicked {n} time(s) since the last report, the last: {what}")
            }),
        ];
        drop(s);
        for (line, level) in
            lines
                .into_iter()
                .zip([Level::Warn, Level::Warn, Level::Warn, Level::Error])
        {
            if let Some(line) = line {
                log!(target: LOG_TARGET, level, "{line}");
            }
        }
    }

    /// A store call failed: counted, and written at once if it is the
    /// first for a while.
    pub(crate) fn store_failed(&self, op: &str, err: &StoreError) {
        let now = Instant::now();
        let mut s = self.state();
        s.store_errors.add(1, Some(format!("{op}: {err}")));
        s.outage.get_or_insert((now, 0)).1 += 1;
        self.failing.store(true, Relaxed);
        let line = s.store_errors.due(now, self.every, false);
        drop(s);
        if let Some((n, err)) = line {
            log::warn!(target: LOG_TARGET, "{}", store_line(n, &err));
        }
    }

    /// Push detection cannot be had here: said once per observer.
    pub(crate) fn push_unavailable(&self, why: &str) {
        if !self.push_said.swap(true, Relaxed) {
            log::warn!(
                target: LOG_TARGET,
                "Late observer push detection unavailable, polling instead: {why}"
            );
        }
    }

    /// A store call panicked, losing `jobs` observations.
    pub(crate) fn store_panicked(&self, op: &str, jobs: usize) {
        let now = Instant::now();
        let mut s = self.state();
        let what =
            format!("{op}, its {jobs} observation(s) counted as panicked, the store replaced");
        s.panics.add(1, Some(what));
        let line = s.panics.due(now, self.every, false);
        drop(s);
        if let Some((n, what)) = line {
            log::error!(target: LOG_TARGET, "Late observer store call panicked ({n} since the last report): {what}");
        }
    }

    /// A store call answered: if the store had been failing, the pending
    /// errors are written, then one line says it recovered.
    pub(crate) fn store_answered(&self) {
        if !self.failing.load(Relaxed) {
            return;
        }
        let mut s = self.state();
        self.failing.store(false, Relaxed);
        let Some((since, errors)) = s.outage.take() else {
            return;
        };
        let pending = s.store_errors.due(Instant::now(), self.every, true);
        drop(s);
        if let Some((n, err)) = pending {
            log::warn!(target: LOG_TARGET, "{}", store_line(n, &err));
        }
        info!(
            target: LOG_TARGET,
            "Late observer store recovered after {errors} error(s) in {:.1} s",
            since.elapsed().as_secs_f64()
        );
    }
}

fn store_line(n: u64, err: &str) -> String {
    format!("Late observer store call failed {n} time(s) since the last warning, the last: {err}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_is_due_then_the_interval_holds_the_rest_until_forced() {
        let every = Duration::from_secs(3600);
        let now = Instant::now();
        let mut t = Throttled::default();
        t.add(1, Some("a".into()));
        assert_eq!(t.due(now, every, false), Some((1, "a".into())));
        t.add(5, Some("b".into()));
        assert_eq!(t.due(now, every, false), None);
        assert_eq!(t.due(now + every, every, false), Some((5, "b".into())));
        t.add(2, None);
        assert_eq!(t.due(now + every, every, true), Some((2, "b".into())));
        assert_eq!(t.due(now + every, every, true), None, "nothing pending");
    }
}
