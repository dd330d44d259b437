//! The local API's one error shape, `{"error": {"code", "field", "message"}}`,
//! with codes from a closed set ([`ApiCode`], listed as an enum in
//! `docs/local-api.openapi.yaml`), and the layers that keep anything else
//! from going out: axum's own refusals (a method a path does not have, a
//! path or query it could not read come as empty or plain-text bodies) are
//! rewritten into it, and a handler that panics is answered 500 instead of
//! dropping the connection.
//!
//! Refused production requests are not errors of this shape: they answer
//! the production object in REQUEST_ERROR (`docs/REQUEST.md`).

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::FutureExt;
use serde_json::json;

macro_rules! api_codes {
    ($( $(#[$m:meta])* $name:ident, )*) => {
        /// Every code an error of the local API carries.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(non_camel_case_types)]
        pub enum ApiCode {
            $( $(#[$m])* $name, )*
        }

        impl ApiCode {
            pub const ALL: &'static [ApiCode] = &[ $( ApiCode::$name, )* ];

            pub fn as_str(self) -> &'static str {
                match self { $( ApiCode::$name => stringify!($name), )* }
            }
        }
    };
}

api_codes! {
    /// 400: the body could not be read, or axum could not read the path.
    BAD_REQUEST,
    /// 400: a body or parameter that is not of the expected form (`field` names it).
    INVALID_FIELD_VALUE,
    /// 401: over TCP, no bearer token or a wrong one.
    UNAUTHORIZED,
    /// 404: no such card, or no such endpoint.
    NOT_FOUND,
    /// 405: the path exists, not with this method (`Allow` lists those it has).
    METHOD_NOT_ALLOWED,
    /// 408: the body did not arrive in time.
    REQUEST_TIMEOUT,
    /// 409: the card (or feeder) is not in a state that allows this.
    CONFLICT,
    /// 413: the body is over the limit.
    PAYLOAD_TOO_LARGE,
    /// 415: a body not declared `application/json`.
    UNSUPPORTED_MEDIA_TYPE,
    /// 500: a bug (a handler panicked); the daemon goes on.
    INTERNAL_ERROR,
    /// 503: the store could not answer now; try again.
    UNKNOWN_ERROR,
    /// 503: a submission whose write has an unknown outcome: send it again.
    OUTCOME_UNKNOWN,
    /// 503: a technician's printer operation met a printer that does not
    /// answer (the message carries the standard code: PRT_NOT_REACHABLE, PRT_TIMEOUT).
    PRINTER_UNAVAILABLE,
}

/// An error answer.
pub fn error(status: StatusCode, code: ApiCode, field: Option<&str>, message: &str) -> Response {
    (
        status,
        Json(json!({ "error": { "code": code.as_str(), "field": field, "message": message } })),
    )
        .into_response()
}

/// The store could not do it now: 503, so that clients try again.
pub fn unavailable(message: &str) -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        ApiCode::UNKNOWN_ERROR,
        None,
        message,
    )
}

/// A task of ours that panicked (a bug): 500.
pub fn internal(message: &str) -> Response {
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        ApiCode::INTERNAL_ERROR,
        None,
        message,
    )
}

/// For a path that exists without the request's method. axum keeps the
/// `Allow` header it computed.
pub async fn method_not_allowed(req: Request) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        ApiCode::METHOD_NOT_ALLOWED,
        None,
        &format!(
            "{} is not a method of {}: the Allow header lists those it has",
            req.method(),
            req.uri().path()
        ),
    )
}

/// What a rewritten error says of itself, at most (axum's rejection texts
/// are short; anything longer is not a message).
const MESSAGE_LIMIT: usize = 4096;

/// Rewrites an error answer that is not JSON (axum's rejections: a path
/// segment that is not UTF-8, an empty 405...) into the error shape,
/// keeping its status and headers; its text becomes the message.
pub async fn json_errors(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let status = r.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&r) {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    let text = match axum::body::to_bytes(body, MESSAGE_LIMIT).await {
        Ok(b) if !b.is_empty() => String::from_utf8_lossy(&b).trim().to_string(),
        _ => status
            .canonical_reason()
            .unwrap_or("refused")
            .to_ascii_lowercase(),
    };
    let code = match status {
        StatusCode::BAD_REQUEST => ApiCode::BAD_REQUEST,
        StatusCode::UNAUTHORIZED => ApiCode::UNAUTHORIZED,
        StatusCode::NOT_FOUND => ApiCode::NOT_FOUND,
        StatusCode::METHOD_NOT_ALLOWED => ApiCode::METHOD_NOT_ALLOWED,
        StatusCode::REQUEST_TIMEOUT => ApiCode::REQUEST_TIMEOUT,
        StatusCode::CONFLICT => ApiCode::CONFLICT,
        StatusCode::PAYLOAD_TOO_LARGE => ApiCode::PAYLOAD_TOO_LARGE,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiCode::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::SERVICE_UNAVAILABLE => ApiCode::UNKNOWN_ERROR,
        s if s.is_server_error() => ApiCode::INTERNAL_ERROR,
        _ => ApiCode::BAD_REQUEST,
    };
    // The document gives each status its codes: a status of axum's that it
    // does not list would be an answer outside it, so such statuses are
    // told as the nearest one it lists.
    parts.status = match code {
        ApiCode::BAD_REQUEST if status != StatusCode::BAD_REQUEST => StatusCode::BAD_REQUEST,
        ApiCode::INTERNAL_ERROR => StatusCode::INTERNAL_SERVER_ERROR,
        _ => status,
    };
    let fresh = error(parts.status, code, None, &text);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, fresh.into_body())
}

fn is_json(r: &Response) -> bool {
    r.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"))
}

/// A handler that panics is a bug; the client still gets an answer in the
/// error shape (500), and the connection and the daemon go on.
pub async fn catch_panic(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    match std::panic::AssertUnwindSafe(next.run(req))
        .catch_unwind()
        .await
    {
        Ok(r) => r,
        Err(_) => {
            tracing::error!(%method, %path, "a local API handler panicked (a bug)");
            let mut r = internal("the agent failed on this request (a bug, logged); the request may not have been applied");
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    async fn call(
        app: Router,
        method: &str,
        uri: &str,
    ) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let r = app
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(uri)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let (parts, body) = r.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (
            parts.status,
            parts.headers,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    /// A plain-text answer, as axum's rejections are.
    fn plain(status: StatusCode, text: &'static str) -> Response {
        let mut r = Response::new(Body::from(text));
        *r.status_mut() = status;
        r
    }

    fn app() -> Router {
        Router::new()
            .route("/ok", get(|| async { "fine" }))
            .route(
                "/text",
                get(|| async { plain(StatusCode::IM_A_TEAPOT, "short and stout") }),
            )
            .route(
                "/boom",
                get(|| async {
                    if true {
                        panic!("a test panic");
                    }
                    "never"
                }),
            )
            .route(
                "/seg/{s}",
                get(|axum::extract::Path(s): axum::extract::Path<String>| async move { s }),
            )
            .method_not_allowed_fallback(method_not_allowed)
            .layer(axum::middleware::from_fn(json_errors))
            .layer(axum::middleware::from_fn(catch_panic))
    }

    #[tokio::test]
    async fn axum_refusals_come_in_the_error_shape() {
        let (s, h, v) = call(app(), "DELETE", "/ok").await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(v["error"]["code"], "METHOD_NOT_ALLOWED", "{v}");
        assert!(h
            .get(header::ALLOW)
            .is_some_and(|a| a.to_str().unwrap().contains("GET")));
        // A path segment that is not UTF-8: axum's plain-text 400.
        let (s, _, v) = call(app(), "GET", "/seg/%FF").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["code"], "BAD_REQUEST", "{v}");
        assert!(
            v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{v}"
        );
        // A status the document does not list is told as 400.
        let (s, _, v) = call(app(), "GET", "/text").await;
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(v["error"]["message"], "short and stout", "{v}");
        // A success is left alone.
        let (s, _, v) = call(app(), "GET", "/ok").await;
        assert_eq!((s, v), (StatusCode::OK, serde_json::Value::Null));
    }

    #[tokio::test]
    async fn a_panic_is_answered_500_in_the_error_shape() {
        let (s, h, v) = call(app(), "GET", "/boom").await;
        assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v["error"]["code"], "INTERNAL_ERROR", "{v}");
        assert_eq!(h[header::CONNECTION], "close");
    }

    #[test]
    fn codes_are_spelled_as_named() {
        assert_eq!(ApiCode::NOT_FOUND.as_str(), "NOT_FOUND");
        assert_eq!(ApiCode::ALL.len(), 13);
        assert_eq!(ApiCode::PRINTER_UNAVAILABLE.as_str(), "PRINTER_UNAVAILABLE");
    }
}
