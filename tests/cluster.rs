//! Redis Cluster (feature `cluster`) against a local cluster of three
//! masters: events, dedupe and trimming, and a master killed mid-run.
#![cfg(feature = "cluster")]

mod support;

use std::time::{Duration, Instant};

use heat_observer::{
    Config, ConfigBuilder, LateObserver, ObsPoint, RedisClusterConnector,
    store::{
        Answers, Changes, Claim, Claimed, Connector, Event, Store, StoreErrorKind, StreamSpec,
    },
};
use redis::Commands;
use support::cluster::Cluster;
use support::server::unique;
use support::{PATIENCE, ms, wait_stats};

fn config() -> ConfigBuilder {
    let ns = unique("cluster");
    Config::builder()
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(format!("{ns}:by_plan:"))
        .max_wait(ms(300))
        .poll(ms(20))
}

fn start(cluster: &Cluster, config: &Config) -> LateObserver {
    let connector = RedisClusterConnector::new(&cluster.addresses(), config).unwrap();
    LateObserver::start(config.clone(), connector).unwrap()
}

#[test]
fn events_dedupe_and_trimming_work_on_a_cluster() {
    let Some(cluster) = Cluster::start("events_dedupe_and_trimming_work_on_a_cluster") else {
        return;
    };
    let config = config().stream_maxlen(100).build().unwrap();
    let mut con = cluster.connection();
    let plans: Vec<String> = (0..400).map(|i| format!("c{i}")).collect();
    for plan in plans.iter().step_by(2) {
        let _: () = con.set(config.heat_key(plan), 1).unwrap();
    }
    // The heat keys are spread over every master; the stream and the dedupe
    // keys share one slot.
    let holders: std::collections::HashSet<usize> = plans
        .iter()
        .take(50)
        .map(|p| cluster.node_of(&config.heat_key(p)))
        .collect();
    assert_eq!(holders.len(), 3, "heat keys on every node");
    let stream_node = cluster.node_of(config.stream());
    assert_eq!(
        cluster.node_of(&config.dedupe_key(ObsPoint::PUBLISH_PLAN_POST, "c7")),
        stream_node
    );

    let observer = start(&cluster, &config);
    for plan in &plans {
        observer.observe_late(plan, "S").unwrap();
    }
    let stats = wait_stats(&observer, "all written", |s| s.found + s.not_found == 400);
    assert_eq!(
        (stats.found, stats.not_found, stats.failed),
        (200, 200, 0),
        "{stats:?}"
    );
    // Trimmed near MAXLEN ~ 100.
    let len: u64 = redis::cmd("XLEN")
        .arg(config.stream())
        .query(&mut con)
        .unwrap();
    assert!((100..=250).contains(&len), "stream length {len}");
    let ttl: i64 = con
        .pttl(config.dedupe_key(ObsPoint::PUBLISH_PLAN_POST, "c7"))
        .unwrap();
    assert!(ttl > 0);

    // Observing again, as another Apply process would: all deduplicated.
    let again = start(&cluster, &config);
    for plan in &plans {
        again.observe_late(plan, "S").unwrap();
    }
    let stats = wait_stats(&again, "all deduplicated", |s| s.finished() == 400);
    assert_eq!(stats.deduplicated, 400, "{stats:?}");
}

#[test]
fn a_master_killed_mid_run_fails_jobs_fast_and_everything_is_counted() {
    let Some(mut cluster) = Cluster::start("a_master_killed_mid_run") else {
        return;
    };
    let config = config().max_wait(ms(500)).build().unwrap();
    let stream_node = cluster.node_of(config.stream());
    let victim = (stream_node + 1) % 3;
    let observer = start(&cluster, &config);
    let mut con = cluster.connection();
    for i in 0..100 {
        let _: () = con.set(config.heat_key(&format!("before-{i}")), 1).unwrap();
        observer.observe_late(&format!("before-{i}"), "S").unwrap();
    }
    wait_stats(&observer, "the first plans are found", |s| s.found == 100);

    cluster.nodes[victim].kill();
    let killed_at = Instant::now();
    let mut i = 0;
    // Keep observing through the failure and the cluster going down
    // (cluster-node-timeout 2 s): every call is accepted, workers keep
    // ticking. (That a call never waits for a worker is proven with gates
    // in tests/faults.rs; its cost is measured by the benchmark.)
    while killed_at.elapsed() < Duration::from_secs(4) {
        observer.observe_late(&format!("during-{i}"), "S").unwrap();
        i += 1;
        std::thread::sleep(ms(5));
    }
    let calls_before = observer.stats().exists_calls;
    wait_stats(&observer, "the workers keep calling Redis", |s| {
        s.exists_calls > calls_before + 10
    });
    let stats = wait_stats(&observer, "every job ends", |s| s.finished() == s.accepted);
    assert!(stats.failed > 0, "jobs on the dead node fail: {stats:?}");
    assert!(stats.store_errors > 0);
    let t = Instant::now();
    let report = observer.shutdown(ms(1000));
    assert!(
        report.is_complete(),
        "no worker stuck on the dead node: {report:?}"
    );
    assert!(t.elapsed() < ms(1000));
    assert!(report.stats.is_balanced(), "{:?}", report.stats);
    let _ = PATIENCE;
}

#[test]
fn a_frozen_master_costs_a_look_one_timeout_and_fails_only_its_own_keys() {
    let Some(cluster) = Cluster::start("a_frozen_master_costs_a_look_one_timeout") else {
        return;
    };
    let connector = RedisClusterConnector::new(&cluster.addresses(), &Config::default()).unwrap();
    let mut store = connector.connect(0);
    let keys: Vec<String> = (0..5000).map(|i| format!("frozen-{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(
        store
            .look(&keys, false)
            .and_then(Answers::whole)
            .unwrap()
            .len(),
        5000
    );
    let held = keys.iter().filter(|k| cluster.node_of(k) == 1).count();
    assert!(held > 1000, "the frozen node holds {held} keys");
    cluster.nodes[1].stall();
    let t = Instant::now();
    let err = store
        .look(&keys, false)
        .and_then(Answers::whole)
        .unwrap_err();
    let took = t.elapsed();
    cluster.nodes[1].resume();
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    // 50 ms timeout, the master's keys in one pipeline: not a wait per key.
    assert!(took < ms(500), "{held} keys on a frozen node took {took:?}");
    // Each master is looked at on its own connection: while one is frozen,
    // the others' keys are answered; the frozen one's fail, by a timeout
    // or, while its connection backs off after one, at once.
    cluster.nodes[1].stall();
    let answers = store.look(&keys, false);
    cluster.nodes[1].resume();
    let answers = answers.unwrap();
    let answered = answers.found.iter().filter(|f| f.is_some()).count();
    assert_eq!(answered, 5000 - held, "{:?}", answers.failed);
    let failed = answers.failed.expect("the frozen master's keys failed");
    let backing_off = failed.kind() == StoreErrorKind::Unavailable
        && failed.message().contains("reconnecting in");
    assert!(
        failed.kind() == StoreErrorKind::Timeout || backing_off,
        "{failed}"
    );
}

#[test]
fn a_frozen_master_holds_back_no_other_masters_answer() {
    // Every master's look is sent before any answer is read, and each
    // answer says when its server looked (`TIME` after the keys): the
    // others' keys read as looked at when they were, not after the frozen
    // master's timeout. (A deadline look's key found on them counts; read
    // after the timeout, it was unknown.) Each master frozen in turn, so
    // that one is looked at first.
    let Some(cluster) = Cluster::start("a_frozen_master_holds_back_no_other") else {
        return;
    };
    let connector = RedisClusterConnector::new(&cluster.addresses(), &Config::default()).unwrap();
    let mut store = connector.connect(0);
    let keys: Vec<String> = (0..600).map(|i| format!("held-back-{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let masters: Vec<usize> = keys.iter().map(|k| cluster.node_of(k)).collect();
    for frozen in 0..3 {
        // Connections open, each server's clock measured.
        for _ in 0..5 {
            store.look(&keys, false).and_then(Answers::whole).unwrap();
        }
        cluster.nodes[frozen].stall();
        let t = Instant::now();
        let answers = store.look(&keys, false);
        let took = t.elapsed();
        cluster.nodes[frozen].resume();
        let answers = answers.unwrap();
        assert!(took >= ms(50), "no timeout waited for: {took:?}");
        for (i, key) in keys.iter().enumerate() {
            if masters[i] == frozen {
                assert_eq!(answers.found[i], None, "{key}");
                continue;
            }
            assert_eq!(answers.found[i], Some(false), "{key}");
            let seen = answers.looked_by[i].expect("when the server looked");
            assert!(
                seen >= t && seen < t + ms(25),
                "{key} on master {}, master {frozen} frozen: looked at {:?} into a call of {took:?}",
                masters[i],
                seen.saturating_duration_since(t)
            );
        }
    }
}

#[test]
fn push_on_a_cluster_subscribes_every_master_and_the_others_keep_pushing_when_one_dies() {
    let Some(mut cluster) = Cluster::start("push_on_a_cluster") else {
        return;
    };
    let config = config()
        .detect(heat_observer::Detect::Push)
        .max_wait(ms(1500))
        .retry_window(ms(500))
        .build()
        .unwrap();
    let observer = start(&cluster, &config);
    wait_stats(&observer, "both workers subscribed", |s| {
        s.push_workers == 2
    });
    let mut con = cluster.connection();
    for i in 0..60 {
        observer.observe_late(&format!("a{i}"), "S").unwrap();
    }
    wait_stats(&observer, "the intake looks", |s| s.keys_checked >= 60);
    for i in 0..60 {
        let _: () = con.set(config.heat_key(&format!("a{i}")), 1).unwrap();
    }
    wait_stats(&observer, "all found", |s| s.found == 60);
    let pushed = |cluster: &Cluster, plans: &str| -> Vec<String> {
        cluster
            .stream_pairs(config.stream(), "plan_id", "decided_by")
            .into_iter()
            .filter(|(plan, by)| plan.starts_with(plans) && by == "push")
            .map(|(plan, _)| plan)
            .collect()
    };
    // Every master told its writes (a plan whose key was written before
    // its worker took it is found by the intake look instead).
    let told: std::collections::HashSet<usize> = pushed(&cluster, "a")
        .iter()
        .map(|plan| cluster.node_of(&config.heat_key(plan)))
        .collect();
    assert_eq!(told.len(), 3, "pushes came from masters {told:?}");

    // One master dies (not the stream's): the other two keep pushing.
    let victim = (cluster.node_of(config.stream()) + 1) % 3;
    cluster.nodes[victim].kill();
    let mut live = Vec::new();
    // The a-plans' intake and confirming looks are counted already: the
    // b-plans' own looks come on top (waiting for 120 in all was met by
    // the a-plans alone, and keys were written before their plans' looks).
    let checked = observer.stats().keys_checked;
    for i in 0..60 {
        let plan = format!("b{i}");
        observer.observe_late(&plan, "S").unwrap();
        if cluster.node_of_via(&config.heat_key(&plan), (victim + 1) % 3) != victim {
            live.push(plan);
        }
    }
    wait_stats(&observer, "every b-plan taken and looked at", |s| {
        s.in_flight == 60 && s.keys_checked >= checked + 60
    });
    for plan in &live {
        let _: () = con.set(config.heat_key(plan), 1).unwrap();
    }
    // Within the cluster's node timeout (2 s), before it stops answering
    // for want of a master.
    let found = 60 + live.len() as u64;
    wait_stats(&observer, "the live masters' plans found", |s| {
        s.found == found
    });
    let b_pushed = pushed(&cluster, "b");
    // A plan whose key was written before its worker took it is found by
    // its intake look (its one poll); every other was told by its master,
    // or found by a look at everything that a loss brings: each worker
    // hears of the death at most twice (its looks' connection breaks, its
    // subscriber breaks), and those looks may come after some keys were
    // written (timing). More looks would mean push fell back to polling
    // for the live masters too (a look every 20 ms).
    let polls: Vec<(String, String)> = cluster
        .stream_pairs(config.stream(), "plan_id", "polls")
        .into_iter()
        .filter(|(plan, _)| live.contains(plan) && !b_pushed.contains(plan))
        .collect();
    assert!(
        polls
            .iter()
            .all(|(_, n)| ["1", "2", "3"].contains(&n.as_str())),
        "the live masters' keys were pushed ({} of {}) or found by one look: {polls:?}",
        b_pushed.len(),
        live.len()
    );
    // Once those losses are behind, the live masters push: plans taken now
    // are told of their writes.
    let checked = observer.stats().keys_checked;
    let mut live_c = Vec::new();
    for i in 0..60 {
        let plan = format!("c{i}");
        observer.observe_late(&plan, "S").unwrap();
        if cluster.node_of_via(&config.heat_key(&plan), (victim + 1) % 3) != victim {
            live_c.push(plan);
        }
    }
    wait_stats(&observer, "every c-plan taken and looked at", |s| {
        s.keys_checked >= checked + 60
    });
    for plan in &live_c {
        let _: () = con.set(config.heat_key(plan), 1).unwrap();
    }
    let found = found + live_c.len() as u64;
    wait_stats(&observer, "the live masters' c-plans found", |s| {
        s.found == found
    });
    let c_pushed = pushed(&cluster, "c");
    assert!(
        c_pushed.len() * 2 > live_c.len(),
        "{} of {} (b: {} of {})",
        c_pushed.len(),
        live_c.len(),
        b_pushed.len(),
        live.len()
    );
    let stats = wait_stats(&observer, "every job ends", |s| s.finished() == s.accepted);
    assert!(stats.is_balanced(), "{stats:?}");
    assert!(observer.shutdown(ms(3000)).is_complete());
}

#[test]
fn a_slot_moved_under_a_pushing_look_is_followed_and_no_reply_answers_another_key() {
    // A reshard made push write heat_found=1 for keys never written: a
    // pipelined tracked look stopped reading at a MOVED reply and kept its
    // connection, so the next look read the unread replies as its own.
    let Some(cluster) = Cluster::start("a_slot_moved_under_a_pushing_look") else {
        return;
    };
    let config = config()
        .detect(heat_observer::Detect::Push)
        .build()
        .unwrap();
    let connector = RedisClusterConnector::new(&cluster.addresses(), &config).unwrap();
    let mut store = connector.connect(0);
    assert!(store.subscribe().unwrap(), "subscribed");
    // Keys of one master: one whose slot will move, twenty written ones in
    // other slots, twenty missing ones in other slots.
    let key = |i: usize| config.heat_key(&format!("k{i}"));
    let master = cluster.node_of(&key(0));
    let moving = cluster.slot_of(&key(0));
    let mut on_master = (1..2000)
        .map(key)
        .filter(|k| cluster.slot_of(k) != moving && cluster.node_of(k) == master);
    let written: Vec<String> = on_master.by_ref().take(20).collect();
    let missing: Vec<String> = on_master.take(20).collect();
    assert_eq!((written.len(), missing.len()), (20, 20));
    let mut con = cluster.connection();
    for k in &written {
        let _: () = con.set(k, 1).unwrap();
    }
    let mut first: Vec<String> = vec![key(0)];
    first.extend(written.iter().cloned());
    fn look(store: &mut impl Store, keys: &[String]) -> heat_observer::store::Answers {
        let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
        store.look(&keys, true).expect("answered")
    }
    // The map is read and the tracked connection opened.
    let before = look(&mut store, &first);
    assert_eq!(before.found[0], Some(false));
    assert!(before.found[1..].iter().all(|f| *f == Some(true)));

    cluster.move_empty_slot(moving, (master + 1) % 3);
    // The moved key answers MOVED first; its look is followed on its new
    // master within the same call, and every other reply is read.
    let during = look(&mut store, &first);
    assert_eq!(during.found[0], Some(false), "followed: {during:?}");
    assert!(
        during.found[1..].iter().all(|f| *f == Some(true)),
        "{during:?}"
    );
    // The next look reads its own replies: no key never written is found.
    let after = look(&mut store, &missing);
    assert!(
        after.found.iter().all(|f| *f == Some(false)),
        "a missing key answered with another's reply: {after:?}"
    );
    // Interest registered on the old master is gone: everything is
    // looked at again.
    assert_eq!(
        store.changes(Duration::ZERO).unwrap(),
        heat_observer::store::Changes::Lost
    );
}

#[test]
fn a_slot_moved_under_a_polling_look_is_followed_within_the_look() {
    // In poll mode a reshard failed the early looks a redirect answers.
    let Some(cluster) = Cluster::start("a_slot_moved_under_a_polling_look") else {
        return;
    };
    let config = config().build().unwrap();
    let connector = RedisClusterConnector::new(&cluster.addresses(), &config).unwrap();
    let mut store = connector.connect(0);
    let key = |i: usize| config.heat_key(&format!("q{i}"));
    let master = cluster.node_of(&key(0));
    let moving = cluster.slot_of(&key(0));
    let written: Vec<String> = (1..2000)
        .map(key)
        .filter(|k| cluster.slot_of(k) != moving && cluster.node_of(k) == master)
        .take(10)
        .collect();
    let mut con = cluster.connection();
    for k in &written {
        let _: () = con.set(k, 1).unwrap();
    }
    let mut keys = vec![key(0)];
    keys.extend(written.iter().cloned());
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let before = store.look(&keys, false).unwrap();
    assert!(before.failed.is_none(), "{before:?}");
    cluster.move_empty_slot(moving, (master + 1) % 3);
    let during = store.look(&keys, false).unwrap();
    assert!(
        during.failed.is_none(),
        "followed within the look: {during:?}"
    );
    assert_eq!(during.found[0], Some(false));
    assert!(
        during.found[1..].iter().all(|f| *f == Some(true)),
        "{during:?}"
    );
}

#[test]
fn an_event_write_follows_the_stream_slot_to_its_new_master() {
    // The writes go to the master of the stream's slot on the worker's own
    // connection to it: a reshard or a failover that moves the slot is
    // followed within the write (MOVED), not failed until the map is read.
    let Some(cluster) = Cluster::start("an_event_write_follows_the_stream_slot") else {
        return;
    };
    let config = config().build().unwrap();
    let connector = RedisClusterConnector::new(&cluster.addresses(), &config).unwrap();
    let mut store = connector.connect(0);
    let spec = StreamSpec {
        name: config.stream().to_owned(),
        maxlen: 1000,
        dedupe_ttl: ms(60_000),
    };
    let point = ObsPoint::PUBLISH_PLAN_POST;
    let mut write = |plan: &str| {
        let event = Event::new(plan, "S", point);
        let dedupe = config.dedupe_key(point, plan);
        let owner = format!("owner-{plan}");
        let claim = Claim {
            dedupe_key: &dedupe,
            owner: &owner,
            event: &event,
        };
        store.claim_and_append(&spec, &[claim])
    };
    // The stream's slot holds no key until the first write: moved first,
    // after the store read the slot map.
    let (slot, from) = (
        cluster.slot_of(config.stream()),
        cluster.node_of(config.stream()),
    );
    assert_eq!(write("warm").unwrap(), [Claimed::Appended]);
    let mut con = cluster.connection();
    let _: () = con.del(config.stream()).unwrap();
    let _: () = con.del(config.dedupe_key(point, "warm")).unwrap();
    let to = (from + 1) % 3;
    cluster.move_empty_slot(slot, to);
    assert_eq!(write("moved").unwrap(), [Claimed::Appended], "followed");
    assert_eq!(
        write("moved").unwrap(),
        [Claimed::Appended],
        "its own retry"
    );
    assert_eq!(cluster.node_of(config.stream()), to);
    let plans: Vec<String> = cluster
        .stream_pairs(config.stream(), "plan_id", "obs_point")
        .into_iter()
        .map(|(plan, _)| plan)
        .collect();
    assert_eq!(plans, ["moved"], "one event, on the new master");
}

#[test]
fn a_key_in_a_migrating_slot_is_asked_of_the_importing_node() {
    // A live reshard moves a slot's keys one by one: the old master
    // answers ASK for a key already moved, and the look asks the new one.
    let Some(cluster) = Cluster::start("a_key_in_a_migrating_slot") else {
        return;
    };
    let config = config().build().unwrap();
    let key = config.heat_key("asked");
    let (slot, from) = (cluster.slot_of(&key), cluster.node_of(&key));
    let to = (from + 1) % 3;
    let id = |i: usize| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut cluster.nodes[i].connection())
            .unwrap()
    };
    let setslot = |on: usize, state: &str, other: usize| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id(other))
            .exec(&mut cluster.nodes[on].connection())
            .unwrap();
    };
    setslot(to, "IMPORTING", from);
    setslot(from, "MIGRATING", to);
    // The key lives on the importing node only, as once migrated.
    let mut importing = cluster.nodes[to].connection();
    redis::pipe()
        .cmd("ASKING")
        .ignore()
        .cmd("SET")
        .arg(&key)
        .arg(1)
        .ignore()
        .exec(&mut importing)
        .unwrap();
    for detect in [heat_observer::Detect::Poll, heat_observer::Detect::Push] {
        let config = self::config().detect(detect).build().unwrap();
        let connector = RedisClusterConnector::new(&cluster.addresses(), &config).unwrap();
        let mut store = connector.connect(0);
        if detect == heat_observer::Detect::Push {
            assert!(store.subscribe().unwrap());
        }
        let answers = store.look(&[key.as_str()], false).unwrap();
        assert_eq!(answers.found, [Some(true)], "{detect:?}: {answers:?}");
        assert!(answers.failed.is_none(), "{detect:?}: {answers:?}");
    }
}

#[test]
fn a_master_that_stops_answering_has_its_keys_found_on_its_replica() {
    // A node timeout long enough that no failover comes during the test.
    let Some(cluster) = Cluster::start_with("found_on_the_replica", 1, 10_000) else {
        return;
    };
    let config = config().build().unwrap();
    let key = |name: &str| config.heat_key(name);
    let master = cluster.node_of(&key("written"));
    let on = |want: bool| {
        (0..)
            .map(|i| key(&format!("k{i}")))
            .find(|k| (cluster.node_of(k) == master) == want)
            .unwrap()
    };
    let (missing, elsewhere) = (on(true), on(false));
    let mut con = cluster.nodes[master].connection();
    let _: () = con.set(key("written"), 1).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut con).unwrap();
    assert_eq!(acked, 1, "the replica has the key");
    let mut other = cluster.connection();
    let _: () = other.set(&elsewhere, 1).unwrap();

    let connector = RedisClusterConnector::new(&cluster.addresses(), &config).unwrap();
    let mut store = connector.connect(0);
    let keys = [key("written"), missing, elsewhere];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(
        store.look(&keys, false).and_then(Answers::whole).unwrap(),
        [true, false, true]
    );
    cluster.nodes[master].stall();
    let answers = store.look(&keys, false);
    cluster.nodes[master].resume();
    let answers = answers.unwrap();
    // Found on the replica: written, so answered in time; missing there
    // may only not be replicated yet: unanswered, with the master's error.
    assert_eq!(answers.found, [Some(true), None, Some(true)], "{answers:?}");
    assert!(answers.failed.is_some());
}

/// The port of the replica of the master `con` is connected to.
fn replica_port(con: &mut redis::Connection) -> u16 {
    let (_, _, replicas): (String, i64, Vec<(String, String, String)>) =
        redis::cmd("ROLE").query(con).unwrap();
    replicas[0].1.parse().unwrap()
}

/// How far the replica on `con` has applied its master's writes.
fn applied(con: &mut redis::Connection) -> i64 {
    let role: (String, String, i64, String, i64) = redis::cmd("ROLE").query(con).unwrap();
    role.4
}

#[test]
fn a_master_that_refuses_with_clusterdown_has_its_keys_answered_by_a_replica_that_applied_its_writes()
 {
    let Some(cluster) = Cluster::start_with("clusterdown_replica", 1, 10_000) else {
        return;
    };
    let config = config().build().unwrap();
    let key = |name: &str| config.heat_key(name);
    let master = cluster.node_of(&key("written"));
    let mut taken = vec![cluster.slot_of(&key("written"))];
    let mut on = |want: bool| {
        let k = (0..)
            .map(|i| key(&format!("k{i}")))
            .find(|k| {
                (cluster.node_of(k) == master) == want && !taken.contains(&cluster.slot_of(k))
            })
            .unwrap();
        taken.push(cluster.slot_of(&k));
        k
    };
    let written = key("written");
    let missing = on(true);
    let behind = on(true);
    let elsewhere = on(false);
    // A slot of the master's own that no key here is in: deleting it from
    // the master's view alone leaves a hole there (nobody else claims it
    // back), so the master refuses every key with CLUSTERDOWN while its
    // replica, whose view is whole, still serves them.
    let in_hole = on(true);
    let hole = cluster.slot_of(&in_hole);
    let mut con = cluster.nodes[master].connection();
    let port = replica_port(&mut con);
    let replica = cluster.nodes.iter().position(|n| n.port() == port).unwrap();
    let mut replica = cluster.nodes[replica].connection();
    let _: () = con.set(&written, 1).unwrap();
    let _: () = con.set(&in_hole, 1).unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut con).unwrap();
    assert_eq!(acked, 1, "the replica has the key");
    let mut other = cluster.connection();
    let _: () = other.set(&elsewhere, 1).unwrap();

    let connector = RedisClusterConnector::new(&cluster.addresses(), &config).unwrap();
    let mut store = connector.connect(0);
    let keys = [written.clone(), missing, behind.clone(), elsewhere];
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(
        store.look(&keys, false).and_then(Answers::whole).unwrap(),
        [true, false, false, true]
    );
    // The replica stops applying its master's writes (a write pause holds
    // its replication link too), and misses the next one.
    let _: () = redis::cmd("CLIENT")
        .arg(&["PAUSE", "20000", "WRITE"])
        .query(&mut replica)
        .unwrap();
    let before = applied(&mut replica);
    let _: () = con.set(&behind, 1).unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg("DELSLOTS")
        .arg(hole)
        .query(&mut con)
        .unwrap();
    let refuses = |con: &mut redis::Connection| {
        let reply: redis::RedisResult<i64> = redis::cmd("EXISTS").arg(&written).query(con);
        reply.is_err_and(|e| e.code() == Some("CLUSTERDOWN"))
    };
    let deadline = Instant::now() + PATIENCE;
    while !refuses(&mut con) {
        assert!(Instant::now() < deadline, "the master never refused");
        std::thread::sleep(ms(10));
    }
    let lagging = store.look(&keys, false);
    assert_eq!(applied(&mut replica), before, "the replica stayed behind");
    let _: () = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut replica)
        .unwrap();
    let acked: i64 = redis::cmd("WAIT").arg(1).arg(5000).query(&mut con).unwrap();
    assert_eq!(acked, 1, "the replica caught up");
    assert!(applied(&mut replica) > before);
    let caught_up = store.look(&keys, false);
    // The slot map is read again after each look that failed, from the
    // next node each time: one of them is the master, whose map lacks
    // the slot; the key in it is still asked of the replica.
    let in_hole_found: Vec<_> = (0..2 * cluster.nodes.len())
        .map(|_| store.look(&[&in_hole], false).map(|a| a.found))
        .collect();
    // A user without `+role`: found keys only, and `ROLE` asked once.
    for node in &cluster.nodes {
        let _: () = redis::cmd("ACL")
            .arg(&[
                "SETUSER", "norole", "on", ">pw", "~*", "&*", "+@all", "-role",
            ])
            .query(&mut node.connection())
            .unwrap();
    }
    let nodes: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| format!("redis://norole:pw@127.0.0.1:{}", n.port()))
        .collect();
    let mut norole = RedisClusterConnector::new(&nodes, &config)
        .unwrap()
        .connect(0);
    let refused_role = [norole.look(&keys, false), norole.look(&keys, false)];
    let role_denials = |con: &mut redis::Connection| -> i64 {
        let log: Vec<std::collections::HashMap<String, redis::Value>> =
            redis::cmd("ACL").arg("LOG").query(con).unwrap();
        log.iter()
            .filter(|e| e.get("object") == Some(&redis::Value::BulkString(b"role".to_vec())))
            .map(|e| match e.get("count") {
                Some(redis::Value::Int(n)) => *n,
                _ => 0,
            })
            .sum()
    };
    let denied = role_denials(&mut con);
    let _: () = redis::cmd("CLUSTER")
        .arg("ADDSLOTS")
        .arg(hole)
        .query(&mut con)
        .unwrap();

    // Behind: found on the replica if it has the key; a key it lacks may
    // be one it has not applied yet (`behind` was written): unanswered,
    // with the master's refusal as the cause. Never not found.
    let lagging = lagging.unwrap();
    assert_eq!(
        lagging.found,
        [Some(true), None, None, Some(true)],
        "{lagging:?}"
    );
    let failed = lagging.failed.expect("the refusal is said");
    assert!(failed.message().contains("CLUSTERDOWN"), "{failed}");
    // Caught up: what the replica lacks, the master lacked when asked.
    let caught_up = caught_up.unwrap();
    assert_eq!(
        caught_up.found,
        [Some(true), Some(false), Some(true), Some(true)],
        "{caught_up:?}"
    );
    for answers in refused_role {
        let answers = answers.unwrap();
        assert_eq!(
            answers.found,
            [Some(true), None, Some(true), Some(true)],
            "{answers:?}"
        );
    }
    assert_eq!(denied, 1, "ROLE refused once, not asked again");
    for found in in_hole_found {
        assert_eq!(
            found.unwrap(),
            [Some(true)],
            "the key in the slot the master lost"
        );
    }
}

#[test]
fn keys_registered_while_their_master_refused_with_clusterdown_are_registered_again_after() {
    let Some(cluster) = Cluster::start_with("clusterdown_push", 1, 10_000) else {
        return;
    };
    let config = config().build().unwrap();
    let watched = config.heat_key("watched");
    let master = cluster.node_of(&watched);
    let hole = (0..)
        .map(|i| config.heat_key(&format!("h{i}")))
        .find(|k| cluster.node_of(k) == master && cluster.slot_of(k) != cluster.slot_of(&watched))
        .map(|k| cluster.slot_of(&k))
        .unwrap();
    let mut con = cluster.nodes[master].connection();
    let connector = RedisClusterConnector::new(&cluster.addresses(), &config).unwrap();
    let mut store = connector.connect(0);
    assert!(store.subscribe().unwrap(), "push on a cluster");
    let exists = |con: &mut redis::Connection| -> redis::RedisResult<i64> {
        redis::cmd("EXISTS").arg(&watched).query(con)
    };
    let slots = |con: &mut redis::Connection, what: &str| {
        let _: () = redis::cmd("CLUSTER")
            .arg(what)
            .arg(hole)
            .query(con)
            .unwrap();
    };
    slots(&mut con, "DELSLOTS");
    let deadline = Instant::now() + PATIENCE;
    while !exists(&mut con).is_err_and(|e| e.code() == Some("CLUSTERDOWN")) {
        assert!(Instant::now() < deadline, "the master never refused");
        std::thread::sleep(ms(10));
    }
    // The look that registers interest is refused by the master (its
    // replica answers, registering nothing there).
    let refused = store.look(&[&watched], true).unwrap();
    assert!(refused.failed.is_some(), "{refused:?}");
    let during = store.changes(ms(20)).unwrap();
    slots(&mut con, "ADDSLOTS");
    let deadline = Instant::now() + PATIENCE;
    while exists(&mut con).is_err() {
        assert!(Instant::now() < deadline, "the master never answered again");
        std::thread::sleep(ms(10));
    }
    let answered = store.look(&[&watched], false).unwrap();
    let after = store.changes(ms(20)).unwrap();

    assert_eq!(during, Changes::Quiet, "nothing lost while it refuses");
    assert_eq!(answered.found, [Some(false)], "{answered:?}");
    // Written now, the key would tell nobody: every watched key is looked
    // at again, which registers it.
    assert_eq!(after, Changes::Lost);
}
