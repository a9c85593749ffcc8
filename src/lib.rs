//! A fail-open late observer of heat keys for the Apply service.
//!
//! After Apply publishes a plan, HeatGate and HeatBridge write
//! `quantum:harvest:heat:by_plan:{plan_id}` some hundreds of milliseconds
//! later. [`observe_late`](ObserverHandle::observe_late) hands the plan to a
//! fixed pool of worker threads that watch the key for up to `max_wait`,
//! looking every `poll`, then append one event to
//! `quantum:stream:apply.heat.observed` and count it in
//! `p28_observed_total{obs_point,heat_found}`.
//!
//! # In a service
//!
//! ```no_run
//! use heat_observer::{LateObserver, metrics::MetricsFormat};
//!
//! // At startup: reads P28_LATE_OBS_*, never fails (a bad setting is logged
//! // as "Late observer disabled: ..." and the service runs without it).
//! let observer = LateObserver::from_env("redis://127.0.0.1:6379");
//!
//! // In publish_plan, right after the publish: never blocks, no I/O.
//! let _ = observer.observe_late("plan-42", "BTCUSDT");
//!
//! // In the /metrics handler (another thread holds a handle):
//! let metrics = observer.handle();
//! let body = metrics.render_metrics();
//! let content_type = MetricsFormat::Prometheus.content_type();
//! # let _ = (body, content_type);
//!
//! // On SIGTERM: stop taking plans, finish watching those held, write them.
//! let timeout = observer.config().shutdown_timeout(); // max wait + 500 ms
//! let report = observer.shutdown(timeout);
//! assert_eq!(report.abandoned(), 0);
//! ```
//!
//! Tests and simulations use [`MemoryStore`] in place of Redis:
//!
//! ```
//! use heat_observer::{Config, LateObserver, MemoryStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! store.insert_key("quantum:harvest:heat:by_plan:plan-42");
//! let observer = LateObserver::start(Config::builder().build()?, store.clone())?;
//! observer.observe_late("plan-42", "BTCUSDT")?;
//! observer.shutdown(std::time::Duration::from_secs(3));
//! let event = &store.entries("quantum:stream:apply.heat.observed")[0];
//! assert_eq!(event.field("heat_found"), Some("1"));
//! # Ok(())
//! # }
//! ```
//!
//! # What happens to an observation
//!
//! * `observe_*` validates its arguments, offers one 120-byte job to a
//!   bounded queue with `try_send`, and returns. It takes no lock, makes no
//!   Redis call, writes no log line, allocates nothing (for a plan id and
//!   symbol of up to 78 bytes together), and never blocks or panics. When
//!   the queue is full the job is dropped and counted as
//!   `refused_queue_full`; a worker warns about it, at most once per
//!   interval with the count since the previous warning.
//! * Each worker holds up to `max_in_flight` jobs and checks all their keys
//!   in one batched store call per tick (`poll`). A job ends when its key is
//!   found or its deadline passes; the deadline counts from the observe call,
//!   so time spent queued counts against it. A last look happens at the
//!   deadline (up to 10 ms after it, so that a burst's deadlines share one
//!   call): a key written before the deadline is found.
//! * With `P28_LATE_OBS_DETECT=push` ([`Detect::Push`]) Redis tells the
//!   workers when a key under the heat prefix is written (client tracking):
//!   a job is looked at when taken and at its deadline, and decided the
//!   moment a message names its key; everything is looked at again when a
//!   message may have been lost. Where the store cannot push, workers poll.
//! * A decided job becomes an event whose dedupe key is claimed and appended
//!   in one batched call: one event per `(plan_id, obs_point)`, also across
//!   processes. A write that fails is retried with backoff for the retry
//!   window, then counted as failed.
//! * Every observe call ends in exactly one counted outcome (see [`Stats`]):
//!   refused (disabled, invalid, queue full, shut down), or accepted and then
//!   found, not found, deduplicated, failed, panicked or abandoned.
//!
//! # Stopping
//!
//! The service owns the [`LateObserver`]; other threads hold
//! [`ObserverHandle`]s, which do not keep the pool alive.
//! [`LateObserver::shutdown`] refuses new observations, keeps watching what
//! is queued or held until each plan is decided or the timeout nearly
//! passes, writes the events, and counts the rest as abandoned; it returns
//! within its timeout even if the store hangs (workers that do not stop in
//! time are detached). Dropping the owner does the same with the configured
//! timeout (the max wait plus 500 ms by default, so a default stop abandons
//! nothing). [`LateObserver::shutdown_now`] abandons what is watched at
//! once. `std::process::exit` skips all of it.
//!
//! # Failing open
//!
//! A store error delays or fails observations, never the caller. A panic in
//! a store call is caught per call, its jobs are counted as panicked, the
//! store is replaced and the worker lives on (with `panic = "abort"` in the
//! application's profile a panic cannot be caught; the crate's own code has
//! no panicking paths). [`LateObserver::disabled`] starts nothing and
//! connects nothing: observing is a counted no-op.
//!
//! # Configuration
//!
//! [`Config::from_env`] reads the `P28_LATE_OBS_*` variables; each is also a
//! builder setter, and setters override the environment. A value that does
//! not parse or is out of range, or an unknown variable under the prefix
//! (a typo), is a [`ConfigError`] naming the variable. [`Config`]'s docs
//! list every setting with its default. With `P28_LATE_OBS_ENABLED=false`
//! (the runbook's rollback) the late observer is off and `observe_late` a
//! counted no-op, while the early look, `observe_now`, still runs.
//!
//! # Stores and features
//!
//! [`RedisConnector`] gives each worker its own lazily opened connection to
//! one Redis; [`MemoryStore`] keeps everything in memory (tests, the
//! simulator). Cargo features: `cluster` adds `RedisClusterConnector`
//! (Redis Cluster, Redis 7.0 or later); `tls` adds `rediss://` through
//! rustls and `TlsCerts` for a private CA.
//!
//! # Logging
//!
//! Through the `log` facade only, target `heat_observer`; the library never
//! installs a logger. At start, at info:
//! `P2.8A.3 Late Observer: True (wait=2000ms, poll=100ms)` (see
//! [`Config::startup_line`]). Warnings (queue full, invalid input, store
//! errors) are written by workers, never on the caller's thread, throttled
//! to one per kind per interval with the count since the previous one, and
//! start with "Late observer"; when the store answers again after errors,
//! one info line says so. One summary line at shutdown. Per plan (taken,
//! decided, written) at debug, each look at trace, with the plan id.

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod config;
mod core;
mod event;
mod front;
mod job;
mod ledger;
pub mod metrics;
mod obs_point;
mod observer;
mod pool;
mod refusal;
mod say;
mod stats;
pub mod store;
mod text;
mod worker;

pub use config::{Config, ConfigBuilder, ConfigError, ConfigErrorKind, Detect};
pub use obs_point::ObsPoint;
pub use observer::{LateObserver, ObserverHandle, ShutdownReport};
pub use refusal::{InvalidInput, Refused};
pub use stats::{PointStats, Stats, WaitHistogram};
#[cfg(feature = "cluster")]
#[cfg_attr(docsrs, doc(cfg(feature = "cluster")))]
pub use store::redis::RedisClusterConnector;
#[cfg(feature = "tls")]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub use store::redis::TlsCerts;
pub use store::{MemoryStore, redis::RedisConnector};

// Compiles the Rust examples of the README and the guides as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/operators.md")]
struct OperatorsDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/design.md")]
struct DesignDoctests;
#[cfg(doctest)]
#[doc = include_str!("../docs/measurements.md")]
struct MeasurementsDoctests;

/// The `log` target of every line this crate logs.
pub(crate) const LOG_TARGET: &str = "heat_observer";
