//! [`Link`]: a lazily opened Redis connection that is dropped after any
//! error but a server's reply and reopened with backoff; and the mapping of
//! redis-rs errors to [`StoreError`]. Shared by the standalone and the
//! cluster store.

use std::time::Instant;

use redis::{ErrorKind, RedisError, RedisResult};

use super::backoff::Backoff;
use crate::store::{StoreError, StoreErrorKind};

pub(crate) struct Link<C> {
    /// `host:port` (or `unix:/path`, or the first cluster node), for errors.
    address: String,
    connection: Option<C>,
    reconnect: Backoff,
}

impl<C> Link<C> {
    pub(crate) fn new(address: String) -> Self {
        Self {
            address,
            connection: None,
            reconnect: Backoff::new(),
        }
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Runs `f` on the connection, opening it with `open` first if there is
    /// none (unless reconnecting is backing off). A server's error reply
    /// keeps the connection; anything else (I/O, timeout, a reply that does
    /// not parse) drops it, since its state is unknown, and backs off.
    ///
    /// A connection that had worked and now broke (reset, closed: not a
    /// timeout) is dropped without backing off: the server answered a
    /// moment ago, so the next call reconnects at once. The error says
    /// [`StoreErrorKind::Io`], which the worker takes as "try once more".
    pub(crate) fn call<T>(
        &mut self,
        open: impl FnOnce() -> RedisResult<C>,
        f: impl FnOnce(&mut C) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        let (mut connection, reused) = match self.connection.take() {
            Some(connection) => (connection, true),
            None => (self.open(open)?, false),
        };
        match f(&mut connection) {
            Ok(value) => {
                self.connection = Some(connection);
                self.reconnect.succeeded();
                Ok(value)
            }
            Err(e) => {
                let broke =
                    reused && !e.is_timeout() && (e.is_io_error() || e.is_connection_dropped());
                if is_server_reply(&e) {
                    self.connection = Some(connection);
                } else if !broke {
                    self.reconnect.failed(Instant::now());
                }
                Err(store_error(&self.address, &e))
            }
        }
    }

    fn open(&mut self, open: impl FnOnce() -> RedisResult<C>) -> Result<C, StoreError> {
        let now = Instant::now();
        if let Some(left) = self.reconnect.wait(now) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("{}: reconnecting in {} ms", self.address, left.as_millis()),
            ));
        }
        open().map_err(|e| {
            self.reconnect.failed(now);
            store_error(&self.address, &e)
        })
    }
}

/// Whether `e` is the server's error reply (the connection is still in step).
pub(crate) fn is_server_reply(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

/// `e` as a [`StoreError`] naming `address`. redis-rs's messages name the
/// failure, never the URL.
pub(crate) fn store_error(address: &str, e: &RedisError) -> StoreError {
    let kind = if e.is_timeout() {
        StoreErrorKind::Timeout
    } else if e.is_connection_refusal() {
        StoreErrorKind::Unavailable
    } else if e.is_io_error() || e.is_connection_dropped() {
        StoreErrorKind::Io
    } else if is_server_reply(e) || e.kind() == ErrorKind::AuthenticationFailed {
        StoreErrorKind::Server
    } else if matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType) {
        StoreErrorKind::Protocol
    } else {
        StoreErrorKind::Other
    };
    StoreError::new(kind, format!("{address}: {e}"))
}
