//! Deferred card data is fetched while the card is READY: a central base
//! that is briefly away delays the card, it does not end it, and the cards
//! behind it (their data in hand) are produced meanwhile; one away for
//! longer than `data_patience_s`, or one that refuses, ends the card with
//! the seed's code before any blank card is taken for it. Real HTTP on
//! loopback with the reference central base, real store, the simulator over
//! a pty; where cards went is the simulator's own record.

mod common;

use common::upstream::{self as up, deferred, until};
use printer_sim::upstream::{Fault, Group, StubHandle};
use satellite::api::client::Client;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Card data as the central base gives it: `name` printed on the card.
fn card_data(pan: &str, name: &str) -> Value {
    json!({
        "pan": pan,
        "expiry": "2812",
        "cardholderName": name,
        "printedLines": [{ "text": name, "slot": "name" }],
        "tracks": { "track2": format!("{pan}=2812101") }
    })
}

async fn submit(client: &Client, body: &Value) {
    let a = client
        .post("/v1/cards", body.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
}

async fn production(client: &Client, token: &str) -> Value {
    client
        .get(&format!("/v1/cards/{token}/production"))
        .await
        .unwrap()
        .body
}

/// The card's final production object (bounded wait, `secs`).
async fn final_state(client: &Client, token: &str, secs: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let p = production(client, token).await;
        if matches!(
            p["status"].as_str(),
            Some("PRODUCED" | "PRODUCTION_ERROR" | "REQUEST_ERROR")
        ) {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    panic!("{token} never reached a final status within {secs} s");
}

/// The name printed on each card that left a feeder, in order: the
/// simulator's own record.
fn cards_out(k: &up::Upstreamed) -> Vec<String> {
    k.kiosk
        .sim
        .state()
        .cards
        .iter()
        .map(|c| {
            c.text_lines
                .iter()
                .map(|l| l.text.clone())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// The data fetches the central base saw for `token`: their HTTP statuses.
fn fetches(stub: &StubHandle, token: &str) -> Vec<u16> {
    stub.control()
        .data_fetches()
        .into_iter()
        .filter(|f| f.card_token == token)
        .map(|f| f.status)
        .collect()
}

/// Waits until the central base has received `statuses` for `token`.
async fn cb_saw(stub: &StubHandle, token: &str, statuses: &[&str]) {
    until(
        &format!("{token}'s statuses at the central base"),
        30,
        || up::distinct(&up::cb_events(stub, token)) == statuses,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_base_blip_delays_a_deferred_card_without_ending_it_and_the_queue_goes_on() {
    let k = up::start(&["cb"], false, |_| {}).await;
    let (c, client) = (k.stub.control(), &k.kiosk.client);
    until("a first heartbeat", 20, || c.heartbeat().count > 0).await;
    let (blip_pan, plain_pan) = (up::pan(400), up::pan(401));
    c.set_card_data("blip", &card_data(&blip_pan, "GRACE HOPPER"));
    // Ground truth throughout: no card leaves a feeder for "blip" before
    // the central base gave its data (the simulator's count read first,
    // then the central base's record of a successful fetch).
    let watch = {
        let sim = k.kiosk.sim.clone();
        let stub = k.stub.control();
        tokio::spawn(async move {
            loop {
                let out = sim.state().cards.len();
                let given = stub
                    .data_fetches()
                    .iter()
                    .any(|f| f.card_token == "blip" && f.status == 200);
                if out >= 2 {
                    return given;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    // The data endpoint answers 503 ...
    let outage = Instant::now();
    c.set_fault(Group::Data, Fault::Status(503), None).await;
    submit(client, &deferred("blip")).await;
    // ... and a card queued after it, its data in the request, goes first.
    submit(client, &common::kiosk::request("plain", &plain_pan)).await;
    let plain = final_state(client, "plain", 20).await;
    assert_eq!(plain["status"], "PRODUCED", "{plain}");
    until("a few refused fetches", 10, || {
        fetches(&k.stub, "blip").len() >= 2
    })
    .await;
    let card = client.get("/v1/cards/blip").await.unwrap().body;
    assert_eq!(card["production"]["status"], "READY", "{card}");
    let note = card["waiting"].as_str().expect("a waiting note");
    assert!(note.contains("card data"), "{note}");
    assert!(note.contains("CB_NOT_AVAILABLE"), "{note}");
    assert!(!card.to_string().contains(&blip_pan), "no PAN: {card}");

    // Then no connection at all (refused), until 5 s in.
    c.set_fault(Group::All, Fault::Down, None).await;
    c.clear_faults(Some(Group::Data)).await;
    let back_at = outage + Duration::from_secs(5);
    tokio::time::sleep(back_at.saturating_duration_since(Instant::now())).await;
    let card = client.get("/v1/cards/blip").await.unwrap().body;
    assert_eq!(card["production"]["status"], "READY", "{card}");
    assert!(card["waiting"].is_string(), "{card}");
    // Ground truth: only the plain card left a feeder during the outage.
    assert_eq!(cards_out(&k), ["JANE DOE"]);
    c.clear_faults(None).await;

    let blip = final_state(client, "blip", 40).await;
    assert_eq!(blip["status"], "PRODUCED", "{blip}");
    assert_eq!(
        cards_out(&k),
        ["JANE DOE", "GRACE HOPPER"],
        "one card each, the deferred one last"
    );
    assert!(
        watch.await.unwrap(),
        "the second card left a feeder after the data came"
    );
    let seen = fetches(&k.stub, "blip");
    assert!(seen.len() >= 2, "{seen:?}");
    assert_eq!(seen.last(), Some(&200), "{seen:?}");
    assert!(seen[..seen.len() - 1].iter().all(|s| *s == 503), "{seen:?}");
    assert_eq!(seen.iter().filter(|s| **s == 200).count(), 1, "{seen:?}");
    let card = client.get("/v1/cards/blip").await.unwrap().body;
    assert!(card.get("waiting").is_none(), "{card}");
    assert_eq!(
        card["pan"],
        dialect::redact::mask_digits(&blip_pan),
        "{card}"
    );
    cb_saw(&k.stub, "blip", &["READY", "IN_PROGRESS", "PRODUCED"]).await;
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_central_base_away_beyond_the_patience_ends_the_card_before_any_card_is_taken() {
    let k = up::start(&["cb"], false, |c| {
        c.upstream.central_base.as_mut().unwrap().data_patience_s = 2;
    })
    .await;
    let (c, client) = (k.stub.control(), &k.kiosk.client);
    c.set_card_data("late", &card_data(&up::pan(410), "LATE"));
    c.set_fault(Group::Data, Fault::Status(503), None).await;
    let began = Instant::now();
    submit(client, &deferred("late")).await;
    let end = final_state(client, "late", 20).await;
    let took = began.elapsed();
    assert_eq!(end["status"], "PRODUCTION_ERROR", "{end}");
    assert_eq!(end["errorCode"], "CB_NOT_AVAILABLE", "{end}");
    let d = end["description"].as_str().unwrap();
    assert!(d.contains("within the patience of 2 s"), "{d}");
    assert!(d.contains("no blank card was taken"), "{d}");
    assert!(took >= Duration::from_secs(2), "ended after {took:?}");
    let seen = fetches(&k.stub, "late");
    assert!(seen.len() >= 2, "asked again meanwhile: {seen:?}");
    assert!(seen.iter().all(|s| *s == 503), "{seen:?}");
    assert!(cards_out(&k).is_empty(), "no card left a feeder");
    // Not asked for again once given up.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(fetches(&k.stub, "late").len(), seen.len());
    cb_saw(
        &k.stub,
        "late",
        &["READY", "IN_PROGRESS", "PRODUCTION_ERROR"],
    )
    .await;
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_ends_the_card_at_once_with_its_code() {
    // The default patience (300 s): a refusal does not wait for it.
    let k = up::start(&["cb"], false, |_| {}).await;
    let (c, client) = (k.stub.control(), &k.kiosk.client);
    c.set_card_data("refused", &card_data(&up::pan(420), "REFUSED"));
    c.set_fault(
        Group::Data,
        Fault::DataError("CB_SERVICE_NOT_ALLOWED".into()),
        None,
    )
    .await;
    submit(client, &deferred("refused")).await;
    let end = final_state(client, "refused", 10).await;
    assert_eq!(end["status"], "PRODUCTION_ERROR", "{end}");
    assert_eq!(end["errorCode"], "CB_SERVICE_NOT_ALLOWED", "{end}");
    assert!(
        end["description"]
            .as_str()
            .unwrap()
            .contains("nothing happened at the printer"),
        "{end}"
    );
    assert_eq!(fetches(&k.stub, "refused"), [403], "asked once");
    c.clear_faults(None).await;

    // No data for this card at the central base (404): at once too.
    submit(client, &deferred("unknown")).await;
    let end = final_state(client, "unknown", 10).await;
    assert_eq!(end["errorCode"], "DP_NOT_AVAILABLE", "{end}");
    assert_eq!(fetches(&k.stub, "unknown"), [404]);
    assert!(cards_out(&k).is_empty(), "no card left a feeder");
    k.kiosk.daemon.stop().await;
}
