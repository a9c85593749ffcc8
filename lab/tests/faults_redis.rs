//! Faults against a real redis-server (issue 13): connections reset under
//! load, a server frozen for seconds, a server out of memory. The runs end
//! in bounded time, every call is accounted for, and a reset costs nothing.

use heat_observer_lab::pipeline;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use heat_observer::{Config, ConfigBuilder, LateObserver, RedisConnector};
use heat_observer_lab::server::{self, Server, unique, xrange};
use heat_observer_lab::{PATIENCE, ms, wait_stats};

fn config() -> ConfigBuilder {
    let ns = unique("faults");
    Config::builder()
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(format!("{ns}:by_plan:"))
}

/// Kills every normal client connection but the caller's.
fn client_kill(server: &Server) -> u64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .query(&mut server.connection())
        .expect("CLIENT KILL")
}

#[test]
fn connections_reset_mid_run_cost_no_observation() {
    let Some(server) = server::private("connections_reset_mid_run") else {
        return;
    };
    let config = config().max_wait(ms(300)).poll(ms(20)).build().unwrap();
    let connector = RedisConnector::new(&server.url(), &config).unwrap();
    let observer = LateObserver::start(config.clone(), connector).unwrap();
    let mut writer = server.connection();
    let mut kills = 0;
    let started = Instant::now();
    for i in 0..600u32 {
        // 500 plans a second; every other plan gets its key at once.
        let due = started + Duration::from_millis(u64::from(i) * 2);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let plan = format!("reset-{i}");
        if i % 2 == 0 {
            let set = redis::cmd("SET")
                .arg(config.heat_key(&plan))
                .arg(1)
                .exec(&mut writer);
            if set.is_err() {
                writer = server.connection();
                redis::cmd("SET")
                    .arg(config.heat_key(&plan))
                    .arg(1)
                    .exec(&mut writer)
                    .unwrap();
            }
        }
        observer.observe_late(&plan, "S").unwrap();
        if i == 200 || i == 400 {
            kills += client_kill(&server);
        }
    }
    assert!(kills >= 4, "the workers' connections were killed: {kills}");
    let stats = wait_stats(&observer, "every plan decided", |s| s.finished() == 600);
    assert_eq!(stats.failed, 0, "{stats:?}");
    assert!(stats.store_errors >= 1, "the resets were seen: {stats:?}");
    // A broken look is tried again at once: no answer came late.
    assert_eq!(stats.late_answers, 0, "{stats:?}");
    assert_eq!((stats.found, stats.not_found), (300, 300));
    let report = observer.shutdown(PATIENCE);
    assert!(report.stats.is_balanced());
    let events = xrange(&mut server.connection(), config.stream());
    let plans: HashSet<_> = events
        .iter()
        .map(|(_, f)| f.iter().find(|(k, _)| k == "plan_id").unwrap().1.clone())
        .collect();
    assert_eq!(
        (events.len(), plans.len()),
        (600, 600),
        "one event per plan"
    );
}

fn options(server: &Server, plans: usize, rate: f64) -> pipeline::Options {
    pipeline::Options {
        plans,
        rate,
        median_ms: 100.0,
        sigma: 0.5,
        missing_pct: 10.0,
        seed: 7,
        run_id: unique("run"),
        target: heat_observer_lab::target::Target::Redis(server.url()),
        metrics_addr: None,
        linger: Duration::ZERO,
        json: true,
        key_ttl: None,
    }
}

#[test]
fn a_server_frozen_for_three_seconds_delays_but_the_run_ends_and_adds_up() {
    let Some(server) = server::private("a_server_frozen_for_three_seconds") else {
        return;
    };
    let config = config().max_wait(ms(500)).build().unwrap();
    let options = options(&server, 1000, 500.0);
    let freezer = {
        let pid_server = &server;
        std::thread::scope(|s| {
            let frozen = s.spawn(move || {
                std::thread::sleep(ms(500));
                pid_server.stall();
                std::thread::sleep(ms(3000));
                pid_server.resume();
            });
            let started = Instant::now();
            let (outcome, _) = pipeline::run(&options, config.clone());
            frozen.join().unwrap();
            (outcome, started.elapsed())
        })
    };
    let (outcome, took) = freezer;
    let s = &outcome.stats;
    // Plans for 2 s, the freeze, then at most the wait, the retry window and
    // a few seconds: the main job ends whatever Redis does.
    let bound =
        Duration::from_secs(2) + config.max_wait() + config.retry_window() + Duration::from_secs(8);
    assert!(took < bound, "took {took:?}");
    assert!(s.is_balanced(), "{s:?}");
    assert_eq!(s.calls(), 2000);
    assert!(s.store_errors > 0, "{s:?}");
    eprintln!(
        "frozen 3 s: found {}, not found {}, failed {}, late answers {}, refused {}, bridge failed writes {}, in {took:?}",
        s.found,
        s.not_found,
        s.failed,
        s.late_answers,
        s.refused(),
        outcome.bridge_failed_writes
    );
}

#[test]
fn a_server_out_of_memory_refuses_every_write_the_run_ends_and_adds_up() {
    let args = ["--maxmemory-policy", "noeviction"];
    let Some(server) = server::private_with("a_server_out_of_memory", &args) else {
        return;
    };
    // Fill it first, as a busy shared Redis would be, then set the limit
    // 2 MB below what it holds: every write is refused whatever memory a
    // connection's buffers free meanwhile (a limit just under the last
    // write let a few events fit now and then).
    let mut con = server.connection();
    for i in 0..64 {
        redis::cmd("SET")
            .arg(format!("ballast-{i}"))
            .arg(vec![b'x'; 64 * 1024])
            .exec(&mut con)
            .expect("ballast");
    }
    let info: String = redis::cmd("INFO").arg("memory").query(&mut con).unwrap();
    let used: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory");
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(used - 2 * 1024 * 1024)
        .exec(&mut con)
        .unwrap();
    assert!(
        redis::cmd("SET")
            .arg("one-more")
            .arg(1)
            .exec(&mut con)
            .is_err(),
        "the server refuses writes"
    );
    let config = config()
        .max_wait(ms(300))
        .retry_window(ms(1000))
        .build()
        .unwrap();
    let started = Instant::now();
    let (outcome, _) = pipeline::run(&options(&server, 1000, 1000.0), config.clone());
    let took = started.elapsed();
    let s = &outcome.stats;
    assert!(s.is_balanced(), "{s:?}");
    assert_eq!(s.calls(), 2000);
    assert_eq!(s.found + s.not_found, 0, "no event fits: {s:?}");
    assert!(s.failed > 0, "{s:?}");
    assert!(
        outcome.bridge_failed_writes > 0,
        "the bridge's SETEX is refused too"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    eprintln!(
        "out of memory: failed {}, refused queue full {}, bridge failed writes {}, in {took:?}",
        s.failed, s.refused_queue_full, outcome.bridge_failed_writes
    );
}
