//! One case of the benchmark (a scenario in a mode), run in a process of its
//! own so that its peak RSS and thread count are its own. Returns its
//! results as one JSON object.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::Receiver;
use heat_observer::{Config, LateObserver, RedisConnector, Stats};
use serde_json::{Value, json};

use crate::args::fail;
use crate::baseline::ThreadPerPlan;
use crate::floor::Floor;
use crate::keyspace::Listener;
use crate::oracle::Oracle;
use crate::probe;
use crate::server;
use crate::sim::{Bridge, Delays, KeyWrite, Sink};
use crate::target::Target;
use heat_observer_lab::audit::WallClock;

/// Restarts of Redis during the soak are this far apart.
const SOAK_RESTART_EVERY: Duration = Duration::from_secs(30);

/// What every case shares: load shape and observer settings.
pub struct Load {
    pub plans: usize,
    pub rate: f64,
    pub seconds: f64,
    pub minutes: f64,
    pub max_wait: Duration,
    pub poll: Duration,
    pub median_ms: f64,
    pub missing_pct: f64,
    pub seed: u64,
}

/// The observer under test, or the floor it is measured against.
enum Subject {
    Pool(LateObserver),
    ThreadPerPlan(ThreadPerPlan),
    Floor(Floor),
    Oracle(Oracle),
}

impl Subject {
    /// `told`: the plans whose keys were written (modes `oracle` and
    /// `keyspace`).
    fn start(mode: &str, url: &str, config: Config, told: Option<Receiver<usize>>) -> Subject {
        match mode {
            "thread-per-plan" => Subject::ThreadPerPlan(ThreadPerPlan::new(url, config)),
            "channel-floor" => {
                Subject::Floor(Floor::start(config.queue_capacity(), config.workers()))
            }
            _ => {
                let connector =
                    RedisConnector::new(url, &config).unwrap_or_else(|e| fail(&e.to_string()));
                let observer =
                    LateObserver::start(config, connector).unwrap_or_else(|e| fail(&e.to_string()));
                match told {
                    Some(told) => Subject::Oracle(Oracle::start(observer, told)),
                    None => Subject::Pool(observer),
                }
            }
        }
    }

    /// The crate's observer, in the modes that run it.
    fn observer(&self) -> Option<&LateObserver> {
        match self {
            Subject::Pool(o) => Some(o),
            Subject::Oracle(o) => Some(o.observer()),
            Subject::ThreadPerPlan(_) | Subject::Floor(_) => None,
        }
    }

    /// Plan `index` (`plan`) published, to be decided by `deadline`.
    fn observe(&self, index: usize, plan: &str, symbol: &str, deadline: Instant) -> bool {
        match self {
            Subject::Pool(o) => o.observe_late(plan, symbol).is_ok(),
            Subject::Oracle(o) => o.expect(index, plan, deadline),
            Subject::ThreadPerPlan(t) => t.observe(plan, symbol),
            Subject::Floor(f) => f.observe(plan),
        }
    }

    fn settled(&self) -> bool {
        if let Subject::Oracle(o) = self
            && !o.handed()
        {
            return false;
        }
        match self {
            Subject::ThreadPerPlan(t) => t.settled(),
            Subject::Floor(f) => f.settled(),
            _ => self
                .stats()
                .is_some_and(|s| s.finished() >= s.accepted && s.queued == 0 && s.in_flight == 0),
        }
    }

    fn outcomes(&self) -> Vec<(&'static str, u64)> {
        match self {
            Subject::ThreadPerPlan(t) => t.outcomes(),
            Subject::Floor(f) => f.outcomes(),
            _ => self
                .stats()
                .map(|s| s.outcomes().to_vec())
                .unwrap_or_default(),
        }
    }

    fn dropped(&self) -> u64 {
        match self {
            Subject::ThreadPerPlan(t) => t.dropped(),
            Subject::Floor(f) => f.dropped(),
            _ => self.stats().map_or(0, |s| s.refused_queue_full),
        }
    }

    fn stats(&self) -> Option<Stats> {
        self.observer().map(|o| o.stats())
    }

    /// Waits (at most `limit`) until every observation has ended.
    /// CPU time of the threads doing the subject's work (the workers, the
    /// floor's drainers); `None` for thread-per-plan, whose threads are gone.
    fn worker_cpu_s(&self) -> Option<f64> {
        match self {
            Subject::Pool(_) | Subject::Oracle(_) => Some(probe::thread_cpu_s("heat-observer-")),
            Subject::Floor(_) => Some(probe::thread_cpu_s("floor-drain")),
            Subject::ThreadPerPlan(_) => None,
        }
    }

    fn settle(&self, limit: Duration) {
        let give_up = Instant::now() + limit;
        while !self.settled() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Runs `scenario` in `mode` against `url` (`server` is the private Redis,
/// which only the soak restarts) and returns the results.
pub fn run(
    load: &Load,
    scenario: &str,
    mode: &str,
    url: &str,
    server: Option<server::Server>,
    latencies: Option<&str>,
) -> Value {
    // The process id too: the scenario `processes` starts several cases at
    // once on one Redis.
    let ns = format!(
        "bench:{:x}:{}:{scenario}:{mode}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
        std::process::id()
    );
    let mut builder = Config::builder()
        .max_wait(load.max_wait)
        .poll(load.poll)
        .stream(format!("{ns}:observed"))
        .heat_key_prefix(shared_heat_prefix().unwrap_or_else(|| format!("{ns}:by_plan:")))
        // Every event stays readable for the coverage read back.
        .stream_maxlen(1 << 22);
    if mode == "one-per-worker" {
        builder = builder.max_in_flight(1);
    }
    if mode == "push" {
        builder = builder.detect(heat_observer::Detect::Push);
    }
    // `short-lived`: HeatBridge's keys expire 20 ms after they are written.
    let key_ttl = (scenario == "short-lived").then(|| Duration::from_millis(20));
    let load_rate = if scenario == "steady-20k" {
        20_000.0
    } else {
        load.rate
    };
    let config = builder.build().unwrap_or_else(|e| fail(&e.to_string()));
    // `down`: nothing listens on this port for the whole run.
    let observed_url = if scenario == "down" {
        format!("redis://127.0.0.1:{}", server::free_port())
    } else {
        url.to_owned()
    };
    let plans = match scenario {
        "burst" => load.plans,
        "soak" => (load.rate * load.minutes * 60.0) as usize,
        _ => (load_rate * load.seconds) as usize,
    };
    let rate = if scenario == "burst" { 0.0 } else { load_rate };

    let mut admin = server::connect(url);
    let threads_before = probe::threads();
    let sampler = probe::ThreadSampler::start();
    let calls_before = probe::command_calls(&mut admin);
    let (tell, told) = match mode {
        "oracle" | "keyspace" => {
            let (tell, told) = crossbeam_channel::unbounded();
            (Some(tell), Some(told))
        }
        _ => (None, None),
    };
    // Mode `keyspace`: Redis tells which keys were written, not the bridge.
    let (listener, tell) = match (mode, tell) {
        ("keyspace", Some(tell)) => {
            let heat_prefix = config.heat_key("");
            let listener = Listener::start(url, &heat_prefix, plan_prefix(), tell);
            (Some(listener), None)
        }
        (_, tell) => (None, tell),
    };
    let subject = Subject::start(mode, &observed_url, config.clone(), told);
    if let Subject::Pool(o) = &subject {
        // Push: measure from the moment the workers are subscribed.
        let ready = Instant::now() + Duration::from_secs(5);
        let want = if mode == "push" {
            config.workers() as u64
        } else {
            0
        };
        while o.stats().push_workers < want && Instant::now() < ready {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let bridge = (scenario != "down").then(|| {
        Bridge::telling(
            Sink::Redis(Target::Redis(url.to_owned()), None, key_ttl),
            plans,
            tell,
        )
    });
    let mut delays = Delays::new(load.median_ms, 0.8, load.missing_pct, load.seed);
    // Starts reading both clocks, for the lags read back at the end.
    let _ = WallClock::now();
    // Filled (so touched) now: the soak samples RSS, and the bench's own
    // bookkeeping must not grow under it.
    let mut submit_ns = vec![u64::MAX; plans];
    let mut deadlines = vec![Instant::now(); plans];

    let started = Instant::now();
    // The soak takes the server to restart it; the others keep it alive here.
    let mut server = server;
    let mut soak = (scenario == "soak").then(|| Soak::new(server.take(), started));
    let mut feeder = Feeder {
        started,
        rate,
        plans,
        fed: 0,
    };
    feeder.feed(
        started + Duration::from_secs(2),
        &mut delays,
        bridge.as_ref(),
        &config,
    );
    // Time the soak spent quiescing, which the pacing skips.
    let mut paused = Duration::ZERO;
    let mut i = 0;
    while i < plans {
        // Paced runs submit in slots: sleep until the next plan is due, then
        // send every plan due by now (usually one: a call per wake-up, as
        // Apply makes one per publish).
        let batch_end = if rate > 0.0 {
            let due = started + paused + Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if let Some(soak) = soak.as_mut() {
                paused += soak.tick(&subject);
            }
            // Planned times leave out the soak's pauses.
            let now = Instant::now().checked_sub(paused).unwrap_or(started);
            if feeder.behind(now + Duration::from_secs(1)) {
                feeder.feed(
                    now + Duration::from_secs(2),
                    &mut delays,
                    bridge.as_ref(),
                    &config,
                );
            }
            let elapsed = started.elapsed().saturating_sub(paused).as_secs_f64();
            ((elapsed * rate) as usize + 1).clamp(i + 1, plans)
        } else {
            plans
        };
        while i < batch_end {
            let plan = plan_id(i);
            let t0 = Instant::now();
            subject.observe(i, &plan, "BTCUSDT", t0 + config.max_wait());
            submit_ns[i] = t0.elapsed().as_nanos() as u64;
            deadlines[i] = t0 + config.max_wait();
            i += 1;
        }
    }
    subject.settle(config.max_wait() + config.retry_window() + Duration::from_secs(60));
    let wall = started.elapsed();
    let worker_cpu_s = subject.worker_cpu_s();
    // After the workers' CPU is read: the listener's is counted with it.
    drop(listener);
    let process_cpu_s = probe::process_cpu_s();
    let calls_settled = probe::command_calls(&mut admin);
    barrier();
    let rss_mb = probe::peak_rss_mb();
    // Threads of the bench itself: main, the sampler, the bridge.
    let own = 1 + usize::from(bridge.is_some());
    let threads = sampler.finish().saturating_sub(threads_before + own);
    let written = bridge.map(Bridge::finish).unwrap_or_default().keys;
    let (rss_samples, restarts) = match soak.take() {
        Some(mut soak) => {
            soak.check(&subject);
            server = soak.server;
            (soak.rss, soak.checks)
        }
        None => (Vec::new(), Vec::new()),
    };

    let calls_after = calls_settled;
    let scripts = probe::delta(
        &calls_before,
        &calls_after,
        &["evalsha", "evalsha_ro", "eval", "script|load"],
    );
    let plain = probe::delta(
        &calls_before,
        &calls_after,
        &["exists", "set", "get", "del", "xadd", "client|caching"],
    );
    // The pool sends scripts, which run the plain commands inside Redis; the
    // baseline sends the plain commands itself.
    let (round_trips, commands) = if scripts > 0 {
        (scripts, scripts + plain)
    } else {
        (plain, plain)
    };
    let outcomes = subject.outcomes();
    let accounted = match subject.stats() {
        Some(s) => s.is_balanced() && s.calls() == plans as u64,
        None => outcomes.iter().map(|(_, n)| n).sum::<u64>() == plans as u64,
    };
    let (mut coverage, mut bound, mut lag) = (None, None, None);
    let observes = !matches!(subject, Subject::Floor(_));
    if observes && matches!(scenario, "burst" | "steady" | "steady-20k" | "short-lived") {
        let hits = deadlines
            .iter()
            .zip(&written)
            .filter(|(d, w)| w.by(**d))
            .count();
        bound = Some(hits as f64 / plans as f64);
        let (found, lags) = read_back(&mut admin, &config, &written, &WallClock::now());
        coverage = Some(found as f64 / plans as f64);
        lag = percentiles(lags, &[0.5, 0.99]).map(|p| json!({"p50": p[0], "p99": p[1]}));
    }
    if let Some(prefix) = latencies {
        let text: String = submit_ns.iter().map(|n| format!("{n}\n")).collect();
        let path = format!("{prefix}-{scenario}-{mode}.txt");
        std::fs::write(&path, text).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
    }
    let submit = percentiles(submit_ns, &[0.5, 0.99, 0.999, 1.0]).unwrap_or([0; 4].to_vec());
    // Restarts reset Redis's counters, so the soak cannot count round trips.
    let per = |n: u64| (scenario != "soak").then(|| n as f64 / plans.max(1) as f64);
    let dropped = subject.dropped();
    drop(subject);
    drop(server);
    json!({
        "scenario": scenario,
        "mode": mode,
        "plans": plans,
        "coverage": coverage,
        "bound": bound,
        "submit_ns": {"p50": submit[0], "p99": submit[1], "p999": submit[2], "max": submit[3]},
        "lag_ms": lag,
        "round_trips_per_plan": per(round_trips),
        "worker_cpu_us_per_plan": worker_cpu_s.map(|s| s * 1e6 / plans.max(1) as f64),
        "process_cpu_s": process_cpu_s,
        "commands_per_plan": per(commands),
        "dropped": dropped,
        "outcomes": outcomes.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
        "accounted": accounted,
        "rss_mb": rss_mb,
        "threads": threads,
        "wall_s": wall.as_secs_f64(),
        "rss_samples_mb": rss_samples,
        "restarts_accounted": restarts,
    })
}

/// Nearest-rank percentiles (`1.0` is the maximum); `None` if empty.
fn percentiles(mut v: Vec<u64>, ps: &[f64]) -> Option<Vec<u64>> {
    v.sort_unstable();
    let n = v.len();
    (n > 0).then(|| {
        ps.iter()
            .map(|p| v[((p * n as f64).ceil() as usize).clamp(1, n) - 1])
            .collect()
    })
}

/// Hands the bridge its schedule a couple of seconds ahead, in batches, from
/// each plan's planned submission time: the timed loop must not wake the
/// bridge thread (in production HeatBridge is another process, not a thread
/// of Apply).
struct Feeder {
    started: Instant,
    rate: f64,
    plans: usize,
    /// Plans scheduled so far.
    fed: usize,
}

impl Feeder {
    /// When plan `j` is due to be submitted, leaving out pauses.
    fn planned(&self, j: usize) -> Instant {
        let offset = if self.rate > 0.0 {
            j as f64 / self.rate
        } else {
            0.0
        };
        self.started + Duration::from_secs_f64(offset)
    }

    /// Whether plans due before `by` are not yet scheduled.
    fn behind(&self, by: Instant) -> bool {
        self.fed < self.plans && self.planned(self.fed) <= by
    }

    /// Schedules the keys of every plan due by `upto` (one message).
    fn feed(
        &mut self,
        upto: Instant,
        delays: &mut Delays,
        bridge: Option<&Bridge>,
        config: &Config,
    ) {
        let mut batch = Vec::new();
        while self.behind(upto) {
            let j = self.fed;
            if let Some(delay) = delays.draw() {
                batch.push((j, config.heat_key(&plan_id(j)), self.planned(j) + delay));
            }
            self.fed += 1;
        }
        if let Some(bridge) = bridge {
            bridge.schedule_many(batch);
        }
    }
}

/// Found events, and the detection lag of each (event decided minus key
/// written), read back from the stream.
fn read_back(
    con: &mut redis::Connection,
    config: &Config,
    written: &[KeyWrite],
    clock: &WallClock,
) -> (u64, Vec<u64>) {
    let _ = con.set_read_timeout(Some(Duration::from_secs(30)));
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(config.stream())
        .arg("-")
        .arg("+")
        .query(con)
        .unwrap_or_default();
    let mut found = 0;
    let mut lags = Vec::new();
    for (_, flat) in entries {
        let field = |name: &str| {
            flat.chunks_exact(2)
                .find(|p| p[0] == name)
                .map(|p| p[1].as_str())
        };
        if field("heat_found") != Some("1") {
            continue;
        }
        found += 1;
        let index = field("plan_id")
            .and_then(|p| p.strip_prefix(plan_prefix().as_str()))
            .and_then(|p| p.strip_prefix('p'))
            .and_then(|i| i.parse::<usize>().ok());
        let decided = field("ts_ms").and_then(|t| t.parse::<f64>().ok());
        if let (Some(KeyWrite::At { done: at, .. }), Some(decided)) =
            (index.and_then(|i| written.get(i)), decided)
        {
            lags.push((decided - clock.unix_ms(*at)).max(0.0) as u64);
        }
    }
    (found, lags)
}

/// The soak's restarts, RSS samples and per-restart accounting checks.
struct Soak {
    server: Option<server::Server>,
    next_restart: Instant,
    next_sample: Instant,
    /// When to check the accounting of the last restart, if not yet done.
    check_at: Option<Instant>,
    rss: Vec<f64>,
    checks: Vec<bool>,
}

impl Soak {
    fn new(server: Option<server::Server>, started: Instant) -> Self {
        Soak {
            server,
            next_restart: started + SOAK_RESTART_EVERY,
            next_sample: started + Duration::from_secs(1),
            check_at: None,
            rss: Vec::new(),
            checks: Vec::new(),
        }
    }

    /// Samples RSS every second and restarts Redis every 30 s, under load;
    /// 10 s after each restart, quiesces and checks that every call has
    /// exactly one outcome. Returns the time spent quiescing.
    fn tick(&mut self, subject: &Subject) -> Duration {
        let now = Instant::now();
        if now >= self.next_sample {
            self.rss.push(probe::rss_mb());
            self.next_sample += Duration::from_secs(1);
        }
        if now >= self.next_restart {
            if let Some(server) = self.server.as_mut() {
                server.kill();
                server.restart();
                eprintln!("  redis restarted");
            }
            self.next_restart += SOAK_RESTART_EVERY;
            self.check_at = Some(now + Duration::from_secs(10));
        }
        if self.check_at.is_some_and(|at| now >= at) {
            return self.check(subject);
        }
        Duration::ZERO
    }

    /// Quiesces (no new plans until those in flight have ended) and checks
    /// the accounting, if a restart is waiting for its check.
    fn check(&mut self, subject: &Subject) -> Duration {
        if self.check_at.take().is_none() {
            return Duration::ZERO;
        }
        let start = Instant::now();
        subject.settle(Duration::from_secs(60));
        let exact = match subject.stats() {
            Some(s) => s.is_balanced() && s.queued == 0 && s.in_flight == 0,
            None => subject.settled(),
        };
        eprintln!(
            "  accounting after the restart: {}",
            if exact { "exact" } else { "OFF" }
        );
        self.checks.push(exact);
        start.elapsed()
    }
}

/// Scenario `processes` (BENCH_BARRIER=1): says on stdout that the load is
/// over, then waits for a line on stdin, so that the parent reads Redis's
/// figures when every process is done and before any reads its events
/// back (which would count in them).
fn barrier() {
    if std::env::var("BENCH_BARRIER").is_ok_and(|v| v == "1") {
        use std::io::{BufRead, Write};
        println!("SETTLED");
        let _ = std::io::stdout().flush();
        let mut line = String::new();
        let _ = std::io::stdin().lock().read_line(&mut line);
    }
}

/// Scenario `processes` (BENCH_HEAT_PREFIX): the Apply processes share the
/// heat keys' prefix, as in production, so that push's messages could
/// reach every process, as broadcast did.
fn shared_heat_prefix() -> Option<String> {
    std::env::var("BENCH_HEAT_PREFIX").ok()
}

/// Plan ids: `p<i>`, after the process id when processes share the heat
/// keys' prefix.
fn plan_prefix() -> &'static String {
    static PREFIX: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PREFIX.get_or_init(|| match shared_heat_prefix() {
        Some(_) => format!("{}-", std::process::id()),
        None => String::new(),
    })
}

fn plan_id(i: usize) -> String {
    format!("{}p{i}", plan_prefix())
}
