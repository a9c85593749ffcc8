//! Push detection on Redis: one subscriber connection per worker, with
//! client tracking in broadcast mode redirected to itself (Redis 6+):
//! `CLIENT TRACKING on REDIRECT <own id> BCAST PREFIX <heat prefix> NOLOOP`,
//! then `SUBSCRIBE __redis__:invalidate`. Every write, deletion or expiry of
//! a key under the prefix arrives as a message whose payload is the keys; a
//! null payload is a flush. No server configuration is needed; the user
//! needs `+client|id +client|tracking +subscribe` and the channel
//! `&__redis__:invalidate`.

use std::time::Duration;

use redis::{Client, Connection, RedisResult, Value};

use super::link::store_error;
use crate::store::{Changes, StoreError, StoreErrorKind};

const CHANNEL: &str = "__redis__:invalidate";

/// A worker's subscription, if it has one.
pub(crate) struct Tracking {
    con: Option<Connection>,
    /// Keys that came while the subscription was being made.
    early: Vec<String>,
    /// The read timeout set on the socket, so it is set only when it
    /// changes (a system call each time).
    read_timeout: Option<Duration>,
}

impl Tracking {
    pub(crate) fn new() -> Self {
        Self {
            con: None,
            early: Vec::new(),
            read_timeout: None,
        }
    }

    /// Opens the subscriber and registers tracking for `prefix`.
    pub(crate) fn subscribe(
        &mut self,
        client: &Client,
        timeout: Duration,
        prefix: &str,
        address: &str,
    ) -> Result<bool, StoreError> {
        self.con = None;
        let open = || -> RedisResult<(Connection, Vec<String>)> {
            let mut con = client.get_connection_with_timeout(timeout)?;
            con.set_read_timeout(Some(timeout))?;
            con.set_write_timeout(Some(timeout))?;
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con)?;
            redis::cmd("CLIENT")
                .arg("TRACKING")
                .arg("on")
                .arg("REDIRECT")
                .arg(id)
                .arg("BCAST")
                .arg("PREFIX")
                .arg(prefix)
                .arg("NOLOOP")
                .exec(&mut con)?;
            con.send_packed_command(&redis::cmd("SUBSCRIBE").arg(CHANNEL).get_packed_command())?;
            // Until the confirmation, keep what is told already.
            let mut early = Vec::new();
            loop {
                match con.recv_response()? {
                    Value::Array(parts) if is_kind(&parts, b"subscribe") => {
                        return Ok((con, early));
                    }
                    Value::Array(parts) if is_kind(&parts, b"message") => {
                        if let Some(Changes::Keys(keys)) = message(parts) {
                            early.extend(keys);
                        }
                    }
                    other => {
                        let what = format!("unexpected reply to SUBSCRIBE: {other:?}");
                        return Err(
                            (redis::ErrorKind::UnexpectedReturnType, "subscribe", what).into()
                        );
                    }
                }
            }
        };
        let (con, early) = open().map_err(|e| store_error(address, &e))?;
        self.con = Some(con);
        self.early = early;
        self.read_timeout = Some(timeout);
        Ok(true)
    }

    /// Waits up to `timeout` for a message.
    pub(crate) fn changes(
        &mut self,
        timeout: Duration,
        address: &str,
    ) -> Result<Changes, StoreError> {
        if !self.early.is_empty() {
            return Ok(Changes::Keys(std::mem::take(&mut self.early)));
        }
        let Some(con) = self.con.as_mut() else {
            let why = format!("{address}: no subscription");
            return Err(StoreError::new(StoreErrorKind::Unavailable, why));
        };
        // Whole milliseconds, so that the socket's timeout rarely changes.
        let timeout = Duration::from_millis(timeout.as_millis().clamp(1, 1000) as u64);
        let mut pubsub = con.as_pubsub();
        let mut read = Ok(());
        if self.read_timeout != Some(timeout) {
            read = pubsub.set_read_timeout(Some(timeout));
            self.read_timeout = Some(timeout);
        }
        let read = read.and_then(|()| pubsub.get_message());
        // Dropping a `PubSub` unsubscribes; the subscription must outlive
        // this wait. It holds a borrow and an empty queue, nothing to free.
        std::mem::forget(pubsub);
        match read {
            Ok(msg) if msg.get_channel_name() == CHANNEL => {
                match msg.get_payload::<Option<Vec<String>>>() {
                    Ok(Some(keys)) => Ok(Changes::Keys(keys)),
                    Ok(None) => Ok(Changes::Lost),
                    Err(_) => Ok(Changes::Lost),
                }
            }
            Ok(_) => Ok(Changes::Keys(Vec::new())),
            Err(e) if e.is_timeout() => Ok(Changes::Keys(Vec::new())),
            Err(e) => {
                self.con = None;
                Err(store_error(address, &e))
            }
        }
    }
}

fn is_kind(parts: &[Value], kind: &[u8]) -> bool {
    matches!(parts.first(), Some(Value::BulkString(k)) if k.as_slice() == kind)
}

/// The keys of an invalidation message (`Lost` for a flush).
fn message(parts: Vec<Value>) -> Option<Changes> {
    match parts.into_iter().nth(2)? {
        Value::Nil => Some(Changes::Lost),
        payload => redis::from_redis_value::<Vec<String>>(payload)
            .ok()
            .map(Changes::Keys),
    }
}
