//! Mode `channel-floor`: what the observe call would cost if it were a bare
//! bounded crossbeam channel and nothing else. Same capacity as the
//! observer's queue, the same 120-byte job (holding the plan id), drained
//! by as many threads as there are workers, at the workers' intake cadence
//! (every 10 ms, never parked on the channel, as a worker holding jobs is
//! not). The observe/floor ratio is what the observer adds, measured on the
//! CPU at hand, in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Sender, TrySendError, bounded};

/// The size of the observer's job.
const JOB: usize = 120;

pub struct Floor {
    tx: Sender<[u8; JOB]>,
    stop: Arc<AtomicBool>,
    drained: Arc<AtomicU64>,
    sent: AtomicU64,
    dropped: AtomicU64,
    drainers: Vec<JoinHandle<()>>,
}

impl Floor {
    pub fn start(capacity: usize, drainers: usize) -> Floor {
        let (tx, rx) = bounded::<[u8; JOB]>(capacity);
        let stop = Arc::new(AtomicBool::new(false));
        let drained = Arc::new(AtomicU64::new(0));
        let drainers = (0..drainers)
            .map(|i| {
                let (rx, stop, drained) = (rx.clone(), Arc::clone(&stop), Arc::clone(&drained));
                thread::Builder::new()
                    .name(format!("floor-drain-{i}"))
                    .spawn(move || {
                        while !stop.load(Ordering::Relaxed) {
                            thread::sleep(Duration::from_millis(10));
                            let mut n = 0;
                            for job in rx.try_iter() {
                                std::hint::black_box(job);
                                n += 1;
                            }
                            drained.fetch_add(n as u64, Ordering::Relaxed);
                        }
                    })
                    .expect("spawn a floor drainer")
            })
            .collect();
        Floor {
            tx,
            stop,
            drained,
            sent: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            drainers,
        }
    }

    /// The floor's "observe": one `try_send` of a job holding the plan id.
    #[inline(never)]
    pub fn observe(&self, plan: &str) -> bool {
        let mut job = [0u8; JOB];
        let n = plan.len().min(JOB);
        job[..n].copy_from_slice(&plan.as_bytes()[..n]);
        match self.tx.try_send(job) {
            Ok(()) => {
                self.sent.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    pub fn settled(&self) -> bool {
        self.drained.load(Ordering::Relaxed) >= self.sent.load(Ordering::Relaxed)
    }

    pub fn outcomes(&self) -> Vec<(&'static str, u64)> {
        let sent = self.sent.load(Ordering::Relaxed);
        let drained = self.drained.load(Ordering::Relaxed);
        vec![
            ("drained", drained),
            ("queued", sent - drained.min(sent)),
            ("refused_queue_full", self.dropped.load(Ordering::Relaxed)),
        ]
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for d in self.drainers.drain(..) {
            let _ = d.join();
        }
    }
}
