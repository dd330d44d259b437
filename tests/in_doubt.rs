//! Cards in doubt, end to end: the daemon with its real SQLite store, the
//! simulator over a real pseudo-terminal, real HTTP over the Unix socket.
//! A link fault is raised just before a step of the first card; once the
//! agent has seen it (the card is in doubt, or already final) the fault is
//! cleared. Each row asserts, against the simulator's ground truth: the card
//! ends where its final status says (PRODUCED: the customer has it;
//! PRODUCTION_ERROR: in the reject box, or never taken from the feeder), the
//! code is the first cause, the next card is produced, and no card is
//! produced twice.

mod common;

use common::kiosk;
use printer_sim::{Place, Scenario, Simulator};
use satellite::api::client::Client;
use satellite::config::Config;
use satellite::daemon::Daemon;
use satellite::printer::Endpoint;
use serde_json::{json, Value};
use std::time::Duration;

struct Kiosk {
    chip: bool,
    store: Option<std::path::PathBuf>,
    socket: std::path::PathBuf,
    sim: Simulator,
    daemon: Option<Daemon>,
    client: Client,
    dir: tempfile::TempDir,
}

/// A kiosk whose simulator raises `conditions` just before `step` of card 1.
async fn kiosk_raising(step: &str, conditions: &[&str]) -> Kiosk {
    kiosk_on(step, conditions, None, false).await
}

/// The same, with the store's database at `store` when given.
async fn kiosk_on(
    step: &str,
    conditions: &[&str],
    store: Option<&std::path::Path>,
    chip: bool,
) -> Kiosk {
    if std::env::var_os("IN_DOUBT_LOG").is_some() {
        satellite::logging::init(2, satellite::logging::Quiet::No);
    }
    let scenario: String = conditions
        .iter()
        .map(|c| format!("[[at]]\ncard = 1\nstep = \"{step}\"\nraise = \"{c}\"\n"))
        .collect();
    let p = kiosk::start(
        |c| {
            c.scenario = Some(Scenario::parse("row", &scenario).unwrap());
            if chip {
                kiosk::chip_on_sim(c);
            }
        },
        |_, cfg| configure(cfg, store, chip),
    )
    .await;
    kiosk::stock(&p.client).await;
    Kiosk {
        chip,
        store: store.map(|s| s.to_path_buf()),
        socket: p.socket,
        sim: p.sim,
        daemon: Some(p.daemon),
        client: p.client,
        dir: p.dir,
    }
}

/// The agent's configuration in these tests: short printer time-outs.
fn configure(cfg: &mut Config, store: Option<&std::path::Path>, chip: bool) {
    if let Some(path) = store {
        cfg.store.path = path.to_path_buf();
    }
    if chip {
        kiosk::chip_on_agent(cfg);
    }
    cfg.printer.timeouts.take = Some(1500);
    cfg.printer.timeouts.command = Some(600);
    cfg.printer.timeouts.movement = Some(1000);
    cfg.printer.timeouts.magnetic = Some(1000);
    cfg.printer.timeouts.print = Some(1500);
}

use kiosk::request;

impl Kiosk {
    async fn submit(&self, token: &str, pan: &str) {
        let mut r = request(token, pan);
        if self.chip {
            r["chipScript"] = json!([{ "apdu": "00A4040007A0000000031010", "expectSw": ["9000"] }]);
        }
        let a = self
            .client
            .post("/v1/cards", r.to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
    }

    async fn production(&self, token: &str) -> Value {
        self.client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap()
            .body
    }

    async fn engine(&self) -> Value {
        self.client.get("/v1/status").await.unwrap().body["engine"].clone()
    }

    /// Waits until the card is final, or in doubt (then clears the faults
    /// and waits again). Returns the production object.
    async fn settle(&self, token: &str, label: &str) -> Value {
        let mut cleared = false;
        for _ in 0..1500 {
            let p = self.production(token).await;
            if matches!(p["status"].as_str(), Some("PRODUCED" | "PRODUCTION_ERROR")) {
                return p;
            }
            if !cleared && self.engine().await["state"] == "card_in_doubt" {
                self.sim.clear(None);
                cleared = true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "{label}: card {token} never settled: {} / engine {}",
            self.production(token).await,
            self.engine().await
        );
    }

    /// Runs `satellite jobs ARGS --socket SOCKET`, as a technician would.
    async fn jobs(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_satellite"));
        cmd.arg("jobs").args(args).arg("--socket").arg(&self.socket);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    /// Stops the daemon and starts it again on the same store, key and
    /// printer link, as after a restart of the agent; `meanwhile` runs while
    /// the agent is stopped.
    async fn restart(&mut self, meanwhile: impl FnOnce(&Simulator)) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
        meanwhile(&self.sim);
        let mut cfg = Config::local(self.dir.path(), "KIOSK01");
        configure(&mut cfg, self.store.as_deref(), self.chip);
        let link = Endpoint::Serial(self.dir.path().join("printer"));
        self.daemon = Some(Daemon::start(cfg, Some(link)).await.unwrap());
    }

    async fn stop(mut self) {
        if let Some(d) = self.daemon.take() {
            d.stop().await;
        }
    }
}

const STEPS: [&str; 5] = ["insert", "magnetic", "print", "eject", "take"];

/// One row; returns the first card's production object.
async fn row(step: &str, condition: &str) -> Value {
    row_on(step, condition, false).await
}

async fn row_on(step: &str, condition: &str, chip: bool) -> Value {
    let label = format!("{condition} before {step}");
    let k = kiosk_on(step, &[condition], None, chip).await;
    k.submit("c1", "4000001234567899").await;
    let first = k.settle("c1", &label).await;
    // The fault may end by itself before the agent notices: clear anyway.
    k.sim.clear(None);
    k.submit("c2", "4000001234567808").await;
    let second = k.settle("c2", &label).await;
    assert_eq!(
        second["status"], "PRODUCED",
        "{label}: the next card: {second}"
    );

    let s = k.sim.state();
    let card1 = s.cards.iter().find(|c| c.seq == 1);
    eprintln!(
        "{label}: {} {} ({})",
        first["status"], first["errorCode"], first["description"]
    );
    match first["status"].as_str() {
        Some("PRODUCED") => assert_eq!(
            card1.map(|c| c.place),
            Some(Place::Taken),
            "{label}: PRODUCED but the customer does not have card 1: {first}; card 1: {:?}",
            card1.map(|c| (c.place, &c.events))
        ),
        Some("PRODUCTION_ERROR") => {
            let code = first["errorCode"].as_str().unwrap();
            assert!(
                ["PRT_NOT_REACHABLE", "PRT_TIMEOUT", "PRD_UNEXPECTED_DATA"].contains(&code),
                "{label}: the code is the first cause: {first}"
            );
            let d = first["description"].as_str().unwrap();
            match card1.map(|c| c.place) {
                Some(Place::RejectBox) => assert!(
                    d.contains("reject box"),
                    "{label}: the description says where the card is: {first}"
                ),
                // The insert never happened: the second card is card 1.
                _ if step == "insert" && s.cards.len() == 1 => {}
                other => panic!("{label}: failed card is at {other:?}: {first}"),
            }
        }
        other => panic!("{label}: {other:?}"),
    }
    // Only a printer that showed it restarted is said to have restarted.
    if !condition.starts_with("power-cycle") {
        assert!(
            !first["description"]
                .as_str()
                .unwrap_or("")
                .contains("restarted"),
            "{label}: no restart here: {first}"
        );
    }
    assert!(
        s.cards
            .iter()
            .all(|c| matches!(c.place, Place::Taken | Place::RejectBox)),
        "{label}: every card is taken or in the reject box: {:?}",
        s.cards.iter().map(|c| (c.seq, c.place)).collect::<Vec<_>>()
    );
    let produced = [&first, &second]
        .iter()
        .filter(|p| p["status"] == "PRODUCED")
        .count() as u64;
    assert_eq!(
        s.counters.taken, produced,
        "{label}: no card produced twice, none lost"
    );
    // The engine goes back to idle once the card's end is recorded.
    let mut engine = k.engine().await;
    for _ in 0..250 {
        if engine["state"] == "idle" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        engine = k.engine().await;
    }
    assert_eq!(engine["state"], "idle", "{label}: {engine}");
    assert_eq!(
        s.error_mode,
        host_mode(),
        "{label}: the printer is in host error management (set again after a restart)"
    );
    k.stop().await;
    first
}

fn host_mode() -> u32 {
    satellite::printer::Profile::load("evolis-km500b", None)
        .unwrap()
        .link
        .host_error_mode
}

/// Waits (bounded) until `GET /v1/printer` satisfies `ok`.
async fn printer_until(k: &Kiosk, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..500 {
        let v = k.client.get("/v1/printer").await.unwrap().body;
        if ok(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the printer view never showed {what}: {}",
        k.client.get("/v1/printer").await.unwrap().body
    );
}

/// A printer switched off on a serial line that stays open: the idle probes
/// go unanswered, the link is declared down, and it comes back by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_printer_that_goes_silent_is_seen_down_and_comes_back() {
    let k = kiosk_raising("take", &[]).await;
    printer_until(&k, "ready", |v| v["ready"] == true).await;
    k.sim.raise("silent".parse().unwrap());
    let down = printer_until(&k, "the link down", |v| {
        v["link"]["state"] == "reconnecting" && v["notReady"]["code"] == "PRT_NOT_REACHABLE"
    })
    .await;
    assert_eq!(down["ready"], false, "{down}");
    k.sim.clear(Some("silent"));
    printer_until(&k, "ready again", |v| v["ready"] == true).await;
    k.stop().await;
}

/// A printer that restarts while idle without the line dropping: the agent
/// sees its error mode fall back and sets it up again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_printer_that_restarts_is_set_up_again() {
    let k = kiosk_raising("take", &[]).await;
    printer_until(&k, "ready", |v| v["ready"] == true).await;
    assert_eq!(k.sim.state().error_mode, host_mode());
    k.sim.raise("power-cycle:200".parse().unwrap());
    // Wait for the boot to begin, then for the agent to set the mode again.
    for _ in 0..100 {
        if k.sim.state().power != printer_sim::state::Power::On {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut restored = false;
    for _ in 0..500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let s = k.sim.state();
        if s.power == printer_sim::state::Power::On && s.error_mode == host_mode() {
            restored = true;
            break;
        }
    }
    assert!(
        restored,
        "the error mode was not set again: {}",
        k.sim.state().error_mode
    );
    k.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_lost_at_each_step() {
    for step in STEPS {
        row(step, "unreachable:400").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_answers_at_each_step() {
    for step in STEPS {
        row(step, "slow:2500").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_printer_at_each_step() {
    for step in STEPS {
        row(step, "silent:1500").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cycle_at_each_step() {
    for step in STEPS {
        let first = row(step, "power-cycle:400").await;
        // The command the power cycle swallowed timed out; the printer then
        // said it had just restarted: the description says so, not only
        // "no answer".
        if first["status"] == "PRODUCTION_ERROR" {
            let d = first["description"].as_str().unwrap();
            assert!(
                d.contains("no answer within")
                    && d.contains("the printer restarted (power cycle?) while executing it"),
                "power cycle before {step}: the description does not say the printer restarted: {first}"
            );
        }
    }
}

/// The chip step, with the chip personalised through pcscd (started by
/// scripts/test.sh): the link lost, the printer silent or restarting as the
/// card is parked under the contacts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_faults_at_the_chip_step() {
    for condition in [
        "unreachable:400",
        "silent:1500",
        "power-cycle:400",
        "slow:2500",
        "garbage:2",
    ] {
        row_on("smart", condition, true).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_at_each_step() {
    for step in STEPS {
        row(step, "garbage:2").await;
    }
}

/// A reject the printer refuses (reject box full after a magnetic fault):
/// the card waits for a technician, who cannot say "removed" while the
/// printer still senses it, and whose "retry" after emptying the box ends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_reject_waits_for_a_technician() {
    let k = kiosk_raising("magnetic", &["mag-write-fail", "reject-full"]).await;
    k.submit("c1", "4000001234567899").await;
    let mut engine = Value::Null;
    for _ in 0..500 {
        engine = k.engine().await;
        if engine["state"] == "card_in_doubt" && engine["technician"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine["technician"], true, "{engine}");
    assert_eq!(engine["card"], "c1", "{engine}");
    // Nothing else is produced meanwhile, and a new request is told why.
    let printer = k.client.get("/v1/printer").await.unwrap().body;
    assert_eq!(printer["ready"], false, "{printer}");
    assert!(
        printer["engine"].as_str().unwrap().contains("technician"),
        "{printer}"
    );
    let queued = k
        .client
        .post(
            "/v1/cards",
            request("c2", "4000001234567808").to_string().as_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(queued.status, 201, "{}", queued.body);
    assert_eq!(
        queued.body["errorCode"], "REQUEST_CREATED_BUT_NOT_STARTED",
        "{}",
        queued.body
    );
    assert!(
        queued.body["description"]
            .as_str()
            .unwrap()
            .contains("in doubt"),
        "the reason is said: {}",
        queued.body
    );
    let removed = k
        .client
        .post("/v1/cards/c1/resolve", br#"{"resolution":"removed"}"#)
        .await
        .unwrap();
    assert_eq!(
        removed.status, 409,
        "the card is still inside: {}",
        removed.body
    );
    // The technician's command says the same, and what to do.
    let cli = k.jobs(&["resolve", "c1", "removed"]).await;
    let said = String::from_utf8_lossy(&cli.stderr);
    assert_eq!(cli.status.code(), Some(2), "{said}");
    assert!(said.contains("take the card out"), "{said}");
    assert_eq!(k.production("c1").await["status"], "IN_PROGRESS");
    // The technician empties the reject box, then asks for the reject again.
    k.sim.clear(None);
    let cli = k.jobs(&["resolve", "c1", "retry"]).await;
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let first = k.settle("c1", "refused reject").await;
    assert_eq!(first["status"], "PRODUCTION_ERROR", "{first}");
    assert_eq!(first["errorCode"], "PRD_MAGSTRIPE", "{first}");
    assert!(
        first["description"]
            .as_str()
            .unwrap()
            .contains("reject box"),
        "{first}"
    );
    assert_eq!(
        k.sim.state().cards[0].place,
        Place::RejectBox,
        "the card is where the status says"
    );
    // The request queued meanwhile is produced now.
    assert_eq!(k.settle("c2", "after").await["status"], "PRODUCED");
    k.stop().await;
}

/// The agent stops while a card is in production (in doubt: the printer went
/// silent under its magnetic step) and starts again: the card is settled from
/// the journal and the printer, not produced again, and ends UNKNOWN_ERROR,
/// its description naming the step it was caught in and where the card went.
/// The next card is produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_caught_by_a_restart_ends_unknown_error_naming_its_step() {
    let mut k = kiosk_raising("magnetic", &["silent"]).await;
    k.submit("c1", "4000001234567899").await;
    let mut engine = Value::Null;
    for _ in 0..500 {
        engine = k.engine().await;
        if engine["state"] == "card_in_doubt" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine["state"], "card_in_doubt", "{engine}");
    assert_eq!(engine["card"], "c1", "{engine}");
    // Stopped with the card in doubt: it is left for the next start. The
    // printer answers again while the agent is down.
    k.restart(|sim| sim.clear(None)).await;
    let first = k.settle("c1", "restart").await;
    assert_eq!(first["status"], "PRODUCTION_ERROR", "{first}");
    assert_eq!(first["errorCode"], "UNKNOWN_ERROR", "{first}");
    let d = first["description"].as_str().unwrap();
    assert!(d.contains("the agent restarted"), "{first}");
    assert!(d.contains("during step magnetic"), "{first}");
    assert!(d.contains("reject box"), "{first}");
    assert_eq!(
        k.sim.state().cards[0].place,
        Place::RejectBox,
        "the card is where the status says"
    );
    k.submit("c2", "4000001234567808").await;
    assert_eq!(k.settle("c2", "after").await["status"], "PRODUCED");
    assert_eq!(k.sim.state().counters.taken, 1, "no card twice");
    k.stop().await;
}

/// A small tmpfs of this test's own: unmounted (lazily) when dropped.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap().keep();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "this test mounts a small tmpfs to fill the store's disk: run it as root (CI does)"
        );
        Tmpfs(dir)
    }

    /// Writes a file until the filesystem is full.
    fn fill(&self) -> std::path::PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while f.write_all(&chunk).and_then(|_| f.flush()).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// The store's disk fills in the middle of a card (between the magnetic
/// step's intent and its outcome), then has room again: the card is in doubt
/// meanwhile, a submission is never answered REQUEST_ERROR for a write whose
/// outcome is unknown, nothing accepted is lost, the card ends where its
/// status says, and the next card is produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_fills_up_mid_card_then_has_room_again() {
    let fs = Tmpfs::mount("8m");
    let db = fs.0.join("satellite.db");
    // The magnetic write answers after 600 ms: the disk fills meanwhile.
    let k = kiosk_on("magnetic", &["slow:600"], Some(&db), false).await;
    k.submit("c1", "4000001234567899").await;
    for _ in 0..500 {
        if k.engine().await["step"] == "magnetic" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let filler = fs.fill();
    // The card is in doubt: the outcome could not be journaled.
    let mut doubt = Value::Null;
    for _ in 0..500 {
        doubt = k.engine().await;
        if doubt["state"] == "card_in_doubt" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(doubt["state"], "card_in_doubt", "{doubt}");
    assert_eq!(k.production("c1").await["status"], "IN_PROGRESS");
    // A request now: never a final REQUEST_ERROR for a write that may have landed.
    let a = k
        .client
        .post(
            "/v1/cards",
            request("c2", "4000001234567808").to_string().as_bytes(),
        )
        .await
        .unwrap();
    eprintln!("while the disk is full: {} {}", a.status, a.body);
    assert_ne!(a.body["status"], "REQUEST_ERROR", "{}", a.body);
    assert!(
        a.status == 503 || a.status == 201,
        "{} {}",
        a.status,
        a.body
    );
    // Room again.
    std::fs::remove_file(&filler).unwrap();
    let first = k.settle("c1", "disk full").await;
    assert_eq!(first["status"], "PRODUCTION_ERROR", "{first}");
    eprintln!("disk full: {first}");
    let d = first["description"].as_str().unwrap();
    assert!(d.contains("reject box"), "{first}");
    assert_eq!(k.sim.state().cards[0].place, Place::RejectBox, "{first}");
    // The same request again: accepted now, or already there; then produced.
    // "Send the same request again in a moment": until the store is checked.
    let mut again = None;
    for _ in 0..250 {
        let a = k
            .client
            .post(
                "/v1/cards",
                request("c2", "4000001234567808").to_string().as_bytes(),
            )
            .await
            .unwrap();
        if a.status != 503 {
            again = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = again.expect("the store is checked and takes requests again");
    assert!(
        again.status == 201 || again.body["errorCode"] == "REQUEST_ALREADY_EXISTS",
        "{} {}",
        again.status,
        again.body
    );
    assert_eq!(k.settle("c2", "after the disk").await["status"], "PRODUCED");
    assert_eq!(k.sim.state().counters.taken, 1, "no card twice");
    k.stop().await;
}

/// A submission whose commit fails on a full disk is answered 503 "outcome
/// unknown", never REQUEST_ERROR; once the disk has room and the store has
/// been reopened and read, the same request is taken (or found taken) and
/// produced, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_on_a_full_disk_is_never_refused_for_good() {
    let fs = Tmpfs::mount("8m");
    let db = fs.0.join("satellite.db");
    let k = kiosk_on("take", &[], Some(&db), false).await;
    let filler = fs.fill();
    let body = request("c1", "4000001234567899").to_string();
    let a = k.client.post("/v1/cards", body.as_bytes()).await.unwrap();
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "OUTCOME_UNKNOWN", "{}", a.body);
    std::fs::remove_file(&filler).unwrap();
    let mut again = None;
    for _ in 0..250 {
        let a = k.client.post("/v1/cards", body.as_bytes()).await.unwrap();
        if a.status != 503 {
            again = Some(a);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = again.expect("the store is checked and takes requests again");
    assert!(
        again.status == 201 || again.body["errorCode"] == "REQUEST_ALREADY_EXISTS",
        "{} {}",
        again.status,
        again.body
    );
    assert_eq!(k.settle("c1", "full disk").await["status"], "PRODUCED");
    assert_eq!(k.sim.state().counters.taken, 1, "produced once");
    k.stop().await;
}
