//! One retry policy for transient network failures: the registry push, the GitHub OIDC token
//! request, git's fetch and push when the connection fails, and the Argo CD API.
//!
//! Exponential backoff with full jitter (AWS's "Exponential Backoff and Jitter"): retry `n`
//! waits uniformly in `[0, min(cap, base·2ⁿ⁻¹))`. Full jitter spreads 8-128 matrix jobs that
//! failed together, which a fixed schedule would send back together. A hand-written loop
//! rather than the `backon` crate: the callers need the attempt number in their messages and
//! decide per error whether to retry, which is all there is to it.
//!
//! The write-back's contention backoff (`gitops::backoff`) is not this: it is domain logic
//! about how many jobs race for the branch.

use std::time::Duration;

/// How often and how patiently to retry one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Tries in all, the first included.
    pub attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Policy {
    /// The daemon's push of an image: whole-push retries of a registry that hiccuped.
    pub const REGISTRY_PUSH: Policy = Policy::new(4, 1000, 8_000);
    /// The runner's OIDC token endpoint.
    pub const OIDC: Policy = Policy::new(5, 400, 3_000);
    /// A git fetch or push whose connection failed (not a lost race).
    pub(crate) const GIT_NETWORK: Policy = Policy::new(4, 1000, 8_000);

    const fn new(attempts: u32, base_ms: u64, cap_ms: u64) -> Policy {
        Policy {
            attempts,
            base: Duration::from_millis(base_ms),
            cap: Duration::from_millis(cap_ms),
        }
    }

    /// Whether another try may follow try number `attempt` (1-based).
    pub(crate) fn allows_after(&self, attempt: u32) -> bool {
        attempt < self.attempts
    }

    /// The wait before retry `retry` (1-based), `u` uniform in `[0, 1)`.
    pub(crate) fn delay(&self, retry: u32, u: f64) -> Duration {
        let window = self
            .base
            .saturating_mul(2u32.saturating_pow(retry.saturating_sub(1).min(30)))
            .min(self.cap);
        window.mul_f64(u.clamp(0.0, 1.0))
    }

    /// [`Policy::delay`] with a fresh random draw.
    pub(crate) fn jittered(&self, retry: u32) -> Duration {
        self.delay(retry, rand::random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_doubles_from_the_base_up_to_the_cap() {
        let p = Policy::new(10, 100, 1_000);
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(p.delay(1, 0.5)), 50);
        assert_eq!(ms(p.delay(2, 0.5)), 100);
        assert_eq!(ms(p.delay(3, 0.5)), 200);
        assert_eq!(ms(p.delay(9, 0.5)), 500, "capped at 1 s");
        assert_eq!(ms(p.delay(200, 0.5)), 500, "no overflow");
    }

    #[test]
    fn full_jitter_reaches_zero_and_stays_below_the_window() {
        let p = Policy::OIDC;
        assert_eq!(p.delay(1, 0.0), Duration::ZERO);
        assert!(p.delay(1, 0.999_999) < p.base);
        for retry in 1..20 {
            assert!(p.jittered(retry) <= p.cap);
        }
    }

    #[test]
    fn attempts_count_the_first_try() {
        let p = Policy::new(3, 1, 1);
        assert!(p.allows_after(1) && p.allows_after(2));
        assert!(!p.allows_after(3));
    }
}
