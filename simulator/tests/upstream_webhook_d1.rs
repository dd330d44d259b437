//! The issuer's webhook receiver (Standard Webhooks signatures, rotation,
//! stale timestamps), D1's token and track-card calls, and client
//! authentication by a signed JWT assertion.

mod upstream_util;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use printer_sim::upstream::signature::sign;
use printer_sim::upstream::{StubConfig, StubHandle, JWT_BEARER};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};
use upstream_util::*;

const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const NEW: &str = "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn send_webhook(stub: &StubHandle, id: &str, ts: i64, sig: &str, body: &str) -> u16 {
    client()
        .post(stub.webhook_url())
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn webhooks_valid_wrong_rotated_stale() {
    let stub = start(StubConfig {
        webhook_secrets: vec![OLD.into(), NEW.into()],
        ..StubConfig::default()
    })
    .await;
    let data = envelope("wh-card", 2, "IN_PROGRESS")["production"].clone();
    let body = json!({"type": "card.production.status_changed",
        "timestamp": "2025-01-17T06:32:00.000Z", "data": data})
    .to_string();
    let ts = now();

    let good = sign(OLD, "msg_1", ts, body.as_bytes()).unwrap();
    assert_eq!(send_webhook(&stub, "msg_1", ts, &good, &body).await, 204);
    // Rotation: the new secret alone, and both signatures at once.
    let rotated = sign(NEW, "msg_2", ts, body.as_bytes()).unwrap();
    assert_eq!(send_webhook(&stub, "msg_2", ts, &rotated, &body).await, 204);
    let both = format!(
        "{} {}",
        sign(OLD, "msg_3", ts, body.as_bytes()).unwrap(),
        sign(NEW, "msg_3", ts, body.as_bytes()).unwrap()
    );
    assert_eq!(send_webhook(&stub, "msg_3", ts, &both, &body).await, 204);

    let wrong_secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode([9u8; 32])
    );
    let wrong = sign(&wrong_secret, "msg_4", ts, body.as_bytes()).unwrap();
    assert_eq!(send_webhook(&stub, "msg_4", ts, &wrong, &body).await, 401);
    let stale_ts = ts - 301;
    let stale = sign(OLD, "msg_5", stale_ts, body.as_bytes()).unwrap();
    assert_eq!(
        send_webhook(&stub, "msg_5", stale_ts, &stale, &body).await,
        401
    );
    // Signed for another body.
    assert_eq!(send_webhook(&stub, "msg_1", ts, &good, "{}").await, 401);
    assert_eq!(send_webhook(&stub, "msg_6", ts, "", &body).await, 401);
    // Well signed but not the schema.
    let junk = r#"{"type":"other"}"#;
    let sig = sign(OLD, "msg_7", ts, junk.as_bytes()).unwrap();
    assert_eq!(send_webhook(&stub, "msg_7", ts, &sig, junk).await, 400);
    // A retry (same id) is recorded as a duplicate.
    assert_eq!(send_webhook(&stub, "msg_1", ts, &good, &body).await, 204);

    let control = stub.control();
    let got = control.webhooks();
    let ids: Vec<(&str, bool)> = got
        .iter()
        .map(|w| (w.webhook_id.as_str(), w.duplicate))
        .collect();
    assert_eq!(
        ids,
        [
            ("msg_1", false),
            ("msg_2", false),
            ("msg_3", false),
            ("msg_1", true)
        ]
    );
    assert_eq!(got[0].body, body);
    assert_eq!(got[0].webhook_signature, good);
    let latest = control.latest("wh-card").unwrap();
    assert_eq!(latest.production.unwrap()["status"], "IN_PROGRESS");
}

async fn d1_token(stub: &StubHandle) -> String {
    let r = client()
        .post(format!("{}/oauth2/token", stub.d1_url()))
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
    assert_eq!(v["token_type"], "Bearer");
    v["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn d1_track_validates_its_body() {
    let stub = start_default().await;
    let c = client();
    let tok = d1_token(&stub).await;
    let url = |issuer: &str| {
        format!(
            "{}/banking/v1/issuers/{issuer}/physicalCards/271b-6e47/track",
            stub.d1_url()
        )
    };
    let r = c
        .post(url("ISSUER1"))
        .bearer_auth(&tok)
        .json(&json!({"trackingType": "PRODUCTION", "productionSite": "WIS00001"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.unwrap();
    let op = v["operationId"].as_str().unwrap();
    assert!(printer_sim::upstream::schema::is_operation_id(op), "{op}");
    let tracks = stub.control().d1_tracks();
    assert_eq!(
        (tracks[0].card_id.as_str(), tracks[0].operation_id.as_str()),
        ("271b-6e47", op)
    );

    let cases = [
        (
            json!({"trackingType": "PRODUCTION"}),
            400,
            "FIELD_INVALID_FORMAT",
            "productionSite",
        ),
        (
            json!({"trackingType": "PRODUCTION", "productionSite": "x".repeat(51)}),
            400,
            "FIELD_INVALID_FORMAT",
            "productionSite",
        ),
        (
            json!({"trackingType": "PRODUCTION", "productionSite": "x", "countryCode": "FR"}),
            400,
            "FIELD_INVALID_FORMAT",
            "countryCode",
        ),
        (
            json!({"trackingType": "NOW", "productionSite": "x"}),
            400,
            "FIELD_INVALID_VALUE",
            "trackingType",
        ),
        (
            json!({"trackingType": "SHIPMENT", "productionSite": "x"}),
            403,
            "OPERATION_NOT_ALLOWED",
            "trackingType",
        ),
    ];
    for (body, status, code, field) in cases {
        let r = c
            .post(url("ISSUER1"))
            .bearer_auth(&tok)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{body}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"errorCode": code, "error": field})
        );
    }
    let body = json!({"trackingType": "PRODUCTION", "productionSite": "x"});
    let r = c
        .post(url("ISSUER1"))
        .bearer_auth("forged")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "AUTHORIZER_UNAUTHORIZED"
    );
    // A central-base token is no D1 token.
    let cb = token(&c, &stub).await;
    let r = c
        .post(url("ISSUER1"))
        .bearer_auth(&cb)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(url("OTHER"))
        .bearer_auth(&tok)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "AUTHORIZER_FORBIDDEN"
    );
    assert_eq!(stub.control().d1_tracks().len(), 1);
}

fn assertion(pair: &EcdsaKeyPair, aud: &str, exp: i64, jti: &str) -> String {
    let h = URL_SAFE_NO_PAD.encode(json!({"alg": "ES256", "typ": "JWT"}).to_string());
    let p = URL_SAFE_NO_PAD.encode(
        json!({"iss": "satellite", "sub": "satellite", "aud": aud, "exp": exp, "jti": jti, "iat": now()})
            .to_string(),
    );
    let sig = pair
        .sign(&SystemRandom::new(), format!("{h}.{p}").as_bytes())
        .unwrap();
    format!("{h}.{p}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
}

#[tokio::test]
async fn jwt_assertion_single_use_with_audience_and_expiry() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &key.serialize_der(),
        &SystemRandom::new(),
    )
    .unwrap();
    let stub = start(StubConfig {
        client_secret: None,
        client_jwt_key_pem: Some(key.public_key_pem()),
        ..StubConfig::default()
    })
    .await;
    let c = client();
    let aud = stub.token_url();
    let ask = |jwt: String| {
        let (c, url) = (c.clone(), stub.token_url());
        async move {
            c.post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_assertion_type", JWT_BEARER),
                    ("client_assertion", jwt.as_str()),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let r = ask(assertion(&pair, &aud, now() + 60, "j-1")).await;
    assert_eq!(r.status(), 200);
    let tok = r.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .get(kiosk_url(&stub, "requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // jti again, wrong audience, expired: refused.
    for jwt in [
        assertion(&pair, &aud, now() + 60, "j-1"),
        assertion(&pair, "https://elsewhere/oauth/token", now() + 60, "j-2"),
        assertion(&pair, &aud, now() - 1, "j-3"),
    ] {
        let r = ask(jwt).await;
        assert_eq!(r.status(), 401);
        assert_eq!(r.json::<Value>().await.unwrap()["error"], "invalid_client");
    }
    // Secrets are not accepted by this stub.
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
    assert_eq!(r.status(), 401);
    let log = serde_json::to_string(&stub.control().received()).unwrap();
    assert!(!log.contains("eyJ"), "assertions are masked in the log");
}
