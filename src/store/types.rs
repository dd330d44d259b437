//! The values the store hands out.

use crate::codes::ErrorCode;
pub use crate::job::JobMeta;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Production status of a job: the seed's five plus `CANCELLED` (the issuer
/// cancelled the request before production started; ours, not the seed's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    Ready,
    InProgress,
    Produced,
    ProductionError,
    RequestError,
    Cancelled,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Ready,
        Status::InProgress,
        Status::Produced,
        Status::ProductionError,
        Status::RequestError,
        Status::Cancelled,
    ];

    /// As the API (and the database) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ready => "READY",
            Status::InProgress => "IN_PROGRESS",
            Status::Produced => "PRODUCED",
            Status::ProductionError => "PRODUCTION_ERROR",
            Status::RequestError => "REQUEST_ERROR",
            Status::Cancelled => "CANCELLED",
        }
    }

    /// A final status never changes again.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Ready | Status::InProgress)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Status::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a production status"))
    }
}

/// A request the engine has validated, as the store keeps it. The PAN itself
/// is passed to [`Store::accept`](super::Store::accept) apart and never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    pub meta: JobMeta,
    /// The keyed digest of the request it came from ([`super::Store::request_digest`]),
    /// so that the same request delivered again gets the same answer.
    pub request_digest: Option<Vec<u8>>,
}

impl From<JobMeta> for NewJob {
    fn from(meta: JobMeta) -> NewJob {
        NewJob {
            meta,
            request_digest: None,
        }
    }
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Arrival order (unique, increasing).
    pub seq: i64,
    /// Its identity (the API shows `kioskId` `null` while READY, as the seed says).
    #[serde(flatten)]
    pub meta: JobMeta,
    pub status: Status,
    /// The last physical step whose intent was journaled.
    pub step: Option<String>,
    pub error_code: Option<ErrorCode>,
    pub description: Option<String>,
    /// RFC 3339 (ms, UTC): time of the last status change.
    pub occurred_at: String,
    pub created_at: String,
    /// Its card data comes from the central base, fetched while it is READY.
    #[serde(default)]
    pub deferred: bool,
}

/// One status change (or step inside IN_PROGRESS), as the outbox delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// UUID, fixed when the event is written: the receivers' de-duplication key.
    pub id: String,
    pub card_token: String,
    /// Per card: 1, 2, 3... with no gap.
    pub seq: i64,
    pub status: Status,
    pub step: Option<String>,
    pub error_code: Option<ErrorCode>,
    pub description: Option<String>,
    pub occurred_at: String,
}

/// Which half of a physical step a journal entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Written (durably) before the step is attempted.
    Intent,
    /// Written after the step, with its result.
    Outcome,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Intent => "INTENT",
            Phase::Outcome => "OUTCOME",
        }
    }
}

impl FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "INTENT" => Ok(Phase::Intent),
            "OUTCOME" => Ok(Phase::Outcome),
            other => Err(format!("{other:?} is not a journal phase")),
        }
    }
}

/// One line of a job's step journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JournalEntry {
    pub step: String,
    pub phase: Phase,
    /// `None` for an intent.
    pub ok: Option<bool>,
    pub detail: Option<String>,
    pub at: String,
    /// The serial number of the printer the step was sent to; `None` on
    /// lines older than schema v4.
    pub printer: Option<String>,
}

/// What a technician loaded into one feeder, counted down per card taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeederStock {
    /// 1-based.
    pub feeder: u8,
    pub card_type: String,
    pub count: u32,
    /// When the technician last set it.
    pub set_at: String,
}
