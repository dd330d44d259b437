//! `POST {base}/kiosks/{kioskId}/events`: production-status events from the
//! kiosk's outbox. A batch is checked whole (one bad envelope refuses it
//! all, so the agent never half-delivers), then each envelope is recorded
//! with its receipt time and fed to the receiver's reconciliation.

use super::answer;
use super::faults::Group;
use super::gate;
use super::schema;
use super::state::{Arrival, Shared};
use super::time;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::SystemTime;

/// One envelope as received.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventRecord {
    /// The call it came in (the received log's `n`).
    pub n: u64,
    pub received_at: String,
    #[serde(skip)]
    pub at: SystemTime,
    /// Its `production.eventId` was received before.
    pub duplicate: bool,
    pub envelope: Value,
}

pub async fn post(
    State(s): State<Arc<Shared>>,
    Path(kiosk): Path<String>,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate::faults(&s, Group::Events).await {
        return r;
    }
    if let Err(r) = gate::cb(&s, &headers, &kiosk) {
        return r;
    }
    if let Err(r) = gate::poison(&s, Group::Events, &body, "") {
        return r;
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return answer::cb(
                StatusCode::BAD_REQUEST,
                "INVALID_EVENT",
                format!("body: not JSON ({e})"),
            )
        }
    };
    if let Err(field) = schema::events(&value) {
        return answer::cb(StatusCode::BAD_REQUEST, "INVALID_EVENT", field);
    }
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    let mut inner = s.lock();
    let Value::Object(mut o) = value else {
        unreachable!("checked above")
    };
    let Some(Value::Array(list)) = o.remove("events") else {
        unreachable!("checked above")
    };
    for envelope in list {
        inner.cards.envelope(&envelope);
        let id = envelope["production"]["eventId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let fresh = inner.event_ids.insert(id);
        if fresh {
            accepted += 1;
        } else {
            duplicates += 1;
        }
        inner.events.push(EventRecord {
            n: arrival.n,
            received_at: time::micros(arrival.at),
            at: arrival.at,
            duplicate: !fresh,
            envelope,
        });
    }
    Json(json!({"accepted": accepted, "duplicates": duplicates})).into_response()
}
