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
//! failed has answered again (or holds nothing and so has no stake). The
//! recovery line carries the failures not yet said, so one outage gives
//! two lines. A store that flaps (a write paused, a connection killed, a
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
use crate::{StoreError, StoreErrorKind};

/// A line to log.
pub(crate) type Line = (Level, String);

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
        self.close_outage(now)
    }

    /// Worker `worker` holds nothing: it has no stake in the store's health
    /// until it makes a call again.
    pub(crate) fn idle(&mut self, worker: usize, now: Instant) -> Vec<Line> {
        for failing in &mut self.health.failing {
            *failing &= !bit(worker);
        }
        self.close_outage(now)
    }

    fn close_outage(&mut self, now: Instant) -> Vec<Line> {
        let every = self.every;
        let h = &mut self.health;
        if h.failing.iter().any(|f| *f != 0) || !h.answered {
            return Vec::new();
        }
        let Some(outage) = h.outage.take() else {
            return Vec::new();
        };
        let unsaid = h.unsaid.get_or_insert(Unsaid {
            outages: 0,
            since: outage.since,
            errors: 0,
            workers: 0,
        });
        unsaid.outages += 1;
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
                now.saturating_duration_since(unsaid.since).as_secs_f64()
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
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(10);

    fn io() -> StoreError {
        StoreError::new(StoreErrorKind::Io, "127.0.0.1:6379: connection reset")
    }

    #[test]
    fn the_first_is_due_then_the_interval_holds_the_rest_until_forced() {
        let now = Instant::now();
        let mut t = Throttled::default();
        t.add(1, Some("a".into()), 1);
        assert_eq!(t.due(now, EVERY, false), Some((1, "a".into(), 1)));
        t.add(5, Some("b".into()), 2);
        t.add(1, None, 4);
        assert_eq!(t.due(now, EVERY, false), None);
        assert_eq!(t.due(now + EVERY, EVERY, false), Some((6, "b".into(), 2)));
        t.add(2, None, 0);
        assert_eq!(t.due(now + EVERY, EVERY, true), Some((2, "b".into(), 0)));
        assert_eq!(t.due(now + EVERY, EVERY, true), None, "nothing pending");
    }

    #[test]
    fn a_permanent_refusal_between_answered_calls_is_no_outage_and_never_flapping() {
        // Writes refused for a right while looks answer: said as the
        // operator's error every interval, never as outages and recoveries.
        let t = Instant::now();
        let mut w = Warnings::new(EVERY, 16);
        let nope = StoreError::new(StoreErrorKind::Permission, "h:1: user lacks +xadd on s");
        let mut lines = Vec::new();
        for k in 0..40u64 {
            let at = t + ms_(500 * k);
            lines.extend(w.failed(0, Op::Write, &nope, at));
            lines.extend(w.answered(0, Op::Write, at + ms_(10)));
            lines.extend(w.due(at + ms_(20), false));
        }
        let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert!(
            text.iter()
                .all(|l| !l.contains("flapping") && !l.contains("recovered")),
            "{text:#?}"
        );
        let said = text
            .iter()
            .filter(|l| l.contains("user lacks +xadd"))
            .count();
        assert_eq!(said, 2, "once per 10 s interval over 20 s: {text:#?}");
    }

    #[test]
    fn a_rerun_with_reused_plan_ids_is_said_once_per_interval() {
        let t = Instant::now();
        let mut w = Warnings::new(EVERY, 16);
        let mut lines = Vec::new();
        // 100 new events, then a rerun: 1,000 duplicates over 30 s.
        for i in 0..100u64 {
            lines.extend(w.recorded(false, &format!("p{i}"), t + ms_(i)));
        }
        lines.extend(w.due(t + EVERY + ms_(1), false));
        assert!(lines.is_empty(), "new events say nothing: {lines:?}");
        for i in 0..1000u64 {
            let at = t + EVERY * 2 + ms_(30 * i);
            lines.extend(w.recorded(true, &format!("p{}", i % 100), at));
            lines.extend(w.due(at, false));
        }
        lines.extend(w.due(t + EVERY * 6, true));
        let said: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(said.len(), 3, "once per 10 s over 30 s: {said:#?}");
        // All duplicates: "deduplicated N of N", about 333 an interval.
        let n: Vec<&str> = said[0]
            .split_whitespace()
            .skip(3)
            .step_by(2)
            .take(2)
            .collect();
        assert_eq!(n[0], n[1], "{}", said[0]);
        assert!(
            (330..=340).contains(&n[0].parse::<u32>().unwrap()),
            "{}",
            said[0]
        );
        assert!(
            said[0].contains("plan ids reused? (e.g. plan \"p0\""),
            "{}",
            said[0]
        );
        // Some duplicates among mostly new events (two Apply processes
        // sharing a Redis) are not a rerun.
        let mut w = Warnings::new(EVERY, 16);
        for i in 0..100u64 {
            let _ = w.recorded(i % 10 == 0, "p", t + ms_(i));
        }
        assert!(w.due(t + EVERY * 2, true).is_empty());
    }

    #[test]
    fn an_interval_of_any_length_never_overflows_the_clock() {
        // `Duration::MAX` once passed the builder and panicked every worker
        // (and `shutdown` on the caller) at `last + every`.
        let t = Instant::now();
        let mut w = Warnings::new(Duration::MAX, 16);
        let first = w.failed(0, Op::Look, &io(), t);
        assert_eq!(first.len(), 1, "the first failure is said");
        assert!(w.failed(0, Op::Look, &io(), t + EVERY).is_empty());
        let mut later = w.answered(0, Op::Look, t + EVERY * 2);
        later.extend(w.due(t + EVERY * 3, false));
        later.extend(w.due(t + EVERY * 3, true));
        assert!(
            later.iter().any(|(_, line)| line.contains("recovered")),
            "{later:?}"
        );
    }

    #[test]
    fn one_outage_on_four_workers_gives_one_failure_line_and_one_recovery() {
        let t = Instant::now();
        let mut w = Warnings::new(EVERY, 16);
        let mut lines = Vec::new();
        // Every worker fails, some twice, and they recover one by one.
        for (ms, worker) in [(0, 0), (1, 1), (2, 2), (3, 3), (50, 0), (60, 1)] {
            lines.extend(w.failed(worker, Op::Look, &io(), t + ms_(ms)));
        }
        for (ms, worker) in [(100, 0), (110, 1), (120, 2)] {
            let got = w.answered(worker, Op::Look, t + ms_(ms));
            assert!(got.is_empty(), "worker 3 still fails: {got:?}");
        }
        lines.extend(w.idle(3, t + ms_(130)));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[0].1.contains("failed 1 time(s) on 1 worker(s)"),
            "{lines:?}"
        );
        assert!(
            lines[1].1.contains(
                "recovered after 6 error(s) on 4 worker(s) in 0.1 s; 5 of them not in an \
                 earlier warning, the last: heat key check:"
            ),
            "the rest with the recovery: {lines:?}"
        );
    }

    #[test]
    fn a_dead_master_failing_looks_while_writes_answer_is_one_outage() {
        // On a cluster: the looks fail for a master's keys until its
        // replica takes over, 2 s later; the event writes, to another
        // master, answer all along.
        let t = Instant::now();
        let mut w = Warnings::new(EVERY, 16);
        let mut lines = Vec::new();
        for k in 0..20 {
            let at = t + ms_(100 * k);
            lines.extend(w.failed(0, Op::Look, &io(), at));
            lines.extend(w.answered(0, Op::Write, at + ms_(20)));
            lines.extend(w.due(at + ms_(60), false));
        }
        lines.extend(w.answered(0, Op::Look, t + ms_(2000)));
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(
            lines[1]
                .1
                .contains("recovered after 20 error(s) on 1 worker(s) in 2.0 s")
        );
        assert!(!lines[1].1.contains("outages"), "{lines:?}");
    }

    #[test]
    fn a_flapping_store_gives_at_most_one_failure_and_one_recovery_line_per_interval() {
        let t = Instant::now();
        let mut w = Warnings::new(EVERY, 16);
        let mut lines = Vec::new();
        // A write paused for a second: ten outages of 100 ms each.
        for k in 0..10 {
            let at = t + ms_(100 * k);
            lines.extend(w.failed(0, Op::Write, &io(), at));
            lines.extend(w.failed(1, Op::Look, &io(), at + ms_(1)));
            lines.extend(w.answered(0, Op::Write, at + ms_(50)));
            lines.extend(w.answered(1, Op::Look, at + ms_(51)));
            lines.extend(w.due(at + ms_(60), false));
        }
        assert_eq!(lines.len(), 2, "{lines:?}");
        // The held outages are said once the interval has passed.
        // (The first recovery line was written at 51 ms.)
        let later = w.due(t + EVERY + ms_(50), false);
        assert_eq!(later.len(), 0, "not yet: {later:?}");
        let later = w.due(t + EVERY + ms_(51), false);
        assert_eq!(later.len(), 1, "{later:?}");
        assert!(
            later[0]
                .1
                .contains("recovered after 18 error(s) on 2 worker(s)")
                && later[0].1.contains("(9 outages: the store is flapping)")
                && later[0]
                    .1
                    .contains("; 18 of them not in an earlier warning"),
            "{later:?}"
        );
        // Every failure is in exactly one line.
        let said: u64 = lines
            .iter()
            .chain(&later)
            .map(|(_, l)| {
                let count = |pat: &str| {
                    l.split(pat)
                        .next()
                        .and_then(|head| head.rsplit(' ').next()?.parse().ok())
                };
                match l.contains("recovered") {
                    true => count(" of them not in an earlier warning").unwrap_or(0),
                    false => count(" time(s)").unwrap_or(0),
                }
            })
            .sum();
        assert_eq!(said, 20, "{lines:?} {later:?}");
        // A new outage after a quiet interval is said at once again.
        let again = w.failed(0, Op::Write, &io(), t + EVERY * 3);
        assert_eq!(again.len(), 1, "{again:?}");
    }

    #[test]
    fn a_worker_going_idle_does_not_declare_a_recovery_nobody_saw() {
        let t = Instant::now();
        let mut w = Warnings::new(EVERY, 16);
        w.failed(0, Op::Look, &io(), t);
        assert!(w.idle(0, t).is_empty(), "no call answered yet");
        let back = w.answered(1, Op::Look, t + ms_(5));
        assert!(back.iter().any(|(_, l)| l.contains("recovered")));
    }

    #[test]
    fn an_operators_error_is_said_every_interval_with_its_reason() {
        let t = Instant::now();
        let mut w = Warnings::new(EVERY, 16);
        let auth = StoreError::new(
            StoreErrorKind::Auth,
            "127.0.0.1:6379: authentication failed for user \"default\"",
        );
        let mut lines = Vec::new();
        for s in 0..35 {
            lines.extend(w.failed(0, Op::Look, &auth, t + Duration::from_secs(s)));
            lines.extend(w.due(t + Duration::from_secs(s), false));
        }
        assert_eq!(lines.len(), 4, "at 0, 10, 20 and 30 s: {lines:?}");
        assert!(lines.iter().all(|(level, l)| *level == Level::Error
            && l.contains("cannot use Redis: 127.0.0.1:6379: authentication failed for user \"default\"; check the user and password")));
    }

    #[test]
    fn invalid_input_is_counted_per_reason_each_with_an_example() {
        let t = Instant::now();
        let mut w = Warnings::new(EVERY, 16);
        let mut counts = [0; InvalidInput::KINDS];
        let mut examples: [Option<String>; InvalidInput::KINDS] = Default::default();
        let control = InvalidInput::ControlCharacter { field: "plan_id" }.index();
        let empty = InvalidInput::EmptySymbol.index();
        counts[control] = 12;
        counts[empty] = 3;
        examples[control] = Some(example("p\n1"));
        examples[empty] = Some(example(&"x".repeat(40)));
        let lines = w.refusals(0, counts, &mut examples, t, false);
        assert_eq!(lines.len(), 1);
        let line = &lines[0].1;
        assert!(line.contains("refused 15 invalid observation(s)"), "{line}");
        assert!(
            line.contains("3 symbol is empty (e.g. plan \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\")"),
            "{line}"
        );
        assert!(
            line.contains("12 plan_id holds a control or format character (e.g. plan \"p\\n1\")"),
            "{line}"
        );
    }

    fn ms_(n: u64) -> Duration {
        Duration::from_millis(n)
    }
}
