//! Mode `keyspace`: what detection by keyspace notifications would cost,
//! measured before it is built (issue #30). The driver of mode `oracle`,
//! told when each key was written by Redis instead of by the bridge: one
//! `PSUBSCRIBE __keyspace@0__:<heat prefix>*` per process (every process
//! hears every process's keys, as in production), a `set` names a plan
//! whose key was written, and that plan is handed over for one look, as
//! the oracle hands it; a plan no message names is looked at at its
//! deadline. The server's `notify-keyspace-events` is set to `K$` for it
//! (`processes` turns it off again after the mode), so every string write
//! of every client pays for a notification, listened to or not.
//!
//! Not the crate's detection: no loss of messages is handled (a broken
//! subscription ends the listener, and the plans it did not name are
//! looked at at their deadline). It answers what Redis and a process pay
//! for the messages, against the oracle, poll and push in the same run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::Sender;

fn fail(e: redis::RedisError) -> ! {
    crate::args::fail(&format!("keyspace listener: {e}"))
}

/// The subscriber of one process.
pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Listener {
    /// Turns notifications on at `url`, subscribes to the keys under
    /// `heat_prefix`, and sends on `tell` the index of each plan of this
    /// process (plan ids `<plan_prefix>p<i>`) whose key was set. Returns
    /// once subscribed, so no write of the run goes unheard.
    pub fn start(url: &str, heat_prefix: &str, plan_prefix: &str, tell: Sender<usize>) -> Listener {
        let client = redis::Client::open(url).unwrap_or_else(|e| fail(e));
        let mut admin = client.get_connection().unwrap_or_else(|e| fail(e));
        redis::cmd("CONFIG")
            .arg("SET")
            .arg("notify-keyspace-events")
            .arg("K$")
            .exec(&mut admin)
            .unwrap_or_else(|e| fail(e));
        let mut con = client.get_connection().unwrap_or_else(|e| fail(e));
        // Short, so that a stop is seen soon.
        con.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap_or_else(|e| fail(e));
        let channel_prefix = format!("__keyspace@0__:{heat_prefix}");
        let mine = format!("{channel_prefix}{plan_prefix}p");
        let pattern = format!("{channel_prefix}*");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let (subscribed, ready) = crossbeam_channel::bounded(1);
        // Named as the workers are: its CPU is detection's, counted with
        // theirs. It subscribes on its own thread: redis-rs unsubscribes
        // when the `PubSub` that subscribed is dropped.
        let thread = thread::Builder::new()
            .name("heat-observer-keyspace".into())
            .spawn(move || {
                let mut pubsub = con.as_pubsub();
                pubsub.psubscribe(&pattern).unwrap_or_else(|e| fail(e));
                let _ = subscribed.send(());
                listen(pubsub, &mine, &tell, &stopped);
            })
            .expect("spawn the keyspace listener");
        if ready.recv_timeout(Duration::from_secs(5)).is_err() {
            crate::args::fail("keyspace listener: not subscribed within 5 s");
        }
        Listener {
            stop,
            thread: Some(thread),
        }
    }
}

fn listen(mut pubsub: redis::PubSub<'_>, mine: &str, tell: &Sender<usize>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let msg = match pubsub.get_message() {
            Ok(msg) => msg,
            Err(e) if e.is_timeout() => continue,
            Err(e) => {
                eprintln!("keyspace listener: {e}; the rest is looked at at its deadline");
                return;
            }
        };
        let Ok(event) = msg.get_payload::<String>() else {
            continue;
        };
        let plan = msg
            .get_channel_name()
            .strip_prefix(mine)
            .and_then(|i| i.parse::<usize>().ok());
        if let (Some(plan), "set") = (plan, event.as_str())
            && tell.send(plan).is_err()
        {
            return;
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
