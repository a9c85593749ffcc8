//! Where an example runs: in memory, against one Redis (`--redis URL`), or
//! against a Redis Cluster (`--redis-cluster host:port,...`, feature
//! `cluster`).
// Each example uses a part of this module.
#![allow(dead_code)]

use std::time::Duration;

use heat_observer::{Config, LateObserver, MemoryStore, RedisConnector};

use super::args::{Args, fail};

#[derive(Clone)]
pub enum Target {
    Memory,
    Redis(String),
    Cluster(Vec<String>),
}

impl Target {
    /// From `--redis` or `--redis-cluster`; with `env_fallback`, `REDIS_URL`
    /// when neither is given.
    pub fn from_args(args: &Args, env_fallback: bool) -> Target {
        match (args.opt("--redis"), args.opt("--redis-cluster")) {
            (Some(_), Some(_)) => fail("give --redis or --redis-cluster, not both"),
            (Some(url), None) => Target::Redis(url),
            (None, Some(nodes)) => {
                if cfg!(not(feature = "cluster")) {
                    fail(
                        "--redis-cluster needs the crate feature `cluster` (cargo run --features cluster ...)",
                    );
                }
                Target::Cluster(
                    nodes
                        .split(',')
                        .map(|n| n.trim().to_owned())
                        .filter(|n| !n.is_empty())
                        .collect(),
                )
            }
            (None, None) => match std::env::var("REDIS_URL")
                .ok()
                .filter(|u| env_fallback && !u.is_empty())
            {
                Some(url) => Target::Redis(url),
                None => Target::Memory,
            },
        }
    }

    /// Where the library's `LateObserver::from_env` would go, for a tool
    /// that behaves like the service: `P28_LATE_OBS_REDIS_URL`, else
    /// `--redis` (or `--redis-cluster`), else (with `env_fallback`)
    /// `REDIS_URL`, else memory; with the name of the source, to say which.
    pub fn like_the_library(args: &Args, env_fallback: bool) -> (Target, &'static str) {
        if let Some(url) = std::env::var("P28_LATE_OBS_REDIS_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            if args.opt("--redis").is_some() || args.opt("--redis-cluster").is_some() {
                log::warn!(
                    "P28_LATE_OBS_REDIS_URL is set: it wins over --redis, as in the library"
                );
            }
            // A comma-separated list of nodes is a cluster, as in the library.
            if url.contains(',') {
                let nodes = url
                    .split(',')
                    .map(|n| n.trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .collect();
                return (Target::Cluster(nodes), "P28_LATE_OBS_REDIS_URL");
            }
            return (Target::Redis(url), "P28_LATE_OBS_REDIS_URL");
        }
        let source = match (args.opt("--redis"), args.opt("--redis-cluster")) {
            (Some(_), _) => "--redis",
            (_, Some(_)) => "--redis-cluster",
            _ if env_fallback && std::env::var("REDIS_URL").is_ok_and(|u| !u.is_empty()) => {
                "REDIS_URL"
            }
            _ => "no Redis given: the in-memory store",
        };
        (Target::from_args(args, env_fallback), source)
    }

    /// What to log about this target: `host:port` only, never the URL.
    pub fn describe(&self) -> String {
        match self {
            Target::Memory => "memory store".to_owned(),
            Target::Redis(url) => RedisConnector::with_timeout(url, Duration::from_secs(1))
                .map_or_else(
                    |e| format!("redis (a URL that cannot work: {e})"),
                    |c| format!("redis {}", c.address()),
                ),
            // Each node as `host:port`, never its user or password.
            Target::Cluster(nodes) => {
                let shown: Vec<String> = nodes
                    .iter()
                    .map(|n| {
                        let rest = n.split_once("://").map_or(n.as_str(), |(_, r)| r);
                        let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
                        rest.split(['/', '?', '#']).next().unwrap_or("").to_owned()
                    })
                    .collect();
                format!("redis cluster {}", shown.join(","))
            }
        }
    }

    /// Starts an observer on this target (`memory` for `Memory`).
    pub fn start(&self, config: Config, memory: &MemoryStore) -> Result<LateObserver, String> {
        let started = match self {
            Target::Memory => LateObserver::start(config, memory.clone()),
            Target::Redis(url) => {
                let connector = RedisConnector::new(url, &config).map_err(|e| e.to_string())?;
                LateObserver::start(config, connector)
            }
            #[cfg(feature = "cluster")]
            Target::Cluster(nodes) => {
                let connector = heat_observer::RedisClusterConnector::new(nodes, &config)
                    .map_err(|e| e.to_string())?;
                LateObserver::start(config, connector)
            }
            #[cfg(not(feature = "cluster"))]
            Target::Cluster(_) => unreachable!("refused by from_args"),
        };
        started.map_err(|e| e.to_string())
    }

    /// A connection for the example's own reads and writes (not the
    /// observer's): a cluster connection routes each command to its node.
    /// Every wait is bounded, whatever the servers do (killed, stalled, a
    /// slot without a master): a connect, a reply and the cluster client's
    /// retries each have a limit, so the example always ends.
    pub fn connect(&self) -> redis::RedisResult<Box<dyn redis::ConnectionLike + Send>> {
        let timeout = Duration::from_secs(1);
        match self {
            Target::Memory => {
                Err((redis::ErrorKind::InvalidClientConfig, "in memory: no Redis").into())
            }
            Target::Redis(url) => {
                let con =
                    redis::Client::open(url.as_str())?.get_connection_with_timeout(timeout)?;
                con.set_read_timeout(Some(timeout))?;
                con.set_write_timeout(Some(timeout))?;
                Ok(Box::new(con))
            }
            #[cfg(feature = "cluster")]
            Target::Cluster(nodes) => {
                let urls = nodes.iter().map(|n| {
                    if n.contains("://") {
                        n.clone()
                    } else {
                        format!("redis://{n}")
                    }
                });
                // redis-rs retries 16 times by default, seconds apart, and a
                // slot without a master answers CLUSTERDOWN to every try.
                let client = redis::cluster::ClusterClientBuilder::new(urls)
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(2)
                    .min_retry_wait(50)
                    .max_retry_wait(200)
                    .build()?;
                let con = client.get_connection()?;
                con.set_write_timeout(Some(timeout))?;
                Ok(Box::new(con))
            }
            #[cfg(not(feature = "cluster"))]
            Target::Cluster(_) => unreachable!("refused by from_args"),
        }
    }

    pub fn is_memory(&self) -> bool {
        matches!(self, Target::Memory)
    }
}
