//! Helpers shared by the integration tests. Each test binary compiles this
//! module and uses a part of it.
#![allow(dead_code, unused_imports)]

pub mod rig;

use std::time::Duration;

#[cfg(feature = "cluster")]
pub use heat_observer_testkit::cluster;
pub use heat_observer_testkit::{PATIENCE, ms, promtool, server, wait_until};

use heat_observer::{MemoryStore, ObserverHandle, Stats, store::StreamEntry};

/// Waits until the observer's stats satisfy `cond` and returns them.
pub fn wait_stats(
    observer: &ObserverHandle,
    what: &str,
    cond: impl FnMut(&Stats) -> bool,
) -> Stats {
    heat_observer_testkit::wait_for(what, || observer.stats(), cond)
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

/// Where `cargo test` builds the examples: next to this binary's directory.
pub fn examples_dir() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    let target = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    target.join("examples")
}

/// What `check-config` printed (stdout, then stderr) and its exit code.
pub struct Checked {
    pub code: i32,
    pub out: String,
}

/// Runs the `check-config` example on the env file at `path`, or on `env`
/// as its whole environment; with `connecting`, `--connect`. `cargo test`
/// builds it before the tests run.
pub fn check_config(path: Option<&str>, env: Vec<(String, String)>, connecting: bool) -> Checked {
    let exe = examples_dir().join("check-config");
    assert!(
        exe.exists(),
        "{} is not built: run `cargo test` (which builds the examples) or \
         `cargo build --example check-config` first",
        exe.display()
    );
    let mut command = std::process::Command::new(exe);
    command.env_clear().envs(env);
    if connecting {
        command.arg("--connect");
    }
    command.args(path);
    let out = command.output().expect("check-config runs");
    Checked {
        code: out.status.code().unwrap_or(-1),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
