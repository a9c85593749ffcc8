use super::*;

#[test]
fn fields_follow_the_contract_order_and_encoding() {
    let event = Event {
        plan_id: "p1".into(),
        symbol: "BTCUSDT".into(),
        obs_point: ObsPoint::PUBLISH_PLAN_POST,
        wait_ms: 612,
        heat_found: true,
        polls: 7,
        max_wait_ms: 2000,
        ts_ms: 1_769_600_000_000,
        decided_by: Detect::Push,
    };
    let fields = event.fields();
    let names: Vec<_> = fields.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, Event::FIELDS);
    let values: Vec<_> = fields.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(
        values,
        [
            "p1",
            "BTCUSDT",
            "publish_plan_post",
            "612",
            "1",
            "7",
            "2000",
            "1769600000000",
            "push"
        ]
    );
    let missed = Event {
        heat_found: false,
        ..event
    };
    assert_eq!(missed.fields()[4].1, "0");
}
