//! A card is settled only by the printer that holds it. The daemon with its
//! real SQLite store, printer A (a simulator) over a real pseudo-terminal;
//! A drops off the link just before a step of card 1 and printer B (another
//! simulator, another serial number) takes its place behind the same path,
//! live or while the agent is down. Asserted against both simulators' record
//! of where each card physically went: no card is recorded PRODUCED that the
//! customer did not take from the printer that made it; the card waits for a
//! technician with a description naming both printers and the card; no card
//! starts on B until it is resolved; then production goes on, on B.

mod common;

use common::kiosk;
use printer_sim::{Customer, Place, Scenario, SimConfig, Simulator};
use satellite::api::client::Client;
use satellite::config::Config;
use satellite::daemon::Daemon;
use satellite::printer::Endpoint;
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

const A: &str = "PRN-A-0001";
const B: &str = "PRN-B-0002";
const PAN1: &str = "4000001234567899";
const PAN2: &str = "4000001234567808";
/// The scenario's names of the steps of a card (`eject`: presented, `take`:
/// waiting in the bezel).
const STEPS: [&str; 5] = ["insert", "magnetic", "print", "eject", "take"];

struct Kiosk {
    a: Simulator,
    b: Option<Simulator>,
    daemon: Option<Daemon>,
    client: Client,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

/// Short printer time-outs, as in `tests/in_doubt.rs`.
fn configure(cfg: &mut Config) {
    cfg.printer.timeouts.take = Some(1500);
    cfg.printer.timeouts.command = Some(600);
    cfg.printer.timeouts.movement = Some(1000);
    cfg.printer.timeouts.magnetic = Some(1000);
    cfg.printer.timeouts.print = Some(1500);
}

/// A kiosk on printer A, which leaves the link (for the length of the test)
/// just before `step` of card 1 when `step` is given. A's customer never
/// takes a card: a card left in its bezel stays there.
async fn kiosk(step: Option<&str>) -> Kiosk {
    if std::env::var_os("SWAP_LOG").is_some() {
        satellite::logging::init(2, satellite::logging::Quiet::No);
    }
    let p = kiosk::start(
        |c| {
            c.serial = A.into();
            if step.is_some() {
                c.customer = Customer::Never;
            }
            // The scenario's "take" fires as the customer takes the card:
            // waiting in the bezel is [`Kiosk::drop_a_when_presented`].
            if let Some(step) = step.filter(|s| *s != "take") {
                let s = format!(
                    "[[at]]\ncard = 1\nstep = \"{step}\"\nraise = \"unreachable:600000\"\n"
                );
                c.scenario = Some(Scenario::parse("swap", &s).unwrap());
            }
        },
        |_, cfg| configure(cfg),
    )
    .await;
    kiosk::stock(&p.client).await;
    Kiosk {
        a: p.sim,
        b: None,
        daemon: Some(p.daemon),
        client: p.client,
        socket: p.socket,
        dir: p.dir,
    }
}

use kiosk::request;

impl Kiosk {
    fn link(&self) -> PathBuf {
        self.dir.path().join("printer")
    }

    fn b(&self) -> &Simulator {
        self.b.as_ref().expect("printer B is in place")
    }

    /// Printer B, another serial number, takes A's place behind the link.
    async fn swap(&mut self) {
        if !self
            .a
            .state()
            .conditions
            .iter()
            .any(|c| c.starts_with("unreachable"))
        {
            self.a.raise("unreachable:600000".parse().unwrap());
        }
        let b = new_printer_b();
        b.serve_pty(Some(&self.link())).await.unwrap();
        self.b = Some(b);
    }

    /// Card 1 goes into doubt as printer A leaves the link before `step`
    /// (for `take`: once the card waits in A's bezel, untaken).
    async fn card_1_caught_before(&self, step: &str) {
        self.submit("c1", PAN1).await;
        if step == "take" {
            for _ in 0..2000 {
                if self.a.state().bezel.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            assert!(self.a.state().bezel.is_some(), "card 1 never presented");
            self.a.raise("unreachable:600000".parse().unwrap());
        }
        // A is gone: the card is in doubt while no printer answers.
        self.engine_until("the card in doubt", |e| e["state"] == "card_in_doubt")
            .await;
    }

    async fn submit(&self, token: &str, pan: &str) -> Value {
        let a = self
            .client
            .post("/v1/cards", request(token, pan).to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
        a.body
    }

    async fn production(&self, token: &str) -> Value {
        self.client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap()
            .body
    }

    async fn status(&self) -> Value {
        self.client.get("/v1/status").await.unwrap().body
    }

    async fn engine_until(&self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        for _ in 0..1000 {
            let e = self.status().await["engine"].clone();
            if ok(&e) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the engine never showed {what}: {}", self.status().await);
    }

    async fn final_status(&self, token: &str, label: &str) -> Value {
        for _ in 0..1000 {
            let p = self.production(token).await;
            if matches!(p["status"].as_str(), Some("PRODUCED" | "PRODUCTION_ERROR")) {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{label}: card {token} never final: {} / {}",
            self.production(token).await,
            self.status().await
        );
    }

    /// Runs `satellite ARGS --socket SOCKET`, as a technician would.
    async fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_satellite"));
        cmd.args(args).arg("--socket").arg(&self.socket);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    async fn start_daemon(&mut self) {
        let mut cfg = Config::local(self.dir.path(), "KIOSK01");
        configure(&mut cfg);
        let link = Endpoint::Serial(self.link());
        self.daemon = Some(Daemon::start(cfg, Some(link)).await.unwrap());
    }

    async fn stop_daemon(&mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }
}

fn new_printer_b() -> Simulator {
    let mut c = SimConfig::for_model("evolis-km500b").unwrap();
    c.speed = 0.0;
    c.customer = Customer::TakeAfter(50);
    c.serial = B.into();
    Simulator::new(c)
}

/// Card 1 waits for a technician, its description naming both printers and
/// the card (masked PAN only); nothing starts on B meanwhile (card 2 waits);
/// once the technician says the card was taken out, card 1 ends
/// PRODUCTION_ERROR and card 2 is produced on B. Returns card 1's end.
async fn technician_then_production_on_b(k: &Kiosk, label: &str, cause: &str) -> Value {
    let engine = k
        .engine_until("a card for a technician", |e| {
            e["state"] == "card_in_doubt" && e["technician"] == true
        })
        .await;
    eprintln!("{label}: {engine}");
    assert_eq!(engine["card"], "c1", "{label}: {engine}");
    let reason = engine["reason"].as_str().unwrap();
    for said in [A, B, "c1", "400000******7899", cause] {
        assert!(reason.contains(said), "{label}: {said:?} in {reason}");
    }
    assert!(
        !reason.contains(PAN1),
        "{label}: never a full PAN: {reason}"
    );
    assert_eq!(k.production("c1").await["status"], "IN_PROGRESS");
    // A second card is accepted but does not start on the new printer.
    let queued = k.submit("c2", PAN2).await;
    assert_eq!(
        queued["errorCode"], "REQUEST_CREATED_BUT_NOT_STARTED",
        "{label}: {queued}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let b = k.b().state();
    assert!(
        b.cards.is_empty() && b.card_inside.is_none(),
        "{label}: no card starts on printer B before the resolution: {:?}",
        b.cards
    );
    assert_eq!(k.production("c2").await["status"], "READY", "{label}");
    // `satellite status` says what the technician must do and which printer
    // replaced which.
    let status = k.cli(&["status"]).await;
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains("jobs resolve c1"),
        "{label}: status says what to do: {shown}"
    );
    assert!(
        shown.contains(&format!("printer {A} was replaced by printer {B}")),
        "{label}: {shown}"
    );
    let cli = k.cli(&["jobs", "resolve", "c1", "removed"]).await;
    assert!(
        cli.status.success(),
        "{label}: {}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let first = k.final_status("c1", label).await;
    eprintln!("{label}: {first}");
    assert_eq!(first["status"], "PRODUCTION_ERROR", "{label}: {first}");
    let d = first["description"].as_str().unwrap();
    assert!(d.contains(A) && d.contains(B), "{label}: {first}");
    assert!(!d.contains(PAN1), "{label}: {first}");
    let second = k.final_status("c2", label).await;
    assert_eq!(second["status"], "PRODUCED", "{label}: {second}");
    // Ground truth: card 2 taken from B; nothing taken from A.
    let (a, b) = (k.a.state(), k.b().state());
    assert_eq!(b.counters.taken, 1, "{label}: card 2 came from B");
    assert_eq!(
        b.cards.iter().map(|c| c.place).collect::<Vec<_>>(),
        [Place::Taken],
        "{label}: B produced card 2 only"
    );
    assert_eq!(a.counters.taken, 0, "{label}: no card was taken from A");
    assert!(
        a.cards.iter().all(|c| c.place != Place::Taken),
        "{label}: {:?}",
        a.cards
    );
    first
}

/// Where printer A left card 1 as it dropped off before `step`.
fn card_in_a(k: &Kiosk, step: &str) -> Option<Place> {
    let a = k.a.state();
    let place = a.cards.iter().find(|c| c.seq == 1).map(|c| c.place);
    match step {
        // Dropped before the insert: no card left A's feeder.
        "insert" => assert_eq!(place, None, "{step}: {:?}", a.cards),
        "take" => assert_eq!(place, Some(Place::Bezel), "{step}: in A's bezel, untaken"),
        _ => assert!(
            place.is_some_and(|p| p != Place::Taken),
            "{step}: card 1 is still in A: {place:?}"
        ),
    }
    place
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printer_replaced_at_each_step_of_a_card() {
    for step in STEPS {
        let label = format!("replaced before {step}");
        let mut k = kiosk(Some(step)).await;
        k.card_1_caught_before(step).await;
        k.swap().await;
        technician_then_production_on_b(&k, &label, "during step").await;
        card_in_a(&k, step);
        k.stop_daemon().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printer_replaced_while_the_agent_was_down() {
    for step in ["insert", "print", "take"] {
        let label = format!("replaced before {step}, agent down");
        let mut k = kiosk(Some(step)).await;
        k.card_1_caught_before(step).await;
        // The agent stops with the card in production; B replaces A
        // meanwhile; the agent starts again on the same store.
        k.stop_daemon().await;
        k.swap().await;
        k.start_daemon().await;
        technician_then_production_on_b(&k, &label, "the agent restarted").await;
        card_in_a(&k, step);
        k.stop_daemon().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_printer_replaced_while_idle_is_reported_and_production_goes_on() {
    let mut k = kiosk(None).await;
    k.submit("c1", PAN1).await;
    assert_eq!(k.final_status("c1", "on A").await["status"], "PRODUCED");
    assert_eq!(k.a.state().counters.taken, 1);
    k.swap().await;
    // The health document (the heartbeat's too) says which printer replaced which.
    let mut change = Value::Null;
    for _ in 0..500 {
        change = k.status().await["printer"]["link"]["identity_change"].clone();
        if !change.is_null() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(change["previous"]["serial"], A, "{change}");
    assert_eq!(change["current"]["serial"], B, "{change}");
    let status = k.cli(&["status"]).await;
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        shown.contains(&format!("printer {A} was replaced by printer {B}")),
        "{shown}"
    );
    k.submit("c2", PAN2).await;
    assert_eq!(k.final_status("c2", "on B").await["status"], "PRODUCED");
    assert_eq!(k.b().state().counters.taken, 1, "card 2 came from B");
    assert_eq!(k.a.state().counters.taken, 1, "A made card 1 only");
    k.stop_daemon().await;
}
