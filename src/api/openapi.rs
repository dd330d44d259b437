//! `GET /v1/openapi.yaml`: the API's OpenAPI document, the very bytes of
//! `docs/local-api.openapi.yaml` (built in), so that what a client reads
//! from the agent and what the repository documents cannot differ.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// The document, as the repository holds it.
pub const DOCUMENT: &str = include_str!("../../docs/local-api.openapi.yaml");

/// YAML's media type (RFC 9512).
pub const MEDIA_TYPE: &str = "application/yaml";

pub async fn document() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE))],
        DOCUMENT,
    )
        .into_response()
}
