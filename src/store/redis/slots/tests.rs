use super::*;

#[test]
fn slots_match_redis() {
    // Values from `CLUSTER KEYSLOT` on Redis 7.0.15.
    for (key, slot) in [
        ("a", 15495),
        ("b", 3300),
        ("c", 7365),
        ("d", 11298),
        ("foo", 12182),
        ("", 0),
    ] {
        assert_eq!(key_slot(key.as_bytes()), slot, "{key:?}");
    }
    assert_eq!(key_slot(b"{b}:anything"), 3300, "hash tag");
    // An empty tag hashes the whole key; figures from Python's
    // `binascii.crc_hqx(key, 0) % 16384` (the same CRC16/XMODEM).
    assert_eq!(
        key_slot(b"x{}y"),
        16116,
        "an empty tag hashes the whole key"
    );
    assert_eq!(key_slot(b"{}"), 15257);
    assert_eq!(
        key_slot(b"{quantum:stream:apply.heat.observed}:dedupe:p:1"),
        key_slot(b"quantum:stream:apply.heat.observed")
    );
}

#[test]
fn the_map_finds_the_master_of_each_slot() {
    let node = |port: i64| {
        Value::Array(vec![
            Value::BulkString(b"127.0.0.1".to_vec()),
            Value::Int(port),
        ])
    };
    let range =
        |a: i64, b: i64, port: i64| Value::Array(vec![Value::Int(a), Value::Int(b), node(port)]);
    let reply = Value::Array(vec![
        range(5461, 10922, 7002),
        range(0, 5460, 7001),
        range(10923, 16383, 7001),
    ]);
    let map = SlotMap::from_reply(reply, "10.9.9.9").unwrap();
    assert_eq!(map.nodes(), 2);
    assert_eq!(
        map.node(map.node_of(0).unwrap()),
        &("127.0.0.1".to_owned(), 7001)
    );
    assert_eq!(map.node(map.node_of(5461).unwrap()).1, 7002);
    assert_eq!(map.node(map.node_of(16383).unwrap()).1, 7001);
    let partial = SlotMap::from_reply(Value::Array(vec![range(0, 10, 7001)]), "h").unwrap();
    assert_eq!(partial.node_of(11), None);
    assert!(SlotMap::from_reply(Value::Int(1), "h").is_err());
}

#[test]
fn moves_name_the_ranges_whose_master_changed() {
    let range = |a: i64, b: i64, port: i64| {
        Value::Array(vec![
            Value::Int(a),
            Value::Int(b),
            Value::Array(vec![Value::BulkString(b"h".to_vec()), Value::Int(port)]),
        ])
    };
    let before = Value::Array(vec![range(0, 8191, 1), range(8192, 16383, 2)]);
    let after = Value::Array(vec![
        range(0, 99, 3),
        range(100, 8191, 1),
        range(8192, 16383, 2),
    ]);
    let (before, after) = (
        SlotMap::from_reply(before, "h").unwrap(),
        SlotMap::from_reply(after, "h").unwrap(),
    );
    let moves = before.moves(&after);
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].to_string(), "slots 0-99 from h:1 to h:3");
    assert_eq!(Move::kind(&moves), "a reshard");
    assert!(after.moves(&after).is_empty());
}

#[test]
fn a_master_replaced_by_its_replica_is_said_to_have_failed_over() {
    let node = |port: i64| Value::Array(vec![Value::BulkString(b"h".to_vec()), Value::Int(port)]);
    let range = |a: i64, b: i64, nodes: Vec<Value>| {
        Value::Array([vec![Value::Int(a), Value::Int(b)], nodes].concat())
    };
    let before = Value::Array(vec![
        range(0, 8191, vec![node(1), node(11)]),
        range(8192, 16383, vec![node(2), node(12)]),
    ]);
    // 1 failed over to its replica 11; 2 gave 100 slots to 11.
    let after = Value::Array(vec![
        range(0, 8291, vec![node(11)]),
        range(8292, 16383, vec![node(2), node(12)]),
    ]);
    let (before, after) = (
        SlotMap::from_reply(before, "h").unwrap(),
        SlotMap::from_reply(after, "h").unwrap(),
    );
    let moves = before.moves(&after);
    let said: Vec<String> = moves.iter().map(ToString::to_string).collect();
    assert_eq!(
        said,
        [
            "slots 0-8191 from h:1 to h:11 (its replica)",
            "slots 8192-8291 from h:2 to h:11"
        ]
    );
    assert_eq!(Move::kind(&moves), "a failover and a reshard");
    assert_eq!(after.slots_of(&("h".into(), 11)), 8292);
    assert_eq!(
        before.slots_of(&("h".into(), 11)),
        0,
        "a replica serves none"
    );
    assert_eq!(Move::kind(&moves[..1]), "a failover");
}

#[test]
fn an_empty_or_null_host_is_the_answering_node_and_an_unknown_one_no_node() {
    let range = |a: i64, b: i64, host: Value, port: i64| {
        Value::Array(vec![
            Value::Int(a),
            Value::Int(b),
            Value::Array(vec![host, Value::Int(port)]),
        ])
    };
    let reply = Value::Array(vec![
        range(0, 99, Value::BulkString(Vec::new()), 7001),
        range(100, 199, Value::Nil, 7002),
        range(200, 299, Value::BulkString(b"?".to_vec()), 7003),
    ]);
    let map = SlotMap::from_reply(reply, "10.0.0.5").unwrap();
    assert_eq!(
        map.node(map.node_of(0).unwrap()),
        &("10.0.0.5".into(), 7001)
    );
    assert_eq!(
        map.node(map.node_of(150).unwrap()),
        &("10.0.0.5".into(), 7002)
    );
    assert_eq!(map.node_of(250), None, "an unknown master serves nothing");
    assert_eq!(map.nodes(), 2);
}

#[test]
fn the_map_keeps_each_masters_replicas_and_skips_unknown_ones() {
    let node = |host: &str, port: i64| {
        Value::Array(vec![
            Value::BulkString(host.as_bytes().to_vec()),
            Value::Int(port),
            Value::BulkString(b"id".to_vec()),
        ])
    };
    let reply = Value::Array(vec![
        Value::Array(vec![
            Value::Int(0),
            Value::Int(8191),
            node("10.0.0.1", 7000),
            node("10.0.0.4", 7003),
            node("?", 7009),
        ]),
        Value::Array(vec![
            Value::Int(8192),
            Value::Int(16383),
            node("10.0.0.2", 7001),
        ]),
    ]);
    let map = SlotMap::from_reply(reply, "h").unwrap();
    assert_eq!(
        map.replicas_of(&("10.0.0.1".to_owned(), 7000)),
        [("10.0.0.4".to_owned(), 7003)]
    );
    assert!(map.replicas_of(&("10.0.0.2".to_owned(), 7001)).is_empty());
    assert!(map.replicas_of(&("10.0.0.9".to_owned(), 1)).is_empty());
}
