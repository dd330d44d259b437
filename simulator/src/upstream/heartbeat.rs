//! `PUT {base}/kiosks/{kioskId}/heartbeat`: the kiosk's health. The stub
//! keeps the latest and a count, and answers its own time so the agent can
//! check its clock.

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

#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Heartbeats {
    pub count: u64,
    pub latest: Option<Value>,
    pub received_at: Option<String>,
}

pub async fn put(
    State(s): State<Arc<Shared>>,
    Path(kiosk): Path<String>,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate::faults(&s, Group::Heartbeat).await {
        return r;
    }
    if let Err(r) = gate::cb(&s, &headers, &kiosk) {
        return r;
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => {
            return answer::cb(
                StatusCode::BAD_REQUEST,
                "INVALID_HEARTBEAT",
                "body: not JSON",
            )
        }
    };
    if let Err(field) = schema::heartbeat(&value) {
        return answer::cb(StatusCode::BAD_REQUEST, "INVALID_HEARTBEAT", field);
    }
    {
        let mut inner = s.lock();
        let hb = &mut inner.heartbeats;
        hb.count += 1;
        hb.latest = Some(value);
        hb.received_at = Some(time::micros(arrival.at));
    }
    Json(json!({"serverTime": time::millis(SystemTime::now())})).into_response()
}
