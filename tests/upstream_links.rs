//! The upstream links' hygiene over real HTTP on loopback: a central base
//! that answers too much is refused and the agent keeps polling; one that
//! answers its long poll at once with nothing is not polled in a loop; a
//! proxy from the environment is not used.
//!
//! The central base here is a small server of the test's own (axum): the
//! reference stub holds every poll for its wait and never sends an
//! oversized answer, which is exactly what these tests need a server to do.
//! The daemon is the real one (store, simulator over a pseudo-terminal).

mod common;

use axum::body::{Body, Bytes};
use axum::extract::Path;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::Router;
use common::kiosk;
use common::upstream::{secret, until};
use satellite::upstream::UpstreamConfig;
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How the test's central base answers the long poll.
#[derive(Clone, Copy)]
enum Poll {
    /// The first `n` polls get a body larger than the agent's bound (sent
    /// as a stream, without a length), the next are held 300 ms and empty.
    OversizedFirst(u32),
    /// Every poll is answered at once, empty.
    EmptyAtOnce,
    /// The first poll brings this many requests (each refused by the
    /// agent: `{}` is no request), the next are held 300 ms and empty.
    ManyFirst(usize),
}

struct Cb {
    poll: Poll,
    polls: AtomicU32,
    acked: std::sync::Mutex<Vec<String>>,
}

async fn token() -> axum::Json<Value> {
    axum::Json(
        serde_json::json!({"access_token": "t0k", "token_type": "Bearer", "expires_in": 3600}),
    )
}

async fn requests(State(cb): State<Arc<Cb>>) -> axum::response::Response {
    let n = cb.polls.fetch_add(1, Ordering::SeqCst);
    match cb.poll {
        Poll::OversizedFirst(k) if n < k => {
            // 17 MiB, one MiB a chunk, no Content-Length: only reading it
            // as a stream can stop it.
            let chunks = (0..17).map(|i| {
                let mut c = vec![b' '; 1024 * 1024];
                if i == 0 {
                    c[0] = b'{';
                }
                Ok::<_, std::io::Error>(Bytes::from(c))
            });
            axum::response::Response::builder()
                .header("content-type", "application/json")
                .body(Body::from_stream(futures::stream::iter(chunks)))
                .unwrap()
        }
        Poll::ManyFirst(k) if n == 0 => {
            let requests: Vec<Value> = (0..k)
                .map(|i| serde_json::json!({"deliveryId": format!("d{i}"), "request": {}}))
                .collect();
            axum::Json(serde_json::json!({ "requests": requests })).into_response()
        }
        Poll::OversizedFirst(_) | Poll::ManyFirst(_) => {
            tokio::time::sleep(Duration::from_millis(300)).await;
            empty()
        }
        Poll::EmptyAtOnce => empty(),
    }
}

fn empty() -> axum::response::Response {
    axum::response::Response::builder()
        .header("content-type", "application/json")
        .body(Body::from(r#"{"requests":[]}"#))
        .unwrap()
}

/// The central base on loopback; its address.
async fn central_base(poll: Poll) -> (Arc<Cb>, SocketAddr) {
    let cb = Arc::new(Cb {
        poll,
        polls: AtomicU32::new(0),
        acked: std::sync::Mutex::new(Vec::new()),
    });
    let app = Router::new()
        .route("/token", post(token))
        .route("/cb/kiosks/KIOSK01/requests", get(requests))
        .route(
            "/cb/kiosks/KIOSK01/requests/{id}/ack",
            post(
                |State(cb): State<Arc<Cb>>, Path(id): Path<String>| async move {
                    cb.acked.lock().unwrap().push(id);
                    axum::Json(serde_json::json!({}))
                },
            ),
        )
        .route(
            "/cb/kiosks/KIOSK01/heartbeat",
            put(|| async { axum::Json(serde_json::json!({})) }),
        )
        .with_state(cb.clone());
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    (cb, addr)
}

/// `[upstream]` with the intake only (no sink), a heartbeat once an hour
/// (its success would hide the poll's failure in the link's state).
fn config(dir: &std::path::Path, addr: SocketAddr) -> UpstreamConfig {
    let s = secret(dir, "cb.secret", "x\n");
    let text = format!(
        r#"
        backoff_first_ms = 100
        backoff_cap_ms = 1000
        [central_base]
        url = "http://{addr}/cb"
        intake = true
        events = false
        poll_wait_s = 1
        heartbeat_s = 3600
        [central_base.auth]
        token_url = "http://{addr}/token"
        client_id = "satellite"
        client_secret_file = "{s}"
        "#,
        s = s.display()
    );
    let c: UpstreamConfig = toml::from_str(&text).unwrap();
    c.check().unwrap();
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_over_its_bound_is_refused_and_the_agent_keeps_polling() {
    let (cb, addr) = central_base(Poll::OversizedFirst(3)).await;
    let k = kiosk::start(|_| {}, |dir, c| c.upstream = config(dir, addr)).await;
    let api = "central-base-api";
    // Each oversized answer is refused with a clear error in health.
    let mut refused = Value::Null;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let s = k.client.get("/v1/status").await.unwrap().body;
        let link = &s["upstream"][api];
        if link["state"] == "down" {
            refused = link.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("refused: {refused}");
    assert_eq!(refused["code"], "SAT_SERVER_NOT_REACHABLE", "{refused}");
    let error = refused["error"].as_str().unwrap_or("");
    assert!(
        error.contains("exceeds 16384 KiB") && error.contains("refused"),
        "{refused}"
    );
    // The agent goes on: the next polls are answered normally, the link is
    // up again, and it keeps polling.
    let client = k.client.clone();
    let mut up = false;
    for _ in 0..1000 {
        let s = client.get("/v1/status").await.unwrap().body;
        if s["upstream"][api]["state"] == "up" && cb.polls.load(Ordering::SeqCst) > 4 {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(up, "polls: {}", cb.polls.load(Ordering::SeqCst));
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_base_answering_empty_at_once_is_polled_once_a_second() {
    let (cb, addr) = central_base(Poll::EmptyAtOnce).await;
    let k = kiosk::start(|_| {}, |dir, c| c.upstream = config(dir, addr)).await;
    until("the first poll", 10, || cb.polls.load(Ordering::SeqCst) > 0).await;
    let first = cb.polls.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let polls = cb.polls.load(Ordering::SeqCst) - first;
    // One a second (3 or 4 in 3.5 s), not as fast as loopback allows.
    eprintln!("{polls} polls in 3.5 s");
    assert!((2..=5).contains(&polls), "{polls} polls in 3.5 s");
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_poll_takes_at_most_100_requests() {
    let (cb, addr) = central_base(Poll::ManyFirst(150)).await;
    let k = kiosk::start(|_| {}, |dir, c| c.upstream = config(dir, addr)).await;
    // The 100 taken are answered (refused: `{}` is no request) and
    // acknowledged; the other 50 are left for the next poll.
    until("100 acknowledgements and another poll", 20, || {
        cb.acked.lock().unwrap().len() >= 100 && cb.polls.load(Ordering::SeqCst) >= 3
    })
    .await;
    let acked = cb.acked.lock().unwrap().clone();
    let expected: Vec<String> = (0..100).map(|i| format!("d{i}")).collect();
    assert_eq!(acked, expected);
    k.daemon.stop().await;
}

/// Runs [`inner_a_proxy_in_the_environment_is_not_used`] in a process of
/// its own whose environment names a proxy that refuses every connection
/// (the variables are read once per process, so they cannot be set here).
#[test]
fn a_proxy_in_the_environment_is_not_used() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "inner_a_proxy_in_the_environment_is_not_used",
            "--ignored",
            "--nocapture",
        ])
        .env("HTTPS_PROXY", "http://127.0.0.1:9")
        .env("HTTP_PROXY", "http://127.0.0.1:9")
        .env("ALL_PROXY", "http://127.0.0.1:9")
        .env("https_proxy", "http://127.0.0.1:9")
        .env("http_proxy", "http://127.0.0.1:9")
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("1 passed"), "{text}");
}

#[tokio::test]
#[ignore = "run by a_proxy_in_the_environment_is_not_used, with a proxy in its environment"]
async fn inner_a_proxy_in_the_environment_is_not_used() {
    if std::env::var("HTTP_PROXY").as_deref() != Ok("http://127.0.0.1:9") {
        // Run on its own (`--include-ignored`): the outer test is the one
        // that sets the environment and judges.
        eprintln!("no proxy in the environment: nothing to show here");
        return;
    }
    let (_cb, addr) = central_base(Poll::EmptyAtOnce).await;
    let tls = satellite::upstream::config::TlsConfig::default();
    let http = satellite::upstream::http::client("test", &tls, Duration::from_secs(5)).unwrap();
    let (answer, _) =
        satellite::upstream::http::answer(http.post(format!("http://{addr}/token")).send().await)
            .await;
    assert_eq!(answer.to_string(), "HTTP 200", "{answer:?}");
}

/// A central base whose clock is 10 minutes behind this kiosk's, and which
/// refuses the kiosk's credentials: no call ever gets a token (so no
/// heartbeat goes out), yet the token endpoint's answer tells its time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_skew_is_read_from_any_answer_and_raised_beyond_two_minutes() {
    let refuse = || async {
        let behind = std::time::SystemTime::now() - Duration::from_secs(600);
        axum::response::Response::builder()
            .status(401)
            .header("date", httpdate::fmt_http_date(behind))
            .header("content-type", "application/json")
            .body(Body::from(r#"{"error":"invalid_client"}"#))
            .unwrap()
    };
    let app = Router::new().route("/token", post(refuse));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await });
    let k = kiosk::start(|_| {}, |dir, c| c.upstream = config(dir, addr)).await;
    let mut link = Value::Null;
    for _ in 0..500 {
        let s = k.client.get("/v1/status").await.unwrap().body;
        link = s["upstream"]["central-base-api"].clone();
        if link["alarms"].is_array() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{link}");
    // Refused: the link is down for our credentials...
    assert_eq!(link["code"], "SAT_AUTHENTICATION_FAILED", "{link}");
    // ...and the clock is 600 s ahead of the server's (Date: whole seconds).
    let skew = link["clockSkewMs"].as_i64().unwrap();
    assert!((599_000..=601_500).contains(&skew), "{link}");
    assert_eq!(link["alarms"][0]["code"], "SAT_CLOCK_SKEW", "{link}");
    let msg = link["alarms"][0]["message"].as_str().unwrap();
    assert!(msg.contains("600 s ahead of"), "{link}");
    k.daemon.stop().await;
}
