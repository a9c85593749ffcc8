//! [`LateObserver`], the handle the Apply service owns, and
//! [`ObserverHandle`], what other threads get. Starting spawns the worker
//! pool; `observe_*` hands a job to the pool and returns at once; the pool
//! stops when the owner calls `shutdown` or is dropped, whatever handles
//! are still around.

mod fail_open;

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{Ordering::Relaxed, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};
use log::Level;

use crate::config::Config;
use crate::config::{ENV_ENABLED, ENV_REDIS_URL};
use crate::core::StopMode;
use crate::front::{OPEN, STOPPED, Shared};
use crate::job::Job;
use crate::ledger::Mode;
use crate::metrics::{MetricFamily, MetricsFormat};
use crate::obs_point::ObsPoint;
use crate::pool::Pool;
use crate::refusal::Refused;
use crate::refusal::validate;
use crate::say::say;
use crate::stats::Stats;
use crate::store::Connector;
use crate::store::StreamSpec;
use crate::worker::{self, Context};

/// The late observer: a fixed pool of worker threads watching heat keys.
///
/// The service owns it for as long as it publishes plans; dropping it
/// stops the pool, draining what is watched within the configured shutdown
/// timeout. Other threads get an [`ObserverHandle`] from
/// [`handle`](LateObserver::handle): handles observe and read metrics but
/// do not keep the pool alive. Every method of [`ObserverHandle`] is
/// callable on the owner too.
///
/// ```
/// use heat_observer::{Config, LateObserver, MemoryStore};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let observer = LateObserver::start(Config::from_env()?, MemoryStore::new())?;
/// // After publish_plan: never blocks, never touches Redis, never panics.
/// let _ = observer.observe_late("plan-42", "BTCUSDT");
/// let report = observer.shutdown(std::time::Duration::from_secs(3));
/// assert_eq!(report.stats.calls(), 1);
/// assert_eq!(report.abandoned(), 0, "the drain decided the plan");
/// # Ok(())
/// # }
/// ```
#[must_use = "dropping the observer stops it at once"]
pub struct LateObserver {
    handle: ObserverHandle,
    /// The workers; `None` once stopped (a disabled observer has none, but
    /// stops all the same: its door closes, its stats say stopped).
    pool: Option<Pool>,
}

/// What threads other than the owner hold: observe, read stats and
/// metrics. Cheap to clone. It does not keep the pool alive: once the
/// [`LateObserver`] is shut down or dropped, observe calls are refused (and
/// counted) as [`Refused::ShutDown`].
#[derive(Clone)]
pub struct ObserverHandle {
    shared: Arc<Shared>,
}

/// What [`LateObserver::shutdown`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// How long the shutdown took.
    pub elapsed: Duration,
    /// Observations queued or held by workers when the stop began.
    pub held_at_stop: u64,
    /// Events written (found or not) during the stop.
    pub written: u64,
    /// Workers that stopped within the timeout and were joined.
    pub workers_stopped: usize,
    /// Workers still busy (a store call hanging) when the timeout passed;
    /// they were detached and count their jobs as abandoned when they return.
    pub workers_not_stopped: usize,
    /// The counters at the end of the shutdown.
    pub stats: Stats,
}

impl ShutdownReport {
    /// Observations abandoned at shutdown, undecided or unwritten.
    pub fn abandoned(&self) -> u64 {
        self.stats.abandoned
    }

    /// Observations held at the stop that reached an end other than
    /// abandoned (written, deduplicated, failed).
    pub fn drained(&self) -> u64 {
        self.held_at_stop.saturating_sub(self.stats.abandoned)
    }

    /// Whether every worker stopped in time.
    pub fn is_complete(&self) -> bool {
        self.workers_not_stopped == 0
    }
}

impl LateObserver {
    /// Logs the startup line and spawns the workers (`heat-observer-0`,
    /// `heat-observer-1`, ...), each of which gets its store from
    /// `connector` on its own thread. Nothing connects here.
    ///
    /// With the late observer switched off (`P28_LATE_OBS_ENABLED=false`,
    /// the runbook's rollback), `observe_late` is a counted no-op but the
    /// original early look, `observe_now`, still runs: the workers start
    /// for it (the log says so in one line).
    ///
    /// # Errors
    /// The `io::Error` of a thread that could not be spawned; the workers
    /// already started are stopped first. Nothing panics.
    pub fn start<C: Connector>(config: Config, connector: C) -> std::io::Result<LateObserver> {
        if config.redis_url().is_some() {
            // Given a connector, the variable cannot be followed: said, not
            // ignored in silence (a dead address would go unnoticed).
            say!(
                Level::Warn,
                "Late observer: {ENV_REDIS_URL} is set, but this start was given its own \
                 connector ({}), which is used instead; LateObserver::from_env follows the \
                 variable (a cluster as a comma-separated list of nodes)",
                connector.describe()
            );
        }
        let line = config.startup_line();
        let late = config.enabled();
        Self::launch(config, connector, Launch::plain(late, line))
    }

    /// Starts as [`LateObserver::start`] does, in `launch`'s mode, logging
    /// its startup line.
    fn launch<C: Connector>(
        config: Config,
        connector: C,
        launch: Launch,
    ) -> std::io::Result<LateObserver> {
        say!(Level::Info, "{}", launch.line);
        if let Some(advice) = config.advice() {
            say!(Level::Warn, "Late observer config: {advice}");
        }
        let (tx, rx) = bounded(config.queue_capacity());
        let describe = connector.describe();
        let mode = Mode {
            late: launch.late,
            workers: true,
            config_error: launch.late_off == Refused::ConfigError,
        };
        let mut observer = Self::assemble(config, Some((tx, rx.clone())), mode, launch.late_off);
        let shared = Arc::clone(&observer.handle.shared);
        let c = &shared.config;
        let ctx = Arc::new(Context {
            connector,
            jobs: rx,
            shared: Arc::clone(&shared),
            owner_prefix: format!("{:016x}", random_id()),
            stream: StreamSpec {
                name: c.stream().to_owned(),
                maxlen: c.stream_maxlen(),
                dedupe_ttl: c.dedupe_ttl(),
            },
        });
        let mut pool = Pool::new();
        let spawned = (0..c.workers()).try_for_each(|index| {
            let ctx = Arc::clone(&ctx);
            // Counted before the spawn, so stats are right once start returns.
            shared.ledger.worker_started();
            let name = format!("heat-observer-{index}");
            pool.spawn(name, c.worker_stack_size(), move || {
                worker::run(index, &ctx)
            })
            .map_err(|e| {
                shared.ledger.worker_stopped();
                say!(
                    Level::Error,
                    "Late observer could not spawn worker {index}: {e}"
                );
                let why = format!("could not spawn worker thread heat-observer-{index}: {e}");
                std::io::Error::new(e.kind(), why)
            })
        });
        observer.pool = Some(pool);
        // Dropping the observer stops the workers already started.
        spawned?;
        if launch.late {
            say!(
                Level::Info,
                "Late observer started: {} workers, queue capacity {}, up to {} jobs in flight per \
                 worker, detect {}, store: {describe}, stream: {}",
                c.workers(),
                c.queue_capacity(),
                c.max_in_flight(),
                c.detect().as_str(),
                c.stream()
            );
        } else {
            say!(
                Level::Info,
                "Late observer off ({}): observe_late is a counted no-op (refused as {}); \
                 observe_now (create_apply_plan) still looks, on {} worker thread(s) with a \
                 connection each to {describe}",
                launch.why_off,
                launch.late_off.reason(),
                c.workers()
            );
        }
        Ok(observer)
    }

    /// An observer that observes nothing and starts nothing, on purpose:
    /// every call is a counted [`Refused::Disabled`]. Logs the startup line
    /// with `False`, as a rollback. For a configuration that could not be
    /// used, [`LateObserver::misconfigured`] says so instead.
    pub fn disabled() -> LateObserver {
        let config = Config::disabled();
        say!(Level::Info, "{}", config.startup_line());
        let mode = Mode {
            late: false,
            workers: false,
            config_error: false,
        };
        Self::assemble(config, None, mode, Refused::Disabled)
    }

    fn assemble(
        config: Config,
        queue: Option<(Sender<Job>, Receiver<Job>)>,
        mode: Mode,
        off: Refused,
    ) -> LateObserver {
        LateObserver {
            handle: ObserverHandle {
                shared: Arc::new(Shared::new(config, queue, mode, off)),
            },
            pool: Some(Pool::new()),
        }
    }

    /// A handle for other threads (an HTTP server's metrics, another part
    /// of Apply). It does not keep the pool alive.
    pub fn handle(&self) -> ObserverHandle {
        self.handle.clone()
    }

    /// Stops, draining: new observe calls are refused from now on; what is
    /// queued or watched goes on being watched until each plan is decided
    /// or `timeout` nearly passes, decided events are written, and only
    /// then is the rest counted as abandoned. Returns within `timeout` even
    /// if the store hangs: workers that do not stop in time are detached.
    /// The default timeout (`P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS`, used on
    /// drop) is the max wait plus 500 ms, enough to abandon nothing.
    ///
    /// It consumes the observer: handles still around are refused from
    /// now on ([`Refused::ShutDown`]).
    pub fn shutdown(mut self, timeout: Duration) -> ShutdownReport {
        self.stop(timeout, true)
    }

    /// Stops fast: what is watched is abandoned at once (counted); decided
    /// events get one last write. Returns within `timeout`.
    pub fn shutdown_now(mut self, timeout: Duration) -> ShutdownReport {
        self.stop(timeout, false)
    }
}

impl Deref for LateObserver {
    type Target = ObserverHandle;

    fn deref(&self) -> &ObserverHandle {
        &self.handle
    }
}

impl Drop for LateObserver {
    fn drop(&mut self) {
        if self.pool.is_some() {
            self.stop(self.handle.shared.config.shutdown_timeout(), true);
        }
    }
}

impl ObserverHandle {
    /// Watches `plan_id`'s heat key for up to the configured max wait, at
    /// observation point `publish_plan_post`. Call it right after publish.
    ///
    /// # Errors
    /// [`Refused`] when the observation was not taken (counted either way).
    pub fn observe_late(&self, plan_id: &str, symbol: &str) -> Result<(), Refused> {
        let wait = self.shared.front.max_wait;
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
    /// the arguments and offers one job to the bounded queue, nothing else:
    /// no lock, no I/O, no log line.
    ///
    /// # Errors
    /// [`Refused`] when observing is off, the arguments are invalid (an
    /// empty plan id or symbol, more than 128 or 32 bytes, a control
    /// character, a wait over an hour), the queue is full, or the observer
    /// is shut down. Each is counted.
    pub fn observe(
        &self,
        point: ObsPoint,
        plan_id: &str,
        symbol: &str,
        wait: Duration,
    ) -> Result<(), Refused> {
        let Shared { front, ledger, .. } = &*self.shared;
        let Some(tx) = &front.tx else {
            return Err(ledger.refused(self.shared.off, plan_id));
        };
        if !front.late && !wait.is_zero() {
            let off = match front.late_config_error {
                true => Refused::ConfigError,
                false => Refused::Disabled,
            };
            return Err(ledger.refused(off, plan_id));
        }
        if front.door.load(SeqCst) != OPEN {
            return Err(ledger.refused(Refused::ShutDown, plan_id));
        }
        if let Err(why) = validate(plan_id, symbol, wait) {
            return Err(ledger.refused(Refused::Invalid(why), plan_id));
        }
        // try_send, never send: a full queue must cost publish nothing.
        match tx.try_send(Job::new(point, plan_id, symbol, wait, Instant::now())) {
            Ok(()) => {
                front.accepted.fetch_add(1, Relaxed);
                if front.door.load(SeqCst) == STOPPED {
                    self.shared.abandon_queued();
                }
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err(ledger.refused(Refused::QueueFull, plan_id)),
            // Cannot happen while `rx` lives; counted, not assumed away.
            Err(TrySendError::Disconnected(_)) => Err(ledger.refused(Refused::ShutDown, plan_id)),
        }
    }

    /// A snapshot of every counter and gauge.
    pub fn stats(&self) -> Stats {
        self.shared.stats()
    }

    /// Every metric with its samples, for a registry's collector (each
    /// sample labelled `observer="<name>"` first when the config names the
    /// observer).
    pub fn metric_families(&self) -> Vec<MetricFamily> {
        self.shared.ledger.families(self.shared.accepted())
    }

    /// The metrics in the Prometheus text format; serve them with
    /// `MetricsFormat::Prometheus.content_type()`. For OpenMetrics, or
    /// several observers on one page, see [`MetricsFormat`].
    pub fn render_metrics(&self) -> String {
        MetricsFormat::Prometheus.render(&self.metric_families())
    }

    /// The configuration the observer runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }
}

impl LateObserver {
    fn stop(&mut self, timeout: Duration, drain: bool) -> ShutdownReport {
        let start = Instant::now();
        let shared = &*self.handle.shared;
        // A timeout too large to add is as good as forever.
        let deadline = start.checked_add(timeout);
        let before = shared.stats();
        let mode = match deadline {
            // The part of a drain's timeout kept for the last write: two
            // store timeouts, at most half the timeout.
            Some(deadline) if drain => StopMode::Drain {
                until: deadline
                    - (shared.config.redis_timeout() * 2 + Duration::from_millis(20))
                        .min(timeout / 2),
            },
            None if drain => StopMode::Drain {
                until: start + shared.config.max_wait() + Duration::from_secs(3600),
            },
            _ => StopMode::Now,
        };
        shared.close(mode);
        let (stopped, not_stopped) = self
            .pool
            .take()
            .map_or((0, 0), |mut pool| pool.join(deadline));
        shared.front.door.store(STOPPED, SeqCst);
        shared.abandon_queued();
        shared.ledger.stop(Instant::now(), shared.accepted());
        let stats = shared.stats();
        let report = ShutdownReport {
            elapsed: start.elapsed(),
            held_at_stop: before.queued + before.in_flight,
            written: (stats.found + stats.not_found)
                .saturating_sub(before.found + before.not_found),
            workers_stopped: stopped,
            workers_not_stopped: not_stopped,
            stats,
        };
        if shared.front.tx.is_some() {
            log_summary(&report);
        }
        report
    }
}

fn log_summary(report: &ShutdownReport) {
    let s = &report.stats;
    let line = format!(
        "Late observer stopped in {} ms: held {} at the stop, drained {}, written {}; \
         accepted {}, found {}, not found {}, deduplicated {}, failed {}, panicked {}, \
         abandoned {}; store errors {}; refused: queue full {}, invalid {}, shut down {}, \
         disabled {}, config error {}",
        report.elapsed.as_millis(),
        report.held_at_stop,
        report.drained(),
        report.written,
        s.accepted,
        s.found,
        s.not_found,
        s.deduplicated,
        s.failed,
        s.panicked,
        s.abandoned,
        s.store_errors,
        s.refused_queue_full,
        s.refused_invalid,
        s.refused_shut_down,
        s.refused_disabled,
        s.refused_config_error,
    );
    if report.is_complete() {
        say!(Level::Info, "{line}");
    } else {
        say!(
            Level::Warn,
            "{line}; {} worker(s) did not stop in time and were detached, {} observation(s) still held",
            report.workers_not_stopped,
            s.in_flight
        );
    }
}

impl fmt::Debug for LateObserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.handle, f)
    }
}

impl fmt::Debug for ObserverHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stats = self.stats();
        f.debug_struct("LateObserver")
            .field("enabled", &stats.enabled)
            .field("stopped", &stats.stopped)
            .field("workers", &stats.workers)
            .field("queued", &stats.queued)
            .field("in_flight", &stats.in_flight)
            .finish_non_exhaustive()
    }
}

/// How a start runs: whether the late observer is on, why not, and the
/// startup line it logs.
pub(crate) struct Launch {
    pub(crate) late: bool,
    /// How `observe_late` is refused while the late observer is off:
    /// [`Refused::Disabled`] (a rollback) or [`Refused::ConfigError`] (a
    /// setting only the late look uses was invalid).
    pub(crate) late_off: Refused,
    /// Why it is off, for the log (`P28_LATE_OBS_ENABLED=false`).
    pub(crate) why_off: String,
    pub(crate) line: String,
}

impl Launch {
    /// On or off as the config says, the startup line `line`.
    pub(crate) fn plain(late: bool, line: String) -> Launch {
        Launch {
            late,
            late_off: Refused::Disabled,
            why_off: format!("{ENV_ENABLED}=false"),
            line,
        }
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
