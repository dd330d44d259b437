//! `POST /webhook`: the issuer's receiver for production notifications,
//! signed as Standard Webhooks. Valid ones are recorded as received (the
//! raw body, the headers, the time) and fed to the reconciliation.

use super::answer;
use super::faults::Group;
use super::gate;
use super::schema;
use super::signature::{self, VerifyError};
use super::state::{Arrival, Shared};
use super::time;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::SystemTime;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookRecord {
    pub n: u64,
    pub received_at: String,
    #[serde(skip)]
    pub at: SystemTime,
    pub webhook_id: String,
    pub webhook_timestamp: String,
    pub webhook_signature: String,
    /// The body exactly as received.
    pub body: String,
    /// Its `webhook-id` was received before (a retry).
    pub duplicate: bool,
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

pub async fn post(
    State(s): State<Arc<Shared>>,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate::faults(&s, Group::Webhook).await {
        return r;
    }
    if let Err(r) = gate::poison(&s, Group::Webhook, &body, "") {
        return r;
    }
    let (id, ts, sig) = (
        header(&headers, "webhook-id"),
        header(&headers, "webhook-timestamp"),
        header(&headers, "webhook-signature"),
    );
    let checked = signature::verify(
        &s.cfg.webhook_secrets,
        id,
        ts,
        sig,
        &body,
        time::unix_secs(SystemTime::now()),
        s.cfg.webhook_tolerance.as_secs() as i64,
    );
    if let Err(e) = checked.and(if id.is_empty() {
        Err(VerifyError::NoMatch)
    } else {
        Ok(())
    }) {
        let why = match e {
            VerifyError::Stale => "webhook-timestamp outside the tolerance",
            VerifyError::BadTimestamp => "webhook-timestamp is not unix seconds",
            VerifyError::BadSecret => "receiver secret misconfigured",
            VerifyError::NoMatch => "no valid signature",
        };
        return answer::cb(StatusCode::UNAUTHORIZED, "WEBHOOK_SIGNATURE_INVALID", why);
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return answer::cb(StatusCode::BAD_REQUEST, "INVALID_EVENT", "body: not JSON"),
    };
    if let Err(field) = schema::webhook(&value) {
        return answer::cb(StatusCode::BAD_REQUEST, "INVALID_EVENT", field);
    }
    let mut inner = s.lock();
    let duplicate = !inner.webhook_ids.insert(id.to_owned());
    if !duplicate {
        let data = &value["data"];
        if data.get("operationId").is_some() {
            inner.cards.operation(data);
        } else {
            inner.cards.production(data);
        }
    }
    inner.webhooks.push(WebhookRecord {
        n: arrival.n,
        received_at: time::micros(arrival.at),
        at: arrival.at,
        webhook_id: id.to_owned(),
        webhook_timestamp: ts.to_owned(),
        webhook_signature: sig.to_owned(),
        body: String::from_utf8_lossy(&body).into_owned(),
        duplicate,
    });
    StatusCode::NO_CONTENT.into_response()
}
