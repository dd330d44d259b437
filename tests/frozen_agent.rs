//! The agent frozen in the middle of a step (SIGSTOP, as a VM pause or a
//! debugger would) for longer than the step's time-out, while the printer's
//! answer already waits on the line: the real binary (`satellite run`), the
//! simulator over a real pseudo-terminal (through the relay, which holds the
//! command's last byte until the agent is stopped), a real SQLite store. The
//! answer that came during the freeze must win over the clock: the card is
//! PRODUCED and the simulator saw the customer take it, never the reject box.

mod common;

use common::relay::Relay;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use printer_sim::{Customer, Place, SimConfig, Simulator};
use satellite::api::client::Client;
use satellite::store::Keys;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// The magnetic write's time-out in this test: the freeze lasts longer.
const MAGNETIC_MS: u64 = 1500;
/// How long the agent stays stopped: well past the write's time-out (and
/// past a resynchronisation's probes), with its answer on the line.
const FREEZE: Duration = Duration::from_millis(2 * MAGNETIC_MS + 500);

async fn start(config: &Path, socket: &Path, log: &Path) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_satellite"))
        .args(["run", "--config"])
        .arg(config)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("JOURNAL_STREAM")
        .env_remove("RUST_LOG")
        .stderr(std::fs::File::create(log).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    for _ in 0..1000 {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return child;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the agent did not open its socket");
}

fn signal(child: &Child, s: Signal) {
    kill(Pid::from_raw(child.id().unwrap() as i32), s).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_came_while_the_agent_was_frozen_wins_over_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    Keys::generate(&dir.path().join("card.key")).unwrap();
    let mut c = SimConfig::for_model("evolis-km500b").unwrap();
    c.speed = 0.0;
    c.customer = Customer::TakeAfter(50);
    let sim = Simulator::new(c);
    let relay = Relay::start(&sim);
    let config = dir.path().join("satellite.toml");
    let toml = common::daemon_toml("KIOSK01", &relay.path, dir.path()).replace(
        "take = 3000",
        &format!("take = 3000\ncommand = 500\nmagnetic = {MAGNETIC_MS}"),
    );
    std::fs::write(&config, toml).unwrap();
    let socket = dir.path().join("api.sock");
    let log = dir.path().join("agent.log");
    let agent = start(&config, &socket, &log).await;
    let client = Client::new(&socket);
    let a = client
        .put("/v1/inventory/1", br#"{"cardType":"debit","count":10}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 204, "{}", a.body);

    // Hold the magnetic write's last byte (its terminator) in the relay: the
    // agent has sent the command and waits for the answer; the printer has
    // not seen it whole yet.
    relay.freeze_after(b"\x1bSmw");
    let pan = satellite::request::with_luhn_digit("400000123456789").unwrap();
    let body = json!({
        "cardToken": "frozen-1", "profileId": 1, "kioskId": "KIOSK01", "cardType": "debit",
        "issuerRequestId": "r-frozen-1", "cardId": "c-frozen-1", "pan": pan, "expiry": "2812",
        "cardholderName": "ADA LOVELACE",
        "printedLines": [{ "text": "ADA LOVELACE", "slot": "name" }],
        "tracks": { "track2": format!("{pan}=2812101") }
    });
    let a = client
        .post("/v1/cards", body.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let until = Instant::now() + Duration::from_secs(20);
    while !relay.is_frozen() {
        assert!(
            Instant::now() < until,
            "the magnetic write never came:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The agent is stopped within its time-out (the write went out
    // milliseconds ago); then the printer gets the command and answers at
    // once, onto the line of an agent that cannot read it.
    signal(&agent, Signal::SIGSTOP);
    let stopped = Instant::now();
    relay.thaw();
    let encoded = Instant::now() + Duration::from_secs(5);
    while sim.state().card(1).is_none_or(|c| c.tracks.is_empty()) {
        assert!(
            Instant::now() < encoded,
            "the printer never encoded the card: {:?}",
            sim.state().card(1)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(FREEZE.saturating_sub(stopped.elapsed())).await;
    signal(&agent, Signal::SIGCONT);

    let mut production = json!(null);
    for _ in 0..1000 {
        production = client
            .get("/v1/cards/frozen-1/production")
            .await
            .unwrap()
            .body;
        if matches!(
            production["status"].as_str(),
            Some("PRODUCED" | "PRODUCTION_ERROR")
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let state = sim.state();
    let card = state.card(1);
    assert_eq!(
        production["status"],
        "PRODUCED",
        "a good card was not produced after a {FREEZE:?} freeze: {production}\ncard 1: {:?}\n{log}",
        card.map(|c| (c.place, &c.events))
    );
    // Ground truth: the customer has it, nothing went to the reject box,
    // and it was the only card taken from the feeder.
    assert_eq!(card.map(|c| c.place), Some(Place::Taken), "{:?}", card);
    assert_eq!(state.counters.rejected, 0, "{}", state.summary());
    assert_eq!(state.counters.taken, 1, "{}", state.summary());
    assert_eq!(state.cards.len(), 1, "{}", state.summary());
    // And the agent did not take the answer for a time-out at all: the
    // freeze did outlast the deadline, and the answer on the line won.
    assert!(!log.contains("PRT_TIMEOUT"), "{log}");
    assert!(
        log.contains("the answer was on the line when its time-out fell due"),
        "the freeze did not outlast the write's time-out:\n{log}"
    );
}
