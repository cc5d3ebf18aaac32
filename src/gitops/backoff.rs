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
//!
//! A job that wakes from its backoff does not push at once: a push launched in the middle of a
//! round races the one already in flight on that tip and loses. It looks at the tip every
//! eighth of a round until the next commit lands, then pushes on it at once, or after one
//! round of seeing the same tip (nobody's push was in flight). The jobs that woke during a
//! round so push together right after its landing, the way slotted ALOHA beats pure ALOHA:
//! fewer pushes per landed update and less idling (`scripts/bench.sh race`). A look reads the
//! ref advertisement only: no negotiation, no pack, no hook.
//!
//! Measured, these constants keep the busiest job of 128 under 18 attempts.

use std::time::{Duration, Instant};

/// Contention added by each lost race: a loss means others pushed on the same tip.
const LOSS: f64 = 2.0;
/// Pushers per round the window aims for. More means more wasted pushes, fewer means idle rounds.
const PUSHERS_PER_ROUND: f64 = 3.0;
/// Never wait longer than this for one retry (the loop's deadline bounds the whole).
const CAP: Duration = Duration::from_secs(30);
/// The round length assumed before any push has come back.
const FIRST_ROUND: Duration = Duration::from_millis(250);
/// Looks for a landing per round while waiting for one: the latency a landing goes unseen.
const LOOKS_PER_ROUND: u32 = 8;
/// Bounds on the time between two looks: a fast local server is not looked at in a busy loop,
/// a slow one still within a second.
const LOOK_MIN: Duration = Duration::from_millis(10);
const LOOK_MAX: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    /// How long our pushes took to come back.
    round: Option<Duration>,
    /// How long the branch took per landed commit while we waited: the round as the branch
    /// lives it (a push made in the first burst of a race takes far longer than the rest).
    interval: Option<Duration>,
    /// Jobs expected to write at once; 0 when unknown.
    expected: u32,
    /// How much of `expected` we still believe: halved each time a long wait saw the branch
    /// idle, as it is when fewer jobs race than the overlay has images.
    trust: f64,
    /// Races lost so far.
    losses: u32,
    /// Commits landed since we started.
    landed: u32,
    /// What the lost races say: [`LOSS`] for each, less one for each landed commit, at least 1.
    learned: f64,
    /// When we last looked at the tip, and whether we waited since.
    looked: Option<(Instant, bool)>,
}

impl Backoff {
    pub(crate) fn new(expected: u32) -> Self {
        Backoff {
            round: None,
            interval: None,
            expected,
            trust: 1.0,
            losses: 0,
            landed: 0,
            learned: 1.0,
            looked: None,
        }
    }

    /// Our estimate of how many jobs are pushing to the branch, ourselves included: the
    /// expected jobs not landed yet (once a race is lost: until then nobody competes), or what
    /// the lost races say, whichever is more.
    pub(crate) fn contention(&self) -> f64 {
        if self.losses == 0 {
            return 1.0;
        }
        let expected = (f64::from(self.expected) - f64::from(self.landed)) * self.trust;
        expected.max(self.learned)
    }

    /// The time one landed commit takes: what the branch showed while we waited, else how
    /// long our pushes took.
    fn round(&self) -> Duration {
        self.interval.or(self.round).unwrap_or(FIRST_ROUND)
    }

    /// After a backoff, how long to wait for the next landing before pushing: a tip seen for
    /// longer than a round has nobody's push in flight on it, so waiting longer only idles.
    pub(crate) fn hold(&self) -> Duration {
        self.round()
    }

    /// How long between two looks at the tip while waiting for the next landing.
    pub(crate) fn look_every(&self) -> Duration {
        (self.round() / LOOKS_PER_ROUND).clamp(LOOK_MIN, LOOK_MAX)
    }

    /// A push reached the remote and came back after `took`.
    pub(crate) fn pushed(&mut self, took: Duration) {
        self.round = Some(self.round.map_or(took, |r| (r + took) / 2));
    }

    /// We lost a compare-and-swap. `u` is uniform in `[0, 1)`. Returns how long to wait before
    /// fetching again.
    pub(crate) fn lost(&mut self, u: f64) -> Duration {
        self.losses += 1;
        self.learned += LOSS;
        if let Some((_, waited)) = &mut self.looked {
            *waited = true;
        }
        let window = (self.round().as_secs_f64() * self.contention() / PUSHERS_PER_ROUND)
            .min(CAP.as_secs_f64());
        Duration::from_secs_f64(window * u.clamp(0.0, 1.0))
    }

    /// A fetch at `now` showed `landed` new commits since our previous one: that many jobs are
    /// done, and that is how busy the branch was.
    pub(crate) fn looked(&mut self, landed: u32, now: Instant) {
        if let Some((then, waited)) = self.looked {
            let span = now.saturating_duration_since(then);
            // Besides the push that beat ours, nothing landed in a wait of two rounds or more:
            // the branch sat idle, so fewer jobs race than we believed.
            if waited && landed <= 1 && span >= 3 * self.round() {
                self.trust /= 2.0;
            }
            // One commit in two rounds or more is an idle branch, not its pace: taking it would
            // make the last jobs of a race wait longer still.
            let idle = landed == 1 && span >= 2 * self.round();
            if landed > 0 && !idle {
                let sample = span / landed;
                self.interval = Some(self.interval.map_or(sample, |i| (i + sample) / 2));
            }
        }
        self.looked = Some((now, false));
        self.landed = self.landed.saturating_add(landed);
        self.learned = (self.learned - f64::from(landed)).max(1.0);
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
        b.looked(3, Instant::now());
        assert_eq!(b.contention(), 2.0 * LOSS - 2.0);
        b.looked(100, Instant::now());
        assert_eq!(b.contention(), 1.0);
        b.looked(0, Instant::now());
        assert_eq!(b.contention(), 1.0);
    }

    #[test]
    fn once_a_race_is_lost_the_expected_jobs_not_landed_yet_are_the_estimate() {
        let mut b = Backoff::new(32);
        assert_eq!(b.contention(), 1.0, "nobody competes before a loss");
        b.looked(2, Instant::now());
        b.pushed(ms(300));
        b.lost(0.5);
        assert_eq!(b.contention(), 30.0);
        b.lost(0.5);
        assert_eq!(
            b.contention(),
            30.0,
            "losses do not add to what is expected"
        );
        b.looked(27, Instant::now());
        assert_eq!(b.contention(), 3.0, "the last jobs wait less");
        // More jobs than expected: the losses say so.
        let mut few = Backoff::new(2);
        for _ in 0..5 {
            few.lost(0.5);
        }
        assert_eq!(few.contention(), 1.0 + 5.0 * LOSS);
    }

    #[test]
    fn a_long_wait_that_saw_the_branch_idle_halves_what_we_expect() {
        let mut b = Backoff::new(64);
        let t0 = Instant::now();
        b.looked(0, t0);
        b.pushed(ms(300));
        b.lost(0.5);
        assert_eq!(b.contention(), 64.0);
        // Two seconds later only the push that beat ours had landed.
        b.looked(1, t0 + Duration::from_secs(2));
        assert_eq!(b.contention(), 63.0 / 2.0);
        // A busy branch (a commit every 0.4 s) keeps the estimate.
        b.lost(0.5);
        b.looked(5, t0 + Duration::from_secs(4));
        assert_eq!(b.contention(), 58.0 / 2.0);
        assert_eq!(
            b.round(),
            ms(400),
            "the busy branch's pace; the idle two seconds are not a pace"
        );
    }

    #[test]
    fn the_round_is_what_the_branch_takes_per_commit_once_seen() {
        let mut b = Backoff::new(0);
        let t0 = Instant::now();
        b.looked(0, t0);
        b.pushed(Duration::from_secs(3));
        b.lost(0.5);
        b.looked(10, t0 + Duration::from_secs(4));
        assert_eq!(b.round(), ms(400));
    }

    #[test]
    fn an_idle_branch_does_not_stretch_the_round_past_our_own_pushes() {
        let mut b = Backoff::new(4);
        let t0 = Instant::now();
        b.looked(0, t0);
        b.pushed(ms(400));
        let before = b.lost(1.0);
        // The race's tail: one commit in three seconds.
        b.looked(1, t0 + Duration::from_secs(3));
        b.pushed(ms(400));
        let after = b.lost(1.0);
        assert_eq!(b.round(), ms(400), "still our pushes' time");
        assert!(after <= before, "{after:?} > {before:?}");
    }

    #[test]
    fn a_slower_remote_means_longer_waits() {
        let (mut fast, mut slow) = (Backoff::new(0), Backoff::new(0));
        fast.pushed(ms(100));
        slow.pushed(ms(1000));
        assert!(slow.lost(0.5) > fast.lost(0.5));
    }

    #[test]
    fn waiting_for_a_landing_holds_one_round_and_looks_eight_times_in_it() {
        let mut b = Backoff::new(0);
        b.pushed(ms(400));
        assert_eq!((b.hold(), b.look_every()), (ms(400), ms(50)));
        // The branch's pace, once seen, is the round.
        let t0 = Instant::now();
        b.looked(0, t0);
        b.looked(2, t0 + ms(600));
        assert_eq!(
            (b.hold(), b.look_every()),
            (ms(300), Duration::from_micros(37_500))
        );
    }

    #[test]
    fn looks_at_the_tip_are_neither_a_busy_loop_nor_rarer_than_once_a_second() {
        let (mut fast, mut slow) = (Backoff::new(0), Backoff::new(0));
        fast.pushed(ms(20));
        slow.pushed(Duration::from_secs(20));
        assert_eq!(fast.look_every(), LOOK_MIN);
        assert_eq!(slow.look_every(), LOOK_MAX);
    }

    #[test]
    fn the_window_is_capped() {
        let mut b = Backoff::new(0);
        b.pushed(Duration::from_secs(30));
        assert_eq!(b.lost(1.0), CAP);
    }
}
