//! The two Lua scripts and how their calls are built and read, shared by
//! the standalone and the cluster store. A script has one reply, so a
//! stalled server costs one read timeout per call, whatever the batch size.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation};

use crate::Event;
use crate::store::{Claim, Claimed, StoreError, StoreErrorKind, StreamSpec};

/// Keys asked about per script call: small enough that one call stays far
/// below the default 50 ms timeout, and that Redis serves other clients
/// between chunks.
pub(crate) const EXISTS_CHUNK: usize = 1024;
/// Events claimed and appended per script call (a `SET NX PX` and an `XADD`
/// each).
pub(crate) const CLAIM_CHUNK: usize = 256;

static EXISTS_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/exists.lua")));
static CLAIM_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/claim_and_append.lua")));

/// `EVALSHA` of the exists script over `keys` (one slot's worth in a
/// cluster).
pub(crate) fn exists(keys: &[&str]) -> ScriptInvocation<'static> {
    let mut call = EXISTS_SCRIPT.prepare_invoke();
    for key in keys {
        call.key(*key);
    }
    call
}

/// `EVALSHA` of the claim script: the stream and the dedupe keys as keys
/// (they share the stream's slot), the settings, field names and values as
/// arguments.
pub(crate) fn claim(stream: &StreamSpec, claims: &[Claim<'_>]) -> ScriptInvocation<'static> {
    let ttl_ms = u64::try_from(stream.dedupe_ttl.as_millis()).unwrap_or(u64::MAX);
    let mut call = CLAIM_SCRIPT.prepare_invoke();
    call.key(&stream.name);
    for claim in claims {
        call.key(claim.dedupe_key);
    }
    call.arg(stream.maxlen).arg(ttl_ms).arg(Event::FIELDS.len());
    for name in Event::FIELDS {
        call.arg(name);
    }
    for claim in claims {
        call.arg(claim.owner);
        for (_, value) in claim.event.fields() {
            call.arg(value);
        }
    }
    call
}

/// The claim script's reply: 1 appended, 0 duplicate.
pub(crate) fn claimed(codes: Vec<i64>, address: &str) -> Result<Vec<Claimed>, StoreError> {
    codes
        .into_iter()
        .map(|code| match code {
            1 => Ok(Claimed::Appended),
            0 => Ok(Claimed::Duplicate),
            other => Err(StoreError::new(
                StoreErrorKind::Protocol,
                format!("{address}: claim script answered {other}"),
            )),
        })
        .collect()
}
