//! [`LateObserver`]: the handle the Apply service holds. Starting it spawns
//! the worker pool; `observe_*` hands a job to the pool and returns at once;
//! `shutdown` (or dropping the last handle) stops the pool within a bound.

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};
use log::{error, info};

use crate::counters::Refusal;
use crate::input::validate;
use crate::job::Job;
use crate::lifecycle::{Lifecycle, ShutdownReport};
use crate::shared::Shared;
use crate::worker::{self, Parts, Settings};
use crate::{Config, Connector, InvalidInput, LOG_TARGET, ObsPoint, Stats, metrics};

/// The late observer: a fixed pool of worker threads watching heat keys.
///
/// Cloning gives another handle to the same pool. The pool stops when
/// [`shutdown`](LateObserver::shutdown) is called or the last handle is
/// dropped (which waits at most the configured shutdown timeout).
///
/// ```
/// use heat_observer::{Config, LateObserver, MemoryStore};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = MemoryStore::new();
/// let observer = LateObserver::start(Config::from_env()?, store.clone())?;
/// // After publish_plan: never blocks, never touches Redis, never panics.
/// let _ = observer.observe_late("plan-42", "BTCUSDT");
/// let report = observer.shutdown(std::time::Duration::from_secs(1));
/// assert_eq!(report.stats.calls(), 1);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LateObserver {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    front: Front,
    pub(crate) config: Config,
    pub(crate) shared: Arc<Shared>,
    /// Kept so jobs still queued at shutdown can be counted as abandoned.
    /// `None` when disabled: nothing was started.
    pub(crate) rx: Option<Receiver<Job>>,
    pub(crate) lifecycle: Mutex<Lifecycle>,
    pub(crate) stopped: std::sync::Condvar,
}

/// Everything an accepted observe call reads or writes outside the channel,
/// on one cache line. Publish usually blocks on I/O just before, so the call
/// starts with cold caches and pays for each line it touches: reaching a
/// flag and a counter through two more pointers cost about 200 ns at p99
/// (benchmark, steady scenario).
#[repr(align(64))]
struct Front {
    /// `None` when disabled.
    tx: Option<Sender<Job>>,
    max_wait: Duration,
    /// Set by shutdown; observe refuses from then on.
    closed: AtomicBool,
    accepted: AtomicU64,
}

/// Why an observe call was refused. Every refusal is counted in
/// [`Stats`] and in `p28_refused_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refused {
    /// Observing is disabled (`P28_LATE_OBS_ENABLED=false`).
    Disabled,
    /// The queue was full: the workers are behind. Dropped, not blocked on.
    QueueFull,
    /// The arguments were invalid; nothing was queued.
    Invalid(InvalidInput),
    /// The observer was shut down.
    ShutDown,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Disabled => f.write_str("late observer is disabled"),
            Refused::QueueFull => f.write_str("late observer queue is full"),
            Refused::Invalid(why) => write!(f, "invalid observation: {why}"),
            Refused::ShutDown => f.write_str("late observer is shut down"),
        }
    }
}

impl std::error::Error for Refused {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Refused::Invalid(why) => Some(why),
            _ => None,
        }
    }
}

/// A worker thread could not be spawned; the workers already started were
/// stopped again.
#[derive(Debug)]
pub struct StartError {
    worker: usize,
    source: std::io::Error,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "could not spawn worker thread heat-observer-{}: {}",
            self.worker, self.source
        )
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The line logged at start, which the runbook greps for:
/// `P2.8A.3 Late Observer: True (wait=2000ms, poll=100ms)`.
///
/// ```
/// use heat_observer::{Config, startup_line};
/// assert_eq!(
///     startup_line(&Config::default()),
///     "P2.8A.3 Late Observer: True (wait=2000ms, poll=100ms)"
/// );
/// ```
pub fn startup_line(config: &Config) -> String {
    format!(
        "P2.8A.3 Late Observer: {} (wait={}ms, poll={}ms)",
        if config.enabled() { "True" } else { "False" },
        config.max_wait().as_millis(),
        config.poll().as_millis()
    )
}

impl LateObserver {
    /// Logs the startup line and, when enabled, spawns the workers
    /// (`heat-observer-0`, `heat-observer-1`, ...), each of which gets its
    /// store from `connector` on its own thread. Nothing connects here.
    ///
    /// When disabled, no thread is spawned, `connector` is dropped unused,
    /// and every observe call is a counted no-op.
    ///
    /// # Errors
    /// [`StartError`] if a thread cannot be spawned; the workers already
    /// started are stopped first. Nothing panics.
    pub fn start<C: Connector>(config: Config, connector: C) -> Result<LateObserver, StartError> {
        info!(target: LOG_TARGET, "{}", startup_line(&config));
        let shared = Arc::new(Shared::new(&config));
        if !config.enabled() {
            return Ok(Self::assemble(config, shared, None, Lifecycle::Disabled));
        }
        let (tx, rx) = bounded(config.queue_capacity());
        let (stop_tx, stop_rx) = bounded(0);
        let (done_tx, done_rx) = unbounded();
        let settings = Arc::new(Settings::new(&config, random_id()));
        let describe = connector.describe();
        let connector = Arc::new(connector);
        let mut handles = Vec::with_capacity(config.workers());
        for index in 0..config.workers() {
            let parts = Parts {
                index,
                connector: Arc::clone(&connector),
                jobs: rx.clone(),
                stop: stop_rx.clone(),
                shared: Arc::clone(&shared),
                settings: Arc::clone(&settings),
                done: done_tx.clone(),
            };
            let mut builder = thread::Builder::new().name(format!("heat-observer-{index}"));
            if let Some(bytes) = config.worker_stack_size() {
                builder = builder.stack_size(bytes);
            }
            // Counted before the spawn so `stats().workers` is right as soon as
            // start returns; the worker's exit guard takes it back.
            shared.counters.worker_started();
            match builder.spawn(move || worker::run(parts)) {
                Ok(handle) => handles.push(handle),
                Err(source) => {
                    shared.counters.worker_stopped();
                    error!(target: LOG_TARGET, "Late observer could not spawn worker {index}: {source}");
                    let started = Lifecycle::running(stop_tx, handles, done_rx);
                    // Dropping it stops the workers already started, within the timeout.
                    drop(Self::assemble(config, shared, Some((tx, rx)), started));
                    return Err(StartError {
                        worker: index,
                        source,
                    });
                }
            }
        }
        info!(
            target: LOG_TARGET,
            "Late observer started: {} workers, queue capacity {}, up to {} jobs in flight per worker, \
             store: {describe}, stream: {}",
            config.workers(),
            config.queue_capacity(),
            config.max_in_flight(),
            config.stream()
        );
        let running = Lifecycle::running(stop_tx, handles, done_rx);
        Ok(Self::assemble(config, shared, Some((tx, rx)), running))
    }

    /// An observer that observes nothing: every call is a counted
    /// [`Refused::Disabled`]. For when the configuration cannot be read or
    /// the pool cannot start and Apply must carry on without it. Logs the
    /// startup line with `False`.
    pub fn disabled() -> LateObserver {
        let config = Config::disabled();
        info!(target: LOG_TARGET, "{}", startup_line(&config));
        let shared = Arc::new(Shared::new(&config));
        Self::assemble(config, shared, None, Lifecycle::Disabled)
    }

    fn assemble(
        config: Config,
        shared: Arc<Shared>,
        queue: Option<(Sender<Job>, Receiver<Job>)>,
        life: Lifecycle,
    ) -> Self {
        let (tx, rx) = queue.unzip();
        LateObserver {
            inner: Arc::new(Inner {
                front: Front {
                    tx,
                    max_wait: config.max_wait(),
                    closed: AtomicBool::new(false),
                    accepted: AtomicU64::new(0),
                },
                config,
                shared,
                rx,
                lifecycle: Mutex::new(life),
                stopped: std::sync::Condvar::new(),
            }),
        }
    }

    /// Watches `plan_id`'s heat key for up to the configured max wait, at
    /// observation point `publish_plan_post`. Call it right after publish.
    ///
    /// # Errors
    /// [`Refused`] when the observation was not taken (counted either way).
    pub fn observe_late(&self, plan_id: &str, symbol: &str) -> Result<(), Refused> {
        let wait = self.inner.front.max_wait;
        self.observe(ObsPoint::PUBLISH_PLAN_POST, plan_id, symbol, wait)
    }

    /// Looks once at `plan_id`'s heat key, at observation point
    /// `create_apply_plan`. The look happens on a worker, within about 10 ms
    /// while the pool keeps up.
    ///
    /// # Errors
    /// [`Refused`] when the observation was not taken (counted either way).
    pub fn observe_now(&self, plan_id: &str, symbol: &str) -> Result<(), Refused> {
        self.observe(ObsPoint::CREATE_APPLY_PLAN, plan_id, symbol, Duration::ZERO)
    }

    /// Watches `plan_id`'s heat key for up to `wait` from now (zero: one
    /// look) and records one event at `point`. Returns at once: it validates
    /// the arguments and offers one job to the bounded queue, nothing else.
    ///
    /// # Errors
    /// [`Refused`] when observing is disabled, the arguments are invalid,
    /// the queue is full, or the observer is shut down. Each is counted.
    pub fn observe(
        &self,
        point: ObsPoint,
        plan_id: &str,
        symbol: &str,
        wait: Duration,
    ) -> Result<(), Refused> {
        let front = &self.inner.front;
        let Some(tx) = &front.tx else {
            return Err(self.refuse(Refusal::Disabled));
        };
        if front.closed.load(Relaxed) {
            return Err(self.refuse(Refusal::ShutDown));
        }
        if let Err(why) = validate(plan_id, symbol, wait) {
            self.inner.shared.refuse_invalid(why);
            return Err(Refused::Invalid(why));
        }
        // try_send, never send: a full queue must cost publish nothing.
        match tx.try_send(Job::new(point, plan_id, symbol, wait, Instant::now())) {
            Ok(()) => {
                front.accepted.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(_)) => {
                self.inner.shared.refuse_queue_full();
                Err(Refused::QueueFull)
            }
            // Cannot happen while `rx` lives; counted, not assumed away.
            Err(TrySendError::Disconnected(_)) => Err(self.refuse(Refusal::ShutDown)),
        }
    }

    #[cold]
    fn refuse(&self, why: Refusal) -> Refused {
        self.inner.shared.counters.refused(why);
        match why {
            Refusal::Disabled => Refused::Disabled,
            _ => Refused::ShutDown,
        }
    }

    /// A snapshot of every counter and gauge.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }

    /// The metrics in Prometheus text format; serve them with
    /// [`metrics::CONTENT_TYPE`].
    pub fn render_metrics(&self) -> String {
        metrics::render(&self.stats())
    }

    /// The configuration the observer runs with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Stops the pool, waiting at most `timeout`, and reports. Observations
    /// still queued or watched are abandoned (counted); decided events get
    /// one last write attempt. Workers that do not stop in time (a store
    /// hanging) are left to finish on their own and named in the report.
    ///
    /// Idempotent: later calls return the first call's report.
    pub fn shutdown(&self, timeout: Duration) -> ShutdownReport {
        self.inner.shutdown(timeout)
    }
}

impl Inner {
    pub(crate) fn stats(&self) -> Stats {
        let queued = self.rx.as_ref().map_or(0, |rx| rx.len() as u64);
        let accepted = self.front.accepted.load(Relaxed);
        self.shared.counters.snapshot(accepted, queued)
    }

    /// From now on observe calls are refused as shut down.
    pub(crate) fn close(&self) {
        self.front.closed.store(true, SeqCst);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown(self.config.shutdown_timeout());
        // No handle is left, so no observe call can race this count.
        if let Some(rx) = &self.rx {
            let late = rx.try_iter().count() as u64;
            self.shared.counters.abandoned_in_queue(late);
        }
    }
}

impl fmt::Debug for LateObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.stats();
        f.debug_struct("LateObserver")
            .field("enabled", &self.inner.rx.is_some())
            .field("workers", &stats.workers)
            .field("queued", &stats.queued)
            .field("in_flight", &stats.in_flight)
            .finish_non_exhaustive()
    }
}

/// A random id per observer, for owner tokens, without a `rand` dependency:
/// the standard library seeds each `RandomState` randomly.
fn random_id() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.write_u128(now.map_or(0, |d| d.as_nanos()));
    h.finish()
}
