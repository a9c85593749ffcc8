//! Against a real redis-server: the event shape the runbook reads, dedupe and
//! trimming, several observers, and the fail-open promises while Redis is
//! missing, killed, restarted or stalled. Each test starts its own private
//! server (or uses `REDIS_URL` where it needs no control over it).

mod support;

use std::collections::HashMap;
use std::net::TcpListener;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use heat_observer::{
    Config, ConfigBuilder, LateObserver, ObsPoint, RedisConnector,
    store::{Answers, Claim, Connector, Event, Store, StoreErrorKind, StreamSpec},
};
use redis::Commands;
use support::server::{self, Server, connect, unique, xrange};
use support::{PATIENCE, ms, wait_stats, wait_until};

/// A config on its own stream and key prefix, so tests can share a server.
fn config(max_wait_ms: u64) -> ConfigBuilder {
    let ns = unique("obs");
    Config::builder()
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(format!("{ns}:by_plan:"))
        .max_wait(ms(max_wait_ms))
        .poll(ms(20))
}

fn start(config: &Config, url: &str) -> LateObserver {
    let connector = RedisConnector::new(url, config).expect("valid URL");
    LateObserver::start(config.clone(), connector).expect("start")
}

fn write_key(con: &mut redis::Connection, config: &Config, plan: &str) {
    let _: () = con
        .set_ex(config.heat_key(plan), 1, 3600)
        .expect("SET heat key");
}

/// Events by plan id, checking that no plan has two events per point.
fn events_by_plan(
    con: &mut redis::Connection,
    config: &Config,
) -> HashMap<String, HashMap<String, String>> {
    let mut by_plan = HashMap::new();
    for (_, fields) in xrange(con, config.stream()) {
        let map: HashMap<String, String> = fields.into_iter().collect();
        let key = format!("{}|{}", map["plan_id"], map["obs_point"]);
        assert!(
            by_plan.insert(key.clone(), map).is_none(),
            "two events for {key}"
        );
    }
    by_plan
        .into_iter()
        .filter(|(k, _)| k.ends_with("|publish_plan_post"))
        .map(|(k, v)| (k.trim_end_matches("|publish_plan_post").to_owned(), v))
        .collect()
}

fn redis_cli_available() -> bool {
    Command::new("redis-cli")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn events_have_the_contract_shape_and_the_runbook_commands_count_them() {
    let Some(target) = server::any("events_have_the_contract_shape") else {
        return;
    };
    let url = target.url();
    let config = config(300).build().unwrap();
    let mut con = connect(&url);
    for i in 0..15 {
        write_key(&mut con, &config, &format!("p{i}"));
    }
    let observer = start(&config, &url);
    for i in 0..20 {
        observer.observe_late(&format!("p{i}"), "BTCUSDT").unwrap();
    }
    for i in 0..5 {
        observer.observe_now(&format!("p{i}"), "BTCUSDT").unwrap();
    }
    wait_stats(&observer, "all 25 decided and written", |s| {
        s.finished() == 25
    });

    let entries = xrange(&mut con, config.stream());
    assert_eq!(entries.len(), 25);
    for (_, fields) in &entries {
        let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, Event::FIELDS);
    }
    let late = events_by_plan(&mut con, &config);
    for i in 0..20 {
        let e = &late[&format!("p{i}")];
        let wait: u64 = e["wait_ms"].parse().unwrap();
        assert_eq!(e["symbol"], "BTCUSDT");
        assert_eq!(e["max_wait_ms"], "300");
        if i < 15 {
            assert_eq!(e["heat_found"], "1", "p{i}");
            assert!(wait < 300, "found early: {wait}");
        } else {
            assert_eq!(e["heat_found"], "0", "p{i}");
            // Polling, the last look comes up to two spacings (20 ms)
            // before the deadline, so that a key it finds was there by it.
            assert!(
                (280..600).contains(&wait),
                "not found at the deadline: {wait}"
            );
        }
    }

    if !redis_cli_available() {
        server::skip(
            "the runbook's redis-cli commands",
            "redis-cli is not on PATH",
        );
        return;
    }
    // The runbook's commands, verbatim but for the stream name and -u URL.
    let stream = config.stream();
    let newest_20_late = entries
        .iter()
        .rev()
        .take(20)
        .filter(|(_, f)| f[2].1 == "publish_plan_post")
        .count();
    let grep = format!(
        "redis-cli -u {url} XREVRANGE {stream} + - COUNT 20 | grep -c \"publish_plan_post\""
    );
    assert_eq!(sh(&grep).trim(), newest_20_late.to_string());
    let awk = format!(
        "redis-cli -u {url} XREVRANGE {stream} + - COUNT 100 | \\\n\
         awk '/obs_point/ {{getline; if ($0 == \"publish_plan_post\") {{getline; getline; getline; if ($0 == \"heat_found\") {{getline; count[$0]++}}}}}} END {{for (k in count) print \"heat_found=\" k \": \" count[k]}}'"
    );
    let mut lines: Vec<String> = sh(&awk).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(lines, ["heat_found=0: 5", "heat_found=1: 15"]);
    let keys = format!(
        "redis-cli -u {url} KEYS \"{}*\" | wc -l",
        config.heat_key_prefix()
    );
    assert_eq!(sh(&keys).trim(), "15");
}

fn sh(script: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn dedupe_keys_carry_a_ttl_and_the_stream_is_trimmed_near_maxlen() {
    let Some(target) = server::any("dedupe_keys_carry_a_ttl") else {
        return;
    };
    let url = target.url();
    let config = config(20)
        .poll(ms(10))
        .stream_maxlen(100)
        .dedupe_ttl(ms(60_000))
        .build()
        .unwrap();
    let observer = start(&config, &url);
    for i in 0..1000 {
        observer.observe_late(&format!("t{i}"), "S").unwrap();
    }
    wait_stats(&observer, "all written", |s| s.not_found == 1000);
    let mut con = connect(&url);
    let len: u64 = redis::cmd("XLEN")
        .arg(config.stream())
        .query(&mut con)
        .unwrap();
    // MAXLEN ~ trims whole macro nodes (100 entries by default).
    assert!((100..=250).contains(&len), "stream length {len}");
    let ttl: i64 = con
        .pttl(config.dedupe_key(ObsPoint::PUBLISH_PLAN_POST, "t999"))
        .unwrap();
    assert!(ttl > 50_000 && ttl <= 60_000, "PTTL {ttl}");
    let owner: String = con
        .get(config.dedupe_key(ObsPoint::PUBLISH_PLAN_POST, "t0"))
        .unwrap();
    assert!(!owner.is_empty());
}

#[test]
fn two_observers_like_two_processes_write_one_event_per_plan() {
    let Some(target) = server::any("two_observers_like_two_processes") else {
        return;
    };
    let url = target.url();
    let config = config(200).build().unwrap();
    let mut con = connect(&url);
    for i in (0..100).step_by(2) {
        write_key(&mut con, &config, &format!("shared-{i}"));
    }
    let a = start(&config, &url);
    let b = start(&config, &url);
    for i in 0..100 {
        let plan = format!("shared-{i}");
        a.observe_late(&plan, "S").unwrap();
        b.observe_late(&plan, "S").unwrap();
    }
    let sa = wait_stats(&a, "a done", |s| s.finished() == 100);
    let sb = wait_stats(&b, "b done", |s| s.finished() == 100);
    assert_eq!(sa.deduplicated + sb.deduplicated, 100);
    assert_eq!(sa.found + sb.found, 50);
    let late = events_by_plan(&mut con, &config); // asserts one per plan
    assert_eq!(late.len(), 100);
}

#[test]
fn redis_down_at_start_then_up_observe_never_blocks_and_everything_is_counted() {
    let port = server::free_port();
    let url = format!("redis://127.0.0.1:{port}");
    if !server::available() {
        return server::skip("redis_down_at_start", "redis-server is not on PATH");
    }
    let config = config(400).retry_window(ms(5000)).build().unwrap();
    let observer = start(&config, &url);
    let mut slowest = Duration::ZERO;
    for i in 0..20 {
        let t = Instant::now();
        observer.observe_late(&format!("early-{i}"), "S").unwrap();
        slowest = slowest.max(t.elapsed());
    }
    wait_stats(&observer, "the workers find Redis missing", |s| {
        s.store_errors >= 2
    });
    let server = Server::start(port, &[]);
    let mut con = server.connection();
    for i in 0..20 {
        write_key(&mut con, &config, &format!("later-{i}"));
    }
    for i in 0..20 {
        let t = Instant::now();
        observer.observe_late(&format!("later-{i}"), "S").unwrap();
        slowest = slowest.max(t.elapsed());
    }
    let stats = wait_stats(&observer, "every job ends", |s| s.finished() == 40);
    // No call waited for the stalled server (a store call waits its 50 ms
    // timeout); how fast a call is belongs to the benchmark, not here.
    assert!(
        slowest < config.redis_timeout(),
        "slowest observe call took {slowest:?}"
    );
    assert!(stats.is_balanced(), "{stats:?}");
    // Early jobs failed (their last look fell while Redis was down) or were
    // decided once it came up; later ones were all found.
    assert_eq!(stats.failed + stats.not_found, 20, "{stats:?}");
    assert_eq!(stats.found, 20);
    let late = events_by_plan(&mut con, &config);
    assert!((0..20).all(|i| late[&format!("later-{i}")]["heat_found"] == "1"));
}

#[test]
fn redis_killed_and_restarted_workers_reconnect_and_nothing_is_written_twice() {
    let Some(mut server) = server::private("redis_killed_and_restarted") else {
        return;
    };
    let config = config(3000).build().unwrap();
    let observer = start(&config, &server.url());
    let mut con = server.connection();
    for i in 0..20 {
        write_key(&mut con, &config, &format!("before-{i}"));
        observer.observe_late(&format!("before-{i}"), "S").unwrap();
    }
    wait_stats(&observer, "the first batch is written", |s| s.found == 20);

    server.kill();
    for i in 0..20 {
        observer.observe_late(&format!("during-{i}"), "S").unwrap();
    }
    wait_stats(&observer, "looks fail while Redis is gone", |s| {
        s.store_errors >= 2
    });
    server.restart(); // same port, empty: nothing was persisted
    let mut con = server.connection();
    for i in 0..20 {
        write_key(&mut con, &config, &format!("during-{i}"));
        write_key(&mut con, &config, &format!("after-{i}"));
        observer.observe_late(&format!("after-{i}"), "S").unwrap();
    }
    let stats = wait_stats(&observer, "every job ends", |s| s.finished() == 60);
    assert_eq!(stats.found, 60, "{stats:?}");
    let late = events_by_plan(&mut con, &config); // asserts one per plan
    assert_eq!(
        late.len(),
        40,
        "the restarted server holds the later events once each"
    );
    let report = observer.shutdown(PATIENCE);
    assert!(report.stats.is_balanced());
}

#[test]
fn redis_stalled_observe_stays_fast_and_shutdown_keeps_its_bound() {
    let Some(server) = server::private("redis_stalled") else {
        return;
    };
    let config = config(2000).build().unwrap();
    let observer = start(&config, &server.url());
    let mut con = server.connection();
    for i in 0..50 {
        write_key(&mut con, &config, &format!("s{i}"));
    }
    for i in 0..100 {
        observer.observe_late(&format!("s{i}"), "S").unwrap();
    }
    wait_stats(&observer, "the keys that exist are found", |s| {
        s.found == 50
    });
    server.stall();
    let mut slowest = Duration::ZERO;
    for i in 0..2000 {
        let t = Instant::now();
        let _ = observer.observe_late(&format!("stalled-{i}"), "S");
        slowest = slowest.max(t.elapsed());
    }
    wait_stats(&observer, "the workers hit the timeout", |s| {
        s.store_errors >= 2
    });
    let t = Instant::now();
    let report = observer.shutdown(ms(500));
    let took = t.elapsed();
    server.resume();
    // No call waited for the stalled server (a store call waits its 50 ms
    // timeout); how fast a call is belongs to the benchmark, not here.
    assert!(
        slowest < config.redis_timeout(),
        "slowest observe call took {slowest:?}"
    );
    assert!(took < ms(700), "shutdown(500ms) took {took:?}");
    assert!(
        report.is_complete(),
        "50 ms store timeouts let every worker stop: {report:?}"
    );
    assert_eq!(report.stats.panicked, 0);
    assert!(report.stats.is_balanced(), "{:?}", report.stats);
}

#[test]
fn a_stalled_server_costs_one_timeout_per_call_whatever_the_batch_size() {
    let Some(server) = server::private("a_stalled_server_costs_one_timeout") else {
        return;
    };
    let connector = RedisConnector::with_timeout(&server.url(), ms(50)).unwrap();
    let mut store = connector.connect(0);
    assert_eq!(
        store
            .look(&["warm-up"], false)
            .and_then(Answers::whole)
            .unwrap(),
        [false]
    );
    let keys: Vec<String> = (0..5000).map(|i| format!("k{i}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(
        store
            .look(&keys, false)
            .and_then(Answers::whole)
            .unwrap()
            .len(),
        5000
    );

    server.stall();
    let t = Instant::now();
    let err = store
        .look(&keys, false)
        .and_then(Answers::whole)
        .unwrap_err();
    let took = t.elapsed();
    assert_eq!(err.kind(), StoreErrorKind::Timeout, "{err}");
    assert!(
        took < ms(200),
        "5,000 keys against a stalled server took {took:?}"
    );

    // The connection was dropped; reconnecting backs off, then times out once.
    let event = event("e");
    let claims: Vec<Claim<'_>> = (0..1000)
        .map(|_| Claim {
            dedupe_key: "d",
            owner: "o",
            event: &event,
        })
        .collect();
    let spec = StreamSpec {
        name: "s".into(),
        maxlen: 10,
        dedupe_ttl: ms(1000),
    };
    let t = Instant::now();
    while store.claim_and_append(&spec, &claims).unwrap_err().kind() == StoreErrorKind::Unavailable
    {
        assert!(t.elapsed() < ms(2000), "still backing off");
    }
    server.resume();
    wait_until("the store works again", || {
        store.look(&keys, false).and_then(Answers::whole).is_ok()
    });
}

fn event(plan: &str) -> Event {
    Event::new(plan, "S", ObsPoint::PUBLISH_PLAN_POST)
}

#[test]
fn a_unix_socket_url_works() {
    let Some(server) = server::private("a_unix_socket_url_works") else {
        return;
    };
    let url = format!("redis+unix://{}", server.socket().display());
    let config = config(200).build().unwrap();
    let connector = RedisConnector::new(&url, &config).unwrap();
    assert!(
        connector.describe().starts_with("redis unix:/"),
        "{}",
        connector.describe()
    );
    let observer = LateObserver::start(config.clone(), connector).unwrap();
    let mut con = server.connection();
    write_key(&mut con, &config, "u1");
    observer.observe_late("u1", "S").unwrap();
    wait_stats(&observer, "found over the socket", |s| s.found == 1);
}

#[test]
fn a_dead_redis_sees_a_few_connect_attempts_per_second_from_the_whole_pool() {
    // A listener that accepts and hangs up at once counts every attempt.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let attempts = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let counter = {
        let (attempts, stop) = (Arc::clone(&attempts), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((socket, _)) => {
                        attempts.fetch_add(1, Ordering::Relaxed);
                        drop(socket);
                    }
                    Err(_) => std::thread::sleep(ms(1)),
                }
            }
        })
    };
    let config = config(10_000).workers(2).build().unwrap();
    let observer = start(&config, &url);
    for i in 0..50 {
        observer.observe_late(&format!("d{i}"), "S").unwrap();
    }
    // The rate is what is measured, so let the clock run.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    counter.join().unwrap();
    let n = attempts.load(Ordering::Relaxed);
    // Per worker: about 5 in the first second, then about one a second.
    assert!(
        (2..=24).contains(&n),
        "{n} connect attempts in 3 s from 2 workers"
    );
    let stats = observer.stats();
    assert!(
        stats.exists_calls > 100,
        "the workers kept ticking: {}",
        stats.exists_calls
    );
}
