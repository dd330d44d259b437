//! The control socket, from the library and through `printer-sim ctl`.

mod common;

use common::*;
use printer_sim::control::{request, Request};
use printer_sim::Simulator;
use std::path::Path;
use std::process::Command as Process;

/// Runs `printer-sim ctl --control SOCK args...` off the async threads.
async fn ctl(sock: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = Process::new(env!("CARGO_BIN_EXE_printer-sim"));
    cmd.arg("ctl").arg("--control").arg(sock).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn ctl_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sim.sock");
    let sim = Simulator::new(fast_config("evolis-km500b"));
    sim.serve_control(&sock).await.unwrap();
    let mut c = Client::new(sim.connect());

    let (ok, out, _) = ctl(&sock, &["raise", "cover-open"]).await;
    assert!(ok, "{out}");
    assert_eq!(c.text("Si").await, "COVER OPEN");
    let (ok, out, _) = ctl(&sock, &["state", "--json"]).await;
    assert!(ok);
    let state: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(state["conditions"][0], "cover-open");
    assert_eq!(state["doors"]["cover_open"], true);
    for key in [
        "identity",
        "feeders",
        "ribbon",
        "bezel",
        "hopper",
        "reject_box",
        "counters",
        "customer",
        "customer_verdict",
        "chip",
        "cards",
        "status",
    ] {
        assert!(state.get(key).is_some(), "state --json lacks {key}");
    }
    let (ok, _, _) = ctl(&sock, &["clear", "cover-open"]).await;
    assert!(ok);
    assert_eq!(c.text("Si").await, "OK");

    // Errors are reported and the exit status says so.
    let (ok, _, err) = ctl(&sock, &["raise", "cover-opn"]).await;
    assert!(!ok);
    assert!(err.contains("cover-opn"), "{err}");
    let (ok, _, _) = ctl(&sock, &["option", "emboss", "on"]).await;
    assert!(!ok, "the KM500B has no emboss module");

    let (ok, _, _) = ctl(&sock, &["identity", "--serial", "KIOSK-7"]).await;
    assert!(ok);
    assert_eq!(c.text("Rsn").await, "KIOSK-7");
    let (ok, _, _) = ctl(&sock, &["feeder", "2", "--count", "0", "--type", "mc"]).await;
    assert!(ok);
    assert_eq!(c.text("Sk;f").await, "2");
    let (ok, _, _) = ctl(&sock, &["option", "mag", "off"]).await;
    assert!(ok);
    assert_eq!(c.text("Smw").await, "OPT NOT AVAILABLE");
    let (ok, _, _) = ctl(&sock, &["option", "mag", "on"]).await;
    assert!(ok);

    // A card printed with text, presented to a customer who never takes it.
    let (ok, _, _) = ctl(&sock, &["customer", "never"]).await;
    assert!(ok);
    for f in ["Wcb;k", &format!("Wt;40;40;0;24;{PAN}"), "Sp;k", "Se"] {
        assert_eq!(c.text(f).await, "OK", "{f}");
    }
    let (ok, out, _) = ctl(&sock, &["state"]).await;
    assert!(ok);
    assert!(out.contains("bezel #1"), "{out}");
    assert!(!out.contains(PAN));
    let (ok, out, _) = ctl(&sock, &["take"]).await;
    assert!(ok && out.trim() == "taken", "{out}");
    let (ok, out, _) = ctl(&sock, &["take"]).await;
    assert!(ok && out.contains("no card"), "{out}");

    let images = dir.path().join("images");
    let (ok, out, err) = ctl(&sock, &["dump", "1", images.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let file = out.lines().next().unwrap().to_string();
    assert!(file.ends_with("card-1-1-front-k.png"), "{out}");
    let png = std::fs::read(&file).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let (ok, _, _) = ctl(&sock, &["dump", "99", images.to_str().unwrap()]).await;
    assert!(!ok);
}

#[tokio::test]
async fn json_lines_protocol() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sim.sock");
    let sim = Simulator::new(fast_config("instant-embosser-ie4"));
    sim.serve_control(&sock).await.unwrap();
    // A stale socket file from an earlier run does not stop a new server.
    let sim2 = Simulator::new(fast_config("instant-embosser-ie4"));
    sim2.serve_control(&sock).await.unwrap();

    let a = request(
        &sock,
        &Request::Raise {
            condition: "slow:10".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(a, serde_json::json!({"ok": true}));
    assert_eq!(sim2.state().conditions, vec!["slow:10"]);
    let a = request(
        &sock,
        &Request::Customer {
            customer: "refuse".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(a["ok"], true);
    let a = request(
        &sock,
        &Request::Feeder {
            n: 4,
            count: 3,
            card_type: Some("visa".into()),
        },
    )
    .await
    .unwrap();
    assert_eq!(a["ok"], true);
    assert_eq!(sim2.state().feeders[3].count, 3);
    let a = request(
        &sock,
        &Request::Feeder {
            n: 5,
            count: 3,
            card_type: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(a["ok"], false);
    assert!(a["error"].as_str().unwrap().contains("feeder 5"));
    let a = request(&sock, &Request::State).await.unwrap();
    assert_eq!(a["state"]["identity"]["model"], "IE4-EMB");
    assert_eq!(a["state"]["customer"], "refuse");

    // Raw lines, including nonsense.
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::UnixStream::connect(&sock).await.unwrap();
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    for (line, ok) in [
        (r#"{"cmd":"raise","condition":"cover-open"}"#, true),
        (r#"{"cmd":"clear"}"#, true),
        (r#"{"cmd":"fly"}"#, false),
        ("not json", false),
        (r#"{"cmd":"option","name":"emboss","on":false}"#, true),
        (r#"{"cmd":"take"}"#, true),
    ] {
        w.write_all(format!("{line}\n").as_bytes()).await.unwrap();
        let answer: serde_json::Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(answer["ok"], ok, "{line}: {answer}");
    }
    assert!(!sim2.state().options.emboss);
    assert!(sim2.state().conditions.is_empty());
}
