//! What a loop that retries tells the log: one line when the trouble
//! begins, then reminders at a slowing, bounded rate (after 5 s, then each
//! gap twice the last, up to one a minute), and one line when it ends,
//! saying how long it lasted. A loop that retried every 200 ms and logged
//! each failure wrote 1,364 warnings in 275 s while the store could not be
//! written, and journald's rate limit then dropped other messages.
//!
//! Plain data and explicit instants: the loop keeps one [`Outage`] per
//! trouble and asks it whether to log; tested without a clock. How often
//! the loop retries is its own business (it may retry far more often than
//! it logs).

use std::time::{Duration, Instant};

/// The first reminder comes this long after the first failure.
pub const FIRST_REMINDER: Duration = Duration::from_secs(5);
/// Reminders never come more rarely than this.
pub const MAX_REMINDER: Duration = Duration::from_secs(60);

/// One trouble a loop retries through: failing or not, and when to remind.
#[derive(Debug, Clone)]
pub struct Outage {
    first: Duration,
    max: Duration,
    ongoing: Option<Ongoing>,
}

#[derive(Debug, Clone)]
struct Ongoing {
    began: Instant,
    failures: u64,
    /// No line before this.
    next: Instant,
    /// The gap before the reminder after `next`.
    gap: Duration,
}

/// A failure worth a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Note {
    /// The first failure of this trouble (a state change), else a reminder.
    pub first: bool,
    /// Since the first failure.
    pub since: Duration,
    /// Failed attempts so far, this one included.
    pub failures: u64,
}

/// The end of a trouble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// From the first failure to the success.
    pub lasted: Duration,
    /// Failed attempts.
    pub failures: u64,
}

impl Default for Outage {
    fn default() -> Self {
        Outage::new(FIRST_REMINDER, MAX_REMINDER)
    }
}

impl Outage {
    /// Reminders after `first`, then each gap twice the last, at most `max`.
    pub fn new(first: Duration, max: Duration) -> Outage {
        Outage {
            first,
            max: max.max(first),
            ongoing: None,
        }
    }

    /// An attempt failed at `now`: `Some` when this failure should be
    /// logged (the first one, or a reminder that is due).
    pub fn failed(&mut self, now: Instant) -> Option<Note> {
        match &mut self.ongoing {
            None => {
                self.ongoing = Some(Ongoing {
                    began: now,
                    failures: 1,
                    next: now + self.first,
                    gap: (self.first * 2).min(self.max),
                });
                Some(Note {
                    first: true,
                    since: Duration::ZERO,
                    failures: 1,
                })
            }
            Some(o) => {
                o.failures = o.failures.saturating_add(1);
                if now < o.next {
                    return None;
                }
                // From now, not from the missed instant: a loop that slept
                // through several reminders gets one, not a burst.
                o.next = now + o.gap;
                o.gap = (o.gap * 2).min(self.max);
                Some(Note {
                    first: false,
                    since: now.saturating_duration_since(o.began),
                    failures: o.failures,
                })
            }
        }
    }

    /// An attempt succeeded at `now`: `Some` when it ends a trouble (log
    /// it once); nothing when all was well.
    pub fn recovered(&mut self, now: Instant) -> Option<Ended> {
        self.ongoing.take().map(|o| Ended {
            lasted: now.saturating_duration_since(o.began),
            failures: o.failures,
        })
    }

    /// Whether the last attempt failed.
    pub fn is_ongoing(&self) -> bool {
        self.ongoing.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_state_change_once_then_reminders_that_slow_down_to_a_bound() {
        let t0 = Instant::now();
        let mut o = Outage::default();
        let first = o.failed(t0).expect("the first failure is logged");
        assert!(first.first);
        assert_eq!(first.failures, 1);
        // A retry every 200 ms for 275 s, as the store's loop did.
        let mut lines = vec![];
        let mut t = t0;
        for _ in 1..1375 {
            t += 200 * MS;
            if let Some(n) = o.failed(t) {
                assert!(!n.first);
                lines.push(n.since);
            }
        }
        let secs: Vec<u64> = lines.iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [5, 15, 35, 75, 135, 195, 255]);
        let ended = o.recovered(t + 200 * MS).expect("the end is logged");
        assert_eq!(ended.failures, 1375);
        assert_eq!(ended.lasted, 275 * 1000 * MS);
        assert!(!o.is_ongoing());
        // Nothing more while all is well; the next trouble is new.
        assert_eq!(o.recovered(t + 400 * MS), None);
        assert!(o.failed(t + 600 * MS).unwrap().first);
    }

    #[test]
    fn a_loop_that_slept_through_reminders_gets_one_line_not_a_burst() {
        let t0 = Instant::now();
        let mut o = Outage::new(Duration::from_secs(1), Duration::from_secs(8));
        o.failed(t0);
        let late = t0 + Duration::from_secs(100);
        assert!(o.failed(late).is_some());
        assert_eq!(o.failed(late + MS), None);
        // The next gap doubled (2 s), counted from the late line.
        assert_eq!(o.failed(late + Duration::from_millis(1999)), None);
        assert!(o.failed(late + Duration::from_secs(2)).is_some());
    }

    #[test]
    fn reminders_never_come_more_rarely_than_the_bound() {
        let t0 = Instant::now();
        let mut o = Outage::new(Duration::from_secs(1), Duration::from_secs(4));
        o.failed(t0);
        let mut at = vec![];
        for s in 1..=30 {
            if o.failed(t0 + Duration::from_secs(s)).is_some() {
                at.push(s);
            }
        }
        assert_eq!(at, [1, 3, 7, 11, 15, 19, 23, 27]);
    }

    #[test]
    fn a_success_with_no_trouble_is_silent() {
        let mut o = Outage::default();
        assert_eq!(o.recovered(Instant::now()), None);
        assert!(!o.is_ongoing());
    }
}
