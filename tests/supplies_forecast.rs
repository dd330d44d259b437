//! Warn before production stops: the agent over a real pseudo-terminal to
//! the simulator, with a real store, produces cards until each supply (the
//! ribbon, the feeder, the reject box, cards until cleaning) crosses its
//! threshold, and the warning shows in `GET /v1/status` (the heartbeat's
//! body), `/metrics`, `satellite status` and `satellite doctor` while the
//! printer still produces; then cleaning falls due and production stops.
//! Every figure is checked against the simulator's own state.

mod common;

use common::kiosk;
use common::upstream::pan;
use printer_sim::Condition;
use serde_json::{json, Value};
use std::time::Duration;

use kiosk::cli;

fn request(token: &str, n: u32) -> Value {
    let pan = pan(n);
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

/// One supply's forecast in the health document.
fn supply<'a>(doc: &'a Value, name: &str, feeder: Option<u64>) -> &'a Value {
    doc["supplies"]["forecast"]
        .as_array()
        .unwrap_or_else(|| panic!("no forecast: {doc}"))
        .iter()
        .find(|s| s["supply"] == name && s["feeder"].as_u64() == feeder)
        .unwrap_or_else(|| panic!("no {name} in {doc}"))
}

struct Truth {
    ribbon: u64,
    reject_free: u64,
    cleaning_left: u64,
}

/// What the simulator says is left (capacity 4, cleaning required at twice
/// the interval of 3).
fn truth(sim: &printer_sim::Simulator) -> Truth {
    let s = sim.state();
    Truth {
        ribbon: u64::from(s.ribbon.cards_left),
        reject_free: u64::from(s.reject_box.capacity - s.reject_box.count),
        cleaning_left: 6u64.saturating_sub(u64::from(s.cleaning.cards_since)),
    }
}

/// Waits (bounded) until the published forecast agrees with the simulator:
/// the full reading that follows each card has been taken in.
async fn settled(k: &kiosk::Parts) -> Value {
    let mut last = Value::Null;
    for _ in 0..400 {
        let doc = k.client.get("/v1/status").await.unwrap().body;
        let t = truth(&k.sim);
        if supply(&doc, "ribbon", None)["left"].as_u64() == Some(t.ribbon)
            && supply(&doc, "reject_box", None)["left"].as_u64() == Some(t.reject_free)
            && supply(&doc, "cleaning", None)["left"].as_u64() == Some(t.cleaning_left)
        {
            return doc;
        }
        last = doc;
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the forecast never matched the simulator ({:?}): {}",
        k.sim.state().summary(),
        last["supplies"]
    );
}

async fn produce(k: &kiosk::Parts, token: &str, n: u32) -> Value {
    let a = k
        .client
        .post("/v1/cards", request(token, n).to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    for _ in 0..600 {
        let a = k
            .client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap();
        if matches!(
            a.body["status"].as_str(),
            Some("PRODUCED" | "PRODUCTION_ERROR")
        ) {
            return a.body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("card {token} never finished");
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The KM500B with a reject box of 4 cards.
const SMALL_BOX: &str = r#"
extends = "evolis-km500b"
[model]
id = "km500b-small-box"
name = "KM500B, reject box of 4"
model_reply = "KM500B"
[capabilities]
reject_box_capacity = 4
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_supply_warns_ahead_of_the_stop_everywhere_a_technician_looks() {
    let k = kiosk::start(
        |s| {
            s.ribbon_cards = 6;
            s.reject_capacity = 4;
            s.cleaning_interval = 3;
        },
        |dir, c| {
            // The kiosk's profile says what its reject box holds (the
            // simulator's is set to 4 above): a model file of its own.
            let profile = dir.join("km500b-small-box.toml");
            std::fs::write(&profile, SMALL_BOX).unwrap();
            c.printer.model = profile.display().to_string();
            c.printer.timeouts.take = Some(1500);
            c.supplies.ribbon_warn_cards = 5;
            c.supplies.feeder_warn_cards = 4;
            c.supplies.reject_warn_free = 2;
            c.supplies.cleaning_warn_cards = 3;
        },
    )
    .await;
    let config = k.dir.path().join("satellite.toml");
    std::fs::write(
        &config,
        satellite::config::Config::local_text(k.dir.path(), "KIOSK01", "sim"),
    )
    .unwrap();
    let a = k
        .client
        .put("/v1/inventory/1", br#"{"cardType":"debit","count":7}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 204, "{}", a.body);

    // Nothing produced yet: every supply above its threshold, no rate.
    let doc = settled(&k).await;
    for (name, feeder) in [
        ("ribbon", None),
        ("feeder", Some(1)),
        ("reject_box", None),
        ("cleaning", None),
    ] {
        let s = supply(&doc, name, feeder);
        assert_eq!(s["warning"], false, "{name}: {s}");
        assert!(s["hoursLeft"].is_null(), "no production yet: {s}");
    }
    assert_eq!(doc["supplies"]["warning"], false);
    // The agent marks the reject counter's first value (0: the box is
    // empty) once it has read it, within a second or so; the first
    // card waits for that.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Three good cards: the ribbon, the feeder and cleaning reach their
    // thresholds; the printer still produces.
    for i in 0..3 {
        assert_eq!(
            produce(&k, &format!("good-{i}"), i).await["status"],
            "PRODUCED"
        );
    }
    let doc = settled(&k).await;
    let t = truth(&k.sim);
    assert_eq!(doc["printer"]["ready"], true, "production goes on: {doc}");
    let ribbon = supply(&doc, "ribbon", None);
    assert_eq!(ribbon["left"].as_u64(), Some(t.ribbon));
    assert!(
        t.ribbon <= 5 && t.ribbon > 0,
        "the ribbon crossed 5: {}",
        t.ribbon
    );
    assert_eq!(
        (ribbon["warning"].as_bool(), ribbon["exhausted"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(ribbon["nextStep"], "bring a ribbon");
    // The rate: three blank cards over the six-hour window.
    let rate = doc["supplies"]["rate"]["cardsPerHour"].as_f64().unwrap();
    assert!((rate - 0.5).abs() < 1e-9, "{rate}");
    let hours = ribbon["hoursLeft"].as_f64().unwrap();
    assert!((hours - t.ribbon as f64 / rate).abs() < 1e-9, "{ribbon}");
    let feeder = supply(&doc, "feeder", Some(1));
    let stock = k.client.get("/v1/inventory").await.unwrap().body;
    assert_eq!(feeder["left"], stock[0]["count"], "{stock}");
    assert_eq!(feeder["left"].as_u64(), Some(4));
    assert_eq!(feeder["warning"], true);
    let cleaning = supply(&doc, "cleaning", None);
    assert_eq!(
        (cleaning["left"].as_u64(), cleaning["warning"].as_bool()),
        (Some(3), Some(true))
    );
    assert_eq!(supply(&doc, "reject_box", None)["warning"], false);
    assert_eq!(doc["supplies"]["warning"], true);

    // The same in /metrics, satellite status and satellite doctor.
    let (status, _, text) = k.client.get_text("/metrics").await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &text,
            r#"satellite_supply_level{supply="ribbon",level="warning"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, r#"satellite_supply_left{supply="ribbon"}"#),
        Some(t.ribbon as f64)
    );
    assert_eq!(
        metric(
            &text,
            r#"satellite_supply_level{supply="feeder",feeder="1",level="warning"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            r#"satellite_supply_level{supply="reject_box",level="ok"}"#
        ),
        Some(1.0)
    );
    let o = cli(&k.socket, &config, &["status"]).await;
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains(&format!("Ribbon: {} cards left", t.ribbon)) && out.contains("bring a ribbon"),
        "{out}"
    );
    assert!(out.contains("Cleaning: 3 cards until required"), "{out}");
    let o = cli(&k.socket, &config, &["doctor", "--json"]).await;
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    let check = |id: &str| {
        d["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}: {d}"))
            .clone()
    };
    for id in ["forecast-ribbon", "forecast-feeder-1", "forecast-cleaning"] {
        let c = check(id);
        assert_eq!(c["result"], "WARN", "{c}");
        assert!(!c["remedy"].as_str().unwrap().is_empty(), "{c}");
    }
    assert_eq!(check("forecast-reject-box")["result"], "PASS");

    // Two cards refused by the encoder go to the reject box: its free
    // slots reach the threshold, and production still goes on.
    k.sim
        .raise("mag-read-mismatch".parse::<Condition>().unwrap());
    for i in 0..2 {
        assert_eq!(
            produce(&k, &format!("spoilt-{i}"), 10 + i).await["status"],
            "PRODUCTION_ERROR"
        );
    }
    k.sim.clear(Some("mag-read-mismatch"));
    let doc = settled(&k).await;
    assert_eq!(k.sim.state().reject_box.count, 2);
    let rb = supply(&doc, "reject_box", None);
    assert_eq!(
        (rb["left"].as_u64(), rb["warning"].as_bool()),
        (Some(2), Some(true)),
        "{rb}"
    );
    assert!(
        rb["nextStep"]
            .as_str()
            .unwrap()
            .contains("empty the reject box"),
        "{rb}"
    );
    assert_eq!(doc["printer"]["ready"], true, "production goes on: {doc}");
    let o = cli(&k.socket, &config, &["doctor", "--json"]).await;
    let d: Value = serde_json::from_slice(&o.stdout).unwrap();
    let rbc = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "forecast-reject-box")
        .unwrap()
        .clone();
    assert_eq!(rbc["result"], "WARN", "{rbc}");

    // The technician empties the box and says so: its free slots count
    // from the printer's reject counter again.
    k.sim.clear(Some("reject-full"));
    let o = cli(
        &k.socket,
        &config,
        &["inventory", "reject-box", "--emptied"],
    )
    .await;
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc = settled(&k).await;
    let rb = supply(&doc, "reject_box", None);
    assert_eq!(
        (rb["left"].as_u64(), rb["warning"].as_bool()),
        (Some(4), Some(false)),
        "{rb}"
    );

    // One more good card: cleaning falls due, exactly as forecast, and
    // production stops; the forecast says exhausted with the next step.
    assert_eq!(produce(&k, "last", 20).await["status"], "PRODUCED");
    let doc = settled(&k).await;
    assert!(k.sim.state().cleaning.required);
    let cleaning = supply(&doc, "cleaning", None);
    assert_eq!(
        (cleaning["left"].as_u64(), cleaning["exhausted"].as_bool()),
        (Some(0), Some(true))
    );
    assert!(cleaning["nextStep"]
        .as_str()
        .unwrap()
        .contains("satellite printer clean"));
    for _ in 0..200 {
        if k.client.get("/v1/status").await.unwrap().body["printer"]["ready"] == false {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let doc = k.client.get("/v1/status").await.unwrap().body;
    assert_eq!(doc["printer"]["ready"], false, "production stops: {doc}");
    // No blank card is spent on the refusal the forecast announced: a card
    // submitted now waits.
    let a = k
        .client
        .post("/v1/cards", request("waits", 30).to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let p = k
        .client
        .get("/v1/cards/waits/production")
        .await
        .unwrap()
        .body;
    assert_eq!(p["status"], "READY", "{p}");
    let inserted = k.sim.state().counters.inserted;
    assert_eq!(inserted, 6, "three good, two spoilt, one last");
    k.daemon.stop().await;
}
