//! Everything Redis-specific: the standalone store ([`RedisConnector`]), the
//! cluster store (feature `cluster`), TLS (feature `tls`), and what they
//! share: URL checks, the [`Node`](node::Node) (a server's connection,
//! opened, configured and retried in one place, with its subscriber), and
//! the claim script.

mod backoff;
#[cfg(feature = "cluster")]
mod cluster;
mod link;
mod node;
mod pipelined;
#[cfg(unix)]
mod push_frames;
#[cfg(unix)]
mod push_socket;
#[cfg(unix)]
mod readable;
#[cfg(feature = "cluster")]
mod replication;
mod rights;
mod scripts;
mod server_clock;
#[cfg(feature = "cluster")]
mod slots;
mod standalone;
#[cfg(feature = "tls")]
mod tls;
mod tracking;
mod url;

#[cfg(feature = "cluster")]
pub use cluster::RedisClusterConnector;
pub use standalone::RedisConnector;
#[cfg(feature = "tls")]
pub use tls::TlsCerts;
pub(crate) use url::redact;

use redis::Cmd;

use super::{Claim, Claimed, StoreError, StreamSpec};

/// Claims and appends in chunks of `scripts::CLAIM_CHUNK`, one script call
/// each through `invoke`. A chunk that fails fails the call: the worker
/// retries every claim, and those already written come back as `Appended`
/// (their dedupe key holds the same owner).
fn claim_in_chunks(
    stream: &StreamSpec,
    claims: &[Claim<'_>],
    address: &str,
    mut invoke: impl FnMut(&Cmd) -> Result<Vec<i64>, StoreError>,
) -> Result<Vec<Claimed>, StoreError> {
    let mut claimed = Vec::with_capacity(claims.len());
    for chunk in claims.chunks(scripts::CLAIM_CHUNK) {
        let codes = invoke(&scripts::claim(stream, chunk))?;
        claimed.extend(scripts::claimed(codes, address)?);
    }
    Ok(claimed)
}
