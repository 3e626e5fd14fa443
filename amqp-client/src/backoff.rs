//! How long to wait before connecting again: capped exponential backoff with jitter, for the
//! reconnecting clients and servers built on this crate.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Capped exponential backoff with jitter: attempt `k` (from 1) waits
/// `min(max, initial * 2^(k-1))`, less a random part of up to `jitter` of it, so that many
/// clients cut off at once do not come back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay.
    pub initial: Duration,
    /// The cap.
    pub max: Duration,
    /// The random share taken off each delay, 0.0 (none) to 1.0 (anything from 0 to the delay).
    pub jitter: f64,
}

impl Default for Backoff {
    /// 100 ms, doubling, capped at 10 s, jitter 0.5.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (1 = the first retry), with `random` in `[0, 1)` as
    /// the jitter draw (pure: tests pass their own).
    pub fn delay_with(&self, attempt: u32, random: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let full = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        full.mul_f64(1.0 - jitter)
    }

    /// The delay before attempt `attempt`, with a random jitter draw.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, random_unit())
    }
}

/// A number in `[0, 1)` for jitter: std's per-process random hash keys over a counter. Not for
/// anything but spreading out retries.
fn random_unit() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_and_jitter_only_shortens() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            jitter: 0.5,
        };
        let no_jitter: Vec<_> = (1..=7).map(|k| b.delay_with(k, 0.0)).collect();
        assert_eq!(
            no_jitter,
            [100, 200, 400, 800, 1600, 2000, 2000].map(Duration::from_millis)
        );
        assert_eq!(b.delay_with(3, 0.999_999).as_millis(), 200);
        assert_eq!(b.delay_with(u32::MAX, 0.0), Duration::from_secs(2));
        for k in 1..50 {
            let d = b.delay(k);
            assert!(d <= b.max && d >= b.delay_with(k, 1.0), "{k}: {d:?}");
        }
    }

    #[test]
    fn jitter_draws_spread() {
        let draws: Vec<f64> = (0..1000).map(|_| random_unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.4..0.6).contains(&mean), "mean {mean}");
    }
}
