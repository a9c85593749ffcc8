//! Mode `oracle`: the floor of what detection costs. Not a mode anyone
//! could deploy: its driver is told by the simulated bridge when each key
//! was written, and hands the crate's own observer one look per plan at
//! the right moment: right after the write for a key written by its
//! deadline, at the deadline for one that never came. The workers make
//! that look (`wait` zero, at point `publish_plan_post`) and the claim and
//! append, batched as they batch them. The driver hands plans over at most
//! every 2 ms (push confirms messages in looks at least that far apart), so
//! that plans ready together share one look: handed one by one, an idle
//! worker wakes and looks for each. Every other mode's Redis and worker CPU
//! per plan is read against it, in the same run.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select_biased, unbounded};
use heat_observer::{LateObserver, ObsPoint, ObserverHandle};

pub struct Oracle {
    observer: LateObserver,
    expect: Option<Sender<(usize, String, Instant)>>,
    /// Plans expected and not yet handed to the observer.
    pending: Arc<AtomicUsize>,
    driver: Option<JoinHandle<()>>,
}

impl Oracle {
    /// Drives `observer` from `written`, the index of each plan whose key
    /// the bridge has just written.
    pub fn start(observer: LateObserver, written: Receiver<usize>) -> Oracle {
        let (tx, rx) = unbounded();
        let pending = Arc::new(AtomicUsize::new(0));
        let handle = observer.handle();
        let left = Arc::clone(&pending);
        // Not named `heat-observer-*`: what it knows, it knows for free,
        // and its CPU is not counted as the workers'.
        let driver = thread::Builder::new()
            .name("oracle-driver".into())
            .spawn(move || drive(&handle, &rx, &written, &left))
            .expect("spawn the oracle's driver");
        Oracle {
            observer,
            expect: Some(tx),
            pending,
            driver: Some(driver),
        }
    }

    /// Plan `index` (`plan`) was published; its deadline is `deadline`.
    pub fn expect(&self, index: usize, plan: &str, deadline: Instant) -> bool {
        self.pending.fetch_add(1, Ordering::Relaxed);
        self.expect
            .as_ref()
            .is_some_and(|tx| tx.send((index, plan.to_owned(), deadline)).is_ok())
    }

    /// Whether every plan expected was handed to the observer.
    pub fn handed(&self) -> bool {
        self.pending.load(Ordering::Relaxed) == 0
    }

    pub fn observer(&self) -> &LateObserver {
        &self.observer
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        self.expect = None;
        if let Some(driver) = self.driver.take() {
            let _ = driver.join();
        }
    }
}

/// Plans ready are handed over at most this often.
const HAND_EVERY: Duration = Duration::from_millis(2);

/// Where a plan stands with the driver.
#[derive(Clone, Copy, PartialEq)]
enum State {
    Unknown,
    Waiting,
    Handed,
    /// Its key came before the plan was expected.
    WrittenFirst,
}

fn drive(
    observer: &ObserverHandle,
    expect: &Receiver<(usize, String, Instant)>,
    written: &Receiver<usize>,
    pending: &AtomicUsize,
) {
    let mut states: Vec<State> = Vec::new();
    let mut plans: Vec<String> = Vec::new();
    let mut deadlines: BinaryHeap<Reverse<(Instant, usize)>> = BinaryHeap::new();
    let grow = |states: &mut Vec<State>, plans: &mut Vec<String>, i: usize| {
        if states.len() <= i {
            states.resize(i + 1, State::Unknown);
            plans.resize(i + 1, String::new());
        }
    };
    // Plans whose moment has come, handed over together.
    let mut ready: Vec<String> = Vec::new();
    let mut handed_at = Instant::now();
    let (mut expecting, mut writing) = (true, true);
    while expecting || pending.load(Ordering::Relaxed) > 0 {
        let now = Instant::now();
        if !ready.is_empty() && now >= handed_at + HAND_EVERY {
            for plan in ready.drain(..) {
                let _ = observer.observe(
                    ObsPoint::PUBLISH_PLAN_POST,
                    &plan,
                    "BTCUSDT",
                    Duration::ZERO,
                );
                pending.fetch_sub(1, Ordering::Relaxed);
            }
            handed_at = now;
        }
        while let Some(&Reverse((at, i))) = deadlines.peek() {
            if at > now {
                break;
            }
            deadlines.pop();
            if states[i] == State::Waiting {
                states[i] = State::Handed;
                ready.push(std::mem::take(&mut plans[i]));
            }
        }
        let mut wake = deadlines
            .peek()
            .map_or(now + Duration::from_millis(50), |r| r.0.0);
        if !ready.is_empty() {
            wake = wake.min(handed_at + HAND_EVERY);
        }
        let (no_expect, no_write) = (crossbeam_channel::never(), crossbeam_channel::never());
        select_biased! {
            recv(if expecting { expect } else { &no_expect }) -> got => match got {
                Ok((i, plan, deadline)) => {
                    grow(&mut states, &mut plans, i);
                    if states[i] == State::WrittenFirst {
                        states[i] = State::Handed;
                        ready.push(plan);
                    } else {
                        states[i] = State::Waiting;
                        plans[i] = plan;
                        deadlines.push(Reverse((deadline, i)));
                    }
                }
                Err(_) => expecting = false,
            },
            recv(if writing { written } else { &no_write }) -> got => match got {
                Ok(i) => {
                    grow(&mut states, &mut plans, i);
                    match states[i] {
                        State::Waiting => {
                            states[i] = State::Handed;
                            ready.push(std::mem::take(&mut plans[i]));
                        }
                        State::Unknown => states[i] = State::WrittenFirst,
                        // Written after its deadline: looked at already.
                        State::Handed | State::WrittenFirst => {}
                    }
                }
                Err(_) => writing = false,
            },
            default(wake.saturating_duration_since(Instant::now())) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use heat_observer::{Config, MemoryStore};

    #[test]
    fn each_plan_is_looked_at_once_when_its_key_comes_or_at_its_deadline() {
        let store = MemoryStore::new();
        let config = Config::builder().build().expect("config");
        let observer = LateObserver::start(config.clone(), store.clone()).expect("start");
        let (tell, told) = unbounded();
        let oracle = Oracle::start(observer, told);
        let now = Instant::now();
        let far = now + Duration::from_secs(60);
        // A key written before its plan is expected, one after, and one
        // that never comes (its deadline now).
        store.insert_key(config.heat_key("first"));
        tell.send(0).unwrap();
        assert!(oracle.expect(0, "first", far));
        assert!(oracle.expect(1, "then", far));
        assert!(oracle.expect(2, "never", now));
        store.insert_key(config.heat_key("then"));
        tell.send(1).unwrap();
        let settled = |o: &Oracle| {
            let s = o.observer().stats();
            o.handed() && s.found + s.not_found == 3
        };
        let give_up = Instant::now() + Duration::from_secs(10);
        while !settled(&oracle) {
            assert!(Instant::now() < give_up, "{:?}", oracle.observer().stats());
            thread::sleep(Duration::from_millis(1));
        }
        let stats = oracle.observer().stats();
        assert_eq!((stats.found, stats.not_found), (2, 1));
        // One look each, no wait, at the late point.
        assert_eq!(stats.keys_checked, 3);
        let events = store.entries(config.stream());
        assert_eq!(events.len(), 3);
        for event in &events {
            assert_eq!(event.field("obs_point"), Some("publish_plan_post"));
            assert_eq!(event.field("max_wait_ms"), Some("0"));
        }
    }
}
