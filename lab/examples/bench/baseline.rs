//! The design this crate replaces, written in Rust as the baseline: the
//! seed's `observe_late_async` spawns a thread per plan, which opens its own
//! Redis connection, looks for the key every `poll` until it is found or the
//! wait is over (with a last look at the deadline, as the pool does), then
//! claims the dedupe key and appends the event with plain commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::thread;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use heat_observer::{Config, ObsPoint, store::Event};

pub struct ThreadPerPlan {
    shared: Arc<Shared>,
}

struct Shared {
    client: redis::Client,
    config: Config,
    accepted: AtomicU64,
    spawn_failed: AtomicU64,
    found: AtomicU64,
    not_found: AtomicU64,
    deduplicated: AtomicU64,
    failed: AtomicU64,
    in_flight: AtomicU64,
}

impl ThreadPerPlan {
    pub fn new(url: &str, config: Config) -> Self {
        let client = redis::Client::open(url).expect("a valid Redis URL");
        let zero = || AtomicU64::new(0);
        ThreadPerPlan {
            shared: Arc::new(Shared {
                client,
                config,
                accepted: zero(),
                spawn_failed: zero(),
                found: zero(),
                not_found: zero(),
                deduplicated: zero(),
                failed: zero(),
                in_flight: zero(),
            }),
        }
    }

    /// What publish pays: copying two strings and spawning a thread.
    pub fn observe(&self, plan: &str, symbol: &str) -> bool {
        let observed_at = Instant::now();
        let shared = Arc::clone(&self.shared);
        let (plan, symbol) = (plan.to_owned(), symbol.to_owned());
        self.shared.in_flight.fetch_add(1, Relaxed);
        let spawned = thread::Builder::new().spawn(move || {
            shared.watch(&plan, &symbol, observed_at);
            shared.in_flight.fetch_sub(1, Relaxed);
        });
        if spawned.is_ok() {
            self.shared.accepted.fetch_add(1, Relaxed);
        } else {
            self.shared.in_flight.fetch_sub(1, Relaxed);
            self.shared.spawn_failed.fetch_add(1, Relaxed);
        }
        spawned.is_ok()
    }

    pub fn settled(&self) -> bool {
        self.shared.in_flight.load(Relaxed) == 0
    }

    /// Outcomes by the names the pool's `Stats::outcomes` uses.
    pub fn outcomes(&self) -> Vec<(&'static str, u64)> {
        let s = &self.shared;
        vec![
            ("refused_spawn_failed", s.spawn_failed.load(Relaxed)),
            ("found", s.found.load(Relaxed)),
            ("not_found", s.not_found.load(Relaxed)),
            ("deduplicated", s.deduplicated.load(Relaxed)),
            ("failed", s.failed.load(Relaxed)),
            ("in_flight", s.in_flight.load(Relaxed)),
        ]
    }

    pub fn dropped(&self) -> u64 {
        self.shared.spawn_failed.load(Relaxed)
    }
}

impl Shared {
    fn watch(&self, plan: &str, symbol: &str, observed_at: Instant) {
        let config = &self.config;
        let deadline = observed_at + config.max_wait();
        let key = config.heat_key(plan);
        let timeout = config.redis_timeout();
        let mut con: Option<redis::Connection> = None;
        let mut polls = 0;
        let (found, decided_at) = loop {
            let now = Instant::now();
            if con.is_none() {
                con = self
                    .client
                    .get_connection_with_timeout(timeout)
                    .ok()
                    .inspect(|c| {
                        let _ = c.set_read_timeout(Some(timeout));
                        let _ = c.set_write_timeout(Some(timeout));
                    });
            }
            let look = con
                .as_mut()
                .map(|c| redis::cmd("EXISTS").arg(&key).query::<bool>(c));
            match look {
                Some(Ok(true)) => break (Some(true), now),
                Some(Ok(false)) => polls += 1,
                Some(Err(_)) => con = None,
                None => {}
            }
            if now >= deadline {
                let decided = matches!(look, Some(Ok(_)));
                break (decided.then_some(false), now);
            }
            thread::sleep(config.poll().min(deadline - now));
        };
        let (Some(found), Some(con)) = (found, con.as_mut()) else {
            self.failed.fetch_add(1, Relaxed);
            return;
        };
        let mut event = Event::new(plan, symbol, ObsPoint::PUBLISH_PLAN_POST);
        event.heat_found = found;
        event.polls = polls + u32::from(found);
        event.wait_ms = (decided_at - observed_at).as_millis() as u64;
        event.max_wait_ms = config.max_wait().as_millis() as u64;
        event.ts_ms = unix_ms();
        if self.emit(con, &event).is_err() {
            self.failed.fetch_add(1, Relaxed);
        }
    }

    fn emit(&self, con: &mut redis::Connection, event: &Event) -> redis::RedisResult<()> {
        let config = &self.config;
        let dedupe = config.dedupe_key(event.obs_point, &event.plan_id);
        let ttl = config.dedupe_ttl().as_millis() as u64;
        let claimed: bool = redis::cmd("SET")
            .arg(&dedupe)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl)
            .query(con)?;
        if !claimed {
            self.deduplicated.fetch_add(1, Relaxed);
            return Ok(());
        }
        let mut xadd = redis::cmd("XADD");
        xadd.arg(config.stream())
            .arg("MAXLEN")
            .arg("~")
            .arg(config.stream_maxlen())
            .arg("*");
        for (name, value) in event.fields() {
            xadd.arg(name).arg(value);
        }
        xadd.exec(con)?;
        let counter = if event.heat_found {
            &self.found
        } else {
            &self.not_found
        };
        counter.fetch_add(1, Relaxed);
        Ok(())
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
