//! Upstream end to end: the daemon (real SQLite store, the simulator over a
//! real pseudo-terminal) and the reference central base over real HTTP on
//! loopback, playing the central base, the issuer's webhook receiver and
//! D1. What the stub received is the ground truth.

mod common;

use common::upstream::{self as up, cb_events, distinct, request, until};
use printer_sim::upstream::{Fault, Group};
use serde_json::Value;
use std::time::Duration;

const LIFE: [&str; 3] = ["READY", "IN_PROGRESS", "PRODUCED"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cards_from_the_central_base_reach_every_sink_in_order() {
    let k = up::start(&["cb", "webhook", "d1"], true, |_| {}).await;
    let c = k.stub.control();
    let tokens: Vec<String> = (0..3).map(|i| format!("cb-card-{i}")).collect();
    for (i, t) in tokens.iter().enumerate() {
        c.enqueue(&request(t, &up::pan(i as u32)));
    }
    // Each request is acknowledged as accepted, once.
    until("three acknowledgements", 20, || c.acks().len() >= 3).await;
    for a in c.acks() {
        assert_eq!(a.body["outcome"], "ACCEPTED", "{}", a.body);
        assert_eq!(a.body["status"], "READY");
    }
    // Every card's life reaches the central base, in order, and its
    // reconciled latest state is PRODUCED.
    for t in &tokens {
        until(&format!("{t} produced upstream"), 60, || {
            distinct(&cb_events(&k.stub, t)) == LIFE
        })
        .await;
        let seqs: Vec<i64> = cb_events(&k.stub, t).iter().map(|e| e.1).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{t}: {seqs:?}");
        let latest = c.latest(t).unwrap();
        assert_eq!(latest.production.unwrap()["status"], "PRODUCED");
        assert_eq!(
            latest.operation.unwrap()["details"]["status"],
            "CARD_PROD_DONE"
        );
    }
    // The webhook got the same three status changes per card, signed (the
    // stub refuses a bad signature), ids stable.
    until("webhooks", 20, || c.webhooks().len() >= 9).await;
    for t in &tokens {
        let mine: Vec<Value> = c
            .webhooks()
            .iter()
            .map(|w| serde_json::from_str::<Value>(&w.body).unwrap())
            .filter(|b| b["data"]["cardToken"] == *t)
            .collect();
        let statuses: Vec<&str> = mine
            .iter()
            .map(|b| b["data"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, LIFE, "{t}");
        assert!(mine
            .iter()
            .all(|b| b["type"] == "card.production.status_changed"));
    }
    // D1 heard of each produced card once, and its operation id is kept.
    until("D1 tracks", 20, || c.d1_tracks().len() >= 3).await;
    let store = k.kiosk.daemon.engine.store();
    for t in &tokens {
        let tracks: Vec<_> = c
            .d1_tracks()
            .into_iter()
            .filter(|d| d.card_id == format!("card-{t}"))
            .collect();
        assert_eq!(tracks.len(), 1, "{t}");
        assert_eq!(tracks[0].body["trackingType"], "PRODUCTION");
        assert_eq!(tracks[0].body["productionSite"], up::KIOSK);
        let op = tracks[0].operation_id.clone();
        until("the operation id kept", 10, || {
            store.d1_operation(t).unwrap().as_deref() == Some(op.as_str())
        })
        .await;
    }
    // The heartbeat carries the kiosk's health.
    until("a heartbeat after the cards", 10, || {
        c.heartbeat()
            .latest
            .is_some_and(|h| h["upstream"]["central-base"]["state"] == "up")
    })
    .await;
    let hb = c.heartbeat().latest.expect("a heartbeat");
    assert_eq!(hb["kioskId"], up::KIOSK);
    assert!(hb["engine"]["state"].is_string(), "{hb}");
    assert!(hb["outbox"]["central-base"]["depth"].is_number(), "{hb}");
    assert_eq!(hb["upstream"]["central-base"]["state"], "up", "{hb}");
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_twice_gets_its_first_answer_and_another_under_its_token_is_refused() {
    let k = up::start(&["cb"], true, |_| {}).await;
    let c = k.stub.control();
    c.set_fault(Group::Intake, Fault::Duplicate, Some(1)).await;
    let first = request("dup-1", &up::pan(7));
    c.enqueue(&first);
    until("acks of every copy", 20, || c.acks().len() >= 2).await;
    let acks = c.acks();
    for a in &acks {
        assert_eq!(a.body["outcome"], "ACCEPTED", "{}", a.body);
        assert_eq!(a.body["occurredAt"], acks[0].body["occurredAt"]);
    }
    let mut other = first.clone();
    other["cardholderName"] = "GRACE HOPPER".into();
    c.enqueue(&other);
    until("the other request's ack", 20, || {
        c.acks().iter().any(|a| a.body["outcome"] == "REFUSED")
    })
    .await;
    let refused = c
        .acks()
        .into_iter()
        .find(|a| a.body["outcome"] == "REFUSED")
        .unwrap();
    assert_eq!(refused.body["errorCode"], "REQUEST_ALREADY_EXISTS");
    assert_eq!(refused.body["status"], "REQUEST_ERROR");
    // One card only.
    until("dup-1 produced", 60, || {
        distinct(&cb_events(&k.stub, "dup-1")) == LIFE
    })
    .await;
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_central_base_down_mid_run_loses_nothing() {
    let k = up::start(&["cb", "webhook"], false, |_| {}).await;
    let c = k.stub.control();
    let client = &k.kiosk.client;
    let tokens: Vec<String> = (0..4).map(|i| format!("down-{i}")).collect();
    for (i, t) in tokens.iter().take(2).enumerate() {
        let a = client
            .post(
                "/v1/cards",
                request(t, &up::pan(20 + i as u32)).to_string().as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
    }
    until("first events upstream", 20, || {
        !cb_events(&k.stub, "down-0").is_empty()
    })
    .await;
    c.set_fault(Group::All, Fault::Down, None).await;
    for (i, t) in tokens.iter().enumerate().skip(2) {
        let a = client
            .post(
                "/v1/cards",
                request(t, &up::pan(20 + i as u32)).to_string().as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
    }
    // Health says the central base cannot be reached, with the SAT_ code.
    let mut seen_down = Value::Null;
    for _ in 0..300 {
        let s = client.get("/v1/status").await.unwrap().body;
        if s["upstream"]["central-base"]["state"] == "down" {
            seen_down = s;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen_down["upstream"]["central-base"]["code"], "SAT_SERVER_NOT_REACHABLE",
        "{seen_down}"
    );
    // Cards are produced meanwhile; their events wait.
    for t in &tokens {
        for _ in 0..600 {
            let a = client
                .get(&format!("/v1/cards/{t}/production"))
                .await
                .unwrap();
            if a.body["status"] == "PRODUCED" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let s = client.get("/v1/status").await.unwrap().body;
    assert!(
        s["outbox"]["central-base"]["depth"].as_u64().unwrap() > 0,
        "{s}"
    );
    c.clear_faults(None).await;
    for t in &tokens {
        until(&format!("{t} delivered after the outage"), 30, || {
            distinct(&cb_events(&k.stub, t)) == LIFE
        })
        .await;
        // Duplicates only ever carry an id already seen, with the same content.
        let ev = cb_events(&k.stub, t);
        let mut by_id = std::collections::HashMap::new();
        for (id, seq, st) in ev {
            let prev = by_id.insert(id, (seq, st.clone()));
            if let Some(p) = prev {
                assert_eq!(p, (seq, st));
            }
        }
    }
    until("webhooks after the outage", 30, || {
        let ids: std::collections::HashSet<String> =
            c.webhooks().into_iter().map(|w| w.webhook_id).collect();
        ids.len() == 12
    })
    .await;
    let s = client.get("/v1/status").await.unwrap().body;
    assert_eq!(s["upstream"]["central-base"]["state"], "up", "{s}");
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_on_events_and_the_poll() {
    let k = up::start(&["cb"], true, |_| {}).await;
    let c = k.stub.control();
    let client = &k.kiosk.client;
    // The events endpoint is busy once, asking for 2 s; so is the poll.
    c.set_fault(Group::Events, Fault::Unavailable(2), Some(1))
        .await;
    c.set_fault(Group::Intake, Fault::Unavailable(2), Some(1))
        .await;
    let a = client
        .post(
            "/v1/cards",
            request("ra-1", &up::pan(40)).to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    until("ra-1 upstream", 30, || {
        distinct(&cb_events(&k.stub, "ra-1")) == LIFE
    })
    .await;
    let calls: Vec<_> = c
        .received()
        .into_iter()
        .filter(|r| r.group == Some(Group::Events))
        .collect();
    assert_eq!(calls[0].status, Some(503));
    let gap = calls[1].at.duration_since(calls[0].at).unwrap();
    assert!(
        gap >= Duration::from_millis(1900),
        "Retry-After 2 s honoured: {gap:?}"
    );
    let polls = || -> Vec<_> {
        c.received()
            .into_iter()
            .filter(|r| r.group == Some(Group::Intake))
            .collect()
    };
    // A poll is recorded when it ends (it is held up to 2 s).
    until("a poll after the busy one", 20, || {
        let p = polls();
        p.iter()
            .position(|r| r.status == Some(503))
            .is_some_and(|i| p.len() > i + 1)
    })
    .await;
    let polls = polls();
    let busy = polls
        .iter()
        .position(|r| r.status == Some(503))
        .expect("the busy poll");
    let next = polls.get(busy + 1).expect("a poll after the busy one");
    let gap = next.at.duration_since(polls[busy].at).unwrap();
    assert!(
        gap >= Duration::from_millis(1900),
        "the poll's Retry-After 2 s honoured: {gap:?}"
    );
    k.kiosk.daemon.stop().await;
}
