//! The local API as an HTTP service: status codes for unknown cards and wrong
//! content types, answers to clients that half-close their side, time-outs on
//! slow or silent clients, and the submission answer's `occurredAt`. The
//! daemon runs with its real store on the simulator over a pseudo-terminal;
//! requests go over the Unix socket, some of them written by hand.

mod common;

use common::kiosk;
use printer_sim::Simulator;
use satellite::api::client::Client;
use satellite::config::Config;
use satellite::daemon::Daemon;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

struct Kiosk {
    _sim: Simulator,
    daemon: Daemon,
    client: Client,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

async fn kiosk(adjust: impl FnOnce(&mut Config)) -> Kiosk {
    let p = kiosk::start(
        |_| {},
        |_, c| {
            c.printer.timeouts.command = Some(1000);
            adjust(c);
        },
    )
    .await;
    Kiosk {
        _sim: p.sim,
        daemon: p.daemon,
        client: p.client,
        socket: p.socket,
        _dir: p.dir,
    }
}

fn request(token: &str, pan: &str) -> Value {
    json!({
        "cardToken": token,
        "profileId": 42,
        "kioskId": "KIOSK01",
        "cardType": "debit",
        "issuerRequestId": format!("req-{token}"),
        "cardId": format!("card-{token}"),
        "pan": pan,
        "expiry": "2812",
        "cardholderName": "JANE DOE",
        "printedLines": [{ "text": "JANE DOE", "slot": "name" }],
        "tracks": { "track2": format!("{pan}=2812101") }
    })
}

/// A response read off the wire: status, headers (lower-cased names), body.
#[derive(Debug)]
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }
}

/// Parses one HTTP/1.1 response with a Content-Length (what the agent sends).
fn parse_response(bytes: &[u8]) -> Raw {
    let text = String::from_utf8_lossy(bytes);
    let end = text
        .find("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete head in {text:?}"));
    let mut lines = text[..end].split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let body = bytes[end + 4..].to_vec();
    assert_eq!(body.len(), length, "the whole body: {text:?}");
    Raw {
        status,
        headers,
        body,
    }
}

/// Writes `head` and `body` (head lines without the blank line; a
/// Content-Length is added), asks the agent to close after answering, and
/// reads everything it sends until it closes.
async fn raw(socket: &Path, head: &str, body: &[u8]) -> Raw {
    let mut s = UnixStream::connect(socket).await.unwrap();
    let req = format!(
        "{head}\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the agent answers and closes")
        .unwrap();
    parse_response(&out)
}

/// Reads until the agent closes the connection; how long that took and what
/// it sent. Fails if it stays open past `limit`.
async fn until_closed(s: &mut UnixStream, limit: Duration) -> (Duration, Vec<u8>) {
    let t0 = Instant::now();
    let mut out = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut out)).await {
        Ok(_) => (t0.elapsed(), out),
        Err(_) => panic!("the connection was still open after {limit:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_card_is_404_on_every_card_route() {
    let k = kiosk(|_| {}).await;
    for (method, path, body) in [
        ("GET", "/v1/cards/nope", None),
        ("GET", "/v1/cards/nope/production", None),
        ("POST", "/v1/cards/nope/cancel", Some(&b""[..])),
        (
            "POST",
            "/v1/cards/nope/validation",
            Some(&br#"{"accept": true}"#[..]),
        ),
    ] {
        let a = k.client.call(method, path, body).await.unwrap();
        assert_eq!(a.status, 404, "{method} {path}: {}", a.body);
        assert_eq!(a.body["error"]["code"], "NOT_FOUND", "{method} {path}");
        assert_eq!(a.body["error"]["field"], "cardToken", "{method} {path}");
        assert!(
            a.body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("nope")),
            "{method} {path}: {}",
            a.body
        );
    }
    // A known card not waiting for a verdict is a conflict, not unknown.
    let a = k
        .client
        .post(
            "/v1/cards",
            request("t1", "4000001234567899").to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let a = k
        .client
        .post("/v1/cards/t1/validation", br#"{"accept": true}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 409, "{}", a.body);
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_must_be_json() {
    let k = kiosk(|_| {}).await;
    let body = request("t1", "4000001234567899").to_string();
    for (head, payload) in [
        ("POST /v1/cards HTTP/1.1", body.as_bytes()),
        (
            "POST /v1/cards/t1/validation HTTP/1.1",
            &br#"{"accept": true}"#[..],
        ),
        (
            "PUT /v1/inventory/1 HTTP/1.1",
            &br#"{"cardType":"debit","count":3}"#[..],
        ),
    ] {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("application/jsonx"),
        ] {
            let head = match content_type {
                Some(t) => format!("{head}\r\nContent-Type: {t}"),
                None => head.to_string(),
            };
            let r = raw(&k.socket, &head, payload).await;
            assert_eq!(
                r.status,
                415,
                "{head}: {:?}",
                String::from_utf8_lossy(&r.body)
            );
            let e = r.json();
            assert_eq!(e["error"]["code"], "UNSUPPORTED_MEDIA_TYPE", "{e}");
            assert!(
                e["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("application/json"),
                "{e}"
            );
        }
    }
    // Nothing was recorded from the refused submissions.
    let r = raw(&k.socket, "GET /v1/cards/t1/production HTTP/1.1", b"").await;
    assert_eq!(r.status, 404);
    // With parameters, in any case: accepted.
    let r = raw(
        &k.socket,
        "POST /v1/cards HTTP/1.1\r\nContent-Type: Application/JSON; charset=utf-8",
        body.as_bytes(),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", String::from_utf8_lossy(&r.body));
    let r = raw(
        &k.socket,
        "PUT /v1/inventory/1 HTTP/1.1\r\nContent-Type: application/json;charset=UTF-8",
        br#"{"cardType":"debit","count":3}"#,
    )
    .await;
    assert_eq!(r.status, 204);
    // A call without a body (cancel) needs no content type.
    let r = raw(&k.socket, "POST /v1/cards/t1/cancel HTTP/1.1", b"").await;
    assert_ne!(r.status, 415, "{:?}", String::from_utf8_lossy(&r.body));
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_is_written_after_the_client_half_closes() {
    let k = kiosk(|_| {}).await;
    let body = request("h1", "4000001234567899").to_string();
    for (head, payload) in [
        (
            "POST /v1/cards HTTP/1.1\r\nContent-Type: application/json".to_string(),
            body.as_bytes(),
        ),
        ("GET /v1/cards/h1/production HTTP/1.1".to_string(), &b""[..]),
        ("GET /v1/cards/unknown HTTP/1.1".to_string(), &b""[..]),
    ] {
        let mut s = UnixStream::connect(&k.socket).await.unwrap();
        let req = format!(
            "{head}\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
            payload.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        s.write_all(payload).await.unwrap();
        s.shutdown().await.unwrap();
        let (_, out) = until_closed(&mut s, Duration::from_secs(10)).await;
        assert!(!out.is_empty(), "{head}: no answer after the half-close");
        let r = parse_response(&out);
        let v = r.json();
        match head.split(' ').nth(1).unwrap() {
            "/v1/cards" => assert_eq!(
                (r.status, v["status"].as_str()),
                (201, Some("READY")),
                "{v}"
            ),
            "/v1/cards/h1/production" => assert_eq!(r.status, 200, "{v}"),
            _ => assert_eq!(
                (r.status, v["error"]["code"].as_str()),
                (404, Some("NOT_FOUND")),
                "{v}"
            ),
        }
    }
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slow_clients_are_cut_off_and_others_are_served_meanwhile() {
    const HEADER: Duration = Duration::from_millis(400);
    const BODY: Duration = Duration::from_millis(800);
    let k = kiosk(|c| {
        c.api.header_read_timeout_ms = HEADER.as_millis() as u64;
        c.api.body_read_timeout_ms = BODY.as_millis() as u64;
    })
    .await;
    let slack = Duration::from_secs(3);

    // Opens and says nothing.
    let mut silent = UnixStream::connect(&k.socket).await.unwrap();
    // Sends its head a few bytes at a time, never finishing.
    let mut slow = UnixStream::connect(&k.socket).await.unwrap();
    let slow_task = tokio::spawn(async move {
        let t0 = Instant::now();
        let head = b"GET /v1/inventory HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
        let mut sent = 0;
        for chunk in head.chunks(4).chain(std::iter::repeat(&b"aaaa"[..])) {
            if slow.write_all(chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
            tokio::time::sleep(Duration::from_millis(50)).await;
            if t0.elapsed() > Duration::from_secs(10) {
                panic!("still accepting a trickling head after {sent} bytes");
            }
        }
        let (_, out) = until_closed(&mut slow, Duration::from_secs(10)).await;
        (t0.elapsed(), out)
    });
    // Promises 100 bytes of body and sends 10.
    let mut short = UnixStream::connect(&k.socket).await.unwrap();
    short
        .write_all(
            b"PUT /v1/inventory/1 HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"cardType",
        )
        .await
        .unwrap();
    let short_started = Instant::now();

    // Meanwhile a normal client is served, more than once.
    for _ in 0..3 {
        let a = k.client.get("/v1/inventory").await.unwrap();
        assert_eq!(a.status, 200, "{}", a.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (took, out) = until_closed(&mut silent, HEADER + slack).await;
    assert!(out.is_empty(), "{:?}", String::from_utf8_lossy(&out));
    assert!(
        took + Duration::from_millis(400) >= HEADER,
        "closed too early: {took:?}"
    );

    let (took, out) = slow_task.await.unwrap();
    assert!(took < HEADER + slack, "slow head cut off after {took:?}");
    assert!(
        out.is_empty() || String::from_utf8_lossy(&out).starts_with("HTTP/1.1 408"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );

    let (_, out) = until_closed(&mut short, BODY + slack).await;
    let took = short_started.elapsed();
    assert!(took >= BODY, "cut off before the body time-out: {took:?}");
    let r = parse_response(&out);
    assert_eq!(r.status, 408, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"]["code"], "REQUEST_TIMEOUT");
    assert!(
        r.headers
            .iter()
            .any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close")),
        "{:?}",
        r.headers
    );
    // Nothing of the cut-off request was applied.
    let inv = k.client.get("/v1/inventory").await.unwrap().body;
    assert_eq!(inv[0]["count"], Value::Null, "{inv}");
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_answer_carries_the_stored_events_time() {
    let k = kiosk(|_| {}).await;
    // Refused and recorded as REQUEST_ERROR: the answer's time is the event's.
    let mut bad = request("r1", "4000001234567899");
    bad["pan"] = json!("4000001234567801");
    let a = k
        .client
        .post("/v1/cards", bad.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.body["status"].as_str()),
        (422, Some("REQUEST_ERROR")),
        "{}",
        a.body
    );
    // Later than a clock read now would be, were it read again.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let stored = k.client.get("/v1/cards/r1/production").await.unwrap().body;
    assert_eq!(stored["status"], "REQUEST_ERROR", "{stored}");
    assert_eq!(
        a.body["occurredAt"], stored["occurredAt"],
        "{} / {stored}",
        a.body
    );
    let card = k.client.get("/v1/cards/r1").await.unwrap().body;
    assert_eq!(
        a.body["occurredAt"], card["events"][0]["occurredAt"],
        "{card}"
    );

    // Accepted: the time of the READY event.
    let a = k
        .client
        .post(
            "/v1/cards",
            request("r2", "4000001234567899").to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let card = k.client.get("/v1/cards/r2").await.unwrap().body;
    assert_eq!(card["events"][0]["status"], "READY", "{card}");
    assert_eq!(
        a.body["occurredAt"], card["events"][0]["occurredAt"],
        "{card}"
    );
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_does_not_wait_for_idle_connections() {
    // The default time-outs (10 s for a head): stopping must not wait them out.
    let k = kiosk(|_| {}).await;
    let mut idle = UnixStream::connect(&k.socket).await.unwrap();
    let a = k.client.get("/v1/inventory").await.unwrap();
    assert_eq!(a.status, 200);
    let socket = k.socket.clone();
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), k.daemon.stop())
        .await
        .expect("the daemon stops with an idle connection open");
    assert!(t0.elapsed() < Duration::from_secs(5));
    let (_, out) = until_closed(&mut idle, Duration::from_secs(1)).await;
    assert!(out.is_empty());
    assert!(!socket.exists(), "the socket is removed");
    assert!(UnixStream::connect(&socket).await.is_err());
}
