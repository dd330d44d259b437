//! Helpers shared by the upstream stub's tests: a stub on loopback, a
//! client, a token, well-formed events.

#![allow(dead_code)]

use printer_sim::upstream::{Stub, StubConfig, StubHandle};
use serde_json::{json, Value};

pub const KIOSK: &str = "WIS00001";

pub async fn start(cfg: StubConfig) -> StubHandle {
    Stub::start(cfg).await.expect("stub starts")
}

pub async fn start_default() -> StubHandle {
    start(StubConfig::default()).await
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
}

/// A central-base token by client id and secret (the defaults).
pub async fn token(c: &reqwest::Client, stub: &StubHandle) -> String {
    let r = c
        .post(stub.token_url())
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "satellite"),
            ("client_secret", "stub-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_owned()
}

pub fn kiosk_url(stub: &StubHandle, rest: &str) -> String {
    format!("{}/kiosks/{KIOSK}/{rest}", stub.base_url())
}

/// A well-formed event envelope for `card`, `seq`-th of its history.
pub fn envelope(card: &str, seq: u64, status: &str) -> Value {
    let (op_status, detail) = match status {
        "READY" => ("PENDING", "CARD_PROD_REQUESTED"),
        "IN_PROGRESS" => ("PENDING", "CARD_PROD_READY"),
        "PRODUCED" => ("SUCCESSFUL", "CARD_PROD_DONE"),
        _ => ("FAILED", "CARD_PROD_EXCEPTION"),
    };
    let mut operation = json!({
        "operationId": format!("op-{card}"), "operation": "PRODUCE", "status": op_status,
        "startTime": "2025-01-17T06:28:02.492Z", "cardId": format!("d1-{card}"),
        "details": {"status": detail}
    });
    if op_status != "PENDING" {
        operation["endTime"] = format!("2025-01-17T06:3{seq}:00.000Z").into();
    }
    json!({
        "production": {
            "eventId": uuid_for(card, seq),
            "sequence": seq, "cardToken": card, "profileId": 123456, "status": status,
            "kioskId": if status == "READY" { Value::Null } else { KIOSK.into() },
            "occurredAt": format!("2025-01-17T06:3{seq}:00.000Z"),
            "errorCode": null, "description": null
        },
        "operation": operation
    })
}

/// A stable UUID per (card, seq), so a resend is a duplicate.
pub fn uuid_for(card: &str, seq: u64) -> String {
    let h = card
        .bytes()
        .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    format!("{:08x}-0000-4000-8000-{:012x}", h as u32, seq)
}
