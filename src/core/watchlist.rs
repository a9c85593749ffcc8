//! [`Watchlist`]: the jobs one worker watches. Their deadlines are kept
//! apart, in a compact vector, and the earliest is cached: a worker wakes
//! every 10 ms to take new jobs, and scanning thousands of 150-byte entries
//! on each wake streamed about a megabyte through caches it shares with the
//! callers. A wake with nothing due reads one cached value.

use std::collections::HashMap;
use std::time::Instant;

use crate::job::Job;

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
    /// To be looked at by the next look (intake, a loss, a message).
    needs_look: bool,
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
    /// How many watches have `needs_look` set.
    needing: usize,
    /// How many watches are being retried.
    retrying: usize,
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

    pub(crate) fn push(&mut self, job: Job, heat_key: String, needs_look: bool) {
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
            needs_look,
        });
        self.needing += usize::from(needs_look);
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

    /// How many watches are to be looked at by the next look.
    pub(crate) fn needing_look(&self) -> usize {
        self.needing
    }

    /// Marks watch `i` to be looked at by the next look.
    pub(crate) fn mark(&mut self, i: usize) {
        let w = &mut self.watches[i];
        if !w.needs_look {
            w.needs_look = true;
            self.needing += 1;
        }
    }

    /// Marks every watch to be looked at by the next look.
    pub(crate) fn mark_all(&mut self) {
        for w in &mut self.watches {
            w.needs_look = true;
        }
        self.needing = self.watches.len();
    }

    /// Indices (ascending) of the jobs to look at now: all of them when
    /// `all`, else those marked, those whose kept deadline has passed, and,
    /// when `retrying`, those being retried.
    pub(crate) fn due(&mut self, now: Instant, all: bool, retrying: bool) -> Vec<usize> {
        if all {
            return (0..self.len()).collect();
        }
        let deadline_due = self.earliest().is_some_and(|e| e <= now);
        if !deadline_due && self.needing == 0 && !retrying {
            return Vec::new();
        }
        (0..self.len())
            .filter(|&i| {
                let w = &self.watches[i];
                w.needs_look || self.deadlines[i] <= now || (retrying && w.retrying)
            })
            .collect()
    }

    /// Clears watch `i`'s mark (it was looked at).
    pub(crate) fn looked(&mut self, i: usize) {
        let w = &mut self.watches[i];
        if w.needs_look {
            w.needs_look = false;
            self.needing -= 1;
        }
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
        self.needing -= usize::from(watch.needs_look);
        self.retrying -= usize::from(watch.retrying);
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
        self.needing = 0;
        self.retrying = 0;
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
            w.push(job(t, ms), format!("k{ms}"), false);
        }
        assert_eq!(w.earliest(), Some(t + Duration::from_millis(100)));
        assert!(
            w.due(t + Duration::from_millis(50), false, false)
                .is_empty()
        );
        assert_eq!(w.due(t + Duration::from_millis(250), false, false), [1, 2]);
        assert_eq!(w.due(t, true, false), [0, 1, 2]);
        let taken = w.take(1);
        assert_eq!(taken.heat_key, "k100");
        assert_eq!(
            w.get(1).heat_key,
            "k200",
            "the last entry moved into the hole"
        );
        assert_eq!(w.deadline(1), t + Duration::from_millis(200));
        assert_eq!(w.earliest(), Some(t + Duration::from_millis(200)));
        w.push(job(t, 150), "k150".into(), false);
        assert_eq!(w.earliest(), Some(t + Duration::from_millis(150)));
        assert_eq!(w.clear(), 3);
        assert_eq!(w.earliest(), None);
    }

    #[test]
    fn marks_are_counted_through_looks_and_removals() {
        let t = Instant::now();
        let mut w = Watchlist::default();
        w.push(job(t, 100), "a".into(), true);
        w.push(job(t, 100), "b".into(), false);
        w.push(job(t, 100), "c".into(), true);
        assert_eq!(w.needing_look(), 2);
        assert_eq!(w.due(t, false, false), [0, 2]);
        w.looked(0);
        assert_eq!(w.needing_look(), 1);
        w.take(2);
        assert_eq!(w.needing_look(), 0);
        w.mark_all();
        assert_eq!(w.due(t, false, false), [0, 1]);
    }

    #[test]
    fn the_key_index_follows_pushes_and_removals() {
        let t = Instant::now();
        let mut w = Watchlist::default();
        w.push(job(t, 100), "a".into(), false);
        w.index_keys();
        w.push(job(t, 100), "b".into(), false);
        w.push(job(t, 100), "a".into(), false);
        w.push(job(t, 100), "c".into(), false);
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
