use super::*;

#[test]
fn histogram_buckets_are_inclusive_and_cumulative() {
    let mut h = WaitHistogram::default();
    for ms in [0, 50, 51, 2000, 10_001] {
        h.record(ms);
    }
    assert_eq!(h.count(), 5);
    assert_eq!(h.sum_ms(), 12_102);
    let cum: Vec<_> = h.cumulative().collect();
    assert_eq!(cum[0], (Some(50), 2));
    assert_eq!(cum[1], (Some(100), 3));
    assert_eq!(cum[8], (Some(2000), 4));
    assert_eq!(cum.last(), Some(&(None, 5)));
}

#[test]
fn outcomes_name_every_refusal_and_sum_to_the_calls() {
    let stats = Stats {
        accepted: 3,
        refused_disabled: 1,
        refused_config_error: 1,
        refused_invalid: 1,
        refused_queue_full: 1,
        refused_shut_down: 1,
        queued: 3,
        ..Stats::default()
    };
    assert_eq!(stats.refused(), 5);
    assert_eq!(stats.calls(), 8);
    assert!(stats.is_balanced());
    let names: Vec<_> = stats.outcomes().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"refused_config_error"), "{names:?}");
}
