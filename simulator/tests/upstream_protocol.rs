//! The stub central base's protocol over real HTTP on loopback: tokens,
//! the long poll and its acks, deferred data, events, heartbeat, records.

mod upstream_util;

use printer_sim::upstream::StubConfig;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use upstream_util::*;

#[tokio::test]
async fn token_by_secret_in_form_or_basic_and_bad_credentials() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;
    assert!(!tok.is_empty());

    let r = c
        .post(stub.token_url())
        .basic_auth("satellite", Some("stub-secret"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 300);

    for (id, secret) in [("satellite", "wrong"), ("other", "stub-secret")] {
        let r = c
            .post(stub.token_url())
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", id),
                ("client_secret", secret),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "invalid_client");
    }
    // The token endpoint also answers under the base path.
    let r = c
        .post(format!("{}/oauth/token", stub.base_url()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", "satellite"),
            ("client_secret", "stub-secret"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The secret never reaches the log.
    let log = serde_json::to_string(&stub.control().received()).unwrap();
    assert!(!log.contains("stub-secret"));
}

#[tokio::test]
async fn unknown_or_expired_token_and_unknown_kiosk() {
    let stub = start(StubConfig {
        token_ttl: Duration::from_secs(1),
        ..StubConfig::default()
    })
    .await;
    let c = client();
    let tok = token(&c, &stub).await;
    let url = kiosk_url(&stub, "requests?wait=0");
    let r = c.get(&url).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let r = c.get(&url).bearer_auth("forged").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorCode"], "CB_AUTHENTICATION_FAILED");
    assert!(v["message"].is_string());
    let r = c.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let r = c
        .get(format!(
            "{}/kiosks/WIS99999/requests?wait=0",
            stub.base_url()
        ))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorCode"], "KIOSK_ID_NOT_FOUND");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = c.get(&url).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["errorCode"], "CB_AUTHENTICATION_FAILED");
    assert_eq!(v["message"], "access token expired");

    // Expiry on demand, for renewal tests.
    let tok = token(&c, &stub).await;
    stub.control().expire_tokens();
    let r = c.get(&url).bearer_auth(&tok).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn long_poll_answers_at_once_when_queued_else_after_wait() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;

    let t = Instant::now();
    let v: Value = c
        .get(kiosk_url(&stub, "requests?wait=1"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"requests": []}));
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );

    // A request queued while the poll waits wakes it.
    let control = stub.control();
    let waiter = {
        let (c, url, tok) = (c.clone(), kiosk_url(&stub, "requests?wait=30"), tok.clone());
        tokio::spawn(async move {
            let t = Instant::now();
            let v: Value = c
                .get(url)
                .bearer_auth(tok)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            (v, t.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let id = control
        .enqueue_raw(r#"{"cardToken":"tok-1","z":1,"a":[1, 2]}"#)
        .unwrap();
    let (v, took) = waiter.await.unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(v["requests"][0]["deliveryId"], id.as_str());

    // Already queued: answered at once, the request byte for byte.
    let t = Instant::now();
    let text = c
        .get(kiosk_url(&stub, "requests?wait=30"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(
        text.contains(r#""request":{"cardToken":"tok-1","z":1,"a":[1, 2]}"#),
        "{text}"
    );

    for bad in ["61", "-1", "soon"] {
        let r = c
            .get(kiosk_url(&stub, &format!("requests?wait={bad}")))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
}

fn ack_body(token: &str) -> Value {
    json!({"cardToken": token, "outcome": "ACCEPTED", "status": "READY",
        "occurredAt": "2025-01-17T06:28:02.492Z", "errorCode": null, "field": null, "reason": null})
}

#[tokio::test]
async fn redelivered_until_acked_and_acks_recorded() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;
    let control = stub.control();
    let a = control.enqueue(&json!({"cardToken": "a"}));
    let b = control.enqueue(&json!({"cardToken": "b"}));
    let poll = || async {
        let v: Value = c
            .get(kiosk_url(&stub, "requests?wait=0"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["deliveryId"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(poll().await, [a.clone(), b.clone()]);
    assert_eq!(poll().await, [a.clone(), b.clone()]);

    let ack = |id: String, body: Value| {
        let c = c.clone();
        let url = kiosk_url(&stub, &format!("requests/{id}/ack"));
        let tok = tok.clone();
        async move {
            c.post(url)
                .bearer_auth(tok)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(ack(a.clone(), ack_body("a")).await.status(), 204);
    assert_eq!(poll().await, std::slice::from_ref(&b));
    let refused = json!({"cardToken": "b", "outcome": "REFUSED", "status": "REQUEST_ERROR",
        "occurredAt": "2025-01-17T06:28:02.492Z", "errorCode": "INVALID_FIELD_VALUE",
        "field": "pan", "reason": "Luhn"});
    assert_eq!(ack(b.clone(), refused).await.status(), 204);
    assert!(poll().await.is_empty());
    // Twice is fine; the first is kept.
    assert_eq!(ack(a.clone(), ack_body("a")).await.status(), 204);
    assert_eq!(ack("dlv-nope".into(), ack_body("a")).await.status(), 404);
    let mut bad = ack_body("a");
    bad["outcome"] = "MAYBE".into();
    let r = ack(a.clone(), bad).await;
    assert_eq!(r.status(), 400);

    let acks = control.acks();
    let seen: Vec<(String, bool)> = acks
        .iter()
        .map(|r| (r.delivery_id.clone(), r.duplicate))
        .collect();
    assert_eq!(seen, [(a.clone(), false), (b, false), (a, true)]);
    assert_eq!(acks[1].body["field"], "pan");
}

#[tokio::test]
async fn deferred_card_data() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;
    let control = stub.control();
    let data = json!({"pan": "4111111111111111", "cardholderName": "DOE/JOHN"});
    control.enqueue_with_data(&json!({"cardToken": "t1"}), "t1", &data);
    let r = c
        .get(kiosk_url(&stub, "cards/t1/data"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap(), data);
    let r = c
        .get(kiosk_url(&stub, "cards/t2/data"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "CARD_NOT_FOUND"
    );
    let fetches = control.data_fetches();
    assert_eq!(fetches.len(), 2);
    assert_eq!(
        (fetches[0].card_token.as_str(), fetches[0].status),
        ("t1", 200)
    );
    // Recorded, but never the data itself.
    let everything = serde_json::to_string(&control.received()).unwrap();
    assert!(!everything.contains("4111111111111111"));
}

#[tokio::test]
async fn events_accepted_duplicates_and_reconciled() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;
    let url = kiosk_url(&stub, "events");
    let post = |body: Value| {
        let (c, url, tok) = (c.clone(), url.clone(), tok.clone());
        async move {
            c.post(url)
                .bearer_auth(tok)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let e1 = envelope("card-1", 1, "READY");
    let e2 = envelope("card-1", 2, "IN_PROGRESS");
    let e3 = envelope("card-1", 3, "PRODUCED");
    let r = post(json!({"events": [e3.clone(), e1.clone()]})).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": 2, "duplicates": 0})
    );
    let r = post(json!({"events": [e2, e1, e3]})).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"accepted": 1, "duplicates": 2})
    );

    let control = stub.control();
    let events = control.events();
    assert_eq!(events.len(), 5);
    assert_eq!(events.iter().filter(|e| e.duplicate).count(), 2);
    assert!(events[0].received_at.ends_with('Z') && events[0].received_at.len() == 27);
    let latest = control.latest("card-1").unwrap();
    assert_eq!(latest.production.unwrap()["status"], "PRODUCED");
    assert_eq!(
        latest.operation.unwrap()["details"]["status"],
        "CARD_PROD_DONE"
    );
}

#[tokio::test]
async fn event_schema_refusals_name_the_field() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;
    let good = envelope("card-2", 1, "READY");
    let mut ready_with_kiosk = good.clone();
    ready_with_kiosk["production"]["kioskId"] = KIOSK.into();
    let mut unknown_key = good.clone();
    unknown_key["production"]["color"] = "red".into();
    let mut missing = good.clone();
    missing["production"]
        .as_object_mut()
        .unwrap()
        .remove("errorCode");
    let mut bad_time = good.clone();
    bad_time["production"]["occurredAt"] = "2025-01-17T06:28:02+01:00".into();
    let mut bad_op = good.clone();
    bad_op["operation"]["operation"] = "SHIP".into();
    let cases = [
        (
            json!({"events": [ready_with_kiosk]}),
            "events[0].production.kioskId",
        ),
        (
            json!({"events": [good.clone(), unknown_key]}),
            "events[1].production.color",
        ),
        (
            json!({"events": [missing]}),
            "events[0].production.errorCode",
        ),
        (
            json!({"events": [bad_time]}),
            "events[0].production.occurredAt",
        ),
        (json!({"events": [bad_op]}), "events[0].operation.operation"),
        (json!({"events": []}), "events"),
        (json!({"events": vec![good.clone(); 501]}), "events"),
        (json!({"events": [good.clone()], "extra": true}), "extra"),
    ];
    for (body, field) in cases {
        let r = c
            .post(kiosk_url(&stub, "events"))
            .bearer_auth(&tok)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{field}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errorCode"], "INVALID_EVENT");
        let msg = v["message"].as_str().unwrap();
        assert!(msg.starts_with(&format!("{field}:")), "{field}: {msg}");
    }
    // A refused batch records no event.
    assert!(stub.control().events().is_empty());
}

#[tokio::test]
async fn heartbeat_latest_and_count_with_server_time() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;
    let hb = |state: &str| {
        json!({"agentVersion": "0.1.0", "state": state, "printer": {"model": "sim"},
            "supplies": {}, "queueDepth": 0,
            "outbox": {"events": {"depth": 0, "oldestAgeSeconds": null}},
            "upstream": {}, "sentAt": "2025-01-17T06:28:02.492Z"})
    };
    for state in ["starting", "ready"] {
        let r = c
            .put(kiosk_url(&stub, "heartbeat"))
            .bearer_auth(&tok)
            .json(&hb(state))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert!(printer_sim::upstream::time::parse(v["serverTime"].as_str().unwrap()).is_some());
    }
    let r = c
        .put(kiosk_url(&stub, "heartbeat"))
        .bearer_auth(&tok)
        .json(&json!({"state": "ready"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let h = stub.control().heartbeat();
    assert_eq!(h.count, 2);
    assert_eq!(h.latest.unwrap()["state"], "ready");
}

#[tokio::test]
async fn everything_received_in_order_with_microseconds() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;
    c.get(kiosk_url(&stub, "requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    c.get(format!("{}/nowhere", stub.origin()))
        .send()
        .await
        .unwrap();
    let got = stub.control().received();
    let ns: Vec<u64> = got.iter().map(|r| r.n).collect();
    assert_eq!(ns, [1, 2, 3]);
    assert_eq!(got[1].path, "/cb/v1/kiosks/WIS00001/requests?wait=0");
    assert_eq!(got[1].status, Some(200));
    assert_eq!(got[2].status, Some(404));
    // 2025-01-17T06:28:02.492123Z
    assert_eq!(got[0].received_at.len(), 27);
    assert!(got[0].at <= got[1].at && got[1].at <= got[2].at);
}

#[tokio::test]
async fn record_file_gets_a_json_line_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("received.jsonl");
    let stub = start(StubConfig {
        record: Some(path.clone()),
        ..StubConfig::default()
    })
    .await;
    let c = client();
    let _ = token(&c, &stub).await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["group"], "token");
    assert_eq!(lines[0]["body"]["client_secret"], "***");
}
