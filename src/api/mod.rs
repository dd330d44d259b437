//! The local API: HTTP/1.1 with JSON over a Unix socket, for the kiosk
//! application on the same machine.
//!
//! | method and path | what |
//! |---|---|
//! | `POST /v1/cards` | submit a production request (`docs/REQUEST.md`) |
//! | `GET /v1/cards/{cardToken}/production` | the platform's production object, exactly |
//! | `GET /v1/cards/{cardToken}` | the same, with the step and every status change |
//! | `POST /v1/cards/{cardToken}/cancel` | cancel a request that has not started |
//! | `POST /v1/cards/{cardToken}/validation` | `{"accept": bool}`: the final validation of a presented card |
//! | `GET /v1/printer` | the printer link and its status |
//! | `GET /v1/inventory`, `PUT /v1/inventory/{feeder}` | feeder stock, `{"cardType": .., "count": ..}` |
//!
//! Errors are JSON: `{"error": {"code": .., "field": .., "message": ..}}`, and a
//! refused request answers the production object in REQUEST_ERROR.

pub mod client;

use crate::codes::ErrorCode;
use crate::engine::{CardError, Engine};
use crate::request::RequestError;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

/// Requests carry a front image at most: a few megabytes.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

pub fn router(engine: Engine) -> Router {
    Router::new()
        .route("/v1/cards", post(submit))
        .route("/v1/cards/{token}", get(card))
        .route("/v1/cards/{token}/production", get(production))
        .route("/v1/cards/{token}/cancel", post(cancel))
        .route("/v1/cards/{token}/validation", post(validation))
        .route("/v1/printer", get(printer))
        .route("/v1/inventory", get(inventory))
        .route("/v1/inventory/{feeder}", put(set_inventory))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                None,
                "no such endpoint: see the API table in README.md",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(engine)
}

fn error(status: StatusCode, code: &str, field: Option<&str>, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code, "field": field, "message": message } })),
    )
        .into_response()
}

fn card_error(e: CardError) -> Response {
    match e {
        CardError::NotFound(t) => error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            Some("cardToken"),
            &format!("no card with token {t:?}"),
        ),
        CardError::Conflict(m) => error(StatusCode::CONFLICT, "CONFLICT", None, &m),
        CardError::Internal(m) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN_ERROR", None, &m)
        }
    }
}

/// HTTP status for a refused request.
fn request_status(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        REQUEST_ALREADY_EXISTS | PAN_ALREADY_EXISTS => StatusCode::CONFLICT,
        UNABLE_TO_ACCEPT_REQUEST | PRINTER_OR_SATELLITE_NOT_READY => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        DATA_PREPARATION_FAILED | PARTIAL_DATA_RECEIVED => StatusCode::BAD_REQUEST,
        UNKNOWN_ERROR => StatusCode::INTERNAL_SERVER_ERROR,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

async fn submit(State(engine): State<Engine>, body: Bytes) -> Response {
    match engine.submit(&body).await {
        Ok(s) => (StatusCode::CREATED, Json(s.production)).into_response(),
        Err(RequestError {
            code,
            field,
            message,
        }) => (
            request_status(code),
            Json(json!({
                "status": "REQUEST_ERROR",
                "kioskId": engine.config().kiosk_id,
                "occurredAt": crate::time::now_rfc3339(),
                "errorCode": code,
                "description": message,
                "field": field,
            })),
        )
            .into_response(),
    }
}

async fn production(State(engine): State<Engine>, Path(token): Path<String>) -> Response {
    match engine.production(&token).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => card_error(e),
    }
}

async fn card(State(engine): State<Engine>, Path(token): Path<String>) -> Response {
    match engine.card(&token).await {
        Ok(c) => Json(c).into_response(),
        Err(e) => card_error(e),
    }
}

async fn cancel(State(engine): State<Engine>, Path(token): Path<String>) -> Response {
    match engine.cancel(&token).await {
        Ok(p) => Json(p).into_response(),
        Err(e) => card_error(e),
    }
}

/// Parses a JSON body, answering 400 with the path of the field at fault.
fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, Box<Response>> {
    serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        // At the top level serde names a missing or unknown field only in its message.
        let named = message
            .split('`')
            .nth(1)
            .filter(|_| message.contains(" field `"))
            .map(str::to_string);
        let field = if path == "." { named } else { Some(path) };
        Box::new(error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD_VALUE",
            field.as_deref(),
            &message,
        ))
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Validation {
    accept: bool,
}

async fn validation(
    State(engine): State<Engine>,
    Path(token): Path<String>,
    body: Bytes,
) -> Response {
    let v: Validation = match parse(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match engine.final_validation(&token, v.accept) {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => card_error(e),
    }
}

async fn printer(State(engine): State<Engine>) -> Response {
    let link = engine.printer().status().borrow().clone();
    let status = match engine.printer().snapshot().await {
        Ok(s) => json!({ "ready": s.ready(), "snapshot": s }),
        Err(f) => {
            json!({ "ready": false, "error": { "code": f.code, "reason": f.reason, "description": f.description } })
        }
    };
    Json(json!({ "link": link, "status": status })).into_response()
}

async fn inventory(State(engine): State<Engine>) -> Response {
    match engine.inventory().await {
        Ok(stock) => Json(stock).into_response(),
        Err(e) => card_error(e),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Stock {
    card_type: String,
    count: u32,
}

async fn set_inventory(
    State(engine): State<Engine>,
    Path(feeder): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(feeder) = feeder.parse::<u8>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD_VALUE",
            Some("feeder"),
            "the feeder is a number from 1",
        );
    };
    let s: Stock = match parse(&body) {
        Ok(s) => s,
        Err(r) => return *r,
    };
    match engine.set_inventory(feeder, s.card_type, s.count).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => card_error(e),
    }
}
