//! The worker loop. Each worker holds up to `max_in_flight` jobs and, per
//! wake-up ([`Worker::step`]):
//!
//! 1. takes queued jobs (without blocking) up to its limit;
//! 2. looks at the keys of the jobs that are due in one [`Store::exists`]
//!    call: all of them on a tick (every `poll`), only those whose deadline
//!    has passed otherwise (the last look at the deadline);
//! 3. writes every decided job in one [`Store::claim_and_append`] call,
//!    keeping failed writes for a later retry within the retry window;
//! 4. writes the warnings that are due, then waits until the next tick,
//!    deadline or retry (at most 10 ms while it has room for more jobs). With
//!    nothing held it blocks on the queue.
//!
//! Asked to stop, it drains (keeps going until everything it holds and the
//! queue are decided, or the drain deadline) or stops at once; then it
//! writes what is decided one last time and abandons the rest.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, select};
use log::{debug, log_enabled, trace};

use crate::job::Job;
use crate::pool::Signals;
use crate::shared::{Shared, StopMode};
use crate::stats::Loss;
use crate::store::{Changes, Claim, Claimed, Connector, Store, StreamSpec};
use crate::watchlist::{Watch, Watchlist};
use crate::{Config, Detect, Event, LOG_TARGET, StoreError, StoreErrorKind};

/// Deadline looks are at most this late, so that a burst's deadlines, which
/// differ by microseconds, share one round trip instead of one each.
const DEADLINE_SLACK: Duration = Duration::from_millis(10);
/// A worker with room takes new jobs at least this often.
const INTAKE_EVERY: Duration = DEADLINE_SLACK;
/// Longest pause between two write retries.
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(1);
/// An idle worker wakes this often to write the warnings that are due.
const IDLE_WAKE: Duration = Duration::from_secs(1);
/// A push subscription that could not be made is asked for again this
/// often; the worker polls meanwhile.
const PUSH_RETRY: Duration = Duration::from_secs(1);

/// Where a worker stands with push detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Push {
    /// Polling: asked for, or push is not available here.
    Off,
    /// Push asked for, no subscription yet (or it broke): polling until
    /// `retry_at`, then asking again.
    Wanted { retry_at: Instant },
    /// Subscribed: looks at intake and at deadlines only.
    On,
}

/// What every worker of one observer shares and never changes.
pub(crate) struct Context<C> {
    pub(crate) connector: C,
    pub(crate) jobs: Receiver<Job>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) config: Config,
    /// Least time between two looks of one worker.
    spacing: Duration,
    /// Makes owner tokens unique to this observer (see [`Claim::owner`]).
    owner_prefix: String,
    stream: StreamSpec,
    /// Feature `metrics`: the observer's families, for the facade.
    #[cfg(feature = "metrics")]
    pub(crate) facade: Option<Facade>,
}

/// What a worker needs to report through the `metrics` facade: the
/// observer's families (`None` once it is gone), its labels, and when they
/// were last reported.
#[cfg(feature = "metrics")]
pub(crate) struct Facade {
    pub(crate) families: Box<dyn Fn() -> Option<Vec<crate::MetricFamily>> + Send + Sync>,
    pub(crate) labels: Vec<(&'static str, String)>,
    pub(crate) last: std::sync::Mutex<Instant>,
}

#[cfg(feature = "metrics")]
impl Facade {
    /// Reports every family, at most once a second across the workers.
    fn publish_if_due(&self) {
        let now = Instant::now();
        let Ok(mut last) = self.last.try_lock() else {
            return; // another worker is at it
        };
        if now.duration_since(*last) < Duration::from_secs(1) {
            return;
        }
        *last = now;
        drop(last);
        if let Some(families) = (self.families)() {
            crate::metrics::publish(&families);
        }
    }
}

impl<C> Context<C> {
    pub(crate) fn new(
        connector: C,
        jobs: Receiver<Job>,
        shared: Arc<Shared>,
        config: &Config,
        observer_id: u64,
    ) -> Self {
        Self {
            connector,
            jobs,
            shared,
            spacing: config.poll().min(DEADLINE_SLACK),
            owner_prefix: format!("{observer_id:016x}"),
            stream: StreamSpec {
                name: config.stream().to_owned(),
                maxlen: config.stream_maxlen(),
                dedupe_ttl: config.dedupe_ttl(),
            },
            config: config.clone(),
            #[cfg(feature = "metrics")]
            facade: None,
        }
    }
}

/// A job whose answer is known, waiting for its event to be written.
struct Decided {
    event: Event,
    dedupe_key: String,
    owner: String,
    decided_at: Instant,
}

/// Why a store call gave no usable answer.
enum CallFailed {
    Error(StoreErrorKind),
    Panicked,
}

struct Worker<C: Connector> {
    index: usize,
    ctx: Arc<Context<C>>,
    stop: Receiver<()>,
    store: C::Store,
    watching: Watchlist,
    decided: Vec<Decided>,
    next_tick: Instant,
    last_look: Option<Instant>,
    write_at: Instant,
    write_backoff: Duration,
    seq: u64,
    /// Set once asked to drain: the time by which to give up.
    draining: Option<Instant>,
    push: Push,
    /// Messages may have been lost: look at every watched job.
    relook_all: bool,
    /// Jobs taken since the last look (at the end of the watch list).
    fresh: usize,
}

/// The body of thread `heat-observer-{index}`. Reports its end even if it
/// unwinds, so a stop never waits for a worker that is gone.
pub(crate) fn run<C: Connector>(index: usize, ctx: Arc<Context<C>>, signals: Signals) {
    struct Exit(Arc<Shared>, crossbeam_channel::Sender<usize>, usize);
    impl Drop for Exit {
        fn drop(&mut self) {
            self.0.counters.worker_stopped();
            let _ = self.1.send(self.2);
        }
    }
    let _exit = Exit(Arc::clone(&ctx.shared), signals.done, index);
    let Ok(store) = catch_unwind(AssertUnwindSafe(|| ctx.connector.connect(index))) else {
        log::error!(target: LOG_TARGET, "Late observer worker {index} stopped: its connector panicked");
        return;
    };
    let now = Instant::now();
    let mut worker = Worker {
        index,
        ctx,
        stop: signals.stop,
        store,
        watching: Watchlist::default(),
        decided: Vec::new(),
        next_tick: now,
        last_look: None,
        write_at: now,
        write_backoff: Duration::ZERO,
        seq: 0,
        draining: None,
        push: Push::Off,
        relook_all: false,
        fresh: 0,
    };
    if worker.ctx.config.detect() == Detect::Push {
        worker.push = Push::Wanted { retry_at: now };
        worker.watching.index_keys();
    }
    while worker.step() {}
    worker.set_push(Push::Off);
    worker.finish();
}

impl<C: Connector> Worker<C> {
    /// One wake-up; false when the worker should stop.
    fn step(&mut self) -> bool {
        let mut first = None;
        if self.held() == 0 && self.draining.is_none() {
            match self.wait_idle() {
                Ok(job) => first = job,
                Err(()) => return self.stop_requested(),
            }
        }
        self.intake(first);
        self.subscribe_if_wanted(Instant::now());
        self.look(Instant::now());
        self.write(Instant::now());
        let shared = &self.ctx.shared;
        shared
            .warnings
            .tick(&shared.counters, shared.last_invalid(), false);
        #[cfg(feature = "metrics")]
        if let Some(facade) = &self.ctx.facade {
            facade.publish_if_due();
        }
        self.wait_busy()
    }

    fn held(&self) -> usize {
        self.watching.len() + self.decided.len()
    }

    /// With nothing held: blocks on the queue (an idle pool costs nothing)
    /// but wakes every [`IDLE_WAKE`] for the warnings. `Err` on a stop.
    fn wait_idle(&mut self) -> Result<Option<Job>, ()> {
        select! {
            recv(self.ctx.jobs) -> job => {
                // The first job after idling is looked at immediately.
                self.next_tick = Instant::now();
                job.map(Some).map_err(|_| ())
            },
            recv(self.stop) -> _ => Err(()),
            default(IDLE_WAKE) => Ok(None),
        }
    }

    /// Sleeps until the next thing to do; false when it is time to stop.
    fn wait_busy(&mut self) -> bool {
        if let Some(until) = self.draining {
            let now = Instant::now();
            if now >= until || (self.held() == 0 && self.ctx.jobs.is_empty()) {
                return false;
            }
            if self.held() > 0 {
                std::thread::sleep(self.next_wake().min(until).saturating_duration_since(now));
            }
            return true;
        }
        if self.held() == 0 {
            return true;
        }
        let wake = self.next_wake();
        if self.push == Push::On {
            return self.wait_for_changes(wake);
        }
        match self.stop.recv_deadline(wake) {
            Err(RecvTimeoutError::Timeout) => true,
            // Disconnected: the pool dropped the sender.
            _ => self.stop_requested(),
        }
    }

    /// Asked to stop: drain (true, go on) or stop now (false).
    fn stop_requested(&mut self) -> bool {
        match self.ctx.shared.stop_mode() {
            StopMode::Drain { until } => {
                self.draining = Some(until);
                true
            }
            StopMode::Now => false,
        }
    }

    /// Takes queued jobs, without blocking: up to the in-flight limit, or
    /// all of them while draining.
    fn intake(&mut self, first: Option<Job>) {
        let room = match self.draining {
            Some(_) => usize::MAX,
            None => self.ctx.config.max_in_flight().saturating_sub(self.held()),
        };
        let queued = std::iter::from_fn(|| self.ctx.jobs.try_recv().ok());
        let jobs: Vec<Job> = first.into_iter().chain(queued).take(room).collect();
        self.ctx.shared.counters.admitted(jobs.len() as u64);
        let follow = log_enabled!(target: LOG_TARGET, log::Level::Debug);
        for job in jobs {
            if follow {
                debug!(
                    target: LOG_TARGET,
                    "Late observer worker {} took plan {} ({}, wait {} ms)",
                    self.index, job.plan_id(), job.point(), job.wait_ms()
                );
            }
            let heat_key = self.ctx.config.heat_key(job.plan_id());
            self.watching.push(job, heat_key);
            self.fresh += 1;
        }
    }

    /// Push detection: asks the store for a subscription when one is wanted
    /// and due. A refusal (an old server, an ACL) means polling for good,
    /// said once; any other failure, polling and asking again later.
    fn subscribe_if_wanted(&mut self, now: Instant) {
        let Push::Wanted { retry_at } = self.push else {
            return;
        };
        if now < retry_at || self.draining.is_some() {
            return;
        }
        let prefix = self.ctx.config.heat_key_prefix().to_owned();
        let store = &mut self.store;
        let answer = catch_unwind(AssertUnwindSafe(|| store.watch_prefix(&prefix)));
        let warnings = &self.ctx.shared.warnings;
        match answer {
            Ok(Ok(true)) => {
                self.set_push(Push::On);
                // Writes before the subscription were not told: look again.
                self.relook_all = true;
            }
            Ok(Ok(false)) => {
                warnings.push_unavailable("this store cannot push");
                self.set_push(Push::Off);
            }
            Ok(Err(e)) if e.kind() == StoreErrorKind::Server => {
                warnings.push_unavailable(&e.to_string());
                self.set_push(Push::Off);
            }
            Ok(Err(e)) => {
                warnings.store_failed("push subscription", &e);
                self.ctx.shared.counters.store_error();
                self.push = Push::Wanted {
                    retry_at: now + PUSH_RETRY,
                };
            }
            Err(_) => {
                warnings.push_unavailable("the store panicked subscribing");
                self.set_push(Push::Off);
            }
        }
    }

    /// Changes the push state, keeping the count of pushing workers.
    fn set_push(&mut self, push: Push) {
        let counters = &self.ctx.shared.counters;
        match (self.push == Push::On, push == Push::On) {
            (false, true) => counters.push_worker(1),
            (true, false) => counters.push_worker(-1),
            _ => {}
        }
        self.push = push;
    }

    /// Push detection: waits on the store's messages until `wake` (at most
    /// 10 ms a call, checking for a stop in between). A message naming a
    /// watched key decides its jobs at once; a lost message or a broken
    /// subscription means every watched job is looked at again.
    fn wait_for_changes(&mut self, wake: Instant) -> bool {
        let mut wake = wake;
        loop {
            let now = Instant::now();
            if now >= wake {
                return true;
            }
            if let Err(crossbeam_channel::TryRecvError::Disconnected) = self.stop.try_recv() {
                return self.stop_requested();
            }
            let timeout = (wake - now).min(INTAKE_EVERY);
            let store = &mut self.store;
            match catch_unwind(AssertUnwindSafe(|| store.changes(timeout))) {
                Ok(Ok(Changes::Keys(keys))) => {
                    // Decided now, written together within 10 ms: one
                    // round trip for a batch, not one per message.
                    if self.pushed(&keys) {
                        wake = wake.min(Instant::now() + INTAKE_EVERY);
                    }
                }
                Ok(Ok(Changes::Lost)) => {
                    self.relook_all = true;
                    return true;
                }
                Ok(Err(e)) => {
                    self.ctx
                        .shared
                        .warnings
                        .store_failed("push subscription", &e);
                    self.ctx.shared.counters.store_error();
                    // Messages may have been lost while it was down.
                    self.relook_all = true;
                    self.set_push(Push::Wanted {
                        retry_at: Instant::now(),
                    });
                    return true;
                }
                Err(_) => {
                    self.ctx
                        .shared
                        .warnings
                        .push_unavailable("the store panicked waiting");
                    self.set_push(Push::Off);
                    return true;
                }
            }
        }
    }

    /// Decides the watched jobs whose key was written: found, at the time
    /// the message arrived. Whether any was decided.
    fn pushed(&mut self, keys: &[String]) -> bool {
        let now = Instant::now();
        // A message decides a plan only while it is watched: not an early
        // look (decided by its own look), not a plan past its deadline
        // whose deadline look failed (a retried look decides it, late).
        let watching = &self.watching;
        let mut hits: Vec<usize> = keys
            .iter()
            .flat_map(|k| watching.find(k).iter().copied())
            .filter(|&i| {
                let job = &watching.get(i).job;
                job.wait_ms() > 0 && job.deadline() > now
            })
            .collect();
        if hits.is_empty() {
            return false;
        }
        hits.sort_unstable_by(|a, b| b.cmp(a));
        hits.dedup();
        let wall = unix_ms();
        for i in hits {
            let watch = self.watching.take(i);
            self.decide(watch, true, now, wall, Detect::Push);
        }
        true
    }

    /// Looks at every job on a tick, or at the jobs past their deadline.
    fn look(&mut self, now: Instant) {
        let pushing = self.push == Push::On && self.draining.is_none();
        let tick = if pushing {
            // Pushed: no ticks; every job after a possible loss.
            std::mem::take(&mut self.relook_all)
        } else {
            now >= self.next_tick
        };
        if tick && !pushing {
            self.next_tick = (self.next_tick + self.ctx.config.poll()).max(now + self.ctx.spacing);
        }
        let mut due = self.watching.due(now, tick);
        let fresh = std::mem::take(&mut self.fresh).min(self.watching.len());
        if pushing && !tick && fresh > 0 {
            // Jobs just taken are looked at once: their key may be there.
            let first = self.watching.len() - fresh;
            due.retain(|&i| i < first);
            due.extend(first..self.watching.len());
        }
        if due.is_empty() {
            return;
        }
        self.last_look = Some(now);
        let (mut answer, mut now) = (self.look_at(&due), now);
        if let Err(CallFailed::Error(StoreErrorKind::Io)) = answer {
            // The connection broke (a reset, a restart): once more, at once,
            // on a fresh one, so a single reset costs no observation.
            now = Instant::now();
            answer = self.look_at(&due);
        }
        let found = match answer {
            Ok(found) => found,
            Err(failed) => return self.look_failed(&due, now, failed),
        };
        let wall = unix_ms();
        // In reverse, so swap_remove only moves entries already visited.
        for (&i, &found) in due.iter().zip(&found).rev() {
            let watch = self.watching.get_mut(i);
            watch.polls += 1;
            // The job's own deadline: a late look (see `look_failed`) that
            // finds nothing still decides.
            if found || watch.job.deadline() <= now {
                let watch = self.watching.take(i);
                self.decide(watch, found, now, wall, Detect::Poll);
            } else {
                trace!(target: LOG_TARGET, "Late observer looked at plan {}: not yet", watch.job.plan_id());
            }
        }
    }

    /// One batched `exists` over the jobs at `due`.
    fn look_at(&mut self, due: &[usize]) -> Result<Vec<bool>, CallFailed> {
        let keys: Vec<&str> = due
            .iter()
            .map(|&i| self.watching.get(i).heat_key.as_str())
            .collect();
        self.ctx.shared.counters.exists_call(keys.len());
        let op = ("heat key check", keys.len());
        guarded(&mut self.store, &self.ctx, self.index, op, |store| {
            store.exists(&keys)
        })
    }

    /// A failed look decides nothing. A job whose deadline look failed is
    /// looked at again on the following ticks, for up to the retry window
    /// (through a failover, say): the answer then comes after the deadline
    /// and its `wait_ms` says so. Past that it ends as failed. After a
    /// panic, every job of the call ends as panicked.
    fn look_failed(&mut self, due: &[usize], now: Instant, failed: CallFailed) {
        let (loss, lost) = match failed {
            CallFailed::Panicked => (Loss::Panicked, due.to_vec()),
            CallFailed::Error(_) => {
                let retry = self.ctx.config.retry_window();
                let mut lost = Vec::new();
                let past: Vec<usize> = due
                    .iter()
                    .copied()
                    .filter(|&i| self.watching.deadline(i) <= now)
                    .collect();
                for i in past {
                    let watch = self.watching.get(i);
                    // An early look (no wait) is one look at the call: it
                    // is decided by it or failed, never retried later.
                    if watch.late || retry.is_zero() || watch.job.wait_ms() == 0 {
                        lost.push(i);
                    } else {
                        let deadline = watch.job.deadline();
                        self.watching.extend(i, deadline + retry);
                    }
                }
                (Loss::Failed, lost)
            }
        };
        for &i in lost.iter().rev() {
            let watch = self.watching.take(i);
            debug!(target: LOG_TARGET, "Late observer lost plan {}: its look {loss:?}", watch.job.plan_id());
        }
        self.ctx.shared.counters.lost(loss, lost.len() as u64);
    }

    fn decide(&mut self, watch: Watch, found: bool, now: Instant, wall_ms: u64, by: Detect) {
        let job = watch.job;
        let point = job.point();
        let wait_ms = millis(now.saturating_duration_since(job.observed_at()));
        if watch.late {
            self.ctx.shared.counters.late_answer();
        }
        debug!(
            target: LOG_TARGET,
            "Late observer decided plan {} ({point}): heat_found={} wait_ms={wait_ms} after {} look(s), by {}",
            job.plan_id(), u8::from(found), watch.polls, by.as_str()
        );
        self.seq += 1;
        self.decided.push(Decided {
            dedupe_key: self.ctx.config.dedupe_key(point, job.plan_id()),
            owner: format!("{}-{}-{}", self.ctx.owner_prefix, self.index, self.seq),
            event: Event {
                plan_id: job.plan_id().to_owned(),
                symbol: job.symbol().to_owned(),
                obs_point: point,
                wait_ms,
                heat_found: found,
                polls: watch.polls,
                max_wait_ms: job.wait_ms(),
                ts_ms: wall_ms,
                decided_by: by,
            },
            decided_at: now,
        });
    }

    /// Writes every decided event in one call, unless backing off.
    fn write(&mut self, now: Instant) {
        if self.decided.is_empty() || now < self.write_at {
            return;
        }
        let decided = std::mem::take(&mut self.decided);
        self.ctx.shared.counters.append_call(decided.len());
        let stream = &self.ctx.stream;
        let op = ("event write", decided.len());
        let answer = guarded(&mut self.store, &self.ctx, self.index, op, |store| {
            let claims: Vec<Claim<'_>> = decided
                .iter()
                .map(|d| Claim {
                    dedupe_key: &d.dedupe_key,
                    owner: &d.owner,
                    event: &d.event,
                })
                .collect();
            store.claim_and_append(stream, &claims)
        });
        match answer {
            Ok(claimed) => {
                for (d, claimed) in decided.into_iter().zip(claimed) {
                    self.recorded(&d.event, claimed == Claimed::Duplicate);
                }
                self.write_backoff = Duration::ZERO;
            }
            Err(CallFailed::Error(_)) => {
                self.decided = decided;
                self.write_failed(now);
            }
            Err(CallFailed::Panicked) => {
                self.ctx
                    .shared
                    .counters
                    .lost(Loss::Panicked, decided.len() as u64);
            }
        }
    }

    fn recorded(&self, e: &Event, duplicate: bool) {
        let what = if duplicate { "deduplicated" } else { "written" };
        debug!(target: LOG_TARGET, "Late observer {what} plan {} ({})", e.plan_id, e.obs_point);
        let counters = &self.ctx.shared.counters;
        counters.recorded(e.obs_point, e.heat_found, e.wait_ms, duplicate);
        #[cfg(feature = "metrics")]
        if let (Some(facade), true, false) = (&self.ctx.facade, e.heat_found, duplicate) {
            crate::metrics::record_wait(&facade.labels, e.obs_point.as_str(), e.wait_ms);
        }
    }

    /// Keeps the events for a retry after a growing pause; those older than
    /// the retry window end as failed.
    fn write_failed(&mut self, now: Instant) {
        let window = self.ctx.config.retry_window();
        let before = self.decided.len();
        self.decided
            .retain(|d| now.saturating_duration_since(d.decided_at) < window);
        let expired = before - self.decided.len();
        self.ctx.shared.counters.lost(Loss::Failed, expired as u64);
        self.write_backoff =
            (self.write_backoff * 2).clamp(self.ctx.config.poll(), MAX_WRITE_BACKOFF);
        self.write_at = now + self.write_backoff;
    }

    /// The next tick, deadline or write retry, but never sooner than
    /// `spacing` after the last look. With room for more jobs, also no later
    /// than `INTAKE_EVERY` from now: new jobs are taken (and those already
    /// due, like single looks, looked at) within 10 ms, not a tick later.
    fn next_wake(&mut self) -> Instant {
        let deadline = self.watching.earliest();
        let tick = match self.push {
            Push::On => deadline.unwrap_or(self.write_at),
            _ => self.next_tick,
        };
        let mut wake = deadline.map_or(self.write_at, |d| d.min(tick));
        if !self.decided.is_empty() {
            wake = wake.min(self.write_at);
        }
        if self.held() < self.ctx.config.max_in_flight() {
            wake = wake.min(Instant::now() + INTAKE_EVERY);
        }
        match self.last_look {
            Some(last) => wake.max(last + self.ctx.spacing),
            None => wake,
        }
    }

    /// On the way out: one last try to write what is decided (bounded by
    /// the store's timeouts), then everything still held is abandoned.
    fn finish(&mut self) {
        if !self.decided.is_empty() {
            let now = Instant::now();
            self.write_at = now;
            self.write(now);
        }
        let left = (self.watching.clear() + self.decided.len()) as u64;
        self.decided.clear();
        if left > 0 {
            debug!(target: LOG_TARGET, "Late observer worker {} abandoned {left} observation(s)", self.index);
        }
        self.ctx.shared.counters.lost(Loss::Abandoned, left);
    }
}

/// Runs one store call, catching a panic and checking the answer's length.
/// A failure is counted and warned about; after a panic the store, whose
/// state is unknown, is replaced.
fn guarded<C: Connector, T>(
    store: &mut C::Store,
    ctx: &Context<C>,
    index: usize,
    (op, asked): (&str, usize),
    f: impl FnOnce(&mut C::Store) -> Result<Vec<T>, StoreError>,
) -> Result<Vec<T>, CallFailed> {
    let shared = &ctx.shared;
    let failed = |err: &StoreError| {
        shared.warnings.store_failed(op, err);
        shared.counters.store_error();
        CallFailed::Error(err.kind())
    };
    match catch_unwind(AssertUnwindSafe(|| f(store))) {
        Ok(Ok(answer)) if answer.len() == asked => {
            shared.warnings.store_answered();
            Ok(answer)
        }
        Ok(Ok(answer)) => {
            let why = format!(
                "{op} answered {} results for {asked} requests",
                answer.len()
            );
            Err(failed(&StoreError::new(StoreErrorKind::Protocol, why)))
        }
        Ok(Err(err)) => Err(failed(&err)),
        Err(_) => {
            shared.warnings.store_panicked(op, asked);
            if let Ok(fresh) = catch_unwind(AssertUnwindSafe(|| ctx.connector.connect(index))) {
                *store = fresh;
            }
            Err(CallFailed::Panicked)
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}
