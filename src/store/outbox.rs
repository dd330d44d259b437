//! The outbox, per sink: which status changes each upstream still has to
//! receive, which it has, and which it refused for good (dead letters).
//!
//! Rows are written with their event (`push_event`); the relay reads what is
//! due, sends it, and records each answer here. A card's events go out in
//! its order: an event is due only when no earlier event of the same card is
//! still pending for that sink. A dead letter does not hold back the card's
//! later events, nor any other card.

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

/// How far behind one sink is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkDepth {
    pub sink: String,
    pub kind: String,
    /// False when the configuration no longer names it (pending rows wait).
    pub active: bool,
    pub pending: u64,
    pub dead: u64,
    /// When the oldest pending status change was written.
    pub oldest_pending_at: Option<String>,
    pub last_error: Option<String>,
}

/// An event a sink refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    pub sink: String,
    pub ord: i64,
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

    /// Up to `limit` deliveries of `sink` due at `now_ms`, oldest first, at
    /// most one per card (the earliest pending of each card), so that a
    /// card's events never overtake each other.
    pub fn due(&self, sink: &str, now_ms: i64, limit: usize) -> Result<Vec<Due>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT d.event_ord, d.attempts, {jobs}, {events} \
                 FROM deliveries d JOIN events e ON e.ord = d.event_ord \
                 JOIN jobs j ON j.seq = d.job_seq \
                 WHERE d.sink = ?1 AND d.state = 'PENDING' AND d.due_ms <= ?2 \
                 AND NOT EXISTS (SELECT 1 FROM deliveries p WHERE p.sink = d.sink \
                     AND p.state = 'PENDING' AND p.job_seq = d.job_seq AND p.seq < d.seq) \
                 ORDER BY d.event_ord LIMIT ?3",
                jobs = prefixed("j", super::JOB_COLUMNS),
                events = super::EVENT_COLUMNS,
            ))
            .ctx("due")?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st
            .query_map(params![sink, now_ms, limit], |r| {
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

    /// When the next pending delivery of `sink` falls due (Unix ms), if any.
    pub fn next_due_ms(&self, sink: &str) -> Result<Option<i64>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT min(due_ms) FROM deliveries WHERE sink = ?1 AND state = 'PENDING'",
        )
        .and_then(|mut st| st.query_row([sink], |r| r.get(0)))
        .ctx("next_due")
    }

    /// The receiver took these (a 2xx).
    pub fn delivered(&self, sink: &str, ords: &[i64]) -> Result<(), StoreError> {
        self.settle(sink, ords, "DELIVERED", None, None)
    }

    /// Try these again at `due_ms`; the attempt count goes up.
    pub fn retry_at(
        &self,
        sink: &str,
        ords: &[i64],
        due_ms: i64,
        error: &str,
    ) -> Result<(), StoreError> {
        self.settle(sink, ords, "PENDING", Some(due_ms), Some(error))
    }

    /// The receiver refused these for good: dead letters.
    pub fn dead(&self, sink: &str, ords: &[i64], error: &str) -> Result<(), StoreError> {
        self.settle(sink, ords, "DEAD", None, Some(error))
    }

    fn settle(
        &self,
        sink: &str,
        ords: &[i64],
        state: &str,
        due_ms: Option<i64>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        if ords.is_empty() {
            return Ok(());
        }
        let error = error.map(dialect::redact::mask_text);
        self.write("outbox", |tx| {
            let done = (state != "PENDING").then(now);
            let mut st = tx
                .prepare_cached(
                    "UPDATE deliveries SET state = ?3, attempts = attempts + 1, \
                     due_ms = coalesce(?4, due_ms), last_error = coalesce(?5, last_error), \
                     done_at = ?6 WHERE sink = ?1 AND event_ord = ?2 AND state = 'PENDING'",
                )
                .ctx("outbox")?;
            for ord in ords {
                st.execute(params![sink, ord, state, due_ms, error, done])
                    .ctx("outbox")?;
            }
            Ok(())
        })
    }

    /// Each known sink's backlog, active ones first.
    pub fn outbox_depths(&self) -> Result<Vec<SinkDepth>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT s.name, s.kind, s.active, \
                 (SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 'PENDING'), \
                 (SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 'DEAD'), \
                 (SELECT min(d.created_at) FROM deliveries d \
                     WHERE d.sink = s.name AND d.state = 'PENDING'), \
                 (SELECT d.last_error FROM deliveries d WHERE d.sink = s.name \
                     AND d.last_error IS NOT NULL ORDER BY d.event_ord DESC LIMIT 1) \
                 FROM sinks s ORDER BY s.active DESC, s.name",
            )
            .ctx("outbox_depths")?;
        let rows = st
            .query_map([], |r| {
                Ok(SinkDepth {
                    sink: r.get(0)?,
                    kind: r.get(1)?,
                    active: r.get::<_, i64>(2)? == 1,
                    pending: r.get::<_, i64>(3)?.max(0) as u64,
                    dead: r.get::<_, i64>(4)?.max(0) as u64,
                    oldest_pending_at: r.get(5)?,
                    last_error: r.get(6)?,
                })
            })
            .ctx("outbox_depths")?;
        rows.collect::<Result<_, _>>().ctx("outbox_depths")
    }

    /// Dead letters, oldest first; of one sink, or of all.
    pub fn dead_letters(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT d.sink, d.event_ord, d.attempts, d.last_error, d.done_at, {} \
                 FROM deliveries d JOIN events e ON e.ord = d.event_ord \
                 JOIN jobs j ON j.seq = d.job_seq \
                 WHERE d.state = 'DEAD' AND (?1 IS NULL OR d.sink = ?1) \
                 ORDER BY d.event_ord, d.sink",
                super::EVENT_COLUMNS
            ))
            .ctx("dead_letters")?;
        let rows = st
            .query_map([sink], |r| {
                Ok(DeadLetter {
                    sink: r.get(0)?,
                    ord: r.get(1)?,
                    attempts: u32::try_from(r.get::<_, i64>(2)?).unwrap_or(u32::MAX),
                    error: r.get(3)?,
                    dead_at: r.get(4)?,
                    event: event_at(r, 5)?,
                })
            })
            .ctx("dead_letters")?;
        rows.collect::<Result<_, _>>().ctx("dead_letters")
    }

    /// Puts dead letters back in the queue, due now: one (`ord`) or all of
    /// the sink's. Returns how many.
    pub fn replay(&self, sink: &str, ord: Option<i64>) -> Result<usize, StoreError> {
        self.write("replay", |tx| {
            tx.execute(
                "UPDATE deliveries SET state = 'PENDING', attempts = 0, due_ms = 0, \
                 done_at = NULL WHERE sink = ?1 AND state = 'DEAD' \
                 AND (?2 IS NULL OR event_ord = ?2)",
                params![sink, ord],
            )
            .ctx("replay")
        })
    }

    /// Makes a sink's pending deliveries due now, past their back-off (a
    /// technician fixed the receiver and does not want to wait). Returns
    /// how many were waiting.
    pub fn retry_now(&self, sink: &str) -> Result<usize, StoreError> {
        self.write("retry_now", |tx| {
            tx.execute(
                "UPDATE deliveries SET due_ms = 0 WHERE sink = ?1 AND state = 'PENDING' \
                 AND due_ms > 0",
                [sink],
            )
            .ctx("retry_now")
        })
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

    /// Keeps what D1 answered for a produced card.
    pub fn set_d1_operation(&self, card_token: &str, operation_id: &str) -> Result<(), StoreError> {
        self.write("set_d1_operation", |tx| {
            let n = tx
                .execute(
                    "UPDATE jobs SET d1_operation_id = ?2 WHERE card_token = ?1",
                    params![card_token, operation_id],
                )
                .ctx("set_d1_operation")?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
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

fn prefixed(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
