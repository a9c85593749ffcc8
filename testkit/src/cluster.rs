//! A local Redis Cluster of three masters, with or without a replica each,
//! for the cluster tests: private redis-servers with `--cluster-enabled
//! yes`, joined by `redis-cli --cluster create`, waited on until every node
//! reports `cluster_state:ok` and every replica's link to its master is up.
//! Dropping it kills the nodes and removes their `nodes.conf` files.

use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::server::{self, Server};

pub struct Cluster {
    pub nodes: Vec<Server>,
    conf_files: Vec<std::path::PathBuf>,
}

/// A port whose cluster bus port (port + 10000) is free too. Candidates
/// are handed out once per process (tests run in parallel) and start at an
/// offset per process (test binaries run in parallel too).
fn cluster_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id() % 9_000;
    for _ in 0..9_000 {
        let candidate = 20_000 + ((base + NEXT.fetch_add(1, Ordering::Relaxed)) % 9_000) as u16;
        let free = |p: u16| TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(candidate) && free(candidate + 10_000) {
            return candidate;
        }
    }
    panic!("no free port pair for a cluster node");
}

impl Cluster {
    /// Starts three masters, or says it is skipped (see `server::skip`).
    pub fn start(test: &str) -> Option<Cluster> {
        Self::start_with(test, 0, 2000)
    }

    /// Starts three masters with `replicas` replicas each and the given
    /// `cluster-node-timeout`, or says it is skipped.
    pub fn start_with(test: &str, replicas: usize, node_timeout_ms: u64) -> Option<Cluster> {
        if !server::available() {
            server::skip(test, "redis-server is not on PATH");
            return None;
        }
        let mut nodes = Vec::new();
        let mut conf_files = Vec::new();
        let timeout = node_timeout_ms.to_string();
        for _ in 0..3 * (1 + replicas) {
            let port = cluster_port();
            let conf = format!("heat-observer-nodes-{}-{port}.conf", std::process::id());
            // One left by a process that died with the same id and port
            // would make the node refuse to join.
            let _ = std::fs::remove_file(std::env::temp_dir().join(&conf));
            conf_files.push(std::env::temp_dir().join(&conf));
            let args = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                &conf,
                "--cluster-node-timeout",
                &timeout,
                // Replicas sync at once, not after the default 5 s.
                "--repl-diskless-sync-delay",
                "0",
                // A replica takes over whatever the age of its data, and
                // stays with its master: in ten minutes of faults one kill
                // in a run was not failed over within 30 s (the replica
                // held back, or gone to another master), and the run
                // spent the rest of it without those slots.
                "--cluster-replica-validity-factor",
                "0",
                "--cluster-allow-replica-migration",
                "no",
            ];
            nodes.push(Server::start(port, &args));
        }
        let cluster = Cluster { nodes, conf_files };
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok(replicas);
        Some(cluster)
    }

    /// Waits until every node says `cluster_state:ok`, every replica's link
    /// is up and every node's `CLUSTER SLOTS` names `replicas` replicas of
    /// each master (gossip tells the nodes of the replicas one by one).
    fn wait_ok(&self, replicas: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for node in &self.nodes {
            // A replica is ready once its link to its master is up.
            loop {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut node.connection())
                    .unwrap_or_default();
                if info.contains("role:master") || info.contains("master_link_status:up") {
                    break;
                }
                assert!(Instant::now() < deadline, "replica not in sync: {info}");
                std::thread::sleep(Duration::from_millis(50));
            }
            loop {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut node.connection())
                    .unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "cluster did not reach state ok: {info}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            loop {
                let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query(&mut node.connection())
                    .unwrap_or_default();
                // Each entry: first slot, last slot, the master, its replicas.
                if !slots.is_empty() && slots.iter().all(|e| e.len() >= 3 + replicas) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "the slot map does not name every replica: {slots:?}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// The nodes as `host:port`, for a connector.
    pub fn addresses(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect()
    }

    /// A cluster connection for the test's own checks.
    pub fn connection(&self) -> redis::cluster::ClusterConnection {
        let urls: Vec<String> = self
            .addresses()
            .iter()
            .map(|a| format!("redis://{a}"))
            .collect();
        redis::cluster::ClusterClient::new(urls)
            .and_then(|c| c.get_connection())
            .expect("connect to the test cluster")
    }

    /// The index of the master that serves `key`'s slot, asking `via`.
    pub fn node_of_via(&self, key: &str, via: usize) -> usize {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[via].connection())
            .expect("KEYSLOT");
        // Each entry: first slot, last slot, the master, then its replicas.
        let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query(&mut self.nodes[via].connection())
            .expect("CLUSTER SLOTS");
        let int = |v: &redis::Value| match v {
            redis::Value::Int(n) => *n,
            other => panic!("unexpected CLUSTER SLOTS entry {other:?}"),
        };
        let entry = slots
            .iter()
            .find(|e| (int(&e[0])..=int(&e[1])).contains(&i64::from(slot)))
            .expect("slot served");
        let port = match &entry[2] {
            redis::Value::Array(master) => int(&master[1]) as u16,
            other => panic!("unexpected CLUSTER SLOTS entry {other:?}"),
        };
        self.nodes
            .iter()
            .position(|n| n.port() == port)
            .expect("a known node")
    }

    /// The index of the node that serves `key`'s slot.
    pub fn node_of(&self, key: &str) -> usize {
        self.node_of_via(key, 0)
    }

    /// The slot of `key`, as the cluster computes it.
    pub fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut self.nodes[0].connection())
            .expect("KEYSLOT")
    }

    /// Gives `slot` (holding no key) to master `to`, telling every master,
    /// the new owner first (as redis-cli's reshard does): what a reshard
    /// or a failover does to a slot, in one step.
    pub fn move_empty_slot(&self, slot: u16, to: usize) {
        let id: String = redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut self.nodes[to].connection())
            .expect("MYID");
        for node in [to, (to + 1) % 3, (to + 2) % 3] {
            redis::cmd("CLUSTER")
                .arg("SETSLOT")
                .arg(slot)
                .arg("NODE")
                .arg(&id)
                .exec(&mut self.nodes[node].connection())
                .expect("SETSLOT NODE");
        }
    }
}

impl Cluster {
    /// The fields `a` and `b` of every entry of `stream`, read through any
    /// live node.
    pub fn stream_pairs(&self, stream: &str, a: &str, b: &str) -> Vec<(String, String)> {
        let mut con = self.connection();
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(stream)
            .arg("-")
            .arg("+")
            .query(&mut con)
            .expect("XRANGE");
        let get = |flat: &[String], name: &str| {
            let i = flat.iter().position(|f| f == name).unwrap();
            flat[i + 1].clone()
        };
        entries
            .into_iter()
            .map(|(_, flat)| (get(&flat, a), get(&flat, b)))
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.kill();
        }
        for conf in &self.conf_files {
            let _ = std::fs::remove_file(conf);
        }
    }
}
