//! The worker's core: it decides; it does not do.
//!
//! [`Core`] performs no I/O and reads no clock. It is given `now` and what
//! happened (jobs taken from the queue, the answer to a look or a write,
//! keys Redis said were written, a possible loss of messages, a
//! subscription made, refused or broken, a stop) through its `handle_*`
//! methods, and answers with the next thing to do ([`Core::poll_action`])
//! and the outcomes to report ([`Core::drain_outcomes`]), the way
//! quinn-proto's `Connection` does. Every timing rule of a worker lives
//! here: ticks and their spacing, deadline looks batched within the
//! spacing, write retries with backoff inside the retry window, the drain
//! and its deadline, push detection's looks and messages. Each is a unit
//! test that passes instants (`core/tests.rs`), with no thread and no sleep.
//!
//! The rules, in short:
//! * **Poll**: every watched job is looked at each tick (`poll`), in one
//!   batched look; a job is decided when its key is found, or by the look
//!   at its deadline. Two looks are at least `spacing` apart (10 ms, or the
//!   poll if shorter), so a burst's deadlines share one look.
//! * **Push**: a job is looked at when taken (the look registers interest
//!   in its key) and 5 ms before its deadline (deadline looks 2 ms apart,
//!   so each is answered before its deadline); in between, a message
//!   naming its key brings a look that decides it if the key is there. A
//!   possible loss looks at everything again. Without a subscription, the
//!   worker polls.
//! * **An early look** (no wait) is decided by its own look, or fails;
//!   nothing else decides it. A message decides a job only while it is
//!   watched, before its deadline.
//! * **A failed deadline look** is retried each tick for the retry window,
//!   and the answer, if one comes, is counted as late: a key still missing
//!   is not found; a key found after the deadline may have been written
//!   after it, so the observation has failed (unknown), never `found`. A failed write is
//!   retried with backoff (from the poll, doubling to 1 s) for the retry
//!   window from its decision.
//! * **A drain** keeps taking and watching (and pushing) until everything
//!   is decided or its deadline passes; a stop now writes what is decided
//!   once. Whatever is left then is abandoned.

#[cfg(test)]
mod tests;
mod watchlist;

use std::time::{Duration, Instant};

use crate::config::{Config, Detect};
use crate::event::Event;
use crate::job::Job;
use crate::obs_point::ObsPoint;
use crate::store::{Answers, Claim, Claimed};
use crate::store::{StoreError, StoreErrorKind};
use watchlist::{Mark, Watch, Watchlist};

/// Two looks are at least this far apart (or the poll, if shorter), so
/// that deadlines that differ by microseconds share one round trip.
pub(crate) const SPACING: Duration = Duration::from_millis(10);
/// Jobs marked to be looked at (taken while pushing, named by a message,
/// or after a loss) are looked at this soon after the last look: messages
/// that come together share one look, and a key that lives 20 ms is still
/// there when its message is confirmed.
pub(crate) const MARKED_SPACING: Duration = Duration::from_millis(2);
/// Decided events wait this long for others, so that decisions that come
/// one by one (confirmed messages, deadlines) are written in batches, not
/// one call each; the events keep the time they were decided at.
pub(crate) const WRITE_BATCH: Duration = Duration::from_millis(20);
/// A worker with room takes new jobs at least this often.
pub(crate) const INTAKE_EVERY: Duration = Duration::from_millis(10);
/// Longest pause between two write retries.
pub(crate) const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(1);
/// An idle worker wakes this often (for the warnings that are due).
pub(crate) const IDLE_WAKE: Duration = Duration::from_secs(1);
/// A found answer counts if it came before the deadline's millisecond
/// ended (events carry whole milliseconds): later, the key may have been
/// written after the deadline.
pub(crate) const ON_TIME: Duration = Duration::from_millis(1);
/// Pushing, how long before its deadline a job's last look is made: its
/// answer, after a redirect or on a busy CPU, still comes before the
/// deadline. A key written in these last ms may be decided not found (its
/// `wait_ms` says when the look was made).
pub(crate) const PUSH_LEAD: Duration = Duration::from_millis(5);
/// A push subscription that could not be made is asked for again this
/// often; the worker polls meanwhile.
pub(crate) const PUSH_RETRY: Duration = Duration::from_secs(1);

/// A moment, as the worker's loop read it: the monotonic clock for every
/// rule, the wall clock (since the Unix epoch) for the events' `ts_ms`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Now {
    pub(crate) at: Instant,
    pub(crate) unix: Duration,
}

impl Now {
    /// Unix milliseconds of `at`, an instant at or before this one,
    /// rounded down once (rounding each term to whole ms put it up to
    /// 1 ms late).
    fn unix_ms_of(&self, at: Instant) -> u64 {
        millis(
            self.unix
                .saturating_sub(self.at.saturating_duration_since(at)),
        )
    }
}

/// How the workers are asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopMode {
    /// Keep watching what is held (and queued) until each job is decided
    /// or `until` passes, write what was decided, abandon the rest.
    Drain { until: Instant },
    /// Write what is decided, abandon the rest at once.
    Now,
}

/// What the loop must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Ask the store for a push subscription; answer with
    /// [`Core::handle_subscribed`].
    Subscribe,
    /// Take up to `up_to` jobs from the queue without blocking; answer with
    /// [`Core::handle_taken`].
    Take { up_to: usize },
    /// Look at [`Core::look_keys`] in one call (registering interest in
    /// them when `watch`); answer with [`Core::handle_looked`].
    Look { watch: bool },
    /// Claim and append [`Core::claims`] in one call; answer with
    /// [`Core::handle_written`].
    Write,
    /// Wait until `until`, or until what `on` names happens.
    Wait { until: Instant, on: WaitOn },
    /// Nothing left: the worker ends.
    Done,
}

/// What may end a wait before its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WaitOn {
    /// Nothing is held: a job (answer with [`Core::handle_taken`]) or a stop.
    Queue,
    /// Push detection: a message ([`Core::handle_pushed`]), a loss, a
    /// broken subscription, or a stop.
    Push,
    /// Push detection with a look to confirm messages due at `until`: the
    /// messages that come before it can wait for it, so the worker sleeps
    /// (a stop ends the sleep) and then takes what came, without waiting
    /// for more. One wake per look, not one per message.
    Collect,
    /// Only a stop.
    Timer,
}

/// Why a store call gave no answer.
#[derive(Debug, Clone)]
pub(crate) enum CallError {
    Store(StoreError),
    Panicked,
}

/// Which store call an outcome is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Look,
    Write,
    Subscribe,
    Push,
}

impl Op {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::Look => "heat key check",
            Op::Write => "event write",
            Op::Subscribe => "push subscription",
            Op::Push => "push messages",
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

/// What happened, for the ledger: every count and warning comes from one
/// of these.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Jobs taken from the queue: now held by this worker. `plans` (plan,
    /// point, wait in ms) only when plans are followed.
    Taken {
        jobs: usize,
        plans: Vec<(Box<str>, ObsPoint, u64)>,
    },
    /// A job was decided (its event is to be written). `plan` only when
    /// plans are followed (debug logging).
    Decided {
        plan: Option<Box<str>>,
        point: ObsPoint,
        found: bool,
        wait_ms: u64,
        polls: u32,
        by: Detect,
        late: bool,
    },
    /// An event was written (`duplicate`: someone had recorded it).
    Recorded { event: Event, duplicate: bool },
    /// Jobs that ended without an event.
    Lost {
        loss: Loss,
        jobs: u64,
        first: Option<Box<str>>,
    },
    /// A store call was made over `items` keys or claims.
    Called { op: Op, items: usize },
    /// A store call answered.
    Answered { op: Op },
    /// A store call failed.
    Failed { op: Op, error: StoreError },
    /// A store call panicked, losing `jobs` observations.
    Panicked { op: Op, jobs: usize },
    /// Push detection turned on or off for this worker.
    Pushing(bool),
    /// Push detection cannot be had here (said once per observer).
    PushUnavailable(String),
    /// The worker holds nothing (it has no stake in the store's health).
    Idle,
    /// A look found a watched job's key missing, not yet its end (only when
    /// plans are followed).
    NotYet { plan: Box<str> },
}

/// Where a worker stands with push detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Push {
    /// Polling: asked for, or push is not available here.
    Off,
    /// Push asked for, no subscription yet (or it broke): polling until
    /// `retry_at`, then asking again.
    Wanted { retry_at: Instant },
    /// Subscribed.
    On,
}

/// Where a worker stands with stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Running,
    /// Taking everything queued and watching it to its end, until `until`.
    Draining {
        until: Instant,
        queue_empty: bool,
    },
    /// The last write (if anything is decided), then done.
    Stopping {
        written: bool,
    },
    Done,
}

/// A job whose answer is known, waiting for its event to be written.
struct Decided {
    event: Event,
    dedupe_key: String,
    owner: String,
    decided_at: Instant,
}

/// The look handed to the loop, until its answer comes.
struct PendingLook {
    due: Vec<usize>,
    /// Whether it registers interest in its keys.
    watch: bool,
    at: Instant,
    /// Already the repeat of a look whose connection broke.
    repeated: bool,
}

/// One worker's decisions. See the module docs.
pub(crate) struct Core {
    config: Config,
    worker: usize,
    owner_prefix: String,
    spacing: Duration,
    watch: Watchlist,
    decided: Vec<Decided>,
    /// The write handed to the loop.
    writing: Vec<Decided>,
    look: Option<PendingLook>,
    /// A look to repeat at once: its connection broke.
    repeat: Option<PendingLook>,
    next_tick: Instant,
    /// When the last look that checks, and the last that registers (they
    /// are spaced apart each from its own kind only, so that neither
    /// starves the other).
    last_check: Option<Instant>,
    last_watch: Option<Instant>,
    next_intake: Instant,
    write_at: Instant,
    write_backoff: Duration,
    /// Decided events are not written before this ([`WRITE_BATCH`] after
    /// the first of a batch).
    batch_until: Instant,
    seq: u64,
    push: Push,
    phase: Phase,
    idle_said: bool,
    /// Whether outcomes carry plan ids (debug logging is on).
    follow: bool,
    outcomes: Vec<Outcome>,
}

impl Core {
    /// The core of worker `worker`; `owner_prefix` makes its owner tokens
    /// unique to the observer.
    pub(crate) fn new(config: &Config, worker: usize, owner_prefix: &str, now: Instant) -> Core {
        let mut core = Core {
            spacing: config.poll().min(SPACING),
            config: config.clone(),
            worker,
            owner_prefix: owner_prefix.to_owned(),
            watch: Watchlist::default(),
            decided: Vec::new(),
            writing: Vec::new(),
            look: None,
            repeat: None,
            next_tick: now,
            last_check: None,
            last_watch: None,
            next_intake: now,
            write_at: now,
            write_backoff: Duration::ZERO,
            batch_until: now,
            seq: 0,
            push: Push::Off,
            phase: Phase::Running,
            idle_said: false,
            follow: false,
            outcomes: Vec::new(),
        };
        if config.detect() == Detect::Push {
            core.push = Push::Wanted { retry_at: now };
            core.watch.index_keys();
        }
        core
    }

    /// Whether outcomes name their plans (for debug logging).
    pub(crate) fn set_follow(&mut self, follow: bool) {
        self.follow = follow;
    }

    /// Jobs held: watched, or decided and not yet written.
    pub(crate) fn held(&self) -> usize {
        self.watch.len() + self.decided.len() + self.writing.len()
    }

    /// The outcomes since the last call, oldest first.
    pub(crate) fn drain_outcomes(&mut self) -> std::vec::Drain<'_, Outcome> {
        self.outcomes.drain(..)
    }

    // ---- inputs ---------------------------------------------------------

    /// Jobs taken from the queue (`asked`: how many were asked for; fewer
    /// means the queue was empty).
    pub(crate) fn handle_taken(&mut self, jobs: Vec<Job>, asked: usize, now: Instant) {
        if let Phase::Draining { queue_empty, .. } = &mut self.phase {
            *queue_empty = jobs.len() < asked;
        }
        if jobs.is_empty() {
            return;
        }
        if self.held() == 0 {
            // The first jobs after idling are looked at at once (a tick),
            // and the rest of their burst taken at once.
            self.next_tick = now;
            self.next_intake = now;
        }
        self.idle_said = false;
        let plans = match self.follow {
            true => jobs
                .iter()
                .map(|j| (j.plan_id().into(), j.point(), j.wait_ms()))
                .collect(),
            false => Vec::new(),
        };
        self.outcomes.push(Outcome::Taken {
            jobs: jobs.len(),
            plans,
        });
        // Pushing, a job is looked at when taken: its key may be there
        // already, and the look registers interest in it.
        let mark = (self.push == Push::On).then_some(Mark::Watch);
        for job in jobs {
            let heat_key = self.config.heat_key(job.plan_id());
            self.watch.push(job, heat_key, mark);
        }
    }

    /// The answer to the last [`Action::Look`]: per key whether it exists,
    /// or `None` where its node did not answer (with the error why).
    pub(crate) fn handle_looked(&mut self, answer: Result<Answers, CallError>, now: Now) {
        let Some(look) = self.look.take() else {
            return;
        };
        match answer {
            Ok(Answers {
                found,
                failed,
                looked_by,
            }) => {
                match failed {
                    Some(error) => self.outcomes.push(Outcome::Failed {
                        op: Op::Look,
                        error,
                    }),
                    None => self.outcomes.push(Outcome::Answered { op: Op::Look }),
                }
                self.looked(&look, &found, &looked_by, now);
            }
            Err(CallError::Store(error)) => {
                let broke = error.kind() == StoreErrorKind::Io;
                self.outcomes.push(Outcome::Failed {
                    op: Op::Look,
                    error,
                });
                if broke && !look.repeated {
                    // The connection broke (a reset, a restart): once more,
                    // at once, on a fresh one, so a single reset costs no
                    // observation.
                    self.repeat = Some(PendingLook {
                        repeated: true,
                        at: now.at,
                        ..look
                    });
                } else {
                    self.looked(&look, &vec![None; look.due.len()], &[], now);
                }
            }
            Err(CallError::Panicked) => {
                let jobs = look.due.len();
                self.outcomes.push(Outcome::Panicked { op: Op::Look, jobs });
                self.lose(&look.due, Loss::Panicked);
                self.handle_store_replaced(now.at);
            }
        }
    }

    /// The answer to the last [`Action::Write`].
    pub(crate) fn handle_written(&mut self, answer: Result<Vec<Claimed>, CallError>, now: Instant) {
        let writing = std::mem::take(&mut self.writing);
        match answer {
            Ok(claimed) => {
                self.outcomes.push(Outcome::Answered { op: Op::Write });
                for (d, claimed) in writing.into_iter().zip(claimed) {
                    let duplicate = claimed == Claimed::Duplicate;
                    self.outcomes.push(Outcome::Recorded {
                        event: d.event,
                        duplicate,
                    });
                }
                self.write_backoff = Duration::ZERO;
            }
            Err(CallError::Store(error)) => {
                self.outcomes.push(Outcome::Failed {
                    op: Op::Write,
                    error,
                });
                // Kept for a retry after a growing pause; those older than
                // the retry window end as failed.
                let mut kept = writing;
                kept.append(&mut self.decided);
                let window = self.config.retry_window();
                let before = kept.len();
                kept.retain(|d| now.saturating_duration_since(d.decided_at) < window);
                self.decided = kept;
                self.lost(Loss::Failed, (before - self.decided.len()) as u64, None);
                self.write_backoff =
                    (self.write_backoff * 2).clamp(self.config.poll(), MAX_WRITE_BACKOFF);
                self.write_at = now + self.write_backoff;
            }
            Err(CallError::Panicked) => {
                let jobs = writing.len();
                self.outcomes.push(Outcome::Panicked {
                    op: Op::Write,
                    jobs,
                });
                self.lost(Loss::Panicked, jobs as u64, None);
                self.handle_store_replaced(now);
            }
        }
        if let Phase::Stopping { written } = &mut self.phase {
            *written = true;
        }
    }

    /// The answer to [`Action::Subscribe`]: `Ok(true)` subscribed,
    /// `Ok(false)` this store cannot push.
    pub(crate) fn handle_subscribed(&mut self, answer: Result<bool, CallError>, now: Instant) {
        match answer {
            Ok(true) => {
                self.set_push(Push::On);
                // Writes before the subscription were not told, and only a
                // look registers interest: look at everything.
                self.watch.mark_all();
            }
            Ok(false) => self.unavailable("this store cannot push".to_owned()),
            Err(CallError::Store(e)) if refuses_for_good(&e) => self.unavailable(e.to_string()),
            Err(CallError::Store(error)) => {
                self.outcomes.push(Outcome::Failed {
                    op: Op::Subscribe,
                    error,
                });
                self.push = Push::Wanted {
                    retry_at: now + PUSH_RETRY,
                };
            }
            Err(CallError::Panicked) => {
                self.unavailable("the store panicked subscribing".to_owned());
            }
        }
    }

    /// Redis said these watched keys were invalidated: written, deleted,
    /// expired, or dropped from the server's tracking table; a look must
    /// confirm, and decides as of its answer.
    pub(crate) fn handle_pushed(&mut self, keys: &[String], now: Now) {
        for key in keys {
            let at = now.at;
            let hits: Vec<usize> = self.watch.find(key).to_vec();
            for i in hits {
                let w = self.watch.get_mut(i);
                // Only while watched: not an early look (its own look
                // decides it), not a job past its deadline.
                if w.job.wait_ms() > 0 && !w.retrying && w.job.deadline() > at {
                    w.pushed_at.get_or_insert(at);
                    self.watch.mark(i, Mark::Check);
                }
            }
        }
    }

    /// Messages may have been lost (a flush, a rebuilt subscription, a
    /// reconnect that dropped the registered interest): look at every
    /// watched job again.
    pub(crate) fn handle_lost(&mut self) {
        self.watch.mark_all();
    }

    /// The subscription broke (`error`): messages may have been lost. Poll
    /// and subscribe again, unless stopping.
    pub(crate) fn handle_push_broken(&mut self, error: StoreError, now: Instant) {
        self.watch.mark_all();
        if refuses_for_good(&error) {
            self.unavailable(error.to_string());
            return;
        }
        self.outcomes.push(Outcome::Failed {
            op: Op::Push,
            error,
        });
        self.set_push(Push::Wanted { retry_at: now });
    }

    /// The store was replaced after a panic: its subscription, if any,
    /// went with it.
    pub(crate) fn handle_store_replaced(&mut self, now: Instant) {
        if self.push == Push::On {
            self.set_push(Push::Wanted { retry_at: now });
            self.watch.mark_all();
        }
    }

    /// Asked to stop.
    pub(crate) fn handle_stop(&mut self, mode: StopMode) {
        if matches!(self.phase, Phase::Stopping { .. } | Phase::Done) {
            return;
        }
        self.phase = match mode {
            StopMode::Drain { until } => Phase::Draining {
                until,
                queue_empty: false,
            },
            StopMode::Now => Phase::Stopping { written: false },
        };
    }

    // ---- outputs --------------------------------------------------------

    /// What to do next.
    pub(crate) fn poll_action(&mut self, now: Instant) -> Action {
        if let Some(look) = self.repeat.take() {
            self.outcomes.push(Outcome::Called {
                op: Op::Look,
                items: look.due.len(),
            });
            let watch = look.watch;
            self.look = Some(look);
            return Action::Look { watch };
        }
        match self.phase {
            Phase::Done => return Action::Done,
            Phase::Stopping { written } => return self.stop_step(written),
            Phase::Draining { until, .. } if now >= until => {
                self.phase = Phase::Stopping { written: false };
                return self.stop_step(false);
            }
            Phase::Draining {
                queue_empty: true, ..
            } if self.held() == 0 => {
                self.phase = Phase::Done;
                return Action::Done;
            }
            _ => {}
        }
        if let Push::Wanted { retry_at } = self.push
            && now >= retry_at
            && self.phase == Phase::Running
        {
            return Action::Subscribe;
        }
        if let Some(up_to) = self.intake_due(now) {
            self.next_intake = now + INTAKE_EVERY;
            return Action::Take { up_to };
        }
        if let Some(look) = self.look_due(now) {
            let watch = look.watch;
            self.look = Some(look);
            return Action::Look { watch };
        }
        if !self.decided.is_empty() && now >= self.write_due() {
            return self.write();
        }
        self.wait(now)
    }

    /// The keys of the look in flight, in the order of its answer.
    pub(crate) fn look_keys(&self) -> Vec<&str> {
        let due = self.look.as_ref().map_or(&[][..], |l| &l.due[..]);
        due.iter()
            .map(|&i| self.watch.get(i).heat_key.as_str())
            .collect()
    }

    /// The claims of the write in flight, in the order of its answer.
    pub(crate) fn claims(&self) -> Vec<Claim<'_>> {
        self.writing
            .iter()
            .map(|d| Claim {
                dedupe_key: &d.dedupe_key,
                owner: &d.owner,
                event: &d.event,
            })
            .collect()
    }

    // ---- the rules ------------------------------------------------------

    /// When the decided events may be written: after the backoff of a
    /// failed write, and after a message batch's window.
    fn write_due(&self) -> Instant {
        self.write_at.max(self.batch_until)
    }

    /// Up to how many jobs to take now, if it is time to.
    fn intake_due(&self, now: Instant) -> Option<usize> {
        match self.phase {
            Phase::Draining {
                queue_empty: false, ..
            } => Some(usize::MAX),
            Phase::Running if now >= self.next_intake => {
                let room = self.config.max_in_flight().saturating_sub(self.held());
                (room > 0).then_some(room)
            }
            _ => None,
        }
    }

    /// Whether ticks are due: polling with jobs held, or pushing with jobs
    /// being retried or polled.
    fn ticking(&self) -> bool {
        self.watch.len() > 0
            && (self.push != Push::On || self.watch.retrying() + self.watch.polled() > 0)
    }

    /// Pushing, ticks start for the jobs being retried or polled: the first
    /// a poll after `at`, not at once for a tick missed long ago.
    fn tick_from(&mut self, at: Instant) {
        if self.push == Push::On && self.next_tick < at {
            self.next_tick = at + self.config.poll();
        }
    }

    /// How long before its deadline a job's last look is made, so that its
    /// answer comes before the deadline (a key found later may have been
    /// written after it); a miss says when it looked in its `wait_ms`. In
    /// poll mode, two spacings: looks a spacing apart then come at least a
    /// spacing before each deadline. In push mode (also while it polls for
    /// want of a subscription), [`PUSH_LEAD`], with deadline looks a marked
    /// spacing apart: a key written up to a few ms before the deadline is
    /// owed a find.
    fn lead(&self) -> Duration {
        match self.config.detect() {
            Detect::Poll => 2 * self.spacing,
            _ => PUSH_LEAD,
        }
    }

    /// How far apart deadline looks are at least (see [`Core::lead`]).
    fn deadline_spacing(&self) -> Duration {
        match self.config.detect() {
            Detect::Poll => self.spacing,
            _ => MARKED_SPACING.min(self.spacing),
        }
    }

    /// When the next look is due, if any: of either kind.
    fn next_look(&mut self, now: Instant) -> Option<Instant> {
        match (self.next_check(now), self.next_watch(now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the next look that checks is due: the earliest deadline or the
    /// tick, never sooner than the spacing after the last such look; for
    /// jobs marked for a check (or, with no subscription, for any look),
    /// as soon as the marked spacing allows.
    fn next_check(&mut self, now: Instant) -> Option<Instant> {
        let after = |spacing: Duration, at: Instant| match self.last_check {
            Some(last) => at.max(last + spacing),
            None => at,
        };
        let deadline = self
            .watch
            .earliest()
            .map(|d| after(self.deadline_spacing(), d - self.lead()));
        let tick = self.ticking().then(|| after(self.spacing, self.next_tick));
        let mut at = match (deadline, tick) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let watches = match self.push {
            Push::On => 0,
            _ => self.watch.marked(Mark::Watch),
        };
        if self.watch.marked(Mark::Check) + watches > 0 {
            let marked = after(MARKED_SPACING.min(self.spacing), now);
            at = Some(at.map_or(marked, |a| a.min(marked)));
        }
        at
    }

    /// Pushing, when the next look that registers jobs just taken is due.
    fn next_watch(&self, now: Instant) -> Option<Instant> {
        if self.push != Push::On || self.watch.marked(Mark::Watch) == 0 {
            return None;
        }
        Some(match self.last_watch {
            Some(last) => now.max(last + MARKED_SPACING.min(self.spacing)),
            None => now,
        })
    }

    /// The look to make now, if one is due: one that checks (the jobs
    /// marked for it, and those otherwise due) first, a message waiting on
    /// it; then, pushing, one that registers the jobs just taken.
    fn look_due(&mut self, now: Instant) -> Option<PendingLook> {
        let pushing = self.push == Push::On;
        let mut due = Vec::new();
        let mut watch = false;
        if self.next_check(now).is_some_and(|at| at <= now) {
            let tick = self.ticking() && now >= self.next_tick;
            if tick {
                self.next_tick = (self.next_tick + self.config.poll()).max(now + self.spacing);
            }
            let all = tick && !pushing;
            // Polling, deadlines up to a lead ahead are looked at now: a
            // found answer then comes before the deadline and is true of it.
            due = self
                .watch
                .due(now + self.lead(), all, tick && pushing, !pushing);
            self.last_check = Some(now);
        }
        if due.is_empty() && self.next_watch(now).is_some_and(|at| at <= now) {
            self.last_watch = Some(now);
            due = self.watch.due_watch();
            watch = true;
        }
        if due.is_empty() {
            return None;
        }
        self.outcomes.push(Outcome::Called {
            op: Op::Look,
            items: due.len(),
        });
        Some(PendingLook {
            due,
            watch,
            at: now,
            repeated: false,
        })
    }

    /// Decides what a look answered. A job whose key was found is decided
    /// (at the look; `push` when the look confirms a message), as is one
    /// whose deadline the look reached. A job the look could not
    /// answer (its node failed) decides nothing: before its deadline it
    /// waits for the next tick, its deadline or a loss; past its deadline
    /// it is retried each tick for the retry window, unless it is an early
    /// look (one look at the call) or its window is over: then it has
    /// failed.
    fn looked(
        &mut self,
        look: &PendingLook,
        found: &[Option<bool>],
        looked_by: &[Option<Instant>],
        now: Now,
    ) {
        enum End {
            Decided(bool, Instant, Detect),
            Failed,
        }
        let retry = self.config.retry_window();
        let lead = self.lead();
        let mut ends: Vec<(usize, End)> = Vec::new();
        for (j, (&i, &answer)) in look.due.iter().zip(found).enumerate() {
            let deadline = self.watch.get(i).job.deadline();
            let Some(found) = answer else {
                // Not looked at again at once, which would loop while the
                // store is down: a tick, its deadline, or a loss (any
                // reconnect says one) brings the next look.
                self.watch.looked(i);
                if deadline > look.at {
                    if deadline <= look.at + lead {
                        // Made ahead of the deadline: made again, up to it.
                        self.watch.keep_deadline(i);
                    }
                    continue;
                }
                let w = self.watch.get(i);
                let window_over = w.retrying && self.watch.deadline(i) <= look.at;
                if w.job.wait_ms() == 0 || retry.is_zero() || window_over {
                    ends.push((i, End::Failed));
                } else if !w.retrying {
                    self.watch.retry_until(i, deadline + retry);
                    self.tick_from(look.at);
                }
                continue;
            };
            self.watch.looked(i);
            let w = self.watch.get_mut(i);
            w.polls += 1;
            // A found key is found as of the moment the server looked:
            // by the answer's arrival, or earlier where the server's clock
            // says so (`TIME` read after the look). `heat_found=1` says
            // the key was there by the deadline, so a look made later than
            // the deadline (to the event's whole millisecond) may have
            // seen a key written after it: a retry across a failover, a
            // redirect followed late. Not knowing is a failure; finding it
            // would lift coverage above what was possible. A key still
            // missing then was missing at the deadline.
            // The one look of a point without a wait is made at the call
            // and stands for it as long as it is made within a store
            // timeout.
            let seen = looked_by.get(j).copied().flatten();
            let seen = seen.map_or(now.at, |at| at.min(now.at));
            let late_answer = match w.job.wait_ms() {
                0 => seen > deadline + self.config.redis_timeout(),
                _ => seen >= deadline + ON_TIME,
            };
            if found && (w.retrying || late_answer) {
                ends.push((i, End::Failed));
            } else if found {
                // Decided by the look, also when it confirms a message: the
                // message may have been the server dropping the key from a
                // full tracking table, and the write may have come after
                // it, before the look. A message only brings the look on
                // (within a few ms) and says how the key was seen. Found
                // as of when the server looked (`seen`), not the call: a
                // key written after the call (a worker slow to send it)
                // must not read as found before it was written. (Not
                // found is as of the call.)
                let by = match w.pushed_at {
                    Some(_) => Detect::Push,
                    None => Detect::Poll,
                };
                ends.push((i, End::Decided(true, seen.max(look.at), by)));
            } else if deadline <= look.at + lead {
                // Polling, a deadline less than a lead away is decided by
                // this look (`wait_ms` says when it was made): the next
                // look could come after the deadline, and a key it found
                // could have been written after it.
                ends.push((i, End::Decided(false, look.at, Detect::Poll)));
            } else {
                if w.pushed_at.take().is_some() {
                    // A message the look does not confirm: not a write (the
                    // server dropped the key from its full tracking table,
                    // or it was deleted). Registering it again would drop
                    // another: looked at each tick from now on instead.
                    self.watch.poll(i);
                    self.tick_from(look.at);
                }
                let w = self.watch.get(i);
                if self.follow {
                    let plan = w.job.plan_id().into();
                    self.outcomes.push(Outcome::NotYet { plan });
                }
            }
        }
        let (mut failed, mut first) = (0, None);
        for (i, end) in ends {
            let watch = self.watch.take(i);
            match end {
                End::Decided(found, at, by) => self.decide(watch, found, at, now, by),
                End::Failed => {
                    failed += 1;
                    if self.follow {
                        first = Some(watch.job.plan_id().into());
                    }
                }
            }
        }
        self.lost(Loss::Failed, failed, first);
    }

    /// Removes the jobs at `indices` as lost.
    fn lose(&mut self, indices: &[usize], loss: Loss) {
        let mut first = None;
        for &i in indices {
            let watch = self.watch.take(i);
            if self.follow {
                first = Some(watch.job.plan_id().into());
            }
        }
        self.lost(loss, indices.len() as u64, first);
    }

    fn lost(&mut self, loss: Loss, jobs: u64, first: Option<Box<str>>) {
        if jobs > 0 {
            self.outcomes.push(Outcome::Lost { loss, jobs, first });
        }
    }

    /// Decides `watch`: found or not, as seen at `at`.
    fn decide(&mut self, watch: Watch, found: bool, at: Instant, now: Now, by: Detect) {
        let job = watch.job;
        let point = job.point();
        let wait_ms = millis(at.saturating_duration_since(job.observed_at()));
        self.outcomes.push(Outcome::Decided {
            plan: self.follow.then(|| job.plan_id().into()),
            point,
            found,
            wait_ms,
            polls: watch.polls,
            by,
            late: watch.retrying,
        });
        if self.decided.is_empty() {
            self.batch_until = now.at + WRITE_BATCH;
        }
        self.seq += 1;
        self.decided.push(Decided {
            dedupe_key: self.config.dedupe_key(point, job.plan_id()),
            owner: format!("{}-{}-{}", self.owner_prefix, self.worker, self.seq),
            event: Event {
                plan_id: job.plan_id().to_owned(),
                symbol: job.symbol().to_owned(),
                obs_point: point,
                wait_ms,
                heat_found: found,
                polls: watch.polls,
                max_wait_ms: job.wait_ms(),
                ts_ms: now.unix_ms_of(at),
                decided_by: by,
            },
            decided_at: at,
        });
    }

    fn set_push(&mut self, push: Push) {
        match (self.push == Push::On, push == Push::On) {
            (false, true) => self.outcomes.push(Outcome::Pushing(true)),
            (true, false) => self.outcomes.push(Outcome::Pushing(false)),
            _ => {}
        }
        self.push = push;
    }

    fn unavailable(&mut self, why: String) {
        self.set_push(Push::Off);
        self.outcomes.push(Outcome::PushUnavailable(why));
    }

    /// Hands every decided event to the loop, in one write.
    fn write(&mut self) -> Action {
        self.writing = std::mem::take(&mut self.decided);
        self.outcomes.push(Outcome::Called {
            op: Op::Write,
            items: self.writing.len(),
        });
        Action::Write
    }

    /// Stopping: the last write, then everything left is abandoned.
    fn stop_step(&mut self, written: bool) -> Action {
        if !written && !self.decided.is_empty() {
            return self.write();
        }
        let left = (self.watch.clear() + self.decided.len()) as u64;
        self.decided.clear();
        self.lost(Loss::Abandoned, left, None);
        if self.push == Push::On {
            self.set_push(Push::Off);
        }
        self.phase = Phase::Done;
        Action::Done
    }

    /// How to wait until the next thing is due.
    fn wait(&mut self, now: Instant) -> Action {
        if self.held() == 0 {
            if let Phase::Draining { .. } = self.phase {
                // The queue is looked at again at once: a job may have come.
                return Action::Wait {
                    until: now,
                    on: WaitOn::Timer,
                };
            }
            if !self.idle_said {
                self.idle_said = true;
                self.outcomes.push(Outcome::Idle);
            }
            let until = match self.push {
                Push::Wanted { retry_at } => retry_at.min(now + IDLE_WAKE),
                _ => now + IDLE_WAKE,
            };
            return Action::Wait {
                until,
                on: WaitOn::Queue,
            };
        }
        let mut until = self.next_look(now).unwrap_or(now + IDLE_WAKE);
        if !self.decided.is_empty() {
            until = until.min(self.write_due());
        }
        if self.phase == Phase::Running && self.held() < self.config.max_in_flight() {
            until = until.min(self.next_intake);
        }
        match self.phase {
            Phase::Draining { until: end, .. } => until = until.min(end),
            Phase::Running => {
                if let Push::Wanted { retry_at } = self.push {
                    until = until.min(retry_at);
                }
            }
            _ => {}
        }
        let on = match self.push {
            Push::On if self.watch.marked(Mark::Check) > 0 => WaitOn::Collect,
            Push::On => WaitOn::Push,
            _ => WaitOn::Timer,
        };
        Action::Wait {
            until: until.max(now),
            on,
        }
    }
}

/// Whether a store's refusal means push detection is not to be had here
/// (an old server, a proxy, an ACL without the rights), as opposed to a
/// fault that passes.
fn refuses_for_good(e: &StoreError) -> bool {
    matches!(
        e.kind(),
        StoreErrorKind::Server | StoreErrorKind::Permission | StoreErrorKind::Auth
    )
}

pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
