//! [`Link`]: a lazily opened Redis connection that is dropped after any
//! error but a server's reply and reopened with backoff; and the mapping of
//! redis-rs errors to [`StoreError`]. Each [`Node`](super::node::Node) has
//! one.

use std::time::Instant;

use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind};

use super::backoff::Backoff;
use crate::store::{StoreError, StoreErrorKind};

pub(crate) struct Link<C> {
    /// `host:port` (or `unix:/path`, or the first cluster node), for errors.
    address: String,
    /// The user of the URL, for "authentication failed for user ...".
    user: Option<String>,
    connection: Option<C>,
    /// `None`: reconnect at every call (a cluster node, see `Node::eager`).
    reconnect: Option<Backoff>,
    /// Why the last connect failed: said again while backing off, so an
    /// operator's error (credentials, rights, database) stays visible.
    last_failure: Option<StoreError>,
    /// Connections opened so far: a change means a new connection, and
    /// whatever the server kept for the old one (tracked keys) is gone.
    opened: u64,
    /// The connection has answered a call (a send alone proves nothing: a
    /// server that accepts and hangs up takes the write).
    answered: bool,
}

impl<C> Link<C> {
    pub(crate) fn new(address: String, user: Option<String>) -> Self {
        Self {
            address,
            user,
            connection: None,
            reconnect: Some(Backoff::new()),
            last_failure: None,
            opened: 0,
            answered: false,
        }
    }

    /// Connections opened so far.
    pub(crate) fn opened(&self) -> u64 {
        self.opened
    }

    pub(crate) fn address(&self) -> &str {
        &self.address
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connection.is_some()
    }

    /// Never backs off: every call after a failure tries to reconnect.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn eager(mut self) -> Self {
        self.reconnect = None;
        self
    }

    fn backed_off(&mut self, now: Instant) {
        if let Some(backoff) = &mut self.reconnect {
            backoff.failed(now);
        }
    }

    /// Drops the connection: the next call opens one, without backing off.
    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn close(&mut self) {
        self.connection = None;
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
        self.run(open, f, true)
    }

    /// [`Link::call`] for `f` that only writes: its success does not count
    /// as an answer (the backoff is not reset) until a call reads one.
    pub(crate) fn send<T>(
        &mut self,
        open: impl FnOnce() -> RedisResult<C>,
        f: impl FnOnce(&mut C) -> RedisResult<T>,
    ) -> Result<T, StoreError> {
        self.run(open, f, false)
    }

    fn run<T>(
        &mut self,
        open: impl FnOnce() -> RedisResult<C>,
        f: impl FnOnce(&mut C) -> RedisResult<T>,
        reads: bool,
    ) -> Result<T, StoreError> {
        let (mut connection, reused) = match self.connection.take() {
            Some(connection) => (connection, self.answered),
            None => {
                let opened = self.open(open)?;
                self.answered = false;
                (opened, false)
            }
        };
        match f(&mut connection) {
            Ok(value) => {
                self.connection = Some(connection);
                if reads {
                    self.answered = true;
                    if let Some(backoff) = &mut self.reconnect {
                        backoff.succeeded();
                    }
                    self.last_failure = None;
                }
                Ok(value)
            }
            Err(e) => {
                let broke =
                    reused && !e.is_timeout() && (e.is_io_error() || e.is_connection_dropped());
                if is_server_reply(&e) {
                    self.connection = Some(connection);
                } else if !broke {
                    self.backed_off(Instant::now());
                }
                Err(self.error(&e))
            }
        }
    }

    fn open(&mut self, open: impl FnOnce() -> RedisResult<C>) -> Result<C, StoreError> {
        let now = Instant::now();
        if let Some(left) = self.reconnect.as_ref().and_then(|b| b.wait(now)) {
            let wait = format!("reconnecting in {} ms", left.as_millis());
            return Err(match &self.last_failure {
                // The cause, not only the wait: an operator's error stays
                // an operator's error while the link backs off.
                Some(last) => {
                    let kind = match last.kind() {
                        k if k.is_configuration() => k,
                        _ => StoreErrorKind::Unavailable,
                    };
                    StoreError::new(kind, format!("{} ({wait})", last.message()))
                }
                None => StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("{}: {wait}", self.address),
                ),
            });
        }
        let opened = open().map_err(|e| {
            self.backed_off(now);
            let error = self.error(&e);
            self.last_failure = Some(error.clone());
            error
        })?;
        self.opened += 1;
        Ok(opened)
    }

    /// `e` as a [`StoreError`]; an authentication failure names the user.
    fn error(&self, e: &RedisError) -> StoreError {
        let error = store_error(&self.address, e);
        match error.kind() {
            StoreErrorKind::Auth => {
                let user = self.user.as_deref().unwrap_or("default");
                StoreError::new(
                    StoreErrorKind::Auth,
                    format!("{}: authentication failed for user {user:?}", self.address),
                )
            }
            _ => error,
        }
    }
}

/// Whether `e` is the server's error reply (the connection is still in step).
pub(crate) fn is_server_reply(e: &RedisError) -> bool {
    matches!(e.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

/// `e` as a [`StoreError`] naming `address`. redis-rs's messages name the
/// failure, never the URL. An operator's error (credentials, a right, the
/// database) gets its own kind and says what to fix.
pub(crate) fn store_error(address: &str, e: &RedisError) -> StoreError {
    let code = e.code().unwrap_or("");
    let text = e.to_string();
    let (kind, message) =
        if e.kind() == ErrorKind::AuthenticationFailed || matches!(code, "WRONGPASS" | "NOAUTH") {
            (StoreErrorKind::Auth, "authentication failed".to_owned())
        } else if e.kind() == ErrorKind::Server(ServerErrorKind::NoPerm) || code == "NOPERM" {
            (
                StoreErrorKind::Permission,
                lacks(e.detail().unwrap_or(&text)),
            )
        } else if text.contains("The user executing the script can't") {
            // A script's command or key refused by the ACL: an `ERR`, not a
            // `NOPERM`, and it names no right (the store probes for it).
            (
                StoreErrorKind::Permission,
                "user lacks a right a script uses (NOPERM in a script)".to_owned(),
            )
        } else if text.contains("switch database") || text.contains("DB index is out of range") {
            let why =
                "the URL's database does not exist on this server (see `databases` in redis.conf)";
            (StoreErrorKind::Database, why.to_owned())
        } else if code == "CLUSTERDOWN" {
            // Redis's own words tell a slot left unserved from a cluster
            // marked failed (seen briefly in a planned failover too); they
            // are fixed texts, cut short all the same.
            let said: String = e.detail().unwrap_or("").chars().take(48).collect();
            let why = format!(
                "the cluster is down (CLUSTERDOWN: {said}): until a master serves every slot \
                 again (a failover ends) the nodes refuse"
            );
            (StoreErrorKind::Server, why)
        } else if e.is_timeout() {
            (StoreErrorKind::Timeout, text)
        } else if e.is_connection_refusal() {
            (StoreErrorKind::Unavailable, text)
        } else if e.is_io_error() || e.is_connection_dropped() {
            (StoreErrorKind::Io, text)
        } else if is_server_reply(e) {
            (StoreErrorKind::Server, text)
        } else if matches!(e.kind(), ErrorKind::Parse | ErrorKind::UnexpectedReturnType) {
            (StoreErrorKind::Protocol, text)
        } else {
            (StoreErrorKind::Other, text)
        };
    StoreError::new(kind, format!("{address}: {message}"))
}

/// What a `NOPERM` says the user lacks, as an ACL rule: `user lacks
/// +evalsha`, or access to a key or a channel.
fn lacks(detail: &str) -> String {
    if let Some(command) = detail
        .split("to run the '")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
    {
        return format!("user lacks +{command} (NOPERM)");
    }
    if detail.contains("key") {
        return "user lacks access to a key it uses (NOPERM; see docs/operators.md, ACL)"
            .to_owned();
    }
    if detail.contains("channel") {
        return "user lacks access to a channel (NOPERM; see docs/operators.md, ACL)".to_owned();
    }
    format!("user lacks a right: {detail}")
}

#[cfg(test)]
mod tests;
