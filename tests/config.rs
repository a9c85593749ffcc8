//! Configuration: pinned defaults, strict parsing, errors that name the
//! variable and the value, setters over the environment.

use std::time::Duration;

use heat_observer::metrics::MetricsFormat;
use heat_observer::*;

fn from(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_vars(vars.iter().copied())
}

#[test]
fn defaults_are_pinned() {
    // The variables and their effective defaults, as an env file says them.
    let want = [
        ("P28_LATE_OBS_ENABLED", "true"),
        ("P28_LATE_OBS_MAX_WAIT_MS", "2000"),
        ("P28_LATE_OBS_POLL_MS", "100"),
        ("P28_LATE_OBS_WORKERS", "2"),
        ("P28_LATE_OBS_QUEUE_CAPACITY", "16384"),
        ("P28_LATE_OBS_IN_FLIGHT", "32768"),
        ("P28_LATE_OBS_DEDUPE_TTL_MS", "86400000"),
        ("P28_LATE_OBS_STREAM_MAXLEN", "100000"),
        ("P28_LATE_OBS_REDIS_TIMEOUT_MS", "50"),
        ("P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS", "2500"),
        ("P28_LATE_OBS_RETRY_MS", "5000"),
        ("P28_LATE_OBS_REDIS_URL", ""),
        ("P28_LATE_OBS_NAME", ""),
        ("P28_LATE_OBS_DETECT", "poll"),
    ];
    let got = Config::default().variables();
    let got: Vec<(&str, &str)> = got.iter().map(|(n, v)| (*n, v.as_str())).collect();
    assert_eq!(got, want);

    let c = Config::default();
    assert!(c.enabled());
    assert_eq!(c.max_wait(), Duration::from_millis(2000));
    assert_eq!(c.poll(), Duration::from_millis(100));
    assert_eq!(c.workers(), 2);
    assert_eq!(c.queue_capacity(), 16_384);
    assert_eq!(c.max_in_flight(), 32_768);
    assert_eq!(c.dedupe_ttl(), Duration::from_secs(86_400));
    assert_eq!(c.stream_maxlen(), 100_000);
    assert_eq!(c.redis_timeout(), Duration::from_millis(50));
    // A default stop drains a plan accepted just before it.
    assert_eq!(c.shutdown_timeout(), Duration::from_millis(2500));
    assert_eq!(c.retry_window(), Duration::from_millis(5000));
    assert_eq!(c.heat_key("p1"), "quantum:harvest:heat:by_plan:p1");
    assert_eq!(c.stream(), "quantum:stream:apply.heat.observed");
    assert_eq!(c.warn_interval(), Duration::from_secs(10));
    assert_eq!(
        MetricsFormat::Prometheus.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
    // The defaults watch a burst of 10,000 plans at once.
    assert!(c.workers() * c.max_in_flight() >= 10_000);
    assert!(c.queue_capacity() >= 10_000);
    assert_eq!(from(&[]), Ok(c.clone()));
    assert_eq!(Config::builder().build(), Ok(c));
}

#[test]
fn the_runbook_settings_are_read() {
    let c = from(&[
        ("P28_LATE_OBS_ENABLED", "true"),
        ("P28_LATE_OBS_MAX_WAIT_MS", "3000"),
        ("P28_LATE_OBS_POLL_MS", "250"),
        ("P28_LATE_OBS_WORKERS", "4"),
        ("P28_LATE_OBS_QUEUE_CAPACITY", "100"),
        ("P28_LATE_OBS_IN_FLIGHT", "1"),
        ("P28_LATE_OBS_DEDUPE_TTL_MS", "60000"),
        ("P28_LATE_OBS_STREAM_MAXLEN", "500"),
        ("P28_LATE_OBS_REDIS_TIMEOUT_MS", "20"),
        ("P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS", "0"),
        ("P28_LATE_OBS_RETRY_MS", "0"),
    ])
    .unwrap();
    assert_eq!(c.max_wait(), Duration::from_millis(3000));
    assert_eq!(c.poll(), Duration::from_millis(250));
    assert_eq!(
        (c.workers(), c.queue_capacity(), c.max_in_flight()),
        (4, 100, 1)
    );
    assert_eq!(c.dedupe_ttl(), Duration::from_secs(60));
    assert_eq!(c.stream_maxlen(), 500);
    assert_eq!(c.redis_timeout(), Duration::from_millis(20));
    assert_eq!(c.shutdown_timeout(), Duration::ZERO);
    assert_eq!(c.retry_window(), Duration::ZERO);
    assert!(
        !from(&[("P28_LATE_OBS_ENABLED", " OFF ")])
            .unwrap()
            .enabled()
    );
    assert!(!from(&[("P28_LATE_OBS_ENABLED", "0")]).unwrap().enabled());
}

#[test]
fn every_invalid_value_is_an_error_naming_its_variable_and_value() {
    let cases: &[(&str, &str)] = &[
        ("P28_LATE_OBS_ENABLED", "ture"),
        ("P28_LATE_OBS_ENABLED", ""),
        ("P28_LATE_OBS_MAX_WAIT_MS", "2s"),
        ("P28_LATE_OBS_MAX_WAIT_MS", "-5"),
        ("P28_LATE_OBS_MAX_WAIT_MS", ""),
        ("P28_LATE_OBS_MAX_WAIT_MS", "0"),
        ("P28_LATE_OBS_MAX_WAIT_MS", "3600001"),
        ("P28_LATE_OBS_POLL_MS", "0"),
        ("P28_LATE_OBS_POLL_MS", "1.5"),
        ("P28_LATE_OBS_POLL_MS", "2001"),
        ("P28_LATE_OBS_WORKERS", "0"),
        ("P28_LATE_OBS_WORKERS", "65"),
        ("P28_LATE_OBS_WORKERS", "two"),
        ("P28_LATE_OBS_QUEUE_CAPACITY", "0"),
        ("P28_LATE_OBS_QUEUE_CAPACITY", "-1"),
        ("P28_LATE_OBS_QUEUE_CAPACITY", "1048577"),
        ("P28_LATE_OBS_IN_FLIGHT", "0"),
        ("P28_LATE_OBS_DEDUPE_TTL_MS", "0"),
        ("P28_LATE_OBS_STREAM_MAXLEN", "0"),
        ("P28_LATE_OBS_REDIS_TIMEOUT_MS", "0"),
        ("P28_LATE_OBS_REDIS_TIMEOUT_MS", "60001"),
        ("P28_LATE_OBS_SHUTDOWN_TIMEOUT_MS", "1s"),
        ("P28_LATE_OBS_RETRY_MS", "600001"),
    ];
    for &(variable, value) in cases {
        let err = from(&[(variable, value)]).unwrap_err();
        assert_eq!(err.variable(), variable, "{variable}={value:?}: {err}");
        assert_eq!(err.value(), value, "{variable}={value:?}: {err}");
        let shown = err.to_string();
        assert!(
            shown.contains(variable) && shown.contains(&format!("{value:?}")),
            "{shown}"
        );
    }
}

#[test]
fn errors_say_what_was_expected() {
    let err = from(&[("P28_LATE_OBS_POLL_MS", "3000")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid P28_LATE_OBS_POLL_MS="3000": the poll interval must not exceed P28_LATE_OBS_MAX_WAIT_MS=2000"#
    );
    let err = from(&[("P28_LATE_OBS_ENABLED", "ture")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid P28_LATE_OBS_ENABLED="ture": expected one of true/false, 1/0, yes/no, on/off"#
    );
    let err = from(&[("P28_LATE_OBS_QUEUE_CAPACITY", "0")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid P28_LATE_OBS_QUEUE_CAPACITY="0": must be at least 1"#
    );
}

#[test]
fn setters_override_the_environment_and_are_validated_too() {
    let builder = ConfigBuilder::from_vars([("P28_LATE_OBS_POLL_MS", "500")]).unwrap();
    let c = builder
        .clone()
        .poll(Duration::from_millis(50))
        .build()
        .unwrap();
    assert_eq!(c.poll(), Duration::from_millis(50));
    assert_eq!(
        builder.clone().build().unwrap().poll(),
        Duration::from_millis(500)
    );
    let err = builder.poll(Duration::ZERO).build().unwrap_err();
    assert_eq!(err.variable(), "P28_LATE_OBS_POLL_MS");
    let err = Config::builder().stream("").build().unwrap_err();
    assert_eq!(err.variable(), "stream");
    let err = Config::builder().stream("{s}").build().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"invalid stream="{s}": must be non-empty, without control or format characters (or braces, in a stream name)"#
    );
    let err = Config::builder()
        .heat_key_prefix("a\nb")
        .build()
        .unwrap_err();
    assert_eq!(err.variable(), "heat_key_prefix");
    assert!(!Config::disabled().enabled());
}
