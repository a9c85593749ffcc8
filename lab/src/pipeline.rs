//! The main job: the runbook's timeline, simulated, with the coverage it
//! gets. Apply creates each plan (early look, `create_apply_plan`),
//! publishes it and starts the late observer (`publish_plan_post`); the
//! simulated HeatGate + HeatBridge write the plan's `by_plan` key after a
//! lognormal delay, or never for a share of plans.
//!
//! ```text
//! cargo run --release --example pipeline
//! cargo run --release --example pipeline -- --plans 10000 --rate 2000 --json
//! cargo run --release --example pipeline -- --redis redis://127.0.0.1:6379 --metrics-addr 127.0.0.1:9184
//! cargo run --release --features cluster --example pipeline -- --redis-cluster 10.0.0.1:7000,10.0.0.2:7000
//! cargo run --release --example pipeline -- --chaos --rate 5000 --seconds 60 --detect push
//! cargo run --release --features cluster --example pipeline -- --chaos --cluster --rate 1000 --seconds 60
//! ```
//!
//! `--chaos` runs against a private redis-server that it kills, stops and
//! otherwise troubles on a schedule (see `chaos.rs`), or, with
//! `--cluster`, a private Redis Cluster of three masters with a replica
//! each whose masters it kills, pauses, switches and reshards
//! (`cluster_faults.rs`), and holds every event against what
//! happened (`audit.rs`).

#[cfg(feature = "cluster")]
use crate::cluster;
use crate::{args, audit, chaos, histogram, metrics_http, report, server, sim, target};

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use args::{Args, Flag, fail, flag, opt};
use heat_observer::{Config, LateObserver, MemoryStore, ObsPoint, Stats};
use report::{CoverageReport, ObservedEvent, PointReport};
use serde_json::{Map, Value, json};
use sim::{Bridge, Delays, Sink};
use target::Target;

const ABOUT: &str = "Simulates Apply, HeatGate and HeatBridge and reports the heat coverage of the \
early look (create_apply_plan) and the late observer (publish_plan_post). Reads P28_LATE_OBS_*.";

const FLAGS: &[Flag] = &[
    opt("--plans", "N", "plans to run (default 1000)"),
    opt(
        "--rate",
        "PER_SEC",
        "plans per second, 0 = all at once (default 0)",
    ),
    opt(
        "--bridge-median-ms",
        "MS",
        "median delay from publish to the key (default 500)",
    ),
    opt(
        "--bridge-sigma",
        "S",
        "lognormal shape of that delay (default 0.8)",
    ),
    opt(
        "--missing-pct",
        "PCT",
        "share of plans that never get a key (default 10)",
    ),
    opt("--seed", "N", "seed of the delays (default 1)"),
    opt(
        "--run-id",
        "ID",
        "prefix of plan ids (default: fresh per run)",
    ),
    opt(
        "--redis",
        "URL",
        "run against this Redis, unless P28_LATE_OBS_REDIS_URL is set (default: in memory)",
    ),
    opt(
        "--redis-cluster",
        "HOST:PORT,...",
        "run against this Redis Cluster (feature cluster)",
    ),
    opt(
        "--metrics-addr",
        "HOST:PORT",
        "serve /metrics there while running",
    ),
    opt(
        "--linger-s",
        "S",
        "keep serving /metrics this long after the run",
    ),
    opt(
        "--detect",
        "MODE",
        "poll or push (default: P28_LATE_OBS_DETECT, else poll)",
    ),
    opt(
        "--key-ttl-ms",
        "MS",
        "the bridge writes keys that live this long (default 3600000)",
    ),
    flag(
        "--chaos",
        "run against a private redis-server with faults on a schedule (restart, SIGSTOP, client \
         kill, script flush, write pause, debug sleep, small tracking table in push)",
    ),
    flag(
        "--cluster",
        "with --chaos: a private Redis Cluster (3 masters, a replica each) instead, its masters \
         killed, paused, switched and resharded (feature cluster)",
    ),
    opt(
        "--seconds",
        "T",
        "run for T seconds at --rate (instead of --plans)",
    ),
    opt(
        "--svg",
        "PATH",
        "also draw the late point's waits (found, came late, never) as an SVG file",
    ),
    flag(
        "--json",
        "print one JSON object at the end instead of the table",
    ),
];

/// Counts the heap while a chaos run asks it to (off otherwise).
#[global_allocator]
static ALLOC: chaos::CountingAlloc = chaos::CountingAlloc;

const SYMBOLS: [&str; 4] = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"];

/// A run's settings (the flags). Public, like [`run`], for `tests/pipeline.rs`.
pub struct Options {
    pub plans: usize,
    pub rate: f64,
    pub median_ms: f64,
    pub sigma: f64,
    pub missing_pct: f64,
    pub seed: u64,
    pub run_id: String,
    pub target: Target,
    pub metrics_addr: Option<String>,
    pub linger: Duration,
    pub json: bool,
    /// How long the bridge's keys live (`None`: an hour).
    pub key_ttl: Option<Duration>,
}

/// A chaos run's own server (or cluster).
pub type ChaosServer = chaos::Troubled;

/// What a run measured.
pub struct Outcome {
    pub store: String,
    pub stats: Stats,
    pub report: CoverageReport,
    /// Best coverage possible per point: share of plans whose key may
    /// have been there by that point's deadline (its write sent by then).
    pub bound: [(ObsPoint, f64); 2],
    /// Per point, over the plans that got an event there: the events that
    /// say found, and the plans whose key may have been there by their
    /// deadline.
    /// More of the first than the second is coverage above what was
    /// possible (found events that cannot all be true).
    pub possible: [(u64, u64); 2],
    pub wall: Duration,
    /// The simulated bridge's writes that failed, and the keys they held.
    pub bridge_failed_writes: u64,
    pub bridge_failed_keys: u64,
    /// Why the stream could not be read back, if it could not.
    pub stream_read_error: Option<String>,
    /// Every event held against what happened to its key.
    pub audit: audit::Audit,
    /// The faults and what they cost, for a chaos run.
    pub chaos: Option<chaos::Outcome>,
    /// The late point's waits: found, came late (when, from the bridge),
    /// never.
    pub picture: histogram::WaitHistogram,
}

/// The example's `main`.
pub fn main() {
    chaos::install_counting_logger("info");
    let args = Args::parse(ABOUT, FLAGS);
    let chaos_on = args.flag("--chaos");
    let default_rate = match (chaos_on, args.flag("--cluster")) {
        (true, true) => 1000.0,
        (true, false) => 5000.0,
        _ => 0.0,
    };
    let rate: f64 = args.get("--rate", default_rate);
    let plans = match args.opt("--seconds") {
        Some(_) if rate <= 0.0 => fail("--seconds wants a --rate above 0"),
        Some(_) => (rate * args.get::<f64>("--seconds", 60.0)) as usize,
        None if chaos_on && args.opt("--plans").is_none() => (rate * 60.0) as usize,
        None => args.get("--plans", 1000),
    };
    if chaos_on && (args.opt("--redis").is_some() || args.opt("--redis-cluster").is_some()) {
        fail(
            "--chaos kills and restarts its Redis: it runs a private redis-server, without --redis",
        );
    }
    let cluster_on = args.flag("--cluster");
    if cluster_on && !chaos_on {
        fail("--cluster goes with --chaos (use --redis-cluster for a cluster of your own)");
    }
    let troubled = chaos_on.then(|| {
        if !server::available() {
            fail("--chaos needs redis-server on PATH");
        }
        if cluster_on {
            #[cfg(not(feature = "cluster"))]
            fail("--cluster needs the crate's feature cluster (--features cluster)");
            #[cfg(feature = "cluster")]
            match cluster::Cluster::start_with("pipeline --chaos --cluster", 1, 1000) {
                Some(cluster) => chaos::Troubled::Cluster(cluster),
                None => fail("--chaos --cluster could not start its cluster"),
            }
        } else {
            chaos::Troubled::Server(server::Server::start(
                server::free_port(),
                &["--enable-debug-command", "local"],
            ))
        }
    });
    let options = Options {
        plans,
        rate,
        median_ms: args.get("--bridge-median-ms", 500.0),
        sigma: args.get("--bridge-sigma", 0.8),
        missing_pct: args.get("--missing-pct", 10.0),
        seed: args.get("--seed", 1),
        run_id: args.opt("--run-id").unwrap_or_else(sim::fresh_run_id),
        target: match &troubled {
            Some(chaos::Troubled::Server(server)) => Target::Redis(server.url()),
            #[cfg(feature = "cluster")]
            Some(chaos::Troubled::Cluster(cluster)) => Target::Cluster(cluster.addresses()),
            None => {
                let (target, source) = Target::like_the_library(&args, false);
                log::info!("pipeline: {} ({source})", target.describe());
                target
            }
        },
        metrics_addr: args.opt("--metrics-addr"),
        linger: Duration::from_secs_f64(args.get("--linger-s", 0.0)),
        json: args.flag("--json"),
        key_ttl: args
            .opt("--key-ttl-ms")
            .map(|_| Duration::from_millis(args.get("--key-ttl-ms", 3_600_000))),
    };
    if !(0.0..=100.0).contains(&options.missing_pct) {
        fail("--missing-pct must be between 0 and 100");
    }
    let mut config = Config::from_env().unwrap_or_else(|e| fail(&e.to_string()));
    if let Some(detect) = args.opt("--detect") {
        let chosen = Config::from_vars([("P28_LATE_OBS_DETECT", detect.as_str())])
            .unwrap_or_else(|e| fail(&e.to_string()));
        config = config
            .to_builder()
            .detect(chosen.detect())
            .build()
            .unwrap_or_else(|e| fail(&e.to_string()));
    }
    let (outcome, metrics) = run_with(&options, config.clone(), troubled);
    if let Some(path) = args.opt("--svg") {
        outcome.picture.svg(&path).unwrap_or_else(|e| fail(&e));
        log::info!("wrote {path}");
    }
    if options.json {
        println!("{}", to_json(&options, &config, &outcome));
    } else {
        print_table(&options, &config, &outcome);
    }
    if let Some(server) = metrics.filter(|_| !options.linger.is_zero()) {
        log::info!(
            "serving http://{}/metrics for {:?} more",
            server.addr(),
            options.linger
        );
        std::thread::sleep(options.linger);
    }
}

/// Runs the simulation and reads its events back.
pub fn run(options: &Options, config: Config) -> (Outcome, Option<metrics_http::MetricsServer>) {
    run_with(options, config, None)
}

/// [`run`], with faults on a schedule when given a private server to
/// trouble (`options.target` must be that server).
pub fn run_with(
    options: &Options,
    config: Config,
    chaos_server: Option<ChaosServer>,
) -> (Outcome, Option<metrics_http::MetricsServer>) {
    let memory = MemoryStore::new();
    let store = match &options.target {
        Target::Memory => "memory store".to_owned(),
        Target::Redis(url) => format!("redis {}", url_address(url)),
        Target::Cluster(nodes) => format!("redis cluster {}", nodes.join(",")),
    };
    if !options.target.is_memory() {
        // Fail early and clearly if the simulated bridge cannot reach Redis.
        if let Err(e) = options.target.connect() {
            fail(&format!("the simulated bridge cannot reach {store}: {e}"));
        }
    }
    let observer = options
        .target
        .start(config.clone(), &memory)
        .unwrap_or_else(|e| fail(&e));
    let sink = Sink::new(&options.target, &memory).key_ttl(options.key_ttl);
    let metrics = options.metrics_addr.as_deref().map(|addr| {
        let serving = observer.handle();
        let server = metrics_http::MetricsServer::start(&loopback_default(addr), move || {
            serving.metric_families()
        })
        .unwrap_or_else(|e| fail(&e));
        log::info!("serving http://{}/metrics", server.addr());
        server
    });

    let bridge = Bridge::start(sink, options.plans);
    let mut delays = Delays::new(
        options.median_ms,
        options.sigma,
        options.missing_pct,
        options.seed,
    );
    let mut progress = Progress::new(!options.json && std::io::stderr().is_terminal());
    let started = Instant::now();
    // Filled (so touched) now: a chaos run compares the memory after its
    // warm-up with the memory at its end, and these must not grow under it.
    let mut deadlines = vec![[started; 2]; options.plans];
    let mut observed = vec![[started; 2]; options.plans];
    // Starts reading both clocks: the audit maps the run's instants
    // through the readings taken along it.
    let _ = audit::WallClock::now();
    let mut chaos = chaos_server.map(|server| {
        let feeding = Duration::from_secs_f64(options.plans as f64 / options.rate.max(1.0));
        chaos::Run::start(
            server,
            config.detect() == heat_observer::Detect::Push,
            config.stream(),
            &options.run_id,
            options.plans,
            started + feeding,
        )
    });
    for i in 0..options.plans {
        if options.rate > 0.0 {
            let due = started + Duration::from_secs_f64(i as f64 / options.rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let plan = format!("{}-{i}", options.run_id);
        let symbol = SYMBOLS[i % SYMBOLS.len()];
        let created = Instant::now();
        let _ = observer.observe_now(&plan, symbol); // create_apply_plan
        // publish_plan would XADD to quantum:stream:apply.plan here.
        let published = Instant::now();
        let _ = observer.observe_late(&plan, symbol);
        deadlines[i] = [created, published + config.max_wait()];
        observed[i] = [created, published];
        if let Some(chaos) = chaos.as_mut() {
            chaos.sample();
        }
        if let Some(delay) = delays.draw() {
            bridge.schedule(i, config.heat_key(&plan), published + delay);
        }
        progress.show(i + 1, options.plans, &observer);
    }
    // Wait for every accepted observation to end (deadline plus retries).
    let give_up =
        Instant::now() + config.max_wait() + config.retry_window() + Duration::from_secs(5);
    while Instant::now() < give_up && !settled(&observer.stats()) {
        progress.show(options.plans, options.plans, &observer);
        std::thread::sleep(Duration::from_millis(20));
    }
    progress.done();
    let settled_stats = observer.stats();
    let (mut chaos, chaos_events, record) =
        match chaos.map(|run| run.finish(settled_stats.found + settled_stats.not_found)) {
            Some((outcome, events, record)) => (Some(outcome), Some(events), Some(record)),
            None => (None, None, None),
        };
    let bridge = bridge.finish();
    let written = bridge.keys;
    let shutdown = observer.shutdown(config.shutdown_timeout());
    let wall = started.elapsed();

    let bound = [0, 1].map(|p| {
        let hits = deadlines
            .iter()
            .zip(&written)
            .filter(|(d, w)| w.by(d[p]))
            .count();
        (
            ObsPoint::BUILT_IN[p],
            hits as f64 / options.plans.max(1) as f64,
        )
    });
    let (events, stream_read_error) = match chaos_events {
        Some(events) => (events, None),
        None => match read_events(options, &config, &memory) {
            Ok(events) => (events, None),
            Err(e) => {
                log::error!("cannot read the stream back: {e}");
                (Vec::new(), Some(e.to_string()))
            }
        },
    };
    let index = |e: &ObservedEvent| {
        e.plan_id
            .rsplit('-')
            .next()
            .and_then(|i| i.parse::<usize>().ok())
    };
    if let (Some(chaos), Some(record)) = (chaos.as_mut(), &record) {
        // Per kind of fault, the plans left without an event: early, those
        // observed during it (or its recovery, until the next fault); late,
        // those whose deadline fell then.
        let mut has_event = vec![[false; 2]; options.plans];
        for e in &events {
            if let Some(i) = index(e).filter(|i| *i < options.plans) {
                has_event[i][usize::from(e.obs_point == "publish_plan_post")] = true;
            }
        }
        let reach = config.redis_timeout();
        for (n, fault) in record.faults.iter().enumerate() {
            let (from, until) = chaos::window(&record.faults, n, reach);
            let during = |at: Instant| from <= at && at < until;
            let missing = |p: usize| {
                (0..options.plans)
                    .filter(|&i| !has_event[i][p] && during(deadlines[i][p]))
                    .count() as u64
            };
            let (early, late) = (missing(0), missing(1));
            if std::env::var_os("LAB_EXPLAIN_LATE").is_some() {
                for (point, missing) in [(0, early), (1, late)] {
                    if missing > 0 {
                        explain_missing(
                            point,
                            fault,
                            &has_event,
                            &deadlines,
                            &written,
                            during,
                            &options.run_id,
                        );
                    }
                }
            }
            if let Some(k) = chaos.kinds.iter_mut().find(|k| k.kind == fault.kind) {
                k.no_event[0] += early;
                k.no_event[1] += late;
            }
        }
        let (has_event, deadlines) = (&has_event, &deadlines);
        let at_edge = |p: usize| {
            (0..options.plans)
                .filter(move |&i| !has_event[i][p])
                .filter(move |&i| chaos::at_edge(&record.faults, reach, deadlines[i][p]))
        };
        chaos.no_event_at_edges = [0, 1].map(|p| at_edge(p).count() as u64);
        if std::env::var_os("LAB_EXPLAIN_LATE").is_some() {
            for p in [0, 1] {
                for i in at_edge(p).take(12) {
                    let at = deadlines[i][p];
                    if let Some(next) = record.faults.iter().find(|f| at < f.start) {
                        eprintln!(
                            "{}, no event: {i} {:.0} ms before {}: a look made then may have met either fault",
                            ["early", "late"][p],
                            (next.start - at).as_secs_f64() * 1e3,
                            next.kind
                        );
                    }
                }
            }
        }
    }
    let has_key = |e: &ObservedEvent| {
        index(e)
            .and_then(|i| written.get(i))
            .is_some_and(|w| w.exists())
    };
    let report = CoverageReport::build(&events, has_key);
    let (wipes, doubts, faults) = match &record {
        Some(record) => (
            record.wipes.clone(),
            record.doubts.clone(),
            record
                .faults
                .iter()
                .map(|f| (f.start, f.recovered()))
                .collect(),
        ),
        None => (Vec::new(), Vec::new(), Vec::new()),
    };
    let truth = audit::Truth {
        doubts: &doubts,
        written: &written,
        observed: &observed,
        ttl: options.key_ttl,
        wipes: &wipes,
        faults: &faults,
        poll: config.poll(),
        push: config.detect() == heat_observer::Detect::Push,
    };
    let audit = audit::audit(&truth, &events, index, &audit::WallClock::now());
    let possible = [0, 1].map(|p| {
        let at = |e: &&ObservedEvent| e.obs_point == ObsPoint::BUILT_IN[p].as_str();
        let found = events.iter().filter(at).filter(|e| e.heat_found).count() as u64;
        let by_deadline = events
            .iter()
            .filter(at)
            .filter_map(&index)
            .filter(
                |&i| matches!((deadlines.get(i), written.get(i)), (Some(d), Some(w)) if w.by(d[p])),
            )
            .count() as u64;
        (found, by_deadline)
    });
    let picture = picture(&config, &events, &written, &observed, index);
    let outcome = Outcome {
        store,
        stats: shutdown.stats,
        report,
        bound,
        possible,
        wall,
        bridge_failed_writes: bridge.failed_writes,
        bridge_failed_keys: bridge.failed_keys,
        stream_read_error,
        audit,
        chaos,
        picture,
    };
    (outcome, metrics)
}

/// Up to 12 plans of `fault` left without an event at `point` (0 early, 1
/// late), on stderr (with `LAB_EXPLAIN_LATE` set): when each deadline fell
/// in the fault and when its key was written, against that deadline.
fn explain_missing(
    point: usize,
    fault: &chaos::Fault,
    has_event: &[[bool; 2]],
    deadlines: &[[Instant; 2]],
    written: &[sim::KeyWrite],
    during: impl Fn(Instant) -> bool,
    run_id: &str,
) {
    let ms = |a: Instant, b: Instant| {
        if a >= b {
            (a - b).as_secs_f64() * 1e3
        } else {
            -((b - a).as_secs_f64() * 1e3)
        }
    };
    let plans =
        (0..deadlines.len()).filter(|&i| !has_event[i][point] && during(deadlines[i][point]));
    for i in plans.take(12) {
        let deadline = deadlines[i][point];
        let write = match written.get(i) {
            Some(sim::KeyWrite::At { sent, done }) => format!(
                "written {:+.1}..{:+.1} ms from the deadline",
                ms(*sent, deadline),
                ms(*done, deadline)
            ),
            other => format!("{other:?}"),
        };
        let key = format!("{}{run_id}-{i}", report::DEFAULT_HEAT_KEY_PREFIX);
        eprintln!(
            "{}, no event: {} at +{:.0} ms of {} ({:.0} ms long): {write}, {}",
            ["early", "late"][point],
            i,
            ms(deadline, fault.start),
            fault.kind,
            ms(fault.end, fault.start),
            key,
        );
    }
}

/// The late point's picture: the waits of found keys, and for the misses
/// when their key came (the bridge knows) or that it never did.
fn picture(
    config: &Config,
    events: &[ObservedEvent],
    written: &[sim::KeyWrite],
    observed: &[[Instant; 2]],
    index: impl Fn(&ObservedEvent) -> Option<usize>,
) -> histogram::WaitHistogram {
    let late_point = |e: &&ObservedEvent| e.obs_point == ObsPoint::PUBLISH_PLAN_POST.as_str();
    let found = events
        .iter()
        .filter(late_point)
        .filter(|e| e.found_in_time())
        .map(|e| e.wait_ms);
    let (mut came, mut unknown, mut never) = (Vec::new(), 0, 0);
    for e in events
        .iter()
        .filter(late_point)
        .filter(|e| !e.found_in_time())
    {
        match index(e).and_then(|i| Some((written.get(i)?, observed.get(i)?[1]))) {
            Some((sim::KeyWrite::At { done, .. }, published)) => {
                came.push(done.saturating_duration_since(published).as_millis() as u64);
            }
            Some((sim::KeyWrite::Never, _)) => never += 1,
            _ => unknown += 1,
        }
    }
    histogram::WaitHistogram::new(
        ObsPoint::PUBLISH_PLAN_POST.as_str(),
        config.max_wait().as_millis() as u64,
        found,
        came,
        unknown,
        never,
    )
}

fn settled(s: &Stats) -> bool {
    s.finished() >= s.accepted && s.queued == 0 && s.in_flight == 0
}

/// This run's events, read back from where they were written.
fn read_events(
    options: &Options,
    config: &Config,
    memory: &MemoryStore,
) -> redis::RedisResult<Vec<ObservedEvent>> {
    let prefix = format!("{}-", options.run_id);
    let entries: Vec<(String, Vec<(String, String)>)> = match &options.target {
        Target::Memory => memory
            .entries(config.stream())
            .into_iter()
            .map(|e| (e.id, e.fields))
            .collect(),
        target => {
            let read = target.connect().and_then(|mut con| {
                redis::cmd("XREVRANGE")
                    .arg(config.stream())
                    .arg("+")
                    .arg("-")
                    .arg("COUNT")
                    .arg(options.plans * 4 + 1000)
                    .query::<Vec<(String, Vec<String>)>>(&mut *con)
            });
            read?
                .into_iter()
                .rev()
                .map(|(id, flat)| {
                    let fields = flat.chunks_exact(2).map(|p| (p[0].clone(), p[1].clone()));
                    (id, fields.collect())
                })
                .collect()
        }
    };
    Ok(entries
        .iter()
        .filter_map(|(id, fields)| ObservedEvent::from_fields(id.clone(), fields).ok())
        .filter(|e| e.plan_id.starts_with(&prefix))
        .collect())
}

/// `host:port` of a Redis URL, for the report (never credentials).
fn url_address(url: &str) -> String {
    heat_observer::RedisConnector::with_timeout(url, Duration::from_secs(1))
        .map_or_else(|e| fail(&e.to_string()), |c| c.address().to_owned())
}

/// `9184` or `:9184` mean loopback; anything else is used as given.
fn loopback_default(addr: &str) -> String {
    let port = addr.strip_prefix(':').unwrap_or(addr);
    if port.parse::<u16>().is_ok() {
        format!("127.0.0.1:{port}")
    } else {
        addr.to_owned()
    }
}

fn point_report(outcome: &Outcome, point: ObsPoint) -> Option<&PointReport> {
    outcome
        .report
        .points
        .iter()
        .find(|p| p.obs_point == point.as_str())
}

/// A point's `(found, observed)` from the counters, and its report read back.
fn point_figures(outcome: &Outcome, point: ObsPoint) -> (u64, u64, Option<&PointReport>) {
    let stats = outcome.stats.point(point);
    let (found, observed) = stats.map_or((0, 0), |p| (p.found, p.found + p.not_found));
    (found, observed, point_report(outcome, point))
}

fn print_table(options: &Options, config: &Config, outcome: &Outcome) {
    println!(
        "heat coverage of run {} ({} plans, {}, wait {} ms, poll {} ms, {:.1} s)\n",
        options.run_id,
        options.plans,
        outcome.store,
        config.max_wait().as_millis(),
        config.poll().as_millis(),
        outcome.wall.as_secs_f64()
    );
    println!(
        "{:<18} {:>8} {:>12} {:>9} {:>13}   {:<28}   misses: came late / never",
        "obs point",
        "observed",
        "heat_found=1",
        "coverage",
        "best possible",
        "wait ms p50/p90/p99/max",
    );
    for (point, bound) in outcome.bound {
        let (found, observed, report) = point_figures(outcome, point);
        let waits = report
            .and_then(|r| r.wait_found_ms)
            .map_or("-".to_owned(), |w| {
                format!("{} / {} / {} / {}", w.p50, w.p90, w.p99, w.max)
            });
        let misses = report.map_or("-".to_owned(), |r| {
            format!("{} / {}", r.came_late, r.never_came)
        });
        println!(
            "{:<18} {:>8} {:>12} {:>8.1}% {:>12.1}%   {:<28}   {}",
            point.as_str(),
            observed,
            found,
            100.0 * ratio(found, observed),
            100.0 * bound,
            waits,
            misses
        );
    }
    for (p, (found, possible)) in outcome.possible.iter().enumerate() {
        // Keys whose bridge write failed may have landed: unknown either way.
        if *found > possible + outcome.bridge_failed_keys {
            println!(
                "ABOVE WHAT WAS POSSIBLE at {}: {found} events say found, but only {possible} of \
                 their plans had a key written (sent) by the deadline (see the audit)",
                ObsPoint::BUILT_IN[p]
            );
        }
    }
    let s = &outcome.stats;
    println!(
        "\noutcomes: found {}, not found {}, deduplicated {}, failed {}, panicked {}, abandoned {}",
        s.found, s.not_found, s.deduplicated, s.failed, s.panicked, s.abandoned
    );
    println!(
        "refused:  disabled {}, config error {}, invalid {}, queue full {}, shut down {}   (of {} observe calls)",
        s.refused_disabled,
        s.refused_config_error,
        s.refused_invalid,
        s.refused_queue_full,
        s.refused_shut_down,
        s.calls()
    );
    let without: Vec<String> = ObsPoint::BUILT_IN
        .iter()
        .map(|p| {
            let (_, observed, _) = point_figures(outcome, *p);
            format!("{p} {}", (options.plans as u64).saturating_sub(observed))
        })
        .collect();
    println!("no event: {} (refused, failed or lost)", without.join(", "));
    if s.late_answers > 0 {
        println!(
            "late:     {} decided by a look retried after a failed deadline look",
            s.late_answers
        );
    }
    let a = &outcome.audit;
    println!(
        "audit:    {} events held against the bridge's writes: false found {}, false not-found {}, \
         wait errors {} (and {} in faults), not judged {}, short-lived not found {}, \
         stamped early {}",
        a.events,
        a.false_found,
        a.false_not_found,
        a.wait_errors,
        a.wait_errors_in_faults,
        a.unknown,
        a.short_lived_not_found,
        a.stamped_early
    );
    for example in &a.examples {
        println!("          {example}");
    }
    if let Some(chaos) = &outcome.chaos {
        chaos.print();
    }
    println!("\n{}", outcome.picture.terminal(50));
    let late = point_report(outcome, ObsPoint::PUBLISH_PLAN_POST).map(|r| r.advice());
    if let Some(advice) = advice(s, late) {
        println!("advice:   {advice}");
    }
}

/// What to look at first: observations lost before or after the door
/// (their plans have no event, so the events' coverage cannot say), then
/// what the events say about their misses.
pub fn advice(s: &Stats, events: Option<String>) -> Option<String> {
    let lost = s.failed + s.panicked + s.abandoned;
    if s.refused_queue_full > 0 {
        return Some(format!(
            "{} of {} observe calls were refused because the queue was full: those plans have no \
             event. The workers fell behind (Redis slow or down, see the store errors) or the \
             burst was larger than the queue: raise P28_LATE_OBS_QUEUE_CAPACITY or \
             P28_LATE_OBS_WORKERS. Coverage above counts only the plans that got in.",
            s.refused_queue_full,
            s.calls()
        ));
    }
    if lost > 0 {
        return Some(format!(
            "{lost} accepted observations ended without an event (failed {}, panicked {}, \
             abandoned {}): Redis errors outlasted the retry window ({} store errors) or the \
             stop came early. Fix that first; coverage above counts only decided plans.",
            s.failed, s.panicked, s.abandoned, s.store_errors
        ));
    }
    if s.refused_config_error + s.refused_disabled > 0 {
        return Some(
            "the observer ran disabled (a bad setting, or P28_LATE_OBS_ENABLED=false): see the \
             startup line."
                .to_owned(),
        );
    }
    events
}

pub fn to_json(options: &Options, config: &Config, outcome: &Outcome) -> Value {
    let mut points = Map::new();
    for (k, (point, bound)) in outcome.bound.into_iter().enumerate() {
        let (found, observed, report) = point_figures(outcome, point);
        let (found_events, possible) = outcome.possible[k];
        let waits = report
            .and_then(|r| r.wait_found_ms)
            .map(|w| json!({"p50": w.p50, "p90": w.p90, "p99": w.p99, "max": w.max}));
        points.insert(
            point.as_str().to_owned(),
            json!({
                "observed": observed,
                "found": found,
                "coverage": ratio(found, observed),
                "bound": bound,
                "wait_found_ms": waits,
                "came_late": report.map_or(0, |r| r.came_late),
                "never_came": report.map_or(0, |r| r.never_came),
                "found_events": found_events,
                "possible": possible,
                // Plans with no event at this point: refused, failed or
                // lost (a cluster refusing during a failover, say).
                "without_event": (options.plans as u64).saturating_sub(observed),
                "above_possible": found_events > possible + outcome.bridge_failed_keys,
            }),
        );
    }
    let outcomes: Map<String, Value> = outcome
        .stats
        .outcomes()
        .iter()
        .map(|(name, n)| (name.to_string(), json!(n)))
        .collect();
    json!({
        "run_id": options.run_id,
        "store": outcome.store,
        "plans": options.plans,
        "bound": outcome.bound[1].1,
        "config": {
            "enabled": config.enabled(),
            "max_wait_ms": config.max_wait().as_millis() as u64,
            "poll_ms": config.poll().as_millis() as u64,
            "workers": config.workers(),
            "detect": config.detect().as_str(),
        },
        "points": points,
        "outcomes": outcomes,
        "calls": outcome.stats.calls(),
        "late_answers": outcome.stats.late_answers,
        "audit": outcome.audit.to_json(),
        "chaos": outcome.chaos.as_ref().map(chaos::Outcome::to_json),
        "balanced": outcome.stats.is_balanced() && outcome.stats.calls() == 2 * options.plans as u64,
        "bridge": {
            "failed_writes": outcome.bridge_failed_writes,
            "failed_keys": outcome.bridge_failed_keys,
        },
        "stream_read_error": outcome.stream_read_error,
        "wall_s": outcome.wall.as_secs_f64(),
    })
}

fn ratio(n: u64, of: u64) -> f64 {
    if of == 0 { 0.0 } else { n as f64 / of as f64 }
}

/// A progress line on stderr, redrawn at most every 100 ms, when it is a
/// terminal.
struct Progress {
    on: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new(on: bool) -> Self {
        Progress { on, last: None }
    }

    fn show(&mut self, submitted: usize, plans: usize, observer: &LateObserver) {
        if !self.on
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        let s = observer.stats();
        eprint!(
            "\r  plans {submitted}/{plans}   decided {}   found {}   watching {}   queued {}   ",
            s.finished(),
            s.found,
            s.in_flight,
            s.queued
        );
        let _ = std::io::stderr().flush();
    }

    fn done(&self) {
        if self.on {
            eprintln!();
        }
    }
}
