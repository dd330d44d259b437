//! A KM500B on an older firmware (`evolis-km500b-older`): no status words,
//! only the guide's sensors, `Rlr;p` answered `NO CARD` / `ERR CARD`. The
//! agent drives it from the guide's commands alone, over a real
//! pseudo-terminal, against a simulator that refuses what that firmware
//! refuses. Every run records the simulator's transcript, and the key check
//! is on it: the printer never received `Rst`, `Rse;f`, `Rse;n` or `Rse;b`.

mod common;

use common::*;
use printer_sim::transcript::{Dir, Transcript};
use printer_sim::{Condition, Customer, Place, Scenario};
use satellite::codes::ErrorCode::{self, *};
use satellite::printer::steps::CardWhere;
use std::path::Path;
use std::time::Duration;

const OLDER: &str = "evolis-km500b-older";

/// Each frame the simulator received, with the reply it sent (if any).
fn exchanges(path: &Path) -> Vec<(String, Option<String>)> {
    let t = Transcript::load(path).unwrap();
    let mut out: Vec<(String, Option<String>)> = Vec::new();
    for e in t.entries {
        match e.dir {
            Dir::In => out.push((e.frame.unwrap_or_default(), None)),
            Dir::Out => {
                if let Some(last) = out.last_mut().filter(|l| l.1.is_none()) {
                    last.1 = e.reply;
                }
            }
        }
    }
    out
}

/// The key check: nothing outside the guide reached the printer.
fn assert_guide_commands_only(path: &Path, label: &str) {
    let ex = exchanges(path);
    assert!(!ex.is_empty(), "{label}: nothing recorded");
    for (frame, reply) in &ex {
        let mnemonic = frame.split(';').next().unwrap_or_default();
        assert_ne!(
            mnemonic, "Rst",
            "{label}: the agent sent Rst (answered {reply:?})"
        );
        assert!(
            !["Rse;f", "Rse;n", "Rse;b"].contains(&frame.as_str()),
            "{label}: the agent sent {frame} (answered {reply:?})"
        );
        assert_ne!(
            reply.as_deref(),
            Some("ERROR CDE"),
            "{label}: the printer refused {frame} as unknown"
        );
    }
}

fn answered(path: &Path, frame: &str, reply: &str) -> bool {
    exchanges(path)
        .iter()
        .any(|(f, r)| f == frame && r.as_deref() == Some(reply))
}

async fn older_rig(record: &Path) -> Rig {
    let rig = rig(Options {
        model: OLDER,
        chip: false,
        record: Some(record.to_path_buf()),
        ..Options::default()
    })
    .await;
    rig.printer.connect().await.unwrap();
    rig
}

/// Where the engine would look after a fault: the card, located and rejected.
async fn locate_and_reject(rig: &Rig, label: &str) -> CardWhere {
    let w = rig
        .printer
        .locate_card()
        .await
        .unwrap_or_else(|f| panic!("{label}: locate: {f}"));
    if w != CardWhere::None {
        rig.printer
            .reject()
            .await
            .unwrap_or_else(|f| panic!("{label}: reject: {f}"));
    }
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_is_produced_taken_or_retracted_with_the_guides_commands_alone() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("older.jsonl");
    let rig = older_rig(&record).await;
    // Taken: the bezel is watched through `Rlr;p` (ERR CARD while it waits,
    // NO CARD once the customer has it).
    produce_one(&rig, &test_card(), |_| {}).await.unwrap();
    assert_eq!(rig.sim.state().counters.taken, 1);
    // Not taken: retracted after the take time-out, PRD_TIMEOUT.
    rig.sim.set_customer(Customer::Never);
    let f = produce_one(&rig, &test_card(), |_| {}).await.unwrap_err();
    assert_eq!(f.code, PRD_TIMEOUT, "{f}");
    assert!(f.description.contains("retracted"), "{f}");
    let s = rig.sim.state();
    assert_eq!((s.counters.taken, s.counters.rejected), (1, 1));
    assert_eq!(s.cards[1].place, Place::RejectBox);
    assert!(answered(&record, "Rlr;p", "ERR CARD"));
    assert!(answered(&record, "Rlr;p", "NO CARD"));
    // The readiness check passes without status words (a fault shows at
    // the step that meets it).
    rig.printer.check_ready().await.unwrap();
    assert_guide_commands_only(&record, "produce, take, retract");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_keep_their_standard_codes_from_the_reply_words() {
    // (condition, the step it bites at or None for present before the card, code)
    let rows: [(&str, Option<Step>, ErrorCode); 10] = [
        ("feeder-empty", None, PRD_FEEDER_EMPTY),
        ("feeder-empty", Some(Step::Insert), PRD_FEEDER_EMPTY),
        ("cover-open", None, PRT_COVER_OPEN),
        ("cover-open", Some(Step::Magnetic), PRT_COVER_OPEN),
        ("locked", Some(Step::Insert), PRT_LOCK_ERROR),
        ("feeder-jam", Some(Step::Insert), PRD_FEEDER_JAM),
        // No flag says where the card jammed: the command that failed does
        // (`Se` is on the way out).
        ("hopper-jam", Some(Step::Present), PRD_HOPPER_JAM),
        ("hopper-full", Some(Step::Present), PRD_HOPPER_FULL),
        ("mag-read-mismatch", Some(Step::Magnetic), PRD_MAGSTRIPE),
        // No flag to say the ribbon is missing: the reply word's own code.
        ("ribbon-missing", Some(Step::Print), PRT_RIBBON),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, (condition, at, code)) in rows.into_iter().enumerate() {
        let label = format!("{condition} at {at:?}");
        let record = dir.path().join(format!("row{i}.jsonl"));
        let rig = older_rig(&record).await;
        let raise = || rig.sim.raise(condition.parse::<Condition>().unwrap());
        if at.is_none() {
            raise();
        }
        let f = produce_one(&rig, &test_card(), |step| {
            if Some(step) == at {
                raise();
            }
        })
        .await
        .expect_err(&label);
        assert_eq!(f.code, code, "{label}: {f}");
        assert!(!f.description.contains("4000001234567899"), "{label}: {f}");
        // Cleared, then the card is looked for and rejected, as the engine does.
        rig.sim.clear(None);
        locate_and_reject(&rig, &label).await;
        let s = rig.sim.state();
        assert_eq!(s.counters.taken, 0, "{label}");
        for card in &s.cards {
            assert!(
                matches!(card.place, Place::RejectBox | Place::Removed),
                "{label}: card {} ended at {:?}",
                card.seq,
                card.place
            );
        }
        assert_guide_commands_only(&record, &label);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_in_the_printer_is_err_card_located_inside_and_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("locate.jsonl");
    let rig = older_rig(&record).await;
    assert_eq!(rig.printer.locate_card().await.unwrap(), CardWhere::None);
    rig.printer.select_feeder(1).await.unwrap();
    rig.printer.insert().await.unwrap();
    rig.printer.to_smart_station().await.unwrap();
    // The driver keeps nothing of the card: it asks the printer, which
    // says only that a card is there.
    assert_eq!(
        locate_and_reject(&rig, "at the smart station").await,
        CardWhere::Inside
    );
    assert_eq!(rig.sim.state().cards[0].place, Place::RejectBox);
    assert!(answered(&record, "Rlr;p", "ERR CARD"));
    assert_eq!(rig.printer.locate_card().await.unwrap(), CardWhere::None);
    // What a technician sees: no status words, the sensors the firmware
    // lacks said so, the older words read.
    let s = rig.printer.snapshot().await.unwrap();
    assert_eq!(s.status_words, None);
    assert!(s.ready(), "no fault known");
    for key in ["status_words", "feeder", "feeder_near_empty", "bezel"] {
        assert!(
            s.unavailable.contains_key(key),
            "{key}: {:?}",
            s.unavailable
        );
    }
    for key in [
        "cover",
        "card_present",
        "colour",
        "mag_feeder_stop",
        "coded_disc",
    ] {
        assert!(s.sensors.contains_key(key), "{key}: {:?}", s.sensors);
    }
    assert_eq!(s.card_position.as_deref(), Some("NO CARD"));
    assert_guide_commands_only(&record, "locate, reject, snapshot");
}

/// The whole agent on the older firmware: the engine, its idle probes and
/// full readings, and its recovery after a restart in the middle of a card,
/// which finds the card with `Rlr;p` answering `ERR CARD` and rejects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_recovers_a_card_after_a_restart_from_err_card() {
    use satellite::config::Config;
    use satellite::daemon::Daemon;
    use satellite::printer::Endpoint;
    use serde_json::{json, Value};

    let dir_rec = tempfile::tempdir().unwrap();
    let record = dir_rec.path().join("kiosk.jsonl");
    let configure = |cfg: &mut Config| {
        cfg.printer.model = OLDER.into();
        cfg.printer.timeouts.take = Some(400);
        cfg.printer.timeouts.command = Some(600);
        cfg.printer.timeouts.movement = Some(1000);
        cfg.printer.timeouts.magnetic = Some(1000);
    };
    let scenario = "[[at]]\ncard = 1\nstep = \"magnetic\"\nraise = \"silent\"\n";
    let p = kiosk::start(
        |c| {
            c.profile = printer_sim::Profile::embedded(OLDER).unwrap();
            c.scenario = Some(Scenario::parse("restart", scenario).unwrap());
            c.record = Some(record.clone());
        },
        |_, cfg| configure(cfg),
    )
    .await;
    kiosk::stock(&p.client).await;
    let client = p.client;
    let request = |token: &str, pan: &str| {
        json!({
            "cardToken": token, "profileId": 42, "kioskId": "KIOSK01", "cardType": "debit",
            "issuerRequestId": format!("req-{token}"), "cardId": format!("card-{token}"),
            "pan": pan, "expiry": "2812", "cardholderName": "JANE DOE",
            "printedLines": [{ "text": "JANE DOE", "slot": "name" }],
            "tracks": { "track1": format!("B{pan}^DOE/JANE^2812101"), "track2": format!("{pan}=2812101") }
        })
    };
    let submit = |token: &'static str, pan: &'static str| {
        let body = request(token, pan).to_string();
        let client = &client;
        async move {
            let a = client.post("/v1/cards", body.as_bytes()).await.unwrap();
            assert_eq!(a.status, 201, "{}", a.body);
        }
    };
    let settle = |token: &'static str| {
        let client = &client;
        async move {
            for _ in 0..1000 {
                let a = client
                    .get(&format!("/v1/cards/{token}/production"))
                    .await
                    .unwrap();
                if matches!(
                    a.body["status"].as_str(),
                    Some("PRODUCED" | "PRODUCTION_ERROR")
                ) {
                    return a.body;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            panic!("card {token} never settled");
        }
    };

    // The printer goes silent under card 1's magnetic step: in doubt.
    submit("c1", "4000001234567899").await;
    let mut engine = Value::Null;
    for _ in 0..500 {
        engine = client.get("/v1/status").await.unwrap().body["engine"].clone();
        if engine["state"] == "card_in_doubt" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(engine["state"], "card_in_doubt", "{engine}");
    // The agent restarts; the printer answers again meanwhile.
    p.daemon.stop().await;
    p.sim.clear(None);
    let mut cfg = Config::local(p.dir.path(), "KIOSK01");
    configure(&mut cfg);
    let daemon = Daemon::start(cfg, Some(Endpoint::Serial(p.dir.path().join("printer"))))
        .await
        .unwrap();
    let first = settle("c1").await;
    assert_eq!(first["status"], "PRODUCTION_ERROR", "{first}");
    let d = first["description"].as_str().unwrap();
    assert!(
        d.contains("the agent restarted") && d.contains("reject box"),
        "{first}"
    );
    assert_eq!(p.sim.state().cards[0].place, Place::RejectBox);
    assert!(
        answered(&record, "Rlr;p", "ERR CARD"),
        "the card was located by the older words"
    );
    // The next card is produced, and one the customer leaves is retracted.
    submit("c2", "4000001234567808").await;
    assert_eq!(settle("c2").await["status"], "PRODUCED");
    p.sim.set_customer(Customer::Never);
    submit("c3", "4000001234567816").await;
    let third = settle("c3").await;
    assert_eq!(third["errorCode"], "PRD_TIMEOUT", "{third}");
    let s = p.sim.state();
    assert_eq!(s.counters.taken, 1, "no card twice");
    assert_eq!(s.cards[2].place, Place::RejectBox);
    // Let the idle monitor probe a while too, then the key check.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    daemon.stop().await;
    assert_guide_commands_only(&record, "the whole agent");
}

/// A power cycle under a card, on a firmware whose status words cannot
/// show a restart: the command it swallowed times out, and the error mode
/// (`Rem`, a guide command), fallen back to the saved one, tells the agent
/// the printer restarted. The card's description says so; the card is in
/// the reject box.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_power_cycle_under_a_card_is_told_by_the_error_mode() {
    use serde_json::json;
    let dir_rec = tempfile::tempdir().unwrap();
    let record = dir_rec.path().join("kiosk.jsonl");
    let scenario = "[[at]]\ncard = 1\nstep = \"magnetic\"\nraise = \"power-cycle:400\"\n";
    let p = kiosk::start(
        |c| {
            c.profile = printer_sim::Profile::embedded(OLDER).unwrap();
            c.scenario = Some(Scenario::parse("power", scenario).unwrap());
            c.record = Some(record.clone());
        },
        |_, cfg| {
            cfg.printer.model = OLDER.into();
            cfg.printer.timeouts.take = Some(1500);
            cfg.printer.timeouts.command = Some(600);
            cfg.printer.timeouts.movement = Some(1000);
            cfg.printer.timeouts.magnetic = Some(1000);
        },
    )
    .await;
    kiosk::stock(&p.client).await;
    let pan = "4000001234567899";
    let body = json!({
        "cardToken": "pc1", "profileId": 42, "kioskId": "KIOSK01", "cardType": "debit",
        "issuerRequestId": "req-pc1", "cardId": "card-pc1",
        "pan": pan, "expiry": "2812", "cardholderName": "JANE DOE",
        "printedLines": [{ "text": "JANE DOE", "slot": "name" }],
        "tracks": { "track2": format!("{pan}=2812101") }
    });
    let a = p
        .client
        .post("/v1/cards", body.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let mut first = serde_json::Value::Null;
    for _ in 0..1000 {
        first = p.client.get("/v1/cards/pc1/production").await.unwrap().body;
        if matches!(
            first["status"].as_str(),
            Some("PRODUCED" | "PRODUCTION_ERROR")
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(first["status"], "PRODUCTION_ERROR", "{first}");
    assert_eq!(first["errorCode"], "PRT_TIMEOUT", "{first}");
    let d = first["description"].as_str().unwrap();
    assert!(
        d.contains("no answer within")
            && d.contains("the printer restarted (power cycle?) while executing it")
            && d.contains("reject box"),
        "{first}"
    );
    let s = p.sim.state();
    assert_eq!(s.cards[0].place, Place::RejectBox, "{}", s.summary());
    // Told by the error mode: `Rem` answered the saved mode, not the host's.
    let host = satellite::printer::Profile::load(OLDER, None)
        .unwrap()
        .link
        .host_error_mode;
    assert!(
        exchanges(&record).iter().any(|(f, r)| f == "Rem"
            && r.as_deref()
                .is_some_and(|r| !r.starts_with(&host.to_string()))),
        "no Rem answered with a fallen-back mode"
    );
    p.daemon.stop().await;
    assert_guide_commands_only(&record, "a power cycle under a card");
}

/// The negative check: the default profile still reads the status words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_profile_still_reads_status_words() {
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("km500b.jsonl");
    let rig = rig(Options {
        chip: false,
        record: Some(record.clone()),
        ..Options::default()
    })
    .await;
    produce_one(&rig, &test_card(), |_| {}).await.unwrap();
    let ex = exchanges(&record);
    assert!(ex.iter().any(|(f, _)| f == "Rst"), "no Rst sent");
    assert!(!ex.iter().any(|(_, r)| r.as_deref() == Some("ERROR CDE")));
}

fn satellite_bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_satellite"))
}

/// The field tool on the older firmware shows what it cannot read, and why.
#[test]
fn the_cli_shows_what_the_older_firmware_cannot_tell() {
    let out = satellite_bin()
        .args(["printer", "status", "--sim", "--model", OLDER])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("no status words"), "{text}");
    assert!(text.contains("Card       none inside"), "{text}");
    assert!(text.contains("(bezel unavailable:"), "{text}");
    assert!(text.contains("commands.sensors"), "{text}");
    let out = satellite_bin()
        .args(["printer", "info", "--sim", "--model", OLDER])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("status words (Rst) no") && text.contains("Rse;c|m|o|p|r"),
        "{text}"
    );
}
