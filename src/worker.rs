//! The worker loop. Each worker holds up to `max_in_flight` jobs and, per
//! wake-up:
//!
//! 1. takes queued jobs (without blocking) up to its limit;
//! 2. looks at the keys of the jobs that are due in one [`Store::exists`]
//!    call: all of them on a tick (every `poll`), only those whose deadline
//!    has passed otherwise (the last look at the deadline);
//! 3. writes every decided job in one [`Store::claim_and_append`] call,
//!    keeping failed writes for a later retry within the retry window;
//! 4. sleeps until the next tick, deadline or retry (at most 10 ms while it
//!    has room for more jobs), on the stop channel, so shutdown cuts the
//!    sleep short. With nothing held it blocks on the queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};

use crate::counters::Loss;
use crate::job::Job;
use crate::shared::Shared;
use crate::store::{Claim, Claimed, Connector, Store, StreamSpec};
use crate::watchlist::{Watch, Watchlist};
use crate::{Config, Event, StoreError, StoreErrorKind};

/// Deadline looks are at most this late, so that a burst's deadlines, which
/// differ by microseconds, share one round trip instead of one each.
const DEADLINE_SLACK: Duration = Duration::from_millis(10);
/// A worker with room takes new jobs at least this often.
const INTAKE_EVERY: Duration = DEADLINE_SLACK;
/// Longest pause between two write retries.
const MAX_WRITE_BACKOFF: Duration = Duration::from_secs(1);

/// What every worker of one observer shares and never changes.
#[derive(Debug)]
pub(crate) struct Settings {
    config: Config,
    /// Least time between two looks of one worker.
    spacing: Duration,
    /// Makes owner tokens unique to this observer (see [`Claim::owner`]).
    owner_prefix: String,
    stream: StreamSpec,
}

impl Settings {
    pub(crate) fn new(config: &Config, observer_id: u64) -> Self {
        Self {
            config: config.clone(),
            spacing: config.poll().min(DEADLINE_SLACK),
            owner_prefix: format!("{observer_id:016x}"),
            stream: StreamSpec {
                name: config.stream().to_owned(),
                maxlen: config.stream_maxlen(),
                dedupe_ttl: config.dedupe_ttl(),
            },
        }
    }
}

/// Everything a worker thread starts with.
pub(crate) struct Parts<C: Connector> {
    pub(crate) index: usize,
    pub(crate) connector: Arc<C>,
    pub(crate) jobs: Receiver<Job>,
    /// Never sent on; disconnected when shutdown drops its sender.
    pub(crate) stop: Receiver<()>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) settings: Arc<Settings>,
    pub(crate) done: Sender<usize>,
}

/// A job whose answer is known, waiting for its event to be written.
struct Decided {
    event: Event,
    dedupe_key: String,
    owner: String,
    decided_at: Instant,
}

struct Worker<C: Connector> {
    index: usize,
    connector: Arc<C>,
    store: C::Store,
    jobs: Receiver<Job>,
    stop: Receiver<()>,
    shared: Arc<Shared>,
    settings: Arc<Settings>,
    watching: Watchlist,
    decided: Vec<Decided>,
    next_tick: Instant,
    last_look: Option<Instant>,
    write_at: Instant,
    write_backoff: Duration,
    seq: u64,
}

/// Reports the worker's end even if it unwinds, so shutdown never waits for
/// a worker that is gone.
struct ExitGuard {
    index: usize,
    shared: Arc<Shared>,
    done: Sender<usize>,
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        self.shared.counters.worker_stopped();
        let _ = self.done.send(self.index);
    }
}

/// The body of thread `heat-observer-{index}`.
pub(crate) fn run<C: Connector>(parts: Parts<C>) {
    let _exit = ExitGuard {
        index: parts.index,
        shared: parts.shared.clone(),
        done: parts.done,
    };
    let store = match catch_unwind(AssertUnwindSafe(|| parts.connector.connect(parts.index))) {
        Ok(store) => store,
        Err(_) => {
            log::error!(target: crate::LOG_TARGET, "Late observer worker {} stopped: its connector panicked", parts.index);
            return;
        }
    };
    let now = Instant::now();
    Worker {
        index: parts.index,
        connector: parts.connector,
        store,
        jobs: parts.jobs,
        stop: parts.stop,
        shared: parts.shared,
        settings: parts.settings,
        watching: Watchlist::default(),
        decided: Vec::new(),
        next_tick: now,
        last_look: None,
        write_at: now,
        write_backoff: Duration::ZERO,
        seq: 0,
    }
    .run();
}

impl<C: Connector> Worker<C> {
    fn run(mut self) {
        loop {
            let mut first = None;
            if self.held() == 0 {
                // Idle: block on the queue, so an idle pool costs nothing.
                select! {
                    recv(self.jobs) -> job => match job {
                        Ok(job) => first = Some(job),
                        Err(_) => break,
                    },
                    recv(self.stop) -> _ => break,
                }
                // The first job after idling is looked at immediately.
                self.next_tick = Instant::now();
            }
            self.intake(first);
            self.look(Instant::now());
            self.write(Instant::now());
            if self.held() == 0 {
                continue;
            }
            let wake = self.next_wake();
            match self.stop.recv_deadline(wake) {
                Err(RecvTimeoutError::Timeout) => {}
                // Disconnected: shutdown dropped the sender.
                _ => break,
            }
        }
        self.stop_now();
    }

    fn held(&self) -> usize {
        self.watching.len() + self.decided.len()
    }

    /// Takes queued jobs up to the in-flight limit, without blocking.
    fn intake(&mut self, first: Option<Job>) {
        let room = self
            .settings
            .config
            .max_in_flight()
            .saturating_sub(self.held());
        let queued = std::iter::from_fn(|| self.jobs.try_recv().ok());
        let jobs: Vec<Job> = first.into_iter().chain(queued).take(room).collect();
        self.shared.counters.admitted(jobs.len() as u64);
        for job in jobs {
            let heat_key = self.settings.config.heat_key(job.plan_id());
            self.watching.push(job, heat_key);
        }
    }

    /// Looks at every job on a tick, or at the jobs past their deadline.
    fn look(&mut self, now: Instant) {
        let tick = now >= self.next_tick;
        if tick {
            self.next_tick =
                (self.next_tick + self.settings.config.poll()).max(now + self.settings.spacing);
        }
        let due = self.watching.due(now, tick);
        if due.is_empty() {
            return;
        }
        self.last_look = Some(now);
        let keys: Vec<&str> = due
            .iter()
            .map(|&i| self.watching.get(i).heat_key.as_str())
            .collect();
        self.shared.counters.exists_call(keys.len());
        let store = &mut self.store;
        let answer = catch_unwind(AssertUnwindSafe(|| store.exists(&keys)));
        drop(keys);
        let found = match answer {
            Ok(Ok(found)) if found.len() == due.len() => found,
            Ok(Ok(found)) => {
                let err = mismatch("exists", due.len(), found.len());
                return self.look_failed(&due, now, &err);
            }
            Ok(Err(err)) => return self.look_failed(&due, now, &err),
            Err(_) => return self.panicked("exists", &due),
        };
        let wall = unix_ms();
        // In reverse, so swap_remove only moves entries already visited.
        for (&i, &found) in due.iter().zip(&found).rev() {
            self.watching.get_mut(i).polls += 1;
            if found || self.watching.deadline(i) <= now {
                let watch = self.watching.take(i);
                self.decide(watch, found, now, wall);
            }
        }
    }

    /// A failed look decides nothing; a job whose deadline has passed has
    /// lost its last look and ends as failed.
    fn look_failed(&mut self, due: &[usize], now: Instant, err: &StoreError) {
        self.shared.store_failed("heat key check", err);
        let mut failed = 0;
        for &i in due.iter().rev() {
            if self.watching.deadline(i) <= now {
                self.watching.take(i);
                failed += 1;
            }
        }
        self.shared.counters.lost(Loss::Failed, failed);
    }

    fn decide(&mut self, watch: Watch, found: bool, now: Instant, wall_ms: u64) {
        let job = watch.job;
        let point = job.point();
        self.seq += 1;
        self.decided.push(Decided {
            dedupe_key: self.settings.config.dedupe_key(point, job.plan_id()),
            owner: format!("{}-{}-{}", self.settings.owner_prefix, self.index, self.seq),
            event: Event {
                plan_id: job.plan_id().to_owned(),
                symbol: job.symbol().to_owned(),
                obs_point: point,
                wait_ms: millis(now.saturating_duration_since(job.observed_at())),
                heat_found: found,
                polls: watch.polls,
                max_wait_ms: job.wait_ms(),
                ts_ms: wall_ms,
            },
            decided_at: now,
        });
    }

    /// Writes every decided event in one call, unless backing off.
    fn write(&mut self, now: Instant) {
        if self.decided.is_empty() || now < self.write_at {
            return;
        }
        let claims: Vec<Claim<'_>> = self
            .decided
            .iter()
            .map(|d| Claim {
                dedupe_key: &d.dedupe_key,
                owner: &d.owner,
                event: &d.event,
            })
            .collect();
        self.shared.counters.append_call(claims.len());
        let (store, stream) = (&mut self.store, &self.settings.stream);
        let answer = catch_unwind(AssertUnwindSafe(|| store.claim_and_append(stream, &claims)));
        drop(claims);
        match answer {
            Ok(Ok(claimed)) if claimed.len() == self.decided.len() => {
                for (d, claimed) in self.decided.drain(..).zip(claimed) {
                    let e = &d.event;
                    let duplicate = claimed == Claimed::Duplicate;
                    self.shared
                        .counters
                        .recorded(e.obs_point, e.heat_found, e.wait_ms, duplicate);
                }
                self.write_backoff = Duration::ZERO;
            }
            Ok(Ok(claimed)) => {
                let err = mismatch("claim_and_append", self.decided.len(), claimed.len());
                self.write_failed(now, &err);
            }
            Ok(Err(err)) => self.write_failed(now, &err),
            Err(_) => {
                let n = self.decided.len();
                self.decided.clear();
                self.shared.counters.lost(Loss::Panicked, n as u64);
                self.shared.store_panicked("event write", n);
                self.replace_store();
            }
        }
    }

    /// Keeps the events for a retry after a growing pause; those older than
    /// the retry window end as failed.
    fn write_failed(&mut self, now: Instant, err: &StoreError) {
        self.shared.store_failed("event write", err);
        let window = self.settings.config.retry_window();
        let before = self.decided.len();
        self.decided
            .retain(|d| now.saturating_duration_since(d.decided_at) < window);
        let expired = before - self.decided.len();
        self.shared.counters.lost(Loss::Failed, expired as u64);
        self.write_backoff =
            (self.write_backoff * 2).clamp(self.settings.config.poll(), MAX_WRITE_BACKOFF);
        self.write_at = now + self.write_backoff;
    }

    /// The jobs of a call that panicked end as panicked; the store, whose
    /// state is unknown, is replaced.
    fn panicked(&mut self, op: &str, due: &[usize]) {
        for &i in due.iter().rev() {
            self.watching.take(i);
        }
        self.shared.counters.lost(Loss::Panicked, due.len() as u64);
        self.shared.store_panicked(op, due.len());
        self.replace_store();
    }

    fn replace_store(&mut self) {
        let (connector, index) = (&self.connector, self.index);
        if let Ok(store) = catch_unwind(AssertUnwindSafe(|| connector.connect(index))) {
            self.store = store;
        }
    }

    /// The next tick, deadline or write retry, but never sooner than
    /// `spacing` after the last look. With room for more jobs, also no later
    /// than `INTAKE_EVERY` from now: new jobs are taken (and those already
    /// due, like single looks, looked at) within 10 ms, not a tick later.
    fn next_wake(&mut self) -> Instant {
        let deadline = self.watching.earliest();
        let mut wake = deadline.map_or(self.write_at, |d| d.min(self.next_tick));
        if !self.decided.is_empty() {
            wake = wake.min(self.write_at);
        }
        if self.held() < self.settings.config.max_in_flight() {
            wake = wake.min(Instant::now() + INTAKE_EVERY);
        }
        match self.last_look {
            Some(last) => wake.max(last + self.settings.spacing),
            None => wake,
        }
    }

    /// On shutdown: one last try to write what is decided (bounded by the
    /// store's timeouts), then everything still held is abandoned.
    fn stop_now(&mut self) {
        if !self.decided.is_empty() {
            let now = Instant::now();
            self.write_at = now;
            self.write(now);
        }
        let left = (self.watching.clear() + self.decided.len()) as u64;
        self.decided.clear();
        self.shared.counters.lost(Loss::Abandoned, left);
    }
}

fn mismatch(op: &str, asked: usize, got: usize) -> StoreError {
    StoreError::new(
        StoreErrorKind::Protocol,
        format!("{op} answered {got} results for {asked} requests"),
    )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}
