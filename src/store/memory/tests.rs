use super::*;
use crate::event::Event;
use crate::obs_point::ObsPoint;

fn event(plan: &str) -> Event {
    Event {
        plan_id: plan.into(),
        symbol: "S".into(),
        obs_point: ObsPoint::PUBLISH_PLAN_POST,
        wait_ms: 1,
        heat_found: true,
        polls: 1,
        max_wait_ms: 2000,
        ts_ms: 0,
        decided_by: crate::Detect::Poll,
    }
}

fn spec(maxlen: u64) -> StreamSpec {
    StreamSpec {
        name: "s".into(),
        maxlen,
        dedupe_ttl: Duration::from_secs(60),
    }
}

#[test]
fn claims_dedupe_recognise_their_owner_and_trim() {
    let mut store = MemoryStore::new();
    let (a, b, c) = (event("a"), event("b"), event("c"));
    let claim = |e, key, owner| Claim {
        dedupe_key: key,
        owner,
        event: e,
    };
    let first = store
        .claim_and_append(&spec(2), &[claim(&a, "d:a", "o1"), claim(&b, "d:b", "o1")])
        .unwrap();
    assert_eq!(first, [Claimed::Appended, Claimed::Appended]);
    // The same owner retrying (reply lost) is not a duplicate; another is.
    let again = store
        .claim_and_append(&spec(2), &[claim(&a, "d:a", "o1"), claim(&a, "d:a", "o2")])
        .unwrap();
    assert_eq!(again, [Claimed::Appended, Claimed::Duplicate]);
    assert_eq!(store.stream_len("s"), 2);
    store
        .claim_and_append(&spec(2), &[claim(&c, "d:c", "o1")])
        .unwrap();
    let ids: Vec<_> = store
        .entries("s")
        .iter()
        .map(|e| e.field("plan_id").unwrap().to_owned())
        .collect();
    assert_eq!(ids, ["b", "c"]);
    let ttl = store.ttl("d:a").unwrap();
    assert!(ttl <= Duration::from_secs(60) && ttl > Duration::from_secs(50));
}
