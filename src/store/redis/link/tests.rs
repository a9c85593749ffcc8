use super::*;

#[test]
fn a_missing_right_is_named_as_an_acl_rule() {
    let cases = [
        (
            "User heat-observer has no permissions to run the 'evalsha' command",
            "user lacks +evalsha (NOPERM)",
        ),
        (
            "this user has no permissions to run the 'client|tracking' command",
            "user lacks +client|tracking (NOPERM)",
        ),
        (
            "No permissions to access a key",
            "user lacks access to a key it uses",
        ),
        (
            "this user has no permissions to access one of the channels used as arguments",
            "user lacks access to a channel",
        ),
    ];
    for (detail, want) in cases {
        assert!(
            lacks(detail).starts_with(want),
            "{detail}: {}",
            lacks(detail)
        );
    }
}

#[test]
fn a_cluster_that_is_down_is_said_so() {
    let reply = redis::parse_redis_value(b"-CLUSTERDOWN The cluster is down\r\n").unwrap();
    let e = reply.extract_error().unwrap_err();
    let error = store_error("10.0.0.5:7000", &e);
    assert_eq!(error.kind(), StoreErrorKind::Server);
    assert!(
        error
            .message()
            .starts_with("10.0.0.5:7000: the cluster is down (CLUSTERDOWN: The cluster is down): until a master serves"),
        "{error}"
    );
}

fn reset() -> RedisError {
    std::io::Error::from(std::io::ErrorKind::ConnectionReset).into()
}

#[test]
fn a_write_alone_does_not_prove_a_connection_that_then_breaks() {
    // A server that accepts and hangs up takes the write; the read that
    // follows breaks. Only a connection that has answered is reopened at
    // once after a break; this one backs off, or every look would open
    // a connection.
    let mut link: Link<()> = Link::new("10.0.0.5:6379".into(), None);
    let mut opens = 0;
    for _ in 0..3 {
        let sent = link.send(
            || {
                opens += 1;
                Ok(())
            },
            |_| Ok(()),
        );
        if sent.is_ok() {
            assert!(link.call(|| Ok(()), |_| Err::<(), _>(reset())).is_err());
        }
    }
    assert_eq!(opens, 1, "backing off after the first");

    // One that answered and then broke is reopened at once.
    let mut link: Link<()> = Link::new("10.0.0.5:6379".into(), None);
    let mut opens = 0;
    let mut open = || {
        opens += 1;
        Ok(())
    };
    link.call(&mut open, |_| Ok(())).unwrap();
    link.send(&mut open, |_| Ok(())).unwrap();
    let broke = link.call(&mut open, |_| Err::<(), _>(reset())).unwrap_err();
    assert_eq!(broke.kind(), StoreErrorKind::Io);
    link.send(&mut open, |_| Ok(())).unwrap();
    assert_eq!(opens, 2);
}
