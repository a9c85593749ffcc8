//! The cluster chaos's repair after a fault that did not heal (feature
//! `cluster`): the run goes on from three masters with a replica each.
#![cfg(feature = "cluster")]

use heat_observer_lab::cluster::Cluster;
use heat_observer_lab::cluster_faults;
use heat_observer_lab::wait_until;

/// `CLUSTER NODES` as node `via` says it: (port, flags, master id, slots).
fn nodes(cluster: &Cluster, via: usize) -> Vec<(u16, String, String, usize)> {
    let text: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut cluster.nodes[via].connection())
        .unwrap();
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = f[1].split(['@', ':']).nth(1).unwrap().parse().unwrap();
            (
                port,
                f[2].to_owned(),
                f[3].to_owned(),
                f.len().saturating_sub(8),
            )
        })
        .collect()
}

#[test]
fn a_master_left_without_a_replica_gets_back_the_master_of_no_slot_as_its_replica() {
    let Some(cluster) = Cluster::start_with("cluster repair", 1, 1000) else {
        return;
    };
    // A replica made a master of no slot, as a killed master was seen to
    // come back in a ten-minute run: its master is left alone.
    let view = nodes(&cluster, 0);
    let spare = (0..cluster.nodes.len())
        .find(|&i| {
            let port = cluster.nodes[i].port();
            view.iter()
                .any(|(p, flags, _, _)| *p == port && flags.contains("slave"))
        })
        .expect("a replica");
    let spare_port = cluster.nodes[spare].port();
    let master_id = view
        .iter()
        .find(|(p, ..)| *p == spare_port)
        .map(|(_, _, master, _)| master.clone())
        .unwrap();
    let mut con = cluster.nodes[spare].connection();
    redis::cmd("CLUSTER")
        .arg("RESET")
        .arg("SOFT")
        .exec(&mut con)
        .unwrap();
    let other = (spare + 1) % cluster.nodes.len();
    redis::cmd("CLUSTER")
        .arg("MEET")
        .arg("127.0.0.1")
        .arg(spare_port)
        .exec(&mut cluster.nodes[other].connection())
        .unwrap();
    let alone = |via: usize| {
        let view = nodes(&cluster, via);
        let spare_is_master = view.iter().any(|(p, flags, _, slots)| {
            *p == spare_port && flags.contains("master") && *slots == 0
        });
        let replicated = view.iter().any(|(_, _, master, _)| *master == master_id);
        spare_is_master && !replicated
    };
    // Every node says so: the repair reads the first node that answers.
    wait_until(
        "every node: the spare a master of no slot, its old master alone",
        || (0..cluster.nodes.len()).all(alone),
    );

    cluster_faults::repair(&cluster);

    wait_until("the spare a replica of the master left alone", || {
        nodes(&cluster, other).iter().any(|(p, flags, master, _)| {
            *p == spare_port && flags.contains("slave") && *master == master_id
        })
    });
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query(&mut cluster.nodes[spare].connection())
        .unwrap();
    assert!(info.contains("master_link_status:up"), "{info}");
}

#[test]
fn a_slot_a_stopped_reshard_left_migrating_is_closed() {
    let Some(cluster) = Cluster::start_with("cluster repair of a slot", 1, 1000) else {
        return;
    };
    let id = |i: usize| -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query(&mut cluster.nodes[i].connection())
            .unwrap()
    };
    let key = "a-key-of-a-migrating-slot";
    let slot = cluster.slot_of(key);
    let from = cluster.node_of(key);
    let masters: Vec<usize> = nodes(&cluster, from)
        .iter()
        .filter(|(_, flags, _, slots)| flags.contains("master") && *slots > 0)
        .map(|(port, ..)| {
            (0..cluster.nodes.len())
                .find(|&i| cluster.nodes[i].port() == *port)
                .unwrap()
        })
        .collect();
    let to = *masters.iter().find(|&&m| m != from).unwrap();
    // What `redis-cli --cluster reshard` leaves when it stops mid-slot.
    let setslot = |node: usize, state: &str, other: usize| {
        redis::cmd("CLUSTER")
            .arg("SETSLOT")
            .arg(slot)
            .arg(state)
            .arg(id(other))
            .exec(&mut cluster.nodes[node].connection())
            .unwrap()
    };
    setslot(to, "IMPORTING", from);
    setslot(from, "MIGRATING", to);
    let open = || {
        (0..cluster.nodes.len()).any(|i| {
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut cluster.nodes[i].connection())
                .unwrap();
            text.contains(&format!("[{slot}-"))
        })
    };
    assert!(open(), "the slot is open before the repair");

    cluster_faults::repair(&cluster);

    assert!(!open(), "slot {slot} still open after the repair");
}
