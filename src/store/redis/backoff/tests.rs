use super::*;

#[test]
fn pauses_grow_from_the_base_to_the_cap_with_jitter() {
    let mut b = Backoff::with_seed(7);
    let now = Instant::now();
    assert_eq!(b.wait(now), None);
    let pauses: Vec<Duration> = (0..10).map(|_| b.failed(now)).collect();
    for (i, p) in pauses.iter().enumerate() {
        let full = BASE.saturating_mul(1 << i).min(CAP);
        assert!(
            *p >= full / 2 && *p < full,
            "pause {i}: {p:?} outside [{:?}, {full:?})",
            full / 2
        );
    }
    assert!(b.wait(now).is_some());
    b.succeeded();
    assert_eq!(b.wait(now), None);
    assert!(b.failed(now) < BASE);
}

#[test]
fn two_backoffs_do_not_retry_in_lockstep() {
    let now = Instant::now();
    let (mut a, mut b) = (Backoff::with_seed(1), Backoff::with_seed(2));
    let same = (0..8).filter(|_| a.failed(now) == b.failed(now)).count();
    assert!(same < 8);
}
