//! [`Ledger`]: the one sink of every outcome. Callers report refusals,
//! workers report what their core decided and what their store calls did;
//! the ledger counts each (the counters behind [`Stats`]), writes the
//! warnings that are due (throttled, adding up across workers), and
//! reports to the `metrics` facade (feature `metrics`). No other place
//! pairs a counter with a warning, and [`Stats`] is the ledger's snapshot.
//!
//! r2d2's `HandleError` (one pluggable sink for every error) and
//! OpenTelemetry's single drop counter are the models.

mod counters;
#[cfg(feature = "metrics")]
mod facade;
mod warnings;

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crossbeam_channel::Receiver;
use log::Level;

use crate::say::say;

use crate::config::Config;
use crate::core::{Loss, Op, Outcome};
use crate::job::Job;
use crate::metrics::{self, MetricFamily};
use crate::refusal::InvalidInput;
use crate::refusal::Refused;
use crate::stats::{Count, Stats};
use crate::store::StoreErrorKind;
use counters::Counters;
pub(crate) use warnings::example;
use warnings::{Line, Warnings};

/// What the observer runs, fixed at its start.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mode {
    /// The late observer is on (`P28_LATE_OBS_ENABLED`).
    pub(crate) late: bool,
    /// Workers run (for late looks, or early ones only after a rollback);
    /// without them, the facade hears of refusals from their callers.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) workers: bool,
    /// It runs disabled because its configuration was invalid.
    pub(crate) config_error: bool,
}

pub(crate) struct Ledger {
    counters: Counters,
    warnings: Mutex<Warnings>,
    /// One plan id per kind of invalid input, left by a caller (try_lock:
    /// a caller never waits) for the next warning.
    examples: Mutex<[Option<String>; InvalidInput::KINDS]>,
    /// The queue, for its depth; `None` when nothing runs.
    queue: Option<Receiver<Job>>,
    mode: Mode,
    /// The observer stopped in an orderly way.
    stopped: AtomicBool,
    /// The observer's labels on every metric (`observer="name"`).
    labels: Vec<(&'static str, String)>,
    #[cfg(feature = "metrics")]
    facade: facade::Facade,
}

impl Ledger {
    pub(crate) fn new(config: &Config, queue: Option<Receiver<Job>>, mode: Mode) -> Ledger {
        let labels: Vec<(&'static str, String)> = config
            .name()
            .map(|n| ("observer", n.to_owned()))
            .into_iter()
            .collect();
        let ledger = Ledger {
            counters: Counters::default(),
            warnings: Mutex::new(Warnings::new(
                config.warn_interval(),
                config.queue_capacity(),
            )),
            examples: Mutex::default(),
            queue,
            mode,
            stopped: AtomicBool::new(false),
            #[cfg(feature = "metrics")]
            facade: facade::Facade::new(&labels),
            labels,
        };
        // Every series exists from the start, also when nothing runs.
        #[cfg(feature = "metrics")]
        ledger.facade.sync(&ledger.families(0));
        ledger
    }

    fn warnings(&self) -> MutexGuard<'_, Warnings> {
        self.warnings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- callers --------------------------------------------------------

    /// A call refused at the door: counted, nothing else on the caller's
    /// thread (the warning is a worker's).
    #[cold]
    #[inline(never)]
    pub(crate) fn refused(&self, why: Refused, plan_id: &str) -> Refused {
        self.counters.refused(&why);
        if let (Refused::Invalid(input), Ok(mut examples)) = (why, self.examples.try_lock()) {
            let slot = &mut examples[input.index()];
            if slot.is_none() {
                *slot = Some(example(plan_id));
            }
        }
        // With no worker to report it, the caller does (feature `metrics`).
        #[cfg(feature = "metrics")]
        if !self.mode.workers {
            self.facade.refused(why.reason());
        }
        why
    }

    /// Jobs still in the queue when the workers were gone.
    pub(crate) fn abandoned_in_queue(&self, jobs: u64) {
        self.counters.count(Count::abandoned, jobs);
    }

    // ---- workers --------------------------------------------------------

    pub(crate) fn worker_started(&self) {
        Counters::add(&self.counters.workers, 1);
    }

    pub(crate) fn worker_stopped(&self) {
        Counters::sub(&self.counters.workers, 1);
    }

    /// One outcome of worker `worker`, at `now`.
    pub(crate) fn report(&self, worker: usize, outcome: Outcome, now: Instant) {
        let c = &self.counters;
        let lines = match outcome {
            Outcome::Taken { jobs, plans } => {
                c.taken(jobs as u64);
                for (plan, point, wait_ms) in plans {
                    say!(
                        Level::Debug,
                        "Late observer worker {worker} took plan {plan} ({point}, wait {wait_ms} ms)"
                    );
                }
                Vec::new()
            }
            Outcome::Decided {
                plan,
                point,
                found,
                wait_ms,
                polls,
                by,
                late,
            } => {
                if late {
                    c.count(Count::late_answers, 1);
                }
                if let Some(plan) = plan {
                    say!(
                        Level::Debug,
                        "Late observer decided plan {plan} ({point}): heat_found={} wait_ms={wait_ms} \
                         after {polls} look(s), by {}{}",
                        u8::from(found),
                        by.as_str(),
                        if late { ", late" } else { "" }
                    );
                }
                Vec::new()
            }
            Outcome::Recorded { event, duplicate } => {
                let e = &event;
                c.recorded(e.obs_point, e.heat_found, e.wait_ms, duplicate);
                #[cfg(feature = "metrics")]
                if !duplicate {
                    self.facade
                        .recorded(e.obs_point.as_str(), e.heat_found, e.wait_ms);
                }
                if crate::say::enabled(Level::Debug) {
                    let what = if duplicate { "deduplicated" } else { "written" };
                    say!(
                        Level::Debug,
                        "Late observer {what} plan {} ({})",
                        e.plan_id,
                        e.obs_point
                    );
                }
                self.warnings().recorded(duplicate, &e.plan_id, now)
            }
            Outcome::Lost { loss, jobs, first } => {
                c.lost(loss, jobs);
                if let Some(plan) = first {
                    say!(
                        Level::Debug,
                        "Late observer {} {jobs} observation(s), plan {plan} among them",
                        match loss {
                            Loss::Failed => "failed",
                            Loss::Panicked => "lost to a panic",
                            Loss::Abandoned => "abandoned",
                        }
                    );
                }
                Vec::new()
            }
            Outcome::Called { op, items } => {
                let (calls, n) = match op {
                    Op::Write => (&c.append_calls, Count::claims_sent),
                    _ => (&c.exists_calls, Count::keys_checked),
                };
                Counters::add(calls, 1);
                c.count(n, items as u64);
                Vec::new()
            }
            Outcome::Answered { op } => self.warnings().answered(worker, op, now),
            Outcome::Failed { op, error } => {
                Counters::add(&c.store_errors[error.kind().index()], 1);
                // Every failure, where the warnings say one per interval:
                // what a fault did, call by call, for whoever debugs it.
                say!(
                    Level::Debug,
                    "Late observer worker {worker}: {} failed: {error}",
                    op.as_str()
                );
                self.warnings().failed(worker, op, &error, now)
            }
            Outcome::Panicked { op, jobs } => self.warnings().panicked(op.as_str(), jobs, now),
            Outcome::Pushing(true) => {
                Counters::add(&c.push_workers, 1);
                Vec::new()
            }
            Outcome::Pushing(false) => {
                Counters::sub(&c.push_workers, 1);
                Vec::new()
            }
            Outcome::PushUnavailable(why) => self.warnings().push_unavailable(&why),
            Outcome::Idle => self.warnings().idle(worker, now),
            Outcome::NotYet { plan } => {
                say!(Level::Trace, "Late observer looked at plan {plan}: not yet");
                Vec::new()
            }
        };
        write(lines);
    }

    /// A worker's wake-up: writes the warnings that are due and reports to
    /// the facade when it is time to. `accepted`: the calls accepted so far.
    pub(crate) fn tick(&self, now: Instant, accepted: u64) {
        self.warn(now, false);
        #[cfg(feature = "metrics")]
        if self.facade.due(now) {
            self.facade.sync(&self.families(accepted));
        }
        #[cfg(not(feature = "metrics"))]
        let _ = accepted;
    }

    fn warn(&self, now: Instant, force: bool) {
        let mut examples =
            std::mem::take(&mut *self.examples.lock().unwrap_or_else(PoisonError::into_inner));
        // Read under the lock, so that each worker sees the totals grow.
        let mut w = self.warnings();
        let queue_full = self.counters.refused_count(&Refused::QueueFull);
        let invalid = std::array::from_fn(|k| Counters::get(&self.counters.invalid[k]));
        let mut lines = w.refusals(queue_full, invalid, &mut examples, now, force);
        lines.extend(w.due(now, force));
        drop(w);
        write(lines);
    }

    /// The observer stopped: every pending warning is written, the facade
    /// gets the final figures, and the series say it stopped.
    pub(crate) fn stop(&self, now: Instant, accepted: u64) {
        self.stopped.store(true, Relaxed);
        self.warn(now, true);
        #[cfg(feature = "metrics")]
        self.facade.sync(&self.families(accepted));
        #[cfg(not(feature = "metrics"))]
        let _ = accepted;
    }

    // ---- reading --------------------------------------------------------

    /// A snapshot of every counter and gauge; `accepted` is counted on the
    /// observer's front, where accepted calls touch one cache line only.
    pub(crate) fn snapshot(&self, accepted: u64) -> Stats {
        let c = &self.counters;
        let queued = self.queue.as_ref().map_or(0, |q| q.len() as u64);
        let points = c.points();
        let refused = |r: Refused| c.refused_count(&r);
        let mut stats = Stats {
            enabled: self.mode.late,
            config_error: self.mode.config_error,
            stopped: self.stopped.load(Relaxed),
            accepted,
            refused_disabled: refused(Refused::Disabled),
            refused_config_error: refused(Refused::ConfigError),
            refused_invalid: refused(Refused::ALL[2]),
            refused_queue_full: refused(Refused::QueueFull),
            refused_shut_down: refused(Refused::ShutDown),
            found: points.iter().map(|p| p.found).sum(),
            not_found: points.iter().map(|p| p.not_found).sum(),
            deduplicated: points.iter().map(|p| p.deduplicated).sum(),
            queued,
            in_flight: Counters::get(&c.in_flight),
            workers: Counters::get(&c.workers),
            push_workers: Counters::get(&c.push_workers),
            store_errors: c.store_errors.iter().map(Counters::get).sum(),
            store_errors_by_kind: StoreErrorKind::ALL
                .iter()
                .map(|k| (k.as_str(), Counters::get(&c.store_errors[k.index()])))
                .collect(),
            exists_calls: Counters::get(&c.exists_calls),
            append_calls: Counters::get(&c.append_calls),
            points,
            ..Stats::default()
        };
        c.fill(&mut stats);
        stats
    }

    /// Every metric family, each sample labelled with the observer's labels.
    pub(crate) fn families(&self, accepted: u64) -> Vec<MetricFamily> {
        metrics::families(&self.snapshot(accepted), &self.labels)
    }
}

fn write(lines: Vec<Line>) {
    for (level, line) in lines {
        say!(level, "{line}");
    }
}
