//! Crash safety: the daemon, a real process, is killed with SIGKILL at
//! pseudo-random moments of a multi-card run and started again, over and over.
//! The simulator (in this test process) outlives every kill and is the ground
//! truth: no card is produced twice, every accepted request ends in exactly
//! one final state, and PRODUCED is reported exactly for the cards the
//! simulator saw the customer take.

use printer_sim::{Customer, Place, SimConfig, Simulator};
use satellite::api::client::Client;
use satellite::store::Keys;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use tokio::process::{Child, Command};

const CARDS: usize = 10;
const KILLS: usize = 10;

/// 40000012345678N and its Luhn digit: a test range, no real card.
fn pan(i: usize) -> String {
    satellite::request::with_luhn_digit(&format!("40000012345678{i}")).unwrap()
}

fn holder(i: usize) -> String {
    format!("HOLDER {}", (b'A' + i as u8) as char)
}

async fn start(config: &Path, socket: &Path) -> Child {
    let _ = std::fs::remove_file(socket);
    let child = Command::new(env!("CARGO_BIN_EXE_satellite"))
        .args(["run", "--config"])
        .arg(config)
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..500 {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the daemon did not open its socket");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_daemon_at_random_moments_never_produces_a_card_twice() {
    let dir = tempfile::tempdir().unwrap();
    Keys::generate(&dir.path().join("card.key")).unwrap();
    let mut c = SimConfig::for_model("evolis-km500b").unwrap();
    c.speed = 0.05;
    c.customer = Customer::TakeAfter(40);
    let sim = Simulator::new(c);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .unwrap();
    let socket = dir.path().join("api.sock");
    let config = dir.path().join("satellite.toml");
    std::fs::write(
        &config,
        format!(
            r#"
kiosk_id = "KIOSK01"
[printer]
device = "{link}"
model = "evolis-km500b"
[printer.timeouts]
take = 3000
[chip]
enabled = false
[store]
path = "{db}"
key_file = "{key}"
[api]
socket = "{sock}"
[production]
queue_limit = 50
[[card_type]]
id = "debit"
magnetic = true
chip = false
emboss = false
colour = false
"#,
            link = link.display(),
            db = dir.path().join("s.db").display(),
            key = dir.path().join("card.key").display(),
            sock = socket.display(),
        ),
    )
    .unwrap();

    let mut daemon = start(&config, &socket).await;
    let client = Client::new(&socket);
    assert_eq!(
        client
            .put("/v1/inventory/1", br#"{"cardType":"debit","count":100}"#)
            .await
            .unwrap()
            .status,
        204
    );
    let mut tokens = Vec::new();
    for i in 0..CARDS {
        let token = format!("crash-{i}");
        let p = pan(i);
        let name = holder(i);
        let body = json!({
            "cardToken": token, "profileId": 1, "kioskId": "KIOSK01", "cardType": "debit",
            "issuerRequestId": format!("r{i}"), "cardId": format!("c{i}"), "pan": p, "expiry": "2812",
            "cardholderName": name,
            "printedLines": [{ "text": name, "slot": "name" }],
            "tracks": { "track2": format!("{p}=2812101") }
        });
        let a = client
            .post("/v1/cards", body.to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
        tokens.push(token);
    }

    // Kill at pseudo-random moments (a fixed seed: the run can be replayed).
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..KILLS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        tokio::time::sleep(Duration::from_millis(40 + state % 1200)).await;
        daemon.start_kill().unwrap();
        let _ = daemon.wait().await;
        daemon = start(&config, &socket).await;
    }

    // Let it finish.
    let mut finals = BTreeMap::new();
    for _ in 0..3000 {
        finals.clear();
        for t in &tokens {
            let p = client.get(&format!("/v1/cards/{t}")).await.unwrap().body;
            let status = p["production"]["status"].as_str().unwrap_or("").to_string();
            if matches!(status.as_str(), "PRODUCED" | "PRODUCTION_ERROR") {
                finals.insert(t.clone(), p);
            }
        }
        if finals.len() == tokens.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    daemon.start_kill().unwrap();
    assert_eq!(
        finals.len(),
        tokens.len(),
        "every accepted request ends in a final state"
    );

    // Exactly one final event per card.
    for (t, card) in &finals {
        let final_events = card["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| matches!(e["status"].as_str(), Some("PRODUCED" | "PRODUCTION_ERROR")))
            .count();
        assert_eq!(final_events, 1, "{t}: {card}");
    }
    // Ground truth: which physical card carried which holder.
    let state = sim.state();
    let mut physical: BTreeMap<String, Vec<Place>> = BTreeMap::new();
    for card in &state.cards {
        let name = card
            .text_lines
            .iter()
            .map(|l| l.text.clone())
            .find(|t| t.starts_with("HOLDER"))
            .unwrap_or_else(|| "(nothing printed)".into());
        physical.entry(name).or_default().push(card.place);
    }
    for (name, places) in &physical {
        if name.starts_with("HOLDER") {
            assert_eq!(
                places.len(),
                1,
                "{name} was produced on {} cards: {places:?}",
                places.len()
            );
        }
    }
    let taken: BTreeSet<String> = physical
        .iter()
        .filter(|(_, p)| p.contains(&Place::Taken))
        .map(|(n, _)| n.clone())
        .collect();
    let produced: BTreeSet<String> = finals
        .iter()
        .filter(|(_, c)| c["production"]["status"] == "PRODUCED")
        .map(|(t, _)| holder(t.trim_start_matches("crash-").parse().unwrap()))
        .collect();
    assert_eq!(
        produced, taken,
        "PRODUCED exactly for the cards the customer took"
    );
    for card in &state.cards {
        assert!(
            matches!(card.place, Place::Taken | Place::RejectBox),
            "a card was left at {:?}",
            card.place
        );
    }
    eprintln!(
        "crash run: {KILLS} kills, {} cards: {} produced, {} production errors; printer: {} inserted, {} taken, {} rejected",
        tokens.len(),
        produced.len(),
        tokens.len() - produced.len(),
        state.counters.inserted,
        state.counters.taken,
        state.counters.rejected
    );
}
