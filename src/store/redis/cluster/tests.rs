use std::time::{Duration, Instant};

use redis::Value;

use super::{Redirect, RedisClusterConnector, SLOT_LINE_EVERY, SaidMaps, redirect};
use crate::config::Config;
use crate::store::redis::slots::SlotMap;

fn map(split: i64) -> SlotMap {
    let range = |a: i64, b: i64, port: i64| {
        Value::Array(vec![
            Value::Int(a),
            Value::Int(b),
            Value::Array(vec![Value::BulkString(b"h".to_vec()), Value::Int(port)]),
        ])
    };
    SlotMap::from_reply(
        Value::Array(vec![range(0, split - 1, 1), range(split, 16383, 2)]),
        "h",
    )
    .unwrap()
}

#[test]
fn a_reshard_in_many_steps_is_said_at_once_then_once_per_interval() {
    let mut said = SaidMaps::default();
    let t = Instant::now();
    said.newer = Some(map(8192));
    assert!(said.due(t).is_empty(), "the first map is no change");
    said.newer = Some(map(8100));
    assert_eq!(
        said.due(t)[0].to_string(),
        "slots 8100-8191 from h:1 to h:2"
    );
    // The steps that follow, within the interval: held, then said as
    // one change.
    for (i, split) in [8000, 7900, 7800].into_iter().enumerate() {
        said.newer = Some(map(split));
        assert!(said.due(t + Duration::from_secs(i as u64 + 1)).is_empty());
    }
    let moves = said.due(t + SLOT_LINE_EVERY);
    assert_eq!(moves.len(), 1);
    assert_eq!(moves[0].to_string(), "slots 7800-8099 from h:1 to h:2");
    assert!(said.due(t + 3 * SLOT_LINE_EVERY).is_empty(), "said once");
}

#[test]
fn an_ask_names_the_importing_node_by_host_and_port() {
    let error = |reply: &[u8]| {
        redis::parse_redis_value(reply)
            .unwrap()
            .extract_error()
            .unwrap_err()
    };
    let ask = redirect(&error(b"-ASK 7933 127.0.0.1:22292\r\n"));
    assert!(
        matches!(&ask, Some(Redirect::Ask((host, 22292))) if host == "127.0.0.1"),
        "not the slot as a port"
    );
    let ask = redirect(&error(b"-ASK 1 ::1:7000\r\n"));
    assert!(matches!(&ask, Some(Redirect::Ask((host, 7000))) if host == "::1"));
    assert!(matches!(
        redirect(&error(b"-MOVED 7933 127.0.0.1:22292\r\n")),
        Some(Redirect::Moved(Some((_, 22292))))
    ));
    assert!(redirect(&error(b"-ERR other\r\n")).is_none());
}

#[test]
fn bare_nodes_take_the_first_nodes_settings_and_urls_must_agree_with_it() {
    let new = |nodes: &[&str]| RedisClusterConnector::new(nodes, &Config::default());
    // What `P28_LATE_OBS_REDIS_URL=redis://:pw@h1:7000,h2:7000` gives.
    let connector = new(&["redis://u:pw@h1:7000/0", "h2:7000", " h3:7000 "]).unwrap();
    assert_eq!(
        connector.nodes.seeds,
        [
            ("h1".to_owned(), 7000),
            ("h2".to_owned(), 7000),
            ("h3".to_owned(), 7000)
        ]
    );
    assert_eq!(
        connector.nodes.template.redis_settings().password(),
        Some("pw")
    );
    assert!(new(&["redis://:pw@h1:7000", "redis://:pw@h2:7000"]).is_ok());
    for (nodes, why) in [
        (
            &["redis://:pw@h1:7000", "redis://:other@h2:7000"][..],
            "differ",
        ),
        (&["redis://:pw@h1:7000", "redis://h2:7000"][..], "differ"),
        (
            &["redis://u:pw@h1:7000", "redis://v:pw@h2:7000"][..],
            "differ",
        ),
        (&["redis://h1:7000/1", "redis://h2:7000/2"][..], "differ"),
        (&["h1:7000", "unix:///tmp/redis.sock"][..], "unix socket"),
        (&[][..], "no cluster node"),
    ] {
        let error = new(nodes).unwrap_err().to_string();
        assert!(error.contains(why), "{nodes:?}: {error}");
        assert!(!error.contains("pw") && !error.contains("other"), "{error}");
    }
}
