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
use super::tracking::Tracking;
use super::url::{RedisUrlError, connection_info};
use crate::Config;
use crate::store::{
    Changes, Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec,
};

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
    /// Opens a plain connection to one master (push detection).
    nodes: NodeClients,
}

#[cfg(feature = "tls")]
type TlsCertsOrNone = super::tls::TlsCerts;
#[cfg(not(feature = "tls"))]
type TlsCertsOrNone = ();

/// Makes a client for one node from the first node's settings (credentials,
/// TLS) and the node's address.
#[derive(Clone)]
struct NodeClients {
    template: redis::ConnectionInfo,
    #[cfg(feature = "tls")]
    certs: Option<super::tls::TlsCerts>,
}

impl NodeClients {
    fn client(&self, host: &str, port: u16) -> redis::RedisResult<redis::Client> {
        let addr = match self.template.addr() {
            redis::ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => redis::ConnectionAddr::TcpTls {
                host: host.to_owned(),
                port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => redis::ConnectionAddr::Tcp(host.to_owned(), port),
        };
        let info = self.template.clone().set_addr(addr);
        #[cfg(feature = "tls")]
        if let Some(certs) = &self.certs {
            return redis::Client::build_with_tls(info, certs.clone().into_redis());
        }
        redis::Client::open(info)
    }
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
        Self::build(nodes, config.redis_timeout(), None, |builder| builder)
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
        let tls = Some(certs.clone());
        Self::build(nodes, config.redis_timeout(), tls, |builder| {
            builder.certs(certs.into_redis())
        })
    }

    fn build<S: AsRef<str>>(
        nodes: &[S],
        timeout: Duration,
        #[cfg_attr(not(feature = "tls"), allow(unused_variables))] certs: Option<TlsCertsOrNone>,
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
        let node_clients = NodeClients {
            template: infos[0].clone(),
            #[cfg(feature = "tls")]
            certs,
        };
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
            nodes: node_clients,
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
            link: Link::new(
                format!("cluster {}", self.address),
                self.nodes
                    .template
                    .redis_settings()
                    .username()
                    .map(str::to_owned),
            ),
            slots: None,
            nodes: self.nodes.clone(),
            push: Vec::new(),
            push_prefix: None,
            turn: 0,
            resubscribe_at: None,
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
    nodes: NodeClients,
    /// Push detection: a subscription per master (tracking is per node).
    push: Vec<Subscription>,
    push_prefix: Option<String>,
    /// The master whose socket is read first next time.
    turn: usize,
    /// No attempt to rebuild a broken subscription before this.
    resubscribe_at: Option<std::time::Instant>,
}

/// One master's subscription; `None` when it broke and is to be rebuilt.
struct Subscription {
    node: (String, u16),
    tracking: Option<Tracking>,
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

impl RedisClusterStore {
    fn subscribe_on(&mut self, node: &(String, u16), prefix: &str) -> Result<Tracking, StoreError> {
        let address = format!("{}:{}", node.0, node.1);
        let client = self
            .nodes
            .client(&node.0, node.1)
            .map_err(|e| super::link::store_error(&address, &e))?;
        let mut tracking = Tracking::new();
        tracking.subscribe(&client, self.timeout, prefix, &address)?;
        Ok(tracking)
    }

    /// Rebuilds the broken subscriptions on the masters the slot map names
    /// now. Whether any was rebuilt (messages may have been lost).
    fn resubscribe(&mut self) -> bool {
        let Some(prefix) = self.push_prefix.clone() else {
            return false;
        };
        // At most once a second: a dead master costs a connect each try.
        let now = std::time::Instant::now();
        if self.resubscribe_at.is_some_and(|at| now < at) {
            return false;
        }
        self.resubscribe_at = Some(now + Duration::from_secs(1));
        let Ok(map) = self.slot_map() else {
            return false;
        };
        let masters: Vec<(String, u16)> = (0..map.nodes()).map(|i| map.node(i).clone()).collect();
        // Masters gone (failed over, removed) are dropped; new ones added.
        self.push.retain(|s| masters.contains(&s.node));
        for node in masters {
            if !self.push.iter().any(|s| s.node == node) {
                self.push.push(Subscription {
                    node,
                    tracking: None,
                });
            }
        }
        let mut rebuilt = false;
        for i in 0..self.push.len() {
            if self.push[i].tracking.is_none() {
                let node = self.push[i].node.clone();
                if let Ok(tracking) = self.subscribe_on(&node, &prefix) {
                    self.push[i].tracking = Some(tracking);
                    rebuilt = true;
                }
            }
        }
        rebuilt
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

    /// Subscribes on every master: tracking is per node.
    fn watch_prefix(&mut self, prefix: &str) -> Result<bool, StoreError> {
        self.push_prefix = Some(prefix.to_owned());
        self.push.clear();
        self.slots = None;
        let map = self.slot_map()?;
        for i in 0..map.nodes() {
            let node = map.node(i).clone();
            let tracking = self.subscribe_on(&node, prefix)?;
            self.push.push(Subscription {
                node,
                tracking: Some(tracking),
            });
        }
        Ok(true)
    }

    /// Reads the masters' sockets in turn, a share of `timeout` each. A
    /// subscription that breaks (a master died or failed over) says `Lost`,
    /// and is rebuilt on the master that serves those slots now, while the
    /// others go on.
    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        if self.push.iter().any(|s| s.tracking.is_none()) && self.resubscribe() {
            return Ok(Changes::Lost);
        }
        let n = self.push.len().max(1);
        let share = (timeout / n as u32).max(Duration::from_millis(1));
        for k in 0..self.push.len() {
            let i = (self.turn + k) % self.push.len();
            let sub = &mut self.push[i];
            let Some(tracking) = sub.tracking.as_mut() else {
                continue;
            };
            let address = format!("{}:{}", sub.node.0, sub.node.1);
            match tracking.changes(share, &address) {
                Ok(Changes::Keys(keys)) if keys.is_empty() => {}
                Ok(answer) => {
                    self.turn = i + 1;
                    return Ok(answer);
                }
                Err(_) => {
                    sub.tracking = None;
                    self.slots = None;
                    return Ok(Changes::Lost);
                }
            }
        }
        if self.push.iter().all(|s| s.tracking.is_none()) {
            let why = format!("{}: no master subscription", self.link.address());
            return Err(StoreError::new(StoreErrorKind::Unavailable, why));
        }
        Ok(Changes::Keys(Vec::new()))
    }
}
