//! `GET {base}/kiosks/{kioskId}/cards/{cardToken}/data`: card data deferred
//! from the request. The stub hands back what the test registered for the
//! token and records only that it was fetched, never the data.

use super::answer;
use super::faults::Group;
use super::gate;
use super::state::{Arrival, Shared};
use super::time;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use serde::Serialize;
use std::sync::Arc;

/// One fetch: which card, when, and what was answered.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DataFetch {
    pub n: u64,
    pub received_at: String,
    pub card_token: String,
    pub status: u16,
}

pub async fn get(
    State(s): State<Arc<Shared>>,
    Path((kiosk, token)): Path<(String, String)>,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
) -> Response {
    let r = answer(&s, &kiosk, &token, &headers).await;
    s.lock().data_fetches.push(DataFetch {
        n: arrival.n,
        received_at: time::micros(arrival.at),
        card_token: token,
        status: r.status().as_u16(),
    });
    r
}

async fn answer(s: &Shared, kiosk: &str, token: &str, headers: &HeaderMap) -> Response {
    match gate::faults(s, Group::Data).await {
        Err(r) => return r,
        Ok(Some(code)) => return answer::data_error(&code),
        Ok(None) => {}
    }
    if let Err(r) = gate::cb(s, headers, kiosk) {
        return r;
    }
    let data = s.lock().card_data.get(token).cloned();
    match data {
        Some(raw) => {
            let mut r = (StatusCode::OK, raw.get().to_owned()).into_response();
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            // Card data: no cache anywhere on the way.
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
        None => answer::cb(
            StatusCode::NOT_FOUND,
            "CARD_NOT_FOUND",
            "no deferred data for this card",
        ),
    }
}
