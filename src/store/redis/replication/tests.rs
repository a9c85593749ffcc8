use redis::Value;

use super::{Role, answers_for, parse};

fn bulk(s: &str) -> Value {
    Value::BulkString(s.as_bytes().to_vec())
}

fn master_at(offset: i64) -> Value {
    Value::Array(vec![
        bulk("master"),
        Value::Int(offset),
        Value::Array(vec![Value::Array(vec![
            bulk("10.0.0.6"),
            bulk("7001"),
            bulk("50"),
        ])]),
    ])
}

fn replica(host: &str, port: i64, state: &str, applied: i64) -> Value {
    Value::Array(vec![
        bulk("slave"),
        bulk(host),
        Value::Int(port),
        bulk(state),
        Value::Int(applied),
    ])
}

fn node() -> (String, u16) {
    ("10.0.0.5".to_owned(), 7000)
}

#[test]
fn a_master_and_its_replica_are_read_from_their_role_replies() {
    assert_eq!(parse(&master_at(50)), Some(Role::Master { offset: 50 }));
    assert_eq!(
        parse(&replica("10.0.0.5", 7000, "connected", 23)),
        Some(Role::Replica {
            of: node(),
            connected: true,
            applied: 23
        })
    );
    let sentinel = Value::Array(vec![bulk("sentinel"), Value::Array(vec![])]);
    assert_eq!(parse(&sentinel), Some(Role::Other));
}

#[test]
fn a_role_reply_of_another_shape_is_none_not_a_guess() {
    for wrong in [
        Value::Int(1),
        Value::Array(vec![bulk("master"), bulk("50"), Value::Array(vec![])]),
        Value::Array(vec![bulk("master"), Value::Int(50)]),
        Value::Array(vec![
            bulk("slave"),
            bulk("h"),
            Value::Int(70_000),
            bulk("connected"),
            Value::Int(1),
        ]),
        Value::Array(vec![
            bulk("slave"),
            bulk("h"),
            Value::Int(7000),
            bulk("connected"),
        ]),
        Value::Array(vec![]),
    ] {
        assert_eq!(parse(&wrong), None, "{wrong:?}");
    }
}

#[test]
fn only_a_connected_replica_of_the_master_that_applied_its_writes_answers_for_it() {
    let written = 50;
    let role = |host: &str, port: i64, state: &str, applied: i64| {
        parse(&replica(host, port, state, applied)).unwrap()
    };
    assert!(answers_for(
        &role("10.0.0.5", 7000, "connected", 50),
        &node(),
        written
    ));
    assert!(answers_for(
        &role("10.0.0.5", 7000, "connected", 64),
        &node(),
        written
    ));
    // Behind: the key may be among the writes it has not applied.
    assert!(!answers_for(
        &role("10.0.0.5", 7000, "connected", 23),
        &node(),
        written
    ));
    // Not linked (syncing, or cut off): its offset may be stale.
    assert!(!answers_for(
        &role("10.0.0.5", 7000, "sync", 64),
        &node(),
        written
    ));
    assert!(!answers_for(
        &role("10.0.0.5", 7000, "connect", 64),
        &node(),
        written
    ));
    // Another master's replica: another stream of writes.
    assert!(!answers_for(
        &role("10.0.0.9", 7000, "connected", 64),
        &node(),
        written
    ));
    assert!(!answers_for(
        &role("10.0.0.5", 7001, "connected", 64),
        &node(),
        written
    ));
    // Promoted: it takes writes of its own.
    assert!(!answers_for(&Role::Master { offset: 64 }, &node(), written));
    assert!(!answers_for(&Role::Other, &node(), written));
}
