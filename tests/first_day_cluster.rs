//! A user's first day on Redis Cluster (issue 28): the same one-call
//! fail-open start as on one server, the cluster given as a list of nodes
//! in `P28_LATE_OBS_REDIS_URL` (which wins over the caller's URL, as on one
//! server), and a bad value said as a config error, never as a rollback.
//! One test in a binary of its own: it changes the environment and
//! captures the log.
#![cfg(feature = "cluster")]

mod support;

use std::sync::Mutex;

use heat_observer::{Config, LateObserver, Refused};
use log::{Level, Log, Metadata, Record};
use support::cluster::Cluster;
use support::{ms, wait_stats};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.target() == "heat_observer" && m.level() <= Level::Info
    }
    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            LINES
                .lock()
                .unwrap()
                .push(format!("{} {}", r.level(), r.args()));
        }
    }
    fn flush(&self) {}
}

fn take_lines() -> Vec<String> {
    std::mem::take(&mut *LINES.lock().unwrap())
}

fn set(vars: &[(&str, Option<&str>)]) {
    for (name, value) in vars {
        // SAFETY: this binary has a single test; the variables change only
        // while no observer of this test runs (each is shut down first).
        unsafe {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

#[test]
fn a_cluster_starts_in_one_fail_open_call_from_the_environment() {
    // Set before any thread of this test starts.
    set(&[("P28_LATE_OBS_MAX_WAIT_MS", Some("300"))]);
    static LOGGER: Capture = Capture;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Info);
    let Some(cluster) = Cluster::start("a_cluster_starts_in_one_fail_open_call") else {
        return;
    };
    let nodes: Vec<String> = cluster
        .addresses()
        .iter()
        .map(|a| format!("redis://{a}"))
        .collect();
    let list = nodes.join(",");
    let mut con = cluster.connection();
    let key = Config::default().heat_key("first-day");
    redis::cmd("SET").arg(&key).arg(1).exec(&mut con).unwrap();

    // The node list in the variable wins over the caller's (dead) URL.
    set(&[("P28_LATE_OBS_REDIS_URL", Some(list.as_str()))]);
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    let lines = take_lines();
    assert!(
        lines[0].starts_with("INFO P2.8A.3 Late Observer: True (wait=300ms, poll=100ms;"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("store: redis cluster 127.0.0.1:"),
        "{lines:?}"
    );
    observer.observe_late("first-day", "S").unwrap();
    wait_stats(&observer, "found on the cluster", |s| s.found == 1);
    // A slot given to another master (as a failover or a reshard does) is
    // said once, for all workers, naming the slots, both masters and what
    // it was (the new master was no replica of the old: a reshard).
    let slot = cluster.slot_of(&Config::default().heat_key("moved"));
    let from = cluster.node_of(&Config::default().heat_key("moved"));
    let to = (from + 1) % 3;
    cluster.move_empty_slot(slot, to);
    observer.observe_late("moved", "S").unwrap();
    wait_stats(&observer, "the moved plan decided", |s| s.not_found == 1);
    let said: Vec<String> = take_lines()
        .into_iter()
        .filter(|l| l.contains("changed (a reshard)"))
        .collect();
    assert_eq!(said.len(), 1, "{said:?}");
    let port = |i: usize| cluster.nodes[i].port();
    assert!(
        said[0].contains(&format!(
            "slot {slot} from 127.0.0.1:{} to 127.0.0.1:{}",
            port(from),
            port(to)
        )),
        "{said:?}"
    );
    assert!(observer.shutdown(ms(3000)).stats.is_balanced());
    take_lines();

    // A bad value is a config error, not a rollback: the late look off,
    // the early look kept, on the cluster.
    set(&[("P28_LATE_OBS_POLL_MS", Some("abc"))]);
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    let lines = take_lines();
    assert!(
        lines.iter().any(|l| l
            .contains(r#"False (invalid P28_LATE_OBS_POLL_MS="abc"; the early look still runs)"#)),
        "{lines:?}"
    );
    assert!(observer.stats().config_error);
    assert_eq!(observer.observe_late("p", "S"), Err(Refused::ConfigError));
    observer.observe_now("first-day", "S").unwrap();
    wait_stats(&observer, "the early look on the cluster", |s| s.found == 1);
    let text = observer.render_metrics();
    assert!(text.contains("p28_config_error 1"), "{text}");
    observer.shutdown(ms(3000));
    take_lines();

    // A node list that cannot work names the variable, never a password.
    set(&[
        ("P28_LATE_OBS_POLL_MS", None),
        (
            "P28_LATE_OBS_REDIS_URL",
            Some("redis://:hunter2@127.0.0.1:7000,http://x:1"),
        ),
    ]);
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    let lines = take_lines();
    assert!(
        lines[0].starts_with("ERROR Late observer disabled: invalid P28_LATE_OBS_REDIS_URL:"),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains("hunter2")), "{lines:?}");
    assert!(observer.stats().config_error);
    let shown = Config::from_env().unwrap().variables();
    let url = shown
        .iter()
        .find(|(n, _)| *n == "P28_LATE_OBS_REDIS_URL")
        .unwrap();
    assert!(url.1.starts_with("redis://***@127.0.0.1:7000,"), "{url:?}");
    drop(observer);
    take_lines();

    // A start with a connector of its own cannot follow the variable: it
    // says so, rather than ignore it in silence.
    set(&[("P28_LATE_OBS_REDIS_URL", Some("redis://127.0.0.1:1"))]);
    let config = Config::from_env().unwrap();
    let connector = heat_observer::RedisClusterConnector::new(&nodes, &config).unwrap();
    let observer = LateObserver::start(config, connector).unwrap();
    let lines = take_lines();
    assert!(
        lines[0].starts_with("WARN Late observer: P28_LATE_OBS_REDIS_URL is set, but this start was given its own connector (redis cluster 127.0.0.1:"),
        "{lines:?}"
    );
    observer.shutdown(ms(3000));
}
