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
//! | `POST /v1/cards/{cardToken}/resolve` | `{"resolution": "removed"\|"retry"}`: a technician settles a card in doubt |
//! | `GET /v1/status` | what the engine does (since when) and the printer's published view |
//! | `GET /v1/printer` | the printer's published view (`?fresh=true`: read it now) |
//! | `GET /v1/inventory`, `PUT /v1/inventory/{feeder}` | feeder stock, `{"cardType": .., "count": ..}` |
//!
//! Errors are JSON: `{"error": {"code": .., "field": .., "message": ..}}`, and a
//! refused request answers the production object in REQUEST_ERROR.

pub mod client;

use crate::codes::ErrorCode;
use crate::engine::{CardError, Engine, Resolution, SubmitError};
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
        .route("/v1/cards/{token}/resolve", post(resolve))
        .route("/v1/status", get(status))
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
        // Never a final status: the request may or may not be stored.
        Err(SubmitError::Unavailable(message)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "OUTCOME_UNKNOWN",
            None,
            &message,
        ),
        Err(SubmitError::Refused(RequestError {
            code,
            field,
            message,
        })) => (
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

#[derive(Deserialize)]
struct Fresh {
    #[serde(default)]
    fresh: bool,
}

/// The published view of the printer; `?fresh=true` reads it first,
/// waiting its turn behind the step in progress.
async fn printer(
    State(engine): State<Engine>,
    axum::extract::Query(q): axum::extract::Query<Fresh>,
) -> Response {
    let refreshed = if q.fresh {
        engine.printer().refresh(true).await.err()
    } else {
        None
    };
    Json(printer_json(&engine, refreshed)).into_response()
}

fn printer_json(engine: &Engine, refresh_error: Option<crate::codes::Fault>) -> serde_json::Value {
    let view = engine.printer().view().borrow().clone();
    let engine_blocks = engine.state().borrow().blocks_production();
    let not_ready = view.not_ready();
    let ready = not_ready.is_none() && engine_blocks.is_none();
    json!({
        "ready": ready,
        "notReady": not_ready,
        "engine": engine_blocks,
        "ageMs": view.age().map(|a| a.as_millis() as u64),
        "readAt": view.read_at,
        "fullReadAt": view.full_read_at,
        "link": view.link,
        "snapshot": view.reading,
        "refreshError": refresh_error,
    })
}

/// What the agent does now and what it knows of the printer: never asks
/// the printer.
async fn status(State(engine): State<Engine>) -> Response {
    let state = engine.state().borrow().clone();
    Json(json!({
        "engine": state,
        "printer": printer_json(&engine, None),
    }))
    .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolve {
    resolution: Resolution,
}

/// A technician's word on a card in doubt: `{"resolution": "removed"|"retry"}`.
async fn resolve(State(engine): State<Engine>, Path(token): Path<String>, body: Bytes) -> Response {
    let r: Resolve = match parse(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match engine.resolve(&token, r.resolution).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => card_error(e),
    }
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
