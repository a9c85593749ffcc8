//! Every numeric setting at its limits (issue 27): 0, 1, its maximum, its
//! maximum + 1 and the type's maximum, through the builder and through the
//! environment. Each value is either refused with the setting's name, or
//! accepted and then it works: a start against a real Redis, 100
//! observations, a `shutdown` that returns, every call accounted for and
//! every event counted as written found in the stream (`XINFO STREAM`'s
//! `entries-added`, which trimming does not lower).

mod support;

use std::time::Duration;

use heat_observer::{Config, ConfigError, LateObserver, RedisConnector};
use support::server::{self, Server, unique};
use support::wait_stats;

/// A numeric setting: its variable (or builder method), its largest
/// accepted value, and how the builder sets it.
struct Limit {
    name: &'static str,
    max: u64,
    set: fn(heat_observer::ConfigBuilder, Raw) -> heat_observer::ConfigBuilder,
}

/// A value as the builder takes it: a count, or the largest the type has.
#[derive(Clone, Copy, Debug)]
enum Raw {
    N(u64),
    TypeMax,
}

fn dur(raw: Raw) -> Duration {
    match raw {
        Raw::N(n) => Duration::from_millis(n),
        Raw::TypeMax => Duration::MAX,
    }
}

fn size(raw: Raw) -> usize {
    match raw {
        Raw::N(n) => usize::try_from(n).unwrap_or(usize::MAX),
        Raw::TypeMax => usize::MAX,
    }
}

fn count(raw: Raw) -> u64 {
    match raw {
        Raw::N(n) => n,
        Raw::TypeMax => u64::MAX,
    }
}

const LIMITS: &[Limit] = &[
    Limit {
        name: "P28_LATE_OBS_MAX_WAIT_MS",
        max: 3_600_000,
        set: |b, v| b.max_wait(dur(v)),
    },
    Limit {
        name: "P28_LATE_OBS_POLL_MS",
        max: 2000, // the max wait
        set: |b, v| b.poll(dur(v)),
    },
    Limit {
        name: "P28_LATE_OBS_WORKERS",
        max: 64,
        set: |b, v| b.workers(size(v)),
    },
    Limit {
        name: "P28_LATE_OBS_QUEUE_CAPACITY",
        max: 1 << 20,
        set: |b, v| b.queue_capacity(size(v)),
    },
    Limit {
        name: "P28_LATE_OBS_IN_FLIGHT",
        max: 1 << 20,
        set: |b, v| b.max_in_flight(size(v)),
    },
    Limit {
        name: "P28_LATE_OBS_DEDUPE_TTL_MS",
        max: 365 * 24 * 3600 * 1000,
        set: |b, v| b.dedupe_ttl(dur(v)),
    },
    Limit {
        name: "P28_LATE_OBS_STREAM_MAXLEN",
        max: 1_000_000_000,
        set: |b, v| b.stream_maxlen(count(v)),
    },
    Limit {
        name: "P28_LATE_OBS_REDIS_TIMEOUT_MS",
        max: 60_000,
        set: |b, v| b.redis_timeout(dur(v)),
    },
    Limit {
        name: "P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS",
        max: 600_000,
        set: |b, v| b.shutdown_timeout(dur(v)),
    },
    Limit {
        name: "P28_LATE_OBS_RETRY_MS",
        max: 600_000,
        set: |b, v| b.retry_window(dur(v)),
    },
    Limit {
        name: "warn_interval",
        max: 3_600_000,
        set: |b, v| b.warn_interval(dur(v)),
    },
    Limit {
        name: "worker_stack_size",
        max: 1 << 30,
        set: |b, v| b.worker_stack_size(size(v)),
    },
];

/// The values tried for a setting whose largest accepted value is `max`.
fn values(max: u64) -> [Raw; 5] {
    [
        Raw::N(0),
        Raw::N(1),
        Raw::N(max),
        Raw::N(max + 1),
        Raw::TypeMax,
    ]
}

/// The variables that are not numeric: their limits are not counts.
const NOT_NUMERIC: &[&str] = &[
    "P28_LATE_OBS_ENABLED",
    "P28_LATE_OBS_REDIS_URL",
    "P28_LATE_OBS_NAME",
    "P28_LATE_OBS_DETECT",
];

#[test]
fn every_numeric_variable_has_a_row_here() {
    for (name, _) in Config::default().variables() {
        assert!(
            NOT_NUMERIC.contains(&name) || LIMITS.iter().any(|l| l.name == name),
            "{name} has no row in tests/limits.rs"
        );
    }
}

/// Starts `config` on `server`, makes 100 observations of plans whose keys
/// exist, stops it, and checks what was counted against the stream.
fn works(server: &Server, config: Config, what: &str) {
    let ns = unique("limits");
    let config = config
        .to_builder()
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(format!("{ns}:by_plan:"))
        .build()
        .unwrap_or_else(|e| panic!("{what}: the namespace made it invalid: {e}"));
    let mut con = server.connection();
    for i in 0..100 {
        redis::cmd("SET")
            .arg(config.heat_key(&format!("p{i}")))
            .arg(1)
            .exec(&mut con)
            .unwrap();
    }
    let connector = RedisConnector::new(&server.url(), &config).unwrap();
    let observer = LateObserver::start(config.clone(), connector)
        .unwrap_or_else(|e| panic!("{what}: accepted, then start failed: {e}"));
    for i in 0..100 {
        let _ = observer.observe_late(&format!("p{i}"), "S");
    }
    let accepted = observer.stats().accepted;
    let stats = wait_stats(&observer, what, |s| s.finished() == accepted);
    let report = observer.shutdown(Duration::from_secs(10));
    let end = &report.stats;
    assert!(end.is_balanced(), "{what}: {end:?}");
    assert_eq!(end.calls(), 100, "{what}");
    assert_eq!(
        end.failed, 0,
        "{what}: an accepted setting must work: {end:?}"
    );
    if config.enabled() {
        assert_eq!(
            stats.found, accepted,
            "{what}: every key was there: {end:?}"
        );
    }
    let written = entries_added(&mut con, config.stream());
    assert_eq!(written, end.found + end.not_found, "{what}: {end:?}");
}

/// Every entry ever added to `stream` (0 if there is none).
fn entries_added(con: &mut redis::Connection, stream: &str) -> u64 {
    let info: redis::RedisResult<Vec<redis::Value>> =
        redis::cmd("XINFO").arg("STREAM").arg(stream).query(con);
    let Ok(info) = info else { return 0 };
    let mut fields = info.into_iter();
    while let Some(name) = fields.next() {
        let value = fields.next();
        if redis::from_redis_value::<String>(name).ok().as_deref() == Some("entries-added") {
            return value.and_then(|v| redis::from_redis_value(v).ok()).unwrap();
        }
    }
    panic!("no entries-added in XINFO STREAM")
}

fn refused_with_its_name(result: &Result<Config, ConfigError>, name: &str, what: &str) -> bool {
    match result {
        Err(e) => {
            assert!(
                e.to_string().contains(name),
                "{what}: {e} does not name {name}"
            );
            true
        }
        Ok(_) => false,
    }
}

#[test]
fn every_numeric_setting_at_its_limits_is_refused_by_name_or_works() {
    let Some(server) = server::private("every_numeric_setting_at_its_limits") else {
        return;
    };
    let mut accepted = 0;
    for limit in LIMITS {
        for raw in values(limit.max) {
            let what = format!("{} = {raw:?} (builder)", limit.name);
            let built = (limit.set)(Config::builder(), raw).build();
            if !refused_with_its_name(&built, limit.name, &what) {
                works(&server, built.unwrap(), &what);
                accepted += 1;
            }
            if limit.name.starts_with("P28_") {
                let text = match raw {
                    Raw::N(n) => n.to_string(),
                    Raw::TypeMax => u64::MAX.to_string(),
                };
                let what = format!("{}={text} (environment)", limit.name);
                let read = Config::from_vars([(limit.name, text.as_str())]);
                if !refused_with_its_name(&read, limit.name, &what) {
                    works(&server, read.unwrap(), &what);
                    accepted += 1;
                }
            }
        }
        // Past the maximum, always refused.
        let what = format!("{} past its maximum", limit.name);
        let past = (limit.set)(Config::builder(), Raw::N(limit.max + 1)).build();
        assert!(refused_with_its_name(&past, limit.name, &what), "{what}");
        let past = (limit.set)(Config::builder(), Raw::TypeMax).build();
        assert!(refused_with_its_name(&past, limit.name, &what), "{what}");
    }
    eprintln!("{accepted} accepted values started, observed and stopped; the rest refused by name");
    assert!(accepted >= LIMITS.len() * 2, "{accepted} values accepted");
}
