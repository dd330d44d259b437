//! The outbox, per sink: which status changes each upstream still has to
//! receive, which it has, and which it refused for good (dead letters).
//!
//! Rows are written with their event (`push_event`); the relay reads what is
//! due, sends it, and records what came of a round here, in one transaction
//! ([`Store::record`]). A card's events go out in its order: an event is due
//! only when every earlier event of the same card has been delivered to that
//! sink. A dead or parked delivery therefore holds back its card's later
//! events (never another card's), and a replay sends them in order.
//!
//! When a delivery is tried again is the relay's business (its monotonic
//! clock); the store keeps what must survive a restart: the state, the
//! attempts that failed on the delivery alone, and the sink's own state.

use super::error::Context;
use super::{event_at, job_at, now, Event, Job, Status, Store, StoreError};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

/// One upstream, as the store knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSpec {
    /// Unique name (the configuration's).
    pub name: String,
    /// `central_base`, `webhook`, `d1`: shown, not interpreted.
    pub kind: String,
    /// The statuses it is sent; `None`: every status change.
    pub statuses: Option<Vec<Status>>,
}

/// A delivery that is due: the event and its job (the forms need both).
#[derive(Debug, Clone)]
pub struct Due {
    /// The event's global order: the delivery's key within its sink.
    pub ord: i64,
    pub attempts: u32,
    pub job: Job,
    pub event: Event,
}

/// What a round of a sink came to, recorded in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// The receiver took it (a 2xx).
    Delivered { ord: i64 },
    /// It failed on its own; tried again around `next_ms` (Unix ms, shown).
    Failed { ord: i64, why: String, next_ms: i64 },
    /// The receiver refused it for good.
    Dead { ord: i64, why: String },
    /// It failed on its own too often or for too long.
    Parked { ord: i64, why: String },
    /// The sink's current sink-wide error; `None` once a delivery went
    /// through.
    SinkError { why: Option<String> },
    /// The receiver said the endpoint is gone: nothing more is sent until an
    /// operator re-enables it.
    Disabled { why: String },
    /// What D1 answered for a tracked card.
    D1Operation {
        card_token: String,
        operation: String,
    },
}

/// The state of a sink that survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkState {
    pub error: Option<String>,
    pub disabled: Option<String>,
}

/// Per sink, how many times an operator asked it to go now.
pub type Nudges = std::collections::BTreeMap<String, u64>;

/// How far behind one sink is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkDepth {
    pub sink: String,
    pub kind: String,
    /// False when the configuration no longer names it (pending rows wait).
    pub active: bool,
    pub pending: u64,
    /// Of the pending, those waiting behind an earlier dead or parked
    /// delivery of their card (a replay releases them, in order).
    pub held: u64,
    pub dead: u64,
    pub parked: u64,
    /// When the oldest pending status change was written.
    pub oldest_pending_at: Option<String>,
    /// The sink-wide error now (cleared by the next delivery that goes
    /// through), and since when.
    pub last_error: Option<String>,
    pub error_since: Option<String>,
    /// Why nothing is sent until an operator re-enables it (410 Gone).
    pub disabled: Option<String>,
}

/// An event a sink refused for good (`DEAD`), or that failed on its own
/// too often or for too long (`PARKED`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub sink: String,
    pub ord: i64,
    pub state: String,
    pub event: Event,
    pub attempts: u32,
    pub error: Option<String>,
    pub dead_at: Option<String>,
}

impl Store {
    /// Makes `sinks` the active ones (added if new, their filter updated);
    /// every other known sink becomes inactive, its pending rows kept.
    pub fn configure_sinks(&self, sinks: &[SinkSpec]) -> Result<(), StoreError> {
        self.write("configure_sinks", |tx| {
            tx.execute("UPDATE sinks SET active = 0", [])
                .ctx("configure_sinks")?;
            let at = now();
            for s in sinks {
                if s.name.trim().is_empty() {
                    return Err(StoreError::Invalid("a sink needs a name".into()));
                }
                let statuses = s
                    .statuses
                    .as_ref()
                    .map(|v| v.iter().map(|st| st.as_str()).collect::<Vec<_>>().join(" "));
                tx.execute(
                    "INSERT INTO sinks (name, kind, statuses, active, added_at) \
                     VALUES (?1, ?2, ?3, 1, ?4) \
                     ON CONFLICT (name) DO UPDATE SET kind = ?2, statuses = ?3, active = 1",
                    params![s.name, s.kind, statuses, at],
                )
                .ctx("configure_sinks")?;
            }
            Ok(())
        })
    }

    /// Up to `limit` pending deliveries of `sink`, oldest first, at most one
    /// per card: a card's earliest delivery not yet delivered, if it is
    /// pending (one dead or parked holds the card's later ones back).
    pub fn due(&self, sink: &str, limit: usize) -> Result<Vec<Due>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT d.event_ord, d.attempts, {jobs}, {events} \
                 FROM deliveries d JOIN events e ON e.ord = d.event_ord \
                 JOIN jobs j ON j.seq = d.job_seq \
                 WHERE d.sink = ?1 AND d.state = 'PENDING' \
                 AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.sink = d.sink \
                     AND p.state <> 'DELIVERED' AND p.job_seq = d.job_seq AND p.seq < d.seq) \
                 ORDER BY d.event_ord LIMIT ?2",
                jobs = prefixed("j", super::JOB_COLUMNS),
                events = super::EVENT_COLUMNS,
            ))
            .ctx("due")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st
            .query_map(params![sink, limit], |r| {
                let job = job_at(r, 2)?;
                let event = event_at(r, 2 + JOB_FIELDS)?;
                Ok(Due {
                    ord: r.get(0)?,
                    attempts: u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
                    job,
                    event,
                })
            })
            .ctx("due")?;
        rows.collect::<Result<_, _>>().ctx("due")
    }

    /// What `sink` was left in: its current error, and why it is disabled
    /// (the relay starts from it).
    pub fn sink_state(&self, sink: &str) -> Result<SinkState, StoreError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT error, disabled_why FROM sinks WHERE name = ?1")
            .and_then(|mut st| {
                st.query_row([sink], |r| {
                    Ok(SinkState {
                        error: r.get(0)?,
                        disabled: r.get(1)?,
                    })
                })
                .optional()
            })
            .ctx("sink_state")?
            .ok_or(StoreError::NotFound)
    }

    /// Applies what came of a round of `sink`, all or nothing.
    pub fn record(&self, sink: &str, records: &[Record]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        self.write("outbox", |tx| {
            let at = now();
            let mut settle = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = ?3, attempts = attempts + ?4, \
                     due_ms = coalesce(?5, due_ms), last_error = coalesce(?6, last_error), \
                     done_at = ?7 WHERE sink = ?1 AND event_ord = ?2 AND state = 'PENDING'",
                )
                .ctx("outbox")?;
            for r in records {
                match r {
                    Record::Delivered { ord } => settle
                        .execute(params![
                            sink,
                            ord,
                            "DELIVERED",
                            0,
                            None::<i64>,
                            None::<String>,
                            at
                        ])
                        .map(drop),
                    Record::Failed { ord, why, next_ms } => settle
                        .execute(params![
                            sink,
                            ord,
                            "PENDING",
                            1,
                            next_ms,
                            mask(why),
                            None::<String>
                        ])
                        .map(drop),
                    Record::Dead { ord, why } => settle
                        .execute(params![sink, ord, "DEAD", 1, None::<i64>, mask(why), at])
                        .map(drop),
                    Record::Parked { ord, why } => settle
                        .execute(params![sink, ord, "PARKED", 1, None::<i64>, mask(why), at])
                        .map(drop),
                    Record::SinkError { why } => tx
                        .execute(
                            "UPDATE sinks SET error = ?2, \
                             error_at = CASE WHEN ?2 IS NULL THEN NULL \
                                 WHEN error IS NULL THEN ?3 ELSE error_at END \
                             WHERE name = ?1",
                            params![sink, why.as_deref().map(mask), at],
                        )
                        .map(drop),
                    Record::Disabled { why } => tx
                        .execute(
                            "UPDATE sinks SET disabled_at = ?3, disabled_why = ?2, error = ?2, \
                             error_at = ?3 WHERE name = ?1",
                            params![sink, mask(why), at],
                        )
                        .map(drop),
                    Record::D1Operation {
                        card_token,
                        operation,
                    } => tx
                        .execute(
                            "UPDATE jobs SET d1_operation_id = ?2 WHERE card_token = ?1",
                            params![card_token, operation],
                        )
                        .map(drop),
                }
                .ctx("outbox")?;
            }
            Ok(())
        })
    }

    /// A receiver that changes when an operator asks a sink to go now
    /// (retry, replay, enable): the sink's relay drops its pauses.
    pub fn nudged(&self) -> tokio::sync::watch::Receiver<Nudges> {
        self.nudges.subscribe()
    }

    pub(super) fn nudge(&self, sink: &str) {
        self.nudges.send_modify(|m| {
            let n = m.entry(sink.to_string()).or_default();
            *n = n.wrapping_add(1);
        });
    }

    /// Forgets delivered history older than `before` (RFC 3339): events all
    /// of whose deliveries are done, of final jobs, except each job's last
    /// event (its final status stays, as does the job row). Returns how many
    /// events went.
    pub fn prune(&self, before: &str) -> Result<usize, StoreError> {
        self.write("prune", |tx| {
            tx.execute(
                "DELETE FROM events WHERE ord IN ( \
                   SELECT e.ord FROM events e JOIN jobs j ON j.seq = e.job_seq \
                   WHERE e.occurred_at < ?1 AND e.seq < j.last_event_seq \
                   AND j.status NOT IN ('READY', 'IN_PROGRESS') \
                   AND NOT EXISTS (SELECT 1 FROM deliveries d \
                       WHERE d.event_ord = e.ord AND d.state <> 'DELIVERED'))",
                [before],
            )
            .ctx("prune")
        })
    }

    /// What D1 answered for this card, if it was tracked.
    pub fn d1_operation(&self, card_token: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT d1_operation_id FROM jobs WHERE card_token = ?1")
            .and_then(|mut st| {
                st.query_row([card_token], |r| r.get::<_, Option<String>>(0))
                    .optional()
            })
            .map(Option::flatten)
            .ctx("d1_operation")
    }
}

/// How many columns `JOB_COLUMNS` names.
const JOB_FIELDS: usize = 15;

fn mask(why: &str) -> String {
    dialect::redact::mask_text(why)
}

fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
