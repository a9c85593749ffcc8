//! Redis Cluster (feature `cluster`), through redis-rs's synchronous
//! cluster client, one cluster connection per worker.
//!
//! * Heat keys are HeatBridge's and spread over every slot. Looking at them
//!   is one script call per node (per 1,024 keys), the keys passed as
//!   arguments so that they may sit in different slots of that node (Redis
//!   7 `allow-cross-slot-keys`), sent to the node by address after grouping
//!   the keys with a slot map read from `CLUSTER SLOTS`. One reply per call:
//!   a node that stops answering costs one read timeout (two with the one
//!   retry), where a cluster pipeline of `EXISTS` would wait one timeout per
//!   key it holds (README, "When a node dies").
//! * Claim and append stay one script call per chunk: the dedupe keys carry
//!   the stream's name as a hash tag (`{stream}:dedupe:...`), so they live in
//!   the stream's slot with it.
//! * Connect and response timeouts are the config's Redis timeout and
//!   retries are kept to one, with short waits, so a dead node fails calls
//!   at once instead of holding a worker (redis-rs's default is 16 retries,
//!   seconds apart). Like the standalone store, any error but a server's
//!   reply drops the connection and reconnecting backs off.

use std::fmt;
use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConnection};
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::io::tcp::TcpSettings;

use super::link::Link;
use super::scripts::{self, EXISTS_CHUNK, EXISTS_LOCAL};
use super::slots::{SlotMap, key_slot};
use super::url::{RedisUrlError, connection_info};
use crate::Config;
use crate::store::{Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec};

/// A node as given (`redis://...` or bare `host:port`) as a URL.
fn node_url(node: &str) -> String {
    let node = node.trim();
    if node.contains("://") {
        node.to_owned()
    } else {
        format!("redis://{node}")
    }
}

/// Makes one store per worker from some of the cluster's
/// nodes; the rest are discovered. Nothing connects until a worker's first
/// call.
///
/// ```
/// use heat_observer::{Config, Connector, RedisClusterConnector};
///
/// let nodes = ["redis://:secret@10.0.0.5:7000", "10.0.0.6:7000"];
/// # let nodes = ["redis://:secret@10.0.0.5:7000", "redis://:secret@10.0.0.6:7000"];
/// let connector = RedisClusterConnector::new(&nodes, &Config::default())?;
/// assert_eq!(connector.describe(), "redis cluster 10.0.0.5:7000,10.0.0.6:7000");
/// # Ok::<(), heat_observer::RedisUrlError>(())
/// ```
#[derive(Clone)]
pub struct RedisClusterConnector {
    client: ClusterClient,
    timeout: Duration,
    address: String,
}

impl RedisClusterConnector {
    /// A connector for a cluster, given some of its nodes as URLs
    /// (`redis://[[user]:password@]host:port`) or bare `host:port`, with the
    /// config's Redis timeout. Credentials must be the same on every node.
    ///
    /// # Errors
    /// [`RedisUrlError`] if no node is given, one does not parse, or they
    /// disagree on credentials or TLS.
    pub fn new<S: AsRef<str>>(nodes: &[S], config: &Config) -> Result<Self, RedisUrlError> {
        Self::build(nodes, config.redis_timeout(), |builder| builder)
    }

    /// Like [`RedisClusterConnector::new`] for `rediss://` nodes, trusting
    /// `certs`' root certificate instead of the system's.
    ///
    /// # Errors
    /// As [`RedisClusterConnector::new`].
    #[cfg(feature = "tls")]
    pub fn with_tls<S: AsRef<str>>(
        nodes: &[S],
        config: &Config,
        certs: super::tls::TlsCerts,
    ) -> Result<Self, RedisUrlError> {
        Self::build(nodes, config.redis_timeout(), |builder| {
            builder.certs(certs.into_redis())
        })
    }

    fn build<S: AsRef<str>>(
        nodes: &[S],
        timeout: Duration,
        finish: impl FnOnce(ClusterClientBuilder) -> ClusterClientBuilder,
    ) -> Result<Self, RedisUrlError> {
        if nodes.is_empty() {
            return Err(RedisUrlError::new("no cluster node given"));
        }
        let mut infos = Vec::with_capacity(nodes.len());
        let mut addresses = Vec::with_capacity(nodes.len());
        for node in nodes {
            let (info, address) = connection_info(&node_url(node.as_ref()))?;
            infos.push(info);
            addresses.push(address);
        }
        let builder = ClusterClientBuilder::new(infos)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .min_retry_wait(10)
            .max_retry_wait(50)
            .tcp_settings(TcpSettings::default().set_nodelay(true));
        let client = finish(builder)
            .build()
            .map_err(|e| RedisUrlError::new(e.to_string()))?;
        Ok(Self {
            client,
            timeout,
            address: addresses.join(","),
        })
    }
}

impl fmt::Debug for RedisClusterConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterConnector")
            .field("nodes", &self.address)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Connector for RedisClusterConnector {
    type Store = RedisClusterStore;

    fn connect(&self, _worker: usize) -> RedisClusterStore {
        RedisClusterStore {
            client: self.client.clone(),
            timeout: self.timeout,
            link: Link::new(format!("cluster {}", self.address)),
            slots: None,
        }
    }

    fn describe(&self) -> String {
        format!("redis cluster {}", self.address)
    }
}

/// One worker's cluster connection, opened lazily and replaced after errors.
/// Not exported: users name [`RedisClusterConnector`], never its store.
pub struct RedisClusterStore {
    client: ClusterClient,
    timeout: Duration,
    link: Link<ClusterConnection>,
    /// Read on first use and again after any error (slots may have moved).
    slots: Option<SlotMap>,
}

impl fmt::Debug for RedisClusterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterStore")
            .field("nodes", &self.link.address())
            .field("connected", &self.link.is_connected())
            .finish_non_exhaustive()
    }
}

impl RedisClusterStore {
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut ClusterConnection) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let (client, timeout) = (&self.client, self.timeout);
        let open = || {
            let c = client.get_connection()?;
            c.set_write_timeout(Some(timeout))?;
            Ok(c)
        };
        self.link.call(open, f)
    }
}

impl RedisClusterStore {
    fn slot_map(&mut self) -> Result<SlotMap, StoreError> {
        if let Some(map) = &self.slots {
            return Ok(map.clone());
        }
        let slots = redis::cmd("CLUSTER").arg("SLOTS").clone();
        let reply = self.call(|c| {
            c.route_command(
                &slots,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
        })?;
        let map = SlotMap::from_reply(reply)
            .map_err(|e| super::link::store_error(self.link.address(), &e))?;
        self.slots = Some(map.clone());
        Ok(map)
    }

    /// Which of `keys`, all served by `node`, exist: one script call sent to
    /// that node (loading the script there first if it lacks it).
    fn exists_on(&mut self, node: &(String, u16), keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: node.0.clone(),
            port: node.1,
        });
        let mut evalsha = EXISTS_LOCAL.call(0);
        evalsha.arg(keys);
        let send = |c: &mut ClusterConnection, cmd: &redis::Cmd| {
            c.route_command(cmd, route.clone())
                .and_then(redis::Value::extract_error)
        };
        let call = |c: &mut ClusterConnection| match send(c, &evalsha) {
            Err(e) if scripts::is_noscript(&e) => {
                send(c, &EXISTS_LOCAL.load())?;
                send(c, &evalsha)
            }
            other => other,
        };
        let reply = self.call(call)?;
        scripts::found(reply, keys.len(), self.link.address())
    }
}

impl Store for RedisClusterStore {
    fn exists(&mut self, keys: &[&str]) -> Result<Vec<bool>, StoreError> {
        let map = self.slot_map()?;
        let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); map.nodes()];
        for (i, key) in keys.iter().enumerate() {
            let Some(node) = map.node_of(key_slot(key.as_bytes())) else {
                self.slots = None;
                let why = format!(
                    "{}: no master serves the slot of {key}",
                    self.link.address()
                );
                return Err(StoreError::new(StoreErrorKind::Unavailable, why));
            };
            by_node[node].push(i);
        }
        let mut found = vec![false; keys.len()];
        for (node, indexes) in by_node.iter().enumerate() {
            for chunk in indexes.chunks(EXISTS_CHUNK) {
                let chunk_keys: Vec<&str> = chunk.iter().map(|&i| keys[i]).collect();
                let answer = self
                    .exists_on(map.node(node), &chunk_keys)
                    .and_then(|part| {
                        if part.len() == chunk.len() {
                            Ok(part)
                        } else {
                            let why = format!(
                                "{}: exists answered {} for {} keys",
                                self.link.address(),
                                part.len(),
                                chunk.len()
                            );
                            Err(StoreError::new(StoreErrorKind::Protocol, why))
                        }
                    });
                match answer {
                    Ok(part) => chunk.iter().zip(part).for_each(|(&i, x)| found[i] = x),
                    Err(e) => {
                        // A slot that moved says "non local key": read the map again next time.
                        self.slots = None;
                        return Err(e);
                    }
                }
            }
        }
        Ok(found)
    }

    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        let address = self.link.address().to_owned();
        super::claim_in_chunks(stream, claims, &address, |call| {
            self.call(|c| scripts::run_claim(c, call))
        })
    }

    /// Not in this version: tracking is per node, so push on a cluster
    /// needs a subscriber per master, re-registered after a failover. The
    /// workers poll, and say so once.
    fn watch_prefix(&mut self, _prefix: &str) -> Result<bool, StoreError> {
        let why =
            "push detection on Redis Cluster is not implemented yet (one subscriber per master)";
        Err(StoreError::new(StoreErrorKind::Server, why))
    }
}
