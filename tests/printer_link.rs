//! The printer link against the simulator over real pseudo-terminals and TCP:
//! transports, ACK/NACK, reconnection with identity checks, recovery from
//! noise and late answers, and the technicians' commands.

mod common;

use common::*;
use dialect::ops::{Counter, Op};
use printer_sim::Condition;
use satellite::codes::ErrorCode;
use satellite::printer::LinkState;

fn no_chip() -> Options {
    Options {
        chip: false,
        ..Options::default()
    }
}

/// The same card over the other transports: TCP, and the pseudo-terminal
/// opened as a USB printer node (NUL-ended replies, reopened between write and read).
#[tokio::test]
async fn a_card_runs_over_tcp_and_a_usb_printer_node() {
    for via in [Via::Tcp, Via::UsbNode] {
        let rig = rig(Options { via, ..no_chip() }).await;
        produce_one(&rig, &test_card(), |_| {})
            .await
            .unwrap_or_else(|f| panic!("{:?}: {f}", rig.endpoint));
        assert_eq!(rig.sim.state().counters.taken, 1, "{:?}", rig.endpoint);
    }
}

#[tokio::test]
async fn ack_nack_mode_runs_a_card_and_maps_nack_codes() {
    let rig = rig(Options {
        ack_nack: true,
        ..no_chip()
    })
    .await;
    produce_one(&rig, &test_card(), |_| {}).await.unwrap();
    rig.sim.raise("cover-open".parse::<Condition>().unwrap());
    let f = rig.printer.insert().await.unwrap_err();
    assert_eq!(f.code, ErrorCode::PRT_COVER_OPEN, "{f}");
    assert!(f.description.contains("NACK"), "{f}");
}

/// ACK/NACK on the USB printer node, where the printer may end ACK and NACK
/// with the node's NUL or not: either way every command gets its own answer
/// (a NUL left over must not read as the next command's empty reply).
#[tokio::test]
async fn ack_nack_over_a_usb_node_with_and_without_a_nul_after_ack() {
    for ack_terminated in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let transcript = dir.path().join("session.jsonl");
        let rig = rig(Options {
            via: Via::UsbNode,
            ack_nack: true,
            ack_terminated,
            record: Some(transcript.clone()),
            ..no_chip()
        })
        .await;
        for _ in 0..2 {
            produce_one(&rig, &test_card(), |_| {})
                .await
                .unwrap_or_else(|f| panic!("NUL after ACK: {ack_terminated}: {f}"));
        }
        assert_eq!(rig.sim.state().counters.taken, 2);
        rig.sim.raise("cover-open".parse::<Condition>().unwrap());
        let f = rig.printer.insert().await.unwrap_err();
        assert_eq!(f.code, ErrorCode::PRT_COVER_OPEN, "{f}");
        rig.sim.clear(Some("cover-open"));
        let model = rig.printer.run(Op::ReadModel).await.unwrap();
        assert_eq!(model, "KM500B", "the answer after a NACK is its own");
        // No NUL was left over as stale bytes: the driver never had to
        // resynchronise (which probes the serial number again).
        let text = std::fs::read_to_string(&transcript).unwrap();
        let probes = text
            .lines()
            .filter(|l| l.contains(r#""frame":"Rsn""#))
            .count();
        assert_eq!(probes, 1, "serial number asked once, at connection");
    }
}

#[tokio::test]
async fn the_link_comes_back_by_itself_and_a_new_serial_is_reported() {
    let rig = rig(Options {
        serial: Some("SN-FIRST".into()),
        ..no_chip()
    })
    .await;
    let first = rig.printer.connect().await.unwrap();
    assert_eq!(first.serial, "SN-FIRST");
    let mut status = rig.printer.status();

    rig.sim
        .raise("unreachable:300".parse::<Condition>().unwrap());
    let f = rig.printer.run(Op::ReadModel).await.unwrap_err();
    assert_eq!(f.code, ErrorCode::PRT_NOT_REACHABLE, "{f}");
    // Nobody calls the printer: the supervisor reconnects on its own.
    wait_connected(&mut status).await;
    assert!(
        status.borrow().identity_change.is_none(),
        "same printer, no identity change"
    );

    // Another printer behind the same link: reported, not ignored.
    rig.sim.set_serial("SN-SECOND");
    rig.sim
        .raise("unreachable:300".parse::<Condition>().unwrap());
    let _ = rig.printer.run(Op::ReadModel).await;
    wait_connected(&mut status).await;
    let change = status
        .borrow()
        .identity_change
        .clone()
        .expect("identity change reported");
    assert_eq!(
        (
            change.previous.serial.as_str(),
            change.current.serial.as_str()
        ),
        ("SN-FIRST", "SN-SECOND")
    );
    rig.printer.acknowledge_identity_change();
    assert!(rig.printer.status().borrow().identity_change.is_none());
}

/// A card bound to its printer: once another printer answers on the link,
/// no step of the card reaches it (refused unsent, as a link failure of
/// unknown outcome, so the card goes into doubt); the binding released, the
/// new printer is used as any other.
#[tokio::test]
async fn no_step_of_a_card_goes_to_a_printer_that_does_not_hold_it() {
    let rig = rig(Options {
        serial: Some("SN-FIRST".into()),
        ..no_chip()
    })
    .await;
    rig.printer.connect().await.unwrap();
    let hold = rig.printer.hold_card(rig.printer.serial());
    let mut status = rig.printer.status();
    rig.sim.set_serial("SN-SECOND");
    rig.sim
        .raise("unreachable:300".parse::<Condition>().unwrap());
    let _ = rig.printer.run(Op::ReadModel).await;
    wait_connected(&mut status).await;
    assert_eq!(rig.printer.serial().as_deref(), Some("SN-SECOND"));
    let f = rig.printer.insert().await.unwrap_err();
    assert_eq!(f.code, ErrorCode::PRT_NOT_REACHABLE, "{f}");
    assert!(f.uncertain, "{f}");
    assert!(
        f.description.contains("SN-FIRST") && f.description.contains("SN-SECOND"),
        "{f}"
    );
    assert!(
        rig.sim.state().cards.is_empty(),
        "no card taken by the printer that does not hold it"
    );
    drop(hold);
    rig.printer.insert().await.unwrap();
    assert_eq!(rig.sim.state().cards.len(), 1);
}

async fn wait_connected(status: &mut tokio::sync::watch::Receiver<satellite::printer::LinkStatus>) {
    let ok = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        status.wait_for(|s| matches!(s.state, LinkState::Connected { .. })),
    )
    .await
    .is_ok();
    assert!(ok, "the link did not come back: {:?}", status.borrow());
}

#[tokio::test]
async fn garbage_on_the_line_is_unexpected_data_and_the_link_recovers() {
    let rig = rig(no_chip()).await;
    rig.printer.connect().await.unwrap();
    rig.sim.raise("garbage".parse::<Condition>().unwrap());
    let f = rig.printer.run(Op::ReadModel).await.unwrap_err();
    assert_eq!(f.code, ErrorCode::PRD_UNEXPECTED_DATA, "{f}");
    assert!(f.description.contains("unreadable"), "{f}");
    rig.sim.clear(None);
    assert_eq!(rig.printer.run(Op::ReadModel).await.unwrap(), "KM500B");
}

#[tokio::test]
async fn a_late_answer_is_never_taken_for_the_next_one() {
    let rig = rig(no_chip()).await;
    rig.printer.connect().await.unwrap();
    rig.sim.raise("slow:1500".parse::<Condition>().unwrap());
    let f = rig
        .printer
        .run(Op::ReadCounter(Counter::InsertedCards))
        .await
        .unwrap_err();
    assert_eq!(f.code, ErrorCode::PRT_TIMEOUT, "{f}");
    rig.sim.clear(None);
    // The counter's answer arrives late; the next command must get its own.
    assert_eq!(rig.printer.run(Op::ReadModel).await.unwrap(), "KM500B");
    assert_eq!(
        rig.printer.run(Op::ReadFirmware).await.unwrap(),
        rig.printer.connect().await.unwrap().firmware
    );
}

#[tokio::test]
async fn the_wrong_model_is_a_setup_error() {
    // An embosser answers where the profile expects a KM500B.
    let sim = printer_sim::Simulator::new({
        let mut c = printer_sim::SimConfig::for_model("instant-embosser-ie4").unwrap();
        c.speed = 0.0;
        c
    });
    let dir = tempfile::tempdir().unwrap();
    let path = sim.serve_pty(Some(&dir.path().join("p"))).await.unwrap();
    let profile =
        std::sync::Arc::new(satellite::printer::Profile::load("evolis-km500b", None).unwrap());
    let settings = satellite::printer::LinkSettings::from_profile(
        satellite::printer::Endpoint::Serial(path),
        &profile,
    );
    let printer =
        satellite::printer::Printer::new(settings, profile, Default::default(), None, false);
    let f = printer.connect().await.unwrap_err();
    assert_eq!(f.code, ErrorCode::PRT_SETUP_ERROR, "{f}");
    assert!(f.description.contains("IE4-EMB"), "{f}");
}

#[tokio::test]
async fn status_shows_faults_warnings_and_feeders() {
    let rig = rig(no_chip()).await;
    let s = rig.printer.snapshot().await.unwrap();
    assert!(s.ready(), "{:?}", s.faults);
    assert_eq!(s.feeders.len(), 2);
    rig.sim.raise("cover-open".parse::<Condition>().unwrap());
    rig.sim.set_feeder(2, 0, None).unwrap();
    let s = rig.printer.snapshot().await.unwrap();
    assert!(!s.ready());
    assert_eq!(s.faults[0].code, ErrorCode::PRT_COVER_OPEN);
    assert!(s.feeders[1].empty && !s.feeders[0].empty, "{:?}", s.feeders);
}

fn satellite_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_satellite"))
}

#[test]
fn cli_status_info_and_raw_against_the_bundled_simulator() {
    let out = satellite_bin()
        .args(["printer", "status", "--sim", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ready"], true);
    assert_eq!(v["identity"]["model"], "KM500B");

    let out = satellite_bin()
        .args([
            "printer",
            "info",
            "--sim",
            "--model",
            "instant-embosser-ie4",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("IE4-EMB") && text.contains("emboss yes"),
        "{text}"
    );

    let out = satellite_bin()
        .args(["printer", "raw", "--sim", "Rse;o", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["sent"], "Rse;o");

    let out = satellite_bin()
        .args(["printer", "status", "--device", "tcp://127.0.0.1:1"])
        .env("SATELLITE_SOCKET", "/nonexistent/api.sock")
        .output()
        .unwrap();
    // 69: the printer cannot be reached (docs/CLI.md's exit statuses).
    assert_eq!(out.status.code(), Some(69));
    assert!(String::from_utf8_lossy(&out.stderr).contains("PRT_NOT_REACHABLE"));
}

/// A colour card: Y, M, C at 64 levels and K, O at one bit, sent compressed
/// (and K once uncompressed), decoded by the simulator pixel for pixel.
#[tokio::test]
async fn whole_panels_print_compressed_and_raw() {
    use dialect::panel::{Bitmap, Levels, Panel};
    let rig = rig(no_chip()).await;
    let g = rig.printer.profile().geometry;
    let gradient = |levels: Levels, band: usize| {
        let mut b = Bitmap::blank(g, levels);
        for y in 0..g.height {
            for x in (band * 100)..(band * 100 + 180).min(g.width) {
                b.set(x, y, ((x + y) % (levels.max_value() as usize + 1)) as u8);
            }
        }
        b
    };
    let mut k = Bitmap::blank(g, Levels::Two);
    for y in 100..140 {
        for x in 50..600 {
            k.set(x, y, 1);
        }
    }
    let mut o = Bitmap::blank(g, Levels::Two);
    o.pixels.fill(1);
    let panels = vec![
        (Panel::Y, gradient(Levels::L64, 0)),
        (Panel::M, gradient(Levels::L64, 1)),
        (Panel::C, gradient(Levels::L32, 2)),
        (Panel::K, k.clone()),
        (Panel::O, o),
    ];
    let want: Vec<(String, u64)> = panels
        .iter()
        .map(|(p, b)| (p.letter().to_string(), b.inked() as u64))
        .collect();
    rig.printer.select_feeder(1).await.unwrap();
    rig.printer.insert().await.unwrap();
    rig.printer.print_panels(panels, false).await.unwrap();
    rig.printer
        .print_panels(vec![(Panel::K, k.clone())], true)
        .await
        .unwrap();
    rig.printer.present().await.unwrap();
    let state = rig.sim.state();
    let got: Vec<(String, u64)> = state.cards[0]
        .panels
        .iter()
        .map(|p| (p.panel.clone(), p.inked))
        .collect();
    let mut want = want;
    want.push(("k".into(), k.inked() as u64));
    assert_eq!(got, want);

    // A panel of the wrong size never reaches the printer.
    let small = Bitmap::blank(
        dialect::panel::Geometry {
            width: 10,
            height: 10,
        },
        Levels::Two,
    );
    let f = rig
        .printer
        .print_panels(vec![(Panel::K, small)], false)
        .await
        .unwrap_err();
    assert_eq!(f.code, ErrorCode::PRD_UNEXPECTED_DATA, "{f}");
}

/// The idle probe runs at `[printer] idle_probe_ms`: the link carries one
/// status read per period while nothing else uses it (four a second at 250
/// ms, one at the default second).
#[tokio::test]
async fn the_idle_probe_follows_idle_probe_ms() {
    async fn status_reads_in_3s(idle_probe_ms: Option<u64>) -> usize {
        let frames = tempfile::tempdir().unwrap();
        let transcript = frames.path().join("printer.jsonl");
        let record = transcript.clone();
        let k = common::kiosk::start(
            move |s| s.record = Some(record),
            move |_, c| c.printer.idle_probe_ms = idle_probe_ms,
        )
        .await;
        let began = std::time::Instant::now();
        loop {
            let a = k.client.get("/v1/status").await.unwrap();
            let b = &a.body;
            if b["state"] == "idle"
                && b["printer"]["ready"] == true
                && !b["printer"]["fullReadAt"].is_null()
            {
                break;
            }
            assert!(
                began.elapsed() < std::time::Duration::from_secs(30),
                "never idle: {b}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let reads = || {
            std::fs::read_to_string(&transcript)
                .unwrap()
                .lines()
                .filter(|l| l.contains(r#""frame":"Rst""#))
                .count()
        };
        let before = reads();
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        reads() - before
    }
    let fast = status_reads_in_3s(Some(250)).await;
    let default = status_reads_in_3s(None).await;
    assert!(fast >= 8, "{fast} status reads in 3 s at 250 ms");
    assert!(
        (2..=5).contains(&default),
        "{default} status reads in 3 s at the default 1 s"
    );
}
