//! Helpers shared by the integration tests. Each test binary compiles this
//! module and uses a part of it.
#![allow(dead_code)]

#[cfg(feature = "cluster")]
pub mod cluster;
pub mod rig;
pub mod server;

use std::time::{Duration, Instant};

use heat_observer::{MemoryStore, ObserverHandle, Stats, store::StreamEntry};

/// Generous bound for conditions that normally hold within milliseconds.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Waits until `cond` holds, checking every millisecond, for at most
/// `PATIENCE`; panics with `what` if it never does.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the observer's stats satisfy `cond` and returns them.
pub fn wait_stats(
    observer: &ObserverHandle,
    what: &str,
    mut cond: impl FnMut(&Stats) -> bool,
) -> Stats {
    let mut last = observer.stats();
    wait_until(what, || {
        last = observer.stats();
        cond(&last)
    });
    last
}

/// The events of the default stream in `store`.
pub fn events(store: &MemoryStore) -> Vec<StreamEntry> {
    store.entries("quantum:stream:apply.heat.observed")
}

/// Names of this process's threads that start with `prefix` (Linux).
pub fn threads_named(prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
        let comm = task.expect("task").path().join("comm");
        if let Ok(name) = std::fs::read_to_string(comm) {
            let name = name.trim_end().to_owned();
            if name.starts_with(prefix) {
                names.push(name);
            }
        }
    }
    names
}

/// Keeps the panics a test injects into the store (message containing
/// "injected") out of the output; other panics print as usual.
pub fn quiet_injected_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if !msg.contains("injected") {
                default(info);
            }
        }));
    });
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
