//! `satellite demo`: the main job on the bundled simulator. Starts a simulated
//! kiosk printer and the daemon in a temporary directory, submits a handful of
//! cards through the local API (some meet faults), prints every status change
//! as it happens, and ends with a summary checked against the simulator.

use crate::api::client::Client;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::printer::Endpoint;
use crate::store::Keys;
use printer_sim::{Condition, Customer, SimConfig, Simulator};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Card {
    label: &'static str,
    request: Value,
    /// Set the simulator up before this card.
    before: fn(&Simulator),
    /// And back after it.
    after: fn(&Simulator),
}

fn nothing(_: &Simulator) {}

/// Test-range PANs (they pass Luhn; no real card has them).
const PANS: [&str; 6] = [
    "4000001234567899",
    "4000001234567808",
    "4000001234567816",
    "4000001234567824",
    "4000001234567832",
    "4000001234567840",
];

fn request(token: &str, pan: &str, name: &str, with_chip: bool) -> Value {
    let mut r = json!({
        "cardToken": token,
        "profileId": 123456,
        "kioskId": "DEMO0001",
        "cardType": if with_chip { "debit-chip" } else { "debit" },
        "issuerRequestId": format!("req-{token}"),
        "cardId": format!("card-{token}"),
        "pan": pan,
        "expiry": "2812",
        "cardholderName": name,
        "printedLines": [
            { "text": format!("{} {} {} {}", &pan[0..4], &pan[4..8], &pan[8..12], &pan[12..16]), "slot": "pan" },
            { "text": name, "slot": "name" }
        ],
        "tracks": {
            "track1": format!("B{pan}^{}^2812101", name.replace(' ', "/")),
            "track2": format!("{pan}=2812101")
        }
    });
    if with_chip {
        r["chipScript"] = json!([
            { "apdu": "00A4040007A0000000031010", "expectSw": ["9000"] },
            { "apdu": "80E2800004DEADBEEF", "expectSw": ["9000"] }
        ]);
    }
    r
}

pub async fn run() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // Chip cards need pcscd (its socket) and its client library.
    let pcscd = std::path::Path::new("/run/pcscd/pcscd.comm").exists();
    let pcsc = pcscd && crate::chip::pcsc_library_available();
    let mut sim_config = SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string())?;
    sim_config.speed = 0.05;
    sim_config.customer = Customer::TakeAfter(600);
    if pcsc {
        sim_config.vpcd = Some("127.0.0.1:35963".parse().expect("address"));
    }
    let sim = Simulator::new(sim_config);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    Keys::generate(&dir.path().join("card.key")).map_err(|e| e.to_string())?;
    let mut config = Config::local(dir.path(), "DEMO0001");
    config.printer.timeouts.take = Some(4000);
    config.chip.enabled = pcsc;
    config.chip.card_wait_ms = 2000;
    let mut chip_type = config.card_types[0].clone();
    chip_type.id = "debit-chip".into();
    chip_type.chip = true;
    config.card_types.push(chip_type);
    let socket = config.api.socket.clone();
    println!("satellite demo");
    println!(
        "  printer  simulated Evolis KM500B behind {} (a real pseudo-terminal)",
        link.display()
    );
    println!("  agent    local API on {}", socket.display());
    println!(
        "  chip     {}",
        if pcsc {
            "personalised through pcscd (the simulator plays the card for vpcd)"
        } else if pcscd {
            "PC/SC library libpcsclite.so.1 not found: chip cards left out (install libpcsclite1 to include them)"
        } else {
            "pcscd not running here: chip cards left out (bash scripts/pcscd-up.sh to include them)"
        }
    );
    println!();
    let daemon = Daemon::start(config, Some(Endpoint::Serial(link))).await?;
    let client = Client::new(&socket);
    let put = client
        .put("/v1/inventory/1", br#"{"cardType": "debit", "count": 50}"#)
        .await?;
    if put.status != 204 {
        return Err(format!("setting the inventory failed: {}", put.body));
    }
    if pcsc {
        client
            .put(
                "/v1/inventory/2",
                br#"{"cardType": "debit-chip", "count": 50}"#,
            )
            .await?;
    }

    let chip = pcsc;
    let mut bad_pan = request("demo-2", PANS[1], "JOHN SMITH", false);
    bad_pan["pan"] = json!("4000001234567801");
    let cards = vec![
        Card {
            label: "a debit card",
            request: request("demo-1", PANS[0], "JANE DOE", chip),
            before: nothing,
            after: nothing,
        },
        Card {
            label: "a PAN that fails Luhn",
            request: bad_pan,
            before: nothing,
            after: nothing,
        },
        Card {
            label: "the stripe reads back wrong",
            request: request("demo-3", PANS[2], "ADA LOVELACE", false),
            before: |s| s.raise(Condition::MagReadMismatch),
            after: |s| s.clear(None),
        },
        Card {
            label: "the customer walks away",
            request: request("demo-4", PANS[3], "ALAN TURING", false),
            before: |s| s.set_customer(Customer::Never),
            after: |s| s.set_customer(Customer::TakeAfter(600)),
        },
        Card {
            label: "the same request twice",
            request: request("demo-1", PANS[4], "JANE DOE", false),
            before: nothing,
            after: nothing,
        },
        Card {
            label: "another debit card",
            request: request("demo-6", PANS[5], "GRACE HOPPER", chip),
            before: nothing,
            after: nothing,
        },
    ];
    let start = Instant::now();
    let mut summary = Vec::new();
    for card in &cards {
        let token = card.request["cardToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        println!("── {token}: {}", card.label);
        (card.before)(&sim);
        let answer = client
            .post("/v1/cards", card.request.to_string().as_bytes())
            .await?;
        let end = if answer.status != 201 {
            let line = format!(
                "{} {}",
                answer.body["errorCode"].as_str().unwrap_or("?"),
                answer.body["description"].as_str().unwrap_or("")
            );
            println!(
                "  [{:>6.2}s] REQUEST_ERROR {line}",
                start.elapsed().as_secs_f32()
            );
            (
                "REQUEST_ERROR".to_string(),
                answer.body["errorCode"].as_str().unwrap_or("").to_string(),
            )
        } else {
            follow(&client, &token, start).await?
        };
        (card.after)(&sim);
        summary.push((token, card.label, end));
    }
    println!();
    println!("{:<8} {:<30} {:<18} code", "card", "case", "status");
    for (token, label, (status, code)) in &summary {
        println!("{token:<8} {label:<30} {status:<18} {code}");
    }
    let s = sim.state();
    println!();
    println!(
        "printer (simulator's own count): {} inserted, {} presented, {} taken by customers, {} in the reject box",
        s.counters.inserted, s.counters.presented, s.counters.taken, s.counters.rejected
    );
    let produced = summary
        .iter()
        .filter(|(_, _, (st, _))| st == "PRODUCED")
        .count() as u64;
    daemon.stop().await;
    if produced != s.counters.taken {
        return Err(format!(
            "{produced} cards reported PRODUCED but the printer saw {} taken",
            s.counters.taken
        ));
    }
    Ok(())
}

/// Prints each status change of a card until it is final.
async fn follow(client: &Client, token: &str, start: Instant) -> Result<(String, String), String> {
    let mut seen = 0usize;
    loop {
        let a = client.get(&format!("/v1/cards/{token}")).await?;
        let events = a.body["events"].as_array().cloned().unwrap_or_default();
        for e in events.iter().skip(seen) {
            let status = e["status"].as_str().unwrap_or("?");
            let step = e["step"]
                .as_str()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let code = e["errorCode"]
                .as_str()
                .map(|c| format!(" {c}: {}", e["description"].as_str().unwrap_or("")))
                .unwrap_or_default();
            println!(
                "  [{:>6.2}s] {status}{step}{code}",
                start.elapsed().as_secs_f32()
            );
        }
        seen = events.len();
        let status = a.body["production"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if matches!(
            status.as_str(),
            "PRODUCED" | "PRODUCTION_ERROR" | "REQUEST_ERROR"
        ) {
            return Ok((
                status,
                a.body["production"]["errorCode"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}
