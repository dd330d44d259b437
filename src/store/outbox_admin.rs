//! The outbox as a technician sees and steers it: each sink's backlog and
//! state, the dead and parked deliveries, and the commands that send again
//! (replay, retry now, re-enable). Each command nudges the sink's relay, so
//! that it acts at once instead of sleeping out a pause.

use super::error::Context;
use super::outbox::{DeadLetter, SinkDepth};
use super::{event_at, Store, StoreError};
use rusqlite::params;

impl Store {
    /// Each known sink's backlog and state, active ones first.
    pub fn outbox_depths(&self) -> Result<Vec<SinkDepth>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT s.name, s.kind, s.active, \
                 (SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 'PENDING'), \
                 (SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 'PENDING' \
                     AND EXISTS (SELECT 1 FROM deliveries p WHERE p.sink = d.sink \
                         AND p.job_seq = d.job_seq AND p.seq < d.seq \
                         AND p.state IN ('DEAD', 'PARKED'))), \
                 (SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 'DEAD'), \
                 (SELECT count(*) FROM deliveries d WHERE d.sink = s.name AND d.state = 'PARKED'), \
                 (SELECT min(d.created_at) FROM deliveries d \
                     WHERE d.sink = s.name AND d.state = 'PENDING'), \
                 s.error, s.error_at, s.disabled_why \
                 FROM sinks s ORDER BY s.active DESC, s.name",
            )
            .ctx("outbox_depths")?;
        let count = |r: &rusqlite::Row<'_>, i| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
        let rows = st
            .query_map([], |r| {
                Ok(SinkDepth {
                    sink: r.get(0)?,
                    kind: r.get(1)?,
                    active: r.get::<_, i64>(2)? == 1,
                    pending: count(r, 3)?,
                    held: count(r, 4)?,
                    dead: count(r, 5)?,
                    parked: count(r, 6)?,
                    oldest_pending_at: r.get(7)?,
                    last_error: r.get(8)?,
                    error_since: r.get(9)?,
                    disabled: r.get(10)?,
                })
            })
            .ctx("outbox_depths")?;
        rows.collect::<Result<_, _>>().ctx("outbox_depths")
    }

    /// Dead and parked deliveries, oldest first; of one sink, or of all.
    pub fn dead_letters(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT d.sink, d.event_ord, d.state, d.attempts, d.last_error, d.done_at, {} \
                 FROM deliveries d JOIN events e ON e.ord = d.event_ord \
                 JOIN jobs j ON j.seq = d.job_seq \
                 WHERE d.state IN ('DEAD', 'PARKED') AND (?1 IS NULL OR d.sink = ?1) \
                 ORDER BY d.event_ord, d.sink",
                super::EVENT_COLUMNS
            ))
            .ctx("dead_letters")?;
        let rows = st
            .query_map([sink], |r| {
                Ok(DeadLetter {
                    sink: r.get(0)?,
                    ord: r.get(1)?,
                    state: r.get(2)?,
                    attempts: u32::try_from(r.get::<_, i64>(3)?).unwrap_or(u32::MAX),
                    error: r.get(4)?,
                    dead_at: r.get(5)?,
                    event: event_at(r, 6)?,
                })
            })
            .ctx("dead_letters")?;
        rows.collect::<Result<_, _>>().ctx("dead_letters")
    }

    /// Puts dead and parked deliveries back in the queue with their
    /// attempts forgotten: one (`ord`) or all of the sink's. The card's
    /// later deliveries, held back behind them, follow in order. Returns
    /// how many.
    pub fn replay(&self, sink: &str, ord: Option<i64>) -> Result<usize, StoreError> {
        let n = self.write("replay", |tx| {
            tx.execute(
                "UPDATE deliveries SET state = 'PENDING', attempts = 0, due_ms = 0, \
                 done_at = NULL WHERE sink = ?1 AND state IN ('DEAD', 'PARKED') \
                 AND (?2 IS NULL OR event_ord = ?2)",
                params![sink, ord],
            )
            .ctx("replay")
        })?;
        self.nudge(sink);
        Ok(n)
    }

    /// Asks the sink's relay to send what is pending now, past any pause or
    /// back-off (a technician fixed the receiver). Returns how many
    /// deliveries are pending (those held behind a dead or parked one wait
    /// for its replay).
    pub fn retry_now(&self, sink: &str) -> Result<usize, StoreError> {
        let n = {
            let conn = self.lock();
            conn.prepare_cached(
                "SELECT count(*) FROM deliveries WHERE sink = ?1 AND state = 'PENDING'",
            )
            .and_then(|mut st| st.query_row([sink], |r| r.get::<_, i64>(0)))
            .ctx("retry_now")?
        };
        self.nudge(sink);
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Lets a sink that was disabled (410 Gone) send again. Returns whether
    /// it was disabled.
    pub fn enable_sink(&self, sink: &str) -> Result<bool, StoreError> {
        let n = self.write("enable_sink", |tx| {
            tx.execute(
                "UPDATE sinks SET disabled_at = NULL, disabled_why = NULL, error = NULL, \
                 error_at = NULL WHERE name = ?1 AND disabled_at IS NOT NULL",
                [sink],
            )
            .ctx("enable_sink")
        })?;
        self.nudge(sink);
        Ok(n > 0)
    }
}
