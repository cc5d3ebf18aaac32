//! How long to wait between write-back attempts: contention-adaptive full jitter.
//!
//! Blind exponential backoff (0.5 s base, 8 s cap) wastes most of its time in the tail: the last
//! few jobs sleep for seconds while the branch sits idle. Instead the window is measured in
//! *rounds* — how long one push takes to come back, hook included, which we observe — and grows
//! with the contention we see (consecutive lost races) but shrinks again as soon as we find the
//! branch idle (its tip did not move while we waited). A push that negotiation shows to be doomed
//! costs no round, so it is retried at once on a fresh fetch.

use std::time::Duration;

/// Window per round and per √(contention): about two pushers per round at equilibrium.
const SPREAD: f64 = 1.0;
/// Never wait longer than this for one retry.
const CAP: Duration = Duration::from_secs(8);
/// The round length assumed before any push has come back.
const FIRST_ROUND: Duration = Duration::from_millis(250);
/// Consecutive network failures tolerated before giving up.
pub(crate) const NETWORK_RETRIES: u32 = 4;

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    round: Option<Duration>,
    contention: u32,
    network: u32,
}

impl Backoff {
    pub(crate) fn new() -> Self {
        Backoff { round: None, contention: 0, network: 0 }
    }

    /// A push reached the remote and came back after `took`.
    pub(crate) fn pushed(&mut self, took: Duration) {
        self.network = 0;
        self.round = Some(match self.round {
            None => took,
            Some(r) => (r + took) / 2,
        });
    }

    /// We lost a compare-and-swap. `u` is uniform in `[0, 1)`. Returns how long to wait before
    /// fetching again.
    pub(crate) fn lost(&mut self, u: f64) -> Duration {
        self.contention += 1;
        let round = self.round.unwrap_or(FIRST_ROUND).as_secs_f64();
        let window = (round * SPREAD * f64::from(self.contention).sqrt()).min(CAP.as_secs_f64());
        Duration::from_secs_f64(window * u.clamp(0.0, 1.0))
    }

    /// After waiting, the branch tip had not moved: the others have thinned out.
    pub(crate) fn idle(&mut self) {
        self.contention /= 2;
    }

    /// A fetch or push failed on the network. `None` means give up.
    pub(crate) fn network_failure(&mut self, u: f64) -> Option<Duration> {
        self.network += 1;
        if self.network >= NETWORK_RETRIES {
            return None;
        }
        // 0.5 s, 1 s, 2 s, … with full jitter on the upper half.
        let ceiling = 0.5 * f64::from(1u32 << (self.network - 1).min(4));
        Some(Duration::from_secs_f64(ceiling * (0.5 + 0.5 * u.clamp(0.0, 1.0))))
    }

    /// A fetch got through: the network is fine again.
    pub(crate) fn network_ok(&mut self) {
        self.network = 0;
    }

    #[cfg(test)]
    pub(crate) fn contention(&self) -> u32 {
        self.contention
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_is_measured_in_rounds_and_grows_with_contention() {
        let mut b = Backoff::new();
        b.pushed(Duration::from_millis(400));
        let first = b.lost(1.0);
        let second = b.lost(1.0);
        let third = b.lost(1.0);
        assert_eq!(first, Duration::from_millis(400));
        assert!(second > first && third > second, "{first:?} {second:?} {third:?}");
        assert!(third < Duration::from_millis(400 * 2), "sub-linear growth: {third:?}");
        assert_eq!(b.lost(0.0), Duration::ZERO, "full jitter reaches zero");
    }

    #[test]
    fn an_idle_branch_shrinks_the_window() {
        let mut b = Backoff::new();
        b.pushed(Duration::from_millis(300));
        for _ in 0..8 {
            b.lost(0.5);
        }
        b.idle();
        assert_eq!(b.contention(), 4);
        b.idle();
        b.idle();
        b.idle();
        assert_eq!(b.contention(), 0);
    }

    #[test]
    fn the_window_is_capped() {
        let mut b = Backoff::new();
        b.pushed(Duration::from_secs(30));
        assert_eq!(b.lost(1.0), CAP);
    }

    #[test]
    fn network_failures_back_off_then_give_up() {
        let mut b = Backoff::new();
        let waits: Vec<_> = std::iter::from_fn(|| b.network_failure(1.0)).collect();
        assert_eq!(waits, [Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(2)]);
        b.network_ok();
        assert!(b.network_failure(0.0).is_some(), "a success resets the count");
    }
}
