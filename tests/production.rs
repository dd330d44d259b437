//! The production engine end to end: the daemon with its real SQLite store,
//! the simulator over a real pseudo-terminal, and real HTTP over the local
//! API's Unix socket. The simulator's state is the ground truth.

mod common;

use common::kiosk;
use printer_sim::{Condition, Customer, Simulator};
use satellite::api::client::Client;
use satellite::config::Config;
use satellite::daemon::Daemon;
use serde_json::{json, Value};
use std::time::Duration;

struct Kiosk {
    sim: Simulator,
    daemon: Option<Daemon>,
    client: Client,
    dir: tempfile::TempDir,
}

/// The test settings named in `extra`, one a line.
fn adjust(c: &mut Config, extra: &str) {
    c.printer.timeouts.take = Some(1500);
    c.printer.timeouts.command = Some(1000);
    c.production.queue_limit = 4;
    for setting in extra.lines().filter(|l| !l.trim().is_empty()) {
        match setting.trim() {
            "final_validation = true" => c.production.final_validation = true,
            "not_ready = \"reject\"" => {
                c.production.not_ready = satellite::config::NotReady::Reject
            }
            other => panic!("unknown test setting {other:?}"),
        }
    }
}

async fn kiosk(extra: &str, inventory: bool) -> Kiosk {
    kiosk_with(extra, inventory, false).await
}

/// With `chip`, the chip goes through the real PC/SC stack: pcscd, the vpcd
/// virtual reader, and the simulator playing the card.
async fn kiosk_with(extra: &str, inventory: bool, chip: bool) -> Kiosk {
    let p = kiosk::start(
        |s| {
            if chip {
                kiosk::chip_on_sim(s)
            }
        },
        |_, c| {
            adjust(c, extra);
            if chip {
                kiosk::chip_on_agent(c)
            }
        },
    )
    .await;
    if inventory {
        kiosk::stock(&p.client).await;
    }
    Kiosk {
        sim: p.sim,
        daemon: Some(p.daemon),
        client: p.client,
        dir: p.dir,
    }
}

const PANS: [&str; 5] = [
    "4000001234567899",
    "4000001234567808",
    "4000001234567816",
    "4000001234567824",
    "4000001234567832",
];

fn request(token: &str, pan: &str, name: &str) -> Value {
    json!({
        "cardToken": token,
        "profileId": 42,
        "kioskId": "KIOSK01",
        "cardType": "debit",
        "issuerRequestId": format!("req-{token}"),
        "cardId": format!("card-{token}"),
        "pan": pan,
        "expiry": "2812",
        "cardholderName": name,
        "printedLines": [{ "text": name, "slot": "name" }],
        "tracks": { "track1": format!("B{pan}^{}^2812101", name.replace(' ', "/")), "track2": format!("{pan}=2812101") }
    })
}

impl Kiosk {
    async fn submit(&self, body: &Value) -> (u16, Value) {
        let a = self
            .client
            .post("/v1/cards", body.to_string().as_bytes())
            .await
            .unwrap();
        (a.status, a.body)
    }

    /// Waits (bounded) for a final status and returns the production object.
    /// Waits until the published view of the printer satisfies `ok` (it is
    /// refreshed at least once a second while the printer is idle).
    async fn printer_view(&self, ok: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..300 {
            let a = self.client.get("/v1/printer").await.unwrap();
            if ok(&a.body) {
                return a.body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the printer view never reached the expected state");
    }

    async fn final_state(&self, token: &str) -> Value {
        for _ in 0..600 {
            let a = self
                .client
                .get(&format!("/v1/cards/{token}/production"))
                .await
                .unwrap();
            if matches!(
                a.body["status"].as_str(),
                Some("PRODUCED" | "PRODUCTION_ERROR" | "REQUEST_ERROR")
            ) {
                return a.body;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("card {token} never reached a final state");
    }

    async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_goes_from_ready_to_produced_and_its_data_is_erased() {
    let k = kiosk("", true).await;
    let (status, body) = k.submit(&request("t1", PANS[0], "JANE DOE")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "READY");
    assert_eq!(body["kioskId"], Value::Null, "READY has no kiosk yet");
    let p = k.final_state("t1").await;
    assert_eq!(p["status"], "PRODUCED", "{p}");
    assert_eq!(p["kioskId"], "KIOSK01");
    let keys: Vec<&str> = p.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 5, "exactly the seed's object: {keys:?}");
    for k in [
        "status",
        "kioskId",
        "occurredAt",
        "errorCode",
        "description",
    ] {
        assert!(p.get(k).is_some(), "{k} missing");
    }
    // The steps were visible, in order, each status change an event.
    let card = k.client.get("/v1/cards/t1").await.unwrap().body;
    let steps: Vec<&str> = card["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["step"].as_str())
        .collect();
    for s in ["insert", "magnetic", "print", "verify", "present", "taken"] {
        assert!(steps.contains(&s), "step {s} not seen: {steps:?}");
    }
    let seqs: Vec<i64> = card["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
    assert_eq!(k.sim.state().counters.taken, 1);
    // Card data gone from the database file (and never a PAN in clear).
    let dir = k.dir.path().to_path_buf();
    k.stop().await;
    for f in ["satellite.db", "satellite.db-wal"] {
        if let Ok(bytes) = std::fs::read(dir.join(f)) {
            assert!(
                !bytes.windows(16).any(|w| w == PANS[0].as_bytes()),
                "{f} holds the PAN"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_before_inventory_is_inv_not_initialized() {
    let k = kiosk("", false).await;
    assert_eq!(k.submit(&request("t1", PANS[0], "JANE DOE")).await.0, 201);
    let p = k.final_state("t1").await;
    assert_eq!(
        (p["status"].as_str(), p["errorCode"].as_str()),
        (Some("PRODUCTION_ERROR"), Some("INV_NOT_INITIALIZED")),
        "{p}"
    );
    assert_eq!(k.sim.state().counters.inserted, 0);
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_fault_is_a_production_error_and_the_card_is_rejected() {
    let k = kiosk("", true).await;
    k.sim
        .raise("mag-read-mismatch".parse::<Condition>().unwrap());
    k.submit(&request("t1", PANS[0], "JANE DOE")).await;
    let p = k.final_state("t1").await;
    assert_eq!(p["errorCode"], "PRD_MAGSTRIPE", "{p}");
    assert!(!p["description"].as_str().unwrap().contains(PANS[0]));
    let s = k.sim.state();
    assert_eq!(
        (s.counters.inserted, s.counters.rejected, s.counters.taken),
        (1, 1, 0)
    );
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_not_taken_is_retracted_and_a_refused_one_too() {
    let k = kiosk("final_validation = true", true).await;
    k.sim.set_customer(Customer::Never);
    k.submit(&request("t1", PANS[0], "JANE DOE")).await;
    assert_eq!(k.final_state("t1").await["errorCode"], "PRD_TIMEOUT");
    k.submit(&request("t2", PANS[1], "JOHN DOE")).await;
    // The kiosk application refuses the presented card.
    let mut refused = false;
    for _ in 0..300 {
        let a = k
            .client
            .post("/v1/cards/t2/validation", br#"{"accept": false}"#)
            .await
            .unwrap();
        if a.status == 204 {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "the card never waited for validation");
    assert_eq!(
        k.final_state("t2").await["errorCode"],
        "PRD_FINAL_VALIDATION_NOK"
    );
    let s = k.sim.state();
    assert_eq!(
        (s.counters.presented, s.counters.rejected, s.counters.taken),
        (2, 2, 0)
    );
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_requests_answer_the_seed_codes_and_lose_nothing_accepted() {
    let k = kiosk("", false).await;
    // The cover is open: requests are accepted and wait (the queue policy).
    k.sim.raise("cover-open".parse::<Condition>().unwrap());
    let (s, b) = k.submit(&request("t1", PANS[0], "JANE DOE")).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["errorCode"], "REQUEST_CREATED_BUT_NOT_STARTED", "{b}");
    // Malformed bodies: 4xx naming the problem.
    let a = k.client.post("/v1/cards", b"{not json").await.unwrap();
    assert_eq!(
        (a.status, a.body["errorCode"].as_str()),
        (400, Some("DATA_PREPARATION_FAILED")),
        "{}",
        a.body
    );
    let mut bad = request("t2", PANS[1], "JOHN DOE");
    bad["pan"] = json!("4000001234567801");
    let (s, b) = k.submit(&bad).await;
    assert_eq!(
        (s, b["errorCode"].as_str(), b["field"].as_str()),
        (422, Some("INVALID_FIELD_VALUE"), Some("pan")),
        "{b}"
    );
    // A refused request with a token can be asked about.
    let p = k.client.get("/v1/cards/t2/production").await.unwrap().body;
    assert_eq!(
        (p["status"].as_str(), p["errorCode"].as_str()),
        (Some("REQUEST_ERROR"), Some("INVALID_FIELD_VALUE")),
        "{p}"
    );
    // Duplicate token: refused, the first request untouched.
    let (s, b) = k.submit(&request("t1", PANS[2], "OTHER")).await;
    assert_eq!(
        (s, b["errorCode"].as_str()),
        (409, Some("REQUEST_ALREADY_EXISTS")),
        "{b}"
    );
    assert_eq!(
        k.client.get("/v1/cards/t1/production").await.unwrap().body["status"],
        "READY"
    );
    // The same PAN while the first card waits.
    let (s, b) = k.submit(&request("t3", PANS[0], "JANE DOE")).await;
    assert_eq!(
        (s, b["errorCode"].as_str()),
        (409, Some("PAN_ALREADY_EXISTS")),
        "{b}"
    );
    // Another kiosk's request.
    let mut other = request("t4", PANS[3], "A B");
    other["kioskId"] = json!("KIOSK99");
    assert_eq!(k.submit(&other).await.1["errorCode"], "KIOSK_ID_NOT_FOUND");
    // A full queue (limit 4).
    for (i, (pan, name)) in PANS
        .iter()
        .zip(["", "ADA QUEUE", "BOB QUEUE", "CY QUEUE"])
        .enumerate()
        .skip(1)
    {
        let (s, b) = k.submit(&request(&format!("q{i}"), pan, name)).await;
        assert_eq!(s, 201, "{b}");
    }
    let (s, b) = k
        .submit(&request("q9", "4000001234567840", "DAN QUEUE"))
        .await;
    assert_eq!(
        (s, b["errorCode"].as_str()),
        (503, Some("UNABLE_TO_ACCEPT_REQUEST")),
        "{b}"
    );
    // Cancel one that waits; the ones produced later are the others, in order.
    let a = k.client.post("/v1/cards/q2/cancel", b"").await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    let a = k
        .client
        .post("/v1/cards/t1/validation", b"{\"accept\": 1}")
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.body["error"]["field"].as_str()),
        (400, Some("accept")),
        "{}",
        a.body
    );
    k.client
        .put("/v1/inventory/1", br#"{"cardType":"debit","count":20}"#)
        .await
        .unwrap();
    k.sim.clear(None);
    for t in ["t1", "q1", "q3"] {
        assert_eq!(k.final_state(t).await["status"], "PRODUCED", "{t}");
    }
    let cancelled = k.final_state("q2").await;
    assert_eq!(
        (
            cancelled["status"].as_str(),
            cancelled["errorCode"].as_str()
        ),
        (Some("REQUEST_ERROR"), Some("UNKNOWN_ERROR")),
        "{cancelled}"
    );
    assert_eq!(cancelled["description"], satellite::engine::view::CANCELLED);
    assert_eq!(k.sim.state().counters.taken, 3);
    let cancel_late = k.client.post("/v1/cards/t1/cancel", b"").await.unwrap();
    assert_eq!(
        cancel_late.status, 409,
        "a produced card cannot be cancelled"
    );
    k.stop().await;
}

/// The same request delivered again (its answer was lost, or it got "outcome
/// unknown") is answered as the first time, however its JSON is spaced or
/// ordered; another request with the same token is REQUEST_ALREADY_EXISTS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_request_again_gets_its_first_answer() {
    let k = kiosk("", true).await;
    let r = request("t1", PANS[0], "JANE DOE");
    let (s1, first) = k.submit(&r).await;
    assert_eq!(s1, 201, "{first}");
    // The same content, keys in another order and spaced out.
    let mut keys: Vec<(&String, &Value)> = r.as_object().unwrap().iter().collect();
    keys.reverse();
    let reordered = format!(
        "{{ {} }}",
        keys.iter()
            .map(|(k, v)| format!("\n  {} : {}", json!(k), v))
            .collect::<Vec<_>>()
            .join(" ,")
    );
    let again = k
        .client
        .post("/v1/cards", reordered.as_bytes())
        .await
        .unwrap();
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(again.body["status"], "READY", "{}", again.body);
    assert_eq!(
        again.body["occurredAt"], first["occurredAt"],
        "{}",
        again.body
    );
    // Another request under the same token is still refused.
    let (s, b) = k.submit(&request("t1", PANS[1], "JOHN DOE")).await;
    assert_eq!(
        (s, b["errorCode"].as_str()),
        (409, Some("REQUEST_ALREADY_EXISTS")),
        "{b}"
    );
    // A refused request sent again: the same refusal, at the same time.
    let mut bad = request("t2", PANS[2], "JOHN DOE");
    bad["pan"] = json!("4000001234567801");
    let (s, b1) = k.submit(&bad).await;
    assert_eq!(s, 422, "{b1}");
    let (s, b2) = k.submit(&bad).await;
    assert_eq!(s, 422, "{b2}");
    assert_eq!(
        (&b2["errorCode"], &b2["occurredAt"], &b2["description"]),
        (&b1["errorCode"], &b1["occurredAt"], &b1["description"]),
        "{b2}"
    );
    // One card, produced once.
    assert_eq!(k.final_state("t1").await["status"], "PRODUCED");
    let events = k.client.get("/v1/cards/t1").await.unwrap().body;
    let ready = events["events"]
        .as_array()
        .map(|e| e.iter().filter(|e| e["status"] == "READY").count());
    assert_eq!(ready, Some(1), "{events}");
    assert_eq!(k.sim.state().counters.taken, 1);
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reject_policy_refuses_while_the_printer_is_not_ready() {
    let k = kiosk("not_ready = \"reject\"", true).await;
    k.sim.raise("cover-open".parse::<Condition>().unwrap());
    k.printer_view(|v| v["notReady"]["code"] == "PRT_COVER_OPEN")
        .await;
    let (s, b) = k.submit(&request("t1", PANS[0], "JANE DOE")).await;
    assert_eq!(
        (s, b["errorCode"].as_str()),
        (503, Some("PRINTER_OR_SATELLITE_NOT_READY")),
        "{b}"
    );
    assert!(
        b["description"]
            .as_str()
            .unwrap()
            .contains("PRT_COVER_OPEN"),
        "{b}"
    );
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_counts_down_and_the_feeder_sensor_wins() {
    let k = kiosk("", true).await;
    k.submit(&request("t1", PANS[0], "JANE DOE")).await;
    assert_eq!(k.final_state("t1").await["status"], "PRODUCED");
    let inv = k.client.get("/v1/inventory").await.unwrap().body;
    assert_eq!(inv[0]["count"], 19, "{inv}");
    assert_eq!(
        (inv[0]["empty"].as_bool(), inv[0]["nearEmpty"].as_bool()),
        (Some(false), Some(false)),
        "{inv}"
    );
    assert_eq!(
        inv[1]["cardType"],
        Value::Null,
        "feeder 2 was never set: {inv}"
    );
    // The count says 19, the feeder is empty: the sensor wins, and the card
    // waits instead of failing (nothing is taken from an empty feeder).
    k.sim.raise("feeder-empty".parse::<Condition>().unwrap());
    let mut inv = Value::Null;
    for _ in 0..200 {
        inv = k.client.get("/v1/inventory").await.unwrap().body;
        if inv[0]["empty"] == true {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(inv[0]["empty"].as_bool(), Some(true), "{inv}");
    let (status, body) = k.submit(&request("t2", PANS[1], "JOHN DOE")).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body["errorCode"], "REQUEST_CREATED_BUT_NOT_STARTED",
        "{body}"
    );
    assert!(
        body["description"]
            .as_str()
            .is_some_and(|d| d.contains("PRD_FEEDER_EMPTY") && d.contains("feeder 1")),
        "{body}"
    );
    let mut st = Value::Null;
    for _ in 0..200 {
        st = k.client.get("/v1/status").await.unwrap().body;
        if st["state"] == "waiting_for_printer" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(st["engine"]["code"], "PRD_FEEDER_EMPTY", "{st}");
    assert_eq!(k.sim.state().counters.inserted, 1, "no card was taken");
    let a = k.client.get("/v1/cards/t2/production").await.unwrap().body;
    assert_eq!(a["status"], "READY", "{a}");
    // Cards loaded: the waiting card is produced.
    k.sim.clear(Some("feeder-empty"));
    assert_eq!(k.final_state("t2").await["status"], "PRODUCED");
    assert_eq!(k.sim.state().counters.inserted, 2);
    // Bad inventory input is refused with the field named.
    let a = k
        .client
        .put("/v1/inventory/1", br#"{"cardType":"debit"}"#)
        .await
        .unwrap();
    assert_eq!(
        (a.status, a.body["error"]["field"].as_str()),
        (400, Some("count")),
        "{}",
        a.body
    );
    let a = k
        .client
        .put("/v1/inventory/9", br#"{"cardType":"debit","count":1}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 409, "{}", a.body);
    k.stop().await;
}

#[test]
fn the_bench_command_runs_and_reports_its_figures() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_satellite"))
        .args(["bench", "--cards", "5", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cards"], 5);
    for k in ["cards_per_second", "cpu_ms_per_card", "peak_rss_kb"] {
        assert!(v[k].as_f64().is_some_and(|x| x > 0.0), "{k}: {v}");
    }
    for step in ["insert", "magnetic", "print", "present", "taken"] {
        assert!(v["steps"][step]["p99_ms"].as_f64().is_some(), "{step}: {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chip_is_personalised_through_pcsc_and_a_mute_chip_fails_the_card() {
    assert!(
        std::path::Path::new("/run/pcscd/pcscd.comm").exists(),
        "pcscd is not running: bash scripts/pcscd-up.sh"
    );
    let k = kiosk_with("", true, true).await;
    let mut r = request("c1", PANS[0], "JANE DOE");
    r["chipScript"] = json!([{ "apdu": "00A4040007A0000000031010", "expectSw": ["9000"] }, { "apdu": "80E2800004DEADBEEF" }]);
    // The offline PIN goes to the chip after the script (CHANGE REFERENCE DATA).
    r["pinBlock"] = json!("241234FFFFFFFFFF");
    let (s, b) = k.submit(&r).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(k.final_state("c1").await["status"], "PRODUCED");
    let chip = k.sim.state().cards[0]
        .chip
        .clone()
        .expect("the chip was in the reader");
    assert_eq!(
        chip.apdus, 3,
        "the script's two commands and the PIN: {chip:?}"
    );
    k.sim.raise("chip-mute".parse::<Condition>().unwrap());
    let mut r = request("c2", PANS[1], "JOHN DOE");
    r["chipScript"] = json!([{ "apdu": "00A4040007A0000000031010" }]);
    k.submit(&r).await;
    let p = k.final_state("c2").await;
    assert_eq!(p["errorCode"], "PRD_SMARTCARD", "{p}");
    let s = k.sim.state();
    assert_eq!((s.counters.taken, s.counters.rejected), (1, 1));
    k.stop().await;
}
