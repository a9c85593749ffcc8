//! Push detection on Redis: client tracking with interest per key (Redis
//! 6+), redirected to a subscriber connection of the worker's own.
//!
//! * The subscriber speaks RESP3, so the server sends it `invalidate`
//!   pushes without any SUBSCRIBE (and the user needs no channel right).
//! * The data connection, which runs the looks, has `CLIENT TRACKING on
//!   REDIRECT <subscriber id> OPTIN`: each key a look that follows `CLIENT
//!   CACHING yes` reads (`EXISTS`, or a script's declared keys, also for a
//!   missing key) is remembered by the server for this client, and its
//!   next write, deletion or expiry is told once, to this worker only. A
//!   key nobody looked at sends nothing: one message per written key, to
//!   one worker, however many workers and processes. Only the look when a
//!   plan is taken (and after a loss) registers.
//! * A message is not proof of a write: when the server's tracking table is
//!   full (`tracking-table-max-keys`), it drops keys from it and tells each
//!   as if it were written. The worker confirms every message with a look.
//! * The subscriber is read with redis-rs's `recv_response`, which returns
//!   push values even after a read timed out; nothing else is ever sent on
//!   it after `CLIENT ID`.

use std::time::Duration;

use redis::{Client, Connection, PushKind, Value};

use super::link::store_error;
use crate::store::{Changes, StoreError};

/// A worker's subscriber connection.
pub(crate) struct Subscriber {
    con: Connection,
    /// Its client id, the target of `CLIENT TRACKING ... REDIRECT`.
    id: i64,
    /// The read timeout set on the socket, so it is set only when it
    /// changes (a system call each time).
    read_timeout: Option<Duration>,
}

impl Subscriber {
    /// Opens a RESP3 connection through `client` and reads its id.
    pub(crate) fn open(
        client: &Client,
        timeout: Duration,
        address: &str,
    ) -> Result<Subscriber, StoreError> {
        let open = || -> redis::RedisResult<Subscriber> {
            let mut con = client.get_connection_with_timeout(timeout)?;
            con.set_read_timeout(Some(timeout))?;
            con.set_write_timeout(Some(timeout))?;
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con)?;
            Ok(Subscriber {
                con,
                id,
                read_timeout: Some(timeout),
            })
        };
        open().map_err(|e| store_error(address, &e))
    }

    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// Waits up to `timeout` for a message.
    pub(crate) fn changes(
        &mut self,
        timeout: Duration,
        address: &str,
    ) -> Result<Changes, StoreError> {
        // Whole milliseconds, so that the socket's timeout rarely changes.
        let timeout = Duration::from_millis(timeout.as_millis().clamp(1, 1000) as u64);
        if self.read_timeout != Some(timeout) {
            self.con
                .set_read_timeout(Some(timeout))
                .map_err(|e| store_error(address, &e))?;
            self.read_timeout = Some(timeout);
        }
        match self.con.recv_response() {
            Ok(Value::Push {
                kind: PushKind::Invalidate,
                data,
            }) => Ok(invalidated(data)),
            Ok(_) => Ok(Changes::Quiet),
            Err(e) if e.is_timeout() => Ok(Changes::Quiet),
            Err(e) => Err(store_error(address, &e)),
        }
    }
}

/// The keys of an `invalidate` push; a null payload is a flush.
fn invalidated(data: Vec<Value>) -> Changes {
    match data.into_iter().next() {
        Some(Value::Array(keys)) => Changes::Invalidated(
            keys.into_iter()
                .filter_map(|k| redis::from_redis_value::<String>(k).ok())
                .collect(),
        ),
        _ => Changes::Lost,
    }
}

/// `CLIENT TRACKING on REDIRECT <id> OPTIN`: a command of the connection
/// this is sent on that follows `CLIENT CACHING yes` ([`register`])
/// registers the keys it reads, told to subscriber `id`; other reads
/// register nothing (a look that confirms a message must not: under a
/// full table it would drop another watched key, which would be told, and
/// so on).
pub(crate) fn enable(id: i64) -> redis::Cmd {
    redis::cmd("CLIENT")
        .arg("TRACKING")
        .arg("on")
        .arg("REDIRECT")
        .arg(id)
        .arg("OPTIN")
        .clone()
}

/// `CLIENT CACHING yes`: the next command registers the keys it reads.
pub(crate) fn register() -> redis::Cmd {
    redis::cmd("CLIENT").arg("CACHING").arg("yes").clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidate_push_names_its_keys_and_a_null_one_is_a_flush() {
        let keys = vec![Value::Array(vec![
            Value::BulkString(b"k:1".to_vec()),
            Value::BulkString(b"k:2".to_vec()),
        ])];
        assert_eq!(
            invalidated(keys),
            Changes::Invalidated(vec!["k:1".into(), "k:2".into()])
        );
        assert_eq!(invalidated(vec![Value::Nil]), Changes::Lost);
    }
}
