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
//!   bounded queue with `try_send` and returns: no lock, no Redis call, no
//!   log line, no allocation (plan id and symbol up to 78 bytes together),
//!   never a block or a panic. A full queue drops the job, counted as
//!   `refused_queue_full` and warned about by a worker, throttled.
//! * Each worker holds up to `max_in_flight` jobs and looks at all their
//!   keys in one batched call per tick (`poll`), or, with
//!   `P28_LATE_OBS_DETECT=push` ([`Detect::Push`]), when Redis says a key
//!   was written (client tracking). A job ends when its key is found or by
//!   the look at its deadline, which counts from the observe call.
//! * A decided job's event is claimed and appended in one batched call:
//!   one event per `(plan_id, obs_point)`, also across processes; a failed
//!   write is retried with backoff for the retry window.
//! * Every observe call ends in exactly one counted outcome ([`Stats`]).
//!
//! [`LateObserver::shutdown`] (or dropping the owner) drains what is held
//! within its timeout, even if the store hangs; [`ObserverHandle`]s do not
//! keep the pool alive. A store error or panic delays or fails
//! observations, never the caller; [`LateObserver::disabled`] starts
//! nothing. [`Config`] lists every `P28_LATE_OBS_*` setting; a bad value
//! is a [`ConfigError`] naming the variable, and
//! `P28_LATE_OBS_ENABLED=false` (the runbook's rollback) leaves only the
//! early look, `observe_now`, running.
//!
//! # Stores, features and logging
//!
//! [`RedisConnector`] gives each worker its own lazily opened connection;
//! [`MemoryStore`] keeps everything in memory. Feature `cluster` adds
//! `RedisClusterConnector` (Redis 7.0 or later), `tls` adds `rediss://`
//! (rustls) and `TlsCerts`, `metrics` reports to the `metrics` facade.
//! Logging goes through `log` only (target `heat_observer`); the library
//! never installs a logger. Warnings come from workers, never the caller's
//! thread, one per kind per interval with the count since the last; each
//! failed store call and the lines per plan are at debug, each look at
//! trace.

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

pub use config::{Config, ConfigBuilder, ConfigError, Detect};
pub use obs_point::ObsPoint;
pub use observer::{LateObserver, ObserverHandle, ShutdownReport};
pub use refusal::{InvalidInput, Refused};
pub use stats::{PointStats, Stats};
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
