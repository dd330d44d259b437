//! Every request the agent sends its central base in a full run, and every
//! answer of the reference central base, judged against
//! docs/central-base.openapi.yaml by openapi-core (PyPI), which we did not
//! write (tests/tools/check_cb_exchanges.py): the token, the long poll, each
//! acknowledgement (accepted and refused), deferred card data, the events of
//! every kind of card (produced, failed, refused, cancelled) and the
//! heartbeat. The server URLs of the document must resolve the configured
//! base and token URL. The stub records each exchange as sent
//! (`Control::received`, the answer in memory only). Negative controls show
//! the checker refuses what the document does not allow.

mod common;

use common::python;
use common::upstream::{
    self as up, card_data, cb_events, deferred, distinct, final_state, request, until,
};
use printer_sim::upstream::Received;
use printer_sim::Condition;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One exchange, as the checker reads it.
fn exchange(origin: &str, r: &Received) -> Value {
    let a = r
        .answer
        .as_ref()
        .expect("every call of a finished run is answered");
    json!({
        "url": format!("{origin}{}", r.path),
        "method": r.method,
        "headers": r.headers,
        "body": r.body,
        "status": a.status,
        "responseHeaders": a.headers,
        "responseBody": String::from_utf8_lossy(&a.body),
    })
}

fn check(lines: &[Value]) -> python::Ran {
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    python::tool("check_cb_exchanges.py", &["--strict-responses"], &input)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_of_a_full_run_and_every_answer_match_the_central_base_document() {
    // Fail now, not after the kiosk ran, when the checker cannot be had.
    python::venv_bin();
    let k = up::start(&["cb"], true, |_| {}).await;
    let (c, sim) = (k.stub.control(), &k.kiosk.sim);

    // From the central base: a card with its data, one with deferred data,
    // one refused at validation (a PAN failing Luhn).
    c.enqueue(&request("cbo-ok", &up::pan(60)));
    c.enqueue_with_data(&deferred("cbo-def"), "cbo-def", &card_data(&up::pan(61)));
    let mut bad = request("cbo-bad", &up::pan(62));
    bad["pan"] = json!("4000001234567801");
    c.enqueue(&bad);
    assert_eq!(
        final_state(&k.kiosk.client, "cbo-ok").await["status"],
        "PRODUCED"
    );
    assert_eq!(
        final_state(&k.kiosk.client, "cbo-def").await["status"],
        "PRODUCED"
    );
    assert_eq!(
        final_state(&k.kiosk.client, "cbo-bad").await["status"],
        "REQUEST_ERROR"
    );
    // A printer fault: PRODUCTION_ERROR.
    sim.raise("mag-read-mismatch".parse::<Condition>().unwrap());
    c.enqueue(&request("cbo-fault", &up::pan(63)));
    assert_eq!(
        final_state(&k.kiosk.client, "cbo-fault").await["status"],
        "PRODUCTION_ERROR"
    );
    sim.clear(None);
    // Cancelled by the issuer on the local API while it waits.
    sim.raise("cover-open".parse::<Condition>().unwrap());
    let a = k
        .kiosk
        .client
        .post(
            "/v1/cards",
            request("cbo-cancel", &up::pan(64)).to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let a = k
        .kiosk
        .client
        .post("/v1/cards/cbo-cancel/cancel", b"")
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    sim.clear(None);

    for (t, last) in [
        ("cbo-ok", "PRODUCED"),
        ("cbo-def", "PRODUCED"),
        ("cbo-bad", "REQUEST_ERROR"),
        ("cbo-fault", "PRODUCTION_ERROR"),
        ("cbo-cancel", "REQUEST_ERROR"),
    ] {
        until(&format!("{t}'s last event at the central base"), 60, || {
            distinct(&cb_events(&k.stub, t)).last().map(String::as_str) == Some(last)
        })
        .await;
    }
    until("acknowledgements of the four requests", 30, || {
        c.acks().len() >= 4
    })
    .await;
    until("a heartbeat", 30, || c.heartbeat().count >= 1).await;
    // Everything received so far has been answered: stop the agent first so
    // that no call is cut half way (a held poll is answered on shutdown or
    // left unanswered: those are dropped below).
    k.kiosk.daemon.stop().await;

    let origin = k.stub.origin();
    let received: Vec<Received> = c
        .received()
        .into_iter()
        .filter(|r| r.answer.is_some())
        .collect();
    let lines: Vec<Value> = received.iter().map(|r| exchange(&origin, r)).collect();
    let r = check(&lines);
    assert!(
        r.ok,
        "an exchange is outside docs/central-base.openapi.yaml: {}",
        r.out
    );
    eprintln!("{}", r.out.trim_end());
    let counts: BTreeMap<String, u64> =
        serde_json::from_str::<Value>(r.stdout.lines().last().unwrap_or("{}"))
            .ok()
            .and_then(|v| serde_json::from_value(v["operations"].clone()).ok())
            .unwrap_or_default();
    for op in [
        "getToken",
        "pollRequests",
        "ackRequest",
        "getCardData",
        "postEvents",
        "putHeartbeat",
    ] {
        assert!(
            counts.get(op).copied().unwrap_or(0) >= 1,
            "no {op} was checked: {counts:?}"
        );
    }
    // The refusal's ack and the cancellation's event were among them.
    assert!(c.acks().iter().any(|a| a.body["outcome"] == "REFUSED"));
    let cancelled = c
        .events()
        .into_iter()
        .map(|e| e.envelope)
        .find(|e| e["operation"]["details"]["status"] == "CARD_PROD_CANCELED")
        .expect("the cancellation reached the central base");
    assert_eq!(
        cancelled["production"]["errorCode"], "UNKNOWN_ERROR",
        "{cancelled}"
    );

    // Negative controls: altered copies of real exchanges fail.
    let find = |op: &str| -> Value {
        lines
            .iter()
            .find(|l| {
                let u = l["url"].as_str().unwrap();
                match op {
                    "events" => u.ends_with("/events"),
                    "heartbeat" => u.ends_with("/heartbeat"),
                    "poll" => u.contains("/requests?"),
                    _ => unreachable!(),
                }
            })
            .unwrap_or_else(|| panic!("no {op} exchange"))
            .clone()
    };
    let mut ev = find("events");
    ev["body"]["events"][0]["production"]["status"] = json!("CANCELLED");
    let mut hb = find("heartbeat");
    hb["body"]["uptime"] = json!(1);
    let mut hb_long = find("heartbeat");
    hb_long["body"]["agentVersion"] = json!("9".repeat(1025));
    let mut poll = find("poll");
    let bare = poll["url"]
        .as_str()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_string();
    poll["url"] = json!(format!("{bare}?wait=0"));
    let mut anon = find("poll");
    anon["headers"] = json!(anon["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] != "authorization")
        .collect::<Vec<_>>());
    let mut elsewhere = find("poll");
    elsewhere["url"] = json!(elsewhere["url"]
        .as_str()
        .unwrap()
        .replace("/cb/v1/kiosks", "/kiosks"));
    for (what, line, why) in [
        ("a CANCELLED status", ev, "CANCELLED"),
        ("an unknown heartbeat key", hb, "uptime"),
        ("a heartbeat string past its bound", hb_long, "is too long"),
        ("a poll without a wait", poll, "wait"),
        ("a call without a token", anon, "Security"),
        ("a path outside the base", elsewhere, "REQUEST"),
    ] {
        let r = check(&[line]);
        assert!(!r.ok, "{what} passed: {}", r.out);
        assert!(r.out.contains(why), "{what}: expected {why:?} in {}", r.out);
    }
}
