//! Shared harness: a simulator behind a real pseudo-terminal (or TCP), the
//! driver on the other end, the chip through the real PC/SC stack, and a test
//! card run in the order a production engine runs its steps.
#![allow(dead_code)]

use printer_sim::{Customer, SimConfig, Simulator};
use satellite::chip::{ApduStep, ChipScript, PcscConfig, PcscStation};
use satellite::codes::Fault;
use satellite::printer::steps::{EmbossLine, TextLine, Track, Verdict};
use satellite::printer::{Backoff, Endpoint, LinkSettings, Printer, Profile};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub mod child;
pub mod http;
pub mod immutable;
pub mod kiosk;
pub mod notify;
pub mod python;
pub mod relay;
pub mod upstream;

pub const VPCD: &str = "127.0.0.1:35963";

pub struct Rig {
    pub sim: Simulator,
    pub printer: Printer,
    pub chip: PcscStation,
    pub endpoint: Endpoint,
    pub dir: tempfile::TempDir,
    pub take: Duration,
    /// The chip is played behind pcscd (otherwise the chip step only parks the card).
    pub chip_enabled: bool,
}

/// vpcd has one virtual slot: tests that use it take turns.
pub static PCSC: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy)]
pub enum Via {
    Pty,
    Tcp,
    /// The pseudo-terminal opened as a USB printer-class node: NUL-ended
    /// replies, node reopened between write and read.
    UsbNode,
}

pub struct Options {
    pub model: &'static str,
    pub via: Via,
    pub ack_nack: bool,
    pub chip: bool,
    pub serial: Option<String>,
    /// Record the session as a transcript.
    pub record: Option<PathBuf>,
    /// The simulator ends ACK and NACK with the reply terminator too.
    pub ack_terminated: bool,
    /// What the simulated customer does with a presented card (the
    /// simulator's default: takes it at once).
    pub customer: Option<Customer>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            model: "evolis-km500b",
            via: Via::Pty,
            ack_nack: false,
            chip: true,
            serial: None,
            record: None,
            ack_terminated: false,
            customer: None,
        }
    }
}

/// Short time-outs so that the time-out rows do not take long; the simulator's
/// `slow` condition answers far later than any of them.
pub fn test_timeouts(p: &Profile) -> satellite::printer::profile::Timeouts {
    let mut t = p.timeouts.clone();
    t.command = 600;
    t.movement = 2_000;
    t.magnetic = 2_000;
    t.print = 2_000;
    t.emboss = 2_000;
    t.download_base = 2_000;
    t.take = 400;
    t
}

pub async fn rig(opts: Options) -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let mut config = SimConfig::for_model(opts.model).unwrap();
    config.speed = 0.0;
    if let Some(s) = &opts.serial {
        config.serial = s.clone();
    }
    config.record = opts.record.clone();
    if opts.chip {
        config.vpcd = Some(VPCD.parse::<SocketAddr>().unwrap());
    }
    if matches!(opts.via, Via::UsbNode) {
        config.reply_terminator = dialect::Terminator::Nul;
    }
    config.ack_terminated = opts.ack_terminated;
    if let Some(c) = opts.customer {
        config.customer = c;
    }
    let sim = Simulator::new(config);
    let endpoint = match opts.via {
        Via::Pty => Endpoint::Serial(
            sim.serve_pty(Some(&dir.path().join("printer")))
                .await
                .unwrap(),
        ),
        Via::UsbNode => Endpoint::Usb(sim.serve_pty(Some(&dir.path().join("lp0"))).await.unwrap()),
        Via::Tcp => {
            let addr = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
            Endpoint::Tcp(addr.to_string())
        }
    };
    let profile = Arc::new(Profile::load(opts.model, None).unwrap());
    let mut settings = LinkSettings::from_profile(endpoint.clone(), &profile);
    settings.timeouts = test_timeouts(&profile);
    settings.ack_nack = opts.ack_nack;
    let take = Duration::from_millis(settings.timeouts.take);
    let backoff = Backoff {
        initial: Duration::from_millis(50),
        max: Duration::from_millis(400),
    };
    let printer = Printer::new(settings, profile, backoff, None, true);
    let chip = PcscStation::new(PcscConfig {
        reader: None,
        card_wait_ms: 1_500,
        apdu_timeout_ms: 2_000,
    });
    Rig {
        sim,
        printer,
        chip,
        endpoint,
        dir,
        take,
        chip_enabled: opts.chip,
    }
}

/// A personalisation card with test data (a test-range PAN, never a real one).
pub struct TestCard {
    pub tracks: Vec<Track>,
    pub text: Vec<TextLine>,
    pub emboss: Vec<EmbossLine>,
    pub script: ChipScript,
}

pub fn test_card() -> TestCard {
    let pan = "4000001234567899";
    TestCard {
        tracks: vec![
            Track {
                number: 1,
                data: format!("B{pan}^DOE/JANE^28121010000000000000"),
            },
            Track {
                number: 2,
                data: format!("{pan}=28121010000000000"),
            },
        ],
        text: vec![
            TextLine {
                x: 80,
                y: 370,
                font: 1,
                height: 42,
                text: "4000 0012 3456 7899".into(),
            },
            TextLine {
                x: 80,
                y: 490,
                font: 0,
                height: 32,
                text: "JANE DOE".into(),
            },
        ],
        emboss: vec![
            EmbossLine {
                line: 1,
                font: 0,
                text: "4000 0012 3456 7899".into(),
            },
            EmbossLine {
                line: 2,
                font: 1,
                text: "JANE DOE".into(),
            },
        ],
        script: ChipScript {
            steps: vec![
                ApduStep {
                    command: vec![
                        0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x00, 0x03, 0x10, 0x10,
                    ],
                    expect_sw: vec![0x9000],
                },
                ApduStep {
                    command: vec![0x80, 0xE2, 0x80, 0x00, 0x04, 0x01, 0x02, 0x03, 0x04],
                    expect_sw: vec![0x9000],
                },
            ],
        },
    }
}

/// The steps of a card, in the engine's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Ready,
    Insert,
    Chip,
    Magnetic,
    Print,
    Emboss,
    Present,
    Take,
}

/// Runs one card; `before(step)` runs before each step (to raise a condition
/// just where it bites). After the card is in, any failure sends it to the
/// reject box, as the engine does.
pub async fn produce_one(
    rig: &Rig,
    card: &TestCard,
    mut before: impl FnMut(Step),
) -> Result<(), Fault> {
    let p = &rig.printer;
    before(Step::Ready);
    p.check_ready().await?;
    p.select_feeder(1).await?;
    before(Step::Insert);
    p.insert().await?;
    let inside = async {
        before(Step::Chip);
        if p.profile().capabilities.smart_station {
            p.to_smart_station().await?;
            if rig.chip_enabled {
                rig.chip.personalise(&card.script).await?;
            }
        }
        before(Step::Magnetic);
        p.encode_magnetic(&card.tracks).await?;
        before(Step::Print);
        p.print_text(&card.text).await?;
        if p.profile().capabilities.emboss {
            before(Step::Emboss);
            p.emboss(&card.emboss).await?;
        }
        before(Step::Present);
        p.present().await
    }
    .await;
    if let Err(f) = inside {
        let _ = p.reject().await;
        return Err(f);
    }
    before(Step::Take);
    let sim = rig.sim.clone();
    let verdict = async move {
        loop {
            if sim.state().customer_verdict.as_deref() == Some("refused") {
                return Verdict::Refuse;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    p.await_take(rig.take, verdict).await
}

pub fn customer_never() -> Customer {
    Customer::Never
}

/// Waits (bounded) for a condition of the simulator's state.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

pub fn link_path(rig: &Rig) -> PathBuf {
    match &rig.endpoint {
        Endpoint::Serial(p) | Endpoint::Usb(p) => p.clone(),
        Endpoint::Tcp(_) => PathBuf::new(),
    }
}

/// PC/SC must be up for the chip rows; say how to get it rather than skip.
pub fn require_pcscd() {
    // Probing the vpcd port itself would look like a card to the reader: check
    // pcscd's socket instead.
    if !std::path::Path::new("/run/pcscd/pcscd.comm").exists() {
        panic!("pcscd with the vpcd virtual reader is not listening on {VPCD}: run `bash scripts/pcscd-up.sh` (installs nothing; .ci/run installs pcscd and vsmartcard-vpcd)");
    }
}

/// The configuration file of a daemon run as a process: kiosk KIOSK01 (or
/// `kiosk`), the printer on `link` (a simulator's pty), no chip, the store,
/// key and socket in `dir`, one card type `debit` (magnetic stripe).
pub fn daemon_toml(kiosk: &str, link: &std::path::Path, dir: &std::path::Path) -> String {
    format!(
        r#"
kiosk_id = "{kiosk}"
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
        db = dir.join("s.db").display(),
        key = dir.join("card.key").display(),
        sock = dir.join("api.sock").display(),
    )
}
