//! [`Pool`]: the worker threads and how they stop. It knows its threads,
//! a stop signal and a deadline, nothing of the observer around it:
//! [`Pool::stop`] asks the workers to stop (draining or not), waits for each
//! one's "done" until the deadline, joins those that finished and detaches
//! the rest.

use std::io;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

use crate::shared::{Shared, StopMode};

pub(crate) struct Pool {
    shared: std::sync::Arc<Shared>,
    /// Never sent on: dropping it wakes every worker.
    stop: Option<Sender<()>>,
    handles: Vec<Option<JoinHandle<()>>>,
    /// Each worker sends its index here as it exits.
    done: Receiver<usize>,
    done_tx: Sender<usize>,
    stop_rx: Receiver<()>,
}

/// What a worker thread gets from the pool: the stop signal and where to
/// report its end.
pub(crate) struct Signals {
    pub(crate) stop: Receiver<()>,
    pub(crate) done: Sender<usize>,
}

impl Pool {
    pub(crate) fn new(shared: std::sync::Arc<Shared>) -> Self {
        let (stop, stop_rx) = bounded(0);
        let (done_tx, done) = unbounded();
        Pool {
            shared,
            stop: Some(stop),
            handles: Vec::new(),
            done,
            done_tx,
            stop_rx,
        }
    }

    /// Spawns thread `name` running `body`. Counted as a worker before the
    /// spawn, so stats are right as soon as start returns.
    pub(crate) fn spawn(
        &mut self,
        name: String,
        stack_size: Option<usize>,
        body: impl FnOnce(Signals) + Send + 'static,
    ) -> io::Result<()> {
        let signals = Signals {
            stop: self.stop_rx.clone(),
            done: self.done_tx.clone(),
        };
        let mut builder = thread::Builder::new().name(name);
        if let Some(bytes) = stack_size {
            builder = builder.stack_size(bytes);
        }
        self.shared.counters.worker_started();
        match builder.spawn(move || body(signals)) {
            Ok(handle) => {
                self.handles.push(Some(handle));
                Ok(())
            }
            Err(e) => {
                self.shared.counters.worker_stopped();
                Err(e)
            }
        }
    }

    /// Asks the workers to stop in `mode` and waits for them until
    /// `deadline` (`None`: for ever). Returns (stopped, still running).
    pub(crate) fn stop(&mut self, mode: StopMode, deadline: Option<Instant>) -> (usize, usize) {
        self.shared.request_stop(mode);
        self.stop = None;
        let mut stopped = 0;
        while stopped < self.handles.len() {
            let next = match deadline {
                Some(d) => self.done.recv_deadline(d).ok(),
                None => self.done.recv().ok(),
            };
            let Some(index) = next else { break };
            // It sent "done" from its last statement, so this join is short.
            if let Some(handle) = self.handles.get_mut(index).and_then(Option::take) {
                let _ = handle.join();
            }
            stopped += 1;
        }
        (stopped, self.handles.len() - stopped)
    }
}
