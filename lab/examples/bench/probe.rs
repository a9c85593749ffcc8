//! What the benchmark reads off the process and off Redis: peak (VmHWM) and
//! current RSS, thread count, and Redis's per-command call counters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A field of /proc/self/status, in its own unit (kB for memory).
fn status(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.trim_start_matches(':').split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

pub fn peak_rss_mb() -> f64 {
    status("VmHWM") as f64 / 1024.0
}

pub fn rss_mb() -> f64 {
    status("VmRSS") as f64 / 1024.0
}

pub fn threads() -> usize {
    status("Threads") as usize
}

/// Samples the thread count every 5 ms and keeps the highest.
pub struct ThreadSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl ThreadSampler {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(threads()));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&peak));
        let handle = thread::Builder::new()
            .name("bench-sampler".into())
            .spawn(move || {
                while !s.load(Ordering::Relaxed) {
                    p.fetch_max(threads(), Ordering::Relaxed);
                    thread::sleep(Duration::from_millis(5));
                }
            })
            .expect("spawn the sampler");
        ThreadSampler {
            stop,
            peak,
            handle: Some(handle),
        }
    }

    /// Highest thread count seen, the sampler itself included.
    pub fn finish(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// `INFO commandstats` as command -> calls. Redis counts the commands a
/// script runs too, under their own names.
pub fn command_calls(con: &mut redis::Connection) -> HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(con)
        .unwrap_or_default();
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.split(',').find_map(|kv| kv.strip_prefix("calls="))?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// Calls of `names` between two `command_calls` readings.
pub fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| {
            after
                .get(*n)
                .copied()
                .unwrap_or(0)
                .saturating_sub(before.get(*n).copied().unwrap_or(0))
        })
        .sum()
}

/// CPU time (user + system) of this process's threads whose name starts
/// with `prefix`, in seconds, from /proc/self/task/*/stat (clock ticks).
pub fn thread_cpu_s(prefix: &str) -> f64 {
    let ticks_per_s = 100.0; // USER_HZ on Linux
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut ticks = 0u64;
    for task in tasks.flatten() {
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !name.trim_end().starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the command (which may hold spaces) in parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // utime and stime are the 14th and 15th fields; `rest` starts at the 3rd.
        let field = |n: usize| {
            fields
                .get(n - 3)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks += field(14) + field(15);
    }
    ticks as f64 / ticks_per_s
}

/// CPU time (user + system) of this whole process so far, in seconds.
pub fn process_cpu_s() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name, in parentheses: fields 14 and 15 are utime
    // and stime, in clock ticks (100 a second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// Redis's CPU time (`used_cpu_sys` + `used_cpu_user`, seconds) and bytes
/// sent to clients (`total_net_output_bytes`), from `INFO`.
pub fn redis_cpu_and_output(con: &mut redis::Connection) -> (f64, u64) {
    let info: String = redis::cmd("INFO").arg("all").query(con).unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .unwrap_or("0")
            .trim()
            .to_owned()
    };
    let cpu = field("used_cpu_sys").parse::<f64>().unwrap_or(0.0)
        + field("used_cpu_user").parse::<f64>().unwrap_or(0.0);
    (cpu, field("total_net_output_bytes").parse().unwrap_or(0))
}
