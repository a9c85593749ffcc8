//! [`StopSignal`]: how the workers are asked to stop, in one place. The
//! observer asks once, with a mode; each worker's loop reads it at every
//! wake-up, and asking closes a channel that wakes every worker that waits.

use std::sync::atomic::{AtomicBool, Ordering::Acquire, Ordering::Release};
use std::sync::{Mutex, PoisonError};

use crossbeam_channel::{Receiver, Sender, bounded};

pub(crate) use crate::core::StopMode;

pub(crate) struct StopSignal {
    asked: AtomicBool,
    mode: Mutex<Option<StopMode>>,
    /// Never sent on: dropped to wake every worker.
    wake: Mutex<Option<Sender<()>>>,
    woken: Receiver<()>,
}

impl StopSignal {
    pub(crate) fn new() -> Self {
        let (wake, woken) = bounded(0);
        Self {
            asked: AtomicBool::new(false),
            mode: Mutex::new(None),
            wake: Mutex::new(Some(wake)),
            woken,
        }
    }

    /// Asks every worker to stop in `mode` and wakes those that wait. The
    /// first ask wins.
    pub(crate) fn ask(&self, mode: StopMode) {
        let mut asked = self.mode.lock().unwrap_or_else(PoisonError::into_inner);
        if asked.is_none() {
            *asked = Some(mode);
        }
        drop(asked);
        self.asked.store(true, Release);
        self.wake
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
    }

    /// How to stop, once asked.
    pub(crate) fn asked(&self) -> Option<StopMode> {
        if !self.asked.load(Acquire) {
            return None;
        }
        *self.mode.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Disconnected once a stop is asked: a worker waits on it.
    pub(crate) fn woken(&self) -> &Receiver<()> {
        &self.woken
    }
}

#[cfg(test)]
mod tests;
