//! The local API: HTTP/1.1 with JSON over a Unix socket, for the kiosk
//! application on the same machine, and optionally over TCP on loopback with
//! a bearer token (the same router). Described by
//! `docs/local-api.openapi.yaml`, which it serves at `GET /v1/openapi.yaml`.
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
//! | `PUT /v1/inventory/reject-box` | `{"cards": 0}`: what the reject box holds now (0 once emptied), for the supplies forecast |
//! | `GET /v1/outbox`, `POST /v1/outbox/{sink}/replay` | each sink's backlog and dead letters; send them again |
//! | `GET /v1/openapi.yaml` | the OpenAPI document of all this |
//!
//! Errors are JSON: `{"error": {"code": .., "field": .., "message": ..}}`
//! ([`error`]), and a refused request answers the production object in
//! REQUEST_ERROR.
//!
//! As an HTTP service: an unknown card token is 404 on every card route; a
//! body must be `Content-Type: application/json` (415 otherwise); a client
//! that half-closes its side after its request still gets the answer; a
//! connection that does not send a request head within
//! `[api] header_read_timeout_ms` is closed, and one whose body does not
//! arrive within `body_read_timeout_ms` is answered 408 and closed.

pub mod auth;
pub mod client;
pub mod error;
pub mod listen;
pub mod openapi;
mod technician;

pub use listen::serve;

use crate::codes::ErrorCode;
use crate::engine::{CardError, Engine, Refused, Resolution, SubmitError};
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use error::{error, internal, unavailable, ApiCode};
use serde::Deserialize;
use serde_json::json;
use std::time::Duration;

/// Requests carry a front image at most: a few megabytes.
const BODY_LIMIT: usize = 8 * 1024 * 1024;

/// The one media type request bodies come in.
const JSON: &str = "application/json";

/// The API for the Unix socket, whose file permissions guard it.
pub fn router(engine: Engine) -> Router {
    let body_read = Duration::from_millis(engine.config().api.body_read_timeout_ms);
    Router::new()
        .route("/v1/cards", post(submit))
        .route("/v1/cards/{token}", get(card))
        .route("/v1/cards/{token}/production", get(production))
        .route("/v1/cards/{token}/cancel", post(cancel))
        .route("/v1/cards/{token}/validation", post(validation))
        .route("/v1/cards/{token}/resolve", post(resolve))
        .route("/v1/status", get(status))
        .route("/v1/outbox", get(outbox))
        .route("/v1/outbox/{sink}/replay", post(outbox_replay))
        .route("/v1/printer", get(printer))
        .route("/v1/inventory", get(inventory))
        .route("/v1/inventory/reject-box", put(set_reject_box))
        .route("/v1/inventory/{feeder}", put(set_inventory))
        .merge(technician::routes())
        .route("/metrics", get(crate::metrics::serve))
        .route("/v1/openapi.yaml", get(openapi::document))
        .fallback(|| async {
            error(
                StatusCode::NOT_FOUND,
                ApiCode::NOT_FOUND,
                None,
                "no such endpoint: see GET /v1/openapi.yaml",
            )
        })
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(move |req, next| {
            read_body(body_read, req, next)
        }))
        .layer(axum::middleware::from_fn(error::json_errors))
        .layer(axum::middleware::from_fn(error::catch_panic))
        .with_state(engine)
}

/// The same API for the TCP listener: any local process can connect there,
/// so each request needs the bearer token first.
pub fn tcp_router(engine: Engine, token: auth::Token) -> Router {
    router(engine).layer(axum::middleware::from_fn(move |req, next| {
        auth::require(token.clone(), req, next)
    }))
}

/// Reads the whole request body within `limit` before the request goes on;
/// a body that does not arrive in time is 408 and the connection is closed.
async fn read_body(limit: Duration, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match tokio::time::timeout(limit, axum::body::to_bytes(body, BODY_LIMIT)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) if too_large(&e) => {
            return closing(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                ApiCode::PAYLOAD_TOO_LARGE,
                None,
                &format!("the body is larger than {BODY_LIMIT} bytes"),
            ))
        }
        Ok(Err(e)) => {
            return closing(error(
                StatusCode::BAD_REQUEST,
                ApiCode::BAD_REQUEST,
                None,
                &format!("the body could not be read: {e}"),
            ))
        }
        Err(_) => {
            tracing::info!(method = %parts.method, path = %parts.uri.path(), "a request body did not arrive in time");
            return closing(error(
                StatusCode::REQUEST_TIMEOUT,
                ApiCode::REQUEST_TIMEOUT,
                None,
                &format!("the body did not arrive within {} ms", limit.as_millis()),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

fn too_large(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// The connection closes after this answer: what is left of the request on
/// the wire cannot be told from a next request.
fn closing(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Whether the request says its body is JSON: `application/json`, any case,
/// with parameters or not (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(JSON))
}

/// A JSON request body: 415 unless the request says `application/json`.
struct JsonBody(Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        if !is_json(req.headers()) {
            let given = req
                .headers()
                .get(header::CONTENT_TYPE)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            return Err(error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ApiCode::UNSUPPORTED_MEDIA_TYPE,
                None,
                &match given {
                    Some(t) => format!("the body must be {JSON}, not {t:?}"),
                    None => format!("the body must be {JSON}: give Content-Type: {JSON}"),
                },
            ));
        }
        Bytes::from_request(req, state)
            .await
            .map(JsonBody)
            .map_err(IntoResponse::into_response)
    }
}

fn card_error(e: CardError) -> Response {
    match e {
        CardError::NotFound(t) => error(
            StatusCode::NOT_FOUND,
            ApiCode::NOT_FOUND,
            Some("cardToken"),
            &format!("no card with token {t:?}"),
        ),
        CardError::Conflict(m) => error(StatusCode::CONFLICT, ApiCode::CONFLICT, None, &m),
        // The store failed: nothing was decided, the client may try again.
        CardError::Internal(m) => unavailable(&m),
    }
}

/// HTTP status for a refused request.
fn request_status(code: ErrorCode) -> StatusCode {
    use ErrorCode::*;
    match code {
        REQUEST_ALREADY_EXISTS | PAN_ALREADY_EXISTS => StatusCode::CONFLICT,
        // Not the request's fault, and not recorded: send it again later
        // (UNKNOWN_ERROR: the store could not take a valid request).
        c if crate::engine::refused_for_now(c) => StatusCode::SERVICE_UNAVAILABLE,
        DATA_PREPARATION_FAILED | PARTIAL_DATA_RECEIVED => StatusCode::BAD_REQUEST,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

async fn submit(State(engine): State<Engine>, JsonBody(body): JsonBody) -> Response {
    match engine.submit(&body).await {
        Ok(s) => (StatusCode::CREATED, Json(s.production)).into_response(),
        // Never a final status: the request may or may not be stored.
        Err(SubmitError::Unavailable(message)) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            ApiCode::OUTCOME_UNKNOWN,
            None,
            &message,
        ),
        Err(SubmitError::Refused(Refused { error, occurred_at })) => (
            request_status(error.code),
            Json(json!({
                "status": "REQUEST_ERROR",
                "kioskId": engine.config().kiosk_id,
                "occurredAt": occurred_at,
                "errorCode": error.code,
                "description": error.message,
                "field": error.field,
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
            ApiCode::INVALID_FIELD_VALUE,
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
    JsonBody(body): JsonBody,
) -> Response {
    let v: Validation = match parse(&body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    match engine.final_validation(&token, v.accept).await {
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
    q: Result<Query<Fresh>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(q)) = q else {
        return error(
            StatusCode::BAD_REQUEST,
            ApiCode::INVALID_FIELD_VALUE,
            Some("fresh"),
            "fresh is true or false",
        );
    };
    let refreshed = if q.fresh {
        engine.printer().refresh(true).await.err()
    } else {
        None
    };
    Json(crate::engine::report::printer(&engine, refreshed)).into_response()
}

/// What the agent does now and what it knows of the printer: never asks
/// the printer.
async fn status(State(engine): State<Engine>) -> Response {
    Json(crate::engine::report::health(&engine).await).into_response()
}

/// Each sink's backlog and its dead letters.
async fn outbox(State(engine): State<Engine>) -> Response {
    let store = engine.store();
    let read = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((store.outbox_depths()?, store.dead_letters(None)?))
    })
    .await;
    match read {
        Ok(Ok((sinks, dead))) => {
            Json(json!({ "sinks": sinks, "deadLetters": dead })).into_response()
        }
        Ok(Err(e)) => unavailable(&e.to_string()),
        Err(e) => internal(&e.to_string()),
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Replay {
    /// One dead letter (its `ord`); all of the sink's when absent.
    #[serde(default)]
    ord: Option<i64>,
}

/// Puts a sink's dead letters (or one) back in its queue.
async fn outbox_replay(
    State(engine): State<Engine>,
    Path(sink): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    let r: Replay = if body.iter().all(u8::is_ascii_whitespace) {
        Replay::default()
    } else {
        match parse(&body) {
            Ok(r) => r,
            Err(r) => return *r,
        }
    };
    let store = engine.store();
    let s = sink.clone();
    match tokio::task::spawn_blocking(move || store.replay(&s, r.ord)).await {
        Ok(Ok(n)) => {
            tracing::info!(sink = %sink, replayed = n, "dead letters replayed");
            Json(json!({ "replayed": n })).into_response()
        }
        Ok(Err(e)) => unavailable(&e.to_string()),
        Err(e) => internal(&e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Resolve {
    resolution: Resolution,
}

/// A technician's word on a card in doubt: `{"resolution": "removed"|"retry"}`.
async fn resolve(
    State(engine): State<Engine>,
    Path(token): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RejectBox {
    cards: u64,
}

/// A technician says what the reject box holds (0 once emptied): the
/// supplies forecast counts its free slots from here.
async fn set_reject_box(State(engine): State<Engine>, JsonBody(body): JsonBody) -> Response {
    let r: RejectBox = match parse(&body) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    match engine.set_reject_box(r.cards).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => card_error(e),
    }
}

async fn set_inventory(
    State(engine): State<Engine>,
    Path(feeder): Path<String>,
    JsonBody(body): JsonBody,
) -> Response {
    let Ok(feeder) = feeder.parse::<u8>() else {
        return error(
            StatusCode::BAD_REQUEST,
            ApiCode::INVALID_FIELD_VALUE,
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
