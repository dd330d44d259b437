//! One sink's delivery policy as a plain state machine: what to send next,
//! what an answer means for the sink and for each delivery, and when to
//! wake. No I/O, no clock of its own: the relay ([`super::relay`]) feeds it
//! the due rows, each request's [`Judged`] answer and a monotonic `now`, and
//! carries out what it returns (requests to send, one batch of store
//! [`Record`]s, the next wake-up).
//!
//! The question it answers is whose fault a failure is. A receiver fails
//! as a whole (down, moved, misconfigured, throttling) or one payload at a
//! time (a bug triggered by one event):
//!
//! * An error of the endpoint ([`Judged::Endpoint`]) pauses the sink; no
//!   delivery's attempts are counted, however long it lasts. A 410 Gone
//!   disables it until an operator re-enables it.
//! * A refusal or a 5xx/time-out concerns one event only when there is
//!   evidence that the receiver takes others: another request of the same
//!   round delivered, or the sink delivered since its last failure and this
//!   is the round's only failure (that evidence serves once). Then the
//!   refusal makes a dead letter, the 5xx an attempt of that delivery alone,
//!   backed off on its own and parked after `max_attempts` or `max_age`.
//! * Without evidence the failed deliveries become suspects: they wait a
//!   growing delay while new deliveries keep going, then go in requests of
//!   their own beside the others (a batch is split in halves, so that one
//!   bad event in a batch of 200 is found in 8 rounds), and the others'
//!   fate tells which it was. A receiver down for everyone thus costs one
//!   request per new status change, and charges no event.
//!
//! A parked or dead delivery holds its card's later events back (the store
//! does that), so that a receiver never sees a card's statuses out of order.

use super::policy::{Backoff, Judged};
use crate::codes::ErrorCode;
use crate::store::{Record, SinkState};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A round stops starting requests after this many failures with nothing
/// delivered: enough to tell a down receiver, not a flood of requests to it.
const FAILURES_PER_ROUND: usize = 3;

/// At most this many requests per round to a sink that batches (the
/// central base): the healthy batch and a few suspect groups.
const BATCHED_REQUESTS_PER_ROUND: usize = 8;

/// A sink's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The pause of the whole sink after a sink-wide failure.
    pub sink: Backoff,
    /// The back-off of one delivery that failed on its own.
    pub event: Backoff,
    /// The pause after the store could not record a round's outcomes.
    pub store: Backoff,
    /// A delivery that failed on its own this often is parked...
    pub max_attempts: u32,
    /// ... as is one whose status change is older than this when it fails.
    pub max_age: Duration,
    /// Deliveries per round.
    pub batch: usize,
    /// One request carries many events (the central base) rather than one.
    pub batched: bool,
}

/// A pending delivery, as the scheduler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub ord: i64,
    pub card_token: String,
    /// Attempts that failed on this delivery alone (from the store).
    pub attempts: u32,
    /// Since its status change was written.
    pub age: Duration,
}

/// One request of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub items: Vec<Pending>,
    /// Sent apart because it failed before without telling whose fault.
    pub suspect: bool,
}

/// Why the relay has nothing to send now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blocked {
    /// Until this instant (a pause), or something changes.
    Until(Instant),
    /// Until an operator re-enables the sink.
    Disabled,
}

/// What a round came to, for the relay to carry out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// To record in one transaction.
    pub records: Vec<Record>,
    /// Attempted deliveries left pending (counted as retries).
    pub retried: usize,
    /// The sink-wide failure that paused the sink and for how long, with
    /// the code health shows when the endpoint itself fails.
    pub paused: Option<(Option<ErrorCode>, String, Duration)>,
    /// The sink delivered: it is up.
    pub up: bool,
}

/// One sink's scheduler.
#[derive(Debug)]
pub struct Scheduler {
    limits: Limits,
    disabled: Option<String>,
    /// The sink's error as last recorded (written again only on change).
    error: Option<String>,
    paused_until: Option<Instant>,
    /// Until when the suspects wait after a round that failed without
    /// telling whose fault (other deliveries may go meanwhile: their fate
    /// is the evidence).
    suspects_until: Option<Instant>,
    /// Sink-wide failures in a row.
    streak: u32,
    /// The sink delivered since its last failure.
    proven: bool,
    /// Deliveries backed off on their own, until when.
    backoff: HashMap<i64, Instant>,
    /// Groups that failed together without telling whose fault.
    suspects: Vec<Vec<i64>>,
    /// Outcomes the store could not record yet.
    unrecorded: Vec<Record>,
    store_failures: u32,
    store_until: Option<Instant>,
}

impl Scheduler {
    pub fn new(limits: Limits, state: SinkState) -> Scheduler {
        Scheduler {
            limits,
            disabled: state.disabled,
            error: state.error,
            paused_until: None,
            suspects_until: None,
            streak: 0,
            proven: false,
            backoff: HashMap::new(),
            suspects: Vec::new(),
            unrecorded: Vec::new(),
            store_failures: 0,
            store_until: None,
        }
    }

    /// Whether nothing may be sent now, and until when.
    pub fn blocked(&self, now: Instant) -> Option<Blocked> {
        if self.disabled.is_some() {
            return Some(Blocked::Disabled);
        }
        [self.store_until, self.paused_until]
            .into_iter()
            .flatten()
            .filter(|t| *t > now)
            .max()
            .map(Blocked::Until)
    }

    /// Outcomes that could not be recorded, to record before anything is
    /// sent again (sending first would send them twice).
    pub fn take_unrecorded(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.unrecorded)
    }

    /// How many due rows to read: a round's worth beyond those backed off.
    pub fn read_limit(&self) -> usize {
        self.limits
            .batch
            .saturating_add(self.backoff.len().min(10_000))
    }

    /// The requests of the next round from the due rows (oldest first, at
    /// most one per card). Empty: nothing to send before [`Self::next_wake`].
    pub fn plan(&mut self, now: Instant, due: Vec<Pending>) -> Vec<Request> {
        self.backoff.retain(|_, until| *until > now);
        let mut pool: Vec<Pending> = due
            .into_iter()
            .filter(|p| !self.backoff.contains_key(&p.ord))
            .collect();
        let mut apart = Vec::new();
        if self.suspects_until.is_some_and(|t| t > now) {
            // The suspects wait; others go (they may be the evidence).
            let held: std::collections::HashSet<i64> =
                self.suspects.iter().flatten().copied().collect();
            pool.retain(|p| !held.contains(&p.ord));
            pool.truncate(self.limits.batch);
            return self.requests_of(pool, Vec::new());
        }
        for group in std::mem::take(&mut self.suspects) {
            let members: Vec<Pending> = group
                .iter()
                .filter_map(|ord| {
                    let i = pool.iter().position(|p| p.ord == *ord)?;
                    Some(pool.remove(i))
                })
                .collect();
            if members.len() > 1 {
                let mut first = members;
                let second = first.split_off(first.len() / 2);
                apart.push(first);
                apart.push(second);
            } else if !members.is_empty() {
                apart.push(members);
            }
        }
        // Suspects take at most half the round when others wait; the
        // others go first: whether they go through tells whose fault the
        // suspects' was.
        let half = if pool.is_empty() {
            self.limits.batch
        } else {
            (self.limits.batch / 2).max(1)
        };
        let mut taken = 0;
        let cut = apart
            .iter()
            .position(|g| {
                taken += g.len();
                taken > half
            })
            .unwrap_or(apart.len())
            .max(1)
            .min(apart.len());
        let later: Vec<Vec<Pending>> = apart.split_off(cut);
        self.suspects.extend(
            later
                .into_iter()
                .map(|g| g.into_iter().map(|p| p.ord).collect()),
        );
        let room = self
            .limits
            .batch
            .saturating_sub(apart.iter().map(Vec::len).sum());
        pool.truncate(room);
        self.requests_of(pool, apart)
    }

    /// The round's requests: `pool` (one batch, or one request each) first,
    /// then the suspect groups, as many as the round takes.
    fn requests_of(&mut self, pool: Vec<Pending>, apart: Vec<Vec<Pending>>) -> Vec<Request> {
        let mut requests = Vec::new();
        if self.limits.batched {
            if !pool.is_empty() {
                requests.push(Request {
                    items: pool,
                    suspect: false,
                });
            }
        } else {
            requests.extend(pool.into_iter().map(|p| Request {
                items: vec![p],
                suspect: false,
            }));
        }
        let cap = if self.limits.batched {
            BATCHED_REQUESTS_PER_ROUND.saturating_sub(requests.len())
        } else {
            usize::MAX
        };
        let mut apart = apart.into_iter();
        requests.extend(apart.by_ref().take(cap).map(|items| Request {
            items,
            suspect: true,
        }));
        // Suspects beyond this round's room keep their place.
        self.suspects
            .extend(apart.map(|g| g.into_iter().map(|p| p.ord).collect()));
        requests
    }

    /// When the earliest delivery backed off on its own, or the waiting
    /// suspects, fall due.
    pub fn next_wake(&self) -> Option<Instant> {
        let suspects = self.suspects_until.filter(|_| !self.suspects.is_empty());
        self.backoff.values().copied().chain(suspects).min()
    }

    /// Whether to start another request of the round, given the answers so
    /// far: not after an error of the endpoint, nor after a few failures
    /// with nothing delivered.
    pub fn keep_sending(&self, so_far: &[&Judged]) -> bool {
        if so_far.iter().any(|j| matches!(j, Judged::Endpoint { .. })) {
            return false;
        }
        so_far.iter().any(|j| matches!(j, Judged::Delivered { .. }))
            || so_far.len() < FAILURES_PER_ROUND
    }

    /// What the round's answers mean. `wall_ms` is the wall clock (Unix ms),
    /// only to show when a delivery is tried again; `draw` in [0, 1) jitters
    /// the delays.
    pub fn judge(
        &mut self,
        now: Instant,
        wall_ms: i64,
        draw: f64,
        round: Vec<(Request, Option<Judged>)>,
    ) -> Outcome {
        let answered = || round.iter().filter_map(|(_, j)| j.as_ref());
        let delivered = answered().any(|j| matches!(j, Judged::Delivered { .. }));
        let failures = answered()
            .filter(|j| matches!(j, Judged::Refused { .. } | Judged::Unsure { .. }))
            .count();
        let endpoint = answered().find_map(|j| match j {
            Judged::Endpoint {
                why,
                code,
                retry_after,
                gone,
            } => Some((why.clone(), *code, *retry_after, *gone)),
            _ => None,
        });
        // Whether a failure here is the event's.
        let evidence = if delivered {
            true
        } else if failures == 1 && endpoint.is_none() && self.proven {
            // The sink delivered since its last failure: this one failure
            // is taken as the event's, once.
            self.proven = false;
            true
        } else {
            false
        };
        let mut out = Outcome::default();
        let mut sink_failure: Option<(Option<ErrorCode>, String, Option<Duration>)> = None;
        for (request, judged) in round {
            let Some(judged) = judged else {
                if request.suspect {
                    self.suspects
                        .push(request.items.iter().map(|p| p.ord).collect());
                }
                continue;
            };
            match judged {
                Judged::Delivered { operation } => {
                    for p in &request.items {
                        self.backoff.remove(&p.ord);
                        out.records.push(Record::Delivered { ord: p.ord });
                    }
                    if let (Some(operation), [p]) = (operation, request.items.as_slice()) {
                        out.records.push(Record::D1Operation {
                            card_token: p.card_token.clone(),
                            operation,
                        });
                    }
                }
                Judged::Endpoint { .. } => out.retried += request.items.len(),
                Judged::Refused { why } | Judged::Unsure { why, .. }
                    if request.items.len() > 1 || !evidence =>
                {
                    // Whose fault is not known yet: apart next round.
                    out.retried += request.items.len();
                    self.suspects
                        .push(request.items.iter().map(|p| p.ord).collect());
                    sink_failure.get_or_insert((None, why, None));
                }
                Judged::Refused { why } => {
                    let p = &request.items[0];
                    self.backoff.remove(&p.ord);
                    out.records.push(Record::Dead { ord: p.ord, why });
                }
                Judged::Unsure { why, retry_after } => {
                    let p = &request.items[0];
                    let attempts = p.attempts.saturating_add(1);
                    if attempts >= self.limits.max_attempts || p.age >= self.limits.max_age {
                        self.backoff.remove(&p.ord);
                        out.records.push(Record::Parked {
                            ord: p.ord,
                            why: format!(
                                "{why} (parked after {attempts} attempts over {})",
                                humantime::format_duration(Duration::from_secs(p.age.as_secs()))
                            ),
                        });
                    } else {
                        let delay = self.limits.event.delay(attempts, draw, retry_after);
                        self.backoff.insert(p.ord, now + delay);
                        out.retried += 1;
                        out.records.push(Record::Failed {
                            ord: p.ord,
                            why,
                            next_ms: wall_ms.saturating_add(delay.as_millis() as i64),
                        });
                    }
                }
            }
        }
        if let Some((why, code, retry_after, gone)) = endpoint {
            if gone {
                self.disabled = Some(why.clone());
                self.error = Some(why.clone());
                out.records.push(Record::Disabled { why: why.clone() });
                out.paused = Some((Some(code), why, Duration::ZERO));
                self.proven = false;
                return out;
            }
            sink_failure = Some((Some(code), why, retry_after));
        } else if delivered || evidence {
            sink_failure = None;
        }
        match sink_failure {
            Some((code, why, retry_after)) => {
                self.proven = false;
                self.streak = self.streak.saturating_add(1);
                let pause = self.limits.sink.delay(self.streak, draw, retry_after);
                // The endpoint's own error stops everything; a failure
                // whose fault is unknown holds back only the suspects.
                match code {
                    Some(_) => self.paused_until = Some(now + pause),
                    None => self.suspects_until = Some(now + pause),
                }
                if self.error.as_deref() != Some(why.as_str()) {
                    self.error = Some(why.clone());
                    out.records.push(Record::SinkError {
                        why: Some(why.clone()),
                    });
                }
                out.paused = Some((code, why, pause));
            }
            None if delivered => {
                self.proven = true;
                self.streak = 0;
                self.paused_until = None;
                self.suspects_until = None;
                out.up = true;
                if self.error.take().is_some() {
                    out.records.push(Record::SinkError { why: None });
                }
            }
            None => {}
        }
        out
    }

    /// The store recorded the last outcomes.
    pub fn recorded(&mut self) {
        self.store_failures = 0;
        self.store_until = None;
    }

    /// The store could not record `records`: they are kept, and recorded
    /// again after a growing pause before anything else is sent.
    pub fn not_recorded(&mut self, now: Instant, draw: f64, records: Vec<Record>) -> Duration {
        let mut records = records;
        records.append(&mut self.unrecorded);
        self.unrecorded = records;
        self.store_failures = self.store_failures.saturating_add(1);
        let pause = self.limits.store.delay(self.store_failures, draw, None);
        self.store_until = Some(now + pause);
        pause
    }

    /// The store could not be read: wait before reading again.
    pub fn store_failed(&mut self, now: Instant, draw: f64) -> Duration {
        self.not_recorded(now, draw, Vec::new())
    }

    /// An operator asked the sink to go now: pauses and back-offs are
    /// dropped; `state` is the sink's state in the store (re-enabled, or
    /// not).
    pub fn nudge(&mut self, state: SinkState) {
        self.paused_until = None;
        self.suspects_until = None;
        self.streak = 0;
        self.backoff.clear();
        self.store_until = None;
        self.disabled = state.disabled;
        self.error = state.error;
    }

    pub fn disabled(&self) -> Option<&str> {
        self.disabled.as_deref()
    }
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
