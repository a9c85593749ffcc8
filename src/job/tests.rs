use super::*;
use crate::refusal::{MAX_PLAN_ID_LEN, MAX_SYMBOL_LEN};

#[test]
fn a_job_is_two_cache_lines_with_its_channel_stamp() {
    assert_eq!(std::mem::size_of::<Job>(), 120);
}

#[test]
fn short_and_long_texts_round_trip() {
    let t = Instant::now();
    let long_id = "é".repeat(MAX_PLAN_ID_LEN / 2);
    let long_symbol = "S".repeat(MAX_SYMBOL_LEN);
    let cases = [
        ("plan-7", "ETHUSDT"),
        ("p", ""),
        ("6f1c1b8e-3f0a-4a8e-9d55-0b6f3c2a7e91", "1000SHIBUSDT"),
        (long_id.as_str(), long_symbol.as_str()),
        ("ü-plan", "€"),
    ];
    for (plan, symbol) in cases {
        let job = Job::new(
            ObsPoint::PUBLISH_PLAN_POST,
            plan,
            symbol,
            Duration::from_millis(2000),
            t,
        );
        assert_eq!((job.plan_id(), job.symbol()), (plan, symbol));
        let inline = matches!(job.text, Text::Inline { .. });
        assert_eq!(inline, plan.len() + symbol.len() <= INLINE, "{plan}");
    }
    let job = Job::new(ObsPoint::CREATE_APPLY_PLAN, "p", "S", Duration::ZERO, t);
    assert_eq!(job.point(), ObsPoint::CREATE_APPLY_PLAN);
    assert_eq!(job.deadline(), t);
}
