//! The truth audit: every event held against what really happened to its
//! plan's key, as the simulated bridge saw it (when each write was sent and
//! acknowledged, how long keys live) and as the faults left it (a Redis
//! restarted without persistence, or flushed, took every key with it).
//!
//! Three kinds of lie:
//! - *false found*: `heat_found=1`, but the key was never written, was
//!   written after the deadline or after the event was decided, or was
//!   gone before the plan was observed. A found event says the key was there at some moment between
//!   the call and `wait_ms`: a look is answered a little after it is made,
//!   and a key that lives 20 ms may be gone by the answer;
//! - *false not-found*: `heat_found=0`, although the key was there for at
//!   least a poll plus 50 ms before the deadline (poll), or was written
//!   before the deadline (push; 5 ms of grace) and, if it was gone before
//!   the deadline (a restart wiped it, it expired), lived a poll plus
//!   50 ms (push confirms a message with a look, and a key gone before the
//!   look's answer cannot be found: those are counted apart, as
//!   `short_lived_not_found`), or, for an answer given after the deadline,
//!   was there when it was given;
//! - *wait error*: found, on time, but `wait_ms` is later than the write
//!   by more than the poll plus 20 ms (poll) or 5 ms (push). Those whose
//!   key came during a fault (or the recovery after it) are counted apart.
//!
//! Times are compared in Unix ms, the events' own clock (`ts_ms`), each
//! instant mapped through the wall clock read nearest before it
//! ([`WallClock`]); 2 ms of slack cover the rounding of whole milliseconds.
// Each example uses a part of this module.
#![allow(dead_code)]

use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::report::ObservedEvent;
use super::sim::KeyWrite;

/// Slack for whole-millisecond rounding on both sides.
pub const SLACK_MS: f64 = 2.0;
/// Push: how late after the write a message-driven decision may be.
const PUSH_GRACE_MS: f64 = 5.0;
/// Poll: how much later than the poll a decision may be.
const POLL_GRACE_MS: f64 = 20.0;
/// Poll: a key must have been there this much longer than a poll to be
/// owed a find.
const POLL_OWED_MS: f64 = 50.0;
/// How many plan ids each kind of lie lists.
const EXAMPLES: usize = 5;

/// `Instant`s as Unix ms. The workers stamp each event with the wall
/// clock read at its moment, but a wall clock may be stepped under a long
/// run (NTP, a VM's host) while `Instant` is not: one reading of both
/// clocks at the end would misplace the run's earlier moments by every
/// step since, and a step of a few ms turns a true find into a false one.
/// So both clocks are read every
/// [`SAMPLE_EVERY`] from the first [`WallClock::now`] on, by a thread of
/// their own, and an instant is mapped through the reading just before it.
#[derive(Clone)]
pub struct WallClock {
    /// `(instant, unix ms)`, in order.
    samples: Vec<(Instant, f64)>,
}

/// How often both clocks are read.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(20);

/// Both clocks, read together.
/// Both clocks, read together: the wall clock between two reads of the
/// monotonic one no more than 20 µs apart (the closest of a few tries),
/// as the workers read them: a reading split by a preemption would move
/// the 20 ms of instants mapped through it.
fn reading() -> (Instant, f64) {
    let mut best: Option<(Duration, Instant, f64)> = None;
    for _ in 0..8 {
        let before = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64()
            * 1000.0;
        let gap = before.elapsed();
        if best.is_none_or(|(closest, ..)| gap < closest) {
            best = Some((gap, before + gap / 2, unix));
        }
        if gap <= Duration::from_micros(20) {
            break;
        }
    }
    let (_, at, unix) = best.expect("read at least once");
    (at, unix)
}

/// The readings so far; the first use starts the thread that takes them.
fn readings() -> &'static Mutex<Vec<(Instant, f64)>> {
    static READINGS: OnceLock<&'static Mutex<Vec<(Instant, f64)>>> = OnceLock::new();
    READINGS.get_or_init(|| {
        // An hour's room, touched now, so that the readings do not grow
        // the memory a chaos run measures.
        let mut room = vec![reading(); 3600 * 1000 / SAMPLE_EVERY.as_millis() as usize];
        room.truncate(1);
        let readings: &'static Mutex<_> = Box::leak(Box::new(Mutex::new(room)));
        let _ = std::thread::Builder::new()
            .name("wall-clock".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(SAMPLE_EVERY);
                    readings
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(reading());
                }
            });
        readings
    })
}

impl WallClock {
    /// The readings taken so far and one now (the first call starts
    /// taking them: call it when a run starts).
    pub fn now() -> WallClock {
        let mut samples = readings()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        samples.push(reading());
        WallClock { samples }
    }

    pub fn unix_ms(&self, at: Instant) -> f64 {
        let before = self.samples.partition_point(|(i, _)| *i <= at);
        let (instant, unix_ms) = self.samples[before.saturating_sub(1)];
        if at >= instant {
            unix_ms + (at - instant).as_secs_f64() * 1000.0
        } else {
            unix_ms - (instant - at).as_secs_f64() * 1000.0
        }
    }
}

/// What happened, per plan (by index) and to Redis.
pub struct Truth<'a> {
    /// What became of each plan's key.
    pub written: &'a [KeyWrite],
    /// When each plan was observed, per point: `[early, late]` (just before
    /// each call).
    pub observed: &'a [[Instant; 2]],
    /// How long a key lives once written (`None`: longer than the run).
    pub ttl: Option<Duration>,
    /// When every key was taken away (a restart without persistence, a
    /// flush).
    pub wipes: &'a [Instant],
    /// When an acknowledged write may not have lasted (a cluster's master
    /// failed over before the write reached its replica): keys written
    /// then are not judged.
    pub doubts: &'a [(Instant, Instant)],
    /// When faults were on, each with the recovery after it.
    pub faults: &'a [(Instant, Instant)],
    /// The poll, and whether the workers pushed.
    pub poll: Duration,
    pub push: bool,
}

/// The audit's counts, with a few plan ids of each lie.
#[derive(Debug, Default, Clone)]
pub struct Audit {
    pub events: u64,
    /// Events whose key's fate is unknown (its write failed, or may not
    /// have lasted a failover): not judged.
    pub unknown: u64,
    pub false_found: u64,
    pub false_not_found: u64,
    /// Push: not found, the key written before the deadline but gone
    /// before it (wiped, expired) after less than a poll plus 50 ms.
    pub short_lived_not_found: u64,
    pub wait_errors: u64,
    pub wait_errors_in_faults: u64,
    /// How late the latest of the wait errors (outside faults) was, in ms.
    pub worst_wait_error_ms: f64,
    /// Events whose `ts_ms` is more than the slack before the call plus
    /// their `wait_ms`: stamped with a wall clock read apart from the
    /// monotonic one. Not a lie about the key, but an untrue field that
    /// makes a find look earlier than it was.
    pub stamped_early: u64,
    /// The earliest of those stamps against the call plus `wait_ms`, in ms.
    pub worst_stamp_early_ms: f64,
    pub examples: Vec<String>,
}

impl Audit {
    pub fn lies(&self) -> u64 {
        self.false_found + self.false_not_found
    }

    pub fn to_json(&self) -> Value {
        json!({
            "events": self.events,
            "unknown": self.unknown,
            "false_found": self.false_found,
            "false_not_found": self.false_not_found,
            "short_lived_not_found": self.short_lived_not_found,
            "wait_errors": self.wait_errors,
            "wait_errors_in_faults": self.wait_errors_in_faults,
            "worst_wait_error_ms": self.worst_wait_error_ms,
            "stamped_early": self.stamped_early,
            "worst_stamp_early_ms": self.worst_stamp_early_ms,
            "examples": self.examples,
        })
    }
}

/// When the key was surely there, `[from, until)`, and when it may have
/// been, in Unix ms; `None` if it never was.
struct Life {
    surely: (f64, f64),
    maybe: (f64, f64),
}

impl Truth<'_> {
    fn life(&self, write: KeyWrite, clock: &WallClock) -> Option<Life> {
        let KeyWrite::At { sent, done } = write else {
            return None;
        };
        let wipe = self
            .wipes
            .iter()
            .filter(|w| **w >= sent)
            .min()
            .map(|w| clock.unix_ms(*w));
        let ttl = self.ttl.map(|t| t.as_secs_f64() * 1000.0);
        let (sent, done) = (clock.unix_ms(sent), clock.unix_ms(done));
        let end = |from: f64| {
            let by_ttl = ttl.map_or(f64::INFINITY, |t| from + t);
            by_ttl.min(wipe.unwrap_or(f64::INFINITY))
        };
        Some(Life {
            surely: (done, end(sent)),
            maybe: (sent, end(done)),
        })
    }

    fn in_fault(&self, from: f64, to: f64, clock: &WallClock) -> bool {
        self.faults
            .iter()
            .any(|(a, b)| clock.unix_ms(*a) <= to && from <= clock.unix_ms(*b))
    }
}

/// Judges `events` against `truth`; `index` maps an event to its plan.
pub fn audit(
    truth: &Truth<'_>,
    events: &[ObservedEvent],
    index: impl Fn(&ObservedEvent) -> Option<usize>,
    clock: &WallClock,
) -> Audit {
    let mut audit = Audit::default();
    let poll_ms = truth.poll.as_secs_f64() * 1000.0;
    let example = |audit: &mut Audit, what: &str, e: &ObservedEvent| {
        // Up to EXAMPLES of each class: the wait errors, many, must not
        // crowd out the few lies.
        let class = what.split(" (").next().unwrap_or(what);
        let same = audit
            .examples
            .iter()
            .filter(|x| x.starts_with(class))
            .count();
        if same < EXAMPLES {
            audit.examples.push(format!(
                "{what}: {} {} heat_found={} wait_ms={} decided_by={}",
                e.plan_id,
                e.obs_point,
                u8::from(e.heat_found),
                e.wait_ms,
                e.decided_by.as_deref().unwrap_or("-")
            ));
        }
    };
    for e in events {
        let (Some(i), Some(decided)) = (index(e), e.ts_ms) else {
            continue;
        };
        let point = usize::from(e.obs_point == "publish_plan_post");
        let (Some(write), Some(observed)) = (truth.written.get(i), truth.observed.get(i)) else {
            continue;
        };
        audit.events += 1;
        let decided = decided as f64;
        let observed = clock.unix_ms(observed[point]);
        // `ts_ms` against the call plus `wait_ms` (the worker's monotonic
        // clock): whole ms each, so within 1 ms before and the call's own
        // microseconds after, unless the wall clock was read apart from
        // the monotonic one (a thread preempted between the two reads).
        let stamp = decided - (observed + e.wait_ms as f64);
        if stamp < -SLACK_MS {
            audit.stamped_early += 1;
            audit.worst_stamp_early_ms = audit.worst_stamp_early_ms.min(stamp);
            let what = format!("stamped early (ts_ms {stamp:+.1} ms from the call plus wait_ms)");
            example(&mut audit, &what, e);
        }
        let doubted = match write {
            KeyWrite::At { done, .. } => truth.doubts.iter().any(|(a, b)| a <= done && done <= b),
            _ => false,
        };
        if *write == KeyWrite::Unknown || doubted {
            audit.unknown += 1;
            continue;
        }
        let max_wait = e.max_wait_ms.unwrap_or(0) as f64;
        let deadline = observed + max_wait;
        let on_time = (e.wait_ms as f64) <= max_wait;
        let life = truth.life(*write, clock);
        if e.heat_found {
            // There by the deadline (and by the decision), and not gone
            // before the call. A point without a wait has one look, made
            // at the call: there by its answer.
            let by = if max_wait == 0.0 {
                decided
            } else {
                decided.min(deadline)
            };
            let there = life
                .as_ref()
                .is_some_and(|l| l.maybe.0 <= by + SLACK_MS && observed - SLACK_MS < l.maybe.1);
            if !there {
                audit.false_found += 1;
                // What the bridge knows of the key, against the call.
                let what = match &life {
                    Some(l) => format!(
                        "false found (key maybe there from {:+.1} to {:+.1} ms, decided at {:+.1} ms, stamp {stamp:+.1} ms)",
                        l.maybe.0 - observed,
                        (l.maybe.1 - observed).min(1e9),
                        decided - observed
                    ),
                    None => format!(
                        "false found (key never written: {write:?}, decided at {:+.1} ms, stamp {stamp:+.1} ms)",
                        decided - observed
                    ),
                };
                example(&mut audit, &what, e);
                continue;
            }
            let Some(l) = life else { continue };
            // How late the decision came after the key was surely there
            // (or after the call, for a key already there).
            let late = decided - l.surely.0.max(observed);
            let grace = if truth.push {
                PUSH_GRACE_MS
            } else {
                poll_ms + POLL_GRACE_MS
            };
            if on_time && late > grace + SLACK_MS {
                if truth.in_fault(l.surely.0, decided, clock) {
                    audit.wait_errors_in_faults += 1;
                } else {
                    audit.wait_errors += 1;
                    audit.worst_wait_error_ms = audit.worst_wait_error_ms.max(late);
                    let what = format!("wait error ({late:.0} ms after the key)");
                    example(&mut audit, &what, e);
                }
            }
            continue;
        }
        let Some(l) = life else { continue };
        let owed = if !on_time || max_wait == 0.0 {
            // Answered after the deadline (a retried look), or one look at
            // the call: owed a find if the key was surely there then.
            l.surely.0 <= decided - SLACK_MS && decided + SLACK_MS < l.surely.1
        } else if truth.push {
            let from = l.surely.0.max(observed);
            let written = from <= deadline - PUSH_GRACE_MS && from + PUSH_GRACE_MS < l.surely.1;
            let short = l.surely.1 < deadline && l.surely.1 - from < poll_ms + POLL_OWED_MS;
            if written && short {
                audit.short_lived_not_found += 1;
                let what = format!(
                    "short-lived not found (key there from {:+.0} to {:+.0} ms)",
                    from - observed,
                    l.surely.1 - observed
                );
                example(&mut audit, &what, e);
            }
            written && !short
        } else {
            let (from, until) = (l.surely.0.max(observed), l.surely.1.min(deadline));
            until - from >= poll_ms + POLL_OWED_MS
        };
        if owed {
            audit.false_not_found += 1;
            // When the key was there, against the call: what to look for.
            let what = format!(
                "false not-found (key there from {:+.0} to {:+.0} ms, decided at {:+.0} ms)",
                l.surely.0 - observed,
                (l.surely.1 - observed).min(1e9),
                decided - observed
            );
            example(&mut audit, &what, e);
        }
    }
    audit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(plan: usize, found: bool, wait_ms: u64, ts_ms: f64) -> ObservedEvent {
        ObservedEvent {
            id: "0-0".into(),
            plan_id: format!("p{plan}"),
            symbol: "S".into(),
            obs_point: "publish_plan_post".into(),
            wait_ms,
            heat_found: found,
            max_wait_ms: Some(1000),
            ts_ms: Some(ts_ms as u64),
            decided_by: Some("poll".into()),
        }
    }

    #[test]
    fn an_instant_is_mapped_through_the_wall_clock_read_just_before_it() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        // The wall clock was stepped 5 ms ahead between the two readings.
        let clock = WallClock {
            samples: vec![(ms(10), 1010.0), (ms(110), 1115.0)],
        };
        let near = |a: f64, b: f64| (a - b).abs() < 1e-6;
        assert!(near(clock.unix_ms(ms(0)), 1000.0));
        assert!(near(clock.unix_ms(ms(60)), 1060.0));
        assert!(near(clock.unix_ms(ms(110)), 1115.0));
        assert!(near(clock.unix_ms(ms(160)), 1165.0));
    }

    #[test]
    fn each_lie_is_told_from_the_truth() {
        let clock = WallClock::now();
        let t0 = Instant::now() + Duration::from_secs(1);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let at = |n: u64| KeyWrite::At {
            sent: ms(n),
            done: ms(n + 1),
        };
        let written = [
            KeyWrite::Never,
            at(500),
            at(300),
            at(100),
            at(100),
            at(2000),
            at(1005),
        ];
        let observed = [[t0, t0]; 7];
        let truth = Truth {
            written: &written,
            observed: &observed,
            ttl: None,
            wipes: &[],
            doubts: &[],
            faults: &[],
            poll: Duration::from_millis(100),
            push: false,
        };
        let unix = |n: u64| clock.unix_ms(ms(n));
        let events = [
            event(0, true, 600, unix(600)),    // never written: false found
            event(1, true, 450, unix(450)),    // written at 500: false found
            event(2, true, 390, unix(390)),    // right: within a poll
            event(3, true, 400, unix(400)),    // found 300 ms late: wait error
            event(4, false, 1000, unix(1000)), // there 900 ms: false not-found
            event(5, false, 1000, unix(1000)), // came after the deadline: right
            event(6, true, 1000, unix(1008)),  // seen by a late answer: false found
        ];
        let index = |e: &ObservedEvent| e.plan_id[1..].parse().ok();
        let audit = audit(&truth, &events, index, &clock);
        assert_eq!(
            (
                audit.events,
                audit.false_found,
                audit.false_not_found,
                audit.wait_errors
            ),
            (7, 3, 1, 1),
            "{audit:?}"
        );
        assert_eq!(audit.stamped_early, 0, "{audit:?}");
        // Each lie says what the bridge knows of its key.
        assert!(
            audit.examples[0].starts_with("false found (key never written: Never, decided at ")
                && audit.examples[0].contains("): p0 "),
            "{audit:?}"
        );
        assert!(
            audit.examples[1].starts_with("false found (key maybe there from ")
                && audit.examples[1].contains("): p1 "),
            "{audit:?}"
        );

        // The same not-found is right if a restart took the key away.
        let wipes = [ms(150)];
        let wiped = Truth {
            wipes: &wipes,
            ..truth
        };
        let audit = super::audit(&wiped, &events[4..5], index, &clock);
        assert_eq!(audit.false_not_found, 0, "{audit:?}");

        // A key that lived 20 ms and was gone by the answer was still seen
        // between the call and the answer: found is right. Found after a
        // wipe that came before the call is not.
        let short = Truth {
            ttl: Some(Duration::from_millis(20)),
            ..truth
        };
        let audit = super::audit(&short, &events[2..3], index, &clock);
        assert_eq!(audit.false_found, 0, "{audit:?}");
        let late_observed = [[ms(350), ms(350)]; 7];
        let after = Truth {
            observed: &late_observed,
            ..short
        };
        let audit = super::audit(&after, &events[2..3], index, &clock);
        assert_eq!(audit.false_found, 1, "{audit:?}");
    }

    #[test]
    fn a_stamp_earlier_than_the_call_plus_wait_ms_is_counted() {
        let clock = WallClock::now();
        let t0 = Instant::now() + Duration::from_secs(1);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let written = [KeyWrite::At {
            sent: ms(500),
            done: ms(501),
        }];
        let observed = [[t0, t0]];
        let truth = Truth {
            written: &written,
            observed: &observed,
            ttl: None,
            wipes: &[],
            doubts: &[],
            faults: &[],
            poll: Duration::from_millis(100),
            push: true,
        };
        let index = |e: &ObservedEvent| e.plan_id[1..].parse().ok();
        // Found 2 ms after the write by `wait_ms`, but stamped 5 ms earlier:
        // the stamp alone makes the find come before the write.
        let early = [event(0, true, 502, clock.unix_ms(ms(497)))];
        let audit = audit(&truth, &early, index, &clock);
        assert_eq!(
            (audit.stamped_early, audit.false_found),
            (1, 1),
            "{audit:?}"
        );
        assert!(audit.worst_stamp_early_ms <= -4.0, "{audit:?}");
        assert!(
            audit
                .examples
                .iter()
                .any(|x| x.starts_with("stamped early (ts_ms -")),
            "{audit:?}"
        );
        let right = [event(0, true, 502, clock.unix_ms(ms(502)))];
        let audit = super::audit(&truth, &right, index, &clock);
        assert_eq!(
            (audit.stamped_early, audit.false_found),
            (0, 0),
            "{audit:?}"
        );
    }

    #[test]
    fn in_push_a_key_gone_soon_after_its_write_is_counted_apart_not_as_a_lie() {
        let clock = WallClock::now();
        let t0 = Instant::now() + Duration::from_secs(1);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let written = [
            KeyWrite::At {
                sent: ms(679),
                done: ms(680),
            },
            KeyWrite::At {
                sent: ms(399),
                done: ms(400),
            },
        ];
        let observed = [[t0, t0]; 2];
        // A restart wipes every key at +686 ms.
        let wipes = [ms(686)];
        let truth = Truth {
            written: &written,
            observed: &observed,
            ttl: None,
            wipes: &wipes,
            doubts: &[],
            faults: &[],
            poll: Duration::from_millis(10),
            push: true,
        };
        let unix = |n: u64| clock.unix_ms(ms(n));
        let events = [
            event(0, false, 1000, unix(1000)), // there 6 ms: counted apart
            event(1, false, 1000, unix(1000)), // there 286 ms: a lie
        ];
        let index = |e: &ObservedEvent| e.plan_id[1..].parse().ok();
        let audit = audit(&truth, &events, index, &clock);
        assert_eq!(
            (audit.short_lived_not_found, audit.false_not_found),
            (1, 1),
            "{audit:?}"
        );
        assert!(
            audit
                .examples
                .iter()
                .any(|x| x.starts_with("short-lived not found (key there from +680 to +686 ms)")),
            "{audit:?}"
        );
    }
}
