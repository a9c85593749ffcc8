//! The worker thread: a loop that does what its [`Core`] decides. It owns
//! the one wait point (the queue, the stop, the push socket, the next
//! timer), makes every store call through one guarded path (a panic
//! caught, an answer of the wrong length refused), feeds the answers back,
//! and hands every outcome to the [`Ledger`]. The decisions are the core's.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[cfg(test)]
use crossbeam_channel::Sender;
use crossbeam_channel::{Receiver, select};
use log::Level;

use crate::say::say;

use crate::core::{Action, CallError, Core, INTAKE_EVERY, Now, WaitOn};
use crate::front::Shared;
use crate::job::Job;
use crate::ledger::Ledger;
use crate::store::{Answers, Changes, Connector, Store, StreamSpec};
use crate::store::{StoreError, StoreErrorKind};

/// What every worker of one observer shares and never changes.
pub(crate) struct Context<C> {
    pub(crate) connector: C,
    pub(crate) jobs: Receiver<Job>,
    pub(crate) shared: Arc<Shared>,
    /// Makes owner tokens unique to this observer (see `Claim::owner`).
    pub(crate) owner_prefix: String,
    pub(crate) stream: StreamSpec,
}

/// The body of thread `heat-observer-{index}`.
pub(crate) fn run<C: Connector>(index: usize, ctx: &Context<C>) {
    struct Exit<'a>(&'a Ledger);
    impl Drop for Exit<'_> {
        fn drop(&mut self) {
            self.0.worker_stopped();
        }
    }
    let _exit = Exit(&ctx.shared.ledger);
    let Ok(mut store) = catch_unwind(AssertUnwindSafe(|| ctx.connector.connect(index))) else {
        say!(
            Level::Error,
            "Late observer worker {index} stopped: its connector panicked"
        );
        return;
    };
    let mut core = Core::new(&ctx.shared.config, index, &ctx.owner_prefix, Instant::now());
    let mut stopping = false;
    // The ledger's warnings and facade are looked at this often, not at
    // each of the (many, when pushing) wake-ups.
    let mut ledger_tick = Instant::now();
    loop {
        let now = Instant::now();
        if !stopping && let Some(mode) = ctx.shared.stop_asked() {
            core.handle_stop(mode);
            stopping = true;
        }
        core.set_follow(crate::say::enabled(Level::Debug));
        let action = core.poll_action(now);
        match action {
            Action::Subscribe => {
                let answer = guarded(&mut store, ctx, index, 1, |s| {
                    s.subscribe().map(|on| vec![on])
                });
                core.handle_subscribed(answer.map(|on| on[0]), Instant::now());
            }
            Action::Take { up_to } => {
                let jobs: Vec<Job> = ctx.jobs.try_iter().take(up_to).collect();
                core.handle_taken(jobs, up_to, now);
            }
            Action::Look { watch } => {
                let keys = core.look_keys();
                let answer = guarded(&mut store, ctx, index, keys.len(), |s| s.look(&keys, watch));
                core.handle_looked(answer, clock());
            }
            Action::Write => {
                let claims = core.claims();
                let asked = claims.len();
                let answer = guarded(&mut store, ctx, index, asked, |s| {
                    s.claim_and_append(&ctx.stream, &claims)
                });
                core.handle_written(answer, Instant::now());
            }
            Action::Wait { until, on } => {
                // Once the stop is seen, it no longer cuts waits short.
                let stop = (!stopping).then(|| ctx.shared.woken());
                wait(ctx, index, &mut store, &mut core, until, on, stop);
                let now = Instant::now();
                if now >= ledger_tick {
                    ctx.shared.ledger.tick(now, ctx.shared.accepted());
                    ledger_tick = now + INTAKE_EVERY;
                }
            }
            Action::Done => break,
        }
        for outcome in core.drain_outcomes() {
            ctx.shared.ledger.report(index, outcome, now);
        }
    }
    for outcome in core.drain_outcomes() {
        ctx.shared.ledger.report(index, outcome, Instant::now());
    }
}

/// The one wait point: until `until`, or sooner for what `on` names, or
/// for a stop (when `stop` is given: it is not yet seen).
#[allow(clippy::too_many_arguments)]
fn wait<C: Connector>(
    ctx: &Context<C>,
    index: usize,
    store: &mut C::Store,
    core: &mut Core,
    until: Instant,
    on: WaitOn,
    stop: Option<&Receiver<()>>,
) {
    let timeout = until.saturating_duration_since(Instant::now());
    let never = crossbeam_channel::never();
    let stop_rx = stop.unwrap_or(&never);
    match on {
        WaitOn::Queue => select! {
            recv(ctx.jobs) -> job => if let Ok(job) = job {
                core.handle_taken(vec![job], usize::MAX, Instant::now());
            },
            recv(stop_rx) -> _ => {},
            default(timeout) => {},
        },
        WaitOn::Timer => {
            let _ = stop_rx.recv_timeout(timeout);
        }
        WaitOn::Push => loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || (stop.is_some() && ctx.shared.stop_asked().is_some()) {
                return;
            }
            // In slices, so that a stop and new jobs are seen within 10 ms.
            let slice = left.min(INTAKE_EVERY);
            if take_changes(ctx, index, store, core, slice) {
                return;
            }
        },
        WaitOn::Collect => {
            let _ = stop_rx.recv_timeout(timeout);
            // What came meanwhile, in as many answers as the store gives
            // (a bound, should messages never stop).
            for _ in 0..64 {
                if !take_changes(ctx, index, store, core, Duration::ZERO) {
                    return;
                }
            }
        }
    }
}

/// Waits up to `timeout` for messages and hands them to the core; whether
/// there was anything (messages, a loss, a failure).
fn take_changes<C: Connector>(
    ctx: &Context<C>,
    index: usize,
    store: &mut C::Store,
    core: &mut Core,
    timeout: Duration,
) -> bool {
    let answer = guarded(store, ctx, index, 1, |s| {
        s.changes(timeout).map(|c| vec![c])
    });
    match answer.map(|mut c| c.remove(0)) {
        Ok(Changes::Quiet) => return false,
        Ok(Changes::Invalidated(keys)) => core.handle_pushed(&keys, clock()),
        Ok(Changes::Lost) => core.handle_lost(),
        Err(CallError::Store(e)) => core.handle_push_broken(e, Instant::now()),
        Err(CallError::Panicked) => core.handle_store_replaced(Instant::now()),
    }
    true
}

/// Runs one store call, catching a panic and checking that the answer has
/// one entry per request. After a panic the store, whose state is
/// unknown, is replaced.
fn guarded<C: Connector, R: Counted>(
    store: &mut C::Store,
    ctx: &Context<C>,
    index: usize,
    asked: usize,
    f: impl FnOnce(&mut C::Store) -> Result<R, StoreError>,
) -> Result<R, CallError> {
    match catch_unwind(AssertUnwindSafe(|| f(store))) {
        Ok(Ok(answer)) if answer.count() == asked => Ok(answer),
        Ok(Ok(answer)) => Err(CallError::Store(StoreError::new(
            StoreErrorKind::Protocol,
            format!("answered {} results for {asked} requests", answer.count()),
        ))),
        Ok(Err(err)) => Err(CallError::Store(err)),
        Err(_) => {
            if let Ok(fresh) = catch_unwind(AssertUnwindSafe(|| ctx.connector.connect(index))) {
                *store = fresh;
            }
            Err(CallError::Panicked)
        }
    }
}

/// How many requests an answer answers.
trait Counted {
    fn count(&self) -> usize;
}

impl<T> Counted for Vec<T> {
    fn count(&self) -> usize {
        self.len()
    }
}

impl Counted for Answers {
    fn count(&self) -> usize {
        self.found.len()
    }
}

/// The time, both clocks. The wall clock is read between two reads of the
/// monotonic one, again while they are more than [`PAIR_WITHIN`] apart: a
/// thread preempted between its two reads stamps the events it decides
/// then early by the preemption (up to 7 ms seen on a busy 2-core VM),
/// and a push decision follows its key's write by 1 to 3 ms, so such a
/// `ts_ms` would read as a find before the write.
fn clock() -> Now {
    paired(Instant::now, || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
    })
}

/// How far apart the two monotonic reads around a wall clock read may be.
const PAIR_WITHIN: Duration = Duration::from_micros(20);
/// How many times the clocks are read for a close pair; the closest is
/// kept (a thread preempted once is rarely preempted again at once).
const PAIR_TRIES: usize = 4;

/// [`clock`] with the clocks given.
fn paired(mut instant: impl FnMut() -> Instant, mut unix: impl FnMut() -> Duration) -> Now {
    let mut best: Option<(Duration, Now)> = None;
    for _ in 0..PAIR_TRIES {
        let before = instant();
        let wall = unix();
        let after = instant();
        let gap = after.saturating_duration_since(before);
        let now = Now {
            at: before + gap / 2,
            unix: wall,
        };
        if best.is_none_or(|(closest, _)| gap < closest) {
            best = Some((gap, now));
        }
        if gap <= PAIR_WITHIN {
            break;
        }
    }
    best.map_or_else(
        || Now {
            at: instant(),
            unix: unix(),
        },
        |(_, now)| now,
    )
}

#[cfg(test)]
mod tests;
