//! Faults on a schedule, for the pipeline's `--chaos` and the benchmark's
//! `chaos` scenario: a private redis-server is killed and restarted,
//! stopped, has the observer's connections killed, its scripts flushed,
//! its writes paused, its loop put to sleep and (push) its tracking table
//! shrunk, one fault every few seconds, in a cycle, while plans flow.
//!
//! Beside the schedule: a reader that tails the event stream as it is
//! written (a restart takes the stream with it, so reading it at the end
//! would lose every event written before), a logger that counts the
//! crate's warnings (at most two per fault per warning interval), and the
//! process's resident memory.
// Each example uses a part of this module.
#![allow(dead_code)]

use std::collections::HashSet;
use std::sync::Mutex;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, bounded};

#[cfg(feature = "cluster")]
use super::cluster::Cluster;
#[cfg(feature = "cluster")]
use super::cluster_faults;
use super::report::ObservedEvent;
use super::server::Server;

/// What a chaos run troubles: a private redis-server, or a private Redis
/// Cluster of three masters with a replica each.
pub enum Troubled {
    Server(Server),
    #[cfg(feature = "cluster")]
    Cluster(Cluster),
}

impl Troubled {
    /// The faults it takes, in order: those `LAB_FAULTS` names
    /// (comma-separated), if set.
    fn kinds(&self, push: bool) -> Vec<&'static str> {
        let mut kinds = self.all_kinds(push);
        if let Ok(only) = std::env::var("LAB_FAULTS") {
            kinds.retain(|k| only.split(',').any(|o| o.trim() == *k));
        }
        kinds
    }

    fn all_kinds(&self, push: bool) -> Vec<&'static str> {
        match self {
            Troubled::Server(_) => KINDS
                .iter()
                .copied()
                .filter(|k| push || *k != "small-tracking-table")
                .collect(),
            #[cfg(feature = "cluster")]
            Troubled::Cluster(_) => cluster_faults::KINDS.to_vec(),
        }
    }

    /// One fault every `gap`: longer than the longest fault and the
    /// recovery after it.
    fn gap(&self) -> Duration {
        match self {
            Troubled::Server(_) => GAP,
            #[cfg(feature = "cluster")]
            Troubled::Cluster(_) => CLUSTER_GAP,
        }
    }

    /// Where the tail reads the event stream.
    fn nodes(&self) -> Vec<String> {
        match self {
            Troubled::Server(server) => vec![server.url()],
            #[cfg(feature = "cluster")]
            Troubled::Cluster(cluster) => cluster
                .addresses()
                .iter()
                .map(|a| format!("redis://{a}"))
                .collect(),
        }
    }
}

/// The faults, in the order they come.
pub const KINDS: [&str; 7] = [
    "restart",
    "stop",
    "client-kill",
    "script-flush",
    "pause-writes",
    "debug-sleep",
    "small-tracking-table",
];
/// How long Redis stays down when killed.
const DOWN: Duration = Duration::from_secs(1);
/// How long Redis stays stopped (SIGSTOP).
const STOPPED: Duration = Duration::from_secs(3);
/// `CLIENT PAUSE ... WRITE`.
const PAUSE_MS: u64 = 1000;
/// How long the tracking table stays at 100 keys.
const SMALL_TABLE: Duration = Duration::from_secs(3);
/// After a fault ends, how long the observer may take to find its feet
/// (reconnect with backoff, re-subscribe), beyond as long again as the
/// fault lasted (the looks it held up, caught up): wait errors then are
/// the fault's.
pub const RECOVERY: Duration = Duration::from_secs(2);

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct Fault {
    pub kind: &'static str,
    pub start: Instant,
    pub end: Instant,
    /// Why the fault could not be made, if it could not.
    pub error: Option<String>,
}

impl Fault {
    /// When the observer is over it: the fault, as long again to catch up
    /// on what it held up, and [`RECOVERY`].
    pub fn recovered(&self) -> Instant {
        self.end + (self.end - self.start) + RECOVERY
    }
}

/// The deadlines fault `n` of `faults` owns: from its start until it has
/// recovered, or until `reach` before the next one starts. A look is made
/// within `reach` (the store timeout) of its deadline, a later answer
/// deciding nothing, so a plan whose deadline falls within that time
/// before a fault may have failed to it or to what came before: it is
/// [`at_edge`], counted apart. (Until the tenth round it was counted as
/// the fault's before: an early look made 1 ms before a pause counted as
/// the reshard's.)
pub fn window(faults: &[Fault], n: usize, reach: Duration) -> (Instant, Instant) {
    let fault = &faults[n];
    let until = match faults.get(n + 1) {
        Some(next) => fault.recovered().min(edge_of(next, reach)),
        None => fault.recovered(),
    };
    (fault.start, until)
}

/// Whether `at` falls within `reach` before one of `faults`.
pub fn at_edge(faults: &[Fault], reach: Duration, at: Instant) -> bool {
    faults
        .iter()
        .any(|f| edge_of(f, reach) <= at && at < f.start)
}

fn edge_of(fault: &Fault, reach: Duration) -> Instant {
    fault.start.checked_sub(reach).unwrap_or(fault.start)
}

/// What the schedule did, and the server back.
pub struct Record {
    pub faults: Vec<Fault>,
    /// When every key was taken away (each kill).
    pub wipes: Vec<Instant>,
    /// When an acknowledged write may have been lost (a cluster's master
    /// failed over before it reached the replica).
    pub doubts: Vec<(Instant, Instant)>,
    pub troubled: Troubled,
}

/// The schedule's thread.
pub struct Schedule {
    stop: Sender<()>,
    thread: JoinHandle<Record>,
}

impl Schedule {
    /// Starts the faults: the first at `first`, then one every `gap`, none
    /// that would end after `until`. `push` adds the small tracking table.
    pub fn start(
        troubled: Troubled,
        push: bool,
        stream: String,
        first: Instant,
        until: Instant,
    ) -> Schedule {
        let (stop, stopped) = bounded(1);
        let thread = thread::Builder::new()
            .name("chaos".into())
            .spawn(move || run(troubled, push, &stream, first, until, stopped))
            .expect("spawn the chaos thread");
        Schedule { stop, thread }
    }

    /// Stops the schedule (after the fault under way, if any).
    pub fn finish(self) -> Record {
        let _ = self.stop.send(());
        self.thread.join().expect("the chaos thread panicked")
    }
}

#[cfg_attr(not(feature = "cluster"), allow(unused_variables))]
fn run(
    mut troubled: Troubled,
    push: bool,
    stream: &str,
    first: Instant,
    until: Instant,
    stopped: Receiver<()>,
) -> Record {
    let kinds = troubled.kinds(push);
    let gap = troubled.gap();
    #[allow(unused_mut)]
    let (mut faults, mut wipes, mut doubts) = (Vec::new(), Vec::new(), Vec::new());
    let mut next = first;
    for kind in kinds.iter().cycle() {
        if next + 2 * STOPPED + RECOVERY > until {
            break;
        }
        if stopped.recv_deadline(next).is_ok() {
            break;
        }
        let start = Instant::now();
        let made = match &mut troubled {
            Troubled::Server(server) => make(kind, server, &mut wipes).map(|()| *kind),
            #[cfg(feature = "cluster")]
            Troubled::Cluster(cluster) => cluster_faults::make(kind, cluster, stream, &mut doubts),
        };
        let (kind, error) = match made {
            Ok(made) => (made, None),
            Err(e) => (*kind, Some(e.to_string())),
        };
        if let Some(e) = &error {
            eprintln!("chaos: {kind} could not be made: {e}");
        }
        if std::env::var_os("LAB_EXPLAIN_LATE").is_some() {
            let unix = |at: Instant| {
                let ago = Instant::now().saturating_duration_since(at);
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                now.saturating_sub(ago).as_millis()
            };
            eprintln!(
                "chaos: {kind} from {} to {} (unix ms)",
                unix(start),
                unix(Instant::now())
            );
        }
        faults.push(Fault {
            kind,
            start,
            end: Instant::now(),
            error,
        });
        next = (next + gap).max(Instant::now());
    }
    Record {
        faults,
        wipes,
        doubts,
        troubled,
    }
}

/// Makes one fault; returns when it is over.
fn make(kind: &str, server: &mut Server, wipes: &mut Vec<Instant>) -> redis::RedisResult<()> {
    let admin = |server: &Server| -> redis::RedisResult<redis::Connection> {
        let con = redis::Client::open(server.url())?
            .get_connection_with_timeout(Duration::from_secs(2))?;
        con.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(con)
    };
    match kind {
        "restart" => {
            wipes.push(Instant::now());
            server.kill();
            thread::sleep(DOWN);
            server.restart();
        }
        "stop" => {
            server.stall();
            thread::sleep(STOPPED);
            server.resume();
        }
        "client-kill" => {
            // Every connection but this one: the observer's data and
            // subscriber connections (and the bridge's, which reconnects).
            let mut con = admin(server)?;
            for kind in ["normal", "pubsub"] {
                redis::cmd("CLIENT")
                    .arg(&["KILL", "TYPE", kind, "SKIPME", "yes"][..])
                    .exec(&mut con)?;
            }
        }
        "script-flush" => redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec(&mut admin(server)?)?,
        "pause-writes" => {
            redis::cmd("CLIENT")
                .arg(&["PAUSE", &PAUSE_MS.to_string(), "WRITE"][..])
                .exec(&mut admin(server)?)?;
            thread::sleep(Duration::from_millis(PAUSE_MS));
        }
        "debug-sleep" => redis::cmd("DEBUG")
            .arg(&["SLEEP", "0.5"][..])
            .exec(&mut admin(server)?)?,
        "small-tracking-table" => {
            let mut con = admin(server)?;
            let set = |n: &str| {
                redis::cmd("CONFIG")
                    .arg(&["SET", "tracking-table-max-keys", n][..])
                    .clone()
            };
            set("100").exec(&mut con)?;
            thread::sleep(SMALL_TABLE);
            set("1000000").exec(&mut con)?;
        }
        other => unreachable!("no fault {other}"),
    }
    Ok(())
}

/// The crate's default `warn_interval`: a warning kind is said at most once
/// in it, with the count since the last.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// The faults per kind: how many were made, and the most warning lines any
/// one of them caused (lines from its start to the next fault's). A fault
/// the cluster did not heal from (no replica promoted in 30 s) is an
/// outage as long as its window, said once per warning interval as
/// designed: its lines are held to that instead of to the bound of a fault
/// that healed, and what goes beyond it is counted apart.
pub fn lines_per_fault(faults: &[Fault], lines: &[Instant], end: Instant) -> Vec<FaultLines> {
    let mut per: Vec<FaultLines> = Vec::new();
    for (n, fault) in faults.iter().enumerate() {
        let until = faults.get(n + 1).map_or(end, |f| f.start);
        let count = lines
            .iter()
            .filter(|at| **at >= fault.start && **at < until)
            .count() as u64;
        let window = until.saturating_duration_since(fault.start);
        let healed = fault.error.is_none();
        // One line per interval begun, and the recovery line.
        let allowed = window.as_secs().div_ceil(WARN_EVERY.as_secs()) + 1;
        let (lines, over) = if healed {
            (count, 0)
        } else {
            (0, count.saturating_sub(allowed))
        };
        match per.iter_mut().find(|p| p.kind == fault.kind) {
            Some(p) => {
                p.made += 1;
                p.max_lines = p.max_lines.max(lines);
                p.unhealed_lines_over = p.unhealed_lines_over.max(over);
                p.failed += u64::from(!healed);
                p.longest_window = p.longest_window.max(window);
            }
            None => per.push(FaultLines {
                kind: fault.kind,
                made: 1,
                failed: u64::from(!healed),
                max_lines: lines,
                unhealed_lines_over: over,
                longest_window: window,
                no_event: [0; 2],
            }),
        }
    }
    per
}

/// One kind of fault's tally.
#[derive(Debug, Clone)]
pub struct FaultLines {
    pub kind: &'static str,
    pub made: u64,
    pub failed: u64,
    /// The most warning lines one fault that healed caused.
    pub max_lines: u64,
    /// The most lines one fault that did not heal caused beyond one per
    /// warning interval of its window and a recovery line.
    pub unhealed_lines_over: u64,
    /// The longest time one of them owned the log (until the next fault).
    pub longest_window: Duration,
    /// Plans left without an event, `[early, late]`: observed during one
    /// of them or its recovery (early), their deadline then (late). The
    /// pipeline fills it in.
    pub no_event: [u64; 2],
}

/// One event as the tail keeps it: small, so that keeping millions does
/// not hide the observer's memory in the run's.
#[derive(Debug, Clone, Copy, Default)]
pub struct TailEvent {
    /// The entry's stream id, `(ms, seq)`.
    pub id: (u64, u64),
    pub plan: u32,
    pub late_point: bool,
    pub found: bool,
    pub by_push: bool,
    pub wait_ms: u32,
    pub max_wait_ms: u32,
    pub ts_ms: u64,
}

impl TailEvent {
    /// The event as the report and the audit read it.
    pub fn to_observed(self, run_id: &str) -> ObservedEvent {
        ObservedEvent {
            id: String::new(),
            plan_id: format!("{run_id}-{}", self.plan),
            symbol: String::new(),
            obs_point: match self.late_point {
                true => "publish_plan_post",
                false => "create_apply_plan",
            }
            .into(),
            wait_ms: self.wait_ms.into(),
            heat_found: self.found,
            max_wait_ms: Some(self.max_wait_ms.into()),
            ts_ms: Some(self.ts_ms),
            decided_by: Some(if self.by_push { "push" } else { "poll" }.into()),
        }
    }
}

/// Reads the event stream as it is written, across restarts.
pub struct Tail {
    stop: Sender<()>,
    thread: JoinHandle<Vec<TailEvent>>,
    nodes: Vec<String>,
    stream: String,
}

/// The ids the stream holds after the run: what survived every failover.
pub type Surviving = HashSet<(u64, u64)>;

impl Tail {
    /// Tails `stream` on `nodes` (one URL: a server; several: a cluster's
    /// nodes); room for `capacity` events is taken (and touched) now.
    pub fn start(nodes: Vec<String>, stream: String, capacity: usize) -> Tail {
        let mut events = vec![TailEvent::default(); capacity];
        events.clear();
        let (stop, stopped) = bounded(1);
        let (tail_nodes, tail_stream) = (nodes.clone(), stream.clone());
        let thread = thread::Builder::new()
            .name("chaos-tail".into())
            .spawn(move || tail(&tail_nodes, &tail_stream, events, stopped))
            .expect("spawn the tail thread");
        Tail {
            stop,
            thread,
            nodes,
            stream,
        }
    }

    /// Reads what is left and returns every event read, with the ids the
    /// stream still holds (`None` if it could not be read).
    pub fn finish(self) -> (Vec<TailEvent>, Option<Surviving>) {
        let _ = self.stop.send(());
        let events = self.thread.join().expect("the tail thread panicked");
        (events, surviving(&self.nodes, &self.stream))
    }
}

/// Every id of `stream` as it is now. A tail that reads a master during a
/// failover may read an entry the master had not yet replicated: the
/// promoted replica never holds it (Redis replicates after it replies).
fn surviving(nodes: &[String], stream: &str) -> Option<Surviving> {
    let mut con = tail_connection(nodes).ok()?;
    let mut ids = HashSet::new();
    let mut from = "-".to_owned();
    loop {
        type Entries = Vec<(String, redis::Value)>;
        let page: Entries = redis::cmd("XRANGE")
            .arg(stream)
            .arg(&from)
            .arg("+")
            .arg("COUNT")
            .arg(10_000)
            .query(con.as_mut())
            .ok()?;
        let Some((last, _)) = page.last() else {
            return Some(ids);
        };
        from = format!("({last}");
        ids.extend(page.iter().filter_map(|(id, _)| stream_id(id)));
    }
}

/// `"<ms>-<seq>"` as numbers.
fn stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

/// A connection for the tail: to the server, or a cluster connection
/// that follows the stream's slot to its master.
fn tail_connection(nodes: &[String]) -> redis::RedisResult<Box<dyn redis::ConnectionLike>> {
    let read = Some(Duration::from_secs(2));
    if let [url] = nodes {
        let c = redis::Client::open(url.as_str())?
            .get_connection_with_timeout(Duration::from_secs(1))?;
        c.set_read_timeout(read)?;
        return Ok(Box::new(c));
    }
    #[cfg(feature = "cluster")]
    {
        let client = redis::cluster::ClusterClientBuilder::new(nodes.to_vec())
            .connection_timeout(Duration::from_secs(1))
            .response_timeout(Duration::from_secs(2))
            .retries(2)
            .build()?;
        Ok(Box::new(client.get_connection()?))
    }
    #[cfg(not(feature = "cluster"))]
    Err((
        redis::ErrorKind::InvalidClientConfig,
        "a cluster needs feature cluster",
    )
        .into())
}

fn tail(
    nodes: &[String],
    stream: &str,
    mut events: Vec<TailEvent>,
    stopped: Receiver<()>,
) -> Vec<TailEvent> {
    let mut last = "0-0".to_owned();
    let mut con: Option<Box<dyn redis::ConnectionLike>> = None;
    let mut stopping = false;
    loop {
        if !stopping && stopped.try_recv().is_ok() {
            stopping = true;
        }
        if con.is_none() {
            con = tail_connection(nodes).ok();
        }
        let Some(c) = con.as_mut() else {
            if stopping {
                return events;
            }
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        type Entries = Vec<(String, Vec<(String, Vec<String>)>)>;
        let read: redis::RedisResult<Option<Entries>> = redis::cmd("XREAD")
            .arg(&["COUNT", "5000", "BLOCK", "100", "STREAMS", stream, &last][..])
            .query(c.as_mut());
        match read {
            Ok(Some(streams)) => {
                for (id, flat) in streams.into_iter().flat_map(|(_, entries)| entries) {
                    let fields: Vec<(String, String)> = flat
                        .chunks_exact(2)
                        .map(|p| (p[0].clone(), p[1].clone()))
                        .collect();
                    if let Ok(e) = ObservedEvent::from_fields(id.clone(), &fields) {
                        events.push(compact(&e));
                    }
                    last = id;
                }
            }
            // Nothing more: done if asked to stop.
            Ok(None) if stopping => return events,
            Ok(None) => {}
            Err(_) => {
                con = None;
                if stopping {
                    return events;
                }
            }
        }
    }
}

/// How many of `events` repeat an earlier one's plan and point.
fn twice<'a>(events: impl Iterator<Item = &'a TailEvent>) -> u64 {
    let mut seen = HashSet::new();
    events
        .filter(|e| !seen.insert((e.plan, e.late_point)))
        .count() as u64
}

fn compact(e: &ObservedEvent) -> TailEvent {
    let plan = e
        .plan_id
        .rsplit('-')
        .next()
        .and_then(|i| i.parse().ok())
        .unwrap_or(u32::MAX);
    TailEvent {
        id: stream_id(&e.id).unwrap_or_default(),
        plan,
        late_point: e.obs_point == "publish_plan_post",
        found: e.heat_found,
        by_push: e.decided_by.as_deref() == Some("push"),
        wait_ms: e.wait_ms.min(u32::MAX.into()) as u32,
        max_wait_ms: e.max_wait_ms.unwrap_or(0).min(u32::MAX.into()) as u32,
        ts_ms: e.ts_ms.unwrap_or(0),
    }
}

/// A logger that writes what `RUST_LOG` asks for (as env_logger) and
/// counts the crate's warnings and errors, with when they came.
struct CountingLogger {
    inner: env_logger::Logger,
}

static WARNINGS: Mutex<Vec<Instant>> = Mutex::new(Vec::new());

impl log::Log for CountingLogger {
    fn enabled(&self, meta: &log::Metadata<'_>) -> bool {
        counted(meta) || self.inner.enabled(meta)
    }

    fn log(&self, record: &log::Record<'_>) {
        if counted(record.metadata()) {
            WARNINGS
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(Instant::now());
        }
        if self.inner.enabled(record.metadata()) {
            self.inner.log(record);
        }
    }

    fn flush(&self) {
        self.inner.flush();
    }
}

fn counted(meta: &log::Metadata<'_>) -> bool {
    meta.level() <= log::Level::Warn && meta.target().starts_with("heat_observer")
}

/// Installs the counting logger (once; later calls do nothing), with
/// `default_filter` where `RUST_LOG` is unset.
pub fn install_counting_logger(default_filter: &str) {
    let inner =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_filter))
            .build();
    let level = inner.filter().max(log::LevelFilter::Warn);
    if log::set_boxed_logger(Box::new(CountingLogger { inner })).is_ok() {
        log::set_max_level(level);
    }
}

/// When each of the crate's warnings (and errors) was logged so far.
pub fn warnings() -> Vec<Instant> {
    WARNINGS.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// This process's resident memory now, in MB (Linux; `None` elsewhere).
pub fn rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// A chaos run under way: the schedule, the tail and the memory samples.
pub struct Run {
    schedule: Schedule,
    tail: Tail,
    run_id: String,
    /// The memory before the first plan: the run's own records (taken and
    /// touched up front), the observer started and idle.
    rss_base_mb: Option<f64>,
    warm_at: Instant,
    rss_warm_mb: Option<f64>,
    /// One sample per cycle of faults, from the warm one on.
    next_sample: Instant,
    cycle: Duration,
    rss_samples_mb: Vec<f64>,
    /// The heap held beyond the base, at the same moments.
    heap_samples_mb: Vec<f64>,
}

/// The first fault comes this long after the start (the watch list full).
pub const FIRST: Duration = Duration::from_secs(3);
/// One fault every `GAP`: longer than the longest fault and its recovery.
pub const GAP: Duration = Duration::from_secs(6);
/// On a cluster: a failover takes 2-3 s, the old master's return and sync
/// about as long.
pub const CLUSTER_GAP: Duration = Duration::from_secs(8);

impl Run {
    /// Starts the schedule on `server` and tails `stream`, for a run of
    /// `plans` plans fed until `until`.
    pub fn start(
        troubled: Troubled,
        push: bool,
        stream: &str,
        run_id: &str,
        plans: usize,
        until: Instant,
    ) -> Run {
        let tail = Tail::start(troubled.nodes(), stream.to_owned(), 2 * plans + 1000);
        let now = Instant::now();
        let cycle = troubled.gap() * troubled.kinds(push).len() as u32;
        // Warm: after every kind of fault twice (once when the run is too
        // short for that). The observer's memory peaks with the worst
        // overlap of a fault and the catch-up after it (held plans, held
        // events, all bounded by the rate times the outage), which the
        // first cycles reach; a leak would grow after that.
        let cycles = if now + FIRST + 3 * cycle <= until {
            2
        } else {
            1
        };
        let warm_at = now + FIRST + cycle * cycles;
        Run {
            tail,
            schedule: Schedule::start(troubled, push, stream.to_owned(), now + FIRST, until),
            run_id: run_id.to_owned(),
            rss_base_mb: {
                count_heap(true);
                rss_mb()
            },
            warm_at,
            rss_warm_mb: None,
            next_sample: warm_at,
            cycle,
            rss_samples_mb: Vec::new(),
            heap_samples_mb: Vec::new(),
        }
    }

    /// Takes the memory samples whose time has come.
    pub fn sample(&mut self) {
        let now = Instant::now();
        if now < self.next_sample {
            return;
        }
        let rss = rss_mb();
        if self.rss_warm_mb.is_none() {
            self.rss_warm_mb = rss;
        }
        self.rss_samples_mb.extend(rss);
        self.heap_samples_mb.push(heap_mb());
        self.next_sample += self.cycle;
    }

    /// Ends the run (every observation ended): the memory at the end, the
    /// faults with the warnings each caused, and the events read.
    pub fn finish(mut self, decided: u64) -> (Outcome, Vec<ObservedEvent>, Record) {
        if self.rss_warm_mb.is_none() {
            self.rss_warm_mb = rss_mb();
            self.heap_samples_mb.push(heap_mb());
        }
        let rss_end_mb = rss_mb();
        let heap_end_mb = heap_mb();
        count_heap(false);
        let end = Instant::now();
        let record = self.schedule.finish();
        let (tail, surviving) = self.tail.finish();
        let lines = warnings();
        let quiet_lines = lines
            .iter()
            .filter(|at| record.faults.first().is_none_or(|f| **at < f.start))
            .count() as u64;
        let read_twice = twice(tail.iter());
        // What a reader of the stream after the run sees, once every
        // failover is over; without it, every copy read counts.
        let (duplicates, read_then_lost, lost) = match &surviving {
            Some(ids) => {
                // Entries older than the stream's first were trimmed
                // (`MAXLEN`), not lost: only the later ones are judged.
                let first = ids.iter().min().copied().unwrap_or((u64::MAX, 0));
                let judged = tail.iter().filter(|e| e.id >= first);
                let kept = judged.clone().filter(|e| ids.contains(&e.id));
                let kept_plans: HashSet<(u32, bool)> =
                    kept.clone().map(|e| (e.plan, e.late_point)).collect();
                let read: HashSet<(u32, bool)> =
                    judged.clone().map(|e| (e.plan, e.late_point)).collect();
                (
                    twice(kept.clone()),
                    (judged.count() - kept.count()) as u64,
                    read.difference(&kept_plans).count() as u64,
                )
            }
            None => (read_twice, 0, 0),
        };
        let events: Vec<ObservedEvent> = tail.iter().map(|e| e.to_observed(&self.run_id)).collect();
        let clock = super::audit::WallClock::now();
        let schedule = record
            .faults
            .iter()
            .map(|f| ScheduledFault {
                kind: f.kind,
                unix_ms: clock.unix_ms(f.start) as u64,
                lasted_ms: f.end.saturating_duration_since(f.start).as_millis() as u64,
            })
            .collect();
        let outcome = Outcome {
            schedule,
            kinds: lines_per_fault(&record.faults, &lines, end),
            faults: record.faults.len() as u64,
            rss_base_mb: self.rss_base_mb,
            rss_warm_mb: self.rss_warm_mb,
            rss_end_mb,
            rss_samples_mb: self.rss_samples_mb,
            heap_samples_mb: self.heap_samples_mb,
            heap_end_mb,
            events_read: events.len() as u64,
            unread: decided.saturating_sub(events.len() as u64 - read_twice),
            read_twice,
            duplicates,
            read_then_lost,
            lost,
            quiet_lines,
            // The pipeline fills it in, with the kinds' counts.
            no_event_at_edges: [0, 0],
        };
        (outcome, events, record)
    }
}

/// One fault made, for the report: when (Unix ms) and for how long.
#[derive(Debug, Clone)]
pub struct ScheduledFault {
    pub kind: &'static str,
    pub unix_ms: u64,
    pub lasted_ms: u64,
}

/// What a chaos run adds to the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub schedule: Vec<ScheduledFault>,
    pub kinds: Vec<FaultLines>,
    pub faults: u64,
    /// Before the first plan: the run's own records and an idle observer.
    pub rss_base_mb: Option<f64>,
    pub rss_warm_mb: Option<f64>,
    pub rss_end_mb: Option<f64>,
    /// One sample per cycle of faults after the warm one.
    pub rss_samples_mb: Vec<f64>,
    /// The heap held beyond the base (by everything in the process, the
    /// run's own bookkeeping included), at the same moments and at the end.
    pub heap_samples_mb: Vec<f64>,
    pub heap_end_mb: f64,
    pub events_read: u64,
    /// Decided events the tail never read: written just before a kill and
    /// taken with the server (or never written).
    pub unread: u64,
    /// Events read twice for one plan and point by the tail, as it read
    /// them during the run.
    pub read_twice: u64,
    /// Events twice for one plan and point in the stream as it is after
    /// the run.
    pub duplicates: u64,
    /// Events the tail read that the stream no longer holds (of those
    /// not older than its first entry, which `MAXLEN` may have trimmed):
    /// appended on a master that died before its replica had them. When
    /// the reply was lost too, the observer appends the event again on the
    /// new master: the tail reads it twice, the stream holds it once.
    pub read_then_lost: u64,
    /// Plans and points whose every event read is gone from the stream.
    pub lost: u64,
    /// Warnings before the first fault.
    pub quiet_lines: u64,
    /// Plans left without an event, `[early, late]`, whose deadline fell
    /// just before a fault ([`at_edge`]): in no kind's count.
    pub no_event_at_edges: [u64; 2],
}

impl Outcome {
    /// The memory at the end over the memory after warm-up, both without
    /// the run's own records (the base): what the observer grew by.
    pub fn rss_ratio(&self) -> Option<f64> {
        let base = self.rss_base_mb?;
        let (end, warm) = (self.rss_end_mb? - base, self.rss_warm_mb? - base);
        Some(end / warm.max(1.0))
    }

    /// The most warnings one fault that healed caused, over any kind.
    pub fn max_lines(&self) -> u64 {
        self.kinds.iter().map(|k| k.max_lines).max().unwrap_or(0)
    }

    /// The most lines one fault that did not heal caused beyond one per
    /// warning interval, over any kind.
    pub fn unhealed_lines_over(&self) -> u64 {
        self.kinds
            .iter()
            .map(|k| k.unhealed_lines_over)
            .max()
            .unwrap_or(0)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let kinds: serde_json::Map<String, serde_json::Value> = self
            .kinds
            .iter()
            .map(|k| {
                (
                    k.kind.to_owned(),
                    serde_json::json!({
                        "made": k.made,
                        "could_not_make": k.failed,
                        "max_log_lines": k.max_lines,
                        "unhealed_log_lines_over": k.unhealed_lines_over,
                        "longest_window_s": k.longest_window.as_secs_f64(),
                        "no_event_early": k.no_event[0],
                        "no_event_late": k.no_event[1],
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "faults": self.faults,
            "per_kind": kinds,
            "no_event_at_fault_edges": {
                "early": self.no_event_at_edges[0],
                "late": self.no_event_at_edges[1],
            },
            "schedule": self.schedule.iter().map(|f| serde_json::json!({
                "kind": f.kind, "unix_ms": f.unix_ms, "lasted_ms": f.lasted_ms,
            })).collect::<Vec<_>>(),
            "max_log_lines_per_fault": self.max_lines(),
            "unhealed_log_lines_over": self.unhealed_lines_over(),
            "log_lines_before_faults": self.quiet_lines,
            "rss_mb": {
                "base": self.rss_base_mb,
                "warm": self.rss_warm_mb,
                "end": self.rss_end_mb,
                "samples": self.rss_samples_mb,
                "ratio": self.rss_ratio(),
            },
            "heap_mb_over_base": {"samples": self.heap_samples_mb, "end": self.heap_end_mb},
            "events_read": self.events_read,
            "unread": self.unread,
            "read_twice": self.read_twice,
            "duplicates": self.duplicates,
            "read_then_lost": self.read_then_lost,
            "lost": self.lost,
        })
    }

    pub fn print(&self) {
        let fig = |x: Option<f64>| x.map_or("-".to_owned(), |x| format!("{x:.1}"));
        println!(
            "chaos:    {} faults; warnings per fault that healed at most {}, beyond one per interval in one that did not {} (before the first: {}); RSS {} MB before the first plan, {} MB warm, {} MB at the end ({}x over the base); events read {}, unread {}, read twice {}, then lost with a master {}, duplicates in the stream {}, lost from it {}",
            self.faults,
            self.max_lines(),
            self.unhealed_lines_over(),
            self.quiet_lines,
            fig(self.rss_base_mb),
            fig(self.rss_warm_mb),
            fig(self.rss_end_mb),
            self.rss_ratio()
                .map_or("-".to_owned(), |r| format!("{r:.3}")),
            self.events_read,
            self.unread,
            self.read_twice,
            self.read_then_lost,
            self.duplicates,
            self.lost
        );
        println!(
            "          heap held beyond the base, per cycle: {} MB; at the end {:.1} MB",
            self.heap_samples_mb
                .iter()
                .map(|m| format!("{m:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.heap_end_mb
        );
        for k in &self.kinds {
            println!(
                "          {:<22} made {:>3} (could not {}), warnings at most {} per fault, plans without an event early {} late {}",
                k.kind, k.made, k.failed, k.max_lines, k.no_event[0], k.no_event[1]
            );
        }
        println!(
            "          {:<22} plans without an event early {} late {} (a look made then may have met either fault)",
            "just before a fault", self.no_event_at_edges[0], self.no_event_at_edges[1]
        );
    }
}

/// The system allocator, counting the bytes live on the heap while a chaos
/// run asks it to (`count_heap(true)`): RSS also holds what the allocator
/// keeps after a free (fragmentation, arenas), the heap only what someone
/// still holds. Off, it costs one relaxed load per call, so the
/// benchmark's other scenarios are not measured through it.
pub struct CountingAlloc;

static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static LIVE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the
// counter is a side record.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: the caller's layout, as given.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        count(-(layout.size() as i64));
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        count(layout.size() as i64);
        // SAFETY: the caller's layout, as given.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        count(new as i64 - layout.size() as i64);
        // SAFETY: `ptr` came from `alloc` with `layout`.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

fn count(bytes: i64) {
    use std::sync::atomic::Ordering::Relaxed;
    if COUNTING.load(Relaxed) {
        LIVE.fetch_add(bytes, Relaxed);
    }
}

/// Starts (or stops) counting; the count starts at 0, so it says how much
/// more is held than at the start.
pub fn count_heap(on: bool) {
    use std::sync::atomic::Ordering::Relaxed;
    LIVE.store(0, Relaxed);
    COUNTING.store(on, Relaxed);
}

/// Bytes held now beyond what was held when counting started, in MB.
pub fn heap_mb() -> f64 {
    LIVE.load(std::sync::atomic::Ordering::Relaxed) as f64 / (1024.0 * 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: &'static str, start: Instant, lasted: Duration) -> Fault {
        Fault {
            kind,
            start,
            end: start + lasted,
            error: None,
        }
    }

    #[test]
    fn a_fault_that_did_not_heal_is_held_to_one_line_per_interval_not_to_a_healed_ones_bound() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut unhealed = fault("kill-stream-master", t0 + s(10), s(40));
        unhealed.error = Some("a replica promoted within 30s".to_owned());
        let faults = [
            fault("reshard", t0, s(3)),
            unhealed,
            fault("stop-master", t0 + s(50), s(3)),
        ];
        // Two lines in the healed fault; five in the 40 s outage (allowed:
        // four intervals and the recovery line); one in the last.
        let at = |secs: &[u64]| secs.iter().map(|&x| t0 + s(x)).collect::<Vec<_>>();
        let lines = at(&[1, 2, 11, 21, 31, 41, 49, 51]);
        let per = lines_per_fault(&faults, &lines, t0 + s(60));
        let kind = |k: &str| per.iter().find(|p| p.kind == k).unwrap();
        assert_eq!(kind("reshard").max_lines, 2);
        let outage = kind("kill-stream-master");
        assert_eq!(
            (outage.max_lines, outage.unhealed_lines_over, outage.failed),
            (0, 0, 1)
        );
        assert_eq!(kind("stop-master").max_lines, 1);
        // A sixth line in the outage is one too many.
        let more = at(&[1, 2, 11, 15, 21, 31, 41, 49, 51]);
        let per = lines_per_fault(&faults, &more, t0 + s(60));
        let outage = per.iter().find(|p| p.kind == "kill-stream-master").unwrap();
        assert_eq!(outage.unhealed_lines_over, 1);
    }

    #[test]
    fn a_deadline_just_before_a_fault_is_at_its_edge_not_the_one_before() {
        let t0 = Instant::now() + Duration::from_secs(60);
        let reach = Duration::from_millis(50);
        let faults = [
            fault("reshard", t0, Duration::from_secs(3)),
            fault(
                "stop-master",
                t0 + Duration::from_secs(8),
                Duration::from_secs(3),
            ),
        ];
        let owns = |n: usize, at: Instant| {
            let (from, until) = window(&faults, n, reach);
            from <= at && at < until
        };
        let pause = t0 + Duration::from_secs(8);
        for at in [pause - Duration::from_millis(1), pause - reach] {
            assert!(!owns(0, at) && !owns(1, at), "owned by a fault");
            assert!(at_edge(&faults, reach, at), "not at an edge");
        }
        let before = pause - reach - Duration::from_millis(1);
        assert!(owns(0, before) && !at_edge(&faults, reach, before));
        assert!(owns(1, pause) && !at_edge(&faults, reach, pause));
        assert!(owns(0, t0) && !owns(0, t0 - Duration::from_millis(1)));
    }
}
