//! Push detection on Redis: client tracking with interest per key (Redis
//! 6+), redirected to a subscriber connection of the worker's own.
//!
//! * The subscriber speaks RESP3, so the server sends it `invalidate`
//!   pushes without any SUBSCRIBE (and the user needs no channel right).
//!   Over plain TCP or a Unix socket it is a stream of its own
//!   ([`PushSocket`]), waited on with poll(2) to the millisecond and read
//!   without blocking; over TLS it is redis-rs's connection, waited on with
//!   the socket's read timeout (which counts in kernel ticks).
//! * The data connection, which runs the looks, has `CLIENT TRACKING on
//!   REDIRECT <subscriber id> OPTIN`: the keys of the one command that
//!   follows `CLIENT CACHING yes` (a multi-key `EXISTS`, which registers a
//!   missing key too) are remembered by the server for this client, and
//!   each one's next write, deletion or expiry is told once, to this
//!   worker only. A key nobody looked at sends nothing: one message per
//!   written key, to one worker, however many workers and processes. Only
//!   the look when a plan is taken (and after a loss) registers.
//! * A message is not proof of a write: when the server's tracking table is
//!   full (`tracking-table-max-keys`), it drops keys from it and tells each
//!   as if it were written. The worker confirms every message with a look.
//! * Nothing is ever sent on the subscriber after its handshake.

use std::time::Duration;

use redis::{Client, Connection, PushKind, Value};

use super::link::store_error;
#[cfg(unix)]
use super::push_frames::Frame;
#[cfg(unix)]
use super::push_socket::PushSocket;
use crate::store::{Changes, StoreError};

/// A worker's subscriber connection.
pub(crate) struct Subscriber {
    feed: Feed,
    /// Its client id, the target of `CLIENT TRACKING ... REDIRECT`.
    id: i64,
}

enum Feed {
    /// Plain TCP or a Unix socket: a stream of its own, waited on with
    /// poll(2) and read without blocking.
    #[cfg(unix)]
    Socket(PushSocket),
    /// TLS: redis-rs's connection, waited on with its read timeout, which
    /// counts in kernel ticks (a wait may end a few ms late), and never
    /// read without waiting.
    Client {
        con: Connection,
        /// The read timeout set on the socket, so it is set only when it
        /// changes (a system call each time).
        read_timeout: Option<Duration>,
    },
}

impl Subscriber {
    /// Opens a RESP3 connection to `client`'s server and reads its id.
    pub(crate) fn open(
        client: &Client,
        timeout: Duration,
        address: &str,
    ) -> Result<Subscriber, StoreError> {
        #[cfg(unix)]
        if PushSocket::fits(client.get_connection_info()) {
            let (socket, id) = PushSocket::open(client.get_connection_info(), timeout)
                .map_err(|e| store_error(address, &e))?;
            return Ok(Subscriber {
                feed: Feed::Socket(socket),
                id,
            });
        }
        let open = || -> redis::RedisResult<Subscriber> {
            let mut con = client.get_connection_with_timeout(timeout)?;
            con.set_read_timeout(Some(timeout))?;
            con.set_write_timeout(Some(timeout))?;
            let id: i64 = redis::cmd("CLIENT").arg("ID").query(&mut con)?;
            Ok(Subscriber {
                feed: Feed::Client {
                    con,
                    read_timeout: Some(timeout),
                },
                id,
            })
        };
        open().map_err(|e| store_error(address, &e))
    }

    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    /// The socket to wait on with poll(2), unless it is redis-rs's.
    #[cfg(unix)]
    pub(crate) fn fd(&self) -> Option<std::os::fd::RawFd> {
        match &self.feed {
            Feed::Socket(socket) => Some(socket.fd()),
            Feed::Client { .. } => None,
        }
    }

    /// The messages read whole already, without reading or waiting.
    pub(crate) fn buffered(&mut self, address: &str) -> Result<Changes, StoreError> {
        match &mut self.feed {
            #[cfg(unix)]
            Feed::Socket(socket) => socket
                .frames()
                .map(merged)
                .map_err(|e| store_error(address, &e)),
            Feed::Client { .. } => Ok(Changes::Quiet),
        }
    }

    /// Reads what the socket holds, without waiting (after poll(2) said it
    /// can be read).
    #[cfg(unix)]
    pub(crate) fn read_ready(&mut self, address: &str) -> Result<Changes, StoreError> {
        match &mut self.feed {
            Feed::Socket(socket) => socket
                .fill()
                .and_then(|()| socket.frames())
                .map(merged)
                .map_err(|e| store_error(address, &e)),
            Feed::Client { .. } => Ok(Changes::Quiet),
        }
    }

    /// Waits up to `timeout` for messages; returns all of them that came.
    pub(crate) fn changes(
        &mut self,
        timeout: Duration,
        address: &str,
    ) -> Result<Changes, StoreError> {
        #[cfg(unix)]
        if let Some(fd) = self.fd() {
            let buffered = self.buffered(address)?;
            if buffered != Changes::Quiet {
                return Ok(buffered);
            }
            let ready = super::readable::readable(&[fd], timeout)
                .map_err(|e| store_error(address, &e.into()))?;
            return if ready[0] {
                self.read_ready(address)
            } else {
                Ok(Changes::Quiet)
            };
        }
        let (con, read_timeout) = match &mut self.feed {
            // Its read cannot be asked not to wait: what came is read at
            // the next wait that may wait.
            Feed::Client { .. } if timeout.is_zero() => return Ok(Changes::Quiet),
            Feed::Client { con, read_timeout } => (con, read_timeout),
            #[cfg(unix)]
            Feed::Socket(_) => return Ok(Changes::Quiet),
        };
        // One of a few values (1, 2, 4, 8 ms, then whole tens), rounded
        // down, so that the socket's timeout (a system call to change)
        // rarely changes; a wait cut short is simply waited again.
        let timeout = quantized(timeout);
        if *read_timeout != Some(timeout) {
            con.set_read_timeout(Some(timeout))
                .map_err(|e| store_error(address, &e))?;
            *read_timeout = Some(timeout);
        }
        match con.recv_response() {
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

/// Frames as one answer: every key they name, or `Lost` if one was a flush.
#[cfg(unix)]
fn merged(frames: Vec<Frame>) -> Changes {
    let mut keys = Vec::new();
    for frame in frames {
        match frame {
            Frame::Invalidate(mut named) => keys.append(&mut named),
            Frame::Flush => return Changes::Lost,
        }
    }
    if keys.is_empty() {
        Changes::Quiet
    } else {
        Changes::Invalidated(keys)
    }
}

/// `timeout` rounded down to 1, 2, 4 or 8 ms, or whole tens of ms up to a
/// second.
fn quantized(timeout: Duration) -> Duration {
    let ms = timeout.as_millis().clamp(1, 1000) as u64;
    Duration::from_millis(match ms {
        0..=9 => 1 << ms.ilog2(),
        _ => ms / 10 * 10,
    })
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
mod tests;
