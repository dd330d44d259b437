//! The technicians' commands, run as a technician runs them: the real
//! `satellite` binary against a running agent (real store, the simulator
//! over a pty, the reference central base and an issuer webhook on
//! loopback), each `--json` answer checked field by field, the exit
//! statuses of docs/CLI.md, `--direct` refused while the agent runs, and a
//! support bundle scanned for card data and secrets.

mod common;

use common::kiosk::cli;
use common::upstream::{self, request, until, WEBHOOK_SECRET};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Output;

fn json_of(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The configuration file the commands read (the agent itself was started
/// with the same settings in memory): the store where the agent keeps it,
/// the webhook's secret in a file of its own.
fn config_file(dir: &Path) -> PathBuf {
    let path = dir.join("satellite.toml");
    let text = format!(
        r#"{local}
[upstream]
[[upstream.webhook]]
name = "issuer"
url = "https://issuer.example/hooks"
secret_file = "{secret}"
"#,
        local = satellite::config::Config::local_text(dir, "KIOSK01", "sim"),
        secret = dir.join("webhook.secret").display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

async fn settle(k: &upstream::Upstreamed, token: &str) -> Value {
    for _ in 0..500 {
        let a = k
            .kiosk
            .client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap();
        let s = a.body["status"].as_str().unwrap_or("").to_string();
        if s == "PRODUCED" || s == "PRODUCTION_ERROR" {
            return a.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("card {token} never settled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_through_the_running_agent() {
    let k = upstream::start(&["cb", "webhook"], false, |_| {}).await;
    let dir = k.kiosk.dir.path().to_path_buf();
    let config = config_file(&dir);
    let sock = k.kiosk.socket.clone();
    let pan_ok = upstream::pan(1);
    let pan_bad = upstream::pan(2);
    let submit = |token: &str, pan: &str| {
        let body = request(token, pan).to_string();
        let client = k.kiosk.client.clone();
        async move {
            let a = client.post("/v1/cards", body.as_bytes()).await.unwrap();
            assert_eq!(a.status, 201, "{}", a.body);
        }
    };
    submit("tech-ok", &pan_ok).await;
    assert_eq!(settle(&k, "tech-ok").await["status"], "PRODUCED");
    k.kiosk.sim.raise("mag-write-fail".parse().unwrap());
    submit("tech-bad", &pan_bad).await;
    let bad = settle(&k, "tech-bad").await;
    assert_eq!(bad["status"], "PRODUCTION_ERROR");
    k.kiosk.sim.clear(None);
    let c = k.stub.control();
    until("the central base's heartbeat", 20, || {
        c.heartbeat().count >= 2
    })
    .await;

    // status: one screen, and its JSON.
    let o = cli(&sock, &config, &["status", "--json"]).await;
    let s = json_of(&o);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(s["kioskId"], "KIOSK01");
    assert_eq!(s["printer"]["ready"], true);
    assert_eq!(s["queueDepth"], 0);
    assert!(s["outbox"]["central-base"]["depth"].is_u64(), "{s}");
    assert!(s["outbox"]["issuer"]["deadLetters"].is_u64(), "{s}");
    assert!(
        s["upstream"]["central-base-api"]["clockSkewMs"].is_i64(),
        "the heartbeat's server time gives the clock skew: {s}"
    );
    let o = cli(&sock, &config, &["status"]).await;
    let screen = text(&o);
    for line in [
        "Agent ",
        "Printer    READY",
        "Feeders ",
        "Queue      0 waiting",
        "central-base",
    ] {
        assert!(screen.contains(line), "{line:?} missing:\n{screen}");
    }
    assert!(
        !screen.contains('\u{1b}'),
        "no colour when not a terminal:\n{screen}"
    );

    // jobs
    let o = cli(&sock, &config, &["jobs", "list", "--json"]).await;
    let cards = json_of(&o)["cards"].as_array().unwrap().clone();
    assert_eq!(cards.len(), 2);
    assert_eq!(cards[0]["cardToken"], "tech-bad", "newest first");
    assert_eq!(cards[0]["production"]["status"], "PRODUCTION_ERROR");
    assert_eq!(cards[0]["production"]["errorCode"], bad["errorCode"]);
    assert_eq!(cards[1]["production"]["status"], "PRODUCED");
    assert_eq!(
        cards[1]["pan"],
        format!("{}******{}", &pan_ok[..6], &pan_ok[12..])
    );
    let o = cli(
        &sock,
        &config,
        &["jobs", "list", "--status", "PRODUCED", "--json"],
    )
    .await;
    let only = json_of(&o)["cards"].as_array().unwrap().clone();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0]["cardToken"], "tech-ok");
    let o = cli(&sock, &config, &["jobs", "show", "tech-ok", "--json"]).await;
    let shown = json_of(&o);
    let statuses: Vec<&str> = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"READY"));
    assert_eq!(statuses.last(), Some(&"PRODUCED"));
    let o = cli(&sock, &config, &["jobs", "show", "no-such-card"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("NOT_FOUND"), "{}", text(&o));
    let o = cli(&sock, &config, &["jobs", "cancel", "tech-ok"]).await;
    assert_ne!(
        o.status.code(),
        Some(0),
        "a produced card cannot be cancelled"
    );

    // inventory
    let o = cli(
        &sock,
        &config,
        &["inventory", "set", "2", "debit", "7", "--json"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let o = cli(&sock, &config, &["inventory", "show", "--json"]).await;
    let feeders = json_of(&o);
    assert_eq!(feeders[1]["feeder"], 2);
    assert_eq!(feeders[1]["cardType"], "debit");
    assert_eq!(feeders[1]["count"], 7);
    assert_eq!(feeders[0]["count"], 18, "20 loaded, 2 cards used");

    // outbox
    let o = cli(&sock, &config, &["outbox", "list", "--json"]).await;
    let sinks: Vec<String> = json_of(&o)["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["sink"].as_str().unwrap().to_string())
        .collect();
    assert!(sinks.contains(&"central-base".to_string()) && sinks.contains(&"issuer".to_string()));
    let o = cli(&sock, &config, &["outbox", "retry", "issuer", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(json_of(&o)["retried"].is_u64());
    let o = cli(&sock, &config, &["outbox", "retry", "nowhere"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // printer, through the agent
    let o = cli(&sock, &config, &["printer", "info", "--json"]).await;
    let info = json_of(&o);
    assert_eq!(info["identity"]["model"], "KM500B");
    assert_eq!(info["profile"]["id"], "evolis-km500b");
    assert_eq!(info["capabilities"]["feeders"], 2);
    let o = cli(&sock, &config, &["printer", "status", "--json"]).await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let st = json_of(&o);
    assert_eq!(st["ready"], true);
    assert!(
        st["counters"]["inserted_cards"].as_u64().unwrap() >= 2,
        "{st}"
    );
    let o = cli(&sock, &config, &["printer", "raw", "Rse;o", "--json"]).await;
    let raw = json_of(&o);
    assert_eq!(raw["sent"], "Rse;o");
    assert!(
        raw["reply"].as_str().unwrap().parse::<f64>().is_ok(),
        "{raw}"
    );
    for op in ["clean", "test-card", "reset"] {
        let o = cli(&sock, &config, &["printer", op, "--json"]).await;
        assert_eq!(o.status.code(), Some(0), "{op}: {}", text(&o));
        let done = json_of(&o);
        assert_eq!(done["operation"], op);
        assert!(done["fault"].is_null(), "{done}");
    }
    let state = k.kiosk.sim.state();
    assert_eq!(
        state.counters.cleanings, 1,
        "the cleaning ran on the printer"
    );
    assert!(
        state.cards.iter().any(|c| c.test_card),
        "the test card was printed"
    );
    let o = cli(
        &sock,
        &config,
        &["printer", "trace", "--last", "500", "--json"],
    )
    .await;
    let sent: Vec<String> = json_of(&o)["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sent"].as_str().unwrap().to_string())
        .collect();
    for mnemonic in ["Scp", "St", "Srs", "Rse;o"] {
        assert!(
            sent.iter().any(|s| s == mnemonic),
            "{mnemonic} not traced: {sent:?}"
        );
    }
    // The agent still produces after the technician's operations.
    submit("tech-after", &upstream::pan(3)).await;
    assert_eq!(settle(&k, "tech-after").await["status"], "PRODUCED");

    // --direct while the agent runs: refused, saying why.
    let o = cli(&sock, &config, &["printer", "status", "--direct"]).await;
    assert_eq!(o.status.code(), Some(75), "{}", text(&o));
    assert!(text(&o).contains("owns the printer's port"), "{}", text(&o));

    // doctor: every check, the worst result as the exit status.
    let o = cli(&sock, &config, &["doctor", "--json"]).await;
    let d = json_of(&o);
    let result = |id: &str| {
        d["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("no check {id}: {d}"))["result"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for id in [
        "config",
        "agent",
        "printer-link",
        "printer-identity",
        "sensors",
        "cleaning",
        "ribbon",
        "reject-box",
        "pcsc-library",
        "pcsc-reader",
        "upstream",
        "clock",
        "disk",
        "store",
        "dead-letters",
    ] {
        assert_eq!(result(id), "PASS", "{id}: {d}");
    }
    assert_eq!(result("watchdog"), "WARN", "not under systemd here");
    let worst = d["result"].as_str().unwrap();
    let want = match worst {
        "PASS" => 0,
        "WARN" => 1,
        _ => 2,
    };
    assert_eq!(o.status.code(), Some(want), "{d}");

    k.kiosk.daemon.stop().await;

    // The agent stopped: every command says so, with 69.
    let o = cli(&sock, &config, &["status"]).await;
    assert_eq!(o.status.code(), Some(69), "{}", text(&o));
    assert!(text(&o).contains("does not answer"), "{}", text(&o));
    let o = cli(&sock, &config, &["doctor", "--json"]).await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(json_of(&o)["result"], "FAIL");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_support_bundle_holds_no_card_data_and_no_secret() {
    let k = upstream::start(&["cb", "webhook"], false, |_| {}).await;
    let dir = k.kiosk.dir.path().to_path_buf();
    let config = config_file(&dir);
    std::fs::write(dir.join("webhook.secret"), WEBHOOK_SECRET).unwrap();
    let pans: Vec<String> = (10..13).map(upstream::pan).collect();
    for (i, pan) in pans.iter().enumerate() {
        let mut body = request(&format!("bundle-{i}"), pan);
        body["tracks"]["track1"] = format!("B{pan}^LOVELACE/ADA^2812101000000000").into();
        let a = k
            .kiosk
            .client
            .post("/v1/cards", body.to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
    }
    for i in 0..pans.len() {
        settle(&k, &format!("bundle-{i}")).await;
    }
    let out = dir.join("bundle.tar.gz");
    let o = cli(
        &k.kiosk.socket,
        &config,
        &["diag", "bundle", "--out", out.to_str().unwrap(), "--json"],
    )
    .await;
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600,
        "the bundle is readable by its owner only"
    );
    let mut files = std::collections::BTreeMap::new();
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&out).unwrap());
    let mut archive = tar::Archive::new(gz);
    for entry in archive.entries().unwrap() {
        let mut e = entry.unwrap();
        let name = e
            .path()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let mut text = String::new();
        e.read_to_string(&mut text).unwrap();
        files.insert(name, text);
    }
    for want in [
        "config.toml",
        "status.json",
        "doctor.json",
        "store.json",
        "printer.json",
        "printer-info.json",
        "outbox.json",
        "cards.json",
        "trace.json",
        "logs.txt",
        "manifest.json",
    ] {
        assert!(
            files.contains_key(want),
            "{want} missing: {:?}",
            files.keys()
        );
    }
    assert!(
        files["cards.json"].contains("bundle-2"),
        "the recent cards are there"
    );
    assert!(
        files["trace.json"].contains("Smw"),
        "the wire trace is there"
    );
    assert!(
        files["config.toml"].contains("webhook.secret"),
        "where the secret is, kept"
    );
    // Nothing a card or a credential would leak by.
    let mut forbidden: Vec<String> = pans.clone();
    forbidden.extend(pans.iter().map(|p| format!("{p}=2812101")));
    forbidden.extend([
        "LOVELACE/ADA".to_string(),
        "=2812101".to_string(),
        WEBHOOK_SECRET.to_string(),
        WEBHOOK_SECRET.trim_start_matches("whsec_").to_string(),
        "stub-secret".to_string(),
    ]);
    for (name, text) in &files {
        for f in &forbidden {
            assert!(!text.contains(f.as_str()), "{name} holds {f:?}");
        }
        assert!(
            !text.to_lowercase().contains("bearer ey"),
            "{name} holds a token"
        );
    }
    k.kiosk.daemon.stop().await;
}
