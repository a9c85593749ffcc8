//! Checking a Redis URL: redis-rs's own parser decides (so the crate and
//! redis-rs agree on every URL), and the crate's checks on top say what is
//! wrong where redis-rs would only say "did not parse".
//!
//! The rule for every message here: a URL may carry a password, and a
//! password may hold characters that end the address early (`/`, `#`, `?`),
//! so where a URL holds an `@`, nothing before its last `@` is ever quoted,
//! not even a piece of it. Mistakes are said by position instead.

use redis::io::tcp::TcpSettings;
use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::config::ConfigError;

const SCHEMES: &str = "redis://, rediss://, unix:// or redis+unix://";
const ENCODE: &str = "'/', '#', '?', '@' and '%' in a password must be percent-encoded \
                      (%2F, %23, %3F, %40, %25)";

/// A URL split at its last `@`: what may be quoted and what may not.
struct Parts<'a> {
    url: &'a str,
    /// Everything before the last `@` (user, password, and what precedes
    /// them), if there is an `@`.
    secret: Option<&'a str>,
}

impl<'a> Parts<'a> {
    fn new(url: &'a str) -> Self {
        let secret = url.rfind('@').map(|at| &url[..at]);
        Parts { url, secret }
    }

    /// ` "part"` if quoting `part` shows nothing of the secret half, else
    /// nothing: a bad port or database is named when it can be.
    fn quote(&self, part: &str) -> String {
        match self.secret {
            Some(secret) if secret.contains(part) || part.contains('@') => String::new(),
            _ => format!(" {part:?}"),
        }
    }
}

/// Parses `url` for the observer: Nagle off, no `CLIENT SETINFO` on
/// connect. Returns the connection info and `host:port` for logs.
pub(crate) fn connection_info(url: &str) -> Result<(ConnectionInfo, String), ConfigError> {
    let url = url.trim();
    let info = parse(url)?;
    if !info.addr().is_supported() {
        return Err(ConfigError::url(
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

/// redis-rs's parse, then the crate's checks on what it accepted.
fn parse(url: &str) -> Result<ConnectionInfo, ConfigError> {
    let parts = Parts::new(url);
    if url.is_empty() {
        return Err(ConfigError::url("the URL is empty"));
    }
    let Some(parsed) = redis::parse_redis_url(url) else {
        return Err(ConfigError::url(diagnose(&parts)));
    };
    let tcp = !matches!(parsed.scheme(), "unix" | "redis+unix" | "valkey+unix");
    if tcp && parts.secret.is_some() && parsed.username().is_empty() && parsed.password().is_none()
    {
        // `redis://u:1234/5@host` reads as host "u", port 1234, database
        // "5@host": the '@' ended nothing.
        return Err(ConfigError::url(format!(
            "the URL holds an '@' but no user or password was read before it: a character \
             in the password ended the address early; {ENCODE}"
        )));
    }
    if tcp {
        if parsed.port() == Some(0) {
            return Err(ConfigError::url("bad port \"0\" (expected 1 to 65535)"));
        }
        let db = parsed.path().trim_matches('/');
        if !db.is_empty() && db.parse::<u16>().is_err() {
            return Err(ConfigError::url(format!(
                "bad database{} (expected a number such as /0 after the host)",
                parts.quote(db)
            )));
        }
    }
    parsed.into_connection_info().map_err(|e| {
        // redis-rs's messages are fixed texts, but one carries a query
        // value: say it in the crate's words instead.
        let text = e.to_string();
        let why = [
            ("Missing hostname", "no host".to_owned()),
            (
                "Invalid database number",
                "bad database (expected a number, ?db=N for a socket)".to_owned(),
            ),
            (
                "Invalid protocol version",
                "bad protocol (expected ?protocol=resp2 or ?protocol=resp3)".to_owned(),
            ),
            (
                "Missing path",
                "a unix socket URL needs an absolute path".to_owned(),
            ),
            (
                "not valid UTF-8",
                "the user or password is not valid UTF-8 once percent-decoded".to_owned(),
            ),
            (
                "wildcard",
                "cannot connect to a wildcard address (0.0.0.0 or ::)".to_owned(),
            ),
            (
                "TLS",
                "TLS (rediss://) needs the crate feature `tls`".to_owned(),
            ),
        ]
        .into_iter()
        .find_map(|(needle, why)| text.contains(needle).then_some(why))
        .unwrap_or_else(|| "redis-rs cannot use it".to_owned());
        ConfigError::url(why)
    })
}

/// Why redis-rs's parser refused `url`, said by position.
fn diagnose(parts: &Parts<'_>) -> String {
    let url = parts.url;
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("no scheme at the start (expected {SCHEMES})");
    };
    let known = ["redis", "rediss", "valkey", "valkeys", "unix", "redis+unix"];
    if !known.contains(&scheme.to_ascii_lowercase().as_str()) {
        return format!(
            "unsupported scheme{} (expected {SCHEMES})",
            parts.quote(scheme)
        );
    }
    if matches!(scheme, "unix" | "redis+unix") {
        return "a unix socket URL needs an absolute path".to_owned();
    }
    // The address part of what redis-rs sees ends at the first '/', '?' or
    // '#'; with an '@', the address the operator meant is after the last.
    let tail = match url.rfind('@') {
        Some(at) => &url[at + 1..],
        None => rest,
    };
    let end = tail.find(['/', '?', '#']).unwrap_or(tail.len());
    match host_port(&tail[..end], parts) {
        Err(why) => why,
        Ok(()) if parts.secret.is_some() => format!(
            "the user and password part (before the last '@') could not be read: \
             a character in it ends the address early; {ENCODE}"
        ),
        Ok(()) => "the URL does not parse".to_owned(),
    }
}

/// Checks `host[:port]` (or `[v6]:port`).
fn host_port(host_port: &str, parts: &Parts<'_>) -> Result<(), String> {
    let (host, port) = match host_port.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((host, after)) => (host, after.strip_prefix(':')),
            None => return Err("unclosed '[' in the host".to_owned()),
        },
        None => match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        },
    };
    if host.is_empty() {
        return Err("no host".to_owned());
    }
    if let Some(port) = port.filter(|p| !matches!(p.parse::<u16>(), Ok(n) if n > 0)) {
        return Err(format!(
            "bad port{} (expected 1 to 65535)",
            parts.quote(port)
        ));
    }
    Ok(())
}

/// `url` as it may be shown. A URL redis-rs can use is shown from what
/// redis-rs parsed (its `ConnectionInfo`), not from the text, so the two
/// cannot disagree on where a password is (a repeated or percent-encoded
/// `pass=` of a socket URL): the scheme, `***@` when it carries a user or
/// password, the address and the database. Of any other text only the
/// scheme is shown.
pub(crate) fn redact(url: &str) -> String {
    let url = url.trim();
    let parsed = redis::parse_redis_url(url).zip(parse(url).ok());
    match parsed {
        Some((parsed, info)) => shown(parsed.scheme(), &info),
        None => redact_text(url),
    }
}

/// What redis-rs will connect to, with any credential as `***`.
fn shown(scheme: &str, info: &ConnectionInfo) -> String {
    let settings = info.redis_settings();
    let secret = settings.username().is_some() || settings.password().is_some();
    let db = settings.db();
    match info.addr() {
        ConnectionAddr::Unix(path) => {
            let mut query = Vec::new();
            if db != 0 {
                query.push(format!("db={db}"));
            }
            if secret {
                query.push("pass=***".to_owned());
            }
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            format!("{scheme}://{}{query}", path.display())
        }
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            let credentials = if secret { "***@" } else { "" };
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let db = if db == 0 {
                String::new()
            } else {
                format!("/{db}")
            };
            format!("{scheme}://{credentials}{host}:{port}{db}")
        }
        _ => format!("{scheme}://***"),
    }
}

/// A URL redis-rs cannot use, as it may be shown: where its password
/// starts and ends cannot be known (a `@`, `?` or `#` in it moves every
/// boundary), so none of it is shown, only its scheme when it has one.
fn redact_text(url: &str) -> String {
    let scheme = url
        .split_once("://")
        .map(|(s, _)| s)
        .filter(|s| !s.is_empty() && s.len() <= 16 && s.chars().all(is_scheme_char));
    match scheme {
        Some(scheme) => format!("{scheme}://(not shown: the URL does not parse)"),
        None => "(not shown: the URL does not parse)".to_owned(),
    }
}

fn is_scheme_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')
}

#[cfg(test)]
mod tests;
