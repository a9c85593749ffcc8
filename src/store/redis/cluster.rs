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
//!   key it holds (docs/operators.md, "When a node dies").
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
use super::pipelined::{PerKey, exists_pipelined};
use super::scripts::{self, EXISTS_CHUNK};
use super::slots::{SlotMap, key_slot};
use super::tracking::{self, Subscriber};
use super::url::{RedisUrlError, connection_info};
use crate::config::Config;
use crate::store::{
    Answers, Changes, Claim, Claimed, Connector, Store, StoreError, StoreErrorKind, StreamSpec,
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
/// use heat_observer::{Config, RedisClusterConnector, store::Connector};
///
/// let nodes = ["redis://:secret@10.0.0.5:7000", "10.0.0.6:7000"];
/// # let nodes = ["redis://:secret@10.0.0.5:7000", "redis://:secret@10.0.0.6:7000"];
/// let connector = RedisClusterConnector::new(&nodes, &Config::default())?;
/// assert_eq!(connector.describe(), "redis cluster 10.0.0.5:7000,10.0.0.6:7000");
/// # Ok::<(), heat_observer::store::RedisUrlError>(())
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
    /// The nodes given, `(host, port)`: asked for the slot map when none
    /// of the last map's masters answers.
    seeds: Vec<(String, u16)>,
    /// The slot maps this connector's stores read, as said: a change (a
    /// failover, a reshard) is said once, not once per worker.
    said: std::sync::Arc<std::sync::Mutex<SaidMaps>>,
    #[cfg(feature = "tls")]
    certs: Option<super::tls::TlsCerts>,
}

/// How often the slot map's changes are said at most: a reshard moves
/// slots in hundreds of small steps, said as one change.
const SLOT_LINE_EVERY: Duration = Duration::from_secs(10);

/// The slot map last said, when, and a newer one read since.
#[derive(Debug, Default)]
struct SaidMaps {
    said: Option<SlotMap>,
    at: Option<std::time::Instant>,
    newer: Option<SlotMap>,
}

impl SaidMaps {
    /// The slots moved since the last line, if a line is due: the first
    /// change at once, later ones at most every `SLOT_LINE_EVERY`.
    fn due(&mut self, now: std::time::Instant) -> Vec<super::slots::Move> {
        if self
            .at
            .is_some_and(|at| now.duration_since(at) < SLOT_LINE_EVERY)
        {
            return Vec::new();
        }
        let Some(newer) = self.newer.take() else {
            return Vec::new();
        };
        let moves = self
            .said
            .as_ref()
            .map(|said| said.moves(&newer))
            .unwrap_or_default();
        if !moves.is_empty() {
            self.at = Some(now);
        }
        self.said = Some(newer);
        moves
    }
}

impl NodeClients {
    /// A client for one node; `resp3` for a push subscriber.
    fn client(&self, host: &str, port: u16, resp3: bool) -> redis::RedisResult<redis::Client> {
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
        let mut info = self.template.clone().set_addr(addr);
        if resp3 {
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(redis::ProtocolVersion::RESP3);
            info = info.set_redis_settings(settings);
        }
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
    /// A service does not need it: `LateObserver::from_env` starts a
    /// cluster from a comma-separated list of nodes, in code or in
    /// `P28_LATE_OBS_REDIS_URL`. With this connector the variable is not
    /// followed, and `LateObserver::start` says so in its log.
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
        let seeds = infos
            .iter()
            .filter_map(|info| match info.addr() {
                redis::ConnectionAddr::Tcp(host, port)
                | redis::ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
                _ => None,
            })
            .collect();
        let node_clients = NodeClients {
            template: infos[0].clone(),
            seeds,
            said: std::sync::Arc::default(),
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
            known: None,
            map_reads: 0,
            plain: Vec::new(),
            nodes: self.nodes.clone(),
            push: None,
            lost: false,
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
    /// The last map read, whose masters are asked for the next.
    known: Option<SlotMap>,
    /// Maps read so far: each read starts with the next node, so that a
    /// node slow to learn of a move is not the only one asked.
    map_reads: usize,
    /// Polling, each master's connection for looks.
    plain: Vec<((String, u16), redis::Connection)>,
    nodes: NodeClients,
    /// Push detection, once subscribed: per master (tracking is per node),
    /// a subscriber and the connection whose looks register keys with it.
    push: Option<Vec<MasterPush>>,
    /// A master's looks lost their registered interest (a connection was
    /// replaced): every watched key is to be looked at again.
    lost: bool,
    /// The master whose socket is read first next time.
    turn: usize,
    /// No attempt to rebuild a broken subscription before this.
    resubscribe_at: Option<std::time::Instant>,
}

/// One master's push detection; either part `None` when it broke and is
/// to be rebuilt.
struct MasterPush {
    node: (String, u16),
    subscriber: Option<Subscriber>,
    /// Looks at this master's keys, with tracking redirected to the
    /// subscriber.
    looks: Option<redis::Connection>,
}

impl MasterPush {
    /// `host:port`, for errors.
    fn address(&self) -> String {
        format!("{}:{}", self.node.0, self.node.1)
    }
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
    /// The slot map: the one read last, unless an error cleared it. Read
    /// again from the masters of the last map, one by one (a dead master
    /// is skipped, where the cluster connection would pick one at random
    /// and back off after it failed), then through the cluster connection.
    fn slot_map(&mut self) -> Result<SlotMap, StoreError> {
        if let Some(map) = &self.slots {
            // Changes read within the last line's interval are said once
            // it has passed.
            self.say_moves(None);
            return Ok(map.clone());
        }
        let slots = redis::cmd("CLUSTER").arg("SLOTS").clone();
        let mut known: Vec<(String, u16)> = self
            .known
            .as_ref()
            .map(|m| (0..m.nodes()).map(|i| m.node(i).clone()).collect())
            .unwrap_or_default();
        for seed in &self.nodes.seeds {
            if !known.contains(seed) {
                known.push(seed.clone());
            }
        }
        if !known.is_empty() {
            let first = self.map_reads % known.len();
            known.rotate_left(first);
        }
        self.map_reads = self.map_reads.wrapping_add(1);
        for node in known {
            let ask = || -> redis::RedisResult<redis::Value> {
                let client = self.nodes.client(&node.0, node.1, false)?;
                let mut con = client.get_connection_with_timeout(self.timeout)?;
                con.set_read_timeout(Some(self.timeout))?;
                con.set_write_timeout(Some(self.timeout))?;
                slots.query(&mut con)
            };
            let read = |reply| SlotMap::from_reply(reply, &node.0).ok();
            if let Some(map) = ask().ok().and_then(read) {
                self.read_map(&map);
                return Ok(map);
            }
        }
        let reply = self.call(|c| {
            c.route_command(
                &slots,
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
        })?;
        // Some node of the cluster answered; which one is not known, so an
        // empty host is taken to be the first node given.
        let answering = self.nodes.seeds.first().map_or("", |s| s.0.as_str());
        let map = SlotMap::from_reply(reply, answering)
            .map_err(|e| super::link::store_error(self.link.address(), &e))?;
        self.read_map(&map);
        Ok(map)
    }

    /// Keeps `map`, and says which slots changed master since the map this
    /// connector's stores read last (a failover or a reshard: what the
    /// errors around it were), once for all its workers.
    fn read_map(&mut self, map: &SlotMap) {
        // Connections to nodes that are no longer masters are closed.
        self.plain
            .retain(|(node, _)| (0..map.nodes()).any(|i| map.node(i) == node));
        self.slots = Some(map.clone());
        self.known = Some(map.clone());
        self.say_moves(Some(map));
    }

    /// Says how the slot map changed since it was last said, if a line is
    /// due; `read` is a map just read.
    fn say_moves(&self, read: Option<&SlotMap>) {
        let mut said = self
            .nodes
            .said
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(map) = read {
            said.newer = Some(map.clone());
        } else if said.newer.is_none() {
            return;
        }
        let moves = said.due(std::time::Instant::now());
        drop(said);
        if !moves.is_empty() {
            let slots: u32 = moves
                .iter()
                .map(|m| u32::from(m.last) - u32::from(m.first) + 1)
                .sum();
            let shown: Vec<String> = moves.iter().take(8).map(ToString::to_string).collect();
            let more = moves.len().saturating_sub(8);
            crate::say::say!(
                log::Level::Info,
                "Late observer: the slot map of {} changed (a failover or a reshard): {slots} slot(s) moved: {}{}",
                self.link.address(),
                shown.join("; "),
                if more > 0 {
                    format!("; and {more} more range(s)")
                } else {
                    String::new()
                }
            );
        }
    }

    /// Which of `keys`, all served by `node`, exist, per key (a key's own
    /// error is a redirect or a refusal); pushing, on the node's tracked
    /// connection, so that the look registers the keys.
    fn exists_on(
        &mut self,
        node: &(String, u16),
        keys: &[&str],
        register: bool,
    ) -> Result<PerKey, StoreError> {
        match self.push.is_some() {
            true => self.exists_tracked(node, keys, register),
            false => self.exists_plain(node, keys),
        }
    }

    /// The look on `node`'s own plain connection (opened on first use,
    /// kept while it answers), as pipelined `EXISTS`: a master that dies
    /// or stalls fails its own keys only, never the cluster connection
    /// that every other master's looks and the event writes share.
    fn exists_plain(&mut self, node: &(String, u16), keys: &[&str]) -> Result<PerKey, StoreError> {
        let address = format!("{}:{}", node.0, node.1);
        let at = match self.plain.iter().position(|(n, _)| n == node) {
            Some(at) => at,
            None => {
                let con = self
                    .open_on(node)
                    .map_err(|e| super::link::store_error(&address, &e))?;
                self.plain.push((node.clone(), con));
                self.plain.len() - 1
            }
        };
        exists_pipelined(&mut self.plain[at].1, keys, false).map_err(|e| {
            // Not a reply (every reply is read, errors included): the
            // connection's state is unknown.
            self.plain.swap_remove(at);
            super::link::store_error(&address, &e)
        })
    }

    /// A connection of its own to `node`, with the store's timeouts.
    fn open_on(&self, node: &(String, u16)) -> redis::RedisResult<redis::Connection> {
        let client = self.nodes.client(&node.0, node.1, false)?;
        let con = client.get_connection_with_timeout(self.timeout)?;
        con.set_read_timeout(Some(self.timeout))?;
        con.set_write_timeout(Some(self.timeout))?;
        Ok(con)
    }
}

impl RedisClusterStore {
    /// The look on `node`'s tracked connection (opened, with tracking
    /// redirected to its subscriber, if need be), as plain `EXISTS`
    /// commands: only a command's own keys register interest (a script's
    /// declared keys, which must share one slot on a cluster), so one
    /// script per node cannot. A master without a subscriber is looked at
    /// through the cluster connection: no interest is registered there
    /// until its subscription is rebuilt (which says `Lost`, so everything
    /// is looked at again).
    fn exists_tracked(
        &mut self,
        node: &(String, u16),
        keys: &[&str],
        register: bool,
    ) -> Result<PerKey, StoreError> {
        let address = format!("{}:{}", node.0, node.1);
        let Some(at) = self.master(node) else {
            return self.exists_plain(node, keys);
        };
        let timeout = self.timeout;
        let nodes = self.nodes.clone();
        let push = &mut self.push.as_mut().expect("subscribed")[at];
        let redirect = push.subscriber.as_ref().map(Subscriber::id);
        let open = || -> redis::RedisResult<redis::Connection> {
            let client = nodes.client(&node.0, node.1, false)?;
            let mut con = client.get_connection_with_timeout(timeout)?;
            con.set_read_timeout(Some(timeout))?;
            con.set_write_timeout(Some(timeout))?;
            if let Some(id) = redirect {
                tracking::enable(id).exec(&mut con)?;
            }
            Ok(con)
        };
        if redirect.is_none() {
            // No subscriber on this master (it broke): a look of its own,
            // not through the cluster connection, whose failure would hold
            // up every other master's calls, the event writes among them.
            let mut con = open().map_err(|e| super::link::store_error(&address, &e))?;
            return exists_pipelined(&mut con, keys, false)
                .map_err(|e| super::link::store_error(&address, &e));
        }
        if push.looks.is_none() {
            push.looks = Some(open().map_err(|e| super::link::store_error(&address, &e))?);
        }
        let con = push.looks.as_mut().expect("opened");
        match exists_pipelined(con, keys, register) {
            Ok(found) => Ok(found),
            Err(e) => {
                // Not a reply (every reply is read, errors included): its
                // state is unknown, and with it the interest its looks
                // registered.
                push.looks = None;
                self.lost = true;
                Err(super::link::store_error(&address, &e))
            }
        }
    }

    /// The index of `node`'s push entry, added (with nothing open) if it is
    /// a master the slot map names now.
    fn master(&mut self, node: &(String, u16)) -> Option<usize> {
        let push = self.push.as_mut()?;
        if let Some(at) = push.iter().position(|p| &p.node == node) {
            return Some(at);
        }
        push.push(MasterPush {
            node: node.clone(),
            subscriber: None,
            looks: None,
        });
        Some(push.len() - 1)
    }

    fn subscribe_on(&self, node: &(String, u16)) -> Result<Subscriber, StoreError> {
        let address = format!("{}:{}", node.0, node.1);
        let client = self
            .nodes
            .client(&node.0, node.1, true)
            .map_err(|e| super::link::store_error(&address, &e))?;
        Subscriber::open(&client, self.timeout, &address)
    }

    /// Rebuilds the broken subscriptions on the masters the slot map names
    /// now. Whether any was rebuilt (messages may have been lost).
    fn resubscribe(&mut self) -> bool {
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
        let Some(push) = self.push.as_mut() else {
            return false;
        };
        // Masters gone (failed over, removed) are dropped; new ones added.
        push.retain(|p| masters.contains(&p.node));
        for node in &masters {
            if !push.iter().any(|p| &p.node == node) {
                push.push(MasterPush {
                    node: node.clone(),
                    subscriber: None,
                    looks: None,
                });
            }
        }
        let broken: Vec<usize> = (0..push.len())
            .filter(|&i| push[i].subscriber.is_none())
            .collect();
        let mut rebuilt = false;
        for i in broken {
            let node = self.push.as_ref().expect("subscribed")[i].node.clone();
            if let Ok(subscriber) = self.subscribe_on(&node) {
                let entry = &mut self.push.as_mut().expect("subscribed")[i];
                entry.subscriber = Some(subscriber);
                // Its looks open anew, redirected to the new subscriber.
                entry.looks = None;
                rebuilt = true;
            }
        }
        rebuilt
    }
}

impl RedisClusterStore {
    /// One call per master (per 1,024 keys); a master that fails leaves its
    /// keys unanswered, the others are answered (and, with `register`,
    /// their interest registered). A key whose slot moved is followed
    /// within the same look, as redis-rs's cluster client does: `MOVED`
    /// reads the slot map again and looks once more at the keys it named
    /// on their new masters, `ASK` sends `ASKING` and the look to the node
    /// importing the slot.
    fn look_each(&mut self, keys: &[&str], register: bool) -> Result<Answers, StoreError> {
        let mut found = vec![None; keys.len()];
        let mut failed = None;
        let all: Vec<usize> = (0..keys.len()).collect();
        let moved = self.look_on_masters(keys, &all, register, &mut found, &mut failed)?;
        if !moved.is_empty() {
            // A slot moved: the map is read again and the keys it named
            // looked at on their masters now. Interest registered on the
            // old master tells nothing of writes on the new one, so a
            // pushing store says `Lost`: every watched key is looked at
            // (and registered) again.
            if self.push.is_some() {
                self.lost = true;
            }
            // Each key is asked of the node its `MOVED` names (the node
            // that answered knows; a map read from another may not yet, as
            // a reshard tells the nodes one by one), hop by hop.
            self.slots = None;
            let (mut left, mut again) = (moved, None);
            for _ in 0..MOVED_ROUNDS {
                if left.is_empty() {
                    break;
                }
                again = None;
                left = self.look_moved(keys, &left, register, &mut found, &mut again)?;
            }
            if let Some(e) = again.or_else(|| {
                (!left.is_empty()).then(|| {
                    let why = format!("{}: slots still moving", self.link.address());
                    StoreError::new(StoreErrorKind::Unavailable, why)
                })
            }) {
                failed.get_or_insert(e);
            }
        }
        if failed.is_some() {
            self.slots = None;
        }
        if found.iter().all(Option::is_none)
            && let Some(e) = failed
        {
            return Err(e);
        }
        Ok(Answers { found, failed })
    }

    /// Looks at `keys[i]` for each `i` in `which`, grouped by master with
    /// the slot map; fills `found`, keeps the first error in `failed`, and
    /// returns the keys a master said `MOVED` of, with the node it named.
    /// `ASK` is followed here.
    fn look_on_masters(
        &mut self,
        keys: &[&str],
        which: &[usize],
        register: bool,
        found: &mut [Option<bool>],
        failed: &mut Option<StoreError>,
    ) -> Result<Vec<Moved>, StoreError> {
        let map = self.slot_map()?;
        let mut by_node: Vec<Vec<usize>> = vec![Vec::new(); map.nodes()];
        for &i in which {
            match map.node_of(key_slot(keys[i].as_bytes())) {
                Some(node) => by_node[node].push(i),
                None => {
                    let why = format!(
                        "{}: no master serves the slot of {}",
                        self.link.address(),
                        keys[i]
                    );
                    failed.get_or_insert(StoreError::new(StoreErrorKind::Unavailable, why));
                }
            }
        }
        let mut moved = Vec::new();
        for (node, indexes) in by_node.iter().enumerate() {
            let look = Look {
                keys,
                register,
                node: map.node(node),
            };
            self.look_on(&look, indexes, found, failed, &mut moved);
        }
        Ok(moved)
    }

    /// Looks again at the keys a master said `MOVED` of: on the node each
    /// redirect named, or, without one, on its master in the map read
    /// again. Returns the keys moved once more.
    fn look_moved(
        &mut self,
        keys: &[&str],
        moved: &[Moved],
        register: bool,
        found: &mut [Option<bool>],
        failed: &mut Option<StoreError>,
    ) -> Result<Vec<Moved>, StoreError> {
        let mut by_node: Vec<((String, u16), Vec<usize>)> = Vec::new();
        let mut unnamed = Vec::new();
        for (i, to) in moved {
            match to {
                Some(to) => match by_node.iter_mut().find(|(n, _)| n == to) {
                    Some((_, list)) => list.push(*i),
                    None => by_node.push((to.clone(), vec![*i])),
                },
                None => unnamed.push(*i),
            }
        }
        let mut again = match unnamed.is_empty() {
            true => Vec::new(),
            false => self.look_on_masters(keys, &unnamed, register, found, failed)?,
        };
        for (node, indexes) in &by_node {
            let look = Look {
                keys,
                register,
                node,
            };
            self.look_on(&look, indexes, found, failed, &mut again);
        }
        Ok(again)
    }

    /// Looks at `look.keys[i]` for each `i` in `indexes` on `look.node`,
    /// 1,024 keys a call: fills `found`, keeps the first error in
    /// `failed`, adds the keys it says `MOVED` of to `moved`, and follows
    /// an `ASK` at once.
    fn look_on(
        &mut self,
        look: &Look<'_>,
        indexes: &[usize],
        found: &mut [Option<bool>],
        failed: &mut Option<StoreError>,
        moved: &mut Vec<Moved>,
    ) {
        for chunk in indexes.chunks(EXISTS_CHUNK) {
            let chunk_keys: Vec<&str> = chunk.iter().map(|&i| look.keys[i]).collect();
            let answer = self
                .exists_on(look.node, &chunk_keys, look.register)
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
            let part = match answer {
                Ok(part) => part,
                // The first error is the cause; later ones may be its echo.
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            for (&i, answer) in chunk.iter().zip(part) {
                match answer {
                    Ok(exists) => found[i] = Some(exists),
                    Err(e) => match redirect(&e) {
                        Some(Redirect::Moved(to)) => moved.push((i, to)),
                        Some(Redirect::Ask(to)) => match self.exists_asking(&to, look.keys[i]) {
                            Ok(exists) => found[i] = Some(exists),
                            Err(e) => {
                                failed.get_or_insert(e);
                            }
                        },
                        None => {
                            let address = format!("{}:{}", look.node.0, look.node.1);
                            failed.get_or_insert(super::link::store_error(&address, &e));
                        }
                    },
                }
            }
        }
    }

    /// `ASKING` then `EXISTS key` on `to`, the node importing the key's
    /// slot, on a connection of its own (closed after: a slot migrates
    /// for seconds, rarely). Registers no interest: the store says `Lost`
    /// once the migration ends (a `MOVED`), and the key is registered then.
    fn exists_asking(&mut self, to: &(String, u16), key: &str) -> Result<bool, StoreError> {
        let address = format!("{}:{}", to.0, to.1);
        let ask = || -> redis::RedisResult<bool> {
            let client = self.nodes.client(&to.0, to.1, false)?;
            let mut con = client.get_connection_with_timeout(self.timeout)?;
            con.set_read_timeout(Some(self.timeout))?;
            con.set_write_timeout(Some(self.timeout))?;
            let mut packed = redis::cmd("ASKING").get_packed_command();
            packed.extend(redis::cmd("EXISTS").arg(key).get_packed_command());
            let replies = redis::ConnectionLike::req_packed_commands(&mut con, &packed, 0, 2)?;
            match replies.as_slice() {
                [_, redis::Value::Int(n)] => Ok(*n == 1),
                other => Err((
                    redis::ErrorKind::UnexpectedReturnType,
                    "ASKING EXISTS answered",
                    format!("{other:?}"),
                )
                    .into()),
            }
        };
        ask().map_err(|e| super::link::store_error(&address, &e))
    }
}

/// How many `MOVED` redirects one look follows for a key (a slot may move
/// again while it is followed).
const MOVED_ROUNDS: usize = 3;

/// A key a master said `MOVED` of (its index in the look), and the node
/// the redirect named, if it could be read.
type Moved = (usize, Option<(String, u16)>);

/// One look's keys on one node.
struct Look<'a> {
    keys: &'a [&'a str],
    register: bool,
    node: &'a (String, u16),
}

/// Where a key's error sends the look.
#[derive(Debug)]
enum Redirect {
    /// The slot has a new master, this one (if named).
    Moved(Option<(String, u16)>),
    /// The slot is being imported by this node: ask it, once.
    Ask((String, u16)),
}

fn redirect(e: &redis::RedisError) -> Option<Redirect> {
    // redis-rs gives `(address, slot)`: the address is `host:port` (an
    // IPv6 host keeps its colons, the port follows the last one).
    let node = || {
        let (address, _slot) = e.redirect_node()?;
        let (host, port) = address.rsplit_once(':')?;
        Some((host.to_owned(), port.parse().ok()?))
    };
    match e.code()? {
        "MOVED" => Some(Redirect::Moved(node())),
        "ASK" => node().map(Redirect::Ask),
        _ => None,
    }
}

impl Store for RedisClusterStore {
    /// Subscribed, watching looks register interest in their keys on
    /// their masters.
    fn look(&mut self, keys: &[&str], watch: bool) -> Result<Answers, StoreError> {
        let register = watch && self.push.is_some();
        self.look_each(keys, register)
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

    /// Subscribes on every master: tracking is per node. Each master's
    /// looks then go through a connection of the worker's own, whose
    /// tracking is redirected to that master's subscriber.
    fn subscribe(&mut self) -> Result<bool, StoreError> {
        self.push = None;
        self.slots = None;
        let map = self.slot_map()?;
        let mut push = Vec::new();
        for i in 0..map.nodes() {
            let node = map.node(i).clone();
            let subscriber = self.subscribe_on(&node)?;
            push.push(MasterPush {
                node,
                subscriber: Some(subscriber),
                looks: None,
            });
        }
        self.push = Some(push);
        self.lost = false;
        Ok(true)
    }

    /// Reads the masters' subscribers in turn, a share of `timeout` each. A
    /// subscriber that breaks (a master died or failed over) says `Lost`,
    /// and is rebuilt on the master that serves those slots now, while the
    /// others go on.
    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        if std::mem::take(&mut self.lost) {
            return Ok(Changes::Lost);
        }
        let broken = self
            .push
            .as_ref()
            .is_some_and(|p| p.iter().any(|m| m.subscriber.is_none()));
        if broken && self.resubscribe() {
            return Ok(Changes::Lost);
        }
        let Some(push) = self.push.as_mut() else {
            let why = format!("{}: no subscription", self.link.address());
            return Err(StoreError::new(StoreErrorKind::Unavailable, why));
        };
        let answer = wait_on_masters(push, &mut self.turn, timeout);
        match answer {
            Ok(Changes::Quiet) => {}
            Ok(answer) => return Ok(answer),
            Err(i) => {
                let master = &mut push[i];
                master.subscriber = None;
                master.looks = None;
                self.slots = None;
                return Ok(Changes::Lost);
            }
        }
        if push.iter().all(|m| m.subscriber.is_none()) {
            let why = format!("{}: no master subscription", self.link.address());
            return Err(StoreError::new(StoreErrorKind::Unavailable, why));
        }
        Ok(Changes::Quiet)
    }
}

/// Waits up to `timeout` for messages from any master's subscriber: what
/// one has read already first, then all of them at once with poll(2) (a
/// TLS subscriber, read through redis-rs, is read in turn, a share of the
/// time each). Answers the first that has messages, starting after the
/// one that answered last (`turn`), or the index of one that broke.
fn wait_on_masters(
    push: &mut [MasterPush],
    turn: &mut usize,
    timeout: Duration,
) -> Result<Changes, usize> {
    let n = push.len();
    let order: Vec<usize> = (0..n).map(|k| (*turn + k) % n.max(1)).collect();
    let mut answer = |i: usize, got: Result<Changes, StoreError>| match got {
        Ok(Changes::Quiet) => None,
        Ok(changes) => {
            *turn = i + 1;
            Some(Ok(changes))
        }
        Err(_) => Some(Err(i)),
    };
    #[cfg(unix)]
    {
        let mut fds = Vec::new();
        for &i in &order {
            let master = &mut push[i];
            let address = master.address();
            let Some(subscriber) = master.subscriber.as_mut() else {
                continue;
            };
            if let Some(done) = answer(i, subscriber.buffered(&address)) {
                return done;
            }
            match subscriber.fd() {
                Some(fd) => fds.push((i, fd)),
                None => fds.clear(),
            }
        }
        let polled = fds.len() == push.iter().filter(|m| m.subscriber.is_some()).count();
        if polled && !fds.is_empty() {
            let raw: Vec<_> = fds.iter().map(|&(_, fd)| fd).collect();
            // A failed poll(2) falls through to reading in turn, which
            // says what failed.
            if let Ok(ready) = super::readable::readable(&raw, timeout) {
                for (&(i, _), ready) in fds.iter().zip(ready) {
                    let master = &mut push[i];
                    let address = master.address();
                    if let (true, Some(subscriber)) = (ready, master.subscriber.as_mut())
                        && let Some(done) = answer(i, subscriber.read_ready(&address))
                    {
                        return done;
                    }
                }
                return Ok(Changes::Quiet);
            }
        }
    }
    let share = (timeout / n.max(1) as u32).max(Duration::from_millis(1));
    for i in order {
        let master = &mut push[i];
        let address = master.address();
        let Some(subscriber) = master.subscriber.as_mut() else {
            continue;
        };
        if let Some(done) = answer(i, subscriber.changes(share, &address)) {
            return done;
        }
    }
    Ok(Changes::Quiet)
}

#[cfg(test)]
mod tests;
