//! heat-observer's laboratory, never published: the simulated HeatGate and
//! HeatBridge, the pipeline run (the runbook's timeline with its coverage),
//! the chaos schedules on one server and on a cluster, the audit of every
//! event against what happened, the coverage report, and the flags and
//! `/metrics` server its programs share. Its programs are the examples
//! `pipeline`, `bench`, `coverage` and `apply` (an instrumented service);
//! its tests hold the crate's figures against real servers.

// A laboratory: its items are documented where a reader needs it, not
// each one.
#![allow(missing_docs)]

pub mod args;
pub mod audit;
pub mod chaos;
#[cfg(feature = "cluster")]
pub mod cluster_faults;
pub mod histogram;
pub mod metrics_http;
pub mod pipeline;
pub mod report;
pub mod sim;
pub mod target;

#[cfg(feature = "cluster")]
pub use heat_observer_testkit::cluster;
pub use heat_observer_testkit::server;
pub use heat_observer_testkit::{PATIENCE, ms, promtool, wait_until};

use heat_observer::{ObserverHandle, Stats};

/// Waits until the observer's stats satisfy `cond` and returns them.
pub fn wait_stats(
    observer: &ObserverHandle,
    what: &str,
    cond: impl FnMut(&Stats) -> bool,
) -> Stats {
    heat_observer_testkit::wait_for(what, || observer.stats(), cond)
}
