//! How long to wait between write-back attempts: contention-adaptive full jitter.
//!
//! Blind exponential backoff (0.5 s base, 8 s cap) is slow at both ends: early on, its windows
//! are too small for 30 pushers, and in the tail the last few jobs sleep for seconds while the
//! branch sits idle. Here each job keeps an estimate of how many jobs are still pushing:
//! - at the first lost race it starts from the number of jobs expected to write at once (the
//!   overlay's image count in a one-job-per-service matrix), less those already landed: a race
//!   that 128 jobs start together would otherwise take dozens of losses to learn;
//! - every lost race raises it (others pushed on the same tip);
//! - every commit that landed between two of our fetches lowers it by one (that job is done;
//!   we count them, since later fetches bring the commits in between).
//!
//! The retry window is that estimate times one *round* (how long a push takes to come back,
//! hook included, as we measured it) divided by the pushers per round we aim for. A push that
//! negotiation shows to be stale costs no round, so it is retried at once on a fresh fetch.
//! Simulated and measured (`scripts/bench.sh race`), these constants keep the busiest job of
//! 128 under 18 attempts while the branch idles for less than half a round per update.

use std::time::Duration;

/// Contention added by each lost race: a loss means others pushed on the same tip.
const LOSS: f64 = 2.0;
/// Pushers per round the window aims for. More means more wasted pushes, fewer means idle rounds.
const PUSHERS_PER_ROUND: f64 = 3.0;
/// Never wait longer than this for one retry (the loop's deadline bounds the whole).
const CAP: Duration = Duration::from_secs(30);
/// The round length assumed before any push has come back.
const FIRST_ROUND: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    round: Option<Duration>,
    /// Our estimate of how many jobs are pushing to the branch, ourselves included.
    contention: f64,
    /// Jobs expected to write at once; 0 when unknown.
    expected: u32,
    /// Commits landed since we started.
    landed: u32,
    lost_before: bool,
}

impl Backoff {
    pub(crate) fn new(expected: u32) -> Self {
        Backoff {
            round: None,
            contention: 1.0,
            expected,
            landed: 0,
            lost_before: false,
        }
    }

    /// A push reached the remote and came back after `took`.
    pub(crate) fn pushed(&mut self, took: Duration) {
        self.round = Some(match self.round {
            None => took,
            Some(r) => (r + took) / 2,
        });
    }

    /// We lost a compare-and-swap. `u` is uniform in `[0, 1)`. Returns how long to wait before
    /// fetching again.
    pub(crate) fn lost(&mut self, u: f64) -> Duration {
        if !std::mem::replace(&mut self.lost_before, true) {
            let left = f64::from(self.expected.saturating_sub(self.landed));
            self.contention = self.contention.max(left);
        }
        self.contention += LOSS;
        let round = self.round.unwrap_or(FIRST_ROUND).as_secs_f64();
        let window = (round * self.contention / PUSHERS_PER_ROUND).min(CAP.as_secs_f64());
        Duration::from_secs_f64(window * u.clamp(0.0, 1.0))
    }

    /// A fetch showed `landed` new commits since our previous one: that many jobs are done.
    pub(crate) fn landed(&mut self, landed: u32) {
        self.landed = self.landed.saturating_add(landed);
        self.contention = (self.contention - f64::from(landed)).max(1.0);
    }

    #[cfg(test)]
    pub(crate) fn contention(&self) -> f64 {
        self.contention
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_window_is_measured_in_rounds_and_grows_with_each_loss() {
        let mut b = Backoff::new(0);
        b.pushed(ms(300));
        let first = b.lost(1.0);
        let second = b.lost(1.0);
        assert_eq!(
            first,
            Duration::from_secs_f64(0.3 * (1.0 + LOSS) / PUSHERS_PER_ROUND)
        );
        assert!(second > first, "{first:?} {second:?}");
        assert_eq!(b.lost(0.0), Duration::ZERO, "full jitter reaches zero");
    }

    #[test]
    fn landed_commits_shrink_the_estimate_but_never_below_ourselves() {
        let mut b = Backoff::new(0);
        b.pushed(ms(300));
        b.lost(0.5);
        b.lost(0.5);
        assert_eq!(b.contention(), 1.0 + 2.0 * LOSS);
        b.landed(3);
        assert_eq!(b.contention(), 2.0 * LOSS - 2.0);
        b.landed(100);
        assert_eq!(b.contention(), 1.0);
        b.landed(0);
        assert_eq!(b.contention(), 1.0);
    }

    #[test]
    fn the_first_loss_starts_from_the_expected_contenders_not_yet_landed() {
        let mut b = Backoff::new(32);
        b.landed(2);
        b.pushed(ms(300));
        b.lost(0.5);
        assert_eq!(b.contention(), 30.0 + LOSS);
        b.lost(0.5);
        assert_eq!(
            b.contention(),
            30.0 + 2.0 * LOSS,
            "only the first loss uses it"
        );
        // A job that has seen most of them land starts low.
        let mut late = Backoff::new(32);
        late.landed(40);
        late.lost(0.5);
        assert_eq!(late.contention(), 1.0 + LOSS);
    }

    #[test]
    fn a_slower_remote_means_longer_waits() {
        let (mut fast, mut slow) = (Backoff::new(0), Backoff::new(0));
        fast.pushed(ms(100));
        slow.pushed(ms(1000));
        assert!(slow.lost(0.5) > fast.lost(0.5));
    }

    #[test]
    fn the_window_is_capped() {
        let mut b = Backoff::new(0);
        b.pushed(Duration::from_secs(30));
        assert_eq!(b.lost(1.0), CAP);
    }
}
