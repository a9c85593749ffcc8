//! [`Pool`]: the worker threads, and a bounded wait for their end. It knows
//! its threads and a deadline, nothing else: how they are asked to stop is
//! the [`Shared`](crate::front::Shared) door's business.

use std::io;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, unbounded};

pub(crate) struct Pool {
    handles: Vec<Option<JoinHandle<()>>>,
    /// Each thread sends its index here as it ends, even by unwinding.
    done: Receiver<usize>,
    done_tx: Sender<usize>,
}

impl Pool {
    pub(crate) fn new() -> Self {
        let (done_tx, done) = unbounded();
        Pool {
            handles: Vec::new(),
            done,
            done_tx,
        }
    }

    /// Spawns thread `name` running `body`.
    pub(crate) fn spawn(
        &mut self,
        name: String,
        stack_size: Option<usize>,
        body: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        struct Done(Sender<usize>, usize);
        impl Drop for Done {
            fn drop(&mut self) {
                let _ = self.0.send(self.1);
            }
        }
        let done = Done(self.done_tx.clone(), self.handles.len());
        let mut builder = thread::Builder::new().name(name);
        if let Some(bytes) = stack_size {
            builder = builder.stack_size(bytes);
        }
        let handle = builder.spawn(move || {
            let _done = done;
            body();
        })?;
        self.handles.push(Some(handle));
        Ok(())
    }

    /// Waits for the threads to end until `deadline` (`None`: for ever),
    /// joins those that did and detaches the rest. Returns (ended, still
    /// running).
    pub(crate) fn join(&mut self, deadline: Option<Instant>) -> (usize, usize) {
        let mut ended = 0;
        while ended < self.handles.len() {
            let next = match deadline {
                Some(d) => self.done.recv_deadline(d).ok(),
                None => self.done.recv().ok(),
            };
            let Some(index) = next else { break };
            // It said "done" on its way out, so this join is short.
            if let Some(handle) = self.handles.get_mut(index).and_then(Option::take) {
                let _ = handle.join();
            }
            ended += 1;
        }
        (ended, self.handles.len() - ended)
    }
}
