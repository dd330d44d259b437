//! Error bodies. Each endpoint family has its own shape: OAuth's `error`,
//! the central base's `errorCode`+`message`, D1's `errorCode`+`error`.

use super::faults::{Fault, Group, DATA_ERRORS};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

pub fn status(n: u16) -> StatusCode {
    StatusCode::from_u16(n).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// `{"errorCode", "message"}`, the central base's error.
pub fn cb(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let mut r = (
        status,
        Json(json!({"errorCode": code, "message": message.into()})),
    )
        .into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer error=\"invalid_token\""),
        );
    }
    r
}

/// `{"errorCode", "error"}`, D1's `errorGeneric`; 503 has no body there.
pub fn d1(status: StatusCode, code: &str, error: impl Into<String>) -> Response {
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return status.into_response();
    }
    (
        status,
        Json(json!({"errorCode": code, "error": error.into()})),
    )
        .into_response()
}

/// RFC 6749 section 5.2 `{"error"}`.
pub fn oauth(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// The code a central-base error of this status carries when a fault
/// makes it up.
fn cb_code(status: u16) -> &'static str {
    match status {
        401 => "CB_AUTHENTICATION_FAILED",
        403 => "CB_SERVICE_NOT_ALLOWED",
        404 => "NOT_FOUND",
        502 | 503 => "CB_NOT_AVAILABLE",
        504 => "CB_TIME",
        400..=499 => "BAD_REQUEST",
        _ => "UNKNOWN_ERROR",
    }
}

fn d1_code(status: u16) -> &'static str {
    match status {
        400 => "FIELD_INVALID_VALUE",
        401 => "AUTHORIZER_UNAUTHORIZED",
        403 => "AUTHORIZER_FORBIDDEN",
        404 => "NOT_FOUND",
        _ => "INTERNAL_ERROR",
    }
}

fn oauth_code(status: u16) -> &'static str {
    match status {
        401 => "invalid_client",
        400..=499 => "invalid_request",
        503 => "temporarily_unavailable",
        _ => "server_error",
    }
}

/// The answer a fault makes up for a call in `group`.
pub fn fault(group: Group, f: &Fault) -> Response {
    let (n, retry_after) = match f {
        Fault::Status(n) | Fault::Poison(n, _) => (*n, None),
        Fault::Unavailable(s) => (503, Some(*s)),
        Fault::UnauthorizedOnce => (401, None),
        Fault::DataError(code) => {
            let n = DATA_ERRORS
                .iter()
                .find(|(c, _)| c == code)
                .map_or(503, |c| c.1);
            return cb(status(n), code, format!("injected fault {f}"));
        }
        Fault::Down | Fault::Slow(_) | Fault::Duplicate => (500, None),
    };
    let msg = format!("injected fault {f}");
    let mut r = match group {
        Group::Token | Group::D1token => oauth(status(n), oauth_code(n), &msg),
        Group::D1track => d1(status(n), d1_code(n), msg),
        _ => cb(status(n), cb_code(n), msg),
    };
    if let Some(s) = retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// The data-fetch failure a `data_error:CODE` fault names.
pub fn data_error(code: &str) -> Response {
    fault(Group::Data, &Fault::DataError(code.to_owned()))
}
