//! The control listener (plain HTTP, JSON, `/_stub/...`): the library's
//! [`Control`] for a stub run as a separate process. It lives on its own
//! port so that a `down` fault on the upstream listener leaves it up.

use super::control::Control;
use super::faults::{Fault, Group};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

fn bad(message: impl Into<String>) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"errorCode": "BAD_CONTROL_REQUEST", "message": message.into()})),
    )
        .into_response()
}

pub fn router(control: Control) -> Router {
    Router::new()
        .route("/_stub/requests", post(enqueue))
        .route("/_stub/cards/{token}/data", put(card_data))
        .route("/_stub/cards/{token}", get(card))
        .route(
            "/_stub/received",
            get(|State(c): State<Control>| async move { Json(c.received()) }),
        )
        .route(
            "/_stub/acks",
            get(|State(c): State<Control>| async move { Json(c.acks()) }),
        )
        .route(
            "/_stub/events",
            get(|State(c): State<Control>| async move { Json(c.events()) }),
        )
        .route(
            "/_stub/heartbeat",
            get(|State(c): State<Control>| async move { Json(c.heartbeat()) }),
        )
        .route(
            "/_stub/webhooks",
            get(|State(c): State<Control>| async move { Json(c.webhooks()) }),
        )
        .route(
            "/_stub/d1/tracks",
            get(|State(c): State<Control>| async move { Json(c.d1_tracks()) }),
        )
        .route(
            "/_stub/data-fetches",
            get(|State(c): State<Control>| async move { Json(c.data_fetches()) }),
        )
        .route(
            "/_stub/faults",
            post(set_fault).delete(clear_faults).get(faults),
        )
        .route(
            "/_stub/tokens/expire",
            post(|State(c): State<Control>| async move {
                c.expire_tokens();
                StatusCode::NO_CONTENT
            }),
        )
        .route("/_stub/status", get(status))
        // Requests may carry a front image: allow large bodies.
        .layer(DefaultBodyLimit::max(64 << 20))
        .with_state(control)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Enqueue {
    request: Box<RawValue>,
    card_data: Option<Box<RawValue>>,
    /// The card the data is for; by default the request's `cardToken`.
    card_token: Option<String>,
}

async fn enqueue(State(c): State<Control>, body: axum::body::Bytes) -> Response {
    let e: Enqueue = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(err) => return bad(err.to_string()),
    };
    if !e.request.get().trim_start().starts_with('{') {
        return bad("request must be a JSON object");
    }
    if let Some(data) = e.card_data {
        let token = e.card_token.or_else(|| {
            let v: Value = serde_json::from_str(e.request.get()).ok()?;
            v["cardToken"].as_str().map(str::to_owned)
        });
        let Some(token) = token else {
            return bad("cardData needs cardToken (here or in the request)");
        };
        c.set_card_data_raw_value(&token, data);
    }
    let id = c.enqueue_raw_value(e.request);
    (StatusCode::CREATED, Json(json!({"deliveryId": id}))).into_response()
}

async fn card_data(
    State(c): State<Control>,
    Path(token): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let data: Box<RawValue> = match serde_json::from_slice(&body) {
        Ok(d) => d,
        Err(err) => return bad(err.to_string()),
    };
    if !data.get().trim_start().starts_with('{') {
        return bad("card data must be a JSON object");
    }
    c.set_card_data_raw_value(&token, data);
    StatusCode::NO_CONTENT.into_response()
}

async fn card(State(c): State<Control>, Path(token): Path<String>) -> Response {
    match c.latest(&token) {
        Some(s) => Json(s).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({"errorCode": "CARD_NOT_FOUND", "message": "no event for this card"})),
        )
            .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetFault {
    group: String,
    fault: String,
    count: Option<u32>,
}

async fn set_fault(State(c): State<Control>, body: axum::body::Bytes) -> Response {
    let f: SetFault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(err) => return bad(err.to_string()),
    };
    let group: Group = match f.group.parse() {
        Ok(g) => g,
        Err(e) => return bad(e),
    };
    let fault: Fault = match f.fault.parse() {
        Ok(x) => x,
        Err(e) => return bad(e),
    };
    c.set_fault(group, fault, f.count).await;
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct ClearQuery {
    group: Option<String>,
}

async fn clear_faults(State(c): State<Control>, Query(q): Query<ClearQuery>) -> Response {
    let group = match q.group.as_deref().map(str::parse::<Group>) {
        None => None,
        Some(Ok(g)) => Some(g),
        Some(Err(e)) => return bad(e),
    };
    c.clear_faults(group).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn faults(State(c): State<Control>) -> Response {
    Json(c.faults()).into_response()
}

async fn status(State(c): State<Control>) -> Response {
    Json(json!({"up": c.is_up(), "pending": c.pending()})).into_response()
}
