//! The faults of a chaos run on a Redis Cluster (`pipeline --chaos
//! --cluster`): three masters with a replica each, `cluster-node-timeout`
//! 1 s. A master killed and failed over (the stream's, then a heat key's),
//! a live reshard of 3,000 slots (from the master with the most slots to
//! the one with the fewest, so the next goes back), a planned switch
//! (`CLUSTER FAILOVER` on a replica), a master paused (`SIGSTOP` 3 s, long
//! enough for its replica to take over), a hole in a master's own view of
//! the slots (`CLUSTER DELSLOTS` of one of its slots on it alone, 3 s: it
//! refuses every key with `CLUSTERDOWN` while its replica serves them, as
//! Redis 7.0 masters were seen to do after a pause). Each fault returns when the
//! cluster is whole again: every slot served, the old master back as a
//! replica in sync.
//!
//! A failover may lose the writes its master acknowledged but had not yet
//! sent to its replica: those are *doubts*, windows in which an
//! acknowledged write may not have lasted, and the audit does not judge
//! the keys written in them.
// Each example uses a part of this module.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use super::cluster::Cluster;

/// The faults, in the order they come.
pub const KINDS: [&str; 7] = [
    "kill-stream-master",
    "reshard",
    "stop-master",
    "planned-failover",
    "reshard-back",
    "kill-key-master",
    "hole",
];
/// How long a paused master stays paused.
const STOPPED: Duration = Duration::from_secs(3);
/// Slots each reshard moves.
const RESHARD_SLOTS: u32 = 3000;
/// How long a fault may take to heal before it is reported as not made.
const HEAL: Duration = Duration::from_secs(30);
/// Before a master's death, how far back an acknowledged write may not
/// have reached its replica.
const UNREPLICATED: Duration = Duration::from_millis(500);

/// One node as `CLUSTER NODES` describes it.
#[derive(Debug, Clone)]
struct NodeView {
    /// Index into the cluster's nodes.
    index: usize,
    id: String,
    master: bool,
    /// A replica's master's id.
    master_id: Option<String>,
    failed: bool,
    /// Slot ranges served (masters).
    slots: Vec<(u16, u16)>,
}

impl NodeView {
    fn slot_count(&self) -> u32 {
        self.slots
            .iter()
            .map(|(a, b)| u32::from(*b) - u32::from(*a) + 1)
            .sum()
    }

    fn serves(&self, slot: u16) -> bool {
        self.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot))
    }
}

fn connect(cluster: &Cluster, index: usize) -> redis::RedisResult<redis::Connection> {
    let url = format!("redis://127.0.0.1:{}", cluster.nodes[index].port());
    let con = redis::Client::open(url)?.get_connection_with_timeout(Duration::from_secs(1))?;
    con.set_read_timeout(Some(Duration::from_secs(5)))?;
    con.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok(con)
}

/// The cluster as node `via` sees it.
fn view_from(cluster: &Cluster, via: usize) -> redis::RedisResult<Vec<NodeView>> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut connect(cluster, via)?)?;
    let mut nodes = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let port: Option<u16> = f[1]
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse().ok());
        let Some(index) = port.and_then(|p| cluster.nodes.iter().position(|n| n.port() == p))
        else {
            continue;
        };
        let flags = f[2];
        let slots = f[8..]
            .iter()
            .filter(|s| !s.starts_with('['))
            .filter_map(|s| match s.split_once('-') {
                Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                None => s.parse().ok().map(|n| (n, n)),
            })
            .collect();
        nodes.push(NodeView {
            index,
            id: f[0].to_owned(),
            master: flags.contains("master"),
            master_id: (f[3] != "-").then(|| f[3].to_owned()),
            failed: flags.contains("fail") && !flags.contains("fail?"),
            slots,
        });
    }
    Ok(nodes)
}

/// The cluster as the first node that answers sees it (skipping `not`).
fn view(cluster: &Cluster, not: &[usize]) -> redis::RedisResult<Vec<NodeView>> {
    let mut last = None;
    for via in (0..cluster.nodes.len()).filter(|i| !not.contains(i)) {
        match view_from(cluster, via) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| (redis::ErrorKind::Io, "no node answers").into()))
}

fn slot_of(cluster: &Cluster, key: &str, not: &[usize]) -> redis::RedisResult<u16> {
    let via = (0..cluster.nodes.len())
        .find(|i| !not.contains(i))
        .unwrap_or(0);
    redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(key)
        .query(&mut connect(cluster, via)?)
}

fn refused(what: String) -> redis::RedisError {
    (redis::ErrorKind::Io, "fault not healed", what).into()
}

/// Waits, up to `HEAL`, until `ok` holds; the error says what did not.
fn wait_for(what: &str, ok: impl FnMut() -> bool) -> redis::RedisResult<()> {
    wait_within(HEAL, what, ok)
}

fn wait_within(
    within: Duration,
    what: &str,
    mut ok: impl FnMut() -> bool,
) -> redis::RedisResult<()> {
    let deadline = Instant::now() + within;
    while !ok() {
        if Instant::now() >= deadline {
            return Err(refused(format!("{what} within {within:?}")));
        }
        thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Every master but `not` (the nodes clients ask: a replica's view does
/// not reach them) says `cluster_state:ok` and agrees that every slot is
/// served by a master that is up.
fn whole(cluster: &Cluster, not: &[usize]) -> bool {
    (0..cluster.nodes.len())
        .filter(|i| !not.contains(i))
        .all(|i| {
            let state: redis::RedisResult<String> = connect(cluster, i)
                .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query(&mut c));
            let Ok(state) = state else { return false };
            let Ok(nodes) = view_from(cluster, i) else {
                return false;
            };
            let me = nodes.iter().find(|n| n.index == i);
            if me.is_some_and(|n| !n.master) {
                return true;
            }
            let served: u32 = nodes
                .iter()
                .filter(|n| n.master && !n.failed)
                .map(NodeView::slot_count)
                .sum();
            state.contains("cluster_state:ok") && served == 16384
        })
}

/// What each node (but `not`) says of the cluster: its state and the
/// slots its masters serve, for a fault that did not heal.
fn states(cluster: &Cluster, not: &[usize]) -> String {
    (0..cluster.nodes.len())
        .filter(|i| !not.contains(i))
        .map(|i| {
            let state: redis::RedisResult<String> = connect(cluster, i)
                .and_then(|mut c| redis::cmd("CLUSTER").arg("INFO").query(&mut c));
            let state = state.map_or_else(
                |e| e.to_string(),
                |s| {
                    s.lines()
                        .find(|l| l.starts_with("cluster_state"))
                        .unwrap_or("")
                        .trim()
                        .to_owned()
                },
            );
            let served = view_from(cluster, i).map_or(0, |v| {
                v.iter()
                    .filter(|n| n.master && !n.failed)
                    .map(NodeView::slot_count)
                    .sum::<u32>()
            });
            let role = view_from(cluster, i)
                .ok()
                .and_then(|v| v.into_iter().find(|n| n.index == i))
                .map_or("?", |n| if n.master { "master" } else { "replica" });
            format!("node {i} ({role}): {state}, {served} slots served")
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Waits until every master says every slot is served. A node that missed
/// a slot's new owner (a reshard, then a failover, in quick succession)
/// may keep a hole in its slot map and say `cluster_state:fail` for good
/// (Redis 7.0, seen on replicas, which clients do not ask): after 10 s, a
/// master with such a hole is told the owner the others agree on
/// (`CLUSTER SETSLOT <slot> NODE <id>`), as an operator would.
fn wait_whole(cluster: &Cluster) -> redis::RedisResult<()> {
    // A failover or a reshard settles in a few seconds.
    if wait_within(Duration::from_secs(10), "every slot served", || {
        whole(cluster, &[])
    })
    .is_ok()
    {
        return Ok(());
    }
    let before = states(cluster, &[]);
    heal_holes(cluster);
    wait_for("every slot served", || whole(cluster, &[]))
        .map_err(|e| refused(format!("{e}, after SETSLOT: {}", states(cluster, &[]))))?;
    eprintln!("chaos: a node's slot map had a hole ({before}); told the owner, it healed");
    Ok(())
}

/// Tells each node whose map lacks slots who serves them, as the first
/// node whose map is whole says.
fn heal_holes(cluster: &Cluster) {
    let served = |nodes: &[NodeView], slot: u16| {
        nodes
            .iter()
            .find(|n| n.master && !n.failed && n.serves(slot))
            .map(|n| n.id.clone())
    };
    let views: Vec<(usize, Vec<NodeView>)> = (0..cluster.nodes.len())
        .filter_map(|i| view_from(cluster, i).ok().map(|v| (i, v)))
        .collect();
    let Some((_, good)) = views
        .iter()
        .find(|(_, v)| (0..16384u16).all(|slot| served(v, slot).is_some()))
    else {
        return;
    };
    for (i, view) in &views {
        for slot in (0..16384u16).filter(|slot| served(view, *slot).is_none()) {
            if let Some(owner) = served(good, slot) {
                let _ = connect(cluster, *i).and_then(|mut c| {
                    redis::cmd("CLUSTER")
                        .arg("SETSLOT")
                        .arg(slot)
                        .arg("NODE")
                        .arg(&owner)
                        .exec(&mut c)
                });
            }
        }
    }
}

/// Node `index` is a replica whose link to its master is up.
fn replica_in_sync(cluster: &Cluster, index: usize) -> bool {
    let info: redis::RedisResult<String> = connect(cluster, index)
        .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c));
    info.is_ok_and(|i| i.contains("role:slave") && i.contains("master_link_status:up"))
}

/// Makes one fault; returns, when the cluster is whole again, the kind
/// made: a reshard that moved the stream's slot is told apart
/// (`reshard+stream-slot`), as its `MIGRATE` carries the whole stream and
/// holds two masters for as long (docs/measurements.md, twelfth round).
/// `stream` is the event stream's key; `doubts` gets the windows in which
/// an acknowledged write may have been lost.
pub fn make(
    kind: &'static str,
    cluster: &mut Cluster,
    stream: &str,
    doubts: &mut Vec<(Instant, Instant)>,
) -> redis::RedisResult<&'static str> {
    let before = stream_master(cluster, stream).ok();
    if let Err(e) = make_kind(kind, cluster, stream, doubts) {
        repair(cluster);
        return Err(e);
    }
    let moved = before != stream_master(cluster, stream).ok();
    Ok(match kind {
        "reshard" if moved => "reshard+stream-slot",
        "reshard-back" if moved => "reshard-back+stream-slot",
        _ => kind,
    })
}

/// The index of the master that serves the stream's slot.
fn stream_master(cluster: &Cluster, stream: &str) -> redis::RedisResult<usize> {
    let slot = slot_of(cluster, stream, &[])?;
    view(cluster, &[])?
        .iter()
        .find(|n| n.master && n.serves(slot))
        .map(|n| n.index)
        .ok_or_else(|| refused("the stream's slot has no master".into()))
}

fn make_kind(
    kind: &str,
    cluster: &mut Cluster,
    stream: &str,
    doubts: &mut Vec<(Instant, Instant)>,
) -> redis::RedisResult<()> {
    let nodes = view(cluster, &[])?;
    let stream_master = stream_master(cluster, stream)?;
    // A master that does not hold the stream, taking turns.
    let key_master = |nodes: &[NodeView]| {
        nodes
            .iter()
            .filter(|n| n.master && n.slot_count() > 0 && n.index != stream_master)
            .map(|n| n.index)
            .min()
    };
    match kind {
        "kill-stream-master" => kill(cluster, stream_master, doubts),
        "kill-key-master" => {
            let victim = key_master(&nodes).ok_or_else(|| refused("no other master".into()))?;
            kill(cluster, victim, doubts)
        }
        "stop-master" => {
            let victim = key_master(&nodes).ok_or_else(|| refused("no other master".into()))?;
            let from = Instant::now() - UNREPLICATED;
            cluster.nodes[victim].stall();
            thread::sleep(STOPPED);
            cluster.nodes[victim].resume();
            // Until it hears it was replaced, the old master takes writes
            // that its resync then drops.
            let healed = wait_for("the paused master back as a replica", || {
                replica_in_sync(cluster, victim)
            })
            .and_then(|()| wait_whole(cluster));
            doubts.push((from, Instant::now()));
            healed
        }
        "hole" => {
            let victim = key_master(&nodes).ok_or_else(|| refused("no other master".into()))?;
            let slot = nodes
                .iter()
                .find(|n| n.index == victim)
                .and_then(|n| n.slots.first())
                .map(|(first, _)| *first)
                .ok_or_else(|| refused("the master serves no slot".into()))?;
            let mut con = connect(cluster, victim)?;
            let slots = |con: &mut redis::Connection, what: &str| {
                redis::cmd("CLUSTER").arg(what).arg(slot).exec(con)
            };
            slots(&mut con, "DELSLOTS")?;
            thread::sleep(STOPPED);
            slots(&mut con, "ADDSLOTS")?;
            wait_whole(cluster)
        }
        "planned-failover" => {
            let master = key_master(&nodes).unwrap_or(stream_master);
            let id = &nodes.iter().find(|n| n.index == master).expect("listed").id;
            let replica = nodes
                .iter()
                .find(|n| n.master_id.as_deref() == Some(id) && !n.failed)
                .map(|n| n.index)
                .ok_or_else(|| refused("the master has no replica".into()))?;
            redis::cmd("CLUSTER")
                .arg("FAILOVER")
                .exec(&mut connect(cluster, replica)?)?;
            wait_for("the replica promoted", || {
                view(cluster, &[]).is_ok_and(|v| {
                    v.iter()
                        .any(|n| n.index == replica && n.master && n.slot_count() > 0)
                })
            })?;
            wait_for("the old master in sync", || {
                replica_in_sync(cluster, master)
            })?;
            wait_whole(cluster)
        }
        "reshard" | "reshard-back" => {
            let mut masters: Vec<&NodeView> = nodes
                .iter()
                .filter(|n| n.master && !n.failed && n.slot_count() > 0)
                .collect();
            masters.sort_by_key(|n| n.slot_count());
            let (to, from) = match (masters.first(), masters.last()) {
                (Some(to), Some(from)) if to.index != from.index => (*to, *from),
                _ => return Err(refused("fewer than two masters".into())),
            };
            reshard(cluster, from, to)?;
            wait_whole(cluster)
        }
        other => unreachable!("no cluster fault {other}"),
    }
}

/// Kills master `victim`, waits for its replica to take over, restarts it
/// (it comes back as a replica) and waits for it to be in sync.
fn kill(
    cluster: &mut Cluster,
    victim: usize,
    doubts: &mut Vec<(Instant, Instant)>,
) -> redis::RedisResult<()> {
    let killed = Instant::now();
    cluster.nodes[victim].kill();
    // Over when another node serves its slots (until the others notice,
    // they still count them as its own).
    let over = wait_for("a replica promoted", || {
        let moved = view(cluster, &[victim]).is_ok_and(|v| {
            v.iter()
                .any(|n| n.index == victim && (n.failed || n.slot_count() == 0))
        });
        moved && whole(cluster, &[victim])
    });
    doubts.push((killed - UNREPLICATED, Instant::now()));
    if let Err(e) = over {
        // No replica took over (seen once in 10 minutes, Redis 7.0.15): the
        // master comes back with its slots, or the run would go on without
        // them, every later fault failing too.
        cluster.nodes[victim].restart();
        let _ = wait_whole(cluster);
        return Err(e);
    }
    cluster.nodes[victim].restart();
    wait_for("the killed master back as a replica", || {
        replica_in_sync(cluster, victim)
    })
    .map_err(|e| {
        let info: redis::RedisResult<String> = connect(cluster, victim)
            .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c));
        refused(format!("{e}; it says {info:?}"))
    })
}

/// Moves `RESHARD_SLOTS` slots from `from` to `to`, live, as an operator
/// would (`redis-cli --cluster reshard`), bounded.
fn reshard(cluster: &Cluster, from: &NodeView, to: &NodeView) -> redis::RedisResult<()> {
    let entry = format!("127.0.0.1:{}", cluster.nodes[to.index].port());
    let slots = RESHARD_SLOTS.to_string();
    redis_cli(&[
        "--cluster",
        "reshard",
        &entry,
        "--cluster-from",
        &from.id,
        "--cluster-to",
        &to.id,
        "--cluster-slots",
        &slots,
        "--cluster-yes",
        "--cluster-pipeline",
        "100",
    ])
}

/// Runs `redis-cli` with `args`, bounded; a failure says redis-cli's
/// first `[ERR]` line, or its last (why a reshard stopped: a node that
/// does not agree, a slot left open).
fn redis_cli(args: &[&str]) -> redis::RedisResult<()> {
    let what = format!("redis-cli {}", args[..2.min(args.len())].join(" "));
    let mut child = Command::new("redis-cli")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| refused(format!("{what}: {e}")))?;
    // Read on a thread of its own: a full pipe would hold redis-cli.
    let stdout = child.stdout.take().map(|mut out| {
        thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut out, &mut text);
            text
        })
    });
    let deadline = Instant::now() + HEAL * 2;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(refused(format!("{what} did not end")));
            }
            Err(e) => return Err(refused(format!("{what}: {e}"))),
        }
    };
    if status.success() {
        return Ok(());
    }
    let said = plain(&stdout.and_then(|t| t.join().ok()).unwrap_or_default());
    let why = said
        .lines()
        .find(|l| l.starts_with("[ERR]"))
        .or_else(|| said.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("");
    Err(refused(format!("{what}: {status}: {}", why.trim())))
}

/// `text` without its terminal colours (`ESC [ ... m`).
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

/// After a fault that did not heal, puts the cluster back in the shape
/// every fault starts from, as an operator would: `redis-cli --cluster
/// fix` closes the slots a stopped reshard left migrating, and a master
/// that serves no slot (a killed master back on its own) becomes the
/// replica of a master that has none. Without it the run went on with a
/// master alone, and every later fault failed too (seen in a ten-minute
/// run, Redis 7.0.15).
pub fn repair(cluster: &Cluster) {
    let Some(entry) = (0..cluster.nodes.len())
        .find(|&i| connect(cluster, i).is_ok())
        .map(|i| format!("127.0.0.1:{}", cluster.nodes[i].port()))
    else {
        return;
    };
    let Ok(nodes) = view(cluster, &[]) else {
        return;
    };
    let live = |n: &&NodeView| n.master && !n.failed;
    let alone = nodes.iter().filter(live).filter(|m| {
        m.slot_count() > 0
            && !nodes
                .iter()
                .any(|r| r.master_id.as_deref() == Some(&m.id) && !r.failed)
    });
    let empty = nodes.iter().filter(live).filter(|n| n.slot_count() == 0);
    for (master, spare) in alone.zip(empty) {
        // Asked again until the spare has heard of the master (gossip).
        let replicate = || {
            connect(cluster, spare.index).and_then(|mut c| {
                redis::cmd("CLUSTER")
                    .arg("REPLICATE")
                    .arg(&master.id)
                    .exec(&mut c)
            })
        };
        let made = wait_for("the master of no slot told to replicate", || {
            replicate().is_ok()
        });
        match made.and_then(|()| {
            wait_for("the master of no slot a replica in sync", || {
                replica_in_sync(cluster, spare.index)
            })
        }) {
            Ok(()) => eprintln!(
                "chaos: repair: node {} (a master of no slot) now replicates node {}",
                spare.index, master.index
            ),
            Err(e) => eprintln!("chaos: repair: node {}: {e}", spare.index),
        }
    }
    // Refused while the nodes do not agree (a node just rejoined): asked
    // again until they do.
    let mut last = None;
    let fixed = wait_for("redis-cli --cluster fix", || {
        let done = redis_cli(&["--cluster", "fix", &entry, "--cluster-yes"]);
        last = done.as_ref().err().map(ToString::to_string);
        done.is_ok()
    });
    if fixed.is_err() {
        eprintln!("chaos: repair: {}", last.unwrap_or_default());
    }
    if let Err(e) = wait_whole(cluster) {
        eprintln!("chaos: repair: {e}");
    }
}
