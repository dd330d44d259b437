//! What the local API shows: the platform's production object, exactly, and a
//! fuller view of one card for the kiosk application and technicians.

use crate::codes::ErrorCode;
use crate::store::{Event, Job, Status};
use serde::Serialize;

/// The production-status object of the kiosk API: `status`, `kioskId`,
/// `occurredAt`, `errorCode`, `description`, nothing more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Production {
    pub status: &'static str,
    pub kiosk_id: Option<String>,
    pub occurred_at: String,
    pub error_code: Option<ErrorCode>,
    pub description: Option<String>,
}

/// The API status for a stored status. A cancellation by the issuer has no
/// status of its own in the API: it is a request that did not go ahead
/// (REQUEST_ERROR, no error code, the description says so).
pub fn api_status(s: Status) -> &'static str {
    match s {
        Status::Ready => "READY",
        Status::InProgress => "IN_PROGRESS",
        Status::Produced => "PRODUCED",
        Status::ProductionError => "PRODUCTION_ERROR",
        Status::RequestError | Status::Cancelled => "REQUEST_ERROR",
    }
}

impl Production {
    pub fn of(job: &Job) -> Production {
        Production {
            status: api_status(job.status),
            // The API leaves the kiosk out while the card waits for one.
            kiosk_id: (job.status != Status::Ready).then(|| job.meta.kiosk_id.clone()),
            occurred_at: job.occurred_at.clone(),
            error_code: job.error_code,
            description: match (job.status, &job.description) {
                (Status::Cancelled, None) => Some(CANCELLED.to_string()),
                (_, d) => d.clone(),
            },
        }
    }
}

/// What a cancelled request says of itself.
pub const CANCELLED: &str = "cancelled by the issuer before production started";

/// One card for the kiosk application: the production object, the step
/// inside IN_PROGRESS, and every status change so far.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardView {
    pub card_token: String,
    pub production: Production,
    pub step: Option<String>,
    pub card_type: String,
    pub pan: String,
    /// What a READY card waits for, when it waits for something of its
    /// own (its deferred card data); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waiting: Option<String>,
    pub events: Vec<EventView>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventView {
    pub id: String,
    pub seq: i64,
    pub status: &'static str,
    pub step: Option<String>,
    pub error_code: Option<ErrorCode>,
    pub description: Option<String>,
    pub occurred_at: String,
}

impl CardView {
    pub fn of(job: &Job, events: &[Event]) -> CardView {
        CardView {
            card_token: job.meta.card_token.clone(),
            production: Production::of(job),
            step: job.step.clone(),
            card_type: job.meta.card_type.clone(),
            pan: job.meta.pan_masked.clone(),
            waiting: None,
            events: events
                .iter()
                .map(|e| EventView {
                    id: e.id.clone(),
                    seq: e.seq,
                    status: api_status(e.status),
                    step: e.step.clone(),
                    error_code: e.error_code,
                    description: e.description.clone(),
                    occurred_at: e.occurred_at.clone(),
                })
                .collect(),
        }
    }
}

/// One line of `GET /v1/cards`: a card without its history.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardSummary {
    pub card_token: String,
    pub production: Production,
    pub step: Option<String>,
    pub card_type: String,
    /// Masked: first six and last four at most.
    pub pan: String,
    pub created_at: String,
}

impl CardSummary {
    pub fn of(job: &Job) -> CardSummary {
        CardSummary {
            card_token: job.meta.card_token.clone(),
            production: Production::of(job),
            step: job.step.clone(),
            card_type: job.meta.card_type.clone(),
            pan: job.meta.pan_masked.clone(),
            created_at: job.created_at.clone(),
        }
    }
}
