//! What a technician reads of the store: the most recent cards (optionally
//! of one status) and the store's statistics with an integrity check, for
//! `satellite jobs list`, `doctor` and the support bundle.

use super::error::Context;
use super::{job_from_row, Job, Status, Store, StoreError, JOB_COLUMNS, SCHEMA_VERSION};
use serde::Serialize;
use std::collections::BTreeMap;

/// The store as a technician sees it. No card data: counts and sizes.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreStats {
    pub path: String,
    pub schema_version: i64,
    /// Cards by status (every status, zero included).
    pub cards: BTreeMap<String, u64>,
    /// Deliveries by sink and state (PENDING, DELIVERED, DEAD).
    pub deliveries: BTreeMap<String, BTreeMap<String, u64>>,
    pub used_bytes: u64,
    pub limit_bytes: u64,
    /// `PRAGMA quick_check`: `ok`, or the first problems SQLite found.
    pub integrity: String,
}

impl Store {
    /// The `limit` most recent cards (newest first), of one status or all.
    pub fn recent(&self, status: Option<Status>, limit: usize) -> Result<Vec<Job>, StoreError> {
        let conn = self.lock();
        let limit = limit.min(10_000) as i64;
        let what = "recent jobs";
        match status {
            Some(s) => {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs WHERE status = ?1 ORDER BY seq DESC LIMIT ?2"
                    ))
                    .ctx(what)?;
                let rows = st
                    .query_map(rusqlite::params![s.as_str(), limit], job_from_row)
                    .ctx(what)?;
                rows.collect::<Result<_, _>>().ctx(what)
            }
            None => {
                let mut st = conn
                    .prepare_cached(&format!(
                        "SELECT {JOB_COLUMNS} FROM jobs ORDER BY seq DESC LIMIT ?1"
                    ))
                    .ctx(what)?;
                let rows = st.query_map([limit], job_from_row).ctx(what)?;
                rows.collect::<Result<_, _>>().ctx(what)
            }
        }
    }

    /// Counts, sizes and SQLite's quick integrity check (reads every page:
    /// for a technician's command, not for a hot path).
    pub fn stats(&self) -> Result<StoreStats, StoreError> {
        let (used_bytes, limit_bytes) = self.usage()?;
        let conn = self.lock();
        let mut cards: BTreeMap<String, u64> = Status::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), 0))
            .collect();
        {
            let mut st = conn
                .prepare("SELECT status, COUNT(*) FROM jobs GROUP BY status")
                .ctx("cards by status")?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .ctx("cards by status")?;
            for row in rows {
                let (status, n) = row.ctx("cards by status")?;
                cards.insert(status, n.max(0) as u64);
            }
        }
        let mut deliveries: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        {
            let mut st = conn
                .prepare("SELECT sink, state, COUNT(*) FROM deliveries GROUP BY sink, state")
                .ctx("deliveries by sink")?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .ctx("deliveries by sink")?;
            for row in rows {
                let (sink, state, n) = row.ctx("deliveries by sink")?;
                deliveries
                    .entry(sink)
                    .or_default()
                    .insert(state, n.max(0) as u64);
            }
        }
        let problems: Vec<String> = {
            let mut st = conn
                .prepare("PRAGMA quick_check(5)")
                .ctx("integrity check")?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .ctx("integrity check")?;
            rows.collect::<Result<_, _>>().ctx("integrity check")?
        };
        let integrity = if problems == ["ok"] {
            "ok".to_string()
        } else {
            problems.join("; ")
        };
        Ok(StoreStats {
            path: self.path().display().to_string(),
            schema_version: SCHEMA_VERSION,
            cards,
            deliveries,
            used_bytes,
            limit_bytes,
            integrity,
        })
    }
}
