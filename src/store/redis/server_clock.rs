//! [`ServerClock`]: when a server looked, on the worker's clock, from the
//! `TIME` it read at the end of a look.
//!
//! A key found counts if the server looked by the deadline. The answer's
//! arrival bounds that moment, but it arrives late after a redirect,
//! behind another master's slow answer or on a busy CPU, and a late bound
//! makes a key found in time unknown. `TIME`, sent after a look's `EXISTS`
//! commands, is read by the server after them: mapped to the worker's
//! clock, it is a closer bound. The mapping needs the offset between the
//! two clocks, which each round trip bounds from below (the server read
//! `TIME` before its reply arrived: `offset >= time - arrival`). The
//! largest such bound of the last [`WINDOW`] (the fastest reply's) is
//! kept; a lower bound of the offset maps `TIME` to an upper bound of the
//! moment, never too early. Clocks that drift apart by 50 parts per
//! million move 0.1 ms in the window, within the millisecond events
//! carry; a server clock stepped back shows as a moment before the call
//! was sent, and the offset is measured anew.

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

/// How long the best offset bound is kept before a slower one replaces it.
pub(crate) const WINDOW: Duration = Duration::from_secs(2);

/// One server's clock as the worker sees it.
#[derive(Debug)]
pub(crate) struct ServerClock {
    /// The worker's clock reads microseconds from here.
    epoch: Instant,
    /// The largest lower bound of the offset (server µs minus worker µs)
    /// and when it was measured.
    offset: Option<(i64, Instant)>,
}

impl ServerClock {
    pub(crate) fn new() -> ServerClock {
        ServerClock {
            epoch: Instant::now(),
            offset: None,
        }
    }

    /// The moment by which the server had read `TIME` (`time_us`, Unix
    /// µs), for a call sent at `sent` and answered at `arrived`: never
    /// later than `arrived`.
    pub(crate) fn read_by(&mut self, time_us: i64, sent: Instant, arrived: Instant) -> Instant {
        let local = |at: Instant| at.saturating_duration_since(self.epoch).as_micros() as i64;
        let bound = time_us - local(arrived);
        let offset = match self.offset {
            Some((best, at)) if best > bound && arrived.saturating_duration_since(at) < WINDOW => {
                best
            }
            _ => {
                self.offset = Some((bound, arrived));
                bound
            }
        };
        let moment = time_us - offset;
        if moment < local(sent) {
            // Read before it was asked: the server's clock went back.
            self.offset = Some((bound, arrived));
            return arrived;
        }
        (self.epoch + Duration::from_micros(moment as u64)).min(arrived)
    }
}
