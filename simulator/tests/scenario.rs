//! Scenario files: parsing from disk and triggering through a live link.

mod common;

use common::*;
use printer_sim::{Scenario, Simulator};

#[tokio::test]
async fn wall_clock_entries_raise_and_clear() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, "[[at]]\nafter_ms = 50\nraise = \"cover-open\"\n[[at]]\nafter_ms = 400\nclear = \"cover-open\"\n").unwrap();
    let mut cfg = fast_config("evolis-km500b");
    cfg.scenario = Some(Scenario::load(&file).unwrap());
    let sim = Simulator::new(cfg);
    let mut c = Client::new(sim.connect());
    wait_state(&sim, "cover open", |s| s.doors.cover_open).await;
    // The state may move on at any time: only check the reply fits one of the two.
    let r = c.text("Si").await;
    assert!(r == "COVER OPEN" || r == "OK", "{r}");
    wait_state(&sim, "cover closed again", |s| !s.doors.cover_open).await;
}

#[tokio::test]
async fn card_steps_through_a_link() {
    let mut cfg = fast_config("evolis-km500b");
    cfg.scenario = Some(
        Scenario::parse(
            "inline",
            r#"
[[at]]
card = 2
step = "magnetic"
raise = "mag-write-fail"
[[at]]
card = 2
step = "eject"
clear = "mag-write-fail"
[[at]]
card = 3
step = "smart"
raise = "card-not-in-reader"
[[at]]
card = 3
step = "take"
raise = "paused"
"#,
        )
        .unwrap(),
    );
    let sim = Simulator::new(cfg);
    let mut c = Client::new(sim.connect());
    let steps = run_card(&mut c).await;
    assert!(
        steps.iter().all(|(f, r)| r == "OK" || f.starts_with("Smr")),
        "{steps:?}"
    );
    wait_state(&sim, "card 1 taken", |s| s.counters.taken == 1).await;

    let steps = run_card(&mut c).await;
    let smw = steps.iter().find(|(f, _)| f == "Smw").unwrap();
    assert_eq!(smw.1, "ERROR MAG");
    let st = c.text("Rst").await;
    let words = dialect::status::parse_status_words(&st).unwrap();
    assert!(words.bit("ERR", 11), "{st}");
    assert!(
        sim.state().conditions.is_empty(),
        "cleared at the eject step"
    );
    wait_state(&sim, "card 2 taken", |s| s.counters.taken == 2).await;

    run_card(&mut c).await;
    let s = wait_state(&sim, "card 3 taken, then the pause", |s| {
        s.counters.taken == 3 && s.paused
    })
    .await;
    assert_eq!(s.conditions, vec!["card-not-in-reader", "paused"]);
    assert_eq!(c.text("Si").await, "PRINTER PAUSED");
}

#[test]
fn a_bad_file_names_the_entry() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[[at]]\ncard = 1\nraise = \"paused\"\n[[at]]\ncard = 2\nstep = \"laminate\"\nraise = \"paused\"\n").unwrap();
    let e = Scenario::load(&file).unwrap_err().to_string();
    assert!(
        e.contains("entry 2") && e.contains("laminate") && e.contains("bad.toml"),
        "{e}"
    );
    assert!(Scenario::load(&dir.path().join("missing.toml")).is_err());
}

#[test]
fn the_binary_refuses_a_bad_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[[at]]\nafter_ms = 1\nraise = \"fire\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_printer-sim"))
        .args(["--speed", "0", "--tcp", "127.0.0.1:0", "--scenario"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("entry 1") && err.contains("fire"), "{err}");
}
