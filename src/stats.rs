//! [`Stats`], the snapshot code reads: the ledger's counters at one moment.
//! A new simple counter is a row in its `counters` part (its field, its
//! metric) and the line in the ledger that counts it.

use crate::obs_point::ObsPoint;
use crate::refusal::Refused;

/// Generates [`Stats`] with the simple counters of its `counters` part
/// (each an unlabelled `u64` counter: its field, the [`Count`] the ledger
/// adds to, and its metric row), so that a new simple counter is one row
/// here and the line in the ledger that counts it.
macro_rules! stats {
    (
        $(#[$meta:meta])*
        pub struct Stats {
            $($(#[doc = $fdoc:literal])* pub $field:ident: $ty:ty,)*
        }
        counters {
            $($(#[doc = $doc:literal])* $count:ident => $metric:literal, $help:literal;)*
        }
    ) => {
        $(#[$meta])*
        pub struct Stats {
            $($(#[doc = $fdoc])* pub $field: $ty,)*
            $($(#[doc = $doc])* pub $count: u64,)*
        }

        /// A simple counter of [`Stats`], as the ledger counts it.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Count {
            $($count,)*
        }

        impl Count {
            /// Every simple counter: the metric's name and help, and how to
            /// read it from a snapshot.
            pub(crate) const ALL: &[(Count, &str, &str, fn(&Stats) -> u64)] = &[
                $((Count::$count, $metric, $help, |s| s.$count),)*
            ];
        }

        impl Stats {
            pub(crate) fn set_count(&mut self, count: Count, value: u64) {
                match count {
                    $(Count::$count => self.$count = value,)*
                }
            }
        }
    };
}

stats! {
    /// A snapshot of the observer's counters. Every observe call is counted in
    /// exactly one of the `refused_*` fields or in `accepted`; every accepted
    /// observation ends in exactly one of `found`, `not_found`, `deduplicated`,
    /// `failed`, `panicked`, `abandoned`, or is still `queued` or `in_flight`.
    ///
    /// Fields are read one by one while workers run, so a snapshot taken during
    /// activity may be off by the jobs that moved meanwhile; after
    /// [`shutdown`](crate::LateObserver::shutdown) it is exact.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    #[non_exhaustive]
    pub struct Stats {
        /// Whether the late observer is on (`false`: switched off, when only
        /// early looks run; disabled; or a config error).
        pub enabled: bool,
        /// Whether it runs disabled because its configuration was invalid.
        pub config_error: bool,
        /// Whether it was shut down in an orderly way (its workers are gone on
        /// purpose).
        pub stopped: bool,
        /// Observations taken into the queue.
        pub accepted: u64,
        /// Refused because observing is switched off.
        pub refused_disabled: u64,
        /// Refused because the configuration was invalid at start.
        pub refused_config_error: u64,
        /// Refused as invalid input (see [`InvalidInput`](crate::InvalidInput)).
        pub refused_invalid: u64,
        /// Refused because the queue was full.
        pub refused_queue_full: u64,
        /// Refused because the observer was shut down.
        pub refused_shut_down: u64,
        /// Events written with `heat_found=1`, all points.
        pub found: u64,
        /// Events written with `heat_found=0`, all points.
        pub not_found: u64,
        /// Observations whose `(plan_id, obs_point)` was already recorded.
        pub deduplicated: u64,
        /// Observations waiting in the queue.
        pub queued: u64,
        /// Observations held by workers (watched, or decided and not yet written).
        pub in_flight: u64,
        /// Worker threads running.
        pub workers: u64,
        /// Of those, workers detecting by push (subscribed); the others poll.
        pub push_workers: u64,
        /// Store calls that returned an error.
        pub store_errors: u64,
        /// The same, by the `kind` label of `p28_store_errors_total`, every
        /// kind in its order: `unavailable`, `timeout`, `io`, `server`,
        /// `protocol`, `auth`, `permission`, `database`, `other`; `auth`,
        /// `permission` and `database` are operators' errors.
        pub store_errors_by_kind: Vec<(&'static str, u64)>,
        /// Store calls that look at heat keys (round trips).
        pub exists_calls: u64,
        /// Store calls that claim and append events (round trips).
        pub append_calls: u64,
        /// Per observation point: the built-in points first, then others in the
        /// order they first finished.
        pub points: Vec<PointStats>,
    }
    counters {
        /// Observations that ended without an event because the store failed:
        /// the deciding look failed, or the write kept failing for the retry
        /// window.
        failed => "p28_failed_total",
            "Accepted observations that ended without an event because the store failed.";
        /// Observations that ended because a store call panicked.
        panicked => "p28_panicked_total",
            "Accepted observations that ended because a store call panicked.";
        /// Observations dropped at shutdown, undecided or unwritten.
        abandoned => "p28_abandoned_total",
            "Accepted observations dropped at shutdown, undecided or unwritten.";
        /// Keys asked about in exists calls.
        keys_checked => "p28_keys_checked_total", "Heat keys asked about in exists calls.";
        /// Claims sent in append calls, retries included.
        claims_sent => "p28_claims_sent_total",
            "Event claims sent in append calls, retries included.";
        /// Observations decided by a look that answered after the deadline,
        /// because the deadline look failed and was retried (a failover): their
        /// `wait_ms` is above the max wait.
        late_answers => "p28_late_answers_total",
            "Observations decided by a look retried after a failed deadline look; their wait_ms exceeds the max wait.";
    }
}

/// The counters of one observation point.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PointStats {
    /// The point.
    pub obs_point: ObsPoint,
    /// Events written with `heat_found=1`.
    pub found: u64,
    /// Events written with `heat_found=0`.
    pub not_found: u64,
    /// Observations deduplicated.
    pub deduplicated: u64,
    /// Wait of the events with `heat_found=1`: read it with
    /// [`PointStats::wait_buckets`] and [`PointStats::wait_sum_ms`].
    pub(crate) wait: WaitHistogram,
}

/// Distribution of waits, bucketed by [`PointStats::WAIT_BUCKETS_MS`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct WaitHistogram {
    /// Count per bucket (not cumulative); the last one is `+Inf`.
    counts: [u64; PointStats::WAIT_BUCKETS_MS.len() + 1],
    /// Sum of the waits, in milliseconds.
    sum_ms: u64,
}

impl WaitHistogram {
    const BUCKETS_MS: [u64; 12] = PointStats::WAIT_BUCKETS_MS;

    pub(crate) fn record(&mut self, wait_ms: u64) {
        let bucket = Self::BUCKETS_MS
            .iter()
            .position(|&le| wait_ms <= le)
            .unwrap_or(Self::BUCKETS_MS.len());
        self.counts[bucket] += 1;
        self.sum_ms += wait_ms;
    }

    /// Number of waits recorded.
    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn sum_ms(&self) -> u64 {
        self.sum_ms
    }

    /// `(upper bound in ms, cumulative count)` per bucket, `None` for `+Inf`.
    pub(crate) fn cumulative(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        let bounds = Self::BUCKETS_MS.iter().map(|&b| Some(b)).chain([None]);
        bounds.zip(self.counts.iter().scan(0, |acc, &n| {
            *acc += n;
            Some(*acc)
        }))
    }
}

impl PointStats {
    /// Upper bounds (milliseconds) of the wait buckets of
    /// `p28_heat_wait_seconds`; a last `+Inf` bucket follows.
    pub const WAIT_BUCKETS_MS: [u64; 12] = [
        50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10_000,
    ];

    /// The waits of the events with `heat_found=1` as `(upper bound in ms,
    /// cumulative count)` per bucket of [`PointStats::WAIT_BUCKETS_MS`],
    /// `None` for the last, `+Inf` (whose count is [`PointStats::found`]).
    pub fn wait_buckets(&self) -> impl Iterator<Item = (Option<u64>, u64)> + '_ {
        self.wait.cumulative()
    }

    /// The sum of the waits of the events with `heat_found=1`, in
    /// milliseconds.
    pub fn wait_sum_ms(&self) -> u64 {
        self.wait.sum_ms()
    }

    pub(crate) fn new(obs_point: ObsPoint) -> Self {
        Self {
            obs_point,
            found: 0,
            not_found: 0,
            deduplicated: 0,
            wait: WaitHistogram::default(),
        }
    }
}

impl Stats {
    /// Observe calls made: accepted plus refused.
    pub fn calls(&self) -> u64 {
        self.accepted + self.refused()
    }

    /// Observe calls refused at the door, all reasons.
    pub fn refused(&self) -> u64 {
        Refused::ALL.iter().map(|r| self.refused_for(r)).sum()
    }

    /// Observe calls refused for `reason`'s reason (an `Invalid` of any
    /// kind counts all invalid input).
    pub fn refused_for(&self, reason: &Refused) -> u64 {
        match reason {
            Refused::Disabled => self.refused_disabled,
            Refused::ConfigError => self.refused_config_error,
            Refused::Invalid(_) => self.refused_invalid,
            Refused::QueueFull => self.refused_queue_full,
            Refused::ShutDown => self.refused_shut_down,
        }
    }

    /// Accepted observations that reached their end.
    pub fn finished(&self) -> u64 {
        self.found
            + self.not_found
            + self.deduplicated
            + self.failed
            + self.panicked
            + self.abandoned
    }

    /// Every outcome by name, refusals (`refused_<reason>`) and the still
    /// pending included; the values sum to [`Stats::calls`] when the
    /// snapshot is exact.
    pub fn outcomes(&self) -> Vec<(&'static str, u64)> {
        const REFUSED: [&str; Refused::COUNT] = [
            "refused_disabled",
            "refused_config_error",
            "refused_invalid",
            "refused_queue_full",
            "refused_shut_down",
        ];
        let refused = Refused::ALL
            .iter()
            .map(|r| (REFUSED[r.index()], self.refused_for(r)));
        refused
            .chain([
                ("found", self.found),
                ("not_found", self.not_found),
                ("deduplicated", self.deduplicated),
                ("failed", self.failed),
                ("panicked", self.panicked),
                ("abandoned", self.abandoned),
                ("queued", self.queued),
                ("in_flight", self.in_flight),
            ])
            .collect()
    }

    /// Whether every call is accounted for: the outcomes sum to the calls.
    pub fn is_balanced(&self) -> bool {
        self.outcomes().iter().map(|(_, n)| n).sum::<u64>() == self.calls()
    }

    /// The counters of `point`, if it is known.
    pub fn point(&self, point: ObsPoint) -> Option<&PointStats> {
        self.points.iter().find(|p| p.obs_point == point)
    }
}

#[cfg(test)]
mod tests;
