//! A service's first hour with the crate: the one-call fail-open start
//! from the environment, and what an operator sees when a setting is
//! wrong. One test in a binary of its own: it changes the environment and
//! captures the log.

use std::sync::Mutex;

use heat_observer::{LateObserver, Refused};
use log::{Level, Log, Metadata, Record};

static LINES: Mutex<Vec<(Level, String, String)>> = Mutex::new(Vec::new());

struct Capture;

impl Log for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn log(&self, r: &Record<'_>) {
        let line = (r.level(), r.target().to_owned(), r.args().to_string());
        LINES.lock().unwrap().push(line);
    }
    fn flush(&self) {}
}

/// The lines logged since the last call, as `LEVEL message`.
fn take_lines() -> Vec<String> {
    let lines = std::mem::take(&mut *LINES.lock().unwrap());
    for (_, target, _) in &lines {
        assert_eq!(target, "heat_observer");
    }
    lines
        .into_iter()
        .map(|(l, _, m)| format!("{l} {m}"))
        .collect()
}

fn set(vars: &[(&str, Option<&str>)]) {
    for (name, value) in vars {
        // SAFETY: this binary has a single test; no other thread reads the
        // environment while it changes.
        unsafe {
            match value {
                Some(v) => std::env::set_var(name, v),
                None => std::env::remove_var(name),
            }
        }
    }
}

fn sample(text: &str, series: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {series} in {text}"))
        .to_owned()
}

#[test]
fn from_env_starts_fails_open_and_says_why() {
    static LOGGER: Capture = Capture;
    log::set_logger(&LOGGER).unwrap();
    log::set_max_level(log::LevelFilter::Info);

    // A broken setting that only the late look uses: one error line the
    // runbook's grep finds, a startup line that says why and what still
    // runs; the late look refused as a config error, the early look (the
    // baseline the runbook compares against) kept, as a rollback keeps it.
    set(&[("P28_LATE_OBS_POLL_MS", Some("abc"))]);
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    assert_eq!(
        take_lines(),
        [
            r#"ERROR Late observer disabled: invalid P28_LATE_OBS_POLL_MS="abc": expected a whole number of milliseconds; the early look (create_apply_plan) still runs"#,
            r#"INFO P2.8A.3 Late Observer: False (invalid P28_LATE_OBS_POLL_MS="abc"; the early look still runs)"#,
            r#"INFO Late observer off (invalid P28_LATE_OBS_POLL_MS="abc"): observe_late is a counted no-op (refused as config_error); observe_now (create_apply_plan) still looks, on 2 worker thread(s) with a connection each to redis 127.0.0.1:1"#,
        ]
    );
    assert_eq!(observer.observe_late("p1", "S"), Err(Refused::ConfigError));
    assert_eq!(observer.observe_now("p1", "S"), Ok(()));
    let text = observer.render_metrics();
    assert_eq!(sample(&text, "p28_config_error"), "1");
    assert_eq!(sample(&text, "p28_enabled"), "0");
    assert_eq!(
        sample(&text, r#"p28_refused_total{reason="config_error"}"#),
        "1"
    );
    assert_eq!(
        sample(&text, r#"p28_refused_total{reason="disabled"}"#),
        "0"
    );
    observer.shutdown_now(std::time::Duration::from_secs(5));
    take_lines();

    // A typo in a name (the runbook's MAX_WAIT for MAX_WAIT_MS): the same.
    set(&[
        ("P28_LATE_OBS_POLL_MS", None),
        ("P28_LATE_OBS_MAX_WAIT", Some("3000")),
    ]);
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    let lines = take_lines();
    assert!(
        lines[1].starts_with(
            "INFO P2.8A.3 Late Observer: False (unknown P28_LATE_OBS_MAX_WAIT; the early look still runs)"
        ),
        "{lines:?}"
    );
    assert_eq!(observer.observe_late("p1", "S"), Err(Refused::ConfigError));
    assert_eq!(observer.observe_now("p1", "S"), Ok(()));
    assert!(observer.stats().config_error);
    observer.shutdown_now(std::time::Duration::from_secs(5));
    take_lines();

    // A broken setting both looks need turns both off, and says so.
    set(&[
        ("P28_LATE_OBS_MAX_WAIT", None),
        ("P28_LATE_OBS_WORKERS", Some("abc")),
    ]);
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    let lines = take_lines();
    assert_eq!(
        lines[1],
        r#"INFO P2.8A.3 Late Observer: False (invalid P28_LATE_OBS_WORKERS="abc"; the early look is off too)"#,
    );
    assert_eq!(observer.observe_late("p1", "S"), Err(Refused::ConfigError));
    assert_eq!(observer.observe_now("p1", "S"), Err(Refused::ConfigError));
    drop(observer);
    take_lines();
    set(&[("P28_LATE_OBS_WORKERS", None)]);

    // The runbook's rollback is not an error, and metrics tell it apart. It
    // turns off the late observer only, and says in one line what still
    // runs for the original early look.
    set(&[
        ("P28_LATE_OBS_POLL_MS", None),
        ("P28_LATE_OBS_ENABLED", Some("false")),
    ]);
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    let lines = take_lines();
    assert_eq!(
        lines[0],
        "INFO P2.8A.3 Late Observer: False (wait=2000ms, poll=100ms; P28_LATE_OBS_ENABLED=false)"
    );
    assert_eq!(
        lines[1],
        "INFO Late observer off (P28_LATE_OBS_ENABLED=false): observe_late is a counted no-op \
         (refused as disabled); observe_now (create_apply_plan) still looks, on 2 worker \
         thread(s) with a connection each to redis 127.0.0.1:1"
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(observer.observe_late("p1", "S"), Err(Refused::Disabled));
    let text = observer.render_metrics();
    assert_eq!(sample(&text, "p28_config_error"), "0");
    assert_eq!(
        sample(&text, r#"p28_refused_total{reason="disabled"}"#),
        "1"
    );
    drop(observer);
    take_lines();

    // A URL that cannot work names the variable and what is wrong, never
    // the password.
    set(&[
        ("P28_LATE_OBS_ENABLED", None),
        (
            "P28_LATE_OBS_REDIS_URL",
            Some("http://:hunter2@redis.internal:6379"),
        ),
    ]);
    let observer = LateObserver::from_env("redis://127.0.0.1:6379");
    let lines = take_lines();
    assert_eq!(
        lines[0],
        "ERROR Late observer disabled: invalid P28_LATE_OBS_REDIS_URL: unsupported scheme \
         (expected redis://, rediss://, unix:// or redis+unix://)"
    );
    assert!(
        lines[1].starts_with("INFO P2.8A.3 Late Observer: False (invalid P28_LATE_OBS_REDIS_URL")
    );
    assert!(lines.iter().all(|l| !l.contains("hunter2")), "{lines:?}");
    assert!(!format!("{observer:?}").contains("hunter2"));
    assert!(observer.stats().config_error);
    drop(observer);
    take_lines();

    // The caller's URL is the fallback; nothing connects at start, so a
    // Redis that is not there does not stop the service from starting.
    set(&[
        ("P28_LATE_OBS_REDIS_URL", None),
        ("P28_LATE_OBS_MAX_WAIT_MS", Some("300")),
    ]);
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    let lines = take_lines();
    assert_eq!(
        lines[0],
        "INFO P2.8A.3 Late Observer: True (wait=300ms, poll=100ms; P28_LATE_OBS_ENABLED not set: \
         on by default)"
    );
    assert!(lines[1].contains("store: redis 127.0.0.1:1"), "{lines:?}");
    assert_eq!(observer.observe_late("p1", "S"), Ok(()));
    let report = observer.shutdown_now(std::time::Duration::from_secs(5));
    assert!(report.stats.is_balanced());
    assert!(report.stats.enabled && !report.stats.config_error);
    take_lines();

    // P28_LATE_OBS_REDIS_URL wins over the caller's URL, shown without
    // its password by check-config.
    set(&[(
        "P28_LATE_OBS_REDIS_URL",
        Some("redis://:hunter2@127.0.0.1:2/3"),
    )]);
    let config = heat_observer::Config::from_env().unwrap();
    assert_eq!(config.redis_url(), Some("redis://:hunter2@127.0.0.1:2/3"));
    let shown: Vec<_> = config.variables();
    assert!(shown.contains(&("P28_LATE_OBS_REDIS_URL", "redis://***@127.0.0.1:2/3".into())));
    assert!(!format!("{config:?}").contains("hunter2"));
    let observer = LateObserver::from_env("redis://127.0.0.1:1");
    assert!(take_lines()[1].contains("store: redis 127.0.0.1:2"));
    observer.shutdown_now(std::time::Duration::from_secs(5));
}
