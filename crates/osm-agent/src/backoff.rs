//! Exponential backoff with jitter while the server cannot be reached.

use std::time::Duration;

use rand::RngExt;

#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            failures: 0,
        }
    }

    /// The wait before the next attempt: a random time between half and all of
    /// `min(cap, base · 2^failures)`, so a fleet cut off together does not return together.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self
            .base
            .saturating_mul(1u32.checked_shl(self.failures.min(20)).unwrap_or(u32::MAX))
            .min(self.cap);
        self.failures = self.failures.saturating_add(1);
        let fraction: f64 = rand::rng().random_range(0.5..=1.0);
        ceiling.mul_f64(fraction)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_jitter_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let delays: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        for (i, d) in delays.iter().enumerate() {
            let ceiling = Duration::from_millis(100 * (1 << i)).min(Duration::from_secs(2));
            assert!(*d <= ceiling && *d >= ceiling / 2, "attempt {i}: {d:?}");
        }
        // Jitter: ten capped delays are not all the same.
        let capped: Vec<Duration> = (0..10).map(|_| b.next_delay()).collect();
        assert!(capped.iter().any(|d| *d != capped[0]));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
