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
            .starts_with("10.0.0.5:7000: the cluster is down (CLUSTERDOWN): a master failed"),
        "{error}"
    );
}
