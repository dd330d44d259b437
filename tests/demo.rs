//! The README's first command: `satellite demo` runs the main job end to
//! end (simulator, agent, reference central base) and checks itself against
//! the simulator's and the central base's records; it exits non-zero when
//! they disagree.

#[test]
fn the_demo_runs_and_every_status_reaches_the_central_base() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_satellite"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "acknowledged ACCEPTED (2 deliveries, each given the first answer: one card)",
        "card data fetched at its turn  ",
        "↑ central base: READY / D1 PENDING CARD_PROD_REQUESTED",
        "PRODUCED / D1 SUCCESSFUL CARD_PROD_DONE",
        "↑ D1 Track Card: PRODUCTION at DEMO0001",
        "REQUEST_ALREADY_EXISTS",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
    // Nothing secret on the screen: PANs masked, no track data.
    assert!(!stdout.contains("4000001234567899"), "{stdout}");
    assert!(!stdout.contains("=2812101"), "{stdout}");
}
