//! The two upstream forms of a status change, built from a stored job and one
//! of its events (pure code, no I/O):
//!
//! * [`ProductionStatus`]: the kiosk production-status object (as the local
//!   API shows it), plus the event's id, its per-card sequence, the card token
//!   and the profile.
//! * [`D1Operation`]: the D1 `PRODUCE` operation object, one per card, whose
//!   `details.status` tracks the physical issuance.
//!
//! The central base's events endpoint receives both at once ([`Envelope`], in
//! an [`EventBatch`]); the issuer's webhook receives one of them, chosen by
//! [`Form`] ([`WebhookBody`]). Only status changes are sent
//! ([`is_status_change`]). `docs/EVENT-FORMS.md` describes the forms and the
//! mapping.

use crate::codes::ErrorCode;
use crate::engine::view::CANCELLED;
use crate::store::{Event, Job, Status};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The webhook's `type`.
pub const WEBHOOK_TYPE: &str = "card.production.status_changed";

/// The error code a cancellation by the issuer carries in the kiosk form.
///
/// The seed (kiosk card production status) has no status and no code for a
/// cancellation: its statuses are READY, IN_PROGRESS, PRODUCED,
/// PRODUCTION_ERROR and REQUEST_ERROR, and a REQUEST_ERROR carries one of
/// the request-error codes. A cancelled request is one that did not go
/// ahead (REQUEST_ERROR, "card production request failed"); of the seed's
/// request codes, UNKNOWN_ERROR is the only one that does not claim a fault
/// that did not happen (a duplicate, a bad field, a busy kiosk...), and the
/// agent already gives it to any error that has no code of its own. The
/// `description` says what happened ("cancelled by the issuer before
/// production started"), and the D1 form keeps the exact status
/// (`CARD_PROD_CANCELED`, no code). So every kiosk-form body validates
/// against the seed's field lists, and no receiver meets a CANCELLED status
/// or a REQUEST_ERROR without a code.
pub const CANCELLATION_CODE: ErrorCode = ErrorCode::UNKNOWN_ERROR;

/// The status as the kiosk production-status API spells it: the seed's five.
/// A cancellation by the issuer is a request that did not go ahead:
/// `REQUEST_ERROR` with [`CANCELLATION_CODE`] (see there for why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KioskStatus {
    Ready,
    InProgress,
    Produced,
    ProductionError,
    RequestError,
}

impl KioskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KioskStatus::Ready => "READY",
            KioskStatus::InProgress => "IN_PROGRESS",
            KioskStatus::Produced => "PRODUCED",
            KioskStatus::ProductionError => "PRODUCTION_ERROR",
            KioskStatus::RequestError => "REQUEST_ERROR",
        }
    }
}

impl From<Status> for KioskStatus {
    fn from(s: Status) -> Self {
        match s {
            Status::Ready => KioskStatus::Ready,
            Status::InProgress => KioskStatus::InProgress,
            Status::Produced => KioskStatus::Produced,
            Status::ProductionError => KioskStatus::ProductionError,
            Status::RequestError | Status::Cancelled => KioskStatus::RequestError,
        }
    }
}

/// The kiosk production-status object of one event, with its ids. Every key
/// is always present (`null` when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductionStatus {
    /// The event's UUID: the exact de-duplication key.
    pub event_id: String,
    /// The event's per-card sequence: the exact order. The store numbers all
    /// of a card's events 1, 2, 3...; progress lines are not sent upstream, so
    /// the numbers a receiver sees increase but skip.
    pub sequence: i64,
    pub card_token: String,
    pub profile_id: i64,
    pub status: KioskStatus,
    /// `null` exactly when the status is READY.
    pub kiosk_id: Option<String>,
    pub occurred_at: String,
    /// Set exactly on PRODUCTION_ERROR and REQUEST_ERROR (a cancellation
    /// included: [`CANCELLATION_CODE`]), to a code of the seed's list for
    /// that status.
    pub error_code: Option<ErrorCode>,
    /// Set exactly on PRODUCTION_ERROR and REQUEST_ERROR (a cancellation
    /// says so).
    pub description: Option<String>,
}

/// The D1 operation type: always `PRODUCE` here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationKind {
    Produce,
}

/// The D1 operation status (top level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OperationStatus {
    Pending,
    Successful,
    Failed,
}

/// The D1 physical issuance status (`details.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IssuanceStatus {
    CardProdRequested,
    CardProdReady,
    CardProdDone,
    DataException,
    CardProdException,
    CardProdCanceled,
}

impl IssuanceStatus {
    /// The operation status it belongs to.
    pub fn operation_status(self) -> OperationStatus {
        match self {
            IssuanceStatus::CardProdRequested | IssuanceStatus::CardProdReady => {
                OperationStatus::Pending
            }
            IssuanceStatus::CardProdDone => OperationStatus::Successful,
            IssuanceStatus::DataException
            | IssuanceStatus::CardProdException
            | IssuanceStatus::CardProdCanceled => OperationStatus::Failed,
        }
    }
}

/// `details` of a D1 `PRODUCE` operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Details {
    pub status: IssuanceStatus,
    /// On DATA_EXCEPTION and CARD_PROD_EXCEPTION only: the error code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The D1 `PRODUCE` operation object of one event. Conditional keys are left
/// out when they do not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct D1Operation {
    /// One per card ([`operation_id`]), the same for all its events.
    pub operation_id: String,
    pub operation: OperationKind,
    pub status: OperationStatus,
    /// When the job was accepted.
    pub start_time: String,
    /// The final event's time; absent while PENDING.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<String>,
    pub card_id: String,
    pub details: Details,
    /// On failure, when there is a code (not on a cancellation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// On failure: a short human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the request carried one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_request_id: Option<String>,
}

/// Both forms of one event, as the central base's events endpoint takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub production: ProductionStatus,
    pub operation: D1Operation,
}

/// The body of one call to the central base's events endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    pub events: Vec<Envelope>,
}

/// Which form the issuer's webhook receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Form {
    #[default]
    ProductionStatus,
    D1Operation,
}

/// The issuer webhook's payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookBody {
    /// Always [`WEBHOOK_TYPE`].
    #[serde(rename = "type")]
    pub kind: String,
    /// The event's `occurredAt`.
    pub timestamp: String,
    pub data: WebhookData,
}

/// The webhook's `data`: one form or the other, as is (no tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WebhookData {
    ProductionStatus(ProductionStatus),
    D1Operation(D1Operation),
}

/// The D1 operation id of a card's production: `prod-` and the first 32 hex
/// digits of SHA-256(`satellite/produce` NUL kiosk id NUL card token). The
/// same for every event of the card and every retry of a delivery.
pub fn operation_id(kiosk_id: &str, card_token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"satellite/produce\0");
    h.update(kiosk_id.as_bytes());
    h.update(b"\0");
    h.update(card_token.as_bytes());
    let digest = h.finalize();
    let mut id = String::with_capacity(5 + 32);
    id.push_str("prod-");
    for b in &digest[..16] {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

/// The code a failed event carries in the D1 form: its own, or
/// UNKNOWN_ERROR when an error status came without one. `None` for any other
/// status (and a cancellation, which D1 spells `CARD_PROD_CANCELED`).
fn failure_code(event: &Event) -> Option<ErrorCode> {
    match event.status {
        Status::ProductionError | Status::RequestError => {
            Some(event.error_code.unwrap_or(ErrorCode::UNKNOWN_ERROR))
        }
        _ => None,
    }
}

/// The human description of a failed or cancelled event: its own when it has
/// one, else the code's standard one (or the cancellation's).
fn failure_description(event: &Event) -> Option<String> {
    let own = event
        .description
        .as_deref()
        .filter(|d| !d.trim().is_empty());
    match event.status {
        Status::Cancelled => Some(own.unwrap_or(CANCELLED).to_string()),
        Status::ProductionError | Status::RequestError => Some(match own {
            Some(d) => d.to_string(),
            None => failure_code(event)
                .unwrap_or(ErrorCode::UNKNOWN_ERROR)
                .description()
                .to_string(),
        }),
        _ => None,
    }
}

/// The code of the kiosk form: the failure's code, and
/// [`CANCELLATION_CODE`] for a cancellation (REQUEST_ERROR there).
fn kiosk_code(event: &Event) -> Option<ErrorCode> {
    match event.status {
        Status::Cancelled => Some(CANCELLATION_CODE),
        _ => failure_code(event),
    }
}

/// The kiosk production-status form of `event` (an event of `job`).
pub fn production_status(job: &Job, event: &Event) -> ProductionStatus {
    let status = KioskStatus::from(event.status);
    ProductionStatus {
        event_id: event.id.clone(),
        sequence: event.seq,
        card_token: event.card_token.clone(),
        profile_id: job.meta.profile_id,
        status,
        kiosk_id: (status != KioskStatus::Ready).then(|| job.meta.kiosk_id.clone()),
        occurred_at: event.occurred_at.clone(),
        error_code: kiosk_code(event),
        description: failure_description(event),
    }
}

/// The D1 issuance status of an event, and the `reason` that goes with it.
pub fn issuance_status(event: &Event) -> (IssuanceStatus, Option<ErrorCode>) {
    match event.status {
        Status::Ready => (IssuanceStatus::CardProdRequested, None),
        Status::InProgress => (IssuanceStatus::CardProdReady, None),
        Status::Produced => (IssuanceStatus::CardProdDone, None),
        Status::ProductionError => {
            let code = failure_code(event).unwrap_or(ErrorCode::UNKNOWN_ERROR);
            let family = if code.as_str().starts_with("DP_") {
                IssuanceStatus::DataException
            } else {
                IssuanceStatus::CardProdException
            };
            (family, Some(code))
        }
        Status::RequestError => (IssuanceStatus::DataException, failure_code(event)),
        Status::Cancelled => (IssuanceStatus::CardProdCanceled, None),
    }
}

/// The D1 `PRODUCE` operation form of `event` (an event of `job`).
pub fn d1_operation(job: &Job, event: &Event) -> D1Operation {
    let (issuance, reason) = issuance_status(event);
    let status = issuance.operation_status();
    let failed = status == OperationStatus::Failed;
    D1Operation {
        operation_id: operation_id(&job.meta.kiosk_id, &job.meta.card_token),
        operation: OperationKind::Produce,
        status,
        start_time: job.created_at.clone(),
        end_time: (status != OperationStatus::Pending).then(|| event.occurred_at.clone()),
        card_id: job.meta.card_id.clone(),
        details: Details {
            status: issuance,
            reason: reason.map(|c| c.as_str().to_string()),
        },
        error_code: if failed {
            failure_code(event).map(|c| c.as_str().to_string())
        } else {
            None
        },
        error: if failed {
            failure_description(event)
        } else {
            None
        },
        issuer_request_id: Some(job.meta.issuer_request_id.clone()).filter(|r| !r.is_empty()),
    }
}

/// Both forms of `event`, for the central base.
pub fn envelope(job: &Job, event: &Event) -> Envelope {
    Envelope {
        production: production_status(job, event),
        operation: d1_operation(job, event),
    }
}

/// The issuer webhook's payload for `event`, in the chosen form.
pub fn webhook_body(form: Form, job: &Job, event: &Event) -> WebhookBody {
    WebhookBody {
        kind: WEBHOOK_TYPE.to_string(),
        timestamp: event.occurred_at.clone(),
        data: match form {
            Form::ProductionStatus => WebhookData::ProductionStatus(production_status(job, event)),
            Form::D1Operation => WebhookData::D1Operation(d1_operation(job, event)),
        },
    }
}

/// Whether `event` is a status change, the only events sent upstream.
/// `previous` is the status of the card's event just before it (`None` for
/// its first event). An IN_PROGRESS event that carries a step is a progress
/// line, never a status change (the step-less IN_PROGRESS event written when
/// production starts is the change).
pub fn is_status_change(previous: Option<Status>, event: &Event) -> bool {
    if event.status == Status::InProgress && event.step.is_some() {
        return false;
    }
    previous != Some(event.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::view::api_status;
    use crate::store::JobMeta;
    use serde_json::{json, Value};

    const CREATED: &str = "2025-01-17T06:28:02.492Z";
    const AT: &str = "2025-01-17T06:31:12.004Z";
    const TOKEN: &str = "ca0c8154-1e14-4464-a1ce-dcea7dc3de52";
    const EVENT_ID: &str = "5f0c6a51-8d1e-4a57-9b57-3f7e1f0b2d6a";

    fn job() -> Job {
        Job {
            seq: 7,
            meta: JobMeta {
                card_token: TOKEN.into(),
                profile_id: 123456,
                kiosk_id: "WIS00001".into(),
                card_type: "VISA_DEBIT".into(),
                issuer_request_id: "req-42".into(),
                card_id: "271b-6e47-8ec3-7f3f".into(),
                pan_masked: "411111******1111".into(),
            },
            status: Status::Ready,
            step: None,
            error_code: None,
            description: None,
            occurred_at: CREATED.into(),
            created_at: CREATED.into(),
            deferred: false,
        }
    }

    fn event(status: Status, code: Option<ErrorCode>, description: Option<&str>) -> Event {
        Event {
            id: EVENT_ID.into(),
            card_token: TOKEN.into(),
            seq: 3,
            status,
            step: None,
            error_code: code,
            description: description.map(str::to_string),
            occurred_at: AT.into(),
        }
    }

    fn op_id() -> String {
        operation_id("WIS00001", TOKEN)
    }

    /// Checks both forms of `e` field by field (the whole JSON of each), and
    /// that each reads back to the same value.
    fn check(e: &Event, production: Value, operation: Value) {
        let j = job();
        let p = production_status(&j, e);
        let o = d1_operation(&j, e);
        assert_eq!(serde_json::to_value(&p).unwrap(), production);
        assert_eq!(serde_json::to_value(&o).unwrap(), operation);
        assert_eq!(
            serde_json::from_value::<ProductionStatus>(production).unwrap(),
            p
        );
        assert_eq!(serde_json::from_value::<D1Operation>(operation).unwrap(), o);
        let env = serde_json::to_value(envelope(&j, e)).unwrap();
        assert_eq!(env["production"], serde_json::to_value(&p).unwrap());
        assert_eq!(env["operation"], serde_json::to_value(&o).unwrap());
    }

    #[test]
    fn ready_is_pending_card_prod_requested() {
        check(
            &event(Status::Ready, None, None),
            json!({
                "eventId": EVENT_ID, "sequence": 3, "cardToken": TOKEN, "profileId": 123456,
                "status": "READY", "kioskId": null, "occurredAt": AT,
                "errorCode": null, "description": null,
            }),
            json!({
                "operationId": op_id(), "operation": "PRODUCE", "status": "PENDING",
                "startTime": CREATED, "cardId": "271b-6e47-8ec3-7f3f",
                "details": {"status": "CARD_PROD_REQUESTED"}, "issuerRequestId": "req-42",
            }),
        );
    }

    #[test]
    fn in_progress_is_pending_card_prod_ready() {
        check(
            &event(Status::InProgress, None, None),
            json!({
                "eventId": EVENT_ID, "sequence": 3, "cardToken": TOKEN, "profileId": 123456,
                "status": "IN_PROGRESS", "kioskId": "WIS00001", "occurredAt": AT,
                "errorCode": null, "description": null,
            }),
            json!({
                "operationId": op_id(), "operation": "PRODUCE", "status": "PENDING",
                "startTime": CREATED, "cardId": "271b-6e47-8ec3-7f3f",
                "details": {"status": "CARD_PROD_READY"}, "issuerRequestId": "req-42",
            }),
        );
    }

    #[test]
    fn produced_is_successful_card_prod_done() {
        check(
            &event(Status::Produced, None, None),
            json!({
                "eventId": EVENT_ID, "sequence": 3, "cardToken": TOKEN, "profileId": 123456,
                "status": "PRODUCED", "kioskId": "WIS00001", "occurredAt": AT,
                "errorCode": null, "description": null,
            }),
            json!({
                "operationId": op_id(), "operation": "PRODUCE", "status": "SUCCESSFUL",
                "startTime": CREATED, "endTime": AT, "cardId": "271b-6e47-8ec3-7f3f",
                "details": {"status": "CARD_PROD_DONE"}, "issuerRequestId": "req-42",
            }),
        );
    }

    #[test]
    fn production_error_with_a_dp_code_is_failed_data_exception() {
        check(
            &event(
                Status::ProductionError,
                Some(ErrorCode::DP_TIMEOUT),
                Some("data preparation did not answer in 30 s"),
            ),
            json!({
                "eventId": EVENT_ID, "sequence": 3, "cardToken": TOKEN, "profileId": 123456,
                "status": "PRODUCTION_ERROR", "kioskId": "WIS00001", "occurredAt": AT,
                "errorCode": "DP_TIMEOUT",
                "description": "data preparation did not answer in 30 s",
            }),
            json!({
                "operationId": op_id(), "operation": "PRODUCE", "status": "FAILED",
                "startTime": CREATED, "endTime": AT, "cardId": "271b-6e47-8ec3-7f3f",
                "details": {"status": "DATA_EXCEPTION", "reason": "DP_TIMEOUT"},
                "errorCode": "DP_TIMEOUT",
                "error": "data preparation did not answer in 30 s",
                "issuerRequestId": "req-42",
            }),
        );
    }

    #[test]
    fn production_error_with_another_code_is_failed_card_prod_exception() {
        // The seed's own example: CB_TIME under CARD_PROD_EXCEPTION. No
        // description of its own: the code's standard one is used.
        check(
            &event(Status::ProductionError, Some(ErrorCode::CB_TIME), None),
            json!({
                "eventId": EVENT_ID, "sequence": 3, "cardToken": TOKEN, "profileId": 123456,
                "status": "PRODUCTION_ERROR", "kioskId": "WIS00001", "occurredAt": AT,
                "errorCode": "CB_TIME",
                "description": "Main server error: timeout occurred on the Central Base side",
            }),
            json!({
                "operationId": op_id(), "operation": "PRODUCE", "status": "FAILED",
                "startTime": CREATED, "endTime": AT, "cardId": "271b-6e47-8ec3-7f3f",
                "details": {"status": "CARD_PROD_EXCEPTION", "reason": "CB_TIME"},
                "errorCode": "CB_TIME",
                "error": "Main server error: timeout occurred on the Central Base side",
                "issuerRequestId": "req-42",
            }),
        );
        check(
            &event(
                Status::ProductionError,
                Some(ErrorCode::PRT_RIBBON_ENDED),
                Some("ribbon ended (media-empty)"),
            ),
            json!({
                "eventId": EVENT_ID, "sequence": 3, "cardToken": TOKEN, "profileId": 123456,
                "status": "PRODUCTION_ERROR", "kioskId": "WIS00001", "occurredAt": AT,
                "errorCode": "PRT_RIBBON_ENDED", "description": "ribbon ended (media-empty)",
            }),
            json!({
                "operationId": op_id(), "operation": "PRODUCE", "status": "FAILED",
                "startTime": CREATED, "endTime": AT, "cardId": "271b-6e47-8ec3-7f3f",
                "details": {"status": "CARD_PROD_EXCEPTION", "reason": "PRT_RIBBON_ENDED"},
                "errorCode": "PRT_RIBBON_ENDED", "error": "ribbon ended (media-empty)",
                "issuerRequestId": "req-42",
            }),
        );
    }

    #[test]
    fn request_error_is_failed_data_exception() {
        check(
            &event(
                Status::RequestError,
                Some(ErrorCode::INVALID_FIELD_VALUE),
                Some("cardType: unknown value"),
            ),
            json!({
                "eventId": EVENT_ID, "sequence": 3, "cardToken": TOKEN, "profileId": 123456,
                "status": "REQUEST_ERROR", "kioskId": "WIS00001", "occurredAt": AT,
                "errorCode": "INVALID_FIELD_VALUE", "description": "cardType: unknown value",
            }),
            json!({
                "operationId": op_id(), "operation": "PRODUCE", "status": "FAILED",
                "startTime": CREATED, "endTime": AT, "cardId": "271b-6e47-8ec3-7f3f",
                "details": {"status": "DATA_EXCEPTION", "reason": "INVALID_FIELD_VALUE"},
                "errorCode": "INVALID_FIELD_VALUE", "error": "cardType: unknown value",
                "issuerRequestId": "req-42",
            }),
        );
    }

    #[test]
    fn cancelled_is_failed_card_prod_canceled() {
        check(
            &event(Status::Cancelled, None, None),
            json!({
                "eventId": EVENT_ID, "sequence": 3, "cardToken": TOKEN, "profileId": 123456,
                "status": "REQUEST_ERROR", "kioskId": "WIS00001", "occurredAt": AT,
                "errorCode": "UNKNOWN_ERROR", "description": CANCELLED,
            }),
            json!({
                "operationId": op_id(), "operation": "PRODUCE", "status": "FAILED",
                "startTime": CREATED, "endTime": AT, "cardId": "271b-6e47-8ec3-7f3f",
                "details": {"status": "CARD_PROD_CANCELED"},
                "error": CANCELLED, "issuerRequestId": "req-42",
            }),
        );
    }

    #[test]
    fn an_error_status_without_a_code_reads_unknown_error() {
        let e = event(Status::ProductionError, None, None);
        let p = production_status(&job(), &e);
        assert_eq!(p.error_code, Some(ErrorCode::UNKNOWN_ERROR));
        assert_eq!(p.description.as_deref(), Some("Unknown error"));
        let o = d1_operation(&job(), &e);
        assert_eq!(o.details.status, IssuanceStatus::CardProdException);
        assert_eq!(o.details.reason.as_deref(), Some("UNKNOWN_ERROR"));
        assert_eq!(o.error_code.as_deref(), Some("UNKNOWN_ERROR"));
        // A blank description counts as none.
        let e = event(
            Status::RequestError,
            Some(ErrorCode::PIN_LENGTH_ERROR),
            Some(" "),
        );
        let o = d1_operation(&job(), &e);
        assert_eq!(o.error.as_deref(), Some("The PIN length is incorrect"));
    }

    #[test]
    fn an_empty_issuer_request_id_is_left_out() {
        let mut j = job();
        j.meta.issuer_request_id.clear();
        let v = serde_json::to_value(d1_operation(&j, &event(Status::Ready, None, None))).unwrap();
        assert!(v.get("issuerRequestId").is_none(), "{v}");
    }

    #[test]
    fn every_error_code_is_mapped_under_both_error_statuses() {
        for &code in ErrorCode::ALL {
            let dp = code.as_str().starts_with("DP_");
            for status in [Status::ProductionError, Status::RequestError] {
                let e = event(status, Some(code), None);
                let o = d1_operation(&job(), &e);
                let expected = match (status, dp) {
                    (Status::ProductionError, false) => IssuanceStatus::CardProdException,
                    _ => IssuanceStatus::DataException,
                };
                assert_eq!(o.status, OperationStatus::Failed, "{code} {status}");
                assert_eq!(o.details.status, expected, "{code} {status}");
                assert_eq!(o.details.reason.as_deref(), Some(code.as_str()));
                assert_eq!(o.error_code.as_deref(), Some(code.as_str()));
                assert_eq!(o.error.as_deref(), Some(code.description()));
                assert_eq!(o.end_time.as_deref(), Some(AT));
                let p = production_status(&job(), &e);
                assert_eq!(p.error_code, Some(code));
                assert_eq!(p.description.as_deref(), Some(code.description()));
            }
        }
    }

    #[test]
    fn every_status_has_an_issuance_status_whose_family_matches() {
        for status in Status::ALL {
            let (issuance, _) = issuance_status(&event(status, None, None));
            let expected = match status {
                Status::Ready | Status::InProgress => OperationStatus::Pending,
                Status::Produced => OperationStatus::Successful,
                _ => OperationStatus::Failed,
            };
            assert_eq!(issuance.operation_status(), expected, "{status}");
            assert_eq!(status.is_final(), expected != OperationStatus::Pending);
        }
    }

    #[test]
    fn kiosk_status_is_the_local_apis() {
        for s in Status::ALL {
            assert_eq!(KioskStatus::from(s).as_str(), api_status(s));
            assert_eq!(
                serde_json::to_value(KioskStatus::from(s)).unwrap(),
                json!(api_status(s))
            );
        }
    }

    #[test]
    fn production_status_always_has_every_key_and_kiosk_id_is_null_only_when_ready() {
        let keys = [
            "eventId",
            "sequence",
            "cardToken",
            "profileId",
            "status",
            "kioskId",
            "occurredAt",
            "errorCode",
            "description",
        ];
        for s in Status::ALL {
            let v = serde_json::to_value(production_status(
                &job(),
                &event(s, Some(ErrorCode::PRD_FEEDER_JAM), Some("jam")),
            ))
            .unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), keys.len(), "{v}");
            for k in keys {
                assert!(obj.contains_key(k), "{k} missing in {v}");
            }
            assert_eq!(v["kioskId"].is_null(), s == Status::Ready, "{v}");
            // Code and description exactly on the seed's two error statuses
            // (a cancellation is sent as REQUEST_ERROR).
            let error = matches!(
                v["status"].as_str(),
                Some("PRODUCTION_ERROR" | "REQUEST_ERROR")
            );
            assert_eq!(
                error,
                matches!(
                    s,
                    Status::ProductionError | Status::RequestError | Status::Cancelled
                ),
                "{v}"
            );
            assert_eq!(v["errorCode"].is_null(), !error, "{v}");
            assert_eq!(v["description"].is_null(), !error, "{v}");
        }
    }

    #[test]
    fn end_time_is_absent_exactly_while_pending() {
        for s in Status::ALL {
            let o = d1_operation(&job(), &event(s, Some(ErrorCode::DP_IO_ERROR), None));
            let v = serde_json::to_value(&o).unwrap();
            let pending = o.status == OperationStatus::Pending;
            assert_eq!(v.get("endTime").is_none(), pending, "{v}");
            // A failure says what went wrong; a cancellation has no code.
            assert_eq!(
                v.get("errorCode").is_none(),
                pending || matches!(s, Status::Produced | Status::Cancelled),
                "{v}"
            );
            assert_eq!(
                v.get("error").is_none(),
                pending || s == Status::Produced,
                "{v}"
            );
            assert_eq!(v["startTime"], CREATED);
        }
    }

    #[test]
    fn operation_id_is_stable_per_card_and_pattern_valid() {
        let j = job();
        let ids: Vec<String> = Status::ALL
            .iter()
            .map(|&s| d1_operation(&j, &event(s, None, None)).operation_id)
            .collect();
        assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
        assert_eq!(ids[0], operation_id("WIS00001", TOKEN));
        // The event's own id and sequence play no part.
        let mut e = event(Status::Produced, None, None);
        e.id = "another".into();
        e.seq = 9;
        assert_eq!(d1_operation(&j, &e).operation_id, ids[0]);

        let id = &ids[0];
        assert_eq!(id.len(), 37);
        assert!(id.starts_with("prod-"));
        assert!(id[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        // Another card, or the same token at another kiosk, is another operation.
        assert_ne!(operation_id("WIS00001", "other-token"), *id);
        assert_ne!(operation_id("WIS00002", TOKEN), *id);
        // The separator keeps the two parts apart.
        assert_ne!(operation_id("ab", "c"), operation_id("a", "bc"));
        // Fixed for good: receivers correlate on it across agent versions
        // (the example in docs/EVENT-FORMS.md).
        assert_eq!(id, "prod-2273fda75bc4135f3a102d9c3ce5cd6b");
    }

    #[test]
    fn the_webhook_carries_the_chosen_form() {
        let j = job();
        let e = event(Status::Produced, None, None);
        let v = serde_json::to_value(webhook_body(Form::ProductionStatus, &j, &e)).unwrap();
        assert_eq!(v["type"], WEBHOOK_TYPE);
        assert_eq!(v["timestamp"], AT);
        assert_eq!(
            v["data"],
            serde_json::to_value(production_status(&j, &e)).unwrap()
        );
        assert_eq!(v.as_object().unwrap().len(), 3);
        let back: WebhookBody = serde_json::from_value(v).unwrap();
        assert_eq!(back, webhook_body(Form::ProductionStatus, &j, &e));

        let v = serde_json::to_value(webhook_body(Form::D1Operation, &j, &e)).unwrap();
        assert_eq!(v["type"], WEBHOOK_TYPE);
        assert_eq!(v["timestamp"], AT);
        assert_eq!(
            v["data"],
            serde_json::to_value(d1_operation(&j, &e)).unwrap()
        );
        let back: WebhookBody = serde_json::from_value(v).unwrap();
        assert_eq!(back, webhook_body(Form::D1Operation, &j, &e));

        assert_eq!(
            serde_json::to_value(Form::ProductionStatus).unwrap(),
            "production_status"
        );
        assert_eq!(
            serde_json::to_value(Form::D1Operation).unwrap(),
            "d1_operation"
        );
        assert_eq!(
            serde_json::from_value::<Form>(json!("d1_operation")).unwrap(),
            Form::D1Operation
        );
    }

    #[test]
    fn a_batch_is_an_events_array_of_envelopes() {
        let j = job();
        let batch = EventBatch {
            events: vec![
                envelope(&j, &event(Status::Ready, None, None)),
                envelope(&j, &event(Status::Produced, None, None)),
            ],
        };
        let v = serde_json::to_value(&batch).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
        assert_eq!(v["events"].as_array().unwrap().len(), 2);
        assert_eq!(v["events"][1]["production"]["status"], "PRODUCED");
        assert_eq!(v["events"][1]["operation"]["status"], "SUCCESSFUL");
        assert_eq!(serde_json::from_value::<EventBatch>(v).unwrap(), batch);
    }

    #[test]
    fn only_status_changes_are_sent() {
        let step = |s: &str| Event {
            step: Some(s.into()),
            ..event(Status::InProgress, None, None)
        };
        let e = |s| event(s, None, None);
        // A card's life: READY, IN_PROGRESS, steps, PRODUCED.
        assert!(is_status_change(None, &e(Status::Ready)));
        assert!(is_status_change(
            Some(Status::Ready),
            &e(Status::InProgress)
        ));
        assert!(!is_status_change(Some(Status::InProgress), &step("feed")));
        assert!(!is_status_change(Some(Status::InProgress), &step("print")));
        assert!(is_status_change(
            Some(Status::InProgress),
            &e(Status::Produced)
        ));
        assert!(is_status_change(
            Some(Status::InProgress),
            &e(Status::ProductionError)
        ));
        assert!(is_status_change(Some(Status::Ready), &e(Status::Cancelled)));
        // A request refused at once: its first and only event.
        assert!(is_status_change(None, &e(Status::RequestError)));
        // The same status again is no change; a step line never is one.
        assert!(!is_status_change(Some(Status::Ready), &e(Status::Ready)));
        assert!(!is_status_change(None, &step("feed")));
        assert!(!is_status_change(Some(Status::Ready), &step("feed")));
    }
}
