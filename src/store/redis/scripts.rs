//! The two Lua scripts and how their calls are built and read, shared by
//! the standalone and the cluster store. A script has one reply, so a
//! stalled server costs one read timeout per call, whatever the batch size.
//!
//! Calls are built as one `EVALSHA` command whose arguments are written
//! straight into its buffer (no allocation per key or value, unlike
//! `redis::ScriptInvocation`); a server without the script gets it with
//! `SCRIPT LOAD` and the call is sent again.

use std::sync::OnceLock;

use redis::{Cmd, ConnectionLike, ErrorKind, RedisResult, Script, ServerErrorKind, Value};

use crate::event::Event;
use crate::event::FieldValue;
use crate::store::{Claim, Claimed, StoreError, StoreErrorKind, StreamSpec};

/// Keys asked about per script call: small enough that one call stays far
/// below the default 50 ms timeout, and that Redis serves other clients
/// between chunks.
pub(crate) const EXISTS_CHUNK: usize = 1024;
/// Events claimed and appended per script call (a `SET NX PX` and an `XADD`
/// each).
pub(crate) const CLAIM_CHUNK: usize = 256;

/// A script's body and SHA.
pub(crate) struct Lua {
    body: &'static str,
    sha: OnceLock<String>,
}

impl Lua {
    const fn new(body: &'static str) -> Self {
        Self {
            body,
            sha: OnceLock::new(),
        }
    }

    /// `EVALSHA <sha> <numkeys>`, ready for the keys and arguments.
    pub(crate) fn call(&self, numkeys: usize) -> Cmd {
        self.call_as("EVALSHA", numkeys)
    }

    /// `EVALSHA_RO <sha> <numkeys>` (Redis 7): a script that only reads,
    /// which a user with read-only rights on its keys may run.
    pub(crate) fn call_ro(&self, numkeys: usize) -> Cmd {
        self.call_as("EVALSHA_RO", numkeys)
    }

    fn call_as(&self, command: &str, numkeys: usize) -> Cmd {
        let sha = self
            .sha
            .get_or_init(|| Script::new(self.body).get_hash().to_owned());
        let mut cmd = redis::cmd(command);
        cmd.arg(sha.as_str()).arg(numkeys);
        cmd
    }

    /// `SCRIPT LOAD <body>`.
    pub(crate) fn load(&self) -> Cmd {
        redis::cmd("SCRIPT").arg("LOAD").arg(self.body).clone()
    }
}

pub(crate) static EXISTS: Lua = Lua::new(include_str!("lua/exists.lua"));
static CLAIM: Lua = Lua::new(include_str!("lua/claim_and_append.lua"));

/// Sends `call` (an `EVALSHA` of `lua`); on `NOSCRIPT`, loads the script
/// and sends it once more.
pub(crate) fn run(con: &mut dyn ConnectionLike, lua: &Lua, call: &Cmd) -> RedisResult<Value> {
    match con.req_command(call).and_then(Value::extract_error) {
        Err(e) if is_noscript(&e) => {
            con.req_command(&lua.load())?.extract_error()?;
            con.req_command(call)?.extract_error()
        }
        other => other,
    }
}

/// Whether the server lacks the script (restarted, or `SCRIPT FLUSH`).
pub(crate) fn is_noscript(e: &redis::RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::NoScript)
}

/// Sends `call` (an `EVALSHA` of `lua`) right after the commands `first`,
/// in one write, and returns `call`'s reply (or the first error of any);
/// on `NOSCRIPT`, loads the script and sends them all once more.
pub(crate) fn run_after(
    con: &mut dyn ConnectionLike,
    first: &[Cmd],
    lua: &Lua,
    call: &Cmd,
) -> RedisResult<Value> {
    let send = |con: &mut dyn ConnectionLike| -> RedisResult<Value> {
        let mut packed = Vec::new();
        for cmd in first {
            packed.extend(cmd.get_packed_command());
        }
        packed.extend(call.get_packed_command());
        let replies = con.req_packed_commands(&packed, 0, first.len() + 1)?;
        let mut last = Err((ErrorKind::UnexpectedReturnType, "no reply").into());
        for reply in replies {
            last = Ok(reply.extract_error()?);
        }
        last
    };
    match send(con) {
        Err(e) if is_noscript(&e) => {
            con.req_command(&lua.load())?.extract_error()?;
            send(con)
        }
        other => other,
    }
}

/// The exists script over `keys`, passed as KEYS: read-only
/// (`EVALSHA_RO`) unless `ro` is false (Redis 6).
pub(crate) fn exists(keys: &[&str], ro: bool) -> Cmd {
    let mut call = if ro {
        EXISTS.call_ro(keys.len())
    } else {
        EXISTS.call(keys.len())
    };
    call.arg(keys);
    call
}

/// The exists script's reply: a string with a `1` or `0` per key.
pub(crate) fn found(reply: Value, asked: usize, address: &str) -> Result<Vec<bool>, StoreError> {
    let bytes = match reply {
        Value::BulkString(b) => b,
        Value::SimpleString(s) => s.into_bytes(),
        other => return Err(unexpected(address, &format!("exists answered {other:?}"))),
    };
    if bytes.len() != asked {
        let why = format!("exists answered {} results for {asked} keys", bytes.len());
        return Err(unexpected(address, &why));
    }
    Ok(bytes.into_iter().map(|b| b == b'1').collect())
}

/// The claim script: the stream and the dedupe keys as keys (they share the
/// stream's slot), the settings, field names and values as arguments.
pub(crate) fn claim(stream: &StreamSpec, claims: &[Claim<'_>]) -> Cmd {
    let ttl_ms = u64::try_from(stream.dedupe_ttl.as_millis()).unwrap_or(u64::MAX);
    let mut call = CLAIM.call(1 + claims.len());
    call.arg(&stream.name);
    for claim in claims {
        call.arg(claim.dedupe_key);
    }
    call.arg(stream.maxlen)
        .arg(ttl_ms)
        .arg(Event::FIELDS.len())
        .arg(Event::FIELDS);
    for claim in claims {
        call.arg(claim.owner);
        for value in claim.event.values() {
            match value {
                FieldValue::Text(text) => call.arg(text),
                FieldValue::Number(n) => call.arg(n),
            };
        }
    }
    call
}

/// Sends a claim call built by [`claim`].
pub(crate) fn run_claim(con: &mut dyn ConnectionLike, call: &Cmd) -> RedisResult<Vec<i64>> {
    Ok(redis::from_redis_value(run(con, &CLAIM, call)?)?)
}

/// The claim script's reply: 1 appended, 0 duplicate.
pub(crate) fn claimed(codes: Vec<i64>, address: &str) -> Result<Vec<Claimed>, StoreError> {
    codes
        .into_iter()
        .map(|code| match code {
            1 => Ok(Claimed::Appended),
            0 => Ok(Claimed::Duplicate),
            other => Err(unexpected(
                address,
                &format!("claim script answered {other}"),
            )),
        })
        .collect()
}

fn unexpected(address: &str, why: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Protocol, format!("{address}: {why}"))
}
