//! [`Shared`]: what the callers and the workers share. The [`Front`] is
//! all an accepted observe call touches outside the channel, on one cache
//! line; the [`Ledger`] counts everything else.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::Stats;
use crate::job::Job;
use crate::ledger::Ledger;

/// The door is open; closed (shutdown began: calls are refused); stopped
/// (the workers are gone: a job sent by a call that passed the door just
/// before it closed is counted as abandoned by its caller, so no job is
/// left in the queue uncounted).
pub(crate) const OPEN: u8 = 0;
pub(crate) const CLOSED: u8 = 1;
pub(crate) const STOPPED: u8 = 2;

/// Everything an accepted observe call reads or writes outside the channel,
/// on one cache line (a test pins its size): the call runs right after
/// publish, with cold caches, and pays for each line it touches.
#[repr(align(64))]
pub(crate) struct Front {
    /// `None` when nothing runs.
    pub(crate) tx: Option<Sender<Job>>,
    pub(crate) max_wait: Duration,
    /// Whether observations with a wait are taken (the late observer is on;
    /// off after a rollback, when only single looks run).
    pub(crate) late: bool,
    /// With `late` off: whether because a setting only the late look uses
    /// was invalid (refused as `config_error`, not `disabled`).
    pub(crate) late_config_error: bool,
    pub(crate) door: AtomicU8,
    pub(crate) accepted: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) front: Front,
    pub(crate) ledger: Ledger,
}

impl Shared {
    /// Calls accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.front.accepted.load(Relaxed)
    }

    /// A snapshot of every counter and gauge.
    pub(crate) fn stats(&self) -> Stats {
        self.ledger.snapshot(self.accepted())
    }
}

#[cfg(test)]
mod tests;
