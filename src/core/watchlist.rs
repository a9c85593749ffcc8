//! [`Watchlist`]: the jobs one worker watches. Their deadlines are kept
//! apart, in a compact vector, and the earliest is cached: a worker wakes
//! every 10 ms to take new jobs, and scanning thousands of 150-byte entries
//! on each wake streamed about a megabyte through caches it shares with the
//! callers. A wake with nothing due reads one cached value.

use std::collections::HashMap;
use std::time::Instant;

use crate::job::Job;

/// Why a job is to be looked at by the next look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mark {
    /// Pushing: a look that registers interest in its key (when taken,
    /// after a loss).
    Watch,
    /// A look that confirms a message; it registers nothing.
    Check,
}

/// A job being watched.
pub(crate) struct Watch {
    pub(crate) job: Job,
    pub(crate) heat_key: String,
    /// Successful looks so far.
    pub(crate) polls: u32,
    /// Its deadline look failed: it is no longer watched, only looked at
    /// again until the retry window ends (its kept deadline).
    pub(crate) retrying: bool,
    /// When a message named its key, while a look is to confirm it.
    pub(crate) pushed_at: Option<Instant>,
    /// Pushing, a message about its key was not a write (the server
    /// dropped the key from its full tracking table): it is looked at each
    /// tick from then on, as when polling, without registering again.
    pub(crate) polled: bool,
    /// To be looked at by the next look of its kind.
    mark: Option<Mark>,
}

#[derive(Default)]
pub(crate) struct Watchlist {
    watches: Vec<Watch>,
    /// `deadlines[i]` is when `watches[i]` is looked at for the last time:
    /// its job's deadline, or the end of its retry window.
    deadlines: Vec<Instant>,
    /// The earliest deadline, `None` if empty or stale.
    earliest: Option<Instant>,
    stale: bool,
    /// How many watches are marked, per kind.
    watch_marks: usize,
    check_marks: usize,
    /// How many watches are being retried, and polled.
    retrying: usize,
    polled: usize,
    /// Where each heat key's jobs are, so that a message naming a key finds
    /// them at once. `None` when polling.
    by_key: Option<HashMap<String, Vec<usize>>>,
}

impl Watchlist {
    pub(crate) fn len(&self) -> usize {
        self.watches.len()
    }

    /// Keeps an index by heat key from now on (push detection).
    pub(crate) fn index_keys(&mut self) {
        if self.by_key.is_none() {
            let mut by_key: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, w) in self.watches.iter().enumerate() {
                by_key.entry(w.heat_key.clone()).or_default().push(i);
            }
            self.by_key = Some(by_key);
        }
    }

    /// Indices of the jobs watching `heat_key` (push detection only).
    pub(crate) fn find(&self, heat_key: &str) -> &[usize] {
        let found = self.by_key.as_ref().and_then(|m| m.get(heat_key));
        found.map_or(&[], Vec::as_slice)
    }

    pub(crate) fn push(&mut self, job: Job, heat_key: String, mark: Option<Mark>) {
        if let Some(by_key) = &mut self.by_key {
            by_key
                .entry(heat_key.clone())
                .or_default()
                .push(self.watches.len());
        }
        let deadline = job.deadline();
        self.watches.push(Watch {
            job,
            heat_key,
            polls: 0,
            retrying: false,
            pushed_at: None,
            polled: false,
            mark: None,
        });
        if let Some(mark) = mark {
            self.mark(self.watches.len() - 1, mark);
        }
        self.deadlines.push(deadline);
        if !self.stale {
            self.earliest = Some(self.earliest.map_or(deadline, |e| e.min(deadline)));
        }
    }

    /// The earliest kept deadline of the jobs watched.
    pub(crate) fn earliest(&mut self) -> Option<Instant> {
        if self.stale {
            self.earliest = self.deadlines.iter().min().copied();
            self.stale = false;
        }
        self.earliest
    }

    /// How many watches are marked for a look of `kind`.
    pub(crate) fn marked(&self, kind: Mark) -> usize {
        match kind {
            Mark::Watch => self.watch_marks,
            Mark::Check => self.check_marks,
        }
    }

    fn count(&mut self, mark: Option<Mark>, up: bool) {
        let counter = match mark {
            Some(Mark::Watch) => &mut self.watch_marks,
            Some(Mark::Check) => &mut self.check_marks,
            None => return,
        };
        if up {
            *counter += 1;
        } else {
            *counter -= 1;
        }
    }

    /// Marks watch `i` for the next look of `kind`; a look that registers
    /// answers a check as well.
    pub(crate) fn mark(&mut self, i: usize, kind: Mark) {
        let old = self.watches[i].mark;
        if old == Some(Mark::Watch) || old == Some(kind) {
            return;
        }
        self.count(old, false);
        self.watches[i].mark = Some(kind);
        self.count(Some(kind), true);
    }

    /// Marks every watch for a look that registers (after a loss), as
    /// pushed afresh: none is polled any more.
    pub(crate) fn mark_all(&mut self) {
        for w in &mut self.watches {
            w.mark = Some(Mark::Watch);
            w.polled = false;
        }
        self.watch_marks = self.watches.len();
        self.check_marks = 0;
        self.polled = 0;
    }

    /// Indices (ascending) of the jobs marked for a look that registers.
    pub(crate) fn due_watch(&self) -> Vec<usize> {
        if self.watch_marks == 0 {
            return Vec::new();
        }
        (0..self.len())
            .filter(|&i| self.watches[i].mark == Some(Mark::Watch))
            .collect()
    }

    /// Watch `i` is looked at each tick from now on.
    pub(crate) fn poll(&mut self, i: usize) {
        if !self.watches[i].polled {
            self.watches[i].polled = true;
            self.polled += 1;
        }
    }

    /// How many watches are polled though pushing.
    pub(crate) fn polled(&self) -> usize {
        self.polled
    }

    /// Indices (ascending) of the jobs to look at now, without registering:
    /// all of them when `all`, else those marked for a check (and those
    /// marked to register, with `watch_marks`: no subscription to register
    /// with), those whose kept deadline has passed, and, when `ticked`,
    /// those being retried or polled.
    pub(crate) fn due(
        &mut self,
        now: Instant,
        all: bool,
        ticked: bool,
        watch_marks: bool,
    ) -> Vec<usize> {
        if all {
            return (0..self.len()).collect();
        }
        let deadline_due = self.earliest().is_some_and(|e| e <= now);
        let ticked = ticked && self.retrying + self.polled > 0;
        let marks = self.check_marks + if watch_marks { self.watch_marks } else { 0 };
        if !deadline_due && marks == 0 && !ticked {
            return Vec::new();
        }
        (0..self.len())
            .filter(|&i| {
                let w = &self.watches[i];
                w.mark == Some(Mark::Check)
                    || (watch_marks && w.mark == Some(Mark::Watch))
                    || self.deadlines[i] <= now
                    || (ticked && (w.retrying || w.polled))
            })
            .collect()
    }

    /// Clears watch `i`'s mark (it was looked at).
    pub(crate) fn looked(&mut self, i: usize) {
        let old = self.watches[i].mark.take();
        self.count(old, false);
    }

    pub(crate) fn get(&self, i: usize) -> &Watch {
        &self.watches[i]
    }

    pub(crate) fn get_mut(&mut self, i: usize) -> &mut Watch {
        &mut self.watches[i]
    }

    /// How many watches are being retried.
    pub(crate) fn retrying(&self) -> usize {
        self.retrying
    }

    /// The kept deadline of watch `i`.
    pub(crate) fn deadline(&self, i: usize) -> Instant {
        self.deadlines[i]
    }

    /// Watch `i`'s deadline look failed: it is retried until `until` (kept
    /// as its deadline here; its job keeps its own).
    pub(crate) fn retry_until(&mut self, i: usize, until: Instant) {
        self.deadlines[i] = until;
        if !self.watches[i].retrying {
            self.watches[i].retrying = true;
            self.retrying += 1;
        }
        self.stale = true;
    }

    /// Removes entry `i`; the last entry takes its place, so remove in
    /// descending index order.
    pub(crate) fn take(&mut self, i: usize) -> Watch {
        self.deadlines.swap_remove(i);
        self.stale = true;
        let last = self.watches.len() - 1;
        let watch = self.watches.swap_remove(i);
        self.count(watch.mark, false);
        self.retrying -= usize::from(watch.retrying);
        self.polled -= usize::from(watch.polled);
        if let Some(by_key) = &mut self.by_key {
            unindex(by_key, &watch.heat_key, i);
            // The last entry moved into slot `i`.
            if i != last {
                let moved = &self.watches[i].heat_key;
                if let Some(at) = by_key
                    .get_mut(moved)
                    .and_then(|v| v.iter_mut().find(|j| **j == last))
                {
                    *at = i;
                }
            }
        }
        watch
    }

    /// Removes everything; returns how many were watched.
    pub(crate) fn clear(&mut self) -> usize {
        let n = self.len();
        self.watches.clear();
        self.deadlines.clear();
        self.earliest = None;
        self.stale = false;
        self.watch_marks = 0;
        self.check_marks = 0;
        self.retrying = 0;
        self.polled = 0;
        if let Some(by_key) = &mut self.by_key {
            by_key.clear();
        }
        n
    }
}

fn unindex(by_key: &mut HashMap<String, Vec<usize>>, key: &str, i: usize) {
    if let Some(at) = by_key.get_mut(key) {
        at.retain(|j| *j != i);
        if at.is_empty() {
            by_key.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ObsPoint;

    fn job(start: Instant, wait_ms: u64) -> Job {
        Job::new(
            ObsPoint::PUBLISH_PLAN_POST,
            "p",
            "S",
            Duration::from_millis(wait_ms),
            start,
        )
    }

    #[test]
    fn the_earliest_deadline_follows_pushes_and_removals() {
        let t = Instant::now();
        let mut w = Watchlist::default();
        assert_eq!(w.earliest(), None);
        for ms in [300, 100, 200] {
            w.push(job(t, ms), format!("k{ms}"), None);
        }
        assert_eq!(w.earliest(), Some(t + Duration::from_millis(100)));
        assert!(
            w.due(t + Duration::from_millis(50), false, false, false)
                .is_empty()
        );
        assert_eq!(
            w.due(t + Duration::from_millis(250), false, false, false),
            [1, 2]
        );
        assert_eq!(w.due(t, true, false, false), [0, 1, 2]);
        let taken = w.take(1);
        assert_eq!(taken.heat_key, "k100");
        assert_eq!(
            w.get(1).heat_key,
            "k200",
            "the last entry moved into the hole"
        );
        assert_eq!(w.deadline(1), t + Duration::from_millis(200));
        assert_eq!(w.earliest(), Some(t + Duration::from_millis(200)));
        w.push(job(t, 150), "k150".into(), None);
        assert_eq!(w.earliest(), Some(t + Duration::from_millis(150)));
        assert_eq!(w.clear(), 3);
        assert_eq!(w.earliest(), None);
    }

    #[test]
    fn marks_are_counted_through_looks_and_removals() {
        let t = Instant::now();
        let mut w = Watchlist::default();
        w.push(job(t, 100), "a".into(), Some(Mark::Watch));
        w.push(job(t, 100), "b".into(), None);
        w.push(job(t, 100), "c".into(), Some(Mark::Watch));
        assert_eq!(w.marked(Mark::Watch), 2);
        assert_eq!(w.due_watch(), [0, 2]);
        assert!(
            w.due(t, false, false, false).is_empty(),
            "a check registers nothing"
        );
        assert_eq!(
            w.due(t, false, false, true),
            [0, 2],
            "no subscription: plain looks"
        );
        w.mark(1, Mark::Check);
        w.mark(0, Mark::Check);
        assert_eq!(
            w.marked(Mark::Watch),
            2,
            "a look that registers also checks"
        );
        assert_eq!(w.due(t, false, false, false), [1]);
        w.looked(0);
        assert_eq!(w.marked(Mark::Watch), 1);
        w.poll(2);
        assert_eq!(w.due(t, false, true, false), [1, 2]);
        w.take(2);
        assert_eq!((w.marked(Mark::Watch), w.polled()), (0, 0));
        w.mark_all();
        assert_eq!((w.due_watch(), w.marked(Mark::Check)), (vec![0, 1], 0));
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
        let taken = w.take(0); // "c" moves from 3 to 0
        assert_eq!(taken.heat_key, "a");
        assert_eq!((w.find("a"), w.find("c")), (&[2][..], &[0][..]));
        w.take(2); // the last one: nothing moves
        assert!(w.find("a").is_empty());
        assert_eq!((w.find("b"), w.find("c")), (&[1][..], &[0][..]));
        for (i, watch) in (0..w.len()).map(|i| (i, w.get(i))) {
            assert_eq!(w.find(&watch.heat_key), [i]);
        }
    }
}
