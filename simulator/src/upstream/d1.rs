//! D1's "track card" call (`POST {d1}/banking/v1/issuers/{issuerId}/
//! physicalCards/{cardId}/track`), as the issuer's backend would make it
//! for a card produced at the kiosk. Only the PRODUCTION form is accepted;
//! errors follow the tables of `d1-track-card.openapi.json`.

use super::answer;
use super::faults::Group;
use super::gate;
use super::state::{Arrival, Shared};
use super::time;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// One accepted track call.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct D1Track {
    pub n: u64,
    pub received_at: String,
    pub issuer_id: String,
    pub card_id: String,
    pub operation_id: String,
    pub body: Value,
}

/// Why a body is not `TrackCardOperationPRODUCTION`: (errorCode, field).
fn check(v: &Value) -> Result<(), (StatusCode, &'static str, String)> {
    let bad = StatusCode::BAD_REQUEST;
    let format = |f: &str| (bad, "FIELD_INVALID_FORMAT", f.to_owned());
    let o = v.as_object().ok_or_else(|| format("body"))?;
    match o.get("trackingType").map(|t| t.as_str()) {
        None => return Err(format("trackingType")),
        Some(Some("PRODUCTION")) => {}
        // Valid D1 forms, but not for a card produced at a kiosk.
        Some(Some("SHIPMENT" | "RETURN")) => {
            return Err((
                StatusCode::FORBIDDEN,
                "OPERATION_NOT_ALLOWED",
                "trackingType".into(),
            ))
        }
        Some(_) => return Err((bad, "FIELD_INVALID_VALUE", "trackingType".into())),
    }
    match o.get("productionSite").map(|p| p.as_str()) {
        Some(Some(site)) if site.chars().count() <= 50 => {}
        _ => return Err(format("productionSite")),
    }
    // `additionalProperties: false`.
    if let Some(k) = o
        .keys()
        .find(|k| *k != "trackingType" && *k != "productionSite")
    {
        return Err(format(k));
    }
    Ok(())
}

pub async fn track(
    State(s): State<Arc<Shared>>,
    Path((issuer, card)): Path<(String, String)>,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(r) = gate::faults(&s, Group::D1track).await {
        return r;
    }
    if let Err(r) = gate::d1(&s, &headers) {
        return r;
    }
    if let Err(r) = gate::poison(&s, Group::D1track, &body, &card) {
        return r;
    }
    if issuer != s.cfg.d1_issuer_id {
        return answer::d1(
            StatusCode::FORBIDDEN,
            "AUTHORIZER_FORBIDDEN",
            "not_authorized",
        );
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return answer::d1(StatusCode::BAD_REQUEST, "FIELD_INVALID_FORMAT", "body"),
    };
    if let Err((status, code, field)) = check(&value) {
        return answer::d1(status, code, field);
    }
    let operation_id = uuid::Uuid::new_v4().to_string();
    s.lock().d1_tracks.push(D1Track {
        n: arrival.n,
        received_at: time::micros(arrival.at),
        issuer_id: issuer,
        card_id: card,
        operation_id: operation_id.clone(),
        body: value,
    });
    (
        StatusCode::ACCEPTED,
        Json(json!({"operationId": operation_id})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_production_form() {
        let ok = json!({"trackingType": "PRODUCTION", "productionSite": "WIS00001"});
        assert!(check(&ok).is_ok());
        assert!(check(&json!({"trackingType": "PRODUCTION", "productionSite": ""})).is_ok());
        let cases = [
            (
                json!({"productionSite": "x"}),
                "FIELD_INVALID_FORMAT",
                "trackingType",
            ),
            (
                json!({"trackingType": "LATER", "productionSite": "x"}),
                "FIELD_INVALID_VALUE",
                "trackingType",
            ),
            (
                json!({"trackingType": "SHIPMENT", "productionSite": "x"}),
                "OPERATION_NOT_ALLOWED",
                "trackingType",
            ),
            (
                json!({"trackingType": "PRODUCTION"}),
                "FIELD_INVALID_FORMAT",
                "productionSite",
            ),
            (
                json!({"trackingType": "PRODUCTION", "productionSite": "x".repeat(51)}),
                "FIELD_INVALID_FORMAT",
                "productionSite",
            ),
            (
                json!({"trackingType": "PRODUCTION", "productionSite": 5}),
                "FIELD_INVALID_FORMAT",
                "productionSite",
            ),
            (
                json!({"trackingType": "PRODUCTION", "productionSite": "x", "postalCode": "1"}),
                "FIELD_INVALID_FORMAT",
                "postalCode",
            ),
            (json!([1]), "FIELD_INVALID_FORMAT", "body"),
        ];
        for (body, code, field) in cases {
            let (_, c, f) = check(&body).unwrap_err();
            assert_eq!((c, f.as_str()), (code, field), "{body}");
        }
    }
}
