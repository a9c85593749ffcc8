//! [`Warnings`]: every log line that can repeat, and what it has counted
//! but not yet written. The first line of a kind is written at once; later
//! ones are counted and written at most once per interval with the count
//! since the previous line; whatever is still counted when the condition
//! stops is written within an interval, and at shutdown, so the counts in
//! the lines add up to the counters.
//!
//! Store health is one state per observer, whatever the number of
//! workers: an outage opens with the first failed call of any worker and
//! closes, with one "recovered" line, once every worker whose last call
//! failed has answered again (or holds nothing and so has no stake) and
//! no call has failed for [`RECOVERY_HOLD`]. The recovery line carries
//! the failures not yet said, so one outage gives two lines. A store that flaps (a write paused, a connection killed, a
//! recovery, again) gives at most one failure and one recovery line per
//! interval: an outage that closes within the interval of the last
//! recovery line is said with the next one, which counts the outages.
//!
//! It does no I/O: each method returns the lines to write, which the
//! ledger logs after letting go of its lock.

use std::time::{Duration, Instant};

use log::Level;

use crate::core::Op;
use crate::refusal::InvalidInput;
use crate::store::{StoreError, StoreErrorKind};

/// A line to log.
pub(crate) type Line = (Level, String);

/// How long every call must have answered before an outage is said to be
/// over. On a cluster a dead master fails only the looks that hold one of
/// its keys, and looks of other masters' keys answer between them: without
/// the hold, one failover read as a dozen outages ("the store is
/// flapping") and a second warning ten seconds on (a ten-minute chaos run
/// of the seventeenth round).
pub(crate) const RECOVERY_HOLD: Duration = Duration::from_secs(1);

/// One kind of warning: what is counted but not yet written.
#[derive(Debug, Default)]
struct Throttled {
    pending: u64,
    last_written: Option<Instant>,
    /// The newest detail (an error message), written with the count.
    detail: String,
    /// Workers whose events are in `pending` (a bit each).
    workers: u64,
}

impl Throttled {
    fn add(&mut self, n: u64, detail: Option<String>, workers: u64) {
        self.pending += n;
        self.workers |= workers;
        if let Some(detail) = detail {
            self.detail = detail;
        }
    }

    /// The pending count, the detail and the number of workers, if a line
    /// is due (`force`: now).
    fn due(&mut self, now: Instant, every: Duration, force: bool) -> Option<(u64, String, u32)> {
        let quiet = self.last_written.is_some_and(|t| within(t, now, every));
        if self.pending == 0 || (quiet && !force) {
            return None;
        }
        self.last_written = Some(now);
        let workers = std::mem::take(&mut self.workers).count_ones();
        Some((
            std::mem::take(&mut self.pending),
            self.detail.clone(),
            workers,
        ))
    }
}

/// Whether `now` is less than `every` after `since`. Measured as the time
/// since, not as `since + every`: an interval of any length (even
/// `Duration::MAX`) cannot overflow the clock.
fn within(since: Instant, now: Instant, every: Duration) -> bool {
    now.saturating_duration_since(since) < every
}

/// An open outage: since when, and the failed calls in it.
#[derive(Debug)]
struct Outage {
    since: Instant,
    errors: u64,
    workers: u64,
}

/// Outages closed but not yet said (a flapping store).
#[derive(Debug)]
struct Unsaid {
    outages: u64,
    since: Instant,
    /// When the last of them was over: every call answering again.
    until: Instant,
    errors: u64,
    workers: u64,
}

/// The index of `op`'s kind in `Health::failing`.
fn kind(op: Op) -> usize {
    match op {
        Op::Look => 0,
        Op::Write => 1,
        Op::Subscribe | Op::Push => 2,
    }
}

/// The store's health, one per observer.
#[derive(Debug, Default)]
struct Health {
    /// Workers whose last call of a kind failed (a bit each), per kind:
    /// looks, writes, the rest (push). An outage ends when every kind that
    /// failed has answered: on a cluster, a dead master fails the looks
    /// while the event writes (to another master) answer, and that is one
    /// outage, not one per write.
    failing: [u64; 3],
    outage: Option<Outage>,
    unsaid: Option<Unsaid>,
    last_recovery_line: Option<Instant>,
    /// A call answered since the last failure.
    answered: bool,
    /// Since when every worker with a stake has answered, no call failing
    /// (the outage closes [`RECOVERY_HOLD`] after).
    clear_since: Option<Instant>,
    faults: Throttled,
    /// Operators' errors (credentials, rights, database): said every
    /// interval while they last.
    misconfigured: Throttled,
}

/// A plan id refused as invalid, as it may be shown: at most 32
/// characters, escaped.
pub(crate) fn example(plan_id: &str) -> String {
    let mut shown: String = plan_id
        .chars()
        .take(32)
        .flat_map(char::escape_debug)
        .collect();
    if plan_id.chars().nth(32).is_some() {
        shown.push_str("...");
    }
    shown
}

#[derive(Debug)]
pub(crate) struct Warnings {
    every: Duration,
    queue_capacity: usize,
    queue_full: Throttled,
    seen_queue_full: u64,
    /// Per kind of invalid input: the count and one plan id (shown form).
    invalid: [Throttled; InvalidInput::KINDS],
    seen_invalid: [u64; InvalidInput::KINDS],
    health: Health,
    panics: Throttled,
    push_said: bool,
    reuse: Reuse,
}

/// Events recorded in the current warning interval, and how many of them
/// were duplicates of events written earlier (a rerun with the same plan
/// ids writes nothing and would say nothing).
#[derive(Debug, Default)]
struct Reuse {
    since: Option<Instant>,
    recorded: u64,
    duplicates: u64,
    example: Option<String>,
}

impl Warnings {
    pub(crate) fn new(every: Duration, queue_capacity: usize) -> Self {
        Self {
            every,
            queue_capacity,
            queue_full: Throttled::default(),
            seen_queue_full: 0,
            invalid: Default::default(),
            seen_invalid: [0; InvalidInput::KINDS],
            health: Health::default(),
            panics: Throttled::default(),
            push_said: false,
            reuse: Reuse::default(),
        }
    }

    /// An event recorded for `plan`, or refused as a `duplicate` of one
    /// written earlier; the reuse line, if one is due.
    pub(crate) fn recorded(&mut self, duplicate: bool, plan: &str, now: Instant) -> Vec<Line> {
        let r = &mut self.reuse;
        r.since.get_or_insert(now);
        r.recorded += 1;
        if duplicate {
            r.duplicates += 1;
            if r.example.is_none() {
                r.example = Some(plan.chars().take(64).collect());
            }
        }
        self.reuse_due(now, false)
    }

    /// Once per interval (`force`: now): if most events recorded in it were
    /// duplicates, one line says so; the interval starts again.
    fn reuse_due(&mut self, now: Instant, force: bool) -> Vec<Line> {
        let r = &mut self.reuse;
        let Some(since) = r.since else {
            return Vec::new();
        };
        if !force && within(since, now, self.every) {
            return Vec::new();
        }
        let line = (r.duplicates > 0 && r.duplicates * 2 > r.recorded).then(|| {
            (
                Level::Warn,
                format!(
                    "Late observer deduplicated {} of {} event(s) since the last warning: plan \
                     ids reused? (e.g. plan \"{}\"; one event per plan and observation point \
                     is kept for P28_LATE_OBS_DEDUPE_TTL_MS)",
                    r.duplicates,
                    r.recorded,
                    r.example.as_deref().unwrap_or("")
                ),
            )
        });
        *r = Reuse::default();
        line.into_iter().collect()
    }

    /// Takes the refusals counted so far (totals, per kind of invalid
    /// input with an example plan id each) and returns the lines due.
    pub(crate) fn refusals(
        &mut self,
        queue_full: u64,
        invalid: [u64; InvalidInput::KINDS],
        examples: &mut [Option<String>; InvalidInput::KINDS],
        now: Instant,
        force: bool,
    ) -> Vec<Line> {
        let mut lines = Vec::new();
        let new = queue_full.saturating_sub(self.seen_queue_full);
        self.seen_queue_full = self.seen_queue_full.max(queue_full);
        self.queue_full.add(new, None, 0);
        if let Some((n, _, _)) = self.queue_full.due(now, self.every, force) {
            lines.push((
                Level::Warn,
                format!(
                    "Late observer queue full (capacity {}): {n} observation(s) dropped since \
                     the last warning; raise P28_LATE_OBS_QUEUE_CAPACITY or P28_LATE_OBS_WORKERS",
                    self.queue_capacity
                ),
            ));
        }
        let mut parts = Vec::new();
        let mut total = 0;
        for (k, kind) in InvalidInput::EACH_KIND.iter().enumerate() {
            let new = invalid[k].saturating_sub(self.seen_invalid[k]);
            self.seen_invalid[k] = self.seen_invalid[k].max(invalid[k]);
            self.invalid[k].add(new, examples[k].take(), 0);
            if let Some((n, plan, _)) = self.invalid[k].due(now, self.every, force) {
                total += n;
                let example = if plan.is_empty() {
                    String::new()
                } else {
                    format!(" (e.g. plan \"{plan}\")")
                };
                parts.push(format!("{n} {kind}{example}"));
                self.invalid[k].detail.clear();
            }
        }
        if total > 0 {
            lines.push((
                Level::Warn,
                format!(
                    "Late observer refused {total} invalid observation(s) since the last \
                     warning: {}",
                    parts.join("; ")
                ),
            ));
        }
        lines
    }

    /// Worker `worker`'s store call `op` failed.
    pub(crate) fn failed(
        &mut self,
        worker: usize,
        op: Op,
        error: &StoreError,
        now: Instant,
    ) -> Vec<Line> {
        let bit = bit(worker);
        let h = &mut self.health;
        let mut lines = Vec::new();
        if error.kind().is_configuration() {
            // Not an outage: it lasts until an operator fixes it, and is
            // said every interval as such, never as a store "flapping"
            // between it and the calls that still answer.
            h.misconfigured.add(1, Some(misconfigured(error)), bit);
            if let Some((n, why, _)) = h.misconfigured.due(now, self.every, false) {
                lines.push((Level::Error, misconfigured_line(n, &why)));
            }
            return lines;
        }
        h.failing[kind(op)] |= bit;
        h.answered = false;
        h.clear_since = None;
        let outage = h.outage.get_or_insert(Outage {
            since: now,
            errors: 0,
            workers: 0,
        });
        outage.errors += 1;
        outage.workers |= bit;
        {
            h.faults
                .add(1, Some(format!("{}: {error}", op.as_str())), bit);
            if let Some((n, err, workers)) = h.faults.due(now, self.every, false) {
                lines.push((Level::Warn, fault_line(n, workers, &err)));
            }
        }
        lines
    }

    /// Worker `worker`'s store call `op` answered.
    pub(crate) fn answered(&mut self, worker: usize, op: Op, now: Instant) -> Vec<Line> {
        let h = &mut self.health;
        for k in [kind(op), kind(Op::Push)] {
            h.failing[k] &= !bit(worker);
        }
        h.answered = true;
        self.close_outage(now, false)
    }

    /// Worker `worker` holds nothing: it has no stake in the store's health
    /// until it makes a call again.
    pub(crate) fn idle(&mut self, worker: usize, now: Instant) -> Vec<Line> {
        for failing in &mut self.health.failing {
            *failing &= !bit(worker);
        }
        self.close_outage(now, false)
    }

    /// Closes the open outage once every worker with a stake has answered
    /// and none has failed for [`RECOVERY_HOLD`] (`force`: at once).
    fn close_outage(&mut self, now: Instant, force: bool) -> Vec<Line> {
        let every = self.every;
        let h = &mut self.health;
        if h.outage.is_none() || h.failing.iter().any(|f| *f != 0) || !h.answered {
            return Vec::new();
        }
        let clear = *h.clear_since.get_or_insert(now);
        if !force && within(clear, now, RECOVERY_HOLD) {
            return Vec::new();
        }
        let Some(outage) = h.outage.take() else {
            return Vec::new();
        };
        h.clear_since = None;
        let unsaid = h.unsaid.get_or_insert(Unsaid {
            outages: 0,
            since: outage.since,
            until: clear,
            errors: 0,
            workers: 0,
        });
        unsaid.outages += 1;
        unsaid.until = clear;
        unsaid.errors += outage.errors;
        unsaid.workers |= outage.workers;
        if h.last_recovery_line.is_some_and(|t| within(t, now, every)) {
            return Vec::new(); // flapping: said with the next recovery line
        }
        self.recovery_lines(now)
    }

    /// The recovery line for the outages closed and not yet said, with the
    /// failures not yet said (and the operators' errors before it).
    fn recovery_lines(&mut self, now: Instant) -> Vec<Line> {
        let h = &mut self.health;
        let Some(unsaid) = h.unsaid.take() else {
            return Vec::new();
        };
        h.last_recovery_line = Some(now);
        let mut lines = Vec::new();
        if let Some((n, why, _)) = h.misconfigured.due(now, self.every, true) {
            lines.push((Level::Error, misconfigured_line(n, &why)));
        }
        let flapping = match unsaid.outages {
            1 => String::new(),
            n => format!(" ({n} outages: the store is flapping)"),
        };
        let unwarned = match h.faults.due(now, self.every, true) {
            Some((n, err, _)) => {
                format!("; {n} of them not in an earlier warning, the last: {err}")
            }
            None => String::new(),
        };
        lines.push((
            Level::Info,
            format!(
                "Late observer store recovered after {} error(s) on {} worker(s) in {:.1} s{flapping}{unwarned}",
                unsaid.errors,
                unsaid.workers.count_ones(),
                unsaid.until.saturating_duration_since(unsaid.since).as_secs_f64()
            ),
        ));
        lines
    }

    /// A store call panicked, losing `jobs` observations.
    pub(crate) fn panicked(&mut self, op: &str, jobs: usize, now: Instant) -> Vec<Line> {
        let what =
            format!("{op}, its {jobs} observation(s) counted as panicked, the store replaced");
        self.panics.add(1, Some(what), 0);
        self.panics
            .due(now, self.every, false)
            .map(|(n, what, _)| (Level::Error, panic_line(n, &what)))
            .into_iter()
            .collect()
    }

    /// Push detection cannot be had: said once per observer.
    pub(crate) fn push_unavailable(&mut self, why: &str) -> Vec<Line> {
        if std::mem::replace(&mut self.push_said, true) {
            return Vec::new();
        }
        vec![(
            Level::Warn,
            format!("Late observer push detection unavailable, polling instead: {why}"),
        )]
    }

    /// The store lines that are due without a new call (an interval passed
    /// while a failing worker waits); `force` writes everything pending.
    pub(crate) fn due(&mut self, now: Instant, force: bool) -> Vec<Line> {
        let mut lines = self.reuse_due(now, force);
        lines.extend(self.close_outage(now, force));
        let h = &self.health;
        let quiet = h
            .last_recovery_line
            .is_some_and(|t| within(t, now, self.every));
        // At the stop, also while an outage is open: every count is said.
        if h.unsaid.is_some() && (force || (h.outage.is_none() && !quiet)) {
            lines.extend(self.recovery_lines(now));
        }
        let h = &mut self.health;
        if let Some((n, err, workers)) = h.faults.due(now, self.every, force) {
            lines.push((Level::Warn, fault_line(n, workers, &err)));
        }
        if let Some((n, why, _)) = h.misconfigured.due(now, self.every, force) {
            lines.push((Level::Error, misconfigured_line(n, &why)));
        }
        if let Some((n, what, _)) = self.panics.due(now, self.every, force) {
            lines.push((Level::Error, panic_line(n, &what)));
        }
        lines
    }
}

fn bit(worker: usize) -> u64 {
    1u64 << (worker % 64)
}

fn fault_line(n: u64, workers: u32, err: &str) -> String {
    format!(
        "Late observer store call failed {n} time(s) on {workers} worker(s) since the last \
         warning, the last: {err}"
    )
}

fn misconfigured_line(n: u64, why: &str) -> String {
    format!("Late observer cannot use Redis: {why} ({n} failed call(s) since the last line)")
}

fn panic_line(n: u64, what: &str) -> String {
    format!("Late observer store call panicked {n} time(s) since the last report, the last: {what}")
}

/// An operator's error, in the operator's words, with what to check.
fn misconfigured(error: &StoreError) -> String {
    let advice = match error.kind() {
        StoreErrorKind::Auth => "check the user and password of the Redis URL",
        StoreErrorKind::Permission => "grant the right (docs/operators.md, ACL)",
        _ => "check the database number of the Redis URL",
    };
    format!("{}; {advice}", error.message())
}

#[cfg(test)]
mod tests;
