//! The agent as systemd runs it: the real binary (`satellite run --config`)
//! as a child process, with a notification socket of the test's own
//! (`NOTIFY_SOCKET`) and a watchdog interval (`WATCHDOG_USEC`); a real
//! SQLite store; the simulator over a real pseudo-terminal. Readiness,
//! status lines, the watchdog against a production loop held mid-step,
//! reloads (SIGHUP) during a card, and a stop (SIGTERM) during a card.

mod common;

use common::notify::{longest_gap, NotifySocket};
use common::relay::Relay;
use printer_sim::{Customer, SimConfig, Simulator};
use satellite::api::client::Client;
use satellite::store::{Keys, Status, Store};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;
use tokio::process::{Child, Command};

/// The watchdog interval the tests ask for: pings every half of it.
const WATCHDOG: Duration = Duration::from_secs(1);

/// The daemon, a child process, and what it logged on stderr.
struct Agent {
    child: Child,
    log: Arc<Mutex<String>>,
    client: Client,
}

impl Agent {
    fn spawn(dir: &Path, notify: &NotifySocket, watchdog: Option<Duration>) -> Agent {
        let socket = dir.join("api.sock");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_satellite"));
        cmd.args(["run", "--config"])
            .arg(dir.join("satellite.toml"))
            .env("NOTIFY_SOCKET", &notify.path)
            // Text on stderr (not the journal) at the daemon's own level.
            .env_remove("JOURNAL_STREAM")
            .env_remove("RUST_LOG")
            .env_remove("WATCHDOG_PID")
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        match watchdog {
            Some(w) => cmd.env("WATCHDOG_USEC", w.as_micros().to_string()),
            None => cmd.env_remove("WATCHDOG_USEC"),
        };
        let mut child = cmd.spawn().unwrap();
        let log: Arc<Mutex<String>> = Arc::default();
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let kept = log.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let mut k = kept.lock().unwrap();
                k.push_str(&line);
                k.push('\n');
            }
        });
        Agent {
            child,
            log,
            client: Client::new(&socket),
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log has a line with every one of `needles`.
    async fn wait_log(&self, needles: &[&str], within: Duration) -> String {
        let end = Instant::now() + within;
        loop {
            let log = self.log();
            if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return line.to_string();
            }
            assert!(
                Instant::now() < end,
                "no log line with {needles:?} within {within:?}:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn signal(&self, s: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, s).unwrap();
    }

    async fn stock(&self) {
        let a = self
            .client
            .put("/v1/inventory/1", br#"{"cardType":"debit","count":50}"#)
            .await
            .unwrap();
        assert_eq!(a.status, 204, "{}", a.body);
    }

    async fn submit(&self, body: &Value) -> u16 {
        let a = self
            .client
            .post("/v1/cards", body.to_string().as_bytes())
            .await
            .unwrap();
        a.status
    }

    async fn status_of(&self, token: &str) -> String {
        let a = self
            .client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap();
        a.body["status"].as_str().unwrap_or("").to_string()
    }

    /// Waits until the card's status is `want`.
    async fn wait_status(&self, token: &str, want: &str, within: Duration) {
        let end = Instant::now() + within;
        loop {
            let s = self.status_of(token).await;
            if s == want {
                return;
            }
            assert!(
                Instant::now() < end,
                "card {token} is {s}, not {want}, after {within:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
}

/// A kiosk directory: key, configuration (with `printer` lines for the
/// `[printer]` section and `extra` after it).
fn kiosk_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Keys::generate(&dir.path().join("card.key")).unwrap();
    dir
}

/// The configuration: the printer on `device`, of `model`, with `printer`
/// lines for the rest of its section; one card type `debit`; `extra` last.
fn write_config(dir: &Path, device: &Path, model: &str, printer: &str, extra: &str) {
    let text = format!(
        r#"
kiosk_id = "KIOSK01"
[printer]
device = "{device}"
model = "{model}"
{printer}
[chip]
enabled = false
[store]
path = "{db}"
key_file = "{key}"
[api]
socket = "{sock}"
[[card_type]]
id = "debit"
magnetic = true
chip = false
emboss = false
colour = true
{extra}
"#,
        device = device.display(),
        db = dir.join("s.db").display(),
        key = dir.join("card.key").display(),
        sock = dir.join("api.sock").display(),
    );
    std::fs::write(dir.join("satellite.toml"), text).unwrap();
}

fn card(token: &str, card_type: &str, image: Option<&str>) -> Value {
    let pan = satellite::request::with_luhn_digit("400000123456789").unwrap();
    let mut v = json!({
        "cardToken": token, "profileId": 1, "kioskId": "KIOSK01", "cardType": card_type,
        "issuerRequestId": format!("r-{token}"), "cardId": format!("c-{token}"),
        "pan": pan, "expiry": "2812", "cardholderName": "ADA LOVELACE",
        "tracks": { "track2": format!("{pan}=2812101") }
    });
    if let Some(i) = image {
        v["frontImage"] = json!(i);
    }
    v
}

/// A front image whose top rows are noise: its panels do not compress, so
/// each panel's download is a frame of a few hundred kilobytes, far more
/// than a pseudo-terminal buffers.
fn noisy_front_image() -> String {
    let (w, h) = (1016u32, 648u32);
    let mut data = vec![255u8; (w * h * 3) as usize];
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for b in data.iter_mut().take((w * 220 * 3) as usize) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut png = Vec::new();
    {
        let mut e = png::Encoder::new(&mut png, w, h);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Eight);
        e.set_compression(png::Compression::Fast);
        e.write_header().unwrap().write_image_data(&data).unwrap();
    }
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, png)
}

fn simulator(customer: Customer) -> Simulator {
    let mut c = SimConfig::for_model("evolis-km500b").unwrap();
    c.speed = 0.0;
    c.customer = customer;
    Simulator::new(c)
}

/// A profile of the KM500B with short time-outs for printing and
/// downloads, so that a print step's budget is seconds, not minutes.
fn quick_profile(dir: &Path) -> PathBuf {
    let hw = dir.join("hw");
    std::fs::create_dir_all(&hw).unwrap();
    std::fs::write(
        hw.join("test-km500b.toml"),
        r#"
extends = "evolis-km500b"
[model]
id = "test-km500b"
name = "KM500B with short time-outs (tests)"
model_reply = "KM500B"
[timeouts]
print = 1500
download_base = 500
download_bytes_per_second = 100000000
download_margin = 1.0
"#,
    )
    .unwrap();
    hw
}

/// READY=1 once the API listens; STATUS= lines that follow the engine;
/// WATCHDOG=1 every half interval while the loop moves, none while a step
/// is held past its budget (the relay stops reading a panel download, so
/// the daemon's write blocks), and again once it moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchdog_is_pinged_only_while_the_production_loop_moves() {
    let sim = simulator(Customer::TakeAfter(50));
    let relay = Relay::start(&sim);
    let dir = kiosk_dir();
    let hw = quick_profile(dir.path());
    write_config(
        dir.path(),
        &relay.path,
        "test-km500b",
        &format!(
            "hardware_dir = \"{}\"\n[printer.timeouts]\ncommand = 300",
            hw.display()
        ),
        "",
    );
    let notify = NotifySocket::bind(dir.path());
    let started = Instant::now();
    let agent = Agent::spawn(dir.path(), &notify, Some(WATCHDOG));
    let (ready, _) = notify
        .wait_for(started, Duration::from_secs(20), |l| l == "READY=1")
        .await;
    // The API answers once READY=1 has been said.
    assert!(agent.client.get("/v1/status").await.is_ok());
    notify
        .wait_for(ready, Duration::from_secs(10), |l| {
            l == "STATUS=idle; printer ready; queue 0"
        })
        .await;
    notify
        .wait_for(ready, Duration::from_secs(5), |l| l == "WATCHDOG=1")
        .await;
    agent.stock().await;

    relay.freeze_after(b"Dbc");
    let image = noisy_front_image();
    assert_eq!(
        agent.submit(&card("wd-1", "debit", Some(&image))).await,
        201
    );
    let until = Instant::now() + Duration::from_secs(30);
    while !relay.is_frozen() {
        assert!(
            Instant::now() < until,
            "no panel download:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let frozen_at = Instant::now();
    notify
        .wait_for(started, Duration::from_secs(5), |l| {
            l == "STATUS=producing card wd-1: step print; queue 0"
        })
        .await;
    // The step's budget (its time-outs and the margin) runs out, then the
    // pings stop: wait for a silence of more than two intervals.
    let line = agent
        .wait_log(
            &["watchdog is no longer pinged", "doing=print"],
            Duration::from_secs(40),
        )
        .await;
    tokio::time::sleep(WATCHDOG * 5 / 2).await;
    let silence_end = Instant::now();
    let gap = longest_gap(&notify.pings(), frozen_at, silence_end);
    assert!(
        gap > WATCHDOG * 2,
        "the longest gap while the step was held is {gap:?}, not more than two intervals ({line})"
    );
    // Pings came while the step was within its budget: the budget is
    // honoured, the watchdog is not simply off during a step.
    assert!(
        notify.pings().iter().any(|&p| p > frozen_at),
        "no ping at all after the step began"
    );

    relay.thaw();
    let thawed = Instant::now();
    notify
        .wait_for(thawed, Duration::from_secs(10), |l| l == "WATCHDOG=1")
        .await;
    agent
        .wait_status("wd-1", "PRODUCED", Duration::from_secs(30))
        .await;
    agent
        .wait_log(&["watchdog pings resume"], Duration::from_secs(5))
        .await;
    let r = agent.child.id();
    assert!(r.is_some(), "the agent still runs");
}

/// The negative control of the test above: pings sent by a plain timer
/// (every half interval, whatever the loop does) over the same window
/// would fail its assertion.
#[test]
fn a_plain_timer_would_fail_the_watchdog_assertion() {
    let from = Instant::now();
    let to = from + Duration::from_secs(12);
    let timer: Vec<Instant> = (0..30).map(|i| from + WATCHDOG / 2 * i).collect();
    assert!(
        longest_gap(&timer, from, to) <= WATCHDOG * 2,
        "a timer's pings leave no gap of two intervals"
    );
    // And a window with no pings at all is one gap.
    assert_eq!(longest_gap(&[], from, to), to - from);
}

/// SIGHUP during a card: a valid file takes effect (a new card type is
/// accepted afterwards; its `[printer]` change reopens the link after the
/// card), an invalid one and one that needs a restart are refused with the
/// reason logged and the configuration in force kept; every card finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_between_cards_and_refuses_a_bad_file() {
    use nix::sys::signal::Signal;
    // The customer takes each card 2.5 s after it is presented: the window
    // in which each reload lands, with a card in production.
    let sim = simulator(Customer::TakeAfter(2500));
    let link = sim.serve_pty(None).await.unwrap();
    let dir = kiosk_dir();
    let km = "evolis-km500b";
    write_config(dir.path(), &link, km, "[printer.timeouts]\ntake = 4000", "");
    let notify = NotifySocket::bind(dir.path());
    let agent = Agent::spawn(dir.path(), &notify, None);
    let t0 = Instant::now();
    notify
        .wait_for(t0, Duration::from_secs(20), |l| l == "READY=1")
        .await;
    agent.stock().await;
    let credit = "[[card_type]]\nid = \"credit\"\nmagnetic = true\nchip = false\nemboss = false\ncolour = false";
    // Before the reload, "credit" is not a card type here.
    assert_ne!(agent.submit(&card("hup-0", "credit", None)).await, 201);

    // 1. A valid file while a card waits for its customer.
    assert_eq!(agent.submit(&card("hup-1", "debit", None)).await, 201);
    agent
        .wait_status("hup-1", "IN_PROGRESS", Duration::from_secs(10))
        .await;
    write_config(
        dir.path(),
        &link,
        km,
        "[printer.timeouts]\ntake = 6000",
        credit,
    );
    let sent = Instant::now();
    agent.signal(Signal::SIGHUP);
    let (reloading, _) = notify
        .wait_for(sent, Duration::from_secs(10), |l| l == "RELOADING=1")
        .await;
    notify
        .wait_for(sent, Duration::from_secs(1), |l| {
            l.starts_with("MONOTONIC_USEC=")
        })
        .await;
    notify
        .wait_for(reloading, Duration::from_secs(10), |l| l == "READY=1")
        .await;
    agent
        .wait_log(
            &[
                "configuration reloaded",
                "[printer] (before the next card)",
                "[[card_type]]",
            ],
            Duration::from_secs(5),
        )
        .await;
    assert_eq!(
        agent.status_of("hup-1").await,
        "IN_PROGRESS",
        "the card went on"
    );
    agent
        .wait_status("hup-1", "PRODUCED", Duration::from_secs(20))
        .await;
    agent
        .wait_log(&["printer link reopened"], Duration::from_secs(10))
        .await;
    // The new type's stock: the inventory knows it now too.
    let a = agent
        .client
        .put("/v1/inventory/2", br#"{"cardType":"credit","count":50}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 204, "{}", a.body);
    assert_eq!(agent.submit(&card("hup-2", "credit", None)).await, 201);

    // 2. An invalid file during that card: refused, named, nothing changes.
    agent
        .wait_status("hup-2", "IN_PROGRESS", Duration::from_secs(10))
        .await;
    write_config(
        dir.path(),
        &link,
        km,
        "[printer.timeouts]\ntake = 6000",
        &format!("{credit}\n[production]\nqueue_limt = 5"),
    );
    let sent = Instant::now();
    agent.signal(Signal::SIGHUP);
    let refused = agent
        .wait_log(
            &["configuration reload refused", "queue_limt"],
            Duration::from_secs(10),
        )
        .await;
    notify
        .wait_for(sent, Duration::from_secs(5), |l| l == "READY=1")
        .await;
    // 3. A file that changes what only a restart applies: refused too.
    write_config(
        dir.path(),
        &link,
        km,
        "[printer.timeouts]\ntake = 6000",
        credit,
    );
    let moved = std::fs::read_to_string(dir.path().join("satellite.toml"))
        .unwrap()
        .replace("api.sock", "other.sock");
    std::fs::write(dir.path().join("satellite.toml"), moved).unwrap();
    agent.signal(Signal::SIGHUP);
    let restart = agent
        .wait_log(
            &["configuration reload refused", "only a restart"],
            Duration::from_secs(10),
        )
        .await;
    assert!(restart.contains("[api]"), "{restart}");
    agent
        .wait_status("hup-2", "PRODUCED", Duration::from_secs(20))
        .await;
    // The reloaded configuration is still the one in force.
    assert_eq!(agent.submit(&card("hup-3", "credit", None)).await, 201);
    agent
        .wait_status("hup-3", "PRODUCED", Duration::from_secs(20))
        .await;
    assert!(
        refused.contains("satellite.toml"),
        "the line names the file: {refused}"
    );
    assert!(
        dir.path().join("api.sock").exists(),
        "the socket in force stays where it was"
    );
}

/// SIGTERM while a presented card waits for the kiosk's final validation:
/// STOPPING=1; the API keeps serving, so the validation call still lands;
/// the card ends decided (refused: retracted, PRODUCTION_ERROR); the agent
/// exits 0 within the stop budget it logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_card_decides_it_then_exits_zero() {
    use nix::sys::signal::Signal;
    let sim = simulator(Customer::Never);
    let link = sim.serve_pty(None).await.unwrap();
    let dir = kiosk_dir();
    write_config(
        dir.path(),
        &link,
        "evolis-km500b",
        "[printer.timeouts]\ntake = 20000",
        "[production]\nfinal_validation = true",
    );
    let notify = NotifySocket::bind(dir.path());
    let mut agent = Agent::spawn(dir.path(), &notify, None);
    let t0 = Instant::now();
    notify
        .wait_for(t0, Duration::from_secs(20), |l| l == "READY=1")
        .await;
    agent.stock().await;
    assert_eq!(agent.submit(&card("term-1", "debit", None)).await, 201);
    notify
        .wait_for(t0, Duration::from_secs(20), |l| {
            l.starts_with("STATUS=producing card term-1: step taken")
        })
        .await;
    let sent = Instant::now();
    agent.signal(Signal::SIGTERM);
    notify
        .wait_for(sent, Duration::from_secs(5), |l| l == "STOPPING=1")
        .await;
    let budget_line = agent
        .wait_log(&["stopping", "at_most_s="], Duration::from_secs(5))
        .await;
    let budget: u64 = budget_line
        .split("at_most_s=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no budget in {budget_line}"));
    // The API still answers, and the kiosk application's verdict lands.
    assert_eq!(agent.status_of("term-1").await, "IN_PROGRESS");
    let v = agent
        .client
        .post("/v1/cards/term-1/validation", br#"{"accept":false}"#)
        .await
        .unwrap();
    assert_eq!(v.status, 204, "{}", v.body);
    let exit = tokio::time::timeout(Duration::from_secs(budget), agent.child.wait())
        .await
        .unwrap_or_else(|_| {
            panic!(
                "no exit within the stop budget of {budget} s:\n{}",
                agent.log()
            )
        })
        .unwrap();
    assert!(exit.success(), "{exit:?}:\n{}", agent.log());
    let took = sent.elapsed();
    // Decided, in the store the agent left.
    let store = Store::open(
        &dir.path().join("s.db"),
        Keys::load(&dir.path().join("card.key")).unwrap(),
    )
    .unwrap();
    let job = store.job("term-1").unwrap().unwrap();
    assert_eq!(job.status, Status::ProductionError, "{:?}", job);
    assert!(
        !dir.path().join("api.sock").exists(),
        "the socket is removed"
    );
    eprintln!("stopped in {took:?} (budget {budget} s)");
}
