//! Coverage from the observed stream: what the runbook's `redis-cli | awk`
//! improvises, with the answer to its "Why not 100%?".
//!
//! For each observation point: events, `heat_found=1`, coverage, and the
//! `wait_ms` percentiles of the keys found. For each miss, whether the plan's
//! `by_plan` key exists *now*: if it does, it came after the deadline and a
//! longer `P28_LATE_OBS_MAX_WAIT_MS` would have caught it; if not, it never
//! came (or has expired since), which is HeatBridge's side.
//!
//! An operator's tool, kept out of the library: it reads the stream with
//! its own short-lived Redis client and needs nothing of the crate.
//!
//! ```text
//! use report::{CoverageReport, ObservedEvent};
//!
//! let fields = |plan: &str, found: &str| -> Vec<(String, String)> {
//!     [("plan_id", plan), ("symbol", "S"), ("obs_point", "publish_plan_post"),
//!      ("wait_ms", "600"), ("heat_found", found), ("max_wait_ms", "2000")]
//!         .iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
//! };
//! let events = vec![
//!     ObservedEvent::from_fields("1-0", &fields("a", "1"))?,
//!     ObservedEvent::from_fields("2-0", &fields("b", "0"))?,
//! ];
//! // "b" has its key now: it came after the deadline.
//! let report = CoverageReport::build(&events, |e| e.plan_id == "b");
//! let late = &report.points[0];
//! assert_eq!((late.events, late.found, late.came_late), (2, 1, 1));
//! assert_eq!(late.coverage(), 0.5);
//! ```

// Each example and test uses a part of this module.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

/// The crate's defaults (see `Config`).
pub const DEFAULT_STREAM: &str = "quantum:stream:apply.heat.observed";
pub const DEFAULT_HEAT_KEY_PREFIX: &str = "quantum:harvest:heat:by_plan:";
const ENV_MAX_WAIT_MS: &str = "P28_LATE_OBS_MAX_WAIT_MS";

/// One event read back from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedEvent {
    /// The stream entry id.
    pub id: String,
    /// The plan observed.
    pub plan_id: String,
    /// Its symbol.
    pub symbol: String,
    /// The observation point, as written.
    pub obs_point: String,
    /// Milliseconds from the observe call to the deciding look.
    pub wait_ms: u64,
    /// Whether the heat key was found.
    pub heat_found: bool,
    /// The wait the observation was allowed, when the event carries it
    /// (events of the Python observer do not).
    pub max_wait_ms: Option<u64>,
    /// When the deciding look was made (Unix ms), when the event carries it.
    pub ts_ms: Option<u64>,
    /// `poll` or `push`, when the event carries it.
    pub decided_by: Option<String>,
}

/// A stream entry that is not an observed event, or a failed read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportError {
    message: String,
}

impl fmt::Display for ReportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ReportError {}

impl ReportError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

impl ObservedEvent {
    /// Reads an event from its stream entry's fields.
    ///
    /// # Errors
    /// [`ReportError`] naming the entry and the missing or malformed field.
    pub fn from_fields(
        id: impl Into<String>,
        fields: &[(String, String)],
    ) -> Result<Self, ReportError> {
        let id = id.into();
        let get = |name: &str| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .ok_or_else(|| ReportError::new(format!("entry {id}: no field {name}")))
        };
        let number = |name: &str| -> Result<u64, ReportError> {
            let raw = get(name)?;
            raw.parse().map_err(|_| {
                ReportError::new(format!("entry {id}: {name}={raw:?} is not a number"))
            })
        };
        let heat_found = match get("heat_found")? {
            "1" => true,
            "0" => false,
            other => {
                return Err(ReportError::new(format!(
                    "entry {id}: heat_found={other:?} is not 1 or 0"
                )));
            }
        };
        Ok(Self {
            plan_id: get("plan_id")?.to_owned(),
            symbol: get("symbol").unwrap_or("").to_owned(),
            obs_point: get("obs_point")?.to_owned(),
            wait_ms: number("wait_ms")?,
            heat_found,
            max_wait_ms: number("max_wait_ms").ok(),
            ts_ms: number("ts_ms").ok(),
            decided_by: get("decided_by").ok().map(str::to_owned),
            id,
        })
    }
}

impl ObservedEvent {
    /// Whether the key was found by the deadline. A look that failed at the
    /// deadline (a failover) and was retried answers later: its `wait_ms`
    /// exceeds `max_wait_ms`, and a key found then may have come after the
    /// deadline, so it does not count as found in time. Deadline looks run
    /// up to 10 ms after the deadline.
    pub fn found_in_time(&self) -> bool {
        self.heat_found && self.max_wait_ms.is_none_or(|max| self.wait_ms <= max + 10)
    }
}

/// Nearest-rank percentiles of a set of waits, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Largest.
    pub max: u64,
}

impl Percentiles {
    /// The percentiles of `values` (sorted in place); `None` if empty.
    pub fn of(values: &mut [u64]) -> Option<Self> {
        values.sort_unstable();
        let max = *values.last()?;
        let rank =
            |p: f64| values[((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1];
        Some(Self {
            p50: rank(0.50),
            p90: rank(0.90),
            p99: rank(0.99),
            max,
        })
    }
}

/// Coverage of one observation point.
#[derive(Debug, Clone, PartialEq)]
pub struct PointReport {
    /// The observation point.
    pub obs_point: String,
    /// Events read.
    pub events: u64,
    /// Events whose key was found by the deadline.
    pub found: u64,
    /// Events with `heat_found=1` from a look after the deadline (a failed
    /// deadline look retried): counted with the misses that came late.
    pub found_late: u64,
    /// Waits of the events that found their key.
    pub wait_found_ms: Option<Percentiles>,
    /// Those waits, sorted (for the histogram).
    pub waits_found_ms: Vec<u64>,
    /// Misses whose key exists now: it came after the deadline.
    pub came_late: u64,
    /// Misses whose key does not exist now: it never came (or expired).
    pub never_came: u64,
    /// The largest `max_wait_ms` among the events, if they carry it.
    pub max_wait_ms: Option<u64>,
}

impl PointReport {
    /// Share of events with `heat_found=1` (0 when there are none).
    pub fn coverage(&self) -> f64 {
        ratio(self.found, self.events)
    }

    /// Events with `heat_found=0`.
    pub fn missed(&self) -> u64 {
        self.events - self.found
    }

    /// One sentence on what to do about the misses.
    pub fn advice(&self) -> String {
        let missed = self.missed();
        if missed == 0 {
            return "every event found its key; nothing to tune.".to_owned();
        }
        if self.max_wait_ms == Some(0) {
            return "this point looks once, without waiting: its misses are what the late observer is for."
                .to_owned();
        }
        let wait = self
            .max_wait_ms
            .map_or_else(|| "the current".to_owned(), |ms| format!("{ms} ms"));
        let late = pct(self.came_late, missed);
        if self.came_late == 0 {
            format!(
                "none of the {missed} misses got its key later: a longer {ENV_MAX_WAIT_MS} would not help; \
                 check that HeatBridge writes by_plan keys (systemctl status quantum-heat-bridge)."
            )
        } else if self.never_came == 0 {
            format!(
                "all {missed} misses got their key after the deadline: raise {ENV_MAX_WAIT_MS} above {wait} \
                 to catch them."
            )
        } else if 2 * self.came_late >= missed {
            format!(
                "{} of {missed} misses ({late}) got their key after the deadline: raising {ENV_MAX_WAIT_MS} \
                 above {wait} would catch them; the other {} never got one (HeatBridge).",
                self.came_late, self.never_came
            )
        } else {
            format!(
                "most misses ({} of {missed}) never got a key, so look at HeatBridge first; {} ({late}) came \
                 after the deadline and a {ENV_MAX_WAIT_MS} above {wait} would catch those.",
                self.never_came, self.came_late
            )
        }
    }
}

/// Coverage per observation point, in the order points first appear.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CoverageReport {
    /// One report per observation point.
    pub points: Vec<PointReport>,
    /// Stream entries that were not observed events.
    pub skipped: u64,
}

/// Where and how much [`CoverageReport::fetch`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOptions {
    /// The observed stream.
    pub stream: String,
    /// How many of the newest events to read.
    pub count: usize,
    /// Prefix of the `by_plan` keys, to ask whether misses have a key now.
    pub heat_key_prefix: String,
    /// Connect, read and write timeout.
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        Self {
            stream: DEFAULT_STREAM.to_owned(),
            count: 1000,
            heat_key_prefix: DEFAULT_HEAT_KEY_PREFIX.to_owned(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl CoverageReport {
    /// Builds the report; `has_key_now` says whether a missed event's plan
    /// has its `by_plan` key now.
    pub fn build(
        events: &[ObservedEvent],
        mut has_key_now: impl FnMut(&ObservedEvent) -> bool,
    ) -> Self {
        let mut order: Vec<&str> = Vec::new();
        let mut by_point: BTreeMap<&str, Vec<&ObservedEvent>> = BTreeMap::new();
        for e in events {
            if !by_point.contains_key(e.obs_point.as_str()) {
                order.push(&e.obs_point);
            }
            by_point.entry(&e.obs_point).or_default().push(e);
        }
        let points = order
            .into_iter()
            .map(|point| {
                let events = &by_point[point];
                let mut waits: Vec<u64> = events
                    .iter()
                    .filter(|e| e.found_in_time())
                    .map(|e| e.wait_ms)
                    .collect();
                let found_late = events
                    .iter()
                    .filter(|e| e.heat_found && !e.found_in_time())
                    .count() as u64;
                let came_late = found_late
                    + events
                        .iter()
                        .filter(|e| !e.heat_found && has_key_now(e))
                        .count() as u64;
                let found = waits.len() as u64;
                PointReport {
                    obs_point: point.to_owned(),
                    events: events.len() as u64,
                    found,
                    found_late,
                    wait_found_ms: Percentiles::of(&mut waits),
                    waits_found_ms: waits,
                    came_late,
                    never_came: events.len() as u64 - found - came_late,
                    max_wait_ms: events.iter().filter_map(|e| e.max_wait_ms).max(),
                }
            })
            .collect();
        Self { points, skipped: 0 }
    }

    /// Reads the newest `options.count` events of the stream from the Redis
    /// at `url`, asks whether each miss has its key now, and builds the
    /// report. Entries that are not events are counted in `skipped`.
    ///
    /// # Errors
    /// [`ReportError`] if the URL is invalid or Redis cannot be read. The
    /// message names `host:port`, never the URL.
    pub fn fetch(url: &str, options: &FetchOptions) -> Result<Self, ReportError> {
        let client = redis::Client::open(url)
            .map_err(|e| ReportError::new(format!("invalid Redis URL: {e}")))?;
        let address = client.get_connection_info().addr().to_string();
        let fail = |e: redis::RedisError| ReportError::new(format!("{address}: {e}"));
        let mut con = client
            .get_connection_with_timeout(options.timeout)
            .map_err(fail)?;
        con.set_read_timeout(Some(options.timeout)).map_err(fail)?;
        con.set_write_timeout(Some(options.timeout)).map_err(fail)?;
        Self::fetch_from(&mut con, options).map_err(fail)
    }

    /// Like [`CoverageReport::fetch`], from a Redis Cluster given some of
    /// its nodes (URLs or `host:port`; feature `cluster`).
    ///
    /// # Errors
    /// As [`CoverageReport::fetch`].
    #[cfg(feature = "cluster")]
    pub fn fetch_cluster<S: AsRef<str>>(
        nodes: &[S],
        options: &FetchOptions,
    ) -> Result<Self, ReportError> {
        let urls: Vec<String> = nodes
            .iter()
            .map(|n| match n.as_ref().trim() {
                node if node.contains("://") => node.to_owned(),
                node => format!("redis://{node}"),
            })
            .collect();
        // Never the URLs themselves: they may carry a password.
        let address = urls
            .iter()
            .map(|u| {
                u.rsplit('@')
                    .next()
                    .unwrap_or(u)
                    .trim_start_matches("redis://")
            })
            .collect::<Vec<_>>()
            .join(",");
        let fail = |e: redis::RedisError| ReportError::new(format!("cluster {address}: {e}"));
        let mut con = redis::cluster::ClusterClientBuilder::new(urls.clone())
            .connection_timeout(options.timeout)
            .response_timeout(options.timeout)
            .build()
            .and_then(|c| c.get_connection())
            .map_err(fail)?;
        Self::fetch_from(&mut con, options).map_err(fail)
    }

    /// Reads the events and the misses' keys through `con`: pipelined where
    /// the connection can pipeline, a command per key (each routed to its
    /// node) on a cluster.
    fn fetch_from(
        con: &mut dyn redis::ConnectionLike,
        options: &FetchOptions,
    ) -> redis::RedisResult<Self> {
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(&options.stream)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(options.count)
            .query(con)?;
        let mut skipped = 0;
        let mut events = Vec::with_capacity(entries.len());
        for (id, flat) in entries.into_iter().rev() {
            let fields: Vec<(String, String)> = flat
                .chunks_exact(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .collect();
            match ObservedEvent::from_fields(id, &fields) {
                Ok(e) => events.push(e),
                Err(_) => skipped += 1,
            }
        }
        let missed: Vec<&ObservedEvent> = events.iter().filter(|e| !e.heat_found).collect();
        let key = |e: &ObservedEvent| format!("{}{}", options.heat_key_prefix, e.plan_id);
        let mut present = HashSet::new();
        for chunk in missed.chunks(1000) {
            let exists: Vec<bool> = if con.supports_pipelining() {
                let mut pipe = redis::pipe();
                for e in chunk {
                    pipe.exists(key(e));
                }
                pipe.query(con)?
            } else {
                chunk
                    .iter()
                    .map(|e| redis::cmd("EXISTS").arg(key(e)).query(con))
                    .collect::<Result<_, _>>()?
            };
            present.extend(
                chunk
                    .iter()
                    .zip(exists)
                    .filter(|(_, x)| *x)
                    .map(|(e, _)| e.id.clone()),
            );
        }
        let mut report = Self::build(&events, |e| present.contains(&e.id));
        report.skipped = skipped;
        Ok(report)
    }
}

impl fmt::Display for CoverageReport {
    /// The table operators read, one block per observation point.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.points {
            writeln!(f, "{}", p.obs_point)?;
            writeln!(
                f,
                "  events {:>7}   heat_found=1 {:>7}   coverage {:>6.1}%",
                p.events,
                p.found,
                100.0 * p.coverage()
            )?;
            if p.found_late > 0 {
                writeln!(
                    f,
                    "  found by looks retried after a failed deadline look: {} (coverage {:.1}% with them; \
                     their keys may have come after the deadline)",
                    p.found_late,
                    100.0 * ratio(p.found + p.found_late, p.events)
                )?;
            }
            match &p.wait_found_ms {
                Some(w) => writeln!(
                    f,
                    "  wait_ms of found keys: p50 {}  p90 {}  p99 {}  max {}",
                    w.p50, w.p90, w.p99, w.max
                )?,
                None => writeln!(f, "  wait_ms of found keys: -")?,
            }
            let missed = p.missed();
            writeln!(
                f,
                "  missed {missed}: came after the deadline {} ({}), never came {} ({})",
                p.came_late,
                pct(p.came_late, missed),
                p.never_came,
                pct(p.never_came, missed)
            )?;
            writeln!(f, "  advice: {}", p.advice())?;
        }
        if self.skipped > 0 {
            writeln!(
                f,
                "({} stream entries were not observed events)",
                self.skipped
            )?;
        }
        Ok(())
    }
}

fn ratio(n: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

fn pct(n: u64, of: u64) -> String {
    format!("{:.1}%", 100.0 * ratio(n, of))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u32, point: &str, wait: u64, found: bool, max_wait: Option<u64>) -> ObservedEvent {
        ObservedEvent {
            id: format!("{id}-0"),
            plan_id: format!("p{id}"),
            symbol: "S".into(),
            obs_point: point.into(),
            wait_ms: wait,
            heat_found: found,
            max_wait_ms: max_wait,
            ts_ms: None,
            decided_by: None,
        }
    }

    #[test]
    fn parses_events_and_names_what_is_wrong() {
        let f = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let ok = f(&[
            ("plan_id", "p"),
            ("symbol", "S"),
            ("obs_point", "x"),
            ("wait_ms", "7"),
            ("heat_found", "1"),
        ]);
        let e = ObservedEvent::from_fields("9-0", &ok).unwrap();
        assert_eq!((e.wait_ms, e.heat_found, e.max_wait_ms), (7, true, None));
        let bad = f(&[
            ("plan_id", "p"),
            ("obs_point", "x"),
            ("wait_ms", "7"),
            ("heat_found", "yes"),
        ]);
        let err = ObservedEvent::from_fields("9-1", &bad).unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 9-1: heat_found=\"yes\" is not 1 or 0"
        );
        let missing = f(&[("plan_id", "p"), ("heat_found", "1")]);
        assert_eq!(
            ObservedEvent::from_fields("9-2", &missing)
                .unwrap_err()
                .to_string(),
            "entry 9-2: no field obs_point"
        );
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).collect();
        assert_eq!(
            Percentiles::of(&mut v),
            Some(Percentiles {
                p50: 50,
                p90: 90,
                p99: 99,
                max: 100
            })
        );
        assert_eq!(
            Percentiles::of(&mut [5]),
            Some(Percentiles {
                p50: 5,
                p90: 5,
                p99: 5,
                max: 5
            })
        );
        assert_eq!(Percentiles::of(&mut []), None);
    }

    #[test]
    fn every_figure_per_point() {
        let events = vec![
            event(1, "publish_plan_post", 100, true, Some(2000)),
            event(2, "create_apply_plan", 0, false, Some(0)),
            event(3, "publish_plan_post", 300, true, Some(2000)),
            event(4, "publish_plan_post", 2003, false, Some(2000)),
            event(5, "publish_plan_post", 2001, false, Some(2000)),
            event(6, "publish_plan_post", 2002, false, Some(2000)),
        ];
        let report = CoverageReport::build(&events, |e| e.plan_id == "p4" || e.plan_id == "p2");
        let [late, early] = &report.points[..] else {
            panic!("two points")
        };
        assert_eq!(late.obs_point, "publish_plan_post");
        assert_eq!(
            (late.events, late.found, late.came_late, late.never_came),
            (5, 2, 1, 2)
        );
        assert!((late.coverage() - 0.4).abs() < 1e-9);
        assert_eq!(late.wait_found_ms.unwrap().max, 300);
        assert_eq!(late.max_wait_ms, Some(2000));
        assert!(
            late.advice()
                .starts_with("most misses (2 of 3) never got a key"),
            "{}",
            late.advice()
        );
        assert_eq!((early.events, early.found, early.came_late), (1, 0, 1));
        assert!(early.advice().contains("looks once"));
        let text = report.to_string();
        assert!(
            text.contains("missed 3: came after the deadline 1 (33.3%), never came 2 (66.7%)"),
            "{text}"
        );
    }

    #[test]
    fn a_key_found_by_a_look_after_the_deadline_is_not_found_in_time() {
        let event = |wait: &str, found: &str| {
            let fields: Vec<(String, String)> = [
                ("plan_id", "p"),
                ("obs_point", "publish_plan_post"),
                ("wait_ms", wait),
                ("heat_found", found),
                ("max_wait_ms", "2000"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            ObservedEvent::from_fields("1-0", &fields).unwrap()
        };
        let events = [event("2008", "1"), event("2600", "1"), event("2000", "0")];
        assert!(events[0].found_in_time(), "a deadline look, 8 ms late");
        assert!(!events[1].found_in_time(), "a retried look, 600 ms late");
        let report = CoverageReport::build(&events, |_| false);
        let p = &report.points[0];
        assert_eq!(
            (p.found, p.found_late, p.came_late, p.never_came),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn advice_follows_where_the_misses_went() {
        let mut p = PointReport {
            obs_point: "publish_plan_post".into(),
            events: 10,
            found: 6,
            found_late: 0,
            wait_found_ms: None,
            waits_found_ms: Vec::new(),
            came_late: 4,
            never_came: 0,
            max_wait_ms: Some(2000),
        };
        assert_eq!(
            p.advice(),
            "all 4 misses got their key after the deadline: raise P28_LATE_OBS_MAX_WAIT_MS above 2000 ms to catch them."
        );
        (p.came_late, p.never_came) = (0, 4);
        assert!(
            p.advice()
                .starts_with("none of the 4 misses got its key later")
        );
        (p.came_late, p.never_came) = (3, 1);
        assert!(
            p.advice()
                .starts_with("3 of 4 misses (75.0%) got their key after the deadline")
        );
        p.found = 10;
        (p.came_late, p.never_came) = (0, 0);
        assert_eq!(p.advice(), "every event found its key; nothing to tune.");
    }
}
