//! The relay: one task per sink that carries out its [`Scheduler`]'s
//! decisions. It reads what is due from the store's outbox, sends the
//! round's requests (at most `in_flight` at once), hands each answer to the
//! scheduler, records what that came to in one transaction, and sleeps
//! until the scheduler's next wake-up, a commit (a new status change goes
//! out at once) or an operator's nudge (`satellite outbox retry`, `replay`,
//! `enable`), whichever comes first. Every delay is on the monotonic clock:
//! a wall clock set back or forward changes nothing here.
//!
//! What the store cannot record is kept and recorded again after a growing
//! pause before anything else is sent: sending first would send it twice.

use super::policy::Judged;
use super::scheduler::{Blocked, Limits, Outcome, Pending, Request, Scheduler};
use super::sink::Sink;
use crate::metrics::{Delivery, Metrics};
use crate::store::{Due, Record, SinkState, Store, StoreError};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long the relay sleeps at most with nothing due (a missed wake-up
/// costs no more than this).
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// One sink's relay.
struct Relay {
    sink: Arc<Sink>,
    store: Arc<Store>,
    metrics: Metrics,
    sched: Scheduler,
    /// The store's trouble, told once and then at a slowing rate.
    trouble: crate::outage::Outage,
    /// When each status change of the round was written, for the latency.
    written_at: HashMap<i64, String>,
}

/// Runs one sink until `stop`, counting each recorded outcome in `metrics`.
pub async fn run(
    sink: Sink,
    store: Arc<Store>,
    limits: Limits,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let state = sink_state(&store, &sink.name).await;
    if let Some(why) = &state.disabled {
        tracing::error!(sink = %sink.name, error = %why, "sink disabled: nothing is sent until `satellite outbox enable` re-enables it");
    }
    let mut relay = Relay {
        sink: Arc::new(sink),
        store: store.clone(),
        metrics,
        sched: Scheduler::new(limits, state),
        trouble: Default::default(),
        written_at: HashMap::new(),
    };
    let mut written = store.written();
    let mut nudged = store.nudged();
    let mut nudges = nudges_of(&mut nudged, &relay.sink.name);
    loop {
        if stop.is_cancelled() {
            return;
        }
        let n = nudges_of(&mut nudged, &relay.sink.name);
        if n != nudges {
            nudges = n;
            let state = sink_state(&store, &relay.sink.name).await;
            tracing::info!(sink = %relay.sink.name, disabled = state.disabled.is_some(), "sending now, as asked");
            relay.sched.nudge(state);
        }
        let unrecorded = relay.sched.take_unrecorded();
        if !unrecorded.is_empty() {
            relay
                .apply(Outcome {
                    records: unrecorded,
                    ..Outcome::default()
                })
                .await;
            continue;
        }
        // Marked before the outbox is read: a commit from then on wakes an
        // idle relay.
        written.borrow_and_update();
        let wake = match relay.sched.blocked(Instant::now()) {
            Some(Blocked::Until(t)) => Some(t),
            Some(Blocked::Disabled) => None,
            None => match relay.round().await {
                Some(Step::Sent) => continue,
                Some(Step::Idle(t)) => {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = nudged.changed() => {}
                        _ = written.changed() => {}
                        _ = tokio::time::sleep_until(t.into()) => {}
                    }
                    continue;
                }
                None => continue,
            },
        };
        // Paused or disabled: only time, an operator or the stop wake it.
        let until = wake.unwrap_or_else(|| Instant::now() + IDLE_RECHECK);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = nudged.changed() => {}
            _ = tokio::time::sleep_until(until.into()) => {}
        }
    }
}

/// What a round did.
enum Step {
    /// Requests went out (or outcomes were recorded): plan again at once.
    Sent,
    /// Nothing to send before this instant (or a commit, or a nudge).
    Idle(Instant),
}

impl Relay {
    /// Reads what is due, sends one round and records its outcomes. `None`:
    /// the store could not be read (the scheduler pauses).
    async fn round(&mut self) -> Option<Step> {
        let (store, name, limit) = (
            self.store.clone(),
            self.sink.name.clone(),
            self.sched.read_limit(),
        );
        let due = match tokio::task::spawn_blocking(move || store.due(&name, limit)).await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                self.store_trouble(&e, "cannot read the outbox; retrying");
                self.sched.store_failed(Instant::now(), draw());
                return None;
            }
            Err(e) => {
                tracing::error!(sink = %self.sink.name, error = %e, "outbox read failed");
                self.sched.store_failed(Instant::now(), draw());
                return None;
            }
        };
        let pending = due.iter().map(pending_of).collect();
        let requests = self.sched.plan(Instant::now(), pending);
        if requests.is_empty() {
            let next = self.sched.next_wake();
            let idle = Instant::now() + IDLE_RECHECK;
            return Some(Step::Idle(next.map_or(idle, |t| t.min(idle))));
        }
        let mut by_ord: HashMap<i64, Due> = due.into_iter().map(|d| (d.ord, d)).collect();
        self.written_at = by_ord
            .values()
            .map(|d| (d.ord, d.event.occurred_at.clone()))
            .collect();
        let rounds = self.send(requests, &mut by_ord).await;
        for outcome in rounds {
            self.apply(outcome).await;
        }
        Some(Step::Sent)
    }

    /// Sends the round's requests, at most `in_flight` at once, none
    /// started once the scheduler says stop. One outcome for the round, or
    /// one per answer where each must be recorded as soon as it is known
    /// (D1).
    async fn send(&mut self, requests: Vec<Request>, due: &mut HashMap<i64, Due>) -> Vec<Outcome> {
        use futures::stream::{FuturesUnordered, StreamExt};
        let each = self.sink.record_each();
        let mut answers: Vec<(Request, Option<Judged>)> = Vec::new();
        // Every answer of the round so far, for `keep_sending`.
        let mut seen: Vec<Judged> = Vec::new();
        let mut outcomes = Vec::new();
        let mut running = FuturesUnordered::new();
        let mut queue = requests.into_iter();
        let mut stopped = false;
        loop {
            while !stopped && running.len() < self.sink.in_flight.max(1) {
                let so_far: Vec<&Judged> = seen.iter().collect();
                if !self.sched.keep_sending(&so_far) || self.sched.blocked(Instant::now()).is_some()
                {
                    stopped = true;
                    break;
                }
                let Some(request) = queue.next() else { break };
                let items: Vec<Due> = request
                    .items
                    .iter()
                    .filter_map(|p| due.remove(&p.ord))
                    .collect();
                let sink = self.sink.clone();
                running.push(async move {
                    let judged = sink.request(&items).await;
                    (request, judged)
                });
            }
            let Some((request, judged)) = running.next().await else {
                break;
            };
            seen.push(judged.clone());
            if each {
                // Recorded now: a crash loses at most this answer.
                let o = self.judge(vec![(request, Some(judged))]);
                self.apply(o).await;
            } else {
                answers.push((request, Some(judged)));
            }
        }
        // Not started: the scheduler keeps suspects in their place.
        answers.extend(queue.map(|r| (r, None)));
        if !answers.is_empty() {
            outcomes.push(self.judge(answers));
        }
        outcomes
    }

    fn judge(&mut self, round: Vec<(Request, Option<Judged>)>) -> Outcome {
        let outcome = self
            .sched
            .judge(Instant::now(), super::http::unix_ms(), draw(), round);
        let name = &self.sink.name;
        if let Some((code, why, pause)) = &outcome.paused {
            if let Some(code) = code {
                self.sink.down(*code, why);
            }
            match self.sched.disabled() {
                Some(_) => {
                    tracing::error!(sink = %name, error = %why, "sink disabled: nothing is sent until `satellite outbox enable {name}`")
                }
                None if code.is_none() => {
                    tracing::info!(sink = %name, error = %why, retry_in_ms = pause.as_millis() as u64, "deliveries failed and whose fault is not known yet: they wait, new ones go meanwhile")
                }
                None => {
                    tracing::info!(sink = %name, error = %why, retry_in_ms = pause.as_millis() as u64, "sink paused; will retry")
                }
            }
        }
        for r in &outcome.records {
            match r {
                Record::Dead { ord, why } => {
                    tracing::warn!(sink = %name, ord, error = %why, "delivery refused for good: dead letter; the card's later status changes wait for its replay")
                }
                Record::Parked { ord, why } => {
                    tracing::warn!(sink = %name, ord, error = %why, "delivery parked; the card's later status changes wait for its replay")
                }
                Record::Failed { ord, why, .. } => {
                    tracing::info!(sink = %name, ord, error = %why, "delivery failed on its own; backed off alone")
                }
                _ => {}
            }
        }
        outcome
    }

    /// Records an outcome in one transaction; counts it once recorded.
    async fn apply(&mut self, outcome: Outcome) {
        let Outcome {
            records, retried, ..
        } = outcome;
        if records.is_empty() {
            self.count(&[], retried);
            return;
        }
        let (store, name) = (self.store.clone(), self.sink.name.clone());
        let recorded = {
            let records = records.clone();
            tokio::task::spawn_blocking(move || store.record(&name, &records)).await
        };
        match recorded {
            Ok(Ok(())) => {
                if let Some(end) = self.trouble.recovered(Instant::now()) {
                    tracing::info!(sink = %self.sink.name, lasted_ms = end.lasted.as_millis() as u64, failed_attempts = end.failures, "delivery outcomes are recorded again");
                }
                self.sched.recorded();
                self.count(&records, retried);
            }
            Ok(Err(e)) => {
                self.store_trouble(
                    &e,
                    "cannot record delivery outcomes; recording again before sending more",
                );
                self.sched.not_recorded(Instant::now(), draw(), records);
            }
            Err(e) => {
                tracing::error!(sink = %self.sink.name, error = %e, "outbox write failed");
                self.sched.not_recorded(Instant::now(), draw(), records);
            }
        }
    }

    fn count(&self, records: &[Record], retried: usize) {
        let name = &self.sink.name;
        for r in records {
            match r {
                Record::Delivered { ord } => {
                    let latency = self.written_at.get(ord).map(|at| since(at));
                    self.metrics.delivery(
                        name,
                        Delivery::Delivered,
                        Some(latency.unwrap_or_default()),
                    );
                }
                Record::Dead { .. } | Record::Parked { .. } => {
                    self.metrics.delivery(name, Delivery::Dead, None)
                }
                _ => {}
            }
        }
        for _ in 0..retried {
            self.metrics.delivery(name, Delivery::Retry, None);
        }
    }

    fn store_trouble(&mut self, e: &StoreError, what: &str) {
        if let Some(n) = self.trouble.failed(Instant::now()) {
            tracing::error!(sink = %self.sink.name, error = %e, down_s = n.since.as_secs(), failed_attempts = n.failures, "{what}");
        }
    }
}

fn pending_of(d: &Due) -> Pending {
    Pending {
        ord: d.ord,
        card_token: d.job.meta.card_token.clone(),
        attempts: d.attempts,
        age: since(&d.event.occurred_at),
    }
}

/// This sink's nudge count, marking the channel seen (so that waiting on
/// it wakes only on the next nudge).
fn nudges_of(rx: &mut tokio::sync::watch::Receiver<crate::store::Nudges>, sink: &str) -> u64 {
    rx.borrow_and_update().get(sink).copied().unwrap_or(0)
}

async fn sink_state(store: &Arc<Store>, sink: &str) -> SinkState {
    let (store, name) = (store.clone(), sink.to_string());
    tokio::task::spawn_blocking(move || store.sink_state(&name))
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default()
}

/// Time since `at` (RFC 3339); zero when it cannot be read or lies ahead
/// (a clock set back).
fn since(at: &str) -> Duration {
    humantime::parse_rfc3339(at)
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// A uniform draw in [0, 1) for the jitter.
pub(crate) fn draw() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
