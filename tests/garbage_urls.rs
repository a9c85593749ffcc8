//! Thousands of generated URLs, most of them broken, through every way a
//! URL enters the crate (issue 27): `Config::from_vars`, the standalone
//! connector and the cluster connector. None panics, and no 4-character
//! piece of the password (as written, or as redis-rs decodes it) is in any
//! error, `Debug` output, description or shown variable.

use heat_observer::{Config, RedisConnector, store::Connector};

/// A fixed-seed xorshift: the same URLs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// A password of rare capitals (no 4-gram of it reads as English or a number)
/// with one character that needs care in a URL.
fn password(rng: &mut Rng) -> String {
    let body: String = (0..10)
        .map(|_| char::from(b"QZXJKWVYGH"[(rng.next() % 10) as usize]))
        .collect();
    let special = rng.pick(&[
        "", "/", "#", "?", "@", "%", ":", "&", "=", " ", "%2F", "%40",
    ]);
    let at = (rng.next() % 10) as usize;
    format!("{}{special}{}", &body[..at], &body[at..])
}

/// Percent-encodes every byte that is not alphanumeric.
fn encoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => char::from(b).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url(rng: &mut Rng, pw: &str) -> String {
    let scheme = rng.pick(&[
        "redis://",
        "rediss://",
        "unix://",
        "redis+unix://",
        "valkey://",
        "http://",
        "",
        "redis:/",
        "redis//",
        "REDIS://",
    ]);
    let pw = if rng.next().is_multiple_of(2) {
        pw.to_owned()
    } else {
        encoded(pw)
    };
    let user = rng.pick(&["", "default", "heat-observer", "u:v", "@"]);
    let host = rng.pick(&[
        "127.0.0.1",
        "h",
        "",
        "[::1]",
        "[::1",
        "?",
        "10.0.0.5",
        "0.0.0.0",
    ]);
    let port = rng.pick(&["", ":6379", ":0", ":65536", ":abc", ":", ":7000"]);
    let path = rng.pick(&["", "/", "/0", "/x", "/tmp/s.sock", "/-1", "//"]);
    let query_pw = format!("pass={pw}");
    let encoded_name = format!("p%61ss={pw}");
    let repeated = format!("pass=a&pass={pw}");
    let query = rng.pick(&[
        "",
        "?db=2",
        "?protocol=resp3",
        "?protocol=resp9",
        &query_pw,
        &encoded_name,
        &repeated,
        "#frag",
    ]);
    let query = if query.is_empty() || query.starts_with(['?', '#']) {
        query.to_owned()
    } else {
        format!("?{query}")
    };
    match rng.next() % 4 {
        0 => format!("{scheme}{user}:{pw}@{host}{port}{path}{query}"),
        1 => format!("{scheme}:{pw}@{host}{port}{path}{query}"),
        2 => format!("{scheme}{host}{port}{path}{query}"),
        _ => format!("{scheme}{pw}@{host}{port}{path}{query}"),
    }
}

/// The 4-character pieces of `pw`, as written and percent-decoded.
fn pieces(pw: &str) -> Vec<String> {
    let mut out = Vec::new();
    for text in [pw.to_owned(), encoded(pw)] {
        let chars: Vec<char> = text.chars().collect();
        for w in chars.windows(4) {
            let piece: String = w.iter().collect();
            // A piece of percent-encoding alone ("%2F2") is not secret.
            if piece.chars().filter(|c| c.is_ascii_alphanumeric()).count() >= 3
                && !piece.contains('%')
            {
                out.push(piece);
            }
        }
    }
    out
}

fn check(shown: &str, pw: &str, url: &str, how: &str) {
    for piece in pieces(pw) {
        assert!(
            !shown.contains(&piece),
            "{how} of {url:?} shows {piece:?} of its password: {shown}"
        );
    }
}

#[test]
fn thousands_of_urls_never_panic_and_never_show_a_piece_of_the_password() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (mut parsed, mut refused) = (0, 0);
    for _ in 0..4000 {
        let pw = password(&mut rng);
        let url = url(&mut rng, &pw);
        match Config::from_vars([("P28_LATE_OBS_REDIS_URL", url.as_str())]) {
            Ok(config) => {
                check(&format!("{config:?}"), &pw, &url, "Config's Debug");
                check(
                    &format!("{:?}", config.variables()),
                    &pw,
                    &url,
                    "variables()",
                );
            }
            Err(e) => {
                check(&e.to_string(), &pw, &url, "ConfigError");
                check(&format!("{e:?}"), &pw, &url, "ConfigError's Debug");
            }
        }
        match RedisConnector::new(&url, &Config::default()) {
            Ok(connector) => {
                parsed += 1;
                check(
                    &format!("{connector:?}"),
                    &pw,
                    &url,
                    "the connector's Debug",
                );
                check(&connector.describe(), &pw, &url, "describe()");
            }
            Err(e) => {
                refused += 1;
                check(&e.to_string(), &pw, &url, "RedisUrlError");
                check(&format!("{e:?}"), &pw, &url, "RedisUrlError's Debug");
            }
        }
        #[cfg(feature = "cluster")]
        for nodes in [
            vec![url.clone()],
            vec!["127.0.0.1:7000".to_owned(), url.clone()],
        ] {
            match heat_observer::RedisClusterConnector::new(&nodes, &Config::default()) {
                Ok(c) => {
                    check(
                        &format!("{c:?}"),
                        &pw,
                        &url,
                        "the cluster connector's Debug",
                    );
                    check(&c.describe(), &pw, &url, "the cluster describe()");
                }
                Err(e) => check(&e.to_string(), &pw, &url, "the cluster's RedisUrlError"),
            }
        }
    }
    eprintln!("{parsed} URLs parsed, {refused} refused, no piece of a password shown");
    // Both sides were reached: the generator is not all garbage.
    assert!(
        parsed > 200 && refused > 200,
        "{parsed} parsed, {refused} refused"
    );
}
