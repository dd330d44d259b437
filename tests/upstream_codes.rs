//! Deferred card data, and every code the central base and the agent's own
//! link to it can give a card: each CB_ and DP_ code from a fault of the
//! reference central base, each SAT_ code from a link or a credential that
//! fails. Real HTTP on loopback, real store, the simulator over a pty.
//! Failures for now end the card only after `data_patience_s`, set to 1 s
//! here (`tests/deferred_data.rs` covers the wait itself).

mod common;

use common::upstream::{self as up, card_data, deferred, final_state, until};
use printer_sim::upstream::{Fault, Group};
use satellite::api::client::Client;
use serde_json::{json, Value};

/// Failures for now end the card after 1 s.
fn short_patience(c: &mut satellite::config::Config) {
    c.upstream.central_base.as_mut().unwrap().data_patience_s = 1;
}

async fn submit(client: &Client, body: &Value) {
    let a = client
        .post("/v1/cards", body.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
}

/// Cards that left a feeder, by the simulator's own record.
fn cards_out(k: &up::Upstreamed) -> usize {
    k.kiosk.sim.state().cards.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_card_data_is_fetched_before_the_cards_turn_and_each_central_base_code_fails_the_card(
) {
    let k = up::start(&["cb"], false, short_patience).await;
    let (c, client) = (k.stub.control(), &k.kiosk.client);

    // Produced with data that the central base gives apart.
    let pan = up::pan(300);
    c.set_card_data("def-ok", &card_data(&pan));
    submit(client, &deferred("def-ok")).await;
    let done = final_state(client, "def-ok").await;
    assert_eq!(done["status"], "PRODUCED", "{done}");
    let fetches = c.data_fetches();
    assert_eq!(fetches.len(), 1);
    assert_eq!(fetches[0].card_token, "def-ok");
    let job = k
        .kiosk
        .daemon
        .engine
        .store()
        .job("def-ok")
        .unwrap()
        .unwrap();
    assert_eq!(job.meta.pan_masked, dialect::redact::mask_digits(&pan));
    assert_eq!(cards_out(&k), 1, "one card out of the printer");

    // Data that fails validation (a PAN with a wrong check digit): the
    // card ends before any card is taken from the feeder.
    c.set_card_data(
        "def-bad",
        &json!({ "pan": "4000001234567890", "expiry": "2812", "cardholderName": "ADA LOVELACE" }),
    );
    submit(client, &deferred("def-bad")).await;
    let bad = final_state(client, "def-bad").await;
    assert_eq!(bad["errorCode"], "PRD_UNEXPECTED_DATA", "{bad}");
    assert!(
        bad["description"].as_str().unwrap().contains("pan"),
        "{bad}"
    );
    assert!(
        !bad.to_string().contains("4000001234567890"),
        "no full PAN: {bad}"
    );

    // Each code the central base reports.
    for code in [
        "DP_NOT_AVAILABLE",
        "DP_IO_ERROR",
        "DP_TIMEOUT",
        "CB_NOT_AVAILABLE",
        "CB_DB_NOT_AVAILABLE",
        "CB_NETWORK_NOT_AVAILABLE",
        "CB_AUTHENTICATION_FAILED",
        "CB_SERVICE_NOT_ALLOWED",
        "CB_TIME",
    ] {
        let token = format!("def-{}", code.to_lowercase().replace('_', "-"));
        c.set_card_data(&token, &card_data(&up::pan(301)));
        c.set_fault(Group::Data, Fault::DataError(code.into()), None)
            .await;
        submit(client, &deferred(&token)).await;
        let end = final_state(client, &token).await;
        assert_eq!(end["status"], "PRODUCTION_ERROR", "{code}: {end}");
        assert_eq!(end["errorCode"], code, "{end}");
        c.clear_faults(None).await;
    }
    assert_eq!(cards_out(&k), 1, "no other card left a feeder");
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_satellite_codes_say_the_central_base_cannot_be_reached_or_refuses_the_agent() {
    let k = up::start(&["cb"], false, short_patience).await;
    let (c, client) = (k.stub.control(), &k.kiosk.client);
    // A first call went through (the token is cached from then on).
    until("a first heartbeat", 20, || c.heartbeat().count > 0).await;

    // Down: no connection.
    c.set_card_data("sat-down", &card_data(&up::pan(310)));
    c.set_fault(Group::All, Fault::Down, None).await;
    submit(client, &deferred("sat-down")).await;
    let end = final_state(client, "sat-down").await;
    assert_eq!(end["errorCode"], "SAT_SERVER_NOT_REACHABLE", "{end}");
    let s = client.get("/v1/status").await.unwrap().body;
    assert_eq!(
        s["upstream"]["central-base-api"]["code"], "SAT_SERVER_NOT_REACHABLE",
        "{s}"
    );
    c.clear_faults(None).await;

    // Refused: the token is no longer valid and the token endpoint refuses
    // the agent's credentials.
    c.set_card_data("sat-auth", &card_data(&up::pan(311)));
    c.expire_tokens();
    c.set_fault(Group::Token, Fault::Status(401), None).await;
    submit(client, &deferred("sat-auth")).await;
    let end = final_state(client, "sat-auth").await;
    assert_eq!(end["errorCode"], "SAT_AUTHENTICATION_FAILED", "{end}");
    let s = client.get("/v1/status").await.unwrap().body;
    assert_eq!(
        s["upstream"]["central-base-api"]["code"], "SAT_AUTHENTICATION_FAILED",
        "{s}"
    );
    c.clear_faults(None).await;
    assert_eq!(cards_out(&k), 0, "no card left a feeder");
    k.kiosk.daemon.stop().await;

    // No network: the central base's name does not resolve.
    let k = up::start(&["cb"], false, |c| {
        short_patience(c);
        let cb = c.upstream.central_base.as_mut().unwrap();
        cb.url = "https://central-base.invalid/cb/v1".into();
        cb.auth.as_mut().unwrap().token_url = "https://central-base.invalid/oauth/token".into();
    })
    .await;
    submit(&k.kiosk.client, &deferred("sat-net")).await;
    let end = final_state(&k.kiosk.client, "sat-net").await;
    assert_eq!(end["errorCode"], "SAT_NETWORK_NOT_AVAILABLE", "{end}");
    k.kiosk.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_request_without_a_central_base_is_refused() {
    let k = up::start(&[], false, |c| c.upstream.central_base = None).await;
    let a = k
        .kiosk
        .client
        .post("/v1/cards", deferred("no-cb").to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 422, "{}", a.body);
    assert_eq!(a.body["errorCode"], "INVALID_FIELD_VALUE", "{}", a.body);
    // Card data with the deferred flag is refused too.
    let mut both = deferred("both");
    both["pan"] = up::pan(1).into();
    let a = k
        .kiosk
        .client
        .post("/v1/cards", both.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.body["errorCode"], "INVALID_FIELD_VALUE", "{}", a.body);
    k.kiosk.daemon.stop().await;
}
