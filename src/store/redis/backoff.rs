//! Reconnect backoff: exponential, capped, with jitter, so that a dead Redis
//! sees at most a few connect attempts per second from the whole pool, and
//! the pool's workers do not retry in lockstep.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

/// First pause after a failure.
pub(crate) const BASE: Duration = Duration::from_millis(50);
/// Longest pause: each worker tries at most about once a second.
pub(crate) const CAP: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct Backoff {
    failures: u32,
    until: Option<Instant>,
    rng: u64,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        // A random seed per store, from the standard library's hasher keys.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        Self::with_seed(seed)
    }

    pub(crate) fn with_seed(seed: u64) -> Self {
        Self {
            failures: 0,
            until: None,
            rng: seed,
        }
    }

    /// Time left before the next attempt is allowed, if any.
    pub(crate) fn wait(&self, now: Instant) -> Option<Duration> {
        self.until
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Records a failure: the next attempt waits `BASE * 2^(failures-1)`,
    /// capped at `CAP`, times a random factor in [0.5, 1).
    pub(crate) fn failed(&mut self, now: Instant) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(16);
        let full = BASE.saturating_mul(1 << exp).min(CAP);
        let pause = full.mul_f64(0.5 + 0.5 * self.unit());
        self.until = Some(now + pause);
        pause
    }

    pub(crate) fn succeeded(&mut self) {
        self.failures = 0;
        self.until = None;
    }

    /// A uniform number in [0, 1) (SplitMix64).
    fn unit(&mut self) -> f64 {
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests;
