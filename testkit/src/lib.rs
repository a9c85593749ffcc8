//! What heat-observer's tests and its lab start and wait on: a private
//! `redis-server` per test ([`server`]), a Redis Cluster with replicas
//! ([`cluster`]), a bounded wait for a condition, and `promtool check
//! metrics`.
//! Never published: the crate's dev-dependency and the lab's dependency.

pub mod cluster;
pub mod server;

use std::time::{Duration, Instant};

/// Generous bound for conditions that normally hold within milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits until `cond` holds, checking every millisecond, for at most
/// [`PATIENCE`]; panics with `what` if it never does.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `cond` holds of what `read` gives, as [`wait_until`], and
/// returns the value that satisfied it.
pub fn wait_for<T>(what: &str, mut read: impl FnMut() -> T, mut cond: impl FnMut(&T) -> bool) -> T {
    let mut last = read();
    wait_until(what, || {
        last = read();
        cond(&last)
    });
    last
}

/// `promtool check metrics` on `text`: `Some((passed, output))`, or `None`
/// (said loudly) when promtool is not on PATH; with
/// HEAT_OBSERVER_REQUIRE_PROMTOOL=1 (set by `.ci/run`) that is a failure.
pub fn promtool(text: &str) -> Option<(bool, String)> {
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        if std::env::var("HEAT_OBSERVER_REQUIRE_PROMTOOL").is_ok_and(|v| v == "1") {
            panic!("promtool is not on PATH and HEAT_OBSERVER_REQUIRE_PROMTOOL=1");
        }
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr(),
            format_args!(
                "\n*** SKIPPED promtool check: promtool is not on PATH (apt-get install prometheus) ***\n"
            ),
        );
        return None;
    };
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success() && said.trim().is_empty(), said))
}
