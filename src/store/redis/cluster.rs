//! Redis Cluster (feature `cluster`): each worker talks to each master on
//! a [`Node`] of its own, the same path as the standalone store.
//!
//! * Heat keys are HeatBridge's and spread over every slot. They are
//!   grouped by master with a slot map read from `CLUSTER SLOTS` and looked
//!   at on each master's own [`Node`] (pipelined `EXISTS`, 1,024 keys a
//!   call): a master that dies or stalls fails its own keys only, and costs
//!   one read timeout, then backs off. A `MOVED` or `ASK` is followed
//!   within the look.
//! * Claim and append stay one script call per chunk, on the master of the
//!   stream's slot: the dedupe keys carry the stream's name as a hash tag
//!   (`{stream}:dedupe:...`), so they live in that slot with it. A `MOVED`
//!   or `ASK` is followed within the call; a failure is retried by the
//!   worker, on the master the slot map names then.
//! * A node that fails a call fails it once, within the config's Redis
//!   timeout, and is reconnected at the next call (a cluster's calls are
//!   spread over masters; redis-rs's cluster client would retry for
//!   seconds and hold the worker).

use std::fmt;
use std::time::{Duration, Instant};

use super::node::{Endpoint, Node};
use super::pipelined::EXISTS_CHUNK;
use super::replication::{self, Role};
use super::scripts;
use super::slots::{SlotMap, key_slot};
use super::url::connection_info;
use crate::config::{Config, ConfigError};
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
/// use heat_observer::{Config, RedisClusterConnector};
///
/// // The second node is reached with the first's password, as are the
/// // nodes the slot map names.
/// let nodes = ["redis://:secret@10.0.0.5:7000", "10.0.0.6:7000"];
/// let connector = RedisClusterConnector::new(&nodes, &Config::default())?;
/// let shown = format!("{connector:?}");
/// assert!(shown.contains("10.0.0.5:7000,10.0.0.6:7000") && !shown.contains("secret"));
/// # Ok::<(), heat_observer::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct RedisClusterConnector {
    timeout: Duration,
    address: String,
    nodes: NodeClients,
}

/// Makes a client for one node from the first node's settings (credentials,
/// TLS) and the node's address.
#[derive(Clone)]
struct NodeClients {
    template: redis::ConnectionInfo,
    timeout: Duration,
    /// The nodes given, `(host, port)`: asked for the slot map when none
    /// of the last map's masters answers.
    seeds: Vec<(String, u16)>,
    /// The slot maps this connector's stores read, as said: a change (a
    /// failover, a reshard) is said once, not once per worker.
    said: std::sync::Arc<std::sync::Mutex<SaidMaps>>,
    certs: super::node::Certs,
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
    /// How to reach one node: the first node's settings (credentials,
    /// TLS) at `host:port`.
    fn endpoint(&self, (host, port): &(String, u16)) -> redis::RedisResult<Endpoint> {
        let addr = match self.template.addr() {
            redis::ConnectionAddr::TcpTls {
                insecure,
                tls_params,
                ..
            } => redis::ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => redis::ConnectionAddr::Tcp(host.clone(), *port),
        };
        let info = self.template.clone().set_addr(addr);
        let address = format!("{host}:{port}");
        Endpoint::new(info, address, self.timeout, self.certs.clone())
    }
}

impl RedisClusterConnector {
    /// A connector for a cluster, given some of its nodes as URLs
    /// (`redis://[[user]:password@]host:port`) or bare `host:port`, with the
    /// config's Redis timeout. Every node is reached with the first node's
    /// user, password, database and TLS (those the slot map names, and
    /// bare nodes); nodes given as URLs must agree with it.
    ///
    /// A service does not need it: `LateObserver::from_env` starts a
    /// cluster from a comma-separated list of nodes, in code or in
    /// `P28_LATE_OBS_REDIS_URL`. With this connector the variable is not
    /// followed, and `LateObserver::start` says so in its log.
    ///
    /// # Errors
    /// A [`ConfigError`] if no node is given, one does not parse or is a
    /// unix socket, or two URLs disagree on user, password, database or
    /// TLS.
    pub fn new<S: AsRef<str>>(nodes: &[S], config: &Config) -> Result<Self, ConfigError> {
        Self::build(nodes, config.redis_timeout(), None)
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
    ) -> Result<Self, ConfigError> {
        Self::build(nodes, config.redis_timeout(), Some(certs))
    }

    fn build<S: AsRef<str>>(
        nodes: &[S],
        timeout: Duration,
        certs: super::node::Certs,
    ) -> Result<Self, ConfigError> {
        let mut infos = Vec::with_capacity(nodes.len());
        let mut addresses = Vec::with_capacity(nodes.len());
        for node in nodes {
            let bare = !node.as_ref().contains("://");
            let (info, address) = connection_info(&node_url(node.as_ref()))?;
            infos.push((info, bare));
            addresses.push(address);
        }
        let Some((first, _)) = infos.first() else {
            return Err(ConfigError::url("no cluster node given"));
        };
        let tls = |info: &redis::ConnectionInfo| {
            matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. })
        };
        let settings = |info: &redis::ConnectionInfo| {
            let s = info.redis_settings();
            (
                s.username().map(str::to_owned),
                s.password().map(str::to_owned),
                s.db(),
            )
        };
        let mut seeds = Vec::with_capacity(infos.len());
        for (info, bare) in &infos {
            match info.addr() {
                redis::ConnectionAddr::Tcp(host, port)
                | redis::ConnectionAddr::TcpTls { host, port, .. } => {
                    seeds.push((host.clone(), *port));
                }
                _ => {
                    return Err(ConfigError::url(
                        "a cluster node must be host:port (CLUSTER SLOTS names nodes so, never by a unix socket)",
                    ));
                }
            }
            // The slot map names the other nodes by address only: they are
            // reached with the first node's credentials, TLS and database,
            // as a bare `host:port` is. A URL that says otherwise is wrong.
            if !bare && (settings(info) != settings(first) || tls(info) != tls(first)) {
                return Err(ConfigError::url(
                    "the cluster nodes differ in user, password, database or TLS",
                ));
            }
        }
        Ok(Self {
            timeout,
            address: addresses.join(","),
            nodes: NodeClients {
                template: first.clone(),
                timeout,
                seeds,
                said: std::sync::Arc::default(),
                certs,
            },
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
            address: format!("cluster {}", self.address),
            slots: None,
            known: None,
            map_reads: 0,
            servers: Vec::new(),
            replicas: Vec::new(),
            nodes: self.nodes.clone(),
            push: false,
            lost: false,
            turn: 0,
            resubscribe_at: None,
            role_refused: false,
            unregistered: Vec::new(),
        }
    }

    fn describe(&self) -> String {
        format!("redis cluster {}", self.address)
    }
}

/// One worker's connections to the cluster's nodes, opened lazily.
/// Not exported: users name [`RedisClusterConnector`], never its store.
pub struct RedisClusterStore {
    /// `cluster <nodes given>`, for errors.
    address: String,
    /// Read on first use and again after any error (slots may have moved).
    slots: Option<SlotMap>,
    /// The last map read, whose masters are asked for the next.
    known: Option<SlotMap>,
    /// Maps read so far: each read starts with the next node, so that a
    /// node slow to learn of a move is not the only one asked.
    map_reads: usize,
    /// The servers this worker talks to, by `(host, port)`: each master
    /// (its looks and, pushing, its subscriber), the nodes asked for the
    /// slot map, the target of an `ASK`.
    servers: Vec<((String, u16), Node)>,
    /// The replicas read in place of a master that does not answer, each
    /// on a `READONLY` connection of its own.
    replicas: Vec<((String, u16), Node)>,
    nodes: NodeClients,
    /// Push detection is on: every master is subscribed, a broken one
    /// rebuilt.
    push: bool,
    /// A slot moved under the looks: interest registered on the old
    /// master tells nothing of writes on the new one.
    lost: bool,
    /// The master whose socket is read first next time.
    turn: usize,
    /// No attempt to rebuild a broken subscription before this.
    resubscribe_at: Option<std::time::Instant>,
    /// The user may not run `ROLE`: a replica's "no such key" never
    /// answers for a master.
    role_refused: bool,
    /// Masters that refused a look registering interest (`CLUSTERDOWN`):
    /// the keys answered by a replica meanwhile have none there. The
    /// first look such a master answers again says `Lost`, so every
    /// watched key is looked at (and registered) again.
    unregistered: Vec<(String, u16)>,
}

impl fmt::Debug for RedisClusterStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClusterStore")
            .field("nodes", &self.address)
            .field("servers", &self.servers.len())
            .finish_non_exhaustive()
    }
}

impl RedisClusterStore {
    /// The slot map: the one read last, unless an error cleared it. Read
    /// again from the masters of the last map and the nodes given, one by
    /// one, starting with the next each time (a dead master is skipped).
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
        let (mut last, mut holed) = (None, None::<SlotMap>);
        for node in known {
            // Read inside the call: a reply that is no map is one out of
            // step, and its connection is dropped.
            let read = self
                .server(&node)
                .and_then(|server| server.call(|c| SlotMap::from_reply(slots.query(c)?, &node.0)));
            match read {
                // A map with a hole may be its node's alone (a master
                // whose own view lost a slot refuses every key): one more
                // node is asked, and the map that serves more is kept.
                Ok(map) if map.served() < 16384 && holed.is_none() => holed = Some(map),
                Ok(map) => {
                    let map = match holed {
                        Some(first) if first.served() > map.served() => first,
                        _ => map,
                    };
                    self.read_map(&map);
                    return Ok(map);
                }
                Err(e) => last = Some(e),
            }
        }
        if let Some(map) = holed {
            self.read_map(&map);
            return Ok(map);
        }
        let why = format!("{}: no node answered CLUSTER SLOTS", self.address);
        Err(last.map_or_else(
            || StoreError::new(StoreErrorKind::Unavailable, why),
            |e| {
                StoreError::new(
                    e.kind(),
                    format!("no node answered CLUSTER SLOTS, the last: {}", e.message()),
                )
            },
        ))
    }

    /// Keeps `map`, and says which slots changed master since the map this
    /// connector's stores read last (a failover or a reshard: what the
    /// errors around it were), once for all its workers.
    fn read_map(&mut self, map: &SlotMap) {
        // Nodes that are no longer masters (nor given) are closed.
        let seeds = &self.nodes.seeds;
        self.servers.retain(|(node, _)| {
            (0..map.nodes()).any(|i| map.node(i) == node) || seeds.contains(node)
        });
        self.replicas.retain(|(node, _)| {
            (0..map.nodes()).any(|i| map.replicas_of(map.node(i)).contains(node))
        });
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
                "Late observer: the slot map of {} changed ({}): {slots} slot(s) moved: {}{}",
                self.address.as_str(),
                super::slots::Move::kind(&moves),
                shown.join("; "),
                if more > 0 {
                    format!("; and {more} more range(s)")
                } else {
                    String::new()
                }
            );
        }
    }

    /// `node`'s server, added (nothing opened yet) on first use.
    fn server(&mut self, node: &(String, u16)) -> Result<&mut Node, StoreError> {
        Self::node_in(&mut self.servers, &self.nodes, node, false)
    }

    /// `node`'s `READONLY` connection as a replica, added on first use.
    fn replica(&mut self, node: &(String, u16)) -> Result<&mut Node, StoreError> {
        Self::node_in(&mut self.replicas, &self.nodes, node, true)
    }

    fn node_in<'a>(
        list: &'a mut Vec<((String, u16), Node)>,
        clients: &NodeClients,
        node: &(String, u16),
        readonly: bool,
    ) -> Result<&'a mut Node, StoreError> {
        let at = match list.iter().position(|(n, _)| n == node) {
            Some(at) => at,
            None => {
                let endpoint = clients
                    .endpoint(node)
                    .map_err(|e| super::link::store_error(&format!("{}:{}", node.0, node.1), &e))?;
                let endpoint = if readonly {
                    endpoint.readonly()
                } else {
                    endpoint
                };
                list.push((node.clone(), Node::new(endpoint).eager()));
                list.len() - 1
            }
        };
        Ok(&mut list[at].1)
    }

    /// The masters of the slot map read last.
    fn masters(&self) -> Vec<(String, u16)> {
        let map = self.slots.as_ref().or(self.known.as_ref());
        map.map(|m| (0..m.nodes()).map(|i| m.node(i).clone()).collect())
            .unwrap_or_default()
    }

    /// Rebuilds the broken subscriptions on the masters the slot map names
    /// now, and drops those of nodes that are masters no more. Whether any
    /// was rebuilt (messages may have been lost).
    fn resubscribe(&mut self) -> bool {
        // At most once a second: a dead master costs a connect each try.
        let now = std::time::Instant::now();
        if self.resubscribe_at.is_some_and(|at| now < at) {
            return false;
        }
        self.resubscribe_at = Some(now + Duration::from_secs(1));
        if self.slot_map().is_err() {
            return false;
        }
        let masters = self.masters();
        for (node, server) in &mut self.servers {
            if server.is_subscribed() && !masters.contains(node) {
                server.unsubscribe();
            }
        }
        let mut rebuilt = false;
        for node in &masters {
            if let Ok(server) = self.server(node)
                && !server.is_subscribed()
            {
                rebuilt |= server.subscribe().is_ok();
            }
        }
        rebuilt
    }

    /// Whether a master of the slot map has no subscription.
    fn subscription_broken(&self) -> bool {
        self.masters().iter().any(|node| {
            !self
                .servers
                .iter()
                .any(|(n, s)| n == node && s.is_subscribed())
        })
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
        let mut found: Vec<Seen> = vec![None; keys.len()];
        let mut failed = None;
        let all: Vec<usize> = (0..keys.len()).collect();
        let moved = self.look_on_masters(keys, &all, register, &mut found, &mut failed)?;
        if !moved.is_empty() {
            // A slot moved: the map is read again and the keys it named
            // looked at on their masters now. Interest registered on the
            // old master tells nothing of writes on the new one, so a
            // pushing store says `Lost`: every watched key is looked at
            // (and registered) again.
            self.lost |= self.push;
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
                    let why = format!("{}: slots still moving", self.address.as_str());
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
        Ok(Answers {
            found: found.iter().map(|s| s.map(|(exists, _)| exists)).collect(),
            failed,
            looked_by: found.iter().map(|s| s.map(|(_, by)| by)).collect(),
        })
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
        found: &mut [Seen],
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
                        self.address.as_str(),
                        keys[i]
                    );
                    failed.get_or_insert(StoreError::new(StoreErrorKind::Unavailable, why));
                }
            }
        }
        let groups: Vec<(&(String, u16), Vec<usize>)> = by_node
            .into_iter()
            .enumerate()
            .filter(|(_, indexes)| !indexes.is_empty())
            .map(|(node, indexes)| (map.node(node), indexes))
            .collect();
        let mut moved = Vec::new();
        self.look_on(keys, register, &groups, found, failed, &mut moved);
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
        found: &mut [Seen],
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
        let groups: Vec<(&(String, u16), Vec<usize>)> =
            by_node.iter().map(|(n, ix)| (n, ix.clone())).collect();
        self.look_on(keys, register, &groups, found, failed, &mut again);
        Ok(again)
    }

    /// Looks at `keys[i]` for each `i` of each group on its node, 1,024
    /// keys a call. Every node's call is sent before any answer is read,
    /// so a master that stalls holds back no other's answer (each answer
    /// says when its server looked, by the server's clock). Fills `found`,
    /// keeps the first error in `failed`, adds the keys a node says
    /// `MOVED` of to `moved`, and follows each `ASK` once every answer is
    /// read: the node it names may be one whose answer is still unread. A
    /// node that fails is not asked again within the look (one timeout),
    /// and its keys are asked of its replicas.
    fn look_on(
        &mut self,
        keys: &[&str],
        register: bool,
        groups: &[(&(String, u16), Vec<usize>)],
        found: &mut [Seen],
        failed: &mut Option<StoreError>,
        moved: &mut Vec<Moved>,
    ) {
        let rounds = groups.iter().map(|(_, ix)| ix.len().div_ceil(EXISTS_CHUNK));
        let mut down = vec![false; groups.len()];
        let mut asks = Vec::new();
        for round in 0..rounds.max().unwrap_or(0) {
            let mut sent = Vec::new();
            for (g, (node, indexes)) in groups.iter().enumerate() {
                let Some(chunk) = indexes.chunks(EXISTS_CHUNK).nth(round) else {
                    continue;
                };
                if down[g] {
                    self.found_on_replicas(node, keys, chunk, found, None);
                    continue;
                }
                let chunk_keys: Vec<&str> = chunk.iter().map(|&i| keys[i]).collect();
                match self
                    .server(node)
                    .and_then(|server| server.send_look(&chunk_keys, register))
                {
                    Ok(pending) => sent.push((g, chunk, pending)),
                    Err(e) => {
                        down[g] = true;
                        self.found_on_replicas(node, keys, chunk, found, None);
                        failed.get_or_insert_with(|| self.master_failed(node, &e));
                    }
                }
            }
            for (g, chunk, pending) in sent {
                let node = groups[g].0;
                let answer = self
                    .server(node)
                    .and_then(|server| server.read_look(pending));
                let (part, by) = match answer {
                    Ok(answer) => answer,
                    // The first error is the cause; later ones may be its echo.
                    Err(e) => {
                        down[g] = true;
                        self.found_on_replicas(node, keys, chunk, found, None);
                        failed.get_or_insert_with(|| self.master_failed(node, &e));
                        continue;
                    }
                };
                let mut refused = Vec::new();
                for (&i, answer) in chunk.iter().zip(part) {
                    match answer {
                        Ok(exists) => found[i] = Some((exists, by)),
                        Err(e) => match redirect(&e) {
                            Some(Redirect::Moved(to)) => moved.push((i, to)),
                            Some(Redirect::Ask(to)) => asks.push((i, to)),
                            None => {
                                // A master whose own view of the slots has a
                                // hole refuses every key while its replica's
                                // view may be whole: asked as a dead one's.
                                if e.code() == Some("CLUSTERDOWN") {
                                    refused.push(i);
                                }
                                let address = format!("{}:{}", node.0, node.1);
                                failed.get_or_insert(super::link::store_error(&address, &e));
                            }
                        },
                    }
                }
                if !refused.is_empty() {
                    if register && !self.unregistered.contains(node) {
                        self.unregistered.push(node.clone());
                    }
                    let written = self.written_by(node);
                    self.found_on_replicas(node, keys, &refused, found, written);
                } else if let Some(at) = self.unregistered.iter().position(|n| n == node) {
                    self.unregistered.swap_remove(at);
                    self.lost |= self.push;
                }
            }
        }
        for (i, to) in asks {
            match self.exists_asking(&to, keys[i]) {
                Ok(exists) => found[i] = Some((exists, Instant::now())),
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
    }

    /// One claim call on the master of the stream's `slot`, following a
    /// `MOVED` to the node it names and an `ASK` with `ASKING`, as
    /// redis-rs's cluster client does, up to [`MOVED_ROUNDS`] times.
    fn claim_on_master(&mut self, slot: u16, call: &redis::Cmd) -> Result<Vec<i64>, StoreError> {
        let map = self.slot_map()?;
        let Some(master) = map.node_of(slot) else {
            let why = format!(
                "{}: no master serves the stream's slot {slot}",
                self.address
            );
            return Err(StoreError::new(StoreErrorKind::Unavailable, why));
        };
        let (mut to, mut asking) = (map.node(master).clone(), false);
        for _ in 0..MOVED_ROUNDS {
            let reply = self.server(&to)?.call(|c| {
                if asking {
                    redis::cmd("ASKING").exec(c)?;
                }
                match scripts::run_claim(c, call) {
                    Err(e) => redirect(&e).map(Err).ok_or(e),
                    codes => codes.map(Ok),
                }
            });
            match reply {
                Ok(Ok(codes)) => return Ok(codes),
                Ok(Err(Redirect::Ask(node))) => (to, asking) = (node, true),
                Ok(Err(Redirect::Moved(node))) => {
                    self.slots = None;
                    let map = self.slot_map()?;
                    let named = map.node_of(slot).map(|i| map.node(i).clone());
                    match node.or(named) {
                        Some(node) => (to, asking) = (node, false),
                        None => break,
                    }
                }
                Err(e) => return Err(self.master_failed(&to, &e)),
            }
        }
        let why = format!("{}: the stream's slot {slot} still moving", self.address);
        Err(StoreError::new(StoreErrorKind::Unavailable, why))
    }

    /// `e`, from a master that did not answer, naming it as one: how many
    /// slots it serves, whether a replica can answer for it.
    fn master_failed(&self, node: &(String, u16), e: &StoreError) -> StoreError {
        let map = self.slots.as_ref().or(self.known.as_ref());
        let (slots, replicas) =
            map.map_or((0, 0), |m| (m.slots_of(node), m.replicas_of(node).len()));
        let why = format!(
            "master of {slots} slot(s) with {replicas} replica(s), {}",
            e.message()
        );
        StoreError::new(e.kind(), why)
    }

    /// How far `node`, a master that refused keys with `CLUSTERDOWN`, has
    /// written (`ROLE`), if it says so as a master. A user without `+role`
    /// is not asked again (each refusal would fill the ACL log).
    fn written_by(&mut self, node: &(String, u16)) -> Option<i64> {
        if self.role_refused {
            return None;
        }
        match self
            .server(node)
            .and_then(|s| s.call(|c| replication::role(c)))
        {
            Ok(Role::Master { offset }) => Some(offset),
            Err(e) if e.kind() == StoreErrorKind::Permission => {
                self.role_refused = true;
                None
            }
            _ => None,
        }
    }

    /// The keys of `chunk` still unanswered, asked of the replicas of
    /// `node`, a master that did not answer (dead, paused, backing off)
    /// or refused them with `CLUSTERDOWN`: a key a replica has was
    /// written, so it is answered found, in time, where waiting for the
    /// failover would answer it late. A key a replica lacks may only not
    /// be replicated yet, and stays unanswered, unless the master said it
    /// had `written` up to an offset that the replica has applied (see
    /// `replication`): then it is answered not found. Not while a replica
    /// of `node` says it is a master: promoted, it takes writes the
    /// others do not see.
    fn found_on_replicas(
        &mut self,
        node: &(String, u16),
        keys: &[&str],
        chunk: &[usize],
        found: &mut [Seen],
        written: Option<i64>,
    ) {
        let map = self.slots.as_ref().or(self.known.as_ref());
        let replicas = map.map_or_else(Vec::new, |m| m.replicas_of(node).to_vec());
        // Asked before each replica's look, on the same connection: the
        // look then sees at least what `ROLE` said was applied.
        let roles: Vec<Option<Role>> = match written {
            Some(_) => replicas
                .iter()
                .map(|r| {
                    self.replica(r)
                        .and_then(|s| s.call(|c| replication::role(c)))
                        .ok()
                })
                .collect(),
            None => Vec::new(),
        };
        let promoted = roles
            .iter()
            .flatten()
            .any(|r| matches!(r, Role::Master { .. }));
        for (k, replica) in replicas.iter().enumerate() {
            let left: Vec<usize> = chunk
                .iter()
                .copied()
                .filter(|&i| found[i].is_none())
                .collect();
            if left.is_empty() {
                return;
            }
            let answers_for = match (written, roles.get(k)) {
                (Some(written), Some(Some(role))) if !promoted => {
                    replication::answers_for(role, node, written)
                }
                _ => false,
            };
            let asked: Vec<&str> = left.iter().map(|&i| keys[i]).collect();
            let Ok((answers, by)) = self.replica(replica).and_then(|s| s.look(&asked, false))
            else {
                continue;
            };
            for (&i, answer) in left.iter().zip(answers) {
                match answer {
                    Ok(true) => found[i] = Some((true, by)),
                    Ok(false) if answers_for => found[i] = Some((false, by)),
                    _ => {}
                }
            }
        }
    }

    /// `ASKING` then `EXISTS key` on `to`, the node importing the key's
    /// slot, on a connection of its own (closed after: a slot migrates
    /// for seconds, rarely). Registers no interest: the store says `Lost`
    /// once the migration ends (a `MOVED`), and the key is registered then.
    fn exists_asking(&mut self, to: &(String, u16), key: &str) -> Result<bool, StoreError> {
        self.server(to)?.call(|con| {
            let mut packed = redis::cmd("ASKING").get_packed_command();
            packed.extend(redis::cmd("EXISTS").arg(key).get_packed_command());
            let replies = redis::ConnectionLike::req_packed_commands(con, &packed, 0, 2)?;
            match replies.as_slice() {
                [redis::Value::Okay, redis::Value::Int(n @ (0 | 1))] => Ok(*n == 1),
                // A refusal (`TRYAGAIN` while keys move): the connection is in step.
                [redis::Value::Okay, refused @ redis::Value::ServerError(_)] => {
                    refused.clone().extract_error().map(|_| false)
                }
                // Out of step with the commands: failed, and the connection dropped.
                other => Err((
                    redis::ErrorKind::UnexpectedReturnType,
                    "ASKING EXISTS answered",
                    format!("{other:?}"),
                )
                    .into()),
            }
        })
    }
}

/// How many `MOVED` redirects one look follows for a key (a slot may move
/// again while it is followed).
const MOVED_ROUNDS: usize = 3;

/// A key a master said `MOVED` of (its index in the look), and the node
/// the redirect named, if it could be read.
type Moved = (usize, Option<(String, u16)>);

/// A key's answer, if any: whether it exists, and by when its node had
/// looked (the node's clock, or the answer's arrival).
type Seen = Option<(bool, Instant)>;

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
        self.look_each(keys, watch && self.push)
    }

    fn claim_and_append(
        &mut self,
        stream: &StreamSpec,
        claims: &[Claim<'_>],
    ) -> Result<Vec<Claimed>, StoreError> {
        let slot = key_slot(stream.name.as_bytes());
        let address = self.address.clone();
        let answer = super::claim_in_chunks(stream, claims, &address, |call| {
            self.claim_on_master(slot, call)
        });
        if answer.is_err() {
            // The slot may have moved: the retry reads the map again.
            self.slots = None;
        }
        answer
    }

    /// Subscribes on every master: tracking is per node. Each master's
    /// looks then go through a connection of the worker's own, whose
    /// tracking is redirected to that master's subscriber.
    fn subscribe(&mut self) -> Result<bool, StoreError> {
        self.push = false;
        self.slots = None;
        self.slot_map()?;
        for node in self.masters() {
            if let Err(e) = self.server(&node).and_then(Node::subscribe) {
                self.servers.iter_mut().for_each(|(_, s)| s.unsubscribe());
                return Err(e);
            }
        }
        self.push = true;
        self.lost = false;
        self.unregistered.clear();
        Ok(true)
    }

    /// Reads the masters' subscribers in turn, a share of `timeout` each. A
    /// subscriber that breaks (a master died or failed over) says `Lost`,
    /// and is rebuilt on the master that serves those slots now, while the
    /// others go on.
    fn changes(&mut self, timeout: Duration) -> Result<Changes, StoreError> {
        let mut lost = std::mem::take(&mut self.lost);
        for (_, server) in &mut self.servers {
            lost |= server.take_lost();
        }
        if lost {
            return Ok(Changes::Lost);
        }
        if !self.push {
            let why = format!("{}: no subscription", self.address.as_str());
            return Err(StoreError::new(StoreErrorKind::Unavailable, why));
        }
        if self.subscription_broken() && self.resubscribe() {
            return Ok(Changes::Lost);
        }
        match wait_on_masters(&mut self.servers, &mut self.turn, timeout) {
            Ok(Changes::Quiet) => {}
            Ok(answer) => return Ok(answer),
            Err(i) => {
                self.servers[i].1.unsubscribe();
                self.slots = None;
                return Ok(Changes::Lost);
            }
        }
        if !self.servers.iter().any(|(_, s)| s.is_subscribed()) {
            let why = format!("{}: no master subscription", self.address.as_str());
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
    push: &mut [((String, u16), Node)],
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
            let master = &mut push[i].1;
            let address = master.address().to_owned();
            let Some(subscriber) = master.subscriber() else {
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
        let polled = fds.len() == push.iter().filter(|(_, m)| m.is_subscribed()).count();
        if polled && !fds.is_empty() {
            let raw: Vec<_> = fds.iter().map(|&(_, fd)| fd).collect();
            // A failed poll(2) falls through to reading in turn, which
            // says what failed.
            if let Ok(ready) = super::readable::readable(&raw, timeout) {
                for (&(i, _), ready) in fds.iter().zip(ready) {
                    let master = &mut push[i].1;
                    let address = master.address().to_owned();
                    if let (true, Some(subscriber)) = (ready, master.subscriber())
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
        let master = &mut push[i].1;
        let address = master.address().to_owned();
        let Some(subscriber) = master.subscriber() else {
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
