//! The token endpoints (central base and D1): OAuth 2.0 client credentials
//! with the client authenticated by its secret (form or HTTP Basic) or by an
//! RFC 7523 JWT assertion.

use super::answer;
use super::faults::Group;
use super::gate;
use super::jwt::{self, Expect};
use super::state::Shared;
use super::time;
use super::tokens::Audience;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

pub async fn cb_token(
    State(s): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(&s, Group::Token, Audience::Cb, uri.path(), &headers, &body).await
}

pub async fn d1_token(
    State(s): State<Arc<Shared>>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    token(
        &s,
        Group::D1token,
        Audience::D1,
        uri.path(),
        &headers,
        &body,
    )
    .await
}

async fn token(
    s: &Shared,
    group: Group,
    audience: Audience,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    if let Err(r) = gate::faults(s, group).await {
        return r;
    }
    let Ok(pairs) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(body) else {
        return answer::oauth(StatusCode::BAD_REQUEST, "invalid_request", "bad form");
    };
    let form: HashMap<&str, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    if form.get("grant_type") != Some(&"client_credentials") {
        return answer::oauth(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be client_credentials",
        );
    }
    let basic = basic_credentials(headers);
    if let Err(why) = authenticate(s, path, headers, &form, basic.as_ref()) {
        let mut r = answer::oauth(StatusCode::UNAUTHORIZED, "invalid_client", &why);
        if basic.is_some() {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"central-base\""),
            );
        }
        return r;
    }
    let ttl = s.cfg.token_ttl;
    let token = s.lock().tokens.issue(audience, ttl);
    let mut r = Json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": ttl.as_secs(),
    }))
    .into_response();
    // RFC 6749 section 5.1: token answers are not to be cached.
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Client authentication, one method only (RFC 6749 section 2.3).
fn authenticate(
    s: &Shared,
    path: &str,
    headers: &HeaderMap,
    form: &HashMap<&str, &str>,
    basic: Option<&(String, String)>,
) -> Result<(), String> {
    let cfg = &s.cfg;
    if let Some(kind) = form.get("client_assertion_type") {
        if *kind != JWT_BEARER || basic.is_some() || form.contains_key("client_secret") {
            return Err("one client authentication method, jwt-bearer".into());
        }
        let key = s.jwt_key.as_ref().ok_or("assertions are not accepted")?;
        let assertion = form
            .get("client_assertion")
            .ok_or("client_assertion missing")?;
        if form.get("client_id").is_some_and(|id| *id != cfg.client_id) {
            return Err("unknown client".into());
        }
        let expect = Expect {
            client_id: &cfg.client_id,
            audiences: &audiences(s, path, headers),
            now_unix: time::unix_secs(SystemTime::now()),
        };
        let jti = jwt::verify(key, assertion, &expect)?;
        if !s.lock().tokens.use_jti(&jti) {
            return Err("jti already used".into());
        }
        return Ok(());
    }
    let (id, secret) = match (basic, form.get("client_id"), form.get("client_secret")) {
        (Some((id, secret)), None, None) => (id.as_str(), secret.as_str()),
        (None, Some(id), Some(secret)) => (*id, *secret),
        _ => return Err("client credentials missing or given twice".into()),
    };
    let expected = cfg
        .client_secret
        .as_deref()
        .ok_or("secrets are not accepted")?;
    let id_ok = id == cfg.client_id;
    let secret_ok = super::signature::constant_time_eq(secret.as_bytes(), expected.as_bytes());
    if id_ok && secret_ok {
        Ok(())
    } else {
        Err("bad client credentials".into())
    }
}

/// The token URL as the client may have written it in `aud`: as addressed
/// (its `Host` header), and with the listener's own address.
fn audiences(s: &Shared, path: &str, headers: &HeaderMap) -> Vec<String> {
    let scheme = s.scheme();
    let mut out = Vec::new();
    if let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        out.push(format!("{scheme}://{host}{path}"));
    }
    if let Some(addr) = s.addr.get() {
        out.push(format!("{scheme}://{addr}{path}"));
        out.push(format!("{scheme}://localhost:{}{path}", addr.port()));
    }
    out
}

/// HTTP Basic client credentials; RFC 6749 section 2.3.1 has both parts
/// form-url-encoded before base64.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, b64) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = String::from_utf8(STANDARD.decode(b64.trim()).ok()?).ok()?;
    let (id, secret) = raw.split_once(':')?;
    let dec = |x: &str| -> Option<String> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(&format!("v={x}")).ok()?;
        pairs.into_iter().next().map(|p| p.1)
    };
    Some((dec(id)?, dec(secret)?))
}
