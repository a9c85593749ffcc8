//! `/metrics` as the lab's programs serve it, and the rendered text checked by
//! Prometheus's own `promtool check metrics` (Debian's `prometheus`
//! package; `.ci/run` installs it and sets HEAT_OBSERVER_REQUIRE_PROMTOOL=1).

use heat_observer_lab::metrics_http;

use std::io::{Read, Write};
use std::net::TcpStream;

use heat_observer::{Config, LateObserver, MemoryStore, ObsPoint, metrics::MetricsFormat};
use heat_observer_lab::{ms, promtool, wait_stats};

/// An observer that has been through every kind of outcome.
fn busy_observer() -> LateObserver {
    let store = MemoryStore::new();
    store.insert_key(Config::default().heat_key("found"));
    let config = Config::builder()
        .max_wait(ms(30))
        .poll(ms(10))
        .build()
        .unwrap();
    let observer = LateObserver::start(config, store).unwrap();
    observer.observe_late("found", "S").unwrap();
    observer.observe_late("missed", "S").unwrap();
    observer.observe_now("found", "S").unwrap();
    observer
        .observe(
            ObsPoint::new("custom.point-1").unwrap(),
            "found",
            "S",
            ms(30),
        )
        .unwrap();
    let _ = observer.observe_late("", "S");
    wait_stats(&observer, "all four written", |s| {
        s.found + s.not_found == 4
    });
    observer.observe_late("found", "S").unwrap();
    wait_stats(&observer, "the repeat deduplicated", |s| {
        s.deduplicated == 1
    });
    observer
}

fn get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    let mut tcp = TcpStream::connect(addr).unwrap();
    write!(tcp, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.lines().next().unwrap().to_owned();
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_owned();
    (status, content_type, body.to_owned())
}

#[test]
fn metrics_are_served_with_the_prometheus_content_type() {
    let observer = busy_observer();
    let serving = observer.clone();
    let server =
        metrics_http::MetricsServer::start("127.0.0.1:0", move || serving.metric_families())
            .unwrap();
    let (status, content_type, body) = get(server.addr(), "/metrics");
    assert!(status.ends_with("200 OK"), "{status}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_eq!(content_type, MetricsFormat::Prometheus.content_type());
    assert_eq!(body, observer.render_metrics());
    assert!(
        body.contains("p28_observed_total{obs_point=\"publish_plan_post\",heat_found=\"1\"} 1\n")
    );
    let (status, _, _) = get(server.addr(), "/");
    assert!(status.ends_with("404 Not Found"), "{status}");
}

#[test]
fn promtool_accepts_the_rendered_metrics() {
    let observer = busy_observer();
    let Some((clean, said)) = promtool(&observer.render_metrics()) else {
        return;
    };
    assert!(clean, "promtool: {said}");
    // The check can fail: a counter without _total is linted.
    let (clean, said) =
        promtool("# HELP p28_bad A counter.\n# TYPE p28_bad counter\np28_bad 1\n").unwrap();
    assert!(!clean, "promtool let a bad name through: {said}");
}

#[test]
fn the_endpoint_serves_openmetrics_to_a_client_that_asks_for_it() {
    let observer = busy_observer();
    let serving = observer.handle();
    let server =
        metrics_http::MetricsServer::start("127.0.0.1:0", move || serving.metric_families())
            .unwrap();
    let mut tcp = TcpStream::connect(server.addr()).unwrap();
    let accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    write!(tcp, "GET /metrics HTTP/1.0\r\nAccept: {accept}\r\n\r\n").unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).unwrap();
    assert!(
        raw.contains("Content-Type: application/openmetrics-text; version=1.0.0"),
        "{raw}"
    );
    assert!(raw.contains("# TYPE p28_observed counter\n"));
    assert!(raw.ends_with("# EOF\n"));
}
