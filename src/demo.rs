//! `satellite demo`: the main job on the bundled simulator. Starts a simulated
//! kiosk printer, the reference central base (which also plays the issuer's
//! webhook receiver and D1) and the daemon in a temporary directory. The
//! central base hands the agent a handful of cards (some meet faults, one has
//! its card data deferred); the demo prints every status change as it
//! happens and where it arrived upstream, and ends with a summary checked
//! against the simulator and the central base's records.

use crate::api::client::Client;
use crate::config::Config;
use crate::daemon::Daemon;
use crate::printer::Endpoint;
use crate::store::Keys;
use printer_sim::upstream::{Stub, StubConfig, StubHandle};
use printer_sim::{Condition, Customer, SimConfig, Simulator};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

struct Card {
    label: &'static str,
    request: Value,
    /// Card data the central base gives at the card's turn (deferred).
    deferred: Option<Value>,
    /// The central base delivers the request twice (a lost acknowledgement).
    twice: bool,
    /// Set the simulator up before this card.
    before: fn(&Simulator),
    /// And back after it.
    after: fn(&Simulator),
}

fn nothing(_: &Simulator) {}

/// Test-range PANs (they pass Luhn; no real card has them).
const PANS: [&str; 6] = [
    "4000001234567899",
    "4000001234567808",
    "4000001234567816",
    "4000001234567824",
    "4000001234567832",
    "4000001234567840",
];

fn request(token: &str, pan: &str, name: &str, with_chip: bool) -> Value {
    let mut r = json!({
        "cardToken": token,
        "profileId": 123456,
        "kioskId": "DEMO0001",
        "cardType": if with_chip { "debit-chip" } else { "debit" },
        "issuerRequestId": format!("req-{token}"),
        "cardId": format!("card-{token}"),
        "pan": pan,
        "expiry": "2812",
        "cardholderName": name,
        "printedLines": [
            { "text": format!("{} {} {} {}", &pan[0..4], &pan[4..8], &pan[8..12], &pan[12..16]), "slot": "pan" },
            { "text": name, "slot": "name" }
        ],
        "tracks": {
            "track1": format!("B{pan}^{}^2812101", name.replace(' ', "/")),
            "track2": format!("{pan}=2812101")
        }
    });
    if with_chip {
        r["chipScript"] = json!([
            { "apdu": "00A4040007A0000000031010", "expectSw": ["9000"] },
            { "apdu": "80E2800004DEADBEEF", "expectSw": ["9000"] }
        ]);
    }
    r
}

pub async fn run() -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    // Chip cards need pcscd (its socket) and its client library.
    let pcscd = std::path::Path::new("/run/pcscd/pcscd.comm").exists();
    let pcsc = pcscd && crate::chip::pcsc_library_available();
    let mut sim_config = SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string())?;
    sim_config.speed = 0.05;
    sim_config.customer = Customer::TakeAfter(600);
    if pcsc {
        sim_config.vpcd = Some("127.0.0.1:35963".parse().expect("address"));
    }
    let sim = Simulator::new(sim_config);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    Keys::generate(&dir.path().join("card.key")).map_err(|e| e.to_string())?;
    let mut config = Config::local(dir.path(), "DEMO0001");
    config.printer.timeouts.take = Some(4000);
    config.chip.enabled = pcsc;
    config.chip.card_wait_ms = 2000;
    let mut chip_type = config.card_types[0].clone();
    chip_type.id = "debit-chip".into();
    chip_type.chip = true;
    config.card_types.push(chip_type);
    let webhook_secret = demo_webhook_secret()?;
    let stub = Stub::start(StubConfig {
        kiosk_id: "DEMO0001".into(),
        webhook_secrets: vec![webhook_secret.clone()],
        ..StubConfig::default()
    })
    .await
    .map_err(|e| format!("the reference central base: {e}"))?;
    config.upstream = upstream_config(dir.path(), &stub, &webhook_secret)?;
    let socket = config.api.socket.clone();
    println!("satellite demo");
    println!(
        "  printer  simulated Evolis KM500B behind {} (a real pseudo-terminal)",
        link.display()
    );
    println!("  agent    local API on {}", socket.display());
    println!(
        "  upstream reference central base on {} (requests, events, heartbeat), issuer webhook, D1 Track Card API",
        stub.origin()
    );
    println!(
        "  chip     {}",
        if pcsc {
            "personalised through pcscd (the simulator plays the card for vpcd)"
        } else if pcscd {
            "PC/SC library libpcsclite.so.1 not found: chip cards left out (install libpcsclite1 to include them)"
        } else {
            "pcscd not running here: chip cards left out (bash scripts/pcscd-up.sh to include them)"
        }
    );
    println!();
    let daemon = Daemon::start(config, Some(Endpoint::Serial(link))).await?;
    let client = Client::new(&socket);
    let put = client
        .put("/v1/inventory/1", br#"{"cardType": "debit", "count": 50}"#)
        .await?;
    if put.status != 204 {
        return Err(format!("setting the inventory failed: {}", put.body));
    }
    if pcsc {
        client
            .put(
                "/v1/inventory/2",
                br#"{"cardType": "debit-chip", "count": 50}"#,
            )
            .await?;
    }

    let chip = pcsc;
    let mut bad_pan = request("demo-2", PANS[1], "JOHN SMITH", false);
    bad_pan["pan"] = json!("4000001234567801");
    let cards = vec![
        Card {
            label: "a debit card",
            request: request("demo-1", PANS[0], "JANE DOE", chip),
            deferred: None,
            twice: false,
            before: nothing,
            after: nothing,
        },
        Card {
            label: "a PAN that fails Luhn",
            request: bad_pan,
            deferred: None,
            twice: false,
            before: nothing,
            after: nothing,
        },
        Card {
            label: "the stripe reads back wrong",
            request: request("demo-3", PANS[2], "ADA LOVELACE", false),
            deferred: None,
            twice: false,
            before: |s| s.raise(Condition::MagReadMismatch),
            after: |s| s.clear(None),
        },
        Card {
            label: "the customer walks away",
            request: request("demo-4", PANS[3], "ALAN TURING", false),
            deferred: None,
            twice: false,
            before: |s| s.set_customer(Customer::Never),
            after: |s| s.set_customer(Customer::TakeAfter(600)),
        },
        Card {
            label: "another request, same token",
            request: request("demo-1", PANS[4], "JANE DOE", false),
            deferred: None,
            twice: false,
            before: nothing,
            after: nothing,
        },
        Card {
            label: "delivered twice by the central base",
            request: request("demo-6", PANS[5], "GRACE HOPPER", chip),
            deferred: None,
            twice: true,
            before: nothing,
            after: nothing,
        },
        Card {
            label: "card data fetched at its turn",
            request: without_card_data(request("demo-7", PANS[2], "KATHERINE JOHNSON", false)),
            deferred: Some(card_data_of(request(
                "demo-7",
                PANS[2],
                "KATHERINE JOHNSON",
                false,
            ))),
            twice: false,
            before: nothing,
            after: nothing,
        },
    ];
    let start = Instant::now();
    let cb = stub.control();
    let mut summary = Vec::new();
    for card in &cards {
        let token = card.request["cardToken"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        println!("── {token}: {}", card.label);
        (card.before)(&sim);
        // The central base hands the request over; the agent acknowledges it.
        if card.twice {
            cb.set_fault(
                printer_sim::upstream::Group::Intake,
                printer_sim::upstream::Fault::Duplicate,
                Some(1),
            )
            .await;
        }
        let delivery = match &card.deferred {
            Some(data) => cb.enqueue_with_data(&card.request, &token, data),
            None => cb.enqueue(&card.request),
        };
        let ack = wait_for(Duration::from_secs(30), || {
            cb.acks()
                .into_iter()
                .find(|a| a.delivery_id == delivery)
                .map(|a| a.body)
        })
        .await
        .ok_or("the agent never acknowledged the central base's request")?;
        if card.twice {
            wait_for(Duration::from_secs(10), || {
                (cb.acks()
                    .iter()
                    .filter(|a| a.delivery_id == delivery)
                    .count()
                    >= 2)
                    .then_some(())
            })
            .await;
        }
        let copies = cb
            .acks()
            .iter()
            .filter(|a| a.delivery_id == delivery)
            .count();
        println!(
            "  [{:>6.2}s] ↓ from the central base; acknowledged {}{}",
            start.elapsed().as_secs_f32(),
            ack["outcome"].as_str().unwrap_or("?"),
            if copies > 1 {
                format!(" ({copies} deliveries, each given the first answer: one card)")
            } else {
                String::new()
            }
        );
        let end = if ack["outcome"] != "ACCEPTED" {
            let line = format!(
                "{} {}",
                ack["errorCode"].as_str().unwrap_or("?"),
                ack["reason"].as_str().unwrap_or("")
            );
            println!(
                "  [{:>6.2}s] REQUEST_ERROR {line}",
                start.elapsed().as_secs_f32()
            );
            (
                "REQUEST_ERROR".to_string(),
                ack["errorCode"].as_str().unwrap_or("").to_string(),
            )
        } else {
            follow(&client, &token, start).await?
        };
        if end.1 == "REQUEST_ALREADY_EXISTS" {
            println!("  ↑ nothing new upstream: the token's status is the first request's");
        } else {
            upstream_arrivals(&stub, &token, &end.0).await;
        }
        (card.after)(&sim);
        summary.push((token, card.label, end));
    }
    println!();
    println!("{:<8} {:<36} {:<18} code", "card", "case", "status");
    for (token, label, (status, code)) in &summary {
        println!("{token:<8} {label:<36} {status:<18} {code}");
    }
    let s = sim.state();
    println!();
    println!(
        "printer (simulator's own count): {} inserted, {} presented, {} taken by customers, {} in the reject box",
        s.counters.inserted, s.counters.presented, s.counters.taken, s.counters.rejected
    );
    let produced = summary
        .iter()
        .filter(|(_, _, (st, _))| st == "PRODUCED")
        .count() as u64;
    // The last messages may still be on their way.
    let fresh_events = || cb.events().iter().filter(|e| !e.duplicate).count();
    let fresh_hooks = || cb.webhooks().iter().filter(|w| !w.duplicate).count();
    wait_for(Duration::from_secs(5), || {
        (fresh_hooks() >= fresh_events()).then_some(())
    })
    .await;
    let tracked = cb.d1_tracks().len() as u64;
    println!(
        "upstream (the central base's own records): {} status changes, {} webhook messages, {} D1 tracks, {} heartbeats",
        fresh_events(),
        fresh_hooks(),
        tracked,
        cb.heartbeat().count
    );
    daemon.stop().await;
    stub.shutdown().await;
    if tracked != produced {
        return Err(format!(
            "{produced} cards reported PRODUCED but D1 was told of {tracked}"
        ));
    }
    if produced != s.counters.taken {
        return Err(format!(
            "{produced} cards reported PRODUCED but the printer saw {} taken",
            s.counters.taken
        ));
    }
    Ok(())
}

/// Prints each status change of a card until it is final.
async fn follow(client: &Client, token: &str, start: Instant) -> Result<(String, String), String> {
    let mut seen = 0usize;
    loop {
        let a = client.get(&format!("/v1/cards/{token}")).await?;
        let events = a.body["events"].as_array().cloned().unwrap_or_default();
        for e in events.iter().skip(seen) {
            let status = e["status"].as_str().unwrap_or("?");
            let step = e["step"]
                .as_str()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let code = e["errorCode"]
                .as_str()
                .map(|c| format!(" {c}: {}", e["description"].as_str().unwrap_or("")))
                .unwrap_or_default();
            println!(
                "  [{:>6.2}s] {status}{step}{code}",
                start.elapsed().as_secs_f32()
            );
        }
        seen = events.len();
        let status = a.body["production"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if matches!(
            status.as_str(),
            "PRODUCED" | "PRODUCTION_ERROR" | "REQUEST_ERROR"
        ) {
            return Ok((
                status,
                a.body["production"]["errorCode"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
}

/// Polls `f` every 20 ms until it gives a value, at most `limit`.
async fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Prints what reached each upstream for a card, once its final status has.
async fn upstream_arrivals(stub: &StubHandle, token: &str, final_status: &str) {
    let cb = stub.control();
    let arrived = |status: &str| {
        cb.events().into_iter().any(|e| {
            e.envelope["production"]["cardToken"] == token
                && e.envelope["production"]["status"] == status
        })
    };
    if wait_for(Duration::from_secs(10), || {
        arrived(final_status).then_some(())
    })
    .await
    .is_none()
    {
        println!(
            "  ↑ the central base has not received {final_status} yet (it stays in the outbox)"
        );
        return;
    }
    let mut seen = std::collections::HashSet::new();
    let changes: Vec<String> = cb
        .events()
        .into_iter()
        .filter(|e| e.envelope["production"]["cardToken"] == token)
        .filter(|e| seen.insert(e.envelope["production"]["eventId"].to_string()))
        .map(|e| {
            let p = &e.envelope["production"];
            let op = &e.envelope["operation"];
            format!(
                "{} / D1 {} {}",
                p["status"].as_str().unwrap_or("?"),
                op["status"].as_str().unwrap_or("?"),
                op["details"]["status"].as_str().unwrap_or("?")
            )
        })
        .collect();
    println!("  ↑ central base: {}", changes.join(", "));
    let hooks = cb
        .webhooks()
        .into_iter()
        .filter(|w| w.body.contains(&format!("\"cardToken\":\"{token}\"")) && !w.duplicate)
        .count();
    println!("  ↑ issuer webhook: {hooks} signed message(s)");
    if final_status == "PRODUCED" {
        let card_id = format!("card-{token}");
        if let Some(t) = wait_for(Duration::from_secs(5), || {
            cb.d1_tracks().into_iter().find(|t| t.card_id == card_id)
        })
        .await
        {
            println!(
                "  ↑ D1 Track Card: PRODUCTION at {}, operation {}",
                t.body["productionSite"].as_str().unwrap_or("?"),
                t.operation_id
            );
        }
    }
}

/// A request's card data fields, for the central base to give later.
fn card_data_of(mut r: Value) -> Value {
    let mut data = serde_json::Map::new();
    for k in crate::request::schema::CARD_DATA_FIELDS {
        if let Some(v) = r.as_object_mut().and_then(|o| o.remove(*k)) {
            data.insert((*k).to_string(), v);
        }
    }
    Value::Object(data)
}

/// The request without its card data, flagged deferred.
fn without_card_data(mut r: Value) -> Value {
    if let Some(o) = r.as_object_mut() {
        for k in crate::request::schema::CARD_DATA_FIELDS {
            o.remove(*k);
        }
        o.insert("deferredCardData".into(), Value::Bool(true));
    }
    r
}

/// A fresh webhook secret for this run (`whsec_` and 32 random bytes).
fn demo_webhook_secret() -> Result<String, String> {
    use base64::Engine as _;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| format!("no randomness: {e}"))?;
    Ok(format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    ))
}

/// `[upstream]` for the demo: the central base (intake, events, heartbeat),
/// one issuer webhook and D1, all on the reference central base. Secrets
/// go in files only the agent can read, as on a kiosk.
fn upstream_config(
    dir: &std::path::Path,
    stub: &StubHandle,
    webhook_secret: &str,
) -> Result<crate::upstream::UpstreamConfig, String> {
    use std::os::unix::fs::PermissionsExt;
    let write = |name: &str, text: &str| -> Result<std::path::PathBuf, String> {
        let p = dir.join(name);
        std::fs::write(&p, text).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        Ok(p)
    };
    let cb_secret = write("cb.secret", "stub-secret\n")?;
    let wh_secret = write("webhook.secret", &format!("{webhook_secret}\n"))?;
    let text = format!(
        r#"
        [central_base]
        url = "{base}"
        poll_wait_s = 5
        heartbeat_s = 5
        [central_base.auth]
        token_url = "{token}"
        client_id = "satellite"
        client_secret_file = "{cb}"
        [[webhook]]
        name = "issuer"
        url = "{hook}"
        secret_file = "{wh}"
        [d1]
        url = "{d1}/banking/v1"
        issuer_id = "ISSUER1"
        [d1.auth]
        token_url = "{origin}/d1/oauth2/token"
        client_id = "satellite"
        client_secret_file = "{cb}"
        "#,
        base = stub.base_url(),
        token = stub.token_url(),
        cb = cb_secret.display(),
        hook = stub.webhook_url(),
        wh = wh_secret.display(),
        d1 = stub.d1_url(),
        origin = stub.origin(),
    );
    let c: crate::upstream::UpstreamConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
    c.check()?;
    Ok(c)
}
