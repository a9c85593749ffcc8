use std::time::Duration;

use super::*;
use crate::obs_point::ObsPoint;

fn job(start: Instant, wait_ms: u64) -> Job {
    Job::new(
        ObsPoint::PUBLISH_PLAN_POST,
        "p",
        "S",
        Duration::from_millis(wait_ms),
        start,
    )
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn the_earliest_deadline_follows_pushes_and_removals() {
    let t = Instant::now();
    let mut w = Watchlist::default();
    assert_eq!(w.earliest(), None);
    for wait in [300, 100, 200] {
        w.push(job(t, wait), format!("k{wait}"), None);
    }
    assert_eq!(w.earliest(), Some(t + ms(100)));
    assert!(w.due(t + ms(50), false, false, false).is_empty());
    assert_eq!(w.due(t, true, false, false), [0, 1, 2]);
    let taken = w.take(1);
    assert_eq!(taken.heat_key, "k100");
    assert_eq!(w.get(2).heat_key, "k200", "the others keep their slot");
    assert_eq!(w.earliest(), Some(t + ms(200)));
    assert_eq!(
        w.push(job(t, 150), "k150".into(), None),
        1,
        "a free slot again"
    );
    assert_eq!(w.earliest(), Some(t + ms(150)));
    assert_eq!(w.due(t + ms(250), false, false, false), [1, 2]);
    assert_eq!(w.clear(), 3);
    assert_eq!(w.earliest(), None);
}

#[test]
fn a_retried_job_keeps_a_new_deadline_and_is_due_on_ticks() {
    let t = Instant::now();
    let mut w = Watchlist::default();
    w.push(job(t, 100), "a".into(), None);
    assert_eq!(w.due(t + ms(100), false, false, false), [0]);
    w.looked(0);
    w.retry_until(0, t + ms(600));
    assert_eq!(w.earliest(), Some(t + ms(600)));
    assert!(w.due(t + ms(200), false, false, false).is_empty());
    assert_eq!(w.due(t + ms(200), false, true, false), [0], "a tick");
    assert_eq!(
        w.due(t + ms(600), false, false, false),
        [0],
        "its window's end"
    );
}

#[test]
fn marks_are_counted_and_listed_through_looks_and_removals() {
    let t = Instant::now();
    let mut w = Watchlist::default();
    w.push(job(t, 100), "a".into(), Some(Mark::Watch));
    w.push(job(t, 100), "b".into(), None);
    w.push(job(t, 100), "c".into(), Some(Mark::Watch));
    assert_eq!(w.marked(Mark::Watch), 2);
    assert!(
        w.due(t, false, false, false).is_empty(),
        "a check registers nothing"
    );
    assert_eq!(w.due_watch(), [0, 2]);
    w.mark(1, Mark::Check);
    w.mark(0, Mark::Check);
    assert_eq!(
        w.marked(Mark::Watch),
        2,
        "a look that registers also checks"
    );
    assert_eq!(w.due(t, false, false, false), [1]);
    w.looked(0);
    w.looked(1);
    assert_eq!((w.marked(Mark::Watch), w.marked(Mark::Check)), (1, 0));
    w.poll(2);
    assert_eq!(w.due(t, false, true, false), [2]);
    w.take(2);
    assert_eq!((w.marked(Mark::Watch), w.polled()), (0, 0));
    // A slot given to another job: what was listed of the last is not
    // taken for it.
    w.push(job(t, 100), "d".into(), None);
    assert!(w.due(t, false, true, false).is_empty());
    w.mark_all();
    assert_eq!((w.due_watch(), w.marked(Mark::Check)), (vec![0, 1, 2], 0));
}

#[test]
fn a_job_marked_to_register_is_not_taken_by_a_check() {
    let t = Instant::now();
    let mut w = Watchlist::default();
    w.push(job(t, 100), "a".into(), None);
    w.mark(0, Mark::Check);
    w.mark_all();
    assert!(
        w.due(t, false, false, false).is_empty(),
        "it would never register"
    );
    assert_eq!(
        w.due(t, false, false, true),
        [0],
        "no subscription: any look"
    );
    w.looked(0);
    w.mark_all();
    assert_eq!(w.due_watch(), [0]);
    assert_eq!(w.due(t + ms(100), false, false, false), [0], "its deadline");
}

#[test]
fn the_key_index_follows_pushes_and_removals() {
    let t = Instant::now();
    let mut w = Watchlist::default();
    w.push(job(t, 100), "a".into(), None);
    w.index_keys();
    w.push(job(t, 100), "b".into(), None);
    w.push(job(t, 100), "a".into(), None);
    w.push(job(t, 100), "c".into(), None);
    assert_eq!(w.find("a"), [0, 2]);
    let taken = w.take(0);
    assert_eq!(taken.heat_key, "a");
    assert_eq!((w.find("a"), w.find("c")), (&[2][..], &[3][..]));
    w.take(2);
    assert!(w.find("a").is_empty());
    assert_eq!(w.push(job(t, 100), "e".into(), None), 2);
    assert_eq!(w.find("e"), [2]);
    for (i, watch) in w.watches() {
        assert_eq!(w.find(&watch.heat_key), [i]);
    }
}
