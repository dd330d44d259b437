//! Every fault the stub injects, set through the control HTTP listener
//! (as a test in another process would) or the library.

mod upstream_util;

use printer_sim::upstream::{Fault, Group, StubConfig, StubHandle};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use upstream_util::*;

async fn with_control() -> (StubHandle, String) {
    let stub = start(StubConfig {
        control_listen: Some("127.0.0.1:0".parse().unwrap()),
        ..StubConfig::default()
    })
    .await;
    let ctl = format!("http://{}", stub.control_addr().unwrap());
    (stub, ctl)
}

async fn fault(ctl: &str, group: &str, fault: &str, count: Option<u32>) {
    let r = client()
        .post(format!("{ctl}/_stub/faults"))
        .json(&json!({"group": group, "fault": fault, "count": count}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{group} {fault}");
}

async fn clear(ctl: &str) {
    let r = client()
        .delete(format!("{ctl}/_stub/faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

async fn poll(stub: &StubHandle, tok: &str) -> reqwest::Response {
    client()
        .get(kiosk_url(stub, "requests?wait=0"))
        .bearer_auth(tok)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn down_refuses_connections_and_clearing_rebinds_the_same_port() {
    let (stub, ctl) = with_control().await;
    let c = client();
    let tok = token(&c, &stub).await;
    fault(&ctl, "all", "down", None).await;
    let err = c
        .get(kiosk_url(&stub, "requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert!(std::net::TcpStream::connect(stub.addr()).is_err());
    // The control listener stays up.
    let s: Value = c
        .get(format!("{ctl}/_stub/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(s["up"], false);
    clear(&ctl).await;
    assert_eq!(poll(&stub, &tok).await.status(), 200);
    assert!(stub.control().is_up());
}

#[tokio::test]
async fn down_cuts_a_waiting_long_poll() {
    let stub = start_default().await;
    let c = client();
    let tok = token(&c, &stub).await;
    let waiting = tokio::spawn({
        let (c, url, tok) = (c.clone(), kiosk_url(&stub, "requests?wait=30"), tok.clone());
        async move { c.get(url).bearer_auth(tok).send().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    stub.control()
        .set_fault(Group::All, Fault::Down, None)
        .await;
    let t = Instant::now();
    assert!(waiting.await.unwrap().is_err());
    assert!(t.elapsed() < Duration::from_secs(5));
    stub.control().clear_faults(Some(Group::All)).await;
    assert_eq!(poll(&stub, &tok).await.status(), 200);
}

#[tokio::test]
async fn status_with_count_then_back_to_normal() {
    let (stub, ctl) = with_control().await;
    let tok = token(&client(), &stub).await;
    fault(&ctl, "intake", "status:500", Some(2)).await;
    for _ in 0..2 {
        let r = poll(&stub, &tok).await;
        assert_eq!(r.status(), 500);
        let v: Value = r.json().await.unwrap();
        assert!(v["errorCode"].is_string() && v["message"].is_string());
    }
    assert_eq!(poll(&stub, &tok).await.status(), 200);
    // Another group is not touched.
    fault(&ctl, "events", "status:502", None).await;
    assert_eq!(poll(&stub, &tok).await.status(), 200);
    clear(&ctl).await;
}

#[tokio::test]
async fn unavailable_has_retry_after() {
    let (stub, ctl) = with_control().await;
    let c = client();
    fault(&ctl, "token", "unavailable:7", Some(1)).await;
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
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "7");
    let _ = token(&c, &stub).await;
}

#[tokio::test]
async fn slow_delays_each_answer() {
    let (stub, ctl) = with_control().await;
    let tok = token(&client(), &stub).await;
    fault(&ctl, "heartbeat", "slow:300", None).await;
    let t = Instant::now();
    assert_eq!(poll(&stub, &tok).await.status(), 200);
    assert!(t.elapsed() < Duration::from_millis(300));
    let t = Instant::now();
    let r = client()
        .put(kiosk_url(&stub, "heartbeat"))
        .bearer_auth(&tok)
        .json(&json!({"agentVersion": "1", "state": "ready", "sentAt": "2025-01-17T06:28:02.492Z"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn unauthorized_once_with_a_valid_token() {
    let (stub, ctl) = with_control().await;
    let tok = token(&client(), &stub).await;
    fault(&ctl, "intake", "unauthorized_once", None).await;
    let r = poll(&stub, &tok).await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "CB_AUTHENTICATION_FAILED"
    );
    assert_eq!(poll(&stub, &tok).await.status(), 200);
}

#[tokio::test]
async fn duplicate_delivers_twice_and_once_more_after_the_ack() {
    let (stub, ctl) = with_control().await;
    let c = client();
    let tok = token(&c, &stub).await;
    let r = c
        .post(format!("{ctl}/_stub/requests"))
        .json(&json!({"request": {"cardToken": "d1"}, "cardData": {"pan": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().await.unwrap()["deliveryId"]
        .as_str()
        .unwrap()
        .to_owned();
    fault(&ctl, "intake", "duplicate", Some(1)).await;
    let ids = |v: Value| -> Vec<String> {
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["deliveryId"].as_str().unwrap().to_owned())
            .collect()
    };
    let v: Value = poll(&stub, &tok).await.json().await.unwrap();
    assert_eq!(ids(v), [id.clone(), id.clone()]);
    let ack = json!({"cardToken": "d1", "outcome": "ACCEPTED", "status": "READY",
        "occurredAt": "2025-01-17T06:28:02.492Z", "errorCode": null, "field": null, "reason": null});
    let ack_url = kiosk_url(&stub, &format!("requests/{id}/ack"));
    assert_eq!(
        c.post(&ack_url)
            .bearer_auth(&tok)
            .json(&ack)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let v: Value = poll(&stub, &tok).await.json().await.unwrap();
    assert_eq!(ids(v), std::slice::from_ref(&id));
    assert_eq!(
        c.post(&ack_url)
            .bearer_auth(&tok)
            .json(&ack)
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    let v: Value = poll(&stub, &tok).await.json().await.unwrap();
    assert!(ids(v).is_empty());
    let acks: Value = c
        .get(format!("{ctl}/_stub/acks"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acks[1]["duplicate"], true);
    // The card data came with the request.
    let r = c
        .get(kiosk_url(&stub, "cards/d1/data"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"pan": "x"}));
}

#[tokio::test]
async fn data_error_answers_each_code_with_its_status() {
    let (stub, ctl) = with_control().await;
    let c = client();
    let tok = token(&c, &stub).await;
    let r = c
        .put(format!("{ctl}/_stub/cards/t9/data"))
        .json(&json!({"pan": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    for (code, status) in [
        ("DP_NOT_AVAILABLE", 503),
        ("DP_IO_ERROR", 502),
        ("DP_TIMEOUT", 504),
        ("CB_NOT_AVAILABLE", 503),
        ("CB_DB_NOT_AVAILABLE", 503),
        ("CB_NETWORK_NOT_AVAILABLE", 503),
        ("CB_AUTHENTICATION_FAILED", 401),
        ("CB_SERVICE_NOT_ALLOWED", 403),
        ("CB_TIME", 504),
    ] {
        fault(&ctl, "data", &format!("data_error:{code}"), Some(1)).await;
        let r = c
            .get(kiosk_url(&stub, "cards/t9/data"))
            .bearer_auth(&tok)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{code}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errorCode"], code);
        assert!(v["message"].is_string());
    }
    let r = c
        .get(kiosk_url(&stub, "cards/t9/data"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(stub.control().data_fetches().len(), 10);
}

#[tokio::test]
async fn faults_aim_at_every_group() {
    let stub = start_default().await;
    let control = stub.control();
    let c = client();
    let tok = token(&c, &stub).await;
    // One call per group; status:418 must reach each.
    let calls: Vec<(Group, reqwest::RequestBuilder)> = vec![
        (
            Group::Token,
            c.post(stub.token_url())
                .form(&[("grant_type", "client_credentials")]),
        ),
        (
            Group::Intake,
            c.get(kiosk_url(&stub, "requests?wait=0")).bearer_auth(&tok),
        ),
        (
            Group::Ack,
            c.post(kiosk_url(&stub, "requests/x/ack")).bearer_auth(&tok),
        ),
        (
            Group::Data,
            c.get(kiosk_url(&stub, "cards/x/data")).bearer_auth(&tok),
        ),
        (
            Group::Events,
            c.post(kiosk_url(&stub, "events")).bearer_auth(&tok),
        ),
        (
            Group::Heartbeat,
            c.put(kiosk_url(&stub, "heartbeat")).bearer_auth(&tok),
        ),
        (Group::Webhook, c.post(stub.webhook_url())),
        (
            Group::D1token,
            c.post(format!("{}/oauth2/token", stub.d1_url())),
        ),
        (
            Group::D1track,
            c.post(format!(
                "{}/banking/v1/issuers/ISSUER1/physicalCards/c/track",
                stub.d1_url()
            )),
        ),
    ];
    for (group, call) in calls {
        control.set_fault(group, Fault::Status(418), Some(1)).await;
        let r = call.send().await.unwrap();
        assert_eq!(r.status(), 418, "{group:?}");
        assert!(control.faults().is_empty(), "{group:?}");
    }
    // D1's 503 has no body; the central base's has one.
    control
        .set_fault(Group::All, Fault::Unavailable(3), Some(2))
        .await;
    let r = c
        .post(format!(
            "{}/banking/v1/issuers/ISSUER1/physicalCards/c/track",
            stub.d1_url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            r.status().as_u16(),
            r.headers()["retry-after"].to_str().unwrap()
        ),
        (503, "3")
    );
    assert!(r.bytes().await.unwrap().is_empty());
    let r = c
        .get(kiosk_url(&stub, "requests?wait=0"))
        .bearer_auth(&tok)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["errorCode"],
        "CB_NOT_AVAILABLE"
    );
}

#[tokio::test]
async fn control_refuses_bad_faults() {
    let (_stub, ctl) = with_control().await;
    for body in [
        json!({"group": "nope", "fault": "down"}),
        json!({"group": "all", "fault": "explode"}),
        json!({"group": "all", "fault": "data_error:OOPS"}),
    ] {
        let r = client()
            .post(format!("{ctl}/_stub/faults"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
    }
}
