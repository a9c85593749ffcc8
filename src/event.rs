//! [`Event`]: what the observer appends to the stream, and the order of its
//! fields, which is part of the operator contract: the runbook reads
//! `redis-cli XREVRANGE` output with awk and expects exactly one field
//! (`wait_ms`) between `obs_point` and `heat_found`.

use crate::config::Detect;
use crate::obs_point::ObsPoint;

/// One field's value, as the store writes it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldValue<'a> {
    Text(&'a str),
    Number(u64),
}

/// One observation's result, as appended to the observed stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Event {
    /// The plan observed.
    pub plan_id: String,
    /// Its symbol, as the caller passed it.
    pub symbol: String,
    /// Where in the Apply flow it was observed.
    pub obs_point: ObsPoint,
    /// Milliseconds from the observe call to the look that decided.
    pub wait_ms: u64,
    /// Whether the heat key existed at that look (written `1` or `0`).
    pub heat_found: bool,
    /// How many looks were made, the deciding one included.
    pub polls: u32,
    /// The wait the observation was allowed (0 for a single look).
    pub max_wait_ms: u64,
    /// Wall-clock time of the deciding look, in Unix milliseconds.
    pub ts_ms: u64,
    /// How it was decided: `push` (Redis told the worker the key was
    /// written) or `poll` (a look).
    pub decided_by: Detect,
}

impl Event {
    /// The stream fields of an event, in the order they are written. The
    /// first five are the operator contract; more may follow in later
    /// versions.
    pub const FIELDS: &'static [&'static str] = &[
        "plan_id",
        "symbol",
        "obs_point",
        "wait_ms",
        "heat_found",
        "polls",
        "max_wait_ms",
        "ts_ms",
        "decided_by",
    ];

    /// An event for `plan_id` at `obs_point`, not found, with no wait and no
    /// look yet; set the public fields to change that. Workers build their
    /// own; this is for [`Store`](crate::store::Store) implementations and tests.
    ///
    /// ```
    /// use heat_observer::{ObsPoint, store::Event};
    /// let mut event = Event::new("p1", "BTCUSDT", ObsPoint::PUBLISH_PLAN_POST);
    /// event.heat_found = true;
    /// assert_eq!(event.fields()[4], ("heat_found", "1".to_string()));
    /// ```
    pub fn new(plan_id: impl Into<String>, symbol: impl Into<String>, obs_point: ObsPoint) -> Self {
        Self {
            plan_id: plan_id.into(),
            symbol: symbol.into(),
            obs_point,
            wait_ms: 0,
            heat_found: false,
            polls: 0,
            max_wait_ms: 0,
            ts_ms: 0,
            decided_by: Detect::Poll,
        }
    }

    /// The event's stream fields in contract order, values as written.
    ///
    /// ```
    /// use heat_observer::store::Event;
    /// assert_eq!(&Event::FIELDS[2..5], &["obs_point", "wait_ms", "heat_found"]);
    /// ```
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let text = |v: FieldValue<'_>| match v {
            FieldValue::Text(t) => t.to_owned(),
            FieldValue::Number(n) => n.to_string(),
        };
        let values = self.values().map(text);
        Self::FIELDS.iter().copied().zip(values).collect()
    }

    /// The values of [`Event::FIELDS`], in order, without allocating: what
    /// the store writes per event.
    pub(crate) fn values(&self) -> [FieldValue<'_>; 9] {
        use FieldValue::{Number, Text};
        [
            Text(&self.plan_id),
            Text(&self.symbol),
            Text(self.obs_point.as_str()),
            Number(self.wait_ms),
            Text(if self.heat_found { "1" } else { "0" }),
            Number(u64::from(self.polls)),
            Number(self.max_wait_ms),
            Number(self.ts_ms),
            Text(self.decided_by.as_str()),
        ]
    }
}

#[cfg(test)]
mod tests;
