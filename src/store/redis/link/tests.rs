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
