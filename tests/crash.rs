//! Crash safety: the daemon, a real process, is killed with SIGKILL at
//! pseudo-random moments of a multi-card run and started again, over and over.
//! The simulator (in this test process) outlives every kill and is the ground
//! truth: no card is produced twice, every accepted request ends in exactly
//! one final state, and PRODUCED is reported exactly for the cards the
//! simulator saw the customer take. Each kill's landing (the card in
//! production and its step, read from the store the killed daemon left) is
//! printed as a table, and the run fails unless enough kills caught a card
//! in production: it cannot pass without exercising recovery.

mod common;

use printer_sim::{Customer, Place, SimConfig, Simulator};
use satellite::api::client::Client;
use satellite::store::{Keys, Phase, Status, Store};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use tokio::process::{Child, Command};

const CARDS: usize = 14;
const KILLS: usize = 10;
/// A kill comes up to this long after a card is seen in production: about
/// a card's time at the simulator's speed, so kills spread over its steps.
const KILL_WINDOW_MS: u64 = 1500;
/// The customer's time to take a presented card: about a restart's time,
/// so that some customers take the card while recovery is rejecting it. The
/// reject is checked against the reject counter: such a card is PRODUCED.
const CUSTOMER_MS: u64 = 40;
/// Kills that must catch a card IN_PROGRESS: otherwise the run proved
/// nothing about recovery.
const MIN_KILLS_IN_PRODUCTION: usize = KILLS / 2;

/// Where one kill landed, read from the store the killed daemon left.
struct Landing {
    after_ms: u64,
    /// The card IN_PROGRESS at the kill: its token, the last step journaled,
    /// and whether that step's outcome was journaled too (false: the step
    /// was under way).
    card: Option<(String, String, bool)>,
    waiting: usize,
    done: usize,
}

/// Reads where the daemon was when it was killed: the store as it left it
/// (the process is gone; nothing else writes it until the next start).
fn landing(db: &Path, key: &Path, tokens: &[String], after_ms: u64) -> Landing {
    let store = Store::open(db, Keys::load(key).unwrap()).unwrap();
    let in_progress = store.in_progress().unwrap();
    assert!(
        in_progress.len() <= 1,
        "one card at a time: {:?}",
        in_progress
            .iter()
            .map(|j| &j.meta.card_token)
            .collect::<Vec<_>>()
    );
    let card = in_progress.first().map(|job| {
        let journal = store.journal(&job.meta.card_token).unwrap();
        match journal.last() {
            Some(e) => (
                job.meta.card_token.clone(),
                e.step.clone(),
                e.phase == Phase::Outcome,
            ),
            None => (job.meta.card_token.clone(), "(started)".into(), true),
        }
    });
    let mut waiting = 0;
    let mut done = 0;
    for t in tokens {
        match store.job(t).unwrap().map(|j| j.status) {
            Some(Status::Ready) => waiting += 1,
            Some(Status::Produced | Status::ProductionError) => done += 1,
            _ => {}
        }
    }
    Landing {
        after_ms,
        card,
        waiting,
        done,
    }
}

/// 4000001234567NN and its Luhn digit: a test range, no real card.
fn pan(i: usize) -> String {
    satellite::request::with_luhn_digit(&format!("4000001234567{i:02}")).unwrap()
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
    // A customer takes a card CUSTOMER_MS after it reaches the bezel.
    c.customer = Customer::TakeAfter(CUSTOMER_MS);
    let sim = Simulator::new(c);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .unwrap();
    let socket = dir.path().join("api.sock");
    let config = dir.path().join("satellite.toml");
    std::fs::write(&config, common::daemon_toml("KIOSK01", &link, dir.path())).unwrap();

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

    // Kill at pseudo-random moments (a fixed seed: the run can be replayed):
    // a pseudo-random time after the daemon is seen producing a card, so
    // that kills land on every step of a card and between cards, not on an
    // idle daemon whose queue has run dry. Each kill's landing is read from
    // the store the daemon left behind.
    let (db, key) = (dir.path().join("s.db"), dir.path().join("card.key"));
    let mut landings = Vec::new();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = 0;
    for _ in 0..KILLS {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // The oldest card not final yet is the one produced next (in order).
        for _ in 0..1000 {
            let mut status = String::new();
            while next < tokens.len() {
                let p = client
                    .get(&format!("/v1/cards/{}/production", tokens[next]))
                    .await
                    .unwrap()
                    .body;
                status = p["status"].as_str().unwrap_or("").to_string();
                if matches!(status.as_str(), "PRODUCED" | "PRODUCTION_ERROR") {
                    next += 1;
                } else {
                    break;
                }
            }
            if next == tokens.len() || status == "IN_PROGRESS" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let after_ms = state % KILL_WINDOW_MS;
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        daemon.start_kill().unwrap();
        let _ = daemon.wait().await;
        landings.push(landing(&db, &key, &tokens, after_ms));
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
    // Where each kill landed, and what became of the card it caught.
    eprintln!(
        "kill  ms after a card was seen  {:<40}  {:<16}  waiting  done",
        "landed", "the card ended"
    );
    for (i, l) in landings.iter().enumerate() {
        let at = match &l.card {
            Some((t, step, true)) => format!("{t} IN_PROGRESS, after {step}"),
            Some((t, step, false)) => format!("{t} IN_PROGRESS, during {step}"),
            None if l.waiting > 0 => "between cards".to_string(),
            None => "no card left".to_string(),
        };
        let ended = l
            .card
            .as_ref()
            .and_then(|(t, _, _)| finals.get(t))
            .and_then(|c| c["production"]["status"].as_str())
            .unwrap_or("");
        eprintln!(
            "{:>4}  {:>24}  {at:<40}  {ended:<16}  {:>7}  {:>4}",
            i + 1,
            l.after_ms,
            l.waiting,
            l.done
        );
    }
    let in_production = landings.iter().filter(|l| l.card.is_some()).count();
    assert!(
        in_production >= MIN_KILLS_IN_PRODUCTION,
        "only {in_production} of {KILLS} kills caught a card in production: the run did not exercise recovery"
    );
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
    if produced != taken {
        // What the agent and the printer each say of the cards they disagree on.
        let mut why = String::new();
        for name in produced.symmetric_difference(&taken) {
            let i = (name.as_bytes()[7] - b'A') as usize;
            let t = format!("crash-{i}");
            why += &format!("\n{name} ({t}): agent: {}", finals[&t]["events"]);
            for card in &state.cards {
                if card.text_lines.iter().any(|l| &l.text == name) {
                    why += &format!("\n  printer: {:?}", card.events);
                }
            }
        }
        panic!("PRODUCED exactly for the cards the customer took: produced {produced:?}, taken {taken:?}{why}");
    }
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
