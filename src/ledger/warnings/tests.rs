use super::*;

const EVERY: Duration = Duration::from_secs(10);

fn io() -> StoreError {
    StoreError::new(StoreErrorKind::Io, "127.0.0.1:6379: connection reset")
}

#[test]
fn the_first_is_due_then_the_interval_holds_the_rest_until_forced() {
    let now = Instant::now();
    let mut t = Throttled::default();
    t.add(1, Some("a".into()), 1);
    assert_eq!(t.due(now, EVERY, false), Some((1, "a".into(), 1)));
    t.add(5, Some("b".into()), 2);
    t.add(1, None, 4);
    assert_eq!(t.due(now, EVERY, false), None);
    assert_eq!(t.due(now + EVERY, EVERY, false), Some((6, "b".into(), 2)));
    t.add(2, None, 0);
    assert_eq!(t.due(now + EVERY, EVERY, true), Some((2, "b".into(), 0)));
    assert_eq!(t.due(now + EVERY, EVERY, true), None, "nothing pending");
}

#[test]
fn a_permanent_refusal_between_answered_calls_is_no_outage_and_never_flapping() {
    // Writes refused for a right while looks answer: said as the
    // operator's error every interval, never as outages and recoveries.
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    let nope = StoreError::new(StoreErrorKind::Permission, "h:1: user lacks +xadd on s");
    let mut lines = Vec::new();
    for k in 0..40u64 {
        let at = t + ms_(500 * k);
        lines.extend(w.failed(0, Op::Write, &nope, at));
        lines.extend(w.answered(0, Op::Write, at + ms_(10)));
        lines.extend(w.due(at + ms_(20), false));
    }
    let text: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert!(
        text.iter()
            .all(|l| !l.contains("flapping") && !l.contains("recovered")),
        "{text:#?}"
    );
    let said = text
        .iter()
        .filter(|l| l.contains("user lacks +xadd"))
        .count();
    assert_eq!(said, 2, "once per 10 s interval over 20 s: {text:#?}");
}

#[test]
fn a_rerun_with_reused_plan_ids_is_said_once_per_interval() {
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    let mut lines = Vec::new();
    // 100 new events, then a rerun: 1,000 duplicates over 30 s.
    for i in 0..100u64 {
        lines.extend(w.recorded(false, &format!("p{i}"), t + ms_(i)));
    }
    lines.extend(w.due(t + EVERY + ms_(1), false));
    assert!(lines.is_empty(), "new events say nothing: {lines:?}");
    for i in 0..1000u64 {
        let at = t + EVERY * 2 + ms_(30 * i);
        lines.extend(w.recorded(true, &format!("p{}", i % 100), at));
        lines.extend(w.due(at, false));
    }
    lines.extend(w.due(t + EVERY * 6, true));
    let said: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(said.len(), 3, "once per 10 s over 30 s: {said:#?}");
    // All duplicates: "deduplicated N of N", about 333 an interval.
    let n: Vec<&str> = said[0]
        .split_whitespace()
        .skip(3)
        .step_by(2)
        .take(2)
        .collect();
    assert_eq!(n[0], n[1], "{}", said[0]);
    assert!(
        (330..=340).contains(&n[0].parse::<u32>().unwrap()),
        "{}",
        said[0]
    );
    assert!(
        said[0].contains("plan ids reused? (e.g. plan \"p0\""),
        "{}",
        said[0]
    );
    // Some duplicates among mostly new events (two Apply processes
    // sharing a Redis) are not a rerun.
    let mut w = Warnings::new(EVERY, 16);
    for i in 0..100u64 {
        let _ = w.recorded(i % 10 == 0, "p", t + ms_(i));
    }
    assert!(w.due(t + EVERY * 2, true).is_empty());
}

#[test]
fn an_interval_of_any_length_never_overflows_the_clock() {
    // `Duration::MAX` once passed the builder and panicked every worker
    // (and `shutdown` on the caller) at `last + every`.
    let t = Instant::now();
    let mut w = Warnings::new(Duration::MAX, 16);
    let first = w.failed(0, Op::Look, &io(), t);
    assert_eq!(first.len(), 1, "the first failure is said");
    assert!(w.failed(0, Op::Look, &io(), t + EVERY).is_empty());
    let mut later = w.answered(0, Op::Look, t + EVERY * 2);
    later.extend(w.due(t + EVERY * 3, false));
    later.extend(w.due(t + EVERY * 3, true));
    assert!(
        later.iter().any(|(_, line)| line.contains("recovered")),
        "{later:?}"
    );
}

#[test]
fn one_outage_on_four_workers_gives_one_failure_line_and_one_recovery() {
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    let mut lines = Vec::new();
    // Every worker fails, some twice, and they recover one by one.
    for (ms, worker) in [(0, 0), (1, 1), (2, 2), (3, 3), (50, 0), (60, 1)] {
        lines.extend(w.failed(worker, Op::Look, &io(), t + ms_(ms)));
    }
    for (ms, worker) in [(100, 0), (110, 1), (120, 2)] {
        let got = w.answered(worker, Op::Look, t + ms_(ms));
        assert!(got.is_empty(), "worker 3 still fails: {got:?}");
    }
    lines.extend(w.idle(3, t + ms_(130)));
    assert_eq!(
        lines.len(),
        1,
        "held until no call failed for a while: {lines:?}"
    );
    let held = w.due(t + ms_(130) + RECOVERY_HOLD - ms_(1), false);
    assert!(held.is_empty(), "{held:?}");
    lines.extend(w.due(t + ms_(130) + RECOVERY_HOLD, false));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].1.contains("failed 1 time(s) on 1 worker(s)"),
        "{lines:?}"
    );
    assert!(
        lines[1].1.contains(
            "recovered after 6 error(s) on 4 worker(s) in 0.1 s; 5 of them not in an \
             earlier warning, the last: heat key check:"
        ),
        "the rest with the recovery: {lines:?}"
    );
}

#[test]
fn a_dead_master_failing_looks_while_writes_answer_is_one_outage() {
    // On a cluster: the looks fail for a master's keys until its
    // replica takes over, 2 s later; the event writes, to another
    // master, answer all along.
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    let mut lines = Vec::new();
    for k in 0..20 {
        let at = t + ms_(100 * k);
        lines.extend(w.failed(0, Op::Look, &io(), at));
        lines.extend(w.answered(0, Op::Write, at + ms_(20)));
        lines.extend(w.due(at + ms_(60), false));
    }
    lines.extend(w.answered(0, Op::Look, t + ms_(2000)));
    lines.extend(w.due(t + ms_(2000) + RECOVERY_HOLD, false));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[1]
            .1
            .contains("recovered after 20 error(s) on 1 worker(s) in 2.0 s")
    );
    assert!(!lines[1].1.contains("outages"), "{lines:?}");
}

#[test]
fn a_flapping_store_gives_at_most_one_failure_and_one_recovery_line_per_interval() {
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    let mut lines = Vec::new();
    // A write paused again and again: ten outages of 50 ms, each past the
    // hold of the one before.
    let gap = RECOVERY_HOLD + ms_(100);
    for k in 0..10u32 {
        let at = t + gap * k;
        lines.extend(w.failed(0, Op::Write, &io(), at));
        lines.extend(w.failed(1, Op::Look, &io(), at + ms_(1)));
        lines.extend(w.answered(0, Op::Write, at + ms_(50)));
        lines.extend(w.answered(1, Op::Look, at + ms_(51)));
        lines.extend(w.due(at + ms_(60), false));
        lines.extend(w.due(at + ms_(51) + RECOVERY_HOLD, false));
    }
    assert_eq!(lines.len(), 2, "{lines:?}");
    // The held outages are said once the interval has passed.
    let first_recovery = t + ms_(51) + RECOVERY_HOLD;
    let later = w.due(first_recovery + EVERY - ms_(1), false);
    assert_eq!(later.len(), 0, "not yet: {later:?}");
    let later = w.due(first_recovery + EVERY, false);
    assert_eq!(later.len(), 1, "{later:?}");
    assert!(
        later[0]
            .1
            .contains("recovered after 18 error(s) on 2 worker(s)")
            && later[0].1.contains("(9 outages: the store is flapping)")
            && later[0]
                .1
                .contains("; 18 of them not in an earlier warning"),
        "{later:?}"
    );
    // Every failure is in exactly one line.
    let said: u64 = lines
        .iter()
        .chain(&later)
        .map(|(_, l)| {
            let count = |pat: &str| {
                l.split(pat)
                    .next()
                    .and_then(|head| head.rsplit(' ').next()?.parse().ok())
            };
            match l.contains("recovered") {
                true => count(" of them not in an earlier warning").unwrap_or(0),
                false => count(" time(s)").unwrap_or(0),
            }
        })
        .sum();
    assert_eq!(said, 20, "{lines:?} {later:?}");
    // A new outage after a quiet interval is said at once again.
    let again = w.failed(0, Op::Write, &io(), t + EVERY * 3);
    assert_eq!(again.len(), 1, "{again:?}");
}

#[test]
fn a_worker_going_idle_does_not_declare_a_recovery_nobody_saw() {
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    w.failed(0, Op::Look, &io(), t);
    assert!(w.idle(0, t).is_empty(), "no call answered yet");
    let back = w.answered(1, Op::Look, t + ms_(5));
    assert!(back.is_empty(), "held: {back:?}");
    let back = w.due(t + ms_(5) + RECOVERY_HOLD, false);
    assert!(back.iter().any(|(_, l)| l.contains("recovered")));
}

#[test]
fn a_dead_masters_looks_failing_between_other_masters_answered_looks_are_one_outage() {
    // On a cluster, in push: a look holds one key or a few, so the looks
    // of a dead master's keys fail while the looks of the others' keys
    // answer in between, every few ms, on both workers, until its replica
    // takes over 2.5 s later. Once read as 11 outages ("the store is
    // flapping"), and a second warning 10 s on.
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    let mut lines = Vec::new();
    for k in 0..500u64 {
        let at = t + ms_(5 * k);
        let worker = (k % 2) as usize;
        if k % 3 == 0 {
            lines.extend(w.failed(worker, Op::Look, &io(), at));
        } else {
            lines.extend(w.answered(worker, Op::Look, at));
        }
        lines.extend(w.due(at, false));
    }
    // Over: every look answers.
    for k in 0..2000u64 {
        let at = t + ms_(2500 + 10 * k);
        lines.extend(w.answered((k % 2) as usize, Op::Look, at));
        lines.extend(w.due(at, false));
    }
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert_eq!(lines[0].0, Level::Warn);
    assert!(
        lines[1]
            .1
            .contains("recovered after 167 error(s) on 2 worker(s) in 2.5 s;")
            && !lines[1].1.contains("outages"),
        "{lines:#?}"
    );
}

#[test]
fn an_operators_error_is_said_every_interval_with_its_reason() {
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    let auth = StoreError::new(
        StoreErrorKind::Auth,
        "127.0.0.1:6379: authentication failed for user \"default\"",
    );
    let mut lines = Vec::new();
    for s in 0..35 {
        lines.extend(w.failed(0, Op::Look, &auth, t + Duration::from_secs(s)));
        lines.extend(w.due(t + Duration::from_secs(s), false));
    }
    assert_eq!(lines.len(), 4, "at 0, 10, 20 and 30 s: {lines:?}");
    assert!(lines.iter().all(|(level, l)| *level == Level::Error
        && l.contains("cannot use Redis: 127.0.0.1:6379: authentication failed for user \"default\"; check the user and password")));
}

#[test]
fn invalid_input_is_counted_per_reason_each_with_an_example() {
    let t = Instant::now();
    let mut w = Warnings::new(EVERY, 16);
    let mut counts = [0; InvalidInput::KINDS];
    let mut examples: [Option<String>; InvalidInput::KINDS] = Default::default();
    let control = InvalidInput::ControlCharacter { field: "plan_id" }.index();
    let empty = InvalidInput::EmptySymbol.index();
    counts[control] = 12;
    counts[empty] = 3;
    examples[control] = Some(example("p\n1"));
    examples[empty] = Some(example(&"x".repeat(40)));
    let lines = w.refusals(0, counts, &mut examples, t, false);
    assert_eq!(lines.len(), 1);
    let line = &lines[0].1;
    assert!(line.contains("refused 15 invalid observation(s)"), "{line}");
    assert!(
        line.contains("3 symbol is empty (e.g. plan \"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...\")"),
        "{line}"
    );
    assert!(
        line.contains("12 plan_id holds a control or format character (e.g. plan \"p\\n1\")"),
        "{line}"
    );
}

fn ms_(n: u64) -> Duration {
    Duration::from_millis(n)
}
