//! [`Role`]: where a cluster node stands in replication, from `ROLE`, and
//! when a replica's "no such key" answers for its master.
//!
//! A master whose own view of the slots has a hole refuses every key with
//! `CLUSTERDOWN`, for as long as the hole lasts. Its replica answers a key
//! it has (written, so found); a key it lacks may only not be replicated
//! yet. It is not, once the replica has applied all the master had
//! written when asked: `ROLE` on the master gives that offset, `ROLE` on
//! the replica, sent before its `EXISTS` on the same connection, the
//! offset it has applied. What such a replica lacks, the master lacked
//! when asked, after the look began.

#[cfg(test)]
mod tests;

use redis::{ErrorKind, RedisResult, Value};

/// A node's answer to `ROLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Role {
    /// A master, and the offset of all it has written.
    Master { offset: i64 },
    /// A replica of `of` (`host`, `port`), whether its link is up, and the
    /// offset it has applied.
    Replica {
        of: (String, u16),
        connected: bool,
        applied: i64,
    },
    /// A sentinel, or a role this crate does not know.
    Other,
}

/// `ROLE` on `con`. A reply of another shape fails the call, as any reply
/// out of step with its command does (the connection is dropped).
pub(crate) fn role(con: &mut dyn redis::ConnectionLike) -> RedisResult<Role> {
    let reply = con.req_command(&redis::cmd("ROLE"))?.extract_error()?;
    parse(&reply).ok_or_else(|| {
        (
            ErrorKind::UnexpectedReturnType,
            "ROLE answered",
            format!("{reply:?}"),
        )
            .into()
    })
}

fn parse(reply: &Value) -> Option<Role> {
    let text = |v: &Value| match v {
        Value::BulkString(b) => std::str::from_utf8(b).ok().map(str::to_owned),
        Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    };
    let int = |v: &Value| match v {
        Value::Int(n) => Some(*n),
        _ => None,
    };
    let Value::Array(parts) = reply else {
        return None;
    };
    match (parts.first().and_then(text)?.as_str(), parts.as_slice()) {
        ("master", [_, offset, Value::Array(_)]) => Some(Role::Master {
            offset: int(offset)?,
        }),
        ("slave", [_, host, port, state, applied]) => Some(Role::Replica {
            of: (text(host)?, u16::try_from(int(port)?).ok()?),
            connected: text(state)? == "connected",
            applied: int(applied)?,
        }),
        ("master" | "slave", _) => None,
        _ => Some(Role::Other),
    }
}

/// Whether `replica`'s answers of "no such key" hold for `master` (at
/// `address`), a master that had written up to `written` when asked: the
/// replica follows it, its link is up, and it has applied that much.
pub(crate) fn answers_for(replica: &Role, address: &(String, u16), written: i64) -> bool {
    matches!(replica, Role::Replica { of, connected: true, applied }
        if of == address && *applied >= written)
}
