//! The upstream listener's routes, behind the recording layer that numbers
//! and time-stamps every call on arrival.

use super::faults::Group;
use super::record::{body_view, shown_headers, Answered};
use super::state::{Arrival, Shared};
use super::{answer, d1, data, events, heartbeat, intake, oauth, webhook};
use axum::body::{to_bytes, Body};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use std::sync::Arc;
use std::time::SystemTime;

/// Bodies above this are refused (a full events batch is far smaller).
const BODY_LIMIT: usize = 16 << 20;

/// `/cb/v1/` or `cb/v1` -> `/cb/v1`; `/` -> ``.
pub fn prefix(p: &str) -> String {
    let p = p.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

pub fn upstream(shared: Arc<Shared>) -> Router {
    let base = prefix(&shared.cfg.base_path);
    let d1p = prefix(&shared.cfg.d1_prefix);
    let kiosk = format!("{base}/kiosks/{{kiosk}}");
    Router::new()
        .route("/oauth/token", post(oauth::cb_token))
        .route(&format!("{base}/oauth/token"), post(oauth::cb_token))
        .route(&format!("{kiosk}/requests"), get(intake::poll))
        .route(
            &format!("{kiosk}/requests/{{delivery}}/ack"),
            post(intake::ack),
        )
        .route(&format!("{kiosk}/cards/{{token}}/data"), get(data::get))
        .route(&format!("{kiosk}/events"), post(events::post))
        .route(&format!("{kiosk}/heartbeat"), put(heartbeat::put))
        .route("/webhook", post(webhook::post))
        .route(&format!("{d1p}/oauth2/token"), post(oauth::d1_token))
        .route(
            &format!("{d1p}/banking/v1/issuers/{{issuer}}/physicalCards/{{card}}/track"),
            post(d1::track),
        )
        .fallback(|| async { answer::cb(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint") })
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(shared)
}

/// The endpoint group of a path, for the log (the router has not matched
/// yet when the recording layer runs).
fn group_of(path: &str) -> Option<Group> {
    let last = path.rsplit('/').next().unwrap_or_default();
    Some(match last {
        "token" if path.ends_with("/oauth2/token") => Group::D1token,
        "token" => Group::Token,
        "requests" => Group::Intake,
        "ack" => Group::Ack,
        "data" => Group::Data,
        "events" => Group::Events,
        "heartbeat" => Group::Heartbeat,
        "webhook" => Group::Webhook,
        "track" => Group::D1track,
        _ => return None,
    })
}

async fn record(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    // Stamped before anything else: tests measure delivery latency from it.
    let at = SystemTime::now();
    let (mut parts, body) = req.into_parts();
    let bytes = match to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let path = parts.uri.path().to_owned();
    let shown = parts
        .uri
        .path_and_query()
        .map_or(path.clone(), |p| p.as_str().to_owned());
    let group = group_of(&path);
    let n = s.lock().log.arrive(
        at,
        group,
        parts.method.as_str(),
        &shown,
        body_view(group, &bytes),
        shown_headers(&parts.headers),
    );
    parts.extensions.insert(Arrival { n, at });
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    // The answer is kept (in memory) as sent, for tests that check it
    // against the protocol's document.
    let (rparts, rbody) = response.into_parts();
    let rbytes = to_bytes(rbody, usize::MAX).await.unwrap_or_default();
    s.lock().log.answer(
        n,
        Answered {
            status: rparts.status.as_u16(),
            headers: rparts
                .headers
                .iter()
                .map(|(k, v)| {
                    let v = v.to_str().unwrap_or("(not text)").to_owned();
                    (k.as_str().to_owned(), v)
                })
                .collect(),
            body: rbytes.to_vec(),
        },
    );
    Response::from_parts(rparts, Body::from(rbytes))
}
