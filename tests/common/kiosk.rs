//! The whole agent as a kiosk runs it: the daemon with its real SQLite store,
//! the simulator over a real pseudo-terminal, and a client of the local API
//! over its Unix socket. Each test file wraps it with what it asks of it.

use printer_sim::{Customer, SimConfig, Simulator};
use satellite::api::client::Client;
use satellite::config::Config;
use satellite::daemon::Daemon;
use satellite::printer::Endpoint;
use satellite::store::Keys;
use std::path::{Path, PathBuf};

pub struct Parts {
    pub sim: Simulator,
    pub daemon: Daemon,
    pub client: Client,
    pub socket: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Starts a kiosk in a temporary directory: the simulator of the KM500B at
/// speed 0 with a customer who takes a card after 50 ms, adjusted by `sim`;
/// `Config::local` for kiosk KIOSK01, adjusted by `cfg` (given the directory).
pub async fn start(
    sim: impl FnOnce(&mut SimConfig),
    cfg: impl FnOnce(&Path, &mut Config),
) -> Parts {
    let dir = tempfile::tempdir().unwrap();
    Keys::generate(&dir.path().join("card.key")).unwrap();
    let mut c = SimConfig::for_model("evolis-km500b").unwrap();
    c.speed = 0.0;
    c.customer = Customer::TakeAfter(50);
    sim(&mut c);
    let sim = Simulator::new(c);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .unwrap();
    let mut config = Config::local(dir.path(), "KIOSK01");
    cfg(dir.path(), &mut config);
    let daemon = Daemon::start(config, Some(Endpoint::Serial(link)))
        .await
        .unwrap();
    let socket = dir.path().join("api.sock");
    Parts {
        sim,
        daemon,
        client: Client::new(&socket),
        socket,
        dir,
    }
}

/// The chip through the real PC/SC stack: pcscd, the vpcd virtual reader,
/// and the simulator playing the card.
pub fn chip_on_sim(c: &mut SimConfig) {
    c.vpcd = Some(super::VPCD.parse().unwrap());
}

/// Chip personalisation on, for every card type.
pub fn chip_on_agent(c: &mut Config) {
    c.chip.enabled = true;
    c.chip.card_wait_ms = 2000;
    for t in &mut c.card_types {
        t.chip = true;
    }
}

/// Feeder 1 holds 20 cards of type `debit`, as a technician sets it.
pub async fn stock(client: &Client) {
    let a = client
        .put("/v1/inventory/1", br#"{"cardType":"debit","count":20}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 204, "{}", a.body);
}

/// A production request for kiosk KIOSK01: a card of `card_type` for JANE
/// DOE, her name printed, both tracks.
pub fn request_of(token: &str, pan: &str, card_type: &str) -> serde_json::Value {
    serde_json::json!({
        "cardToken": token,
        "profileId": 42,
        "kioskId": "KIOSK01",
        "cardType": card_type,
        "issuerRequestId": format!("req-{token}"),
        "cardId": format!("card-{token}"),
        "pan": pan,
        "expiry": "2812",
        "cardholderName": "JANE DOE",
        "printedLines": [{ "text": "JANE DOE", "slot": "name" }],
        "tracks": { "track1": format!("B{pan}^DOE/JANE^2812101"), "track2": format!("{pan}=2812101") }
    })
}

/// The same for card type `debit`.
pub fn request(token: &str, pan: &str) -> serde_json::Value {
    request_of(token, pan, "debit")
}

/// `satellite ARGS --socket S --config C` as a technician runs it, off the
/// async threads, without colour.
pub async fn cli(socket: &Path, config: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_satellite"));
    cmd.args(args)
        .arg("--socket")
        .arg(socket)
        .arg("--config")
        .arg(config)
        .env_remove("SATELLITE_SOCKET")
        .env_remove("SATELLITE_CONFIG")
        .env("NO_COLOR", "1");
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}
