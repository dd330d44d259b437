//! `silent` and `power-cycle` over real links: the line stays open, nothing
//! is answered while the printer is off, and a restart loses what was not
//! saved while the card stays where it is.

mod common;

use common::*;
use dialect::Reply;
use printer_sim::{Customer, Place, Scenario, Simulator, State};
use std::fs::File;
use std::os::fd::AsFd;
use std::path::Path;
use std::process::Command as Process;
use std::time::{Duration, Instant};

/// Runs `printer-sim ctl --control SOCK args...` (blocking).
fn ctl(sock: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Process::new(env!("CARGO_BIN_EXE_printer-sim"))
        .arg("ctl")
        .arg("--control")
        .arg(sock)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ctl_ok(sock: &Path, args: &[&str]) -> String {
    let (ok, out, err) = ctl(sock, args);
    assert!(ok, "ctl {args:?}: {err}");
    out
}

fn ctl_state(sock: &Path) -> serde_json::Value {
    serde_json::from_str(&ctl_ok(sock, &["state", "--json"])).unwrap()
}

/// Whether the pty has anything to read within `ms`.
fn readable_within(f: &File, ms: u16) -> bool {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut fds = [PollFd::new(f.as_fd(), PollFlags::POLLIN)];
    poll(&mut fds, PollTimeout::from(ms)).unwrap() > 0
}

/// Polls the state from a blocking thread.
fn wait_for(sim: &Simulator, what: &str, pred: impl Fn(&State) -> bool) -> State {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let s = sim.state();
        if pred(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {what}: {}",
            s.summary()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends a frame and reads its reply, failing (instead of hanging) when
/// none comes.
fn ask(c: &mut SyncClient<File>, probe: &File, frame: &str) -> Reply {
    c.write_raw(&cmd(frame).to_bytes().unwrap());
    assert!(
        readable_within(probe, PATIENCE.as_millis() as u16),
        "no reply to {frame}"
    );
    c.read_reply().0
}

fn text(c: &mut SyncClient<File>, probe: &File, frame: &str) -> String {
    match ask(c, probe, frame) {
        Reply::Text(t) => t,
        other => panic!("{frame}: {other:?}"),
    }
}

fn rebooted(status: &str) -> bool {
    dialect::status::parse_status_words(status)
        .unwrap()
        .bit("INF", 11)
}

#[tokio::test]
async fn silent_and_power_cycle_over_a_pty_and_the_control_socket() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer");
    let sock = dir.path().join("sim.sock");
    let mut cfg = fast_config("evolis-km500b");
    cfg.customer = Customer::Never;
    let sim = Simulator::new(cfg);
    sim.serve_pty(Some(&link)).await.unwrap();
    sim.serve_control(&sock).await.unwrap();
    let sim2 = sim.clone();
    tokio::task::spawn_blocking(move || {
        let sim = sim2;
        let port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&link)
            .unwrap();
        let probe = port.try_clone().unwrap();
        let mut c = SyncClient::with_ack_nack(port);
        assert_eq!(text(&mut c, &probe, "Pem;2"), "OK");
        assert_eq!(text(&mut c, &probe, "Si"), "OK");

        // silent: every byte consumed, nothing answered, nothing moves.
        ctl_ok(&sock, &["raise", "silent"]);
        let s = ctl_state(&sock);
        assert_eq!(s["power"], "silent");
        assert_eq!(s["conditions"][0], "silent");
        for f in ["Se", "Rtp", "Rst", "Ser"] {
            c.write_raw(&cmd(f).to_bytes().unwrap());
        }
        c.write_raw(b"\x1b\xff\xfe\r");
        assert!(
            !readable_within(&probe, 300),
            "the printer answered while silent"
        );
        let s = sim.state();
        assert_eq!(s.card_inside, Some(1), "the card did not move");
        assert_eq!(s.bezel, None);
        assert_eq!(s.counters.rejected, 0);
        assert!(s.links.reachable, "silent keeps the line");
        // Cleared: the same open port is answered, and the first reply is the
        // new command's (the swallowed ones never come).
        ctl_ok(&sock, &["clear", "silent"]);
        assert_eq!(ctl_state(&sock)["power"], "on");
        assert_eq!(text(&mut c, &probe, "Rsn"), "SIM000001");
        assert_eq!(text(&mut c, &probe, "Rlr;p"), "CARD");

        // power-cycle with a long boot: silent until it ends (here, cleared).
        // Host mode, then ACK/NACK on top of it (the guide's list), unsaved.
        assert_eq!(text(&mut c, &probe, "Pem;2"), "OK");
        assert_eq!(text(&mut c, &probe, "Pem;4"), "OK");
        assert_eq!(ask(&mut c, &probe, "Pmi;F"), Reply::Ack);
        ctl_ok(&sock, &["raise", "power-cycle:60000"]);
        let s = ctl_state(&sock);
        assert_eq!(s["power"], "booting");
        assert_eq!(s["error_mode"], 0, "the unsaved mode is already gone");
        c.write_raw(&cmd("Rtp").to_bytes().unwrap());
        c.write_raw(&cmd("Rst").to_bytes().unwrap());
        assert!(
            !readable_within(&probe, 300),
            "the printer answered while booting"
        );
        ctl_ok(&sock, &["clear", "power-cycle"]);
        // Text words again, the saved mode (0), the card still inside.
        assert_eq!(text(&mut c, &probe, "Rem"), "0;0");
        assert_eq!(ask(&mut c, &probe, "Pmi;F"), Reply::Text("OK".into()));
        assert_eq!(text(&mut c, &probe, "Rlr;p"), "CARD");
        let st = text(&mut c, &probe, "Rst");
        assert!(rebooted(&st), "{st}");
        assert!(
            dialect::status::parse_status_words(&st)
                .unwrap()
                .bit("INF", 1),
            "the card is reported at the print position: {st}"
        );
        let st = text(&mut c, &probe, "Rst");
        assert!(!rebooted(&st), "reported once only: {st}");

        // A saved mode survives; this time the boot ends by itself.
        assert_eq!(text(&mut c, &probe, "Pem;2;s"), "OK");
        assert_eq!(text(&mut c, &probe, "Pem;4;s"), "OK");
        assert_eq!(
            ask(&mut c, &probe, "Pem;2"),
            Reply::Ack,
            "Pem answers in the mode it arrived in"
        );
        ctl_ok(&sock, &["raise", "power-cycle:300"]);
        wait_for(&sim, "the end of the boot", |s| {
            s.power == printer_sim::state::Power::On
        });
        // The saved mode with its saved ACK/NACK.
        assert_eq!(text(&mut c, &probe, "Rem"), "2;2");
        assert_eq!(ask(&mut c, &probe, "Pmi;F"), Reply::Ack);
        assert!(rebooted(&text(&mut c, &probe, "Rst")));

        // The whole story is in the state.
        let s = ctl_state(&sock);
        assert_eq!(s["saved_error_mode"], 2);
        let log: Vec<String> = s["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["what"].as_str().unwrap().to_string())
            .collect();
        for want in [
            "power off: silent",
            "power cycle: power off",
            "booted",
            "power on",
        ] {
            assert!(
                log.iter().any(|e| e.starts_with(want)),
                "{want} not in {log:?}"
            );
        }
        assert_eq!(s["cards"][0]["place"], "inside");
        let summary = ctl_ok(&sock, &["state"]);
        assert!(summary.contains("power    on"), "{summary}");
        let (ok, _, err) = ctl(&sock, &["raise", "silent:soon"]);
        assert!(!ok && err.contains("soon"), "{err}");
    })
    .await
    .unwrap();
    assert_eq!(sim.state().cards[0].place, Place::Inside);
}

#[tokio::test]
async fn both_conditions_from_a_scenario_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("power.toml");
    std::fs::write(
        &file,
        r#"
[[at]]
card = 1
step = "magnetic"
raise = "silent:200"
[[at]]
card = 1
step = "eject"
raise = "power-cycle"
"#,
    )
    .unwrap();
    let mut cfg = fast_config("evolis-km500b");
    cfg.scenario = Some(Scenario::load(&file).unwrap());
    let sim = Simulator::new(cfg);
    let mut c = Client::new(sim.connect());
    assert_eq!(c.text("Pem;2").await, "OK");
    assert_eq!(c.text("Si").await, "OK");
    assert_eq!(c.text(&format!("Dm;2;{PAN}=2812101")).await, "OK");
    // Silent as the write arrives: swallowed, and the silence ends by itself.
    c.send(&cmd("Smw")).await;
    wait_state(&sim, "the silence", |s| {
        s.events.iter().any(|e| e.what == "silence over")
    })
    .await;
    assert_eq!(c.text("Rsn").await, "SIM000001", "Smw was never answered");
    assert!(sim.state().cards[0].tracks.is_empty(), "nor carried out");
    // Power cycle as the eject arrives: swallowed too, the card stays inside.
    c.send(&cmd("Se")).await;
    let s = wait_state(&sim, "the boot", |s| {
        s.events.iter().any(|e| e.what.starts_with("booted"))
    })
    .await;
    assert_eq!(s.cards[0].place, Place::Inside);
    assert_eq!(c.text("Rlr;p").await, "CARD");
    assert!(rebooted(&c.text("Rst").await));
    assert!(!rebooted(&c.text("Rst").await));
    assert_eq!(c.text("Se").await, "OK");
}

#[test]
fn the_help_names_both() {
    let out = Process::new(env!("CARGO_BIN_EXE_printer-sim"))
        .args(["ctl", "raise", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("silent[:ms]") && help.contains("power-cycle[:ms]"),
        "{help}"
    );
}
