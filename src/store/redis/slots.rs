//! Which cluster node serves a key: the key's slot (CRC16/XMODEM of its
//! hash tag or whole name, modulo 16384) and a map of slot ranges to nodes
//! read from `CLUSTER SLOTS`.

use redis::{RedisResult, Value};

/// Slots in a Redis Cluster.
const SLOTS: u16 = 16384;

/// The slot of `key`: only the part between the first `{` and the next `}`
/// counts, when it is not empty.
pub(crate) fn key_slot(key: &[u8]) -> u16 {
    let tag = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16_xmodem(tag.unwrap_or(key)) % SLOTS
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Slot ranges, the master serving each and its replicas.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotMap {
    /// `(first slot, last slot, index into nodes)`, sorted.
    ranges: Vec<(u16, u16, usize)>,
    /// `(host, port)` of each master.
    nodes: Vec<(String, u16)>,
    /// The replicas of each master, as the map names them.
    replicas: Vec<Vec<(String, u16)>>,
}

impl SlotMap {
    /// Reads a `CLUSTER SLOTS` reply from the node at `answering` (its
    /// host). As redis-rs does: a master's host that is empty or null is
    /// the answering node's, and `?` (unknown) leaves its slots without a
    /// master (their keys are unanswered until the map is read again),
    /// never an address to connect to.
    pub(crate) fn from_reply(reply: Value, answering: &str) -> RedisResult<SlotMap> {
        let bad = || {
            redis::RedisError::from((
                redis::ErrorKind::UnexpectedReturnType,
                "unexpected CLUSTER SLOTS reply",
            ))
        };
        let Value::Array(entries) = reply else {
            return Err(bad());
        };
        let mut map = SlotMap::default();
        for entry in entries {
            let Value::Array(fields) = entry else {
                return Err(bad());
            };
            let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                return Err(bad());
            };
            // `None` for a node whose address is unknown (`?`).
            let address = |node: &[Value]| -> RedisResult<Option<(String, u16)>> {
                let host = match node.first() {
                    Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
                    Some(Value::SimpleString(s)) => s.clone(),
                    Some(Value::Nil) => String::new(),
                    _ => return Err(bad()),
                };
                let host = match host.as_str() {
                    "?" => return Ok(None),
                    "" => answering.to_owned(),
                    _ => host,
                };
                let Some(Value::Int(port)) = node.get(1) else {
                    return Err(bad());
                };
                Ok(Some((host, u16::try_from(*port).map_err(|_| bad())?)))
            };
            let Some(node) = address(master)? else {
                continue;
            };
            let index = match map.nodes.iter().position(|n| *n == node) {
                Some(i) => i,
                None => {
                    map.nodes.push(node);
                    map.replicas.push(Vec::new());
                    map.nodes.len() - 1
                }
            };
            for replica in &fields[3..] {
                let Value::Array(replica) = replica else {
                    return Err(bad());
                };
                if let Some(replica) = address(replica)?
                    && !map.replicas[index].contains(&replica)
                {
                    map.replicas[index].push(replica);
                }
            }
            let range = (
                u16::try_from(*first).map_err(|_| bad())?,
                u16::try_from(*last).map_err(|_| bad())?,
            );
            map.ranges.push((range.0, range.1, index));
        }
        map.ranges.sort_unstable();
        Ok(map)
    }

    /// The index of the master serving `slot`, if any.
    pub(crate) fn node_of(&self, slot: u16) -> Option<usize> {
        let i = self.ranges.partition_point(|(first, _, _)| *first <= slot);
        let (first, last, node) = *self.ranges.get(i.checked_sub(1)?)?;
        (first..=last).contains(&slot).then_some(node)
    }

    /// How many of the 16,384 slots have a master in this map.
    pub(crate) fn served(&self) -> u32 {
        self.ranges
            .iter()
            .map(|r| u32::from(r.1) - u32::from(r.0) + 1)
            .sum()
    }

    pub(crate) fn node(&self, index: usize) -> &(String, u16) {
        &self.nodes[index]
    }

    pub(crate) fn nodes(&self) -> usize {
        self.nodes.len()
    }

    /// How many slots the master `node` serves.
    pub(crate) fn slots_of(&self, node: &(String, u16)) -> u32 {
        let Some(i) = self.nodes.iter().position(|n| n == node) else {
            return 0;
        };
        self.ranges
            .iter()
            .filter(|r| r.2 == i)
            .map(|r| u32::from(r.1) - u32::from(r.0) + 1)
            .sum()
    }

    /// The replicas of the master `node`, if the map names it.
    pub(crate) fn replicas_of(&self, node: &(String, u16)) -> &[(String, u16)] {
        self.nodes
            .iter()
            .position(|n| n == node)
            .map_or(&[], |i| self.replicas[i].as_slice())
    }

    /// The slot ranges whose master differs in `newer`: `(first, last,
    /// master before, master now)`, `None` where no master served them.
    pub(crate) fn moves(&self, newer: &SlotMap) -> Vec<Move> {
        let master = |map: &SlotMap, slot: u16| map.node_of(slot).map(|i| map.node(i).clone());
        let mut moves: Vec<Move> = Vec::new();
        for slot in 0..SLOTS {
            let (was, now) = (master(self, slot), master(newer, slot));
            if was == now {
                continue;
            }
            match moves.last_mut() {
                Some(m) if m.last + 1 == slot && m.from == was && m.to == now => m.last = slot,
                _ => {
                    let failover = match (&was, &now) {
                        (Some(was), Some(now)) => self.replicas_of(was).contains(now),
                        _ => false,
                    };
                    moves.push(Move {
                        first: slot,
                        last: slot,
                        from: was,
                        to: now,
                        failover,
                    });
                }
            }
        }
        moves
    }
}

/// Slots that changed master between two maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Move {
    pub(crate) first: u16,
    pub(crate) last: u16,
    pub(crate) from: Option<(String, u16)>,
    pub(crate) to: Option<(String, u16)>,
    /// The new master was a replica of the old one: a failover, not a
    /// reshard.
    pub(crate) failover: bool,
}

impl Move {
    /// What the moves were, as a line says it: a failover (each new master
    /// was the old one's replica), a reshard, or both.
    pub(crate) fn kind(moves: &[Move]) -> &'static str {
        let failovers = moves.iter().filter(|m| m.failover).count();
        match failovers {
            0 => "a reshard",
            n if n == moves.len() => "a failover",
            _ => "a failover and a reshard",
        }
    }
}

impl std::fmt::Display for Move {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let node = |n: &Option<(String, u16)>| {
            n.as_ref()
                .map_or("no master".to_owned(), |(h, p)| format!("{h}:{p}"))
        };
        let slots = if self.first == self.last {
            format!("slot {}", self.first)
        } else {
            format!("slots {}-{}", self.first, self.last)
        };
        write!(f, "{slots} from {} to {}", node(&self.from), node(&self.to))?;
        if self.failover {
            write!(f, " (its replica)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
