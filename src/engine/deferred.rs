//! Deferred card data, decided: which waiting card's data to ask the central
//! base for next, when to ask again after a failure, and when to give up.
//! Pure (sans-I/O): the caller brings the cards waiting (oldest first), the
//! outcome of each call, the monotonic `now` and the jitter; the async shell
//! is `deferred_fetch.rs`.
//!
//! The data is fetched while the card is READY, before any card leaves a
//! feeder, and the card becomes eligible for production only once its data
//! is sealed in the store. So a central base that is briefly away costs a
//! delay, not a card:
//!
//! * a transient failure (no connection, a time-out, 408, 429, 5xx, a token
//!   that could not be had for now) keeps the card READY and tries again
//!   after a jittered exponential back-off ([`FIRST`] doubling, capped at
//!   [`CAP`], each delay drawn between half and all of that), never sooner
//!   than the central base's `Retry-After`;
//! * after `patience` (from the first try, `upstream.central_base.
//!   data_patience_s`) the card is given up with the code of the last
//!   failure; the last try is made at the patience's end, and a
//!   `Retry-After` beyond it gives the card up at once;
//! * a permanent answer (403, 404, a 4xx with the central base's code, our
//!   credential refused, data that does not validate) gives it up at once.
//!
//! A card given up never took a blank card: no physical step happened.

use crate::codes::ErrorCode;
use std::time::{Duration, Instant};

/// The first back-off after a failure.
pub const FIRST: Duration = Duration::from_secs(1);
/// The longest back-off.
pub const CAP: Duration = Duration::from_secs(60);
/// A card's failures are logged at most this often (a change of code is
/// logged at once).
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// Why one call for a card's data did not bring it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: ErrorCode,
    /// Says what went wrong, never the card data.
    pub description: String,
    pub transient: bool,
    /// The central base's `Retry-After`.
    pub retry_after: Option<Duration>,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Ask for this card's data now.
    Fetch(String),
    /// Nothing is due before this instant.
    At(Instant),
    /// No card waits for its data.
    Nothing,
}

/// What a failed call means for the card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// The card stays READY; asked again at `at`. `log`: say so in the log
    /// (rate-bounded: the first failure, a new code, or [`LOG_EVERY`]).
    Retry { at: Instant, log: bool },
    /// The card ends PRODUCTION_ERROR with this code and description.
    GiveUp {
        code: ErrorCode,
        description: String,
    },
}

/// One card waiting for its data.
#[derive(Debug, Clone)]
struct Waiting {
    token: String,
    /// The first try (the patience counts from it).
    since: Instant,
    tries: u32,
    due: Instant,
    last: Option<Failure>,
    logged: Option<(Instant, ErrorCode)>,
}

/// The cards waiting for their data, in queue order.
#[derive(Debug, Clone)]
pub struct Waits {
    patience: Duration,
    cards: Vec<Waiting>,
}

impl Waits {
    pub fn new(patience: Duration) -> Waits {
        Waits {
            patience,
            cards: Vec::new(),
        }
    }

    /// A reload may change the patience: cards already waiting keep their
    /// first try, and are measured against the new patience.
    pub fn set_patience(&mut self, patience: Duration) {
        self.patience = patience;
    }

    /// The cards whose data is still wanted, oldest first (the store's
    /// answer): new ones are due now, the others keep their state, those no
    /// longer listed (cancelled, data in hand, given up) are forgotten.
    pub fn sync(&mut self, queue: &[String], now: Instant) {
        let mut old = std::mem::take(&mut self.cards);
        self.cards = queue
            .iter()
            .map(|t| match old.iter().position(|w| &w.token == t) {
                Some(i) => old.swap_remove(i),
                None => Waiting {
                    token: t.clone(),
                    since: now,
                    tries: 0,
                    due: now,
                    last: None,
                    logged: None,
                },
            })
            .collect();
    }

    /// The oldest card due now, else when the next one is due.
    pub fn next(&self, now: Instant) -> Next {
        if let Some(w) = self.cards.iter().find(|w| w.due <= now) {
            return Next::Fetch(w.token.clone());
        }
        self.cards
            .iter()
            .map(|w| w.due)
            .min()
            .map_or(Next::Nothing, Next::At)
    }

    /// The data came (or the card left the queue): forgotten.
    pub fn done(&mut self, token: &str) {
        self.cards.retain(|w| w.token != token);
    }

    /// How many calls were made for this card so far, and since when.
    pub fn tries(&self, token: &str) -> Option<(u32, Instant)> {
        self.find(token).map(|w| (w.tries, w.since))
    }

    /// A failed call: try again later, or give up. `jitter` in [0, 1)
    /// places the delay between half and all of the back-off.
    pub fn failed(&mut self, token: &str, f: Failure, now: Instant, jitter: f64) -> After {
        let patience = self.patience;
        let Some(i) = self.cards.iter().position(|w| w.token == token) else {
            // Not (or no longer) waiting: nothing to decide; asked again
            // only if the queue lists it again.
            return After::Retry {
                at: now + CAP,
                log: false,
            };
        };
        let w = &mut self.cards[i];
        w.tries += 1;
        let deadline = w.since + patience;
        let give_up = |why: String| After::GiveUp {
            code: f.code,
            description: format!("{why}; no blank card was taken: nothing happened at the printer"),
        };
        let after = if !f.transient {
            give_up(format!(
                "the card data could not be had from the central base: {}",
                f.description
            ))
        } else if now >= deadline {
            give_up(format!(
                "the central base did not give the card data within the patience of {} s \
                 ({}, the last: {})",
                patience.as_secs(),
                calls(w.tries),
                f.description
            ))
        } else if f.retry_after.is_some_and(|ra| now + ra > deadline) {
            give_up(format!(
                "the central base asks to wait {} s, beyond the patience of {} s left \
                 ({}, the last: {})",
                f.retry_after.unwrap_or_default().as_secs(),
                deadline.saturating_duration_since(now).as_secs(),
                calls(w.tries),
                f.description
            ))
        } else {
            let delay = backoff(w.tries, jitter).max(f.retry_after.unwrap_or_default());
            let at = (now + delay).min(deadline);
            let log = match w.logged {
                None => true,
                Some((when, code)) => code != f.code || now.duration_since(when) >= LOG_EVERY,
            };
            if log {
                w.logged = Some((now, f.code));
            }
            w.due = at;
            After::Retry { at, log }
        };
        if matches!(after, After::GiveUp { .. }) {
            self.cards.remove(i);
        } else {
            self.cards[i].last = Some(f);
        }
        after
    }

    /// What the card waits for, for the local API (`None`: it does not).
    pub fn note(&self, token: &str, now: Instant) -> Option<String> {
        let w = self.find(token)?;
        let waited = now.saturating_duration_since(w.since).as_secs();
        let left = (w.since + self.patience)
            .saturating_duration_since(now)
            .as_secs();
        Some(match &w.last {
            None => "waiting for its card data from the central base".to_string(),
            Some(f) => format!(
                "waiting for its card data from the central base for {waited} s ({}, \
                 the last: {}: {}); next try in {} s; given up with that code if none comes \
                 within {left} s",
                calls(w.tries),
                f.code,
                f.description,
                w.due.saturating_duration_since(now).as_secs(),
            ),
        })
    }

    fn find(&self, token: &str) -> Option<&Waiting> {
        self.cards.iter().find(|w| w.token == token)
    }
}

/// "1 call", "3 calls".
fn calls(n: u32) -> String {
    if n == 1 {
        "1 call".into()
    } else {
        format!("{n} calls")
    }
}

/// The delay after the `tries`-th failure: [`FIRST`] doubling up to
/// [`CAP`], drawn between half and all of it (`jitter` in [0, 1)), so that
/// kiosks failing together do not come back together.
pub fn backoff(tries: u32, jitter: f64) -> Duration {
    let full = FIRST
        .saturating_mul(1u32 << tries.saturating_sub(1).min(16))
        .min(CAP);
    let jitter = jitter.clamp(0.0, 1.0);
    full / 2 + full.mul_f64(jitter / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATIENCE: Duration = Duration::from_secs(300);

    fn down() -> Failure {
        Failure {
            code: ErrorCode::SAT_SERVER_NOT_REACHABLE,
            description: "cannot reach the central base: Connection refused".into(),
            transient: true,
            retry_after: None,
        }
    }

    fn refused() -> Failure {
        Failure {
            code: ErrorCode::CB_SERVICE_NOT_ALLOWED,
            description: "the central base reports CB_SERVICE_NOT_ALLOWED".into(),
            transient: false,
            retry_after: None,
        }
    }

    fn queue(tokens: &[&str]) -> Vec<String> {
        tokens.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn the_backoff_doubles_with_jitter_up_to_its_cap() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, 0.5), Duration::from_millis(750));
        assert_eq!(backoff(2, 1.0), Duration::from_secs(2));
        assert_eq!(backoff(4, 1.0), Duration::from_secs(8));
        assert_eq!(backoff(7, 1.0), CAP);
        assert_eq!(backoff(1000, 0.0), CAP / 2);
        // Out-of-range jitter is clamped, never a zero or an endless delay.
        assert_eq!(backoff(3, -4.0), Duration::from_secs(2));
        assert_eq!(backoff(3, 9.0), Duration::from_secs(4));
    }

    #[test]
    fn new_cards_are_due_at_once_oldest_first_and_gone_cards_are_forgotten() {
        let t0 = Instant::now();
        let mut w = Waits::new(PATIENCE);
        assert_eq!(w.next(t0), Next::Nothing);
        w.sync(&queue(&["a", "b"]), t0);
        assert_eq!(w.next(t0), Next::Fetch("a".into()));
        // "a" fails: "b" is next, not held back by "a".
        let After::Retry { at, log } = w.failed("a", down(), t0, 0.0) else {
            panic!("a transient failure is retried");
        };
        assert!(log);
        assert_eq!(at, t0 + Duration::from_millis(500));
        assert_eq!(w.next(t0), Next::Fetch("b".into()));
        w.done("b");
        assert_eq!(w.next(t0), Next::At(at));
        assert_eq!(w.next(at), Next::Fetch("a".into()));
        // "a" is cancelled meanwhile: the store no longer lists it.
        w.sync(&queue(&["c"]), at);
        assert_eq!(w.next(at), Next::Fetch("c".into()));
        assert_eq!(w.note("a", at), None);
        assert!(w.note("c", at).is_some());
    }

    #[test]
    fn a_card_keeps_its_state_across_syncs() {
        let t0 = Instant::now();
        let mut w = Waits::new(PATIENCE);
        w.sync(&queue(&["a"]), t0);
        w.failed("a", down(), t0, 0.5);
        let later = t0 + Duration::from_millis(100);
        w.sync(&queue(&["z", "a"]), later);
        assert_eq!(w.tries("a"), Some((1, t0)));
        assert_eq!(w.next(later), Next::Fetch("z".into()));
    }

    #[test]
    fn transient_failures_back_off_then_give_up_at_the_patience_with_the_last_code() {
        let t0 = Instant::now();
        let mut w = Waits::new(PATIENCE);
        w.sync(&queue(&["a"]), t0);
        let mut now = t0;
        let mut delays = Vec::new();
        let end = loop {
            let f = if now < t0 + Duration::from_secs(100) {
                down()
            } else {
                Failure {
                    code: ErrorCode::CB_NOT_AVAILABLE,
                    description: "HTTP 503".into(),
                    transient: true,
                    retry_after: None,
                }
            };
            match w.failed("a", f, now, 1.0) {
                After::Retry { at, .. } => {
                    assert!(at > now);
                    delays.push(at - now);
                    now = at;
                    assert_eq!(w.next(now), Next::Fetch("a".into()));
                }
                g @ After::GiveUp { .. } => break g,
            }
        };
        // 1, 2, 4 ... 32, then 60 s each, the last one cut at the patience.
        assert_eq!(delays[..6], [1, 2, 4, 8, 16, 32].map(Duration::from_secs));
        assert!(delays[6..].iter().all(|d| *d <= CAP));
        assert_eq!(now, t0 + PATIENCE, "the last try is at the patience's end");
        let After::GiveUp { code, description } = end else {
            unreachable!()
        };
        assert_eq!(code, ErrorCode::CB_NOT_AVAILABLE, "the last failure's code");
        assert!(
            description.contains("within the patience of 300 s"),
            "{description}"
        );
        assert!(
            description.contains("no blank card was taken"),
            "{description}"
        );
        assert_eq!(w.next(now), Next::Nothing, "given up: forgotten");
    }

    #[test]
    fn a_permanent_answer_gives_up_at_once() {
        let t0 = Instant::now();
        let mut w = Waits::new(PATIENCE);
        w.sync(&queue(&["a"]), t0);
        match w.failed("a", refused(), t0, 0.3) {
            After::GiveUp { code, description } => {
                assert_eq!(code, ErrorCode::CB_SERVICE_NOT_ALLOWED);
                assert!(description.contains("nothing happened at the printer"));
            }
            r => panic!("{r:?}"),
        }
        assert_eq!(w.next(t0), Next::Nothing);
    }

    #[test]
    fn retry_after_is_honoured_and_one_beyond_the_patience_gives_up() {
        let t0 = Instant::now();
        let mut w = Waits::new(PATIENCE);
        w.sync(&queue(&["a", "b"]), t0);
        let busy = |s| Failure {
            code: ErrorCode::CB_NOT_AVAILABLE,
            description: "HTTP 429".into(),
            transient: true,
            retry_after: Some(Duration::from_secs(s)),
        };
        assert_eq!(
            w.failed("a", busy(20), t0, 0.0),
            After::Retry {
                at: t0 + Duration::from_secs(20),
                log: true
            }
        );
        match w.failed("b", busy(301), t0, 0.0) {
            After::GiveUp { code, description } => {
                assert_eq!(code, ErrorCode::CB_NOT_AVAILABLE);
                assert!(description.contains("asks to wait 301 s"), "{description}");
            }
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn failures_are_logged_once_a_minute_or_on_a_new_code() {
        let t0 = Instant::now();
        let mut w = Waits::new(Duration::from_secs(3600));
        w.sync(&queue(&["a"]), t0);
        let mut logs = Vec::new();
        for s in [0, 1, 3, 30, 59, 61, 62] {
            let now = t0 + Duration::from_secs(s);
            let f = if s == 62 { refused_transient() } else { down() };
            if let After::Retry { log, .. } = w.failed("a", f, now, 0.0) {
                logs.push(log);
            }
        }
        assert_eq!(logs, [true, false, false, false, false, true, true]);
    }

    fn refused_transient() -> Failure {
        Failure {
            transient: true,
            ..refused()
        }
    }

    #[test]
    fn the_note_says_what_the_card_waits_for_without_card_data() {
        let t0 = Instant::now();
        let mut w = Waits::new(PATIENCE);
        w.sync(&queue(&["a"]), t0);
        assert_eq!(
            w.note("a", t0).as_deref(),
            Some("waiting for its card data from the central base")
        );
        w.failed("a", down(), t0, 0.0);
        let note = w.note("a", t0 + Duration::from_millis(200)).unwrap();
        assert!(note.contains("SAT_SERVER_NOT_REACHABLE"), "{note}");
        assert!(note.contains("(1 call, the last"), "{note}");
        assert!(note.contains("within 299 s"), "{note}");
    }

    #[test]
    fn a_shorter_patience_after_a_reload_applies_to_cards_waiting() {
        let t0 = Instant::now();
        let mut w = Waits::new(PATIENCE);
        w.sync(&queue(&["a"]), t0);
        w.failed("a", down(), t0, 0.0);
        w.set_patience(Duration::from_secs(5));
        let now = t0 + Duration::from_secs(6);
        assert!(matches!(
            w.failed("a", down(), now, 0.0),
            After::GiveUp { .. }
        ));
    }
}
