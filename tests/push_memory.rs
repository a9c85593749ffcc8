//! Push detection's logic on the in-memory store, whose subscriber a test
//! can let through, withhold or flush: no sleeping for messages.

mod support;

use std::time::Instant;

use heat_observer::{Config, ConfigBuilder, Detect, LateObserver};
use support::rig::{Op, RiggedStore};
use support::{events, ms, wait_stats};

fn config() -> ConfigBuilder {
    Config::builder()
        .workers(1)
        .detect(Detect::Push)
        .max_wait(ms(400))
        .poll(ms(10))
}

fn heat_key(plan: &str) -> String {
    Config::default().heat_key(plan)
}

fn start(store: &RiggedStore) -> LateObserver {
    let observer = LateObserver::start(config().build().unwrap(), store.clone()).unwrap();
    wait_stats(&observer, "subscribed", |s| s.push_workers == 1);
    observer
}

#[test]
fn a_message_is_confirmed_by_one_look_and_no_tick_looks_again() {
    let store = RiggedStore::new();
    let observer = start(&store);
    observer.observe_late("p", "S").unwrap();
    wait_stats(&observer, "the intake look", |s| s.exists_calls == 1);
    store.insert_key(heat_key("p"));
    let stats = wait_stats(&observer, "found", |s| s.found == 1);
    // The intake look and the one that confirms the message; with a 10 ms
    // poll, polling would have looked tens of times by now.
    assert_eq!(store.calls(Op::Exists), 2, "{stats:?}");
    let event = &events(&store)[0];
    assert_eq!(event.field("decided_by"), Some("push"));
    assert!(event.field("wait_ms").unwrap().parse::<u64>().unwrap() < 400);
}

#[test]
fn a_key_already_there_is_found_by_the_intake_look() {
    let store = RiggedStore::new();
    let observer = start(&store);
    store.insert_key(heat_key("early"));
    observer.observe_late("early", "S").unwrap();
    wait_stats(&observer, "found", |s| s.found == 1);
    assert_eq!(events(&store)[0].field("decided_by"), Some("poll"));
}

#[test]
fn a_withheld_message_is_made_up_for_by_the_deadline_look() {
    let store = RiggedStore::new();
    let observer = start(&store);
    let called = Instant::now();
    observer.observe_late("withheld", "S").unwrap();
    wait_stats(&observer, "the intake look", |s| s.exists_calls == 1);
    store.withhold_messages(true);
    store.insert_key(heat_key("withheld"));
    let stats = wait_stats(&observer, "decided at the deadline", |s| {
        s.found + s.failed == 1
    });
    assert_eq!(stats.exists_calls, 2, "intake and deadline: {stats:?}");
    if stats.failed == 1 {
        // Only if this worker's thread ran late (a busy machine): a look
        // answered after the deadline cannot say the key was there by it.
        let (made, answered) = store.look_times()[1];
        let deadline = called + ms(400);
        assert!(
            made + ms(5) >= deadline && answered.is_some_and(|a| a >= deadline),
            "failed although the deadline look was made and answered in time: {stats:?}"
        );
        return;
    }
    let event = &events(&store)[0];
    assert_eq!(event.field("decided_by"), Some("poll"));
    // The deadline look, made 5 ms ahead of the 400 ms deadline.
    assert!(event.field("wait_ms").unwrap().parse::<u64>().unwrap() >= 395);
}

#[test]
fn a_lost_subscription_makes_every_watched_plan_be_looked_at_again() {
    let store = RiggedStore::new();
    let observer = start(&store);
    for i in 0..5 {
        observer.observe_late(&format!("l{i}"), "S").unwrap();
    }
    // Every plan registered (two workers may take them in two looks; a
    // key written before its plan's intake look sends no message).
    wait_stats(&observer, "the intake looks", |s| s.keys_checked >= 5);
    let looks = store.calls(Op::Exists);
    store.withhold_messages(true);
    for i in 0..5 {
        store.insert_key(heat_key(&format!("l{i}")));
    }
    support::wait_until("the messages are lost", || store.withheld() == 5);
    store.withhold_messages(false);
    // As a FLUSHALL or a rebuilt subscription says: messages may be lost.
    store.flush_subscribers();
    let stats = wait_stats(&observer, "all found", |s| s.found == 5);
    assert_eq!(
        store.calls(Op::Exists),
        looks + 1,
        "one look at all of them: {stats:?}"
    );
    for event in events(&store) {
        assert!(
            event.field("wait_ms").unwrap().parse::<u64>().unwrap() < 400,
            "before the deadline"
        );
    }
}

#[test]
fn a_store_that_cannot_push_polls() {
    // The Redis Cluster store says it cannot (one subscriber per master is
    // not there yet); a Connector whose stores keep the default polls too.
    struct Plain(RiggedStore);
    impl heat_observer::store::Store for Plain {
        fn look(
            &mut self,
            keys: &[&str],
            _watch: bool,
        ) -> Result<heat_observer::store::Answers, heat_observer::store::StoreError> {
            self.0.look(keys, false)
        }
        fn claim_and_append(
            &mut self,
            stream: &heat_observer::store::StreamSpec,
            claims: &[heat_observer::store::Claim<'_>],
        ) -> Result<Vec<heat_observer::store::Claimed>, heat_observer::store::StoreError> {
            self.0.claim_and_append(stream, claims)
        }
    }
    struct PlainConnector(RiggedStore);
    impl heat_observer::store::Connector for PlainConnector {
        type Store = Plain;
        fn connect(&self, _worker: usize) -> Plain {
            Plain(self.0.clone())
        }
        fn describe(&self) -> String {
            "plain".into()
        }
    }
    let store = RiggedStore::new();
    let observer =
        LateObserver::start(config().build().unwrap(), PlainConnector(store.clone())).unwrap();
    observer.observe_late("polled", "S").unwrap();
    wait_stats(&observer, "a few ticks", |s| s.exists_calls >= 3);
    store.insert_key(heat_key("polled"));
    let stats = wait_stats(&observer, "found by a tick", |s| s.found == 1);
    assert_eq!(stats.push_workers, 0);
    assert!(
        observer
            .render_metrics()
            .contains("p28_detect_mode{mode=\"poll\"} 1\n")
    );
}

#[test]
fn a_drain_keeps_the_subscription_and_decides_by_message() {
    let store = RiggedStore::new();
    let observer = start(&store);
    observer.observe_late("drained", "S").unwrap();
    wait_stats(&observer, "the intake look", |s| s.exists_calls == 1);
    let stopping = {
        let handle = observer.handle();
        let store = store.clone();
        std::thread::spawn(move || {
            // The key comes while the observer drains. (An empty plan id is
            // refused as invalid before the stop, as shut down after it:
            // no job either way.)
            support::wait_until("the stop began", || {
                handle.observe_late("", "S") == Err(heat_observer::Refused::ShutDown)
            });
            store.insert_key(heat_key("drained"));
        })
    };
    let report = observer.shutdown(support::PATIENCE);
    stopping.join().unwrap();
    assert_eq!((report.stats.found, report.abandoned()), (1, 0));
    let event = &events(&store)[0];
    assert_eq!(event.field("decided_by"), Some("push"), "not by a tick");
    assert!(event.field("wait_ms").unwrap().parse::<u64>().unwrap() < 400);
    assert_eq!(
        report.stats.exists_calls, 2,
        "the intake look and the one that confirms the message"
    );
}
