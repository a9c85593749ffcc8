//! The claim-and-append script and how its calls are built and read,
//! shared by the standalone and the cluster store. A script has one reply,
//! so a stalled server costs one read timeout per call, whatever the batch
//! size.
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
        let sha = self
            .sha
            .get_or_init(|| Script::new(self.body).get_hash().to_owned());
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(sha.as_str()).arg(numkeys);
        cmd
    }

    /// `SCRIPT LOAD <body>`.
    pub(crate) fn load(&self) -> Cmd {
        redis::cmd("SCRIPT").arg("LOAD").arg(self.body).clone()
    }
}

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
