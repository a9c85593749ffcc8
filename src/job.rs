//! [`Job`]: one observation on its way from the caller to a worker.
//!
//! The plan id and symbol are stored inline when they fit (78 bytes
//! together, enough for a UUID and any exchange symbol), so the caller's
//! thread allocates nothing: memory allocated there and freed on a worker
//! drains the caller's allocator cache and makes it contend with the
//! workers for the allocator's lock. Longer ids go to the heap. The job is
//! 120 bytes; with the channel's stamp a slot is two cache lines.

use std::time::{Duration, Instant};

use crate::obs_point::ObsPoint;

/// Bytes of plan id plus symbol stored without allocating.
pub(crate) const INLINE: usize = 78;

enum Text {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    /// Kept out of line: the common, inline path stays a few cache lines.
    #[cold]
    #[inline(never)]
    fn on_heap(plan_id: &str, symbol: &str) -> Text {
        Text::Heap(format!("{plan_id}{symbol}").into_boxed_str())
    }
}

pub(crate) struct Job {
    /// The plan id immediately followed by the symbol.
    text: Text,
    plan_id_len: u8,
    wait_ms: u32,
    point: ObsPoint,
    observed_at: Instant,
}

impl Job {
    /// `plan_id` and `symbol` are already validated (at most 128 and 32
    /// bytes), and `wait` is at most an hour, so the narrowing casts cannot
    /// truncate.
    pub(crate) fn new(
        point: ObsPoint,
        plan_id: &str,
        symbol: &str,
        wait: Duration,
        observed_at: Instant,
    ) -> Job {
        let len = plan_id.len() + symbol.len();
        let text = if len <= INLINE {
            let mut buf = [0u8; INLINE];
            buf[..plan_id.len()].copy_from_slice(plan_id.as_bytes());
            buf[plan_id.len()..len].copy_from_slice(symbol.as_bytes());
            Text::Inline {
                len: len as u8,
                buf,
            }
        } else {
            Text::on_heap(plan_id, symbol)
        };
        Job {
            text,
            plan_id_len: plan_id.len() as u8,
            wait_ms: wait.as_millis() as u32,
            point,
            observed_at,
        }
    }

    fn text(&self) -> &str {
        match &self.text {
            // Built from two `&str`s, so the bytes are UTF-8 and the split
            // between them falls on a character boundary.
            Text::Inline { len, buf } => {
                std::str::from_utf8(&buf[..usize::from(*len)]).unwrap_or("")
            }
            Text::Heap(text) => text,
        }
    }

    pub(crate) fn plan_id(&self) -> &str {
        self.text()
            .get(..usize::from(self.plan_id_len))
            .unwrap_or("")
    }

    pub(crate) fn symbol(&self) -> &str {
        self.text()
            .get(usize::from(self.plan_id_len)..)
            .unwrap_or("")
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
mod tests;
