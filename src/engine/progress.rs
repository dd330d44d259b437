//! The production loop's word on when it will be heard from again, for the
//! systemd watchdog (`src/supervision/watchdog.rs`).
//!
//! Before each thing it does, the loop promises a deadline: a loop turn
//! (store reads, the readiness check), a physical step (the sum of the
//! time-outs of the printer operations the step sends), an idle wait (its
//! own length). Each promise replaces the last. The watchdog pings only
//! while the latest promise holds, so a loop that stops moving (a step that
//! never returns, a wait nothing ends) stops the pings, and systemd
//! restarts the agent; a step that legitimately takes its full time-out
//! (30 s to print, 120 s for maintenance) does not.
//!
//! Budgets are upper bounds, built from the same time-outs the connection
//! enforces, plus [`margin`] for the resynchronisation a time-out causes.

use super::plan::Step;
use crate::config::Config;
use crate::printer::profile::Timeouts;
use crate::request::CardData;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A store call waits at most this for SQLite's lock (`BUSY_TIMEOUT` in
/// `src/store/mod.rs`), then the disk's sync; a loop turn makes a few.
const STORE_CALL: Duration = Duration::from_secs(6);
/// Store calls in one loop turn or between two steps, at most.
const STORE_CALLS_PER_TURN: u32 = 4;
/// Status reads in a readiness check, at most.
const READINESS_READS: u32 = 4;

/// The latest promise.
#[derive(Debug)]
pub struct Progress {
    inner: Mutex<Promise>,
}

#[derive(Debug, Clone)]
struct Promise {
    what: &'static str,
    made: Instant,
    until: Instant,
    /// Promises made so far (moves whenever the loop does).
    turns: u64,
}

/// A promise the loop has not kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overdue {
    /// What it was doing.
    pub what: &'static str,
    /// How long it has been at it.
    pub for_: Duration,
    /// What it had promised.
    pub budget: Duration,
}

impl Default for Progress {
    /// Start-up: opening and recovery get a loop turn's budget before the
    /// loop's first promise.
    fn default() -> Self {
        let now = Instant::now();
        Progress {
            inner: Mutex::new(Promise {
                what: "starting",
                made: now,
                until: now + STORE_CALL * STORE_CALLS_PER_TURN,
                turns: 0,
            }),
        }
    }
}

impl Progress {
    /// The loop will be heard from again within `within`.
    pub fn promise(&self, what: &'static str, within: Duration) {
        let now = Instant::now();
        let mut p = self.inner.lock().expect("progress lock");
        p.what = what;
        p.made = now;
        p.until = now + within;
        p.turns = p.turns.wrapping_add(1);
    }

    /// `None` while the latest promise holds at `now`.
    pub fn overdue(&self, now: Instant) -> Option<Overdue> {
        let p = self.inner.lock().expect("progress lock");
        (now > p.until).then(|| Overdue {
            what: p.what,
            for_: now.saturating_duration_since(p.made),
            budget: p.until.saturating_duration_since(p.made),
        })
    }

    /// Promises made so far.
    pub fn turns(&self) -> u64 {
        self.inner.lock().expect("progress lock").turns
    }
}

/// What a time-out costs beyond itself: the drain and the serial-number
/// probes of a resynchronisation (`src/printer/conn.rs`), and scheduling.
pub fn margin(t: &Timeouts) -> Duration {
    ms(t.command.saturating_mul(5)) + Duration::from_secs(2)
}

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

/// A loop turn: the store calls of a turn and a readiness check.
pub fn turn(t: &Timeouts) -> Duration {
    STORE_CALL * STORE_CALLS_PER_TURN + ms(t.command) * READINESS_READS + margin(t)
}

/// Between two physical steps: the journal's writes.
pub fn journal(t: &Timeouts) -> Duration {
    STORE_CALL * STORE_CALLS_PER_TURN + margin(t)
}

/// Choosing the feeder (before the first step).
pub fn feeder(t: &Timeouts) -> Duration {
    ms(t.command) * 2 + ms(t.movement) + margin(t)
}

/// A checked reject: locate, count, reject, locate, count.
pub fn reject(t: &Timeouts) -> Duration {
    ms(t.movement) + ms(t.command) * 6 + STORE_CALL * 2 + margin(t)
}

/// A technician's operation holding the printer.
pub fn maintenance(t: &Timeouts) -> Duration {
    ms(t.maintenance) + margin(t)
}

/// One physical step of this card: the sum of the time-outs of the
/// operations it sends (as `src/printer/steps.rs` sends them), plus the
/// margin. `take` is the time the customer has (the configuration's, or
/// the profile's).
pub fn step(step: Step, card: &CardData, t: &Timeouts, config: &Config) -> Duration {
    let cmd = ms(t.command);
    let n = |k: usize| u32::try_from(k).unwrap_or(u32::MAX);
    let body = match step {
        Step::Insert => ms(t.movement),
        Step::Chip => {
            let apdus = n(card.chip.len() + 2);
            ms(t.movement)
                + ms(config.chip.card_wait_ms)
                + ms(config.chip.apdu_timeout_ms).saturating_mul(apdus.saturating_mul(2))
        }
        Step::Magnetic => {
            let tracks = n(card.tracks.len());
            cmd.saturating_mul(tracks + 1) + ms(t.magnetic).saturating_mul(tracks + 1)
        }
        Step::Print => {
            let mut d = Duration::ZERO;
            if let Some(p) = &card.panels {
                for bytes in [p.yellow.len(), p.magenta.len(), p.cyan.len()] {
                    // The frame carries the panel and a short header.
                    d += t.for_class(dialect::ops::TimeoutClass::Download { bytes: bytes + 64 });
                    d += ms(t.print);
                }
            }
            if !card.text.is_empty() {
                d += cmd.saturating_mul(n(card.text.len() + 1)) + ms(t.print);
            }
            d
        }
        Step::Emboss => cmd.saturating_mul(n(card.emboss.len() * 2 + 2)) + ms(t.emboss),
        Step::Verify => cmd * READINESS_READS + cmd * 2,
        Step::Present => ms(t.movement),
        Step::Taken => {
            let take = config.printer.timeouts.take.unwrap_or(t.take);
            // The last poll of the bezel may start just before the end.
            ms(take) + cmd * 2
        }
        Step::Reject => ms(t.movement),
    };
    body + margin(t)
}

/// How long this card may take at most once its data is read: each step
/// of its plan, the journal around each, and a checked reject. A stop
/// (SIGTERM) waits for the card in production; the agent logs this bound
/// for it.
pub fn card(steps: &[Step], card: &CardData, t: &Timeouts, config: &Config) -> Duration {
    let mut total = feeder(t) + reject(t) + journal(t);
    for s in steps {
        total += step(*s, card, t, config) + journal(t);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeouts() -> Timeouts {
        crate::printer::Profile::load("evolis-km500b", None)
            .unwrap()
            .timeouts
            .clone()
    }

    #[test]
    fn a_promise_holds_until_its_deadline_and_a_new_one_replaces_it() {
        let p = Progress::default();
        p.promise("print", Duration::from_millis(100));
        let t0 = Instant::now();
        assert_eq!(p.overdue(t0), None);
        let late = p.overdue(t0 + Duration::from_millis(200)).unwrap();
        assert_eq!(late.what, "print");
        assert_eq!(late.budget, Duration::from_millis(100));
        let turns = p.turns();
        p.promise("idle", Duration::from_secs(5));
        assert_eq!(p.turns(), turns + 1);
        assert_eq!(p.overdue(t0 + Duration::from_millis(200)), None);
    }

    fn empty() -> CardData {
        CardData {
            feeder_card_type: "debit".into(),
            tracks: Vec::new(),
            text: Vec::new(),
            emboss: Vec::new(),
            chip: Vec::new(),
            pin_block: None,
            panels: None,
        }
    }

    #[test]
    fn a_step_may_take_its_own_time_outs() {
        let t = timeouts();
        let c = Config::local(std::path::Path::new("/tmp/x"), "K1");
        let card = empty();
        // The brief's figures: printing 30 s, maintenance 120 s, each
        // within the budget with room for a resynchronisation.
        assert!(step(Step::Print, &card, &t, &c) >= margin(&t));
        let mut text = empty();
        text.text.push(crate::printer::steps::TextLine {
            x: 0,
            y: 0,
            font: 1,
            height: 20,
            text: "A".into(),
        });
        assert!(step(Step::Print, &text, &t, &c) > Duration::from_millis(t.print));
        assert!(maintenance(&t) > Duration::from_secs(120));
        // The customer's time is the configuration's when it says.
        let mut long = c.clone();
        long.printer.timeouts.take = Some(600_000);
        assert!(step(Step::Taken, &card, &t, &long) > Duration::from_secs(600));
        // A whole card is longer than its steps together.
        let whole = super::card(&[Step::Print, Step::Taken], &text, &t, &c);
        assert!(whole > step(Step::Taken, &text, &t, &c) + step(Step::Print, &text, &t, &c));
    }
}
