//! A fail-open late observer of heat keys for the Apply service.
//!
//! After Apply publishes a plan, HeatGate and HeatBridge write
//! `quantum:harvest:heat:by_plan:{plan_id}` some hundreds of milliseconds
//! later. [`LateObserver::observe_late`] hands the plan to a fixed pool of
//! worker threads that watch the key for up to `max_wait`, looking every
//! `poll`, then append one [`Event`] to `quantum:stream:apply.heat.observed`
//! and count it in `p28_observed_total{obs_point,heat_found}`.
//!
//! ```
//! use heat_observer::{Config, LateObserver, MemoryStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // In Apply: read P28_LATE_OBS_* once at startup; keep the handle alive.
//! let store = MemoryStore::new(); // RedisConnector in production
//! let observer = LateObserver::start(Config::from_env()?, store.clone())?;
//!
//! // In publish_plan, right after the publish:
//! if let Err(refused) = observer.observe_late("plan-42", "BTCUSDT") {
//!     log::debug!("not observed: {refused}"); // counted either way
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # What happens to an observation
//!
//! * `observe_*` validates its arguments, offers one 120-byte job to a
//!   bounded queue with `try_send`, and returns. It takes no lock, makes no
//!   Redis call, allocates nothing (for a plan id and symbol of up to 78
//!   bytes together), and never blocks or panics. When the queue is full
//!   the job is dropped and counted as `refused_queue_full`, and a warning
//!   is logged at most once per interval with the count since the previous
//!   one.
//! * Each worker holds up to `max_in_flight` jobs and checks all their keys
//!   in one batched store call per tick (`poll`). A job ends when its key is
//!   found or its deadline passes; the deadline counts from the observe call,
//!   so time spent queued counts against it. A last look happens at the
//!   deadline (up to 10 ms after it, so that a burst's deadlines share one
//!   call): a key written before the deadline is found.
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
//! [`LateObserver::shutdown`] refuses new observations, wakes the workers,
//! gives decided events one last write, abandons (and counts) what is still
//! queued or watched, and returns within its timeout even if the store hangs:
//! workers that do not stop in time are detached. Dropping the last handle
//! does the same with the configured timeout. Keep the handle alive for as
//! long as Apply runs: `let _ = LateObserver::start(..)` drops it at once,
//! and `std::process::exit` skips Drop, losing what is in flight.
//!
//! # Failing open
//!
//! A store error delays or fails observations, never the caller. A panic in
//! a store call is caught per call, its jobs are counted as panicked, the
//! store is replaced and the worker lives on (with `panic = "abort"` in the
//! application's profile a panic cannot be caught; the crate's own code has
//! no panicking paths). With `P28_LATE_OBS_ENABLED=false` nothing starts,
//! nothing connects, and observing is a counted no-op.
//!
//! # Configuration
//!
//! [`Config::from_env`] reads these variables; each is also a builder
//! setter, and setters override the environment. A value that does not
//! parse or is out of range is a [`ConfigError`] naming the variable.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `P28_LATE_OBS_ENABLED` | `true` | feature flag: `true/false`, `1/0`, `yes/no`, `on/off` |
//! | `P28_LATE_OBS_MAX_WAIT_MS` | `2000` | how long after publish a plan is watched |
//! | `P28_LATE_OBS_POLL_MS` | `100` | time between two looks at a plan's key |
//! | `P28_LATE_OBS_WORKERS` | `2` | worker threads |
//! | `P28_LATE_OBS_QUEUE_CAPACITY` | `16384` | jobs waiting for a worker |
//! | `P28_LATE_OBS_IN_FLIGHT` | `8192` | jobs one worker watches at once |
//! | `P28_LATE_OBS_DEDUPE_TTL_MS` | `86400000` | lifetime of a dedupe key |
//! | `P28_LATE_OBS_STREAM_MAXLEN` | `100000` | approximate stream length |
//! | `P28_LATE_OBS_REDIS_TIMEOUT_MS` | `50` | timeout of each store call |
//! | `P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS` | `1000` | bound of shutdown and Drop |
//! | `P28_LATE_OBS_RETRY_MS` | `5000` | how long a failed event write is retried |
//!
//! # Stores and features
//!
//! [`RedisConnector`] gives each worker its own lazily opened connection to
//! one Redis; [`MemoryStore`] keeps everything in memory (tests, the
//! simulator). Cargo feature `cluster` adds `RedisClusterConnector` (Redis
//! Cluster, Redis 7.0 or later); feature `tls` adds `rediss://` through
//! rustls and `TlsCerts` for a private CA.
//!
//! # Logging
//!
//! Through the `log` facade only, target `heat_observer`; the library never
//! installs a logger. At start, at info:
//! `P2.8A.3 Late Observer: True (wait=2000ms, poll=100ms)` (see
//! [`startup_line`]). Warnings (queue full, invalid input, store errors) are
//! throttled to one per kind per interval and start with "Late observer".
//! One summary line at shutdown. Nothing is logged per job above debug.

#![warn(missing_docs)]

mod config;
mod counters;
mod event;
mod input;
mod job;
mod lifecycle;
pub mod metrics;
mod obs_point;
mod observer;
pub mod report;
mod shared;
mod stats;
mod store;
mod throttle;
mod watchlist;
mod worker;

pub use config::*;
pub use event::{EVENT_FIELDS, Event};
pub use input::{InvalidInput, MAX_PLAN_ID_LEN, MAX_SYMBOL_LEN};
pub use lifecycle::ShutdownReport;
pub use obs_point::{MAX_OBS_POINT_LEN, ObsPoint};
pub use observer::{LateObserver, Refused, StartError, startup_line};
pub use stats::{PointStats, Stats, WAIT_BUCKETS_MS, WaitHistogram};
#[cfg(feature = "tls")]
pub use store::TlsCerts;
pub use store::{
    CLAIM_CHUNK, Claim, Claimed, Connector, EXISTS_CHUNK, Fault, Gate, MemoryStore, Op,
    RedisConnector, RedisStore, RedisUrlError, Store, StoreError, StoreErrorKind, StreamEntry,
    StreamSpec,
};
#[cfg(feature = "cluster")]
pub use store::{RedisClusterConnector, RedisClusterStore};

// Compiles the README's Rust examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The `log` target of every line this crate logs.
pub const LOG_TARGET: &str = "heat_observer";
