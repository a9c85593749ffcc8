use super::*;

fn reason(url: &str) -> String {
    let shown = connection_info(url).unwrap_err().to_string();
    let reason = shown.strip_prefix("invalid Redis URL: ").expect("named so");
    reason.to_owned()
}

#[test]
fn each_mistake_is_named_and_the_password_never_shown() {
    let cases = [
        ("http://x", "unsupported scheme \"http\""),
        ("http://:pw@x", "unsupported scheme (expected"),
        ("localhost:6379", "no scheme"),
        ("", "the URL is empty"),
        ("redis://", "no host"),
        ("redis://:pw@", "no host"),
        ("redis://:pw@host:0", "bad port \"0\""),
        ("redis://:pw@host:99999", "bad port \"99999\""),
        ("redis://:pw@host:63a9", "bad port \"63a9\""),
        ("redis://:pw@host:6379/x", "bad database \"x\""),
        ("redis://host:6379/-1", "bad database \"-1\""),
        ("redis://[::1", "unclosed '['"),
        ("unix://relative/sock", "absolute path"),
        ("redis://h:1/?protocol=resp9", "bad protocol"),
    ];
    for (url, want) in cases {
        let got = reason(url);
        assert!(got.contains(want), "{url:?}: {got}");
        assert!(!got.contains("pw"), "{url:?} leaked its password: {got}");
    }
}

#[test]
fn a_password_that_ends_the_address_early_is_said_by_position() {
    for url in [
        "redis://default:S3cr/tPw@127.0.0.1:6407",
        "redis://default:S3cr#tPw@127.0.0.1:6407",
        "redis://default:S3cr?tPw@127.0.0.1:6407",
        "redis://u:6379/5ecr@host",
        "redis://u:S3cr/tPw@host:6379/x",
    ] {
        let got = reason(url);
        assert!(got.contains("percent-encoded"), "{url}: {got}");
        for piece in ["S3cr", "tPw", "5ecr"] {
            assert!(!got.contains(piece), "{url}: {got}");
        }
    }
}

#[test]
fn good_urls_pass_and_give_host_port() {
    for (url, address) in [
        ("redis://127.0.0.1:6379", "127.0.0.1:6379"),
        ("redis://:pw@10.0.0.5:6380/2", "10.0.0.5:6380"),
        ("redis://user:pw@host", "host:6379"),
        ("redis://u:p@ss@host:1", "host:1"),
        ("redis://u:a:b@host", "host:6379"),
        ("redis://u:S3cr%2FtPw@host:1", "host:1"),
        ("redis://[::1]:7000/0", "::1:7000"),
        ("unix:///tmp/redis.sock", "unix:/tmp/redis.sock"),
    ] {
        let (_, got) = connection_info(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(got, address, "{url}");
    }
}

#[test]
fn redaction_shows_what_redis_rs_parsed_with_any_credential_hidden() {
    let cases = [
        ("redis://u:pw@h:1/0", "redis://***@h:1"),
        ("redis://:p@w@h", "redis://***@h:6379"),
        ("redis://:pw@h:1/3", "redis://***@h:1/3"),
        (
            "redis//heat-observer:hunter2@10.0.0.5:6379",
            "(not shown: the URL does not parse)",
        ),
        ("redis://h:1", "redis://h:1"),
        ("redis://[::1]:7000", "redis://[::1]:7000"),
        (
            "unix:///s.sock?db=1&pass=hunter2&x=1",
            "unix:///s.sock?db=1&pass=***",
        ),
        ("unix:///s.sock", "unix:///s.sock"),
        // redis-rs takes the last of a repeated name and decodes
        // percent-encoded names: the password it uses is hidden.
        (
            "unix:///tmp/s.sock?pass=a&pass=Zq9Secret",
            "unix:///tmp/s.sock?pass=***",
        ),
        (
            "unix:///tmp/s.sock?p%61ss=Zq9Secret",
            "unix:///tmp/s.sock?pass=***",
        ),
        (
            "unix:///tmp/s.sock?user=u&p%61ss=Zq9Secret",
            "unix:///tmp/s.sock?pass=***",
        ),
        // Not a URL redis-rs can use: only its scheme is shown.
        (
            "unix://relative?pass=Zq9Secret",
            "unix://(not shown: the URL does not parse)",
        ),
        (
            "REDIS://h:abc/?pass=54594Q@7453",
            "REDIS://(not shown: the URL does not parse)",
        ),
    ];
    for (url, want) in cases {
        assert_eq!(redact(url), want, "{url}");
    }
}

#[test]
fn the_password_redis_rs_connects_with_is_never_in_the_redacted_url() {
    for url in [
        "unix:///tmp/s.sock?pass=a&pass=Zq9Secret",
        "unix:///tmp/s.sock?p%61ss=Zq9Secret",
        "unix:///tmp/s.sock?%70ass=Zq9Secret&db=2",
        "redis+unix:///tmp/s.sock?pass=Zq9Secret",
        "redis://user:Zq9Secret@h:1",
        "redis://user:Zq9%53ecret@h:1",
    ] {
        let (info, _) = connection_info(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        let password = info.redis_settings().password().expect(url);
        let shown = redact(url);
        for piece in password.as_bytes().windows(3) {
            let piece = std::str::from_utf8(piece).unwrap();
            assert!(!shown.contains(piece), "{url} -> {shown} shows {piece:?}");
        }
    }
}
