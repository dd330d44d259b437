//! The local API's answers against its OpenAPI document
//! (docs/local-api.openapi.yaml), judged by an implementation we did not
//! write: a representative run of the whole kiosk (daemon with its real store,
//! the simulator over a pseudo-terminal, the reference central base as the
//! issuer's webhook) through the Unix socket and the TCP listener, every
//! answer recorded off the wire (status, headers, body): cards accepted,
//! presented and refused at final validation, produced, refused at
//! submission, cancelled, waiting for its deferred data, a printer not ready, the inventory set, a dead
//! letter listed and replayed, and every error path (400, 401, 404, 405,
//! 408, 409, 413, 415, 422, 503); then openapi-core checks each answer
//! against the document (tests/tools/check_local_api.py), and the run must
//! have reached every operation's success and every error status.
//!
//! Negative controls show the checker can fail: real answers made wrong on
//! purpose (a key too many or missing, a wrong code, a status the document
//! does not list, a missing header, another media type). The document
//! itself is tests/api_document.rs.

mod common;

use common::http::{raw, send, Exchange, Over};
use common::python;
use common::upstream::{self as up, request};
use printer_sim::upstream::{Fault, Group};
use printer_sim::{Condition, Customer};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

const DOC: &str = "docs/local-api.openapi.yaml";
const TOKEN: &str = "b3BlbmFwaS10ZXN0LXRva2VuLW9mLWF0LWxlYXN0LTMyLWNoYXJz";
const JSON: (&str, &str) = ("content-type", "application/json");

fn document() -> String {
    std::fs::read_to_string(python::repo().join(DOC)).unwrap()
}

/// The exchanges of the run, kept in order.
struct Run {
    unix: Over,
    tcp: Over,
    seen: Vec<Exchange>,
}

impl Run {
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Exchange {
        let over = self.unix.clone();
        self.on(&over, method, path, headers, body).await
    }

    async fn on(
        &mut self,
        over: &Over,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Exchange {
        let x = send(over, method, path, headers, body).await;
        self.seen.push(x.clone());
        x
    }

    async fn get(&mut self, path: &str) -> Exchange {
        self.call("GET", path, &[], b"").await
    }

    async fn json(&mut self, method: &str, path: &str, body: &Value) -> Exchange {
        self.call(method, path, &[JSON], body.to_string().as_bytes())
            .await
    }

    /// Asks until `f` holds of the answer (bounded).
    async fn until(&mut self, path: &str, what: &str, f: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1000 {
            let x = self.get(path).await;
            if x.status == 200 && f(&x.json()) {
                return x.json();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}: never so at {path}");
    }
}

fn expect(x: &Exchange, status: u16) -> Value {
    assert_eq!(
        x.status,
        status,
        "{} {}: {}",
        x.method,
        x.path,
        String::from_utf8_lossy(&x.body)
    );
    if x.body.is_empty() {
        Value::Null
    } else {
        x.json()
    }
}

/// The run: every route, its answers and its refusals.
async fn representative_run() -> Vec<Exchange> {
    let secrets = tempfile::tempdir().unwrap();
    let token_file = up::secret(secrets.path(), "api.token", &format!("{TOKEN}\n"));
    let k = up::start(&["webhook"], false, |c| {
        c.production.final_validation = true;
        c.production.not_ready = satellite::config::NotReady::Reject;
        c.printer.timeouts.take = Some(20_000);
        c.api.body_read_timeout_ms = 700;
        c.api.tcp_listen = Some("127.0.0.1:0".into());
        c.api.token_file = Some(token_file.clone());
    })
    .await;
    let sim = &k.kiosk.sim;
    let stub = k.stub.control();
    let mut r = Run {
        unix: Over::Unix(k.kiosk.socket.clone()),
        tcp: Over::Tcp(k.kiosk.daemon.tcp_addr().expect("the TCP listener")),
        seen: Vec::new(),
    };
    let tcp = r.tcp.clone();
    let bearer = format!("Bearer {TOKEN}");

    // The document, as served, on both listeners.
    let x = r.get("/v1/openapi.yaml").await;
    assert_eq!(x.status, 200);
    assert_eq!(x.header("content-type"), Some("application/yaml"));
    assert_eq!(x.body, document().as_bytes(), "served byte for byte");
    let x = r
        .on(
            &tcp,
            "GET",
            "/v1/openapi.yaml",
            &[("authorization", &bearer)],
            b"",
        )
        .await;
    assert_eq!((x.status, &x.body[..]), (200, document().as_bytes()));

    // TCP: the token or nothing.
    expect(&r.on(&tcp, "GET", "/v1/status", &[], b"").await, 401);
    expect(&r.on(&tcp, "GET", "/v1/openapi.yaml", &[], b"").await, 401);
    expect(
        &r.on(
            &tcp,
            "GET",
            "/v1/status",
            &[("authorization", "Bearer not-the-token")],
            b"",
        )
        .await,
        401,
    );
    let refused = request("tcp-1", &up::pan(1)).to_string();
    expect(
        &r.on(&tcp, "POST", "/v1/cards", &[JSON], refused.as_bytes())
            .await,
        401,
    );
    expect(
        &r.on(
            &tcp,
            "GET",
            "/v1/status",
            &[("authorization", &bearer)],
            b"",
        )
        .await,
        200,
    );

    // The printer, the inventory.
    r.until("/v1/printer", "printer ready", |v| v["ready"] == true)
        .await;
    expect(&r.get("/v1/printer?fresh=true").await, 200);
    let e = expect(&r.get("/v1/printer?fresh=maybe").await, 400);
    assert_eq!(e["error"]["field"], "fresh", "{e}");
    expect(&r.get("/v1/inventory").await, 200);
    expect(
        &r.json(
            "PUT",
            "/v1/inventory/1",
            &json!({"cardType": "debit", "count": 20}),
        )
        .await,
        204,
    );
    expect(
        &r.json(
            "PUT",
            "/v1/inventory/9",
            &json!({"cardType": "debit", "count": 1}),
        )
        .await,
        409,
    );
    expect(
        &r.json(
            "PUT",
            "/v1/inventory/1",
            &json!({"cardType": "gold", "count": 1}),
        )
        .await,
        409,
    );
    expect(
        &r.json(
            "PUT",
            "/v1/inventory/abc",
            &json!({"cardType": "debit", "count": 1}),
        )
        .await,
        400,
    );
    let e = expect(
        &r.json("PUT", "/v1/inventory/1", &json!({"cardType": "debit"}))
            .await,
        400,
    );
    assert_eq!(e["error"]["code"], "INVALID_FIELD_VALUE", "{e}");
    expect(
        &r.call(
            "PUT",
            "/v1/inventory/1",
            &[("content-type", "text/plain")],
            b"{}",
        )
        .await,
        415,
    );
    expect(&r.get("/v1/inventory").await, 200);
    // The reject box emptied (the supplies forecast counts from here).
    expect(
        &r.json("PUT", "/v1/inventory/reject-box", &json!({"cards": 0}))
            .await,
        204,
    );
    expect(
        &r.json("PUT", "/v1/inventory/reject-box", &json!({"cards": 999}))
            .await,
        409,
    );

    // A card presented and waiting for its verdict (the customer does not
    // take it); meanwhile the same PAN is refused, another card queues and
    // is cancelled.
    sim.set_customer(Customer::Never);
    // The webhook receiver refuses this card's messages (it takes the
    // others): a dead letter.
    stub.set_fault(Group::Webhook, Fault::Poison(422, "oa-1".into()), None)
        .await;
    let p1 = request("oa-1", &up::pan(1));
    let a = expect(&r.json("POST", "/v1/cards", &p1).await, 201);
    assert_eq!(a["status"], "READY", "{a}");
    r.until("/v1/cards/oa-1", "oa-1 presented", |v| v["step"] == "taken")
        .await;
    let s = r
        .until("/v1/status", "producing", |v| v["state"] == "producing")
        .await;
    assert_eq!(s["engine"]["card"], "oa-1", "{s}");
    expect(&r.get("/v1/cards/oa-1/production").await, 200);
    let e = expect(
        &r.json("POST", "/v1/cards", &request("oa-same-pan", &up::pan(1)))
            .await,
        409,
    );
    assert_eq!(e["errorCode"], "PAN_ALREADY_EXISTS", "{e}");
    expect(
        &r.json("POST", "/v1/cards", &request("oa-4", &up::pan(4)))
            .await,
        201,
    );
    let c = expect(
        &r.call("POST", "/v1/cards/oa-4/cancel", &[], b"").await,
        200,
    );
    assert_eq!(c["status"], "REQUEST_ERROR", "{c}");
    expect(
        &r.call("POST", "/v1/cards/oa-4/cancel", &[], b"").await,
        409,
    );
    // A card whose deferred data the central base does not give yet: READY,
    // and its view says what it waits for; then cancelled.
    stub.set_fault(Group::Data, Fault::Status(503), None).await;
    let deferred = json!({
        "cardToken": "oa-5",
        "profileId": 42,
        "kioskId": up::KIOSK,
        "cardType": "debit",
        "issuerRequestId": "req-oa-5",
        "cardId": "card-oa-5",
        "deferredCardData": true
    });
    expect(&r.json("POST", "/v1/cards", &deferred).await, 201);
    let v = r
        .until("/v1/cards/oa-5", "oa-5 waiting for its data", |v| {
            v["waiting"]
                .as_str()
                .is_some_and(|w| w.contains("CB_NOT_AVAILABLE"))
        })
        .await;
    assert_eq!(v["production"]["status"], "READY", "{v}");
    expect(
        &r.call("POST", "/v1/cards/oa-5/cancel", &[], b"").await,
        200,
    );
    stub.clear_faults(Some(Group::Data)).await;
    expect(
        &r.json(
            "POST",
            "/v1/cards/oa-1/validation",
            &json!({"accept": false}),
        )
        .await,
        204,
    );
    let p = r
        .until("/v1/cards/oa-1/production", "oa-1 final", |v| {
            v["status"] == "PRODUCTION_ERROR"
        })
        .await;
    assert_eq!(p["errorCode"], "PRD_FINAL_VALIDATION_NOK", "{p}");

    // A card produced.
    sim.set_customer(Customer::TakeAfter(50));
    expect(
        &r.json("POST", "/v1/cards", &request("oa-2", &up::pan(2)))
            .await,
        201,
    );
    r.until("/v1/cards/oa-2/production", "oa-2 produced", |v| {
        v["status"] == "PRODUCED"
    })
    .await;
    let card = expect(&r.get("/v1/cards/oa-2").await, 200);
    assert!(card["events"].as_array().unwrap().len() >= 3, "{card}");

    // Submissions refused, each way.
    let mut bad = request("oa-luhn", &up::pan(3));
    bad["pan"] = json!("4000001234567801");
    let e = expect(&r.json("POST", "/v1/cards", &bad).await, 422);
    assert_eq!(
        (e["status"].as_str(), e["field"].as_str()),
        (Some("REQUEST_ERROR"), Some("pan")),
        "{e}"
    );
    let e = expect(
        &r.call("POST", "/v1/cards", &[JSON], b"not json").await,
        400,
    );
    assert_eq!(e["errorCode"], "DATA_PREPARATION_FAILED", "{e}");
    let e = expect(
        &r.call(
            "POST",
            "/v1/cards",
            &[JSON],
            br#"{"cardToken": "oa-cut", "pro"#,
        )
        .await,
        400,
    );
    assert_eq!(e["errorCode"], "PARTIAL_DATA_RECEIVED", "{e}");
    let mut other = p1.clone();
    other["cardholderName"] = json!("SOMEONE ELSE");
    let e = expect(&r.json("POST", "/v1/cards", &other).await, 409);
    assert_eq!(e["errorCode"], "REQUEST_ALREADY_EXISTS", "{e}");
    // The same request again: its first answer.
    expect(&r.json("POST", "/v1/cards", &p1).await, 201);
    expect(
        &r.call(
            "POST",
            "/v1/cards",
            &[("content-type", "text/plain")],
            refused.as_bytes(),
        )
        .await,
        415,
    );
    expect(
        &r.call("POST", "/v1/cards", &[], refused.as_bytes()).await,
        415,
    );

    // Final validation and resolution, refused.
    expect(
        &r.json(
            "POST",
            "/v1/cards/oa-2/validation",
            &json!({"accept": true}),
        )
        .await,
        409,
    );
    expect(
        &r.json(
            "POST",
            "/v1/cards/nope/validation",
            &json!({"accept": true}),
        )
        .await,
        404,
    );
    expect(
        &r.json(
            "POST",
            "/v1/cards/oa-2/validation",
            &json!({"accept": "yes"}),
        )
        .await,
        400,
    );
    expect(
        &r.json(
            "POST",
            "/v1/cards/oa-2/validation",
            &json!({"accept": true, "more": 1}),
        )
        .await,
        400,
    );
    expect(
        &r.call(
            "POST",
            "/v1/cards/oa-2/validation",
            &[],
            br#"{"accept": true}"#,
        )
        .await,
        415,
    );
    expect(
        &r.json(
            "POST",
            "/v1/cards/nope/resolve",
            &json!({"resolution": "removed"}),
        )
        .await,
        404,
    );
    expect(
        &r.json(
            "POST",
            "/v1/cards/oa-2/resolve",
            &json!({"resolution": "retry"}),
        )
        .await,
        409,
    );
    expect(
        &r.json(
            "POST",
            "/v1/cards/oa-2/resolve",
            &json!({"resolution": "maybe"}),
        )
        .await,
        400,
    );
    expect(
        &r.call(
            "POST",
            "/v1/cards/oa-2/resolve",
            &[("content-type", "text/plain")],
            b"{}",
        )
        .await,
        415,
    );

    // Unknown cards, unreadable paths, paths and methods outside the document.
    for path in ["/v1/cards/nope", "/v1/cards/nope/production"] {
        expect(&r.get(path).await, 404);
    }
    expect(
        &r.call("POST", "/v1/cards/nope/cancel", &[], b"").await,
        404,
    );
    expect(&r.get("/v1/cards/%FF").await, 400);
    expect(&r.get("/v1/cards/%FF/production").await, 400);
    expect(&r.get("/v1/nothing").await, 404);
    expect(&r.get("/").await, 404);
    for (method, path) in [
        ("DELETE", "/v1/status"),
        ("DELETE", "/v1/cards"),
        ("PUT", "/v1/cards/oa-2/cancel"),
        ("POST", "/v1/openapi.yaml"),
    ] {
        let x = r.call(method, path, &[], b"").await;
        expect(&x, 405);
        assert!(
            x.header("allow").is_some(),
            "{method} {path}: no Allow header"
        );
    }

    // The printer not ready, with not_ready = "reject": 503.
    sim.raise("cover-open".parse::<Condition>().unwrap());
    r.until("/v1/printer", "printer not ready", |v| v["ready"] == false)
        .await;
    let e = expect(
        &r.json("POST", "/v1/cards", &request("oa-5", &up::pan(5)))
            .await,
        503,
    );
    assert_eq!(e["errorCode"], "PRINTER_OR_SATELLITE_NOT_READY", "{e}");
    expect(&r.get("/v1/status").await, 200);
    sim.clear(None);
    r.until("/v1/printer", "printer ready again", |v| v["ready"] == true)
        .await;

    // The outbox: the dead letter, replayed.
    let o = r
        .until("/v1/outbox", "a dead letter", |v| {
            !v["deadLetters"].as_array().unwrap().is_empty()
        })
        .await;
    let ord = o["deadLetters"][0]["ord"].clone();
    let n = expect(
        &r.json("POST", "/v1/outbox/issuer/replay", &json!({"ord": ord}))
            .await,
        200,
    );
    assert_eq!(n["replayed"], 1, "{n}");
    expect(
        &r.call("POST", "/v1/outbox/issuer/replay", &[JSON], b"")
            .await,
        200,
    );
    expect(
        &r.json("POST", "/v1/outbox/nobody/replay", &json!({})).await,
        200,
    );
    expect(
        &r.json("POST", "/v1/outbox/issuer/replay", &json!({"ord": "first"}))
            .await,
        400,
    );
    expect(
        &r.call(
            "POST",
            "/v1/outbox/issuer/replay",
            &[("content-type", "text/plain")],
            b"",
        )
        .await,
        415,
    );

    // Bodies too big and too slow.
    let huge = vec![b' '; 8 * 1024 * 1024 + 1];
    let x = r.call("PUT", "/v1/inventory/1", &[JSON], &huge).await;
    expect(&x, 413);
    let x = raw(
        &k.kiosk.socket,
        "PUT /v1/inventory/1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100",
        br#"{"cardType"#,
        Duration::from_secs(10),
    )
    .await;
    expect(&x, 408);
    r.seen.push(x);

    // The technicians' routes (src/api/technician.rs) and the metrics.
    let cards = expect(&r.get("/v1/cards?limit=5").await, 200);
    assert!(!cards["cards"].as_array().unwrap().is_empty(), "{cards}");
    expect(&r.get("/v1/cards?status=PRODUCED").await, 200);
    expect(&r.get("/v1/cards?limit=0").await, 400);
    expect(&r.get("/v1/cards?status=DONE").await, 400);
    expect(&r.get("/v1/store").await, 200);
    expect(
        &r.call("POST", "/v1/outbox/issuer/retry", &[], b"").await,
        200,
    );
    expect(
        &r.call("POST", "/v1/outbox/nobody/retry", &[], b"").await,
        404,
    );
    let en = expect(
        &r.call("POST", "/v1/outbox/issuer/enable", &[], b"").await,
        200,
    );
    assert_eq!(en["wasDisabled"], false, "{en}");
    expect(
        &r.call("POST", "/v1/outbox/nobody/enable", &[], b"").await,
        404,
    );
    expect(&r.get("/v1/printer/info").await, 200);
    expect(&r.get("/v1/printer/trace?last=20").await, 200);
    expect(&r.get("/v1/printer/trace?last=0").await, 400);
    expect(
        &r.json("POST", "/v1/printer/raw", &json!({"command": "Rse;o"}))
            .await,
        200,
    );
    expect(
        &r.json("POST", "/v1/printer/raw", &json!({"command": "Rse;\u{1b}"}))
            .await,
        400,
    );
    expect(&r.call("POST", "/v1/printer/clean", &[], b"").await, 200);
    let m = r.get("/metrics").await;
    assert_eq!(m.status, 200, "GET /metrics");

    // The whole picture at the end: upstream links, outbox, supplies.
    let s = expect(&r.get("/v1/status").await, 200);
    assert!(
        s["upstream"].as_object().is_some_and(|u| !u.is_empty()),
        "{s}"
    );
    k.kiosk.daemon.stop().await;
    r.seen
}

fn lines(xs: &[Exchange]) -> String {
    xs.iter().map(|x| format!("{}\n", x.line())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_a_representative_run_is_in_the_document() {
    // Fail now, not after the kiosk ran, when the checker cannot be had.
    python::venv_bin();
    let seen = representative_run().await;
    let ran = tokio::task::spawn_blocking({
        let input = lines(&seen);
        move || python::tool("check_local_api.py", &["--coverage"], &input)
    })
    .await
    .unwrap();
    assert!(ran.ok, "answers outside the document: {}", ran.out);
    eprintln!("{}", ran.out.lines().next().unwrap_or(""));
    let coverage: Value = serde_json::from_str(ran.stdout.lines().last().unwrap()).unwrap();
    let covered: BTreeSet<&str> = coverage["seen"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    // Every operation's success, and every error status of the document
    // but 500 (a bug) and the store failing (503 UNKNOWN_ERROR), were seen.
    for pair in [
        "submitCard 201",
        "getCard 200",
        "getProduction 200",
        "cancelCard 200",
        "validateCard 204",
        "getStatus 200",
        "getPrinter 200",
        "getInventory 200",
        "setInventory 204",
        "getOutbox 200",
        "replayOutbox 200",
        "getOpenApi 200",
        "submitCard 400",
        "getPrinter 400",
        "setInventory 400",
        "validateCard 400",
        "resolveCard 400",
        "replayOutbox 400",
        "getCard 400",
        "getStatus 401",
        "submitCard 401",
        "getOpenApi 401",
        "getCard 404",
        "getProduction 404",
        "cancelCard 404",
        "validateCard 404",
        "resolveCard 404",
        "setInventory 408",
        "submitCard 409",
        "cancelCard 409",
        "validateCard 409",
        "resolveCard 409",
        "setInventory 409",
        "setInventory 413",
        "submitCard 415",
        "validateCard 415",
        "resolveCard 415",
        "setInventory 415",
        "replayOutbox 415",
        "submitCard 422",
        "submitCard 503",
        "listCards 200",
        "listCards 400",
        "getStore 200",
        "retryOutbox 200",
        "retryOutbox 404",
        "getPrinterInfo 200",
        "getPrinterTrace 200",
        "getPrinterTrace 400",
        "printerRaw 200",
        "printerRaw 400",
        "printerOperation 200",
        "getMetrics 200",
    ] {
        assert!(
            covered.contains(pair),
            "the run never gave {pair}: {coverage}"
        );
    }
    // 405 and 404 outside the paths were checked too (not operations).
    assert!(seen.iter().any(|x| x.status == 405));
    assert!(seen
        .iter()
        .any(|x| x.path == "/v1/nothing" && x.status == 404));

    // Negative controls: the checker refuses answers made wrong, starting
    // from real ones.
    let status = seen
        .iter()
        .find(|x| x.path == "/v1/status" && x.status == 200)
        .unwrap();
    let mut extra = status.clone();
    let mut v = extra.json();
    v["printer"]["surprise"] = json!(1);
    extra.body = v.to_string().into_bytes();
    let mut missing = status.clone();
    let mut v = missing.json();
    v["engine"].as_object_mut().unwrap().remove("since");
    missing.body = v.to_string().into_bytes();
    let not_found = seen
        .iter()
        .find(|x| x.status == 404 && x.path == "/v1/cards/nope")
        .unwrap();
    let mut wrong_code = not_found.clone();
    wrong_code.body = json!({"error": {"code": "CONFLICT", "field": "cardToken", "message": "x"}})
        .to_string()
        .into_bytes();
    let mut teapot = status.clone();
    teapot.status = 418;
    let unauthorized = seen.iter().find(|x| x.status == 401).unwrap();
    let mut no_challenge = unauthorized.clone();
    no_challenge
        .headers
        .retain(|(k, _)| k != "www-authenticate");
    let not_allowed = seen.iter().find(|x| x.status == 405).unwrap();
    let mut no_allow = not_allowed.clone();
    no_allow.headers.retain(|(k, _)| k != "allow");
    let mut text = status.clone();
    for h in &mut text.headers {
        if h.0 == "content-type" {
            h.1 = "text/plain".into();
        }
    }
    for (wrong, why) in [
        (&extra, "surprise"),
        (&missing, "since"),
        (&wrong_code, "CONFLICT"),
        (&teapot, "418"),
        (&no_challenge, "WWW-Authenticate"),
        (&no_allow, "Allow"),
        (&text, "text/plain"),
    ] {
        let input = lines(std::slice::from_ref(wrong));
        let ran =
            tokio::task::spawn_blocking(move || python::tool("check_local_api.py", &[], &input))
                .await
                .unwrap();
        assert!(!ran.ok, "the negative control passed: {}", ran.out);
        assert!(ran.out.contains(why), "expected {why:?} in: {}", ran.out);
    }
}
