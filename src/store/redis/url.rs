//! Checking a Redis URL before redis-rs parses it, so that a mistake gets a
//! message that says what is wrong. Nothing here ever repeats the password.

use std::fmt;

use redis::io::tcp::TcpSettings;
use redis::{ConnectionAddr, ConnectionInfo};

/// A Redis URL (or TLS material) the observer cannot use. The message says
/// what is wrong and never repeats the password.
///
/// ```
/// use heat_observer::RedisConnector;
///
/// let err = RedisConnector::new("http://:secret@x", &Default::default()).unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "invalid Redis URL: unsupported scheme \"http\" (expected redis://, rediss://, unix:// or redis+unix://)"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisUrlError {
    reason: String,
}

impl RedisUrlError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }

    /// What is wrong, without the "invalid Redis URL" prefix.
    pub(crate) fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for RedisUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid Redis URL: {}", self.reason)
    }
}

impl std::error::Error for RedisUrlError {}

const SCHEMES: &str = "redis://, rediss://, unix:// or redis+unix://";

/// Finds the first thing wrong with `url` that redis-rs would only call
/// "did not parse": the scheme, the host, the port, the database number.
fn check(url: &str) -> Result<(), RedisUrlError> {
    let url = url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(RedisUrlError::new(if url.is_empty() {
            "the URL is empty".to_owned()
        } else {
            format!("no scheme (expected {SCHEMES})")
        }));
    };
    match scheme.to_ascii_lowercase().as_str() {
        "redis" | "rediss" | "valkey" | "valkeys" => {}
        "unix" | "redis+unix" => {
            return match rest.split(['?', '#']).next() {
                Some(path) if path.starts_with('/') => Ok(()),
                _ => Err(RedisUrlError::new(
                    "a unix socket URL needs an absolute path",
                )),
            };
        }
        other => {
            return Err(RedisUrlError::new(format!(
                "unsupported scheme {other:?} (expected {SCHEMES})"
            )));
        }
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // The user and password end at the last '@'; they are never shown.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err(RedisUrlError::new("unclosed '[' in the host")),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err(RedisUrlError::new("no host"));
    }
    if let Some(port) = port.filter(|p| !matches!(p.parse::<u16>(), Ok(n) if n > 0)) {
        return Err(RedisUrlError::new(format!(
            "bad port {port:?} (expected 1 to 65535)"
        )));
    }
    let db = path
        .strip_prefix('/')
        .unwrap_or("")
        .split(['?', '#'])
        .next();
    if let Some(db) = db.filter(|db| !db.is_empty() && db.parse::<u16>().is_err()) {
        return Err(RedisUrlError::new(format!(
            "bad database {db:?} (expected a number such as /0)"
        )));
    }
    Ok(())
}

/// Parses `url` for the observer: Nagle off, no `CLIENT SETINFO` on
/// connect. Returns the connection info and `host:port` for logs.
pub(crate) fn connection_info(url: &str) -> Result<(ConnectionInfo, String), RedisUrlError> {
    check(url)?;
    // redis-rs's own messages name the failure, never the URL.
    let info = redis::IntoConnectionInfo::into_connection_info(url.trim())
        .map_err(|e| RedisUrlError::new(e.to_string()))?;
    if !info.addr().is_supported() {
        return Err(RedisUrlError::new(
            "TLS (rediss://) needs the crate feature `tls`",
        ));
    }
    let address = match info.addr() {
        ConnectionAddr::Unix(path) => format!("unix:{}", path.display()),
        addr => addr.to_string(),
    };
    // redis-rs leaves Nagle on; small commands would wait for ACKs.
    let tcp = TcpSettings::default().set_nodelay(true);
    // No CLIENT SETINFO on connect: each setup command is one more read
    // timeout when the server is stalled.
    let redis = info.redis_settings().clone().set_skip_set_lib_name();
    Ok((
        info.set_tcp_settings(tcp).set_redis_settings(redis),
        address,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(url: &str) -> String {
        connection_info(url).unwrap_err().reason
    }

    #[test]
    fn each_mistake_is_named_and_the_password_never_shown() {
        let cases = [
            ("http://x", "unsupported scheme \"http\""),
            ("localhost:6379", "no scheme"),
            ("", "the URL is empty"),
            ("redis://", "no host"),
            ("redis://:pw@", "no host"),
            ("redis://:pw@host:0", "bad port \"0\""),
            ("redis://:pw@host:99999", "bad port \"99999\""),
            ("redis://:pw@host:63a9", "bad port \"63a9\""),
            ("redis://:pw@host:6379/x", "bad database \"x\""),
            ("redis://[::1", "unclosed '['"),
            ("unix://relative/sock", "absolute path"),
        ];
        for (url, want) in cases {
            let got = reason(url);
            assert!(got.contains(want), "{url:?}: {got}");
            assert!(!got.contains("pw"), "{url:?} leaked its password: {got}");
        }
    }

    #[test]
    fn good_urls_pass_and_give_host_port() {
        for (url, address) in [
            ("redis://127.0.0.1:6379", "127.0.0.1:6379"),
            ("redis://:pw@10.0.0.5:6380/2", "10.0.0.5:6380"),
            ("redis://user:pw@host", "host:6379"),
            ("redis://[::1]:7000/0", "::1:7000"),
            ("unix:///tmp/redis.sock", "unix:/tmp/redis.sock"),
        ] {
            let (_, got) = connection_info(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(got, address, "{url}");
        }
    }
}
