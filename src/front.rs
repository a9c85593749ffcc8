//! [`Shared`]: what the callers, the owner and the workers share, and its
//! one lifecycle, the door: open, closed (a stop was asked, with its mode:
//! calls are refused and the workers wake to stop), stopped (the workers
//! are gone). The [`Front`] is all an accepted observe call touches outside
//! the channel, on one cache line; the [`Ledger`] counts everything else.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, bounded};

use crate::config::Config;
use crate::core::StopMode;
use crate::job::Job;
use crate::ledger::{Ledger, Mode};
use crate::refusal::Refused;
use crate::stats::Stats;

pub(crate) const OPEN: u8 = 0;
pub(crate) const CLOSED: u8 = 1;
/// A job sent by a call that passed the door just before it closed is then
/// counted as abandoned by its caller, so none is left in the queue
/// uncounted.
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
    pub(crate) config: Config,
    /// Kept so that jobs still queued at the stop are counted as abandoned.
    pub(crate) rx: Option<Receiver<Job>>,
    /// How a call is refused when nothing runs: disabled or config error.
    pub(crate) off: Refused,
    stop_mode: Mutex<Option<StopMode>>,
    /// Never sent on: dropped to wake every worker that waits.
    wake: Mutex<Option<Sender<()>>>,
    woken: Receiver<()>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        queue: Option<(Sender<Job>, Receiver<Job>)>,
        mode: Mode,
        off: Refused,
    ) -> Shared {
        let (tx, rx) = queue.unzip();
        let (wake, woken) = bounded(0);
        Shared {
            ledger: Ledger::new(&config, rx.clone(), mode),
            front: Front {
                tx,
                max_wait: config.max_wait(),
                late: mode.late,
                late_config_error: mode.config_error,
                door: AtomicU8::new(OPEN),
                accepted: AtomicU64::new(0),
            },
            config,
            rx,
            off,
            stop_mode: Mutex::new(None),
            wake: Mutex::new(Some(wake)),
            woken,
        }
    }

    /// Calls accepted so far.
    pub(crate) fn accepted(&self) -> u64 {
        self.front.accepted.load(Relaxed)
    }

    /// A snapshot of every counter and gauge.
    pub(crate) fn stats(&self) -> Stats {
        self.ledger.snapshot(self.accepted())
    }

    /// Closes the door and asks every worker to stop in `mode`, waking
    /// those that wait. The first close wins.
    pub(crate) fn close(&self, mode: StopMode) {
        let mut asked = self
            .stop_mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        asked.get_or_insert(mode);
        drop(asked);
        // Only ever forward: a close after the stop leaves it stopped.
        let _ = self
            .front
            .door
            .compare_exchange(OPEN, CLOSED, SeqCst, SeqCst);
        self.wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// How to stop, once the door is closed.
    pub(crate) fn stop_asked(&self) -> Option<StopMode> {
        if self.front.door.load(SeqCst) == OPEN {
            return None;
        }
        *self
            .stop_mode
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Disconnected once a stop is asked: a worker waits on it.
    pub(crate) fn woken(&self) -> &Receiver<()> {
        &self.woken
    }

    /// Counts what is left in the queue, with no worker to take it, as
    /// abandoned. Each job is received once, by whoever calls this first.
    pub(crate) fn abandon_queued(&self) {
        if let Some(rx) = &self.rx {
            let left = rx.try_iter().count() as u64;
            self.ledger.abandoned_in_queue(left);
        }
    }
}

#[cfg(test)]
mod tests;
