//! [`Job`]: one observation on its way from the caller to a worker. Every
//! slot of the bounded channel is allocated up front, so the job is kept to
//! one heap allocation and 56 bytes.

use std::time::{Duration, Instant};

use crate::ObsPoint;

pub(crate) struct Job {
    /// The plan id immediately followed by the symbol, in one allocation.
    text: Box<str>,
    plan_id_len: u32,
    wait_ms: u32,
    point: ObsPoint,
    observed_at: Instant,
}

impl Job {
    /// `plan_id` and `symbol` are already validated (bounded lengths), and
    /// `wait` is at most an hour, so the narrowing casts cannot truncate.
    pub(crate) fn new(
        point: ObsPoint,
        plan_id: &str,
        symbol: &str,
        wait: Duration,
        observed_at: Instant,
    ) -> Job {
        let mut text = String::with_capacity(plan_id.len() + symbol.len());
        text.push_str(plan_id);
        text.push_str(symbol);
        Job {
            text: text.into_boxed_str(),
            plan_id_len: plan_id.len() as u32,
            wait_ms: wait.as_millis() as u32,
            point,
            observed_at,
        }
    }

    pub(crate) fn plan_id(&self) -> &str {
        &self.text[..self.plan_id_len as usize]
    }

    pub(crate) fn symbol(&self) -> &str {
        &self.text[self.plan_id_len as usize..]
    }

    pub(crate) fn point(&self) -> ObsPoint {
        self.point
    }

    pub(crate) fn observed_at(&self) -> Instant {
        self.observed_at
    }

    pub(crate) fn wait_ms(&self) -> u64 {
        u64::from(self.wait_ms)
    }

    /// The deadline counts from the observe call, so time spent queued
    /// counts against it.
    pub(crate) fn deadline(&self) -> Instant {
        self.observed_at + Duration::from_millis(u64::from(self.wait_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_is_small_and_round_trips_its_fields() {
        assert!(
            std::mem::size_of::<Job>() <= 56,
            "{}",
            std::mem::size_of::<Job>()
        );
        let t = Instant::now();
        let job = Job::new(
            ObsPoint::PUBLISH_PLAN_POST,
            "plan-7",
            "ETHUSDT",
            Duration::from_millis(2000),
            t,
        );
        assert_eq!(job.plan_id(), "plan-7");
        assert_eq!(job.symbol(), "ETHUSDT");
        assert_eq!(job.point(), ObsPoint::PUBLISH_PLAN_POST);
        assert_eq!(job.deadline(), t + Duration::from_millis(2000));
        let empty_symbol = Job::new(ObsPoint::CREATE_APPLY_PLAN, "p", "", Duration::ZERO, t);
        assert_eq!((empty_symbol.plan_id(), empty_symbol.symbol()), ("p", ""));
        assert_eq!(empty_symbol.deadline(), t);
    }
}
