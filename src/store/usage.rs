//! What production used up recently, from the journal: the supplies
//! forecast's rate. A card that took a blank card from a feeder used a
//! card's worth of ribbon too, whether it was then produced or rejected,
//! so the rate counts every successful `insert` step, not final statuses.

use super::error::Context;
use super::{Store, StoreError};

/// Blank cards taken, and cards put in the reject box, since a time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub taken: u64,
    pub rejected: u64,
}

impl Store {
    /// Cards taken from a feeder and cards rejected since `since` (RFC 3339
    /// as the store writes it). Walks the journal from its newest entry
    /// back (its ids grow with time) and stops at the first older one, so
    /// the cost is the window's entries, not the journal's.
    pub fn usage_since(&self, since: &str) -> Result<Usage, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT step, ok, at FROM journal WHERE phase = 'OUTCOME' ORDER BY id DESC",
            )
            .ctx("usage")?;
        let mut rows = st.query([]).ctx("usage")?;
        let mut usage = Usage::default();
        while let Some(r) = rows.next().ctx("usage")? {
            let at: String = r.get(2).ctx("usage")?;
            if at.as_str() < since {
                break;
            }
            let step: String = r.get(0).ctx("usage")?;
            let ok: Option<bool> = r.get(1).ctx("usage")?;
            if ok != Some(true) {
                continue;
            }
            match step.as_str() {
                "insert" => usage.taken += 1,
                "reject" => usage.rejected += 1,
                _ => {}
            }
        }
        Ok(usage)
    }
}
