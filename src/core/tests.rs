//! The core's timing rules, each driven by instants: no thread, no sleep,
//! no store. `Sim` plays the loop: it feeds queued jobs when asked to take,
//! answers looks and writes as told, and keeps the outcomes.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::*;
use crate::config::ConfigBuilder;
use crate::store::{StoreError, StoreErrorKind};

const KEY: &str = "quantum:harvest:heat:by_plan:";

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config() -> ConfigBuilder {
    Config::builder().max_wait(ms(1000)).poll(ms(100))
}

fn push() -> ConfigBuilder {
    config().detect(Detect::Push)
}

fn store_error(kind: StoreErrorKind) -> CallError {
    CallError::Store(StoreError::new(kind, "injected"))
}

struct Sim {
    core: Core,
    t0: Instant,
    queue: VecDeque<Job>,
    outcomes: Vec<Outcome>,
    /// Whether the last look answered registered interest in its keys.
    last_look_watched: bool,
    /// When the last write was made.
    last_write_at: u64,
}

impl Sim {
    fn new(config: ConfigBuilder) -> Sim {
        let t0 = Instant::now();
        let config = config.build().unwrap();
        let mut sim = Sim {
            core: Core::new(&config, 0, "o", t0),
            t0,
            queue: VecDeque::new(),
            outcomes: Vec::new(),
            last_look_watched: false,
            last_write_at: 0,
        };
        sim.core.set_follow(true);
        sim
    }

    /// A push core, subscribed at 0 ms.
    fn pushing(config: ConfigBuilder) -> Sim {
        let mut sim = Sim::new(config);
        assert_eq!(sim.action(0), Action::Subscribe);
        sim.core.handle_subscribed(Ok(true), sim.at(0));
        sim
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn now(&self, ms: u64) -> Now {
        Now {
            at: self.at(ms),
            unix: Duration::from_millis(1_000_000 + ms),
        }
    }

    /// An observe call at `at_ms`, queued.
    fn observe(&mut self, plan: &str, wait_ms: u64, at_ms: u64) {
        let job = Job::new(
            ObsPoint::PUBLISH_PLAN_POST,
            plan,
            "S",
            ms(wait_ms),
            self.at(at_ms),
        );
        self.queue.push_back(job);
    }

    /// The next action at `ms`, taking queued jobs when asked to.
    fn action(&mut self, ms: u64) -> Action {
        loop {
            let action = self.core.poll_action(self.at(ms));
            self.collect();
            match action {
                Action::Take { up_to } => {
                    let n = up_to.min(self.queue.len());
                    let jobs: Vec<Job> = self.queue.drain(..n).collect();
                    self.core.handle_taken(jobs, up_to, self.at(ms));
                    self.collect();
                }
                other => return other,
            }
        }
    }

    /// Expects a look at `ms` and answers it: `found` per key. Returns the
    /// plans looked at.
    fn look(&mut self, ms: u64, found: &[&str]) -> Vec<String> {
        self.look_answered(ms, ms, found)
    }

    /// [`Sim::look`], the look sent at `ms` and answered at `answer_ms`.
    fn look_answered(&mut self, ms: u64, answer_ms: u64, found: &[&str]) -> Vec<String> {
        self.look_seen(ms, answer_ms, None, found)
    }

    /// [`Sim::look_answered`], the server's clock saying it looked by
    /// `seen_ms`.
    fn look_seen(
        &mut self,
        ms: u64,
        answer_ms: u64,
        seen_ms: Option<u64>,
        found: &[&str],
    ) -> Vec<String> {
        let action = self.action(ms);
        if let Action::Wait { until, .. } = action {
            panic!("a look at {ms} ms, not a wait until {:?}", until - self.t0);
        }
        assert!(
            matches!(action, Action::Look { .. }),
            "a look at {ms} ms: {action:?}"
        );
        self.last_look_watched = action == Action::Look { watch: true };
        let keys: Vec<String> = self
            .core
            .look_keys()
            .iter()
            .map(|k| k.to_string())
            .collect();
        let answer = Answers {
            found: keys
                .iter()
                .map(|k| Some(found.contains(&k.trim_start_matches(KEY))))
                .collect(),
            failed: None,
            looked_by: vec![seen_ms.map(|ms| self.t0 + Duration::from_millis(ms)); keys.len()],
        };
        self.core.handle_looked(Ok(answer), self.now(answer_ms));
        self.collect();
        keys.iter()
            .map(|k| k.trim_start_matches(KEY).to_owned())
            .collect()
    }

    /// Expects a look at `ms` and fails it with `error`.
    fn fail_look(&mut self, ms: u64, error: CallError) -> usize {
        let action = self.action(ms);
        assert!(
            matches!(action, Action::Look { .. }),
            "a look at {ms} ms: {action:?}"
        );
        let n = self.core.look_keys().len();
        self.core.handle_looked(Err(error), self.now(ms));
        self.collect();
        n
    }

    /// Expects a write at `ms` and answers it; returns the plans written.
    /// Expects a write at `ms`, or within the write batch after it (the
    /// loop waking for intake meanwhile), and answers it.
    fn write(&mut self, ms: u64, answer: Result<(), CallError>) -> Vec<String> {
        let mut at = ms;
        let mut action = self.action(at);
        while let Action::Wait { until, .. } = action {
            let next = u64::try_from((until - self.t0).as_millis()).unwrap();
            assert!(
                next <= ms + WRITE_BATCH.as_millis() as u64,
                "a write at {ms} ms, not a wait until {next} ms"
            );
            at = next;
            action = self.action(at);
        }
        assert_eq!(action, Action::Write, "a write at {ms} ms");
        let ms = at;
        self.last_write_at = at;
        let plans: Vec<String> = self
            .core
            .claims()
            .iter()
            .map(|c| c.event.plan_id.clone())
            .collect();
        let answer = answer.map(|()| vec![Claimed::Appended; plans.len()]);
        self.core.handle_written(answer, self.at(ms));
        self.collect();
        plans
    }

    /// When the core next wants to act, as seen at `ms`.
    fn waits_until(&mut self, ms: u64) -> (u64, WaitOn) {
        match self.action(ms) {
            Action::Wait { until, on } => (
                u64::try_from(until.duration_since(self.t0).as_millis()).unwrap(),
                on,
            ),
            other => panic!("expected a wait at {ms} ms, got {other:?}"),
        }
    }

    fn collect(&mut self) {
        self.outcomes.extend(self.core.drain_outcomes());
    }

    /// The events recorded or decided so far: (plan, found, wait_ms, by).
    fn decided(&self) -> Vec<(String, bool, u64, Detect, bool)> {
        self.outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Decided {
                    plan: Some(plan),
                    found,
                    wait_ms,
                    by,
                    late,
                    ..
                } => Some((plan.to_string(), *found, *wait_ms, *by, *late)),
                _ => None,
            })
            .collect()
    }

    fn lost(&self, want: Loss) -> u64 {
        self.outcomes
            .iter()
            .map(|o| match o {
                Outcome::Lost { loss, jobs, .. } if *loss == want => *jobs,
                _ => 0,
            })
            .sum()
    }
}

// ---- polling --------------------------------------------------------------

#[test]
fn a_key_found_is_found_as_of_the_answer_and_one_missing_as_of_the_call() {
    let mut sim = Sim::new(config());
    sim.observe("found", 1000, 0);
    sim.observe("missing", 30, 0);
    assert!(matches!(sim.action(30), Action::Look { .. }));
    // The server looked somewhere between 30 and 45 ms: the key may have
    // been written after 30.
    let answer = Answers {
        found: vec![Some(true), Some(false)],
        failed: None,
        looked_by: Vec::new(),
    };
    sim.core.handle_looked(Ok(answer), sim.now(45));
    sim.collect();
    assert_eq!(
        sim.decided(),
        [
            ("found".into(), true, 45, Detect::Poll, false),
            ("missing".into(), false, 30, Detect::Poll, false)
        ]
    );
}

#[test]
fn the_first_job_is_looked_at_at_once_then_every_poll() {
    let mut sim = Sim::new(config());
    sim.observe("a", 1000, 0);
    assert_eq!(sim.look(0, &[]), ["a"]);
    assert_eq!(
        sim.waits_until(0),
        (10, WaitOn::Timer),
        "intake within 10 ms"
    );
    assert_eq!(sim.waits_until(10), (20, WaitOn::Timer));
    assert_eq!(
        sim.action(99),
        Action::Wait {
            until: sim.at(100),
            on: WaitOn::Timer
        }
    );
    assert_eq!(sim.look(100, &[]), ["a"]);
    assert_eq!(sim.look(200, &["a"]), ["a"]);
    assert_eq!(
        sim.decided(),
        [("a".into(), true, 200, Detect::Poll, false)]
    );
}

#[test]
fn ticks_never_come_closer_than_the_spacing_after_a_late_look() {
    let mut sim = Sim::new(config().poll(ms(5)).max_wait(ms(100)));
    sim.observe("a", 100, 0);
    sim.look(0, &[]);
    // The loop came back late (the store was slow): the next tick is not
    // squeezed in right after the one it missed, but spacing after it.
    sim.look(40, &[]);
    assert_eq!(sim.waits_until(40).0, 45, "the poll is the spacing here");
    let mut sim = Sim::new(config().poll(ms(100)));
    sim.observe("a", 1000, 0);
    sim.look(0, &[]);
    // Behind its schedule, it looks again a spacing later, then resumes the
    // poll from there.
    sim.look(250, &[]);
    assert_eq!(sim.waits_until(250).0, 260);
    sim.look(260, &[]);
    assert_eq!(sim.waits_until(350).0, 360);
}

#[test]
fn deadline_looks_within_the_spacing_share_one_call() {
    let mut sim = Sim::new(config().poll(ms(1000)).max_wait(ms(1000)));
    sim.observe("a", 300, 0);
    sim.observe("b", 303, 0);
    sim.observe("c", 600, 0);
    sim.observe("d", 309, 0);
    assert_eq!(sim.look(0, &[]).len(), 4);
    // Polling, a deadline is looked at two spacings (20 ms) before it: a
    // (deadline 300) at 280; b and d (303 and 309) share the look a
    // spacing later, which still comes a spacing before their deadlines.
    assert_eq!(sim.waits_until(270).0, 280);
    assert_eq!(sim.look(280, &[]), ["a"]);
    assert_eq!(sim.waits_until(280).0, 290);
    assert_eq!(sim.look(290, &["d"]), ["b", "d"]);
    assert_eq!(sim.write(300, Ok(())), ["a", "b", "d"], "written together");
    let decided = sim.decided();
    assert_eq!(decided[0], ("a".into(), false, 280, Detect::Poll, false));
    assert_eq!(decided[1], ("b".into(), false, 290, Detect::Poll, false));
    assert_eq!(decided[2], ("d".into(), true, 290, Detect::Poll, false));
}

#[test]
fn a_key_never_written_is_decided_not_found_by_the_look_at_its_deadline() {
    let mut sim = Sim::new(config().max_wait(ms(250)));
    sim.observe("a", 250, 0);
    sim.look(0, &[]);
    sim.look(100, &[]);
    sim.look(200, &[]);
    assert_eq!(sim.waits_until(200).0, 210, "intake");
    assert_eq!(
        sim.waits_until(220).0,
        230,
        "two spacings before the deadline, before the tick"
    );
    sim.look(230, &[]);
    assert_eq!(
        sim.decided(),
        [("a".into(), false, 230, Detect::Poll, false)]
    );
    assert_eq!(sim.write(260, Ok(())), ["a"]);
}

#[test]
fn a_busy_worker_takes_jobs_every_10_ms_up_to_its_limit() {
    let mut sim = Sim::new(config().max_in_flight(3));
    for i in 0..5 {
        sim.observe(&format!("p{i}"), 1000, 0);
    }
    assert_eq!(sim.look(0, &[]).len(), 3, "room for three");
    assert_eq!(sim.queue.len(), 2);
    assert_eq!(
        sim.waits_until(5),
        (100, WaitOn::Timer),
        "full: no intake wake"
    );
    sim.look(100, &["p0"]);
    sim.write(100, Ok(()));
    // Room for one: taken at once (its 10 ms have passed), looked at by
    // the next tick, not sooner.
    assert_eq!(sim.waits_until(100), (200, WaitOn::Timer));
    assert_eq!(sim.queue.len(), 1);
    let mut looked = sim.look(200, &[]);
    looked.sort();
    assert_eq!(looked, ["p1", "p2", "p3"]);
}

#[test]
fn an_idle_worker_waits_on_the_queue_and_says_it_is_idle_once() {
    let mut sim = Sim::new(config());
    assert_eq!(sim.waits_until(0), (1000, WaitOn::Queue));
    assert_eq!(sim.waits_until(5), (1005, WaitOn::Queue));
    let idle = sim
        .outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Idle))
        .count();
    assert_eq!(idle, 1);
}

// ---- writes ---------------------------------------------------------------

#[test]
fn a_failed_write_backs_off_from_the_poll_doubling_to_a_second() {
    let mut sim = Sim::new(config().poll(ms(100)).retry_window(ms(60_000)));
    sim.observe("a", 1000, 0);
    sim.look(0, &["a"]);
    sim.write(0, Err(store_error(StoreErrorKind::Timeout)));
    assert_eq!(sim.last_write_at, 20, "the write batch");
    let mut at = sim.last_write_at;
    let mut pauses = Vec::new();
    for _ in 0..5 {
        let next = sim.core.write_due().duration_since(sim.t0).as_millis() as u64;
        assert_eq!(sim.waits_until(next - 1).0, next, "it wakes for the retry");
        sim.write(next, Err(store_error(StoreErrorKind::Timeout)));
        pauses.push(next - at);
        at = next;
    }
    assert_eq!(pauses, [100, 200, 400, 800, 1000]);
    let next = sim.core.write_due().duration_since(sim.t0).as_millis() as u64;
    assert_eq!(next - at, 1000);
    assert_eq!(sim.write(next, Ok(())), ["a"]);
    sim.observe("b", 1000, next);
    sim.look(next + 10, &["b"]);
    sim.write(next + 10, Err(store_error(StoreErrorKind::Timeout)));
    let retry = sim.core.write_due().duration_since(sim.t0).as_millis() as u64;
    assert_eq!(retry - sim.last_write_at, 100, "backoff reset");
}

#[test]
fn a_write_failing_past_the_retry_window_ends_as_failed() {
    let mut sim = Sim::new(config().poll(ms(100)).retry_window(ms(250)));
    sim.observe("a", 1000, 0);
    sim.look(0, &["a"]);
    sim.write(0, Err(store_error(StoreErrorKind::Timeout)));
    sim.write(100, Err(store_error(StoreErrorKind::Timeout)));
    assert_eq!(sim.lost(Loss::Failed), 0, "decided 100 ms ago: kept");
    sim.write(300, Err(store_error(StoreErrorKind::Timeout)));
    assert_eq!(sim.lost(Loss::Failed), 1, "decided 300 ms ago: past 250");
    assert_eq!(sim.core.held(), 0);
}

#[test]
fn a_panicked_write_loses_its_events_as_panicked() {
    let mut sim = Sim::new(config());
    sim.observe("a", 1000, 0);
    sim.observe("b", 1000, 0);
    sim.look(0, &["a", "b"]);
    sim.write(0, Err(CallError::Panicked));
    assert_eq!(sim.lost(Loss::Panicked), 2);
}

// ---- stopping -------------------------------------------------------------

#[test]
fn a_drain_takes_the_queue_watches_it_to_the_end_then_is_done() {
    let mut sim = Sim::new(config().max_in_flight(1).max_wait(ms(300)));
    sim.observe("a", 300, 0);
    sim.observe("b", 300, 0);
    sim.look(0, &[]);
    sim.core.handle_stop(StopMode::Drain {
        until: sim.at(5000),
    });
    // Draining, the in-flight limit no longer holds: b is taken too.
    assert_eq!(sim.look(100, &["b"]).len(), 2);
    sim.write(100, Ok(()));
    sim.look(200, &[]);
    sim.look(300, &[]);
    sim.write(300, Ok(()));
    assert_eq!(sim.action(300), Action::Done);
    assert_eq!(sim.lost(Loss::Abandoned), 0);
    assert_eq!(sim.decided().len(), 2);
}

#[test]
fn a_drain_that_runs_out_of_time_writes_once_more_and_abandons_the_rest() {
    let mut sim = Sim::new(config().retry_window(ms(60_000)));
    sim.observe("decided", 1000, 0);
    sim.observe("watched", 1000, 0);
    sim.look(0, &["decided"]);
    sim.write(0, Err(store_error(StoreErrorKind::Timeout)));
    sim.core.handle_stop(StopMode::Drain { until: sim.at(150) });
    sim.look(100, &[]);
    sim.write(100, Err(store_error(StoreErrorKind::Timeout)));
    assert_eq!(
        sim.waits_until(100).0,
        150,
        "the drain's deadline, before the backoff"
    );
    // At the deadline: the last write, backoff or not, then done.
    assert_eq!(sim.write(150, Ok(())), ["decided"]);
    assert_eq!(sim.action(150), Action::Done);
    assert_eq!(sim.lost(Loss::Abandoned), 1);
}

#[test]
fn a_stop_now_writes_what_is_decided_and_abandons_what_is_watched() {
    let mut sim = Sim::new(config());
    sim.observe("a", 1000, 0);
    sim.observe("b", 1000, 0);
    sim.look(0, &["a"]);
    sim.core.handle_stop(StopMode::Now);
    assert_eq!(
        sim.write(0, Err(store_error(StoreErrorKind::Timeout))),
        ["a"]
    );
    assert_eq!(sim.action(0), Action::Done);
    assert_eq!(
        sim.lost(Loss::Abandoned),
        2,
        "b, and a whose last write failed"
    );
}

// ---- push -----------------------------------------------------------------

#[test]
fn pushing_a_job_is_looked_at_when_taken_and_then_only_at_its_deadline() {
    let mut sim = Sim::pushing(push().max_wait(ms(300)));
    sim.observe("a", 300, 0);
    assert_eq!(sim.look(0, &[]), ["a"], "the intake look");
    assert!(sim.last_look_watched, "it registers interest in the key");
    assert_eq!(sim.waits_until(0), (10, WaitOn::Push));
    assert_eq!(
        sim.waits_until(200),
        (210, WaitOn::Push),
        "no tick, intake only"
    );
    // 5 ms ahead: the answer comes before the deadline, also after a
    // redirect or on a busy CPU.
    assert_eq!(sim.waits_until(290), (295, WaitOn::Push));
    sim.look(295, &[]);
    assert_eq!(
        sim.decided(),
        [("a".into(), false, 295, Detect::Poll, false)]
    );
}

#[test]
fn pushing_a_deadline_look_made_ahead_that_fails_is_made_again() {
    // Its deadline was taken off for the look: without being put back,
    // nothing would look at the job again (pushing, there is no tick).
    let mut sim = Sim::pushing(push().max_wait(ms(300)).retry_window(ms(500)));
    sim.observe("a", 300, 0);
    sim.look(0, &[]);
    assert_eq!(sim.fail_look(295, store_error(StoreErrorKind::Timeout)), 1);
    assert_eq!(sim.waits_until(295), (297, WaitOn::Push));
    assert_eq!(sim.look(297, &[]), ["a"]);
    assert_eq!(
        sim.decided(),
        [("a".into(), false, 297, Detect::Poll, false)]
    );
}

#[test]
fn pushing_each_deadline_is_looked_at_before_it_even_right_after_another_look() {
    // A deadline look delayed by the spacing (10 ms) after another look
    // would come after the deadline: a key written just after it would be
    // found late, and the observation fail. Pushing, deadline looks are
    // only a marked spacing (2 ms) apart, and each comes 5 ms ahead.
    let mut sim = Sim::pushing(push().max_wait(ms(1000)));
    sim.observe("a", 300, 0);
    sim.observe("b", 302, 0);
    sim.observe("c", 306, 0);
    sim.observe("d", 900, 0);
    sim.look(0, &[]);
    sim.core.handle_pushed(&[format!("{KEY}d")], sim.now(290));
    assert_eq!(sim.look(290, &["d"]), ["d"], "a message's look");
    assert_eq!(sim.waits_until(290), (295, WaitOn::Push), "not 300");
    assert_eq!(sim.look(295, &[]), ["a"]);
    assert_eq!(sim.waits_until(295), (297, WaitOn::Push));
    assert_eq!(sim.look(297, &["b"]), ["b"]);
    assert_eq!(sim.waits_until(297), (300, WaitOn::Push), "the intake");
    assert_eq!(sim.waits_until(300), (301, WaitOn::Push));
    assert_eq!(sim.look(301, &[]), ["c"]);
    let decided = sim.decided();
    assert_eq!(decided[1], ("a".into(), false, 295, Detect::Poll, false));
    assert_eq!(decided[2], ("b".into(), true, 297, Detect::Poll, false));
    assert_eq!(decided[3], ("c".into(), false, 301, Detect::Poll, false));
}

#[test]
fn a_message_that_is_no_proof_is_confirmed_by_a_look() {
    let mut sim = Sim::pushing(push());
    sim.observe("written", 1000, 0);
    sim.observe("evicted", 1000, 0);
    sim.look(0, &[]);
    assert!(sim.last_look_watched, "the intake look registers interest");
    // Both keys named; only one was written (the other fell out of the
    // server's full tracking table).
    let keys = [format!("{KEY}written"), format!("{KEY}evicted")];
    sim.core.handle_pushed(&keys, sim.now(500));
    let looked = sim.look(502, &["written"]);
    assert_eq!(looked.len(), 2, "one look confirms both");
    assert!(
        !sim.last_look_watched,
        "a confirming look registers nothing"
    );
    // Decided at the look: the write may have come after the message.
    assert_eq!(
        sim.decided(),
        [("written".into(), true, 502, Detect::Push, false)]
    );
    assert_eq!(sim.write(502, Ok(())), ["written"]);
    // The evicted one is no longer pushed (registering it again would drop
    // another key from a full table): it is polled, each tick.
    assert_eq!(
        sim.waits_until(595),
        (602, WaitOn::Push),
        "a tick; messages still come"
    );
    assert_eq!(sim.look(602, &[]), ["evicted"]);
    assert!(!sim.last_look_watched);
    assert_eq!(sim.look(702, &[]), ["evicted"]);
    sim.look(1000, &[]);
    assert_eq!(
        sim.decided()[1],
        ("evicted".into(), false, 1000, Detect::Poll, false)
    );
}

#[test]
fn messages_that_a_look_will_confirm_wait_for_it_in_one_sleep() {
    let mut sim = Sim::pushing(push());
    sim.observe("a", 1000, 0);
    sim.observe("b", 1000, 0);
    sim.look(0, &[]);
    sim.core.handle_pushed(&[format!("{KEY}a")], sim.now(500));
    sim.look(500, &["a"]);
    // A second message within the spacing of looks: its look is due at
    // 502; what comes before then is taken in one wake, at 502.
    sim.core.handle_pushed(&[format!("{KEY}b")], sim.now(501));
    assert_eq!(sim.waits_until(501), (502, WaitOn::Collect));
    assert_eq!(sim.look(502, &["b"]), ["b"]);
    // Nothing to confirm: a message wakes the worker at once.
    assert_eq!(sim.waits_until(503).1, WaitOn::Push);
}

#[test]
fn a_loss_makes_every_watched_job_looked_at_again() {
    let mut sim = Sim::pushing(push());
    for p in ["a", "b", "c"] {
        sim.observe(p, 1000, 0);
    }
    sim.look(0, &[]);
    assert_eq!(sim.waits_until(20).1, WaitOn::Push);
    sim.core.handle_lost();
    assert_eq!(sim.look(30, &["b"]).len(), 3);
    assert_eq!(sim.decided(), [("b".into(), true, 30, Detect::Poll, false)]);
}

#[test]
fn a_broken_subscription_polls_and_subscribes_again() {
    let mut sim = Sim::pushing(push());
    sim.observe("a", 1000, 0);
    sim.look(0, &[]);
    let broke = StoreError::new(StoreErrorKind::Io, "reset");
    sim.core.handle_push_broken(broke, sim.at(50));
    assert_eq!(sim.action(50), Action::Subscribe);
    sim.core
        .handle_subscribed(Err(store_error(StoreErrorKind::Unavailable)), sim.at(50));
    // Meanwhile it polls: every watched job, every poll.
    assert_eq!(sim.look(50, &[]), ["a"]);
    assert_eq!(sim.waits_until(60).1, WaitOn::Timer);
    assert_eq!(sim.look(150, &[]), ["a"]);
    // A second later it asks again, and gets it: everything looked at.
    assert_eq!(sim.action(1050), Action::Subscribe);
    sim.core.handle_subscribed(Ok(true), sim.at(1050));
    sim.collect();
    let pushing: Vec<bool> = sim
        .outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Pushing(on) => Some(*on),
            _ => None,
        })
        .collect();
    assert_eq!(pushing, [true, false, true]);
}

#[test]
fn a_refusal_for_good_means_polling_said_once_not_a_store_fault() {
    let mut sim = Sim::new(push());
    assert_eq!(sim.action(0), Action::Subscribe);
    sim.core
        .handle_subscribed(Err(store_error(StoreErrorKind::Permission)), sim.at(0));
    sim.collect();
    assert!(
        sim.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::PushUnavailable(_)))
    );
    assert!(
        !sim.outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Failed { .. }))
    );
    sim.observe("a", 1000, 0);
    sim.look(0, &[]);
    assert_eq!(sim.look(100, &[]), ["a"], "polling");
    assert_ne!(sim.action(5000), Action::Subscribe, "never asked again");
}

#[test]
fn a_drain_keeps_push_and_decides_by_message() {
    let mut sim = Sim::pushing(push());
    sim.observe("a", 1000, 0);
    sim.look(0, &[]);
    sim.core.handle_stop(StopMode::Drain {
        until: sim.at(1500),
    });
    assert_eq!(
        sim.waits_until(100).1,
        WaitOn::Push,
        "still waiting on messages"
    );
    sim.core.handle_pushed(&[format!("{KEY}a")], sim.now(640));
    assert_eq!(sim.look(640, &["a"]), ["a"], "a look confirms it");
    assert_eq!(
        sim.decided(),
        [("a".into(), true, 640, Detect::Push, false)]
    );
    sim.write(650, Ok(()));
    assert_eq!(sim.action(650), Action::Done);
}

// ---- early looks, late answers ---------------------------------------------

#[test]
fn an_early_look_that_fails_is_failed_and_no_message_decides_it() {
    let mut sim = Sim::pushing(push());
    sim.observe("early", 0, 0);
    sim.fail_look(0, store_error(StoreErrorKind::Permission));
    assert_eq!(sim.lost(Loss::Failed), 1);
    sim.core
        .handle_pushed(&[format!("{KEY}early")], sim.now(300));
    sim.collect();
    assert!(sim.decided().is_empty());
}

#[test]
fn a_look_on_a_broken_connection_is_repeated_once_at_once() {
    let mut sim = Sim::new(config());
    sim.observe("early", 0, 0);
    sim.fail_look(0, store_error(StoreErrorKind::Io));
    assert_eq!(sim.lost(Loss::Failed), 0, "tried again first");
    assert_eq!(sim.look(0, &["early"]), ["early"]);
    assert_eq!(
        sim.decided(),
        [("early".into(), true, 0, Detect::Poll, false)]
    );
    let mut sim = Sim::new(config());
    sim.observe("early", 0, 0);
    sim.fail_look(0, store_error(StoreErrorKind::Io));
    sim.fail_look(1, store_error(StoreErrorKind::Io));
    assert_eq!(sim.lost(Loss::Failed), 1, "once only");
}

#[test]
fn a_failed_deadline_look_is_retried_each_tick_and_a_key_missing_late_is_not_found() {
    let mut sim = Sim::pushing(push().max_wait(ms(300)).retry_window(ms(5000)));
    sim.observe("a", 300, 0);
    sim.look(0, &[]);
    sim.fail_look(300, store_error(StoreErrorKind::Timeout));
    // Retried each tick (100 ms), pushing or not; a message after the
    // deadline decides nothing.
    sim.core.handle_pushed(&[format!("{KEY}a")], sim.now(350));
    sim.collect();
    assert!(sim.decided().is_empty());
    sim.fail_look(400, store_error(StoreErrorKind::Timeout));
    assert_eq!(sim.look(500, &[]), ["a"]);
    assert_eq!(
        sim.decided(),
        [("a".into(), false, 500, Detect::Poll, true)]
    );
}

#[test]
fn a_key_found_by_an_answer_after_the_deadline_is_unknown() {
    // The deadline look was sent in time, but its answer came after the
    // deadline's millisecond (a redirect followed, a busy CPU): the key may
    // have been written after the deadline. Within it, it is found, at the
    // deadline.
    for (answer_ms, decided) in [(300, 1), (301, 0), (340, 0)] {
        let mut sim = Sim::new(config().max_wait(ms(300)));
        sim.observe("a", 300, 0);
        sim.look(0, &[]);
        sim.look(100, &[]);
        sim.look(200, &[]);
        sim.look_answered(300, answer_ms, &["a"]);
        assert_eq!(sim.decided().len(), decided, "answered at {answer_ms}");
        if decided == 1 {
            assert_eq!(sim.decided()[0].2, 300, "wait_ms at the deadline");
        }
        assert_eq!(
            sim.lost(Loss::Failed),
            1 - decided as u64,
            "answered at {answer_ms}"
        );
    }
}

#[test]
fn a_key_the_server_found_by_the_deadline_is_found_however_late_its_answer() {
    // The deadline look's answer arrives 40 ms late (another master held
    // the worker, a redirect was followed), but the server's clock says
    // when it looked: by the deadline's millisecond, found at that moment;
    // after it, unknown. A clock that says later than the arrival is
    // bounded by the arrival.
    for (seen_ms, decided, wait_ms) in [(298, 1, 298), (300, 1, 300), (301, 0, 0), (900, 0, 0)] {
        let mut sim = Sim::new(config().max_wait(ms(300)));
        sim.observe("a", 300, 0);
        sim.look(0, &[]);
        sim.look(100, &[]);
        sim.look(200, &[]);
        sim.look_seen(290, 340, Some(seen_ms), &["a"]);
        assert_eq!(sim.decided().len(), decided, "seen at {seen_ms}");
        if decided == 1 {
            assert_eq!(
                sim.decided()[0].2,
                wait_ms,
                "wait_ms when the server looked"
            );
        }
        assert_eq!(sim.lost(Loss::Failed), 1 - decided as u64);
    }
}

#[test]
fn a_key_found_only_by_a_retry_after_the_deadline_is_unknown_not_found() {
    // Across a failover the deadline look fails and its retry, seconds
    // later, finds keys written after the deadline: found would lift
    // coverage above what was possible.
    let mut sim = Sim::new(config().max_wait(ms(300)).retry_window(ms(5000)));
    sim.observe("a", 300, 0);
    sim.look(0, &[]);
    sim.fail_look(300, store_error(StoreErrorKind::Timeout));
    sim.fail_look(400, store_error(StoreErrorKind::Timeout));
    sim.look(2500, &["a"]);
    assert!(sim.decided().is_empty(), "{:?}", sim.decided());
    assert_eq!(sim.lost(Loss::Failed), 1);
}

#[test]
fn a_deadline_look_failing_for_the_whole_window_ends_as_failed() {
    let mut sim = Sim::new(config().max_wait(ms(300)).retry_window(ms(250)));
    sim.observe("a", 300, 0);
    sim.look(0, &[]);
    sim.look(100, &[]);
    sim.look(200, &[]);
    sim.fail_look(300, store_error(StoreErrorKind::Timeout));
    sim.fail_look(400, store_error(StoreErrorKind::Timeout));
    sim.fail_look(500, store_error(StoreErrorKind::Timeout));
    assert_eq!(sim.lost(Loss::Failed), 0);
    sim.fail_look(550, store_error(StoreErrorKind::Timeout));
    assert_eq!(sim.lost(Loss::Failed), 1, "the window ended at 550");
}

#[test]
fn a_panicked_look_loses_its_jobs_and_the_subscription() {
    let mut sim = Sim::pushing(push());
    sim.observe("a", 1000, 0);
    sim.observe("b", 1000, 0);
    sim.fail_look(0, CallError::Panicked);
    assert_eq!(sim.lost(Loss::Panicked), 2);
    assert_eq!(sim.action(0), Action::Subscribe, "the new store subscribes");
}

#[test]
fn events_carry_the_wall_time_of_their_decision() {
    let mut sim = Sim::new(config());
    sim.observe("a", 1000, 0);
    sim.look(0, &[]);
    sim.look(100, &["a"]);
    assert_eq!(sim.action(120), Action::Write, "after the write batch");
    let claims = sim.core.claims();
    let e = claims[0].event;
    assert_eq!(
        (e.wait_ms, e.ts_ms, e.polls, e.max_wait_ms),
        (100, 1_000_100, 2, 1000)
    );
    assert_eq!(
        claims[0].dedupe_key,
        "{quantum:stream:apply.heat.observed}:dedupe:publish_plan_post:a"
    );
}

#[test]
fn a_look_answered_in_part_decides_what_it_answered_and_backs_off() {
    let mut sim = Sim::pushing(push().max_wait(ms(300)).retry_window(ms(5000)));
    sim.observe("live", 300, 0);
    sim.observe("dead", 300, 0);
    assert_eq!(sim.action(0), Action::Look { watch: true });
    let keys: Vec<String> = sim.core.look_keys().iter().map(|k| k.to_string()).collect();
    // The master of "dead" did not answer; the other did (and so holds
    // the interest the look registered).
    let found = keys
        .iter()
        .map(|k| (!k.ends_with("dead")).then_some(false))
        .collect();
    let failed = Some(StoreError::new(StoreErrorKind::Io, "a master died"));
    let answers = Answers {
        found,
        failed,
        looked_by: Vec::new(),
    };
    sim.core.handle_looked(Ok(answers), sim.now(0));
    sim.collect();
    // "live" is decided by its message and the look that confirms it;
    // "dead" is not looked at again in a loop: at its deadline (or after a
    // loss, which a reconnect says).
    sim.core.handle_pushed(&[format!("{KEY}live")], sim.now(40));
    assert_eq!(sim.look(40, &["live"]), ["live"]);
    assert_eq!(
        sim.decided(),
        [("live".into(), true, 40, Detect::Push, false)]
    );
    assert_eq!(sim.write(50, Ok(())), ["live"]);
    assert_eq!(sim.waits_until(290), (295, WaitOn::Push));
    assert_eq!(sim.look(295, &[]), ["dead"]);
}

#[test]
fn an_events_unix_ms_is_rounded_down_once() {
    let t0 = Instant::now();
    let now = Now {
        at: t0 + Duration::from_micros(900),
        unix: Duration::from_micros(1_000_000_200),
    };
    // 1,000,000.2 ms less 0.9 ms: 999,999.3 ms (whole ms of each term
    // would have said 1,000,000).
    assert_eq!(now.unix_ms_of(t0), 999_999);
    assert_eq!(now.unix_ms_of(now.at), 1_000_000);
}
