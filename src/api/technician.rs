//! The local API's routes for technicians and their command line: cards
//! listed, the store's statistics, an upstream retried now, and printer
//! operations run through the agent (which owns the printer's port).
//!
//! | method and path | what |
//! |---|---|
//! | `GET /v1/cards?status=S&limit=N` | the most recent cards, newest first (N at most 1000, 50 by default) |
//! | `GET /v1/store` | counts by status, deliveries by sink, size, integrity check |
//! | `POST /v1/outbox/{sink}/retry` | send a sink's pending deliveries now, past its pauses |
//! | `POST /v1/outbox/{sink}/enable` | let a sink disabled by a 410 Gone send again |
//! | `GET /v1/printer/info` | identity, profile, options, endpoint (never asks the printer) |
//! | `GET /v1/printer/trace?last=N` | the last N exchanges on the printer link, redacted (N at most 500) |
//! | `POST /v1/printer/clean`, `/test-card`, `/reset` | run the operation between cards |
//! | `POST /v1/printer/raw` | `{"command": "Rse;o"}`: one command, its reply |

use super::error::ApiCode;
use super::{error, parse, JsonBody};
use crate::engine::maintenance::{MaintenanceError, Operation};
use crate::engine::view::CardSummary;
use crate::engine::Engine;
use crate::store::Status;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// How long a printer operation waits for the card in production.
const TURN_WAIT: Duration = Duration::from_secs(60);

pub fn routes() -> Router<Engine> {
    Router::new()
        .route("/v1/cards", get(list_cards))
        .route("/v1/store", get(store_stats))
        .route("/v1/outbox/{sink}/retry", post(outbox_retry))
        .route("/v1/outbox/{sink}/enable", post(outbox_enable))
        .route("/v1/printer/info", get(printer_info))
        .route("/v1/printer/trace", get(printer_trace))
        .route("/v1/printer/raw", post(printer_raw))
        .route("/v1/printer/{operation}", post(printer_operation))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    limit: Option<usize>,
}

async fn list_cards(
    State(engine): State<Engine>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = query else {
        return error(
            StatusCode::BAD_REQUEST,
            ApiCode::INVALID_FIELD_VALUE,
            None,
            "query: status (READY, IN_PROGRESS, PRODUCED, PRODUCTION_ERROR, REQUEST_ERROR, CANCELLED) and limit (1 to 1000) only",
        );
    };
    let status = match q.status.as_deref().map(str::parse::<Status>).transpose() {
        Ok(s) => s,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                ApiCode::INVALID_FIELD_VALUE,
                Some("status"),
                "status is one of READY, IN_PROGRESS, PRODUCED, PRODUCTION_ERROR, REQUEST_ERROR, CANCELLED",
            )
        }
    };
    let limit = q.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return error(
            StatusCode::BAD_REQUEST,
            ApiCode::INVALID_FIELD_VALUE,
            Some("limit"),
            "limit is 1 to 1000",
        );
    }
    let store = engine.store();
    match tokio::task::spawn_blocking(move || store.recent(status, limit)).await {
        Ok(Ok(jobs)) => {
            let cards: Vec<CardSummary> = jobs.iter().map(CardSummary::of).collect();
            Json(json!({ "cards": cards })).into_response()
        }
        Ok(Err(e)) => internal(&e.to_string()),
        Err(e) => internal(&e.to_string()),
    }
}

async fn store_stats(State(engine): State<Engine>) -> Response {
    let store = engine.store();
    match tokio::task::spawn_blocking(move || store.stats()).await {
        Ok(Ok(s)) => Json(s).into_response(),
        Ok(Err(e)) => internal(&e.to_string()),
        Err(e) => internal(&e.to_string()),
    }
}

/// Whether the store knows a sink by that name; the 404 answer if not.
async fn known_sink(engine: &Engine, sink: &str) -> Result<(), Response> {
    let store = engine.store();
    let s = sink.to_string();
    let known = tokio::task::spawn_blocking(move || store.outbox_depths())
        .await
        .ok()
        .and_then(Result::ok)
        .is_some_and(|d| d.iter().any(|x| x.sink == s));
    if known {
        Ok(())
    } else {
        Err(error(
            StatusCode::NOT_FOUND,
            ApiCode::NOT_FOUND,
            Some("sink"),
            &format!("no sink named {sink:?}: see GET /v1/outbox"),
        ))
    }
}

/// Sends what the sink has pending now: its relay drops its pauses and
/// back-offs. Answers how many deliveries are pending.
async fn outbox_retry(State(engine): State<Engine>, Path(sink): Path<String>) -> Response {
    if let Err(r) = known_sink(&engine, &sink).await {
        return r;
    }
    let store = engine.store();
    let s = sink.clone();
    match tokio::task::spawn_blocking(move || store.retry_now(&s)).await {
        Ok(Ok(n)) => {
            tracing::info!(sink = %sink, pending = n, "sending pending deliveries now, as asked");
            Json(json!({ "retried": n })).into_response()
        }
        Ok(Err(e)) => internal(&e.to_string()),
        Err(e) => internal(&e.to_string()),
    }
}

/// Lets a sink that a 410 Gone disabled send again.
async fn outbox_enable(State(engine): State<Engine>, Path(sink): Path<String>) -> Response {
    if let Err(r) = known_sink(&engine, &sink).await {
        return r;
    }
    let store = engine.store();
    let s = sink.clone();
    match tokio::task::spawn_blocking(move || store.enable_sink(&s)).await {
        Ok(Ok(was)) => {
            tracing::info!(sink = %sink, was_disabled = was, "sink enabled, as asked");
            Json(json!({ "enabled": true, "wasDisabled": was })).into_response()
        }
        Ok(Err(e)) => internal(&e.to_string()),
        Err(e) => internal(&e.to_string()),
    }
}

/// Identity (as last connected), profile, options and where the printer is:
/// from what the agent knows, never asking the printer.
async fn printer_info(State(engine): State<Engine>) -> Response {
    let printer = engine.printer();
    let view = printer.view().borrow().clone();
    let identity = match &view.link.state {
        crate::printer::LinkState::Connected { identity } => Some(identity.clone()),
        _ => None,
    };
    Json(crate::cli::render::info_json(
        identity.as_ref(),
        printer.profile(),
        printer.endpoint(),
    ))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TraceQuery {
    last: Option<usize>,
}

/// The recent exchanges with the printer, oldest first (redacted).
async fn printer_trace(
    State(engine): State<Engine>,
    query: Result<Query<TraceQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let last = match query {
        Ok(Query(q)) => q.last.unwrap_or(100),
        Err(_) => 0,
    };
    if !(1..=crate::printer::trace::KEPT).contains(&last) {
        return error(
            StatusCode::BAD_REQUEST,
            ApiCode::INVALID_FIELD_VALUE,
            Some("last"),
            &format!("last is 1 to {}", crate::printer::trace::KEPT),
        );
    }
    Json(json!({ "exchanges": engine.printer().trace().last(last) })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    command: String,
}

async fn printer_raw(State(engine): State<Engine>, JsonBody(body): JsonBody) -> Response {
    let raw: Raw = match parse(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match crate::printer::raw::parse(&raw.command) {
        Ok(cmd) => run(&engine, Operation::Raw(cmd)).await,
        Err(m) => error(
            StatusCode::BAD_REQUEST,
            ApiCode::INVALID_FIELD_VALUE,
            Some("command"),
            &m,
        ),
    }
}

async fn printer_operation(
    State(engine): State<Engine>,
    Path(operation): Path<String>,
) -> Response {
    let op = match operation.as_str() {
        "clean" => Operation::Clean,
        "test-card" => Operation::TestCard,
        "reset" => Operation::Reset,
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                ApiCode::NOT_FOUND,
                Some("operation"),
                "printer operations: clean, test-card, reset, raw",
            )
        }
    };
    run(&engine, op).await
}

async fn run(engine: &Engine, op: Operation) -> Response {
    match engine.maintenance(op, TURN_WAIT).await {
        Ok(done) => Json(done).into_response(),
        Err(MaintenanceError::Busy(m)) => error(StatusCode::CONFLICT, ApiCode::CONFLICT, None, &m),
        Err(MaintenanceError::Link(f)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiCode::PRINTER_UNAVAILABLE,
            None,
            &format!("{}: {}", f.code, f.description),
        ),
    }
}

/// The store could not answer now (503, as the other routes say it).
fn internal(message: &str) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        ApiCode::UNKNOWN_ERROR,
        None,
        message,
    )
}
