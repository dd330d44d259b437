//! Delivery that one bad receiver or one bad event cannot stall: the
//! daemon (real store, the simulator over a real pseudo-terminal) and the
//! stub central base, webhook receiver and D1 over real HTTP on loopback.
//! Each receiver fault is the stub's: a payload it fails alone (`poison`),
//! an endpoint that moved or is gone, a store that cannot record. What the
//! stub received is the ground truth; the technician acts through the
//! command line.

mod common;

use common::upstream::{self as up, cb_events, distinct, request, until};
use printer_sim::upstream::{Fault, Group, StubHandle};
use serde_json::Value;
use std::time::{Duration, Instant};

const LIFE: [&str; 3] = ["READY", "IN_PROGRESS", "PRODUCED"];

/// The statuses the webhook receiver took for `card`, in arrival order.
fn webhooked(stub: &StubHandle, card: &str) -> Vec<String> {
    stub.control()
        .webhooks()
        .iter()
        .filter_map(|w| serde_json::from_str::<Value>(&w.body).ok())
        .filter(|b| b["data"]["cardToken"] == card)
        .map(|b| b["data"]["status"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// `satellite outbox ARGS --socket S [--json]`, as a technician runs it.
async fn outbox(k: &up::Upstreamed, args: &[&str]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_satellite"));
    cmd.arg("outbox")
        .args(args)
        .arg("--socket")
        .arg(&k.kiosk.socket)
        .env("NO_COLOR", "1");
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The sink's row of `GET /v1/outbox`, and the whole answer.
async fn sink(k: &up::Upstreamed, name: &str) -> (Value, Value) {
    let all = k.kiosk.client.get("/v1/outbox").await.unwrap().body;
    let row = all["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["sink"] == name)
        .cloned()
        .unwrap_or(Value::Null);
    (row, all)
}

async fn submit(k: &up::Upstreamed, token: &str, i: u32) {
    let a = k
        .kiosk
        .client
        .post(
            "/v1/cards",
            request(token, &up::pan(i)).to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
}

async fn wait_sink(k: &up::Upstreamed, name: &str, what: &str, f: impl Fn(&Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (row, all) = sink(k, name).await;
        if f(&row) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {all}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A receiver that fails one card's payloads (500 for one, 422 for
/// another) keeps taking every other card's at once. The 500s are backed
/// off alone and parked after three attempts; the 422 is a dead letter at
/// once. Each holds back its card's later statuses (never shown out of
/// order), the central base gets everything meanwhile, and a replay sends
/// each held card's statuses in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_stalls_no_other_card_and_a_replay_keeps_each_cards_order() {
    let k = up::start(&["cb", "webhook"], false, |c| {
        c.upstream.park_after_attempts = 3;
        c.upstream.event_backoff_cap_ms = 400;
    })
    .await;
    let c = k.stub.control();
    // The receiver works.
    submit(&k, "first", 1).await;
    until("first delivered", 30, || {
        webhooked(&k.stub, "first") == LIFE
    })
    .await;

    c.set_fault(Group::Webhook, Fault::Poison(500, "crash-me".into()), None)
        .await;
    c.set_fault(Group::Webhook, Fault::Poison(422, "refuse-me".into()), None)
        .await;
    submit(&k, "crash-me", 2).await;
    submit(&k, "refuse-me", 3).await;
    let others = ["after-1", "after-2", "after-3"];
    for (i, t) in others.iter().enumerate() {
        submit(&k, t, 10 + i as u32).await;
    }
    // Every other card's statuses arrive, in order, while the two fail.
    for t in others {
        until(&format!("{t} delivered"), 60, || {
            webhooked(&k.stub, t) == LIFE
        })
        .await;
    }
    wait_sink(&k, "issuer", "one parked, one dead, four held", |s| {
        s["parked"] == 1 && s["dead"] == 1 && s["held"] == 4
    })
    .await;
    // Nothing of either card reached the receiver, not even out of order.
    assert!(webhooked(&k.stub, "crash-me").is_empty());
    assert!(webhooked(&k.stub, "refuse-me").is_empty());
    let (row, all) = sink(&k, "issuer").await;
    assert_eq!(
        row["lastError"],
        Value::Null,
        "the sink itself is fine: {all}"
    );
    let dead = all["deadLetters"].as_array().unwrap();
    let state_of = |status: &str| {
        dead.iter()
            .find(|d| d["state"] == status)
            .unwrap_or_else(|| panic!("no {status} in {all}"))
            .clone()
    };
    let parked = state_of("PARKED");
    assert_eq!(parked["event"]["cardToken"], "crash-me");
    assert_eq!(parked["event"]["status"], "READY");
    assert_eq!(parked["attempts"], 3, "{parked}");
    assert!(
        parked["error"].as_str().unwrap().contains("500"),
        "{parked}"
    );
    let refused = state_of("DEAD");
    assert_eq!(refused["event"]["cardToken"], "refuse-me");
    assert!(
        refused["error"].as_str().unwrap().contains("422"),
        "{refused}"
    );
    // The central base was never held back.
    for t in ["crash-me", "refuse-me"] {
        until(&format!("{t} at the central base"), 30, || {
            distinct(&cb_events(&k.stub, t)) == LIFE
        })
        .await;
    }

    // The receiver is fixed; the technician replays.
    c.clear_faults(Some(Group::Webhook)).await;
    let (ok, out) = outbox(&k, &["replay", "issuer"]).await;
    assert!(ok, "{out}");
    assert!(out.contains("2 dead or parked"), "{out}");
    for t in ["crash-me", "refuse-me"] {
        until(&format!("{t} replayed in order"), 30, || {
            webhooked(&k.stub, t) == LIFE
        })
        .await;
    }
    wait_sink(&k, "issuer", "nothing left", |s| {
        s["pending"] == 0 && s["dead"] == 0 && s["parked"] == 0 && s["held"] == 0
    })
    .await;
    k.kiosk.daemon.stop().await;
}

/// One event the central base fails inside a batch does not hold the
/// batch: halving finds it, the rest go through, and it is parked alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_in_a_central_base_batch_is_found_and_the_rest_delivered() {
    let k = up::start(&["cb"], false, |c| {
        c.upstream.park_after_attempts = 2;
        c.upstream.event_backoff_cap_ms = 300;
    })
    .await;
    let c = k.stub.control();
    submit(&k, "cb-first", 1).await;
    until("cb-first delivered", 30, || {
        distinct(&cb_events(&k.stub, "cb-first")) == LIFE
    })
    .await;
    // The central base down while cards queue up, so that they go in one
    // batch when it is back, with the poisoned one among them.
    c.set_fault(Group::Events, Fault::Status(503), None).await;
    let cards: Vec<String> = (0..6).map(|i| format!("cb-batch-{i}")).collect();
    for (i, t) in cards.iter().enumerate() {
        submit(&k, t, 20 + i as u32).await;
    }
    let store = k.kiosk.daemon.engine.store();
    until("every card produced", 60, || {
        cards.iter().all(|t| {
            store
                .job(t)
                .unwrap()
                .is_some_and(|j| j.status.as_str() == "PRODUCED")
        })
    })
    .await;
    c.clear_faults(Some(Group::Events)).await;
    c.set_fault(Group::Events, Fault::Poison(500, "cb-batch-3".into()), None)
        .await;
    k.kiosk
        .client
        .post("/v1/outbox/central-base/retry", b"{}")
        .await
        .unwrap();
    for t in cards.iter().filter(|t| *t != "cb-batch-3") {
        until(&format!("{t} at the central base"), 30, || {
            distinct(&cb_events(&k.stub, t)) == LIFE
        })
        .await;
    }
    wait_sink(&k, "central-base", "the poisoned one parked", |s| {
        s["parked"] == 1 && s["held"] == 2
    })
    .await;
    assert!(cb_events(&k.stub, "cb-batch-3").is_empty());
    k.kiosk.daemon.stop().await;
}

/// An endpoint that moved (404) concerns the endpoint, not the events: the
/// sink pauses with the error shown, nothing is dead-lettered, and once the
/// receiver is back `satellite outbox retry` sends at once (the pause
/// would otherwise last up to a minute), counting what is pending; the
/// error is then cleared.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_moved_pauses_the_sink_and_retry_sends_at_once() {
    let k = up::start(&["webhook"], false, |c| {
        c.upstream.backoff_cap_ms = 60_000;
    })
    .await;
    let c = k.stub.control();
    c.set_fault(Group::Webhook, Fault::Status(404), None).await;
    submit(&k, "moved-1", 1).await;
    submit(&k, "moved-2", 2).await;
    let store = k.kiosk.daemon.engine.store();
    until("both produced", 60, || {
        ["moved-1", "moved-2"].iter().all(|t| {
            store
                .job(t)
                .unwrap()
                .is_some_and(|j| j.status.as_str() == "PRODUCED")
        })
    })
    .await;
    // Failures pile up (the pause grows from 100 ms towards a minute).
    until("several refused calls", 30, || {
        c.received()
            .iter()
            .filter(|r| r.group == Some(Group::Webhook))
            .count()
            >= 6
    })
    .await;
    let (row, all) = sink(&k, "issuer").await;
    assert_eq!(
        (row["dead"].as_u64(), row["parked"].as_u64()),
        (Some(0), Some(0)),
        "{all}"
    );
    assert!(row["lastError"].as_str().unwrap().contains("404"), "{all}");
    let status = k.kiosk.client.get("/v1/status").await.unwrap().body;
    assert_eq!(status["upstream"]["issuer"]["state"], "down", "{status}");
    assert_eq!(
        status["upstream"]["issuer"]["code"], "SAT_SERVER_NOT_REACHABLE",
        "{status}"
    );
    let pending = row["pending"].as_u64().unwrap();
    assert_eq!(pending, 6);

    c.clear_faults(Some(Group::Webhook)).await;
    // Let the relay settle into its pause, then ask.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    let (ok, out) = outbox(&k, &["retry", "issuer"]).await;
    assert!(ok, "{out}");
    assert!(out.contains(&format!("({pending} pending")), "{out}");
    until("delivered after the retry", 10, || {
        webhooked(&k.stub, "moved-1") == LIFE && webhooked(&k.stub, "moved-2") == LIFE
    })
    .await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(5), "sent at once: {took:?}");
    wait_sink(&k, "issuer", "the error cleared", |s| {
        s["pending"] == 0 && s["lastError"].is_null()
    })
    .await;
    let (ok, out) = outbox(&k, &["list"]).await;
    assert!(ok && !out.contains("404"), "{out}");
    k.kiosk.daemon.stop().await;
}

/// 410 Gone disables the sink: nothing more is sent, even once the
/// receiver is back, until `satellite outbox enable`; then the card's
/// statuses go in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_disables_the_sink_until_an_operator_enables_it() {
    let k = up::start(&["webhook"], false, |_| {}).await;
    let c = k.stub.control();
    c.set_fault(Group::Webhook, Fault::Status(410), Some(1))
        .await;
    submit(&k, "gone-1", 1).await;
    wait_sink(&k, "issuer", "disabled", |s| s["disabled"].is_string()).await;
    let calls = || {
        c.received()
            .iter()
            .filter(|r| r.group == Some(Group::Webhook))
            .count()
    };
    let before = calls();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(calls(), before, "nothing sent while disabled");
    let (_, _, metrics) = k.kiosk.client.get_text("/metrics").await.unwrap();
    assert!(
        metrics.contains("satellite_outbox_disabled{sink=\"issuer\"} 1"),
        "{metrics}"
    );
    let (ok, out) = outbox(&k, &["list"]).await;
    assert!(ok && out.contains("DISABLED"), "{out}");

    let (ok, out) = outbox(&k, &["enable", "issuer"]).await;
    assert!(ok && out.contains("enabled"), "{out}");
    until("delivered in order after enable", 30, || {
        webhooked(&k.stub, "gone-1") == LIFE
    })
    .await;
    wait_sink(&k, "issuer", "enabled and clear", |s| {
        s["disabled"].is_null() && s["lastError"].is_null()
    })
    .await;
    k.kiosk.daemon.stop().await;
}
