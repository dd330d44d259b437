//! Recorded sessions as golden regression tests.
//!
//! `tests/golden/*.jsonl` are transcripts of the wire between the agent and
//! the simulator for one card, redacted as the simulator records them (card
//! numbers masked, panel data as length and hash). A change to what the agent
//! sends shows up here as a diff to review; `UPDATE_GOLDEN=1` rewrites them.
//! The same transcripts, replayed as the device, must still carry a card
//! through the driver.

mod common;

use common::*;
use printer_sim::transcript::{Dir, Transcript};
use printer_sim::{replay, ReplayOptions};
use std::path::{Path, PathBuf};

/// The usual test card: tracks 1 and 2 carry its (test-range) PAN. The
/// transcript keeps their lengths only; replay reads back what the live
/// session wrote.
fn golden_card() -> TestCard {
    test_card()
}

fn golden_path(model: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("card-{model}.jsonl"))
}

/// The session without its timings: what was sent and answered, in order.
fn lines(t: &Transcript) -> Vec<String> {
    t.entries
        .iter()
        .map(|e| match e.dir {
            Dir::In => format!("> {}", e.frame.as_deref().unwrap_or("")),
            Dir::Out => format!("< {}", e.reply.as_deref().unwrap_or("")),
        })
        .collect()
}

async fn record(model: &'static str) -> Transcript {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("session.jsonl");
    let rig = rig(Options {
        model,
        chip: false,
        record: Some(path.clone()),
        // Long enough that the driver's first look at the bezel always finds
        // the card there, well inside the rig's take time-out (400 ms).
        customer: Some(printer_sim::Customer::TakeAfter(150)),
        ..Options::default()
    })
    .await;
    produce_one(&rig, &golden_card(), |_| {}).await.unwrap();
    drop(rig);
    let mut t = Transcript::load(&path).unwrap();
    for e in &mut t.entries {
        e.t_ms = 0;
    }
    collapse_repeated_polls(&mut t);
    t
}

/// While the card waits in the bezel the driver polls until the customer
/// takes it: how many polls see it still there depends on timing, not on
/// the driver. An exchange identical to the one just before it (same frame,
/// same answer) is dropped, so the transcript says "polled, card still
/// there; polled, card gone" however long the customer took.
fn collapse_repeated_polls(t: &mut Transcript) {
    let mut out: Vec<printer_sim::transcript::Entry> = Vec::with_capacity(t.entries.len());
    for pair in t.entries.chunks(2) {
        let n = out.len();
        let repeat = pair.len() == 2
            && n >= 2
            && pair[0].dir == Dir::In
            && out[n - 2] == pair[0]
            && out[n - 1] == pair[1];
        if !repeat {
            out.extend_from_slice(pair);
        }
    }
    t.entries = out;
}

#[tokio::test]
async fn the_wire_session_of_a_card_matches_the_golden_transcripts() {
    for model in ["evolis-km500b", "instant-embosser-ie4"] {
        let got = record(model).await;
        let path = golden_path(model);
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            got.save(&path).unwrap();
        }
        let want = Transcript::load(&path)
            .unwrap_or_else(|e| panic!("{e}: run with UPDATE_GOLDEN=1 to create it"));
        let (got, want) = (lines(&got), lines(&want));
        if got != want {
            let first = got
                .iter()
                .zip(&want)
                .position(|(a, b)| a != b)
                .unwrap_or(got.len().min(want.len()));
            panic!(
                "{model}: the session differs from {} at line {}:\n  got:  {:?}\n  want: {:?}\n(review, then UPDATE_GOLDEN=1 if intended)",
                path.display(),
                first + 1,
                got.get(first),
                want.get(first)
            );
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            !text.contains("4000001234567899"),
            "a golden transcript holds a full PAN"
        );
    }
}

#[tokio::test]
async fn the_driver_carries_a_card_through_a_replayed_session() {
    for model in ["evolis-km500b", "instant-embosser-ie4"] {
        let transcript = Transcript::load(&golden_path(model)).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let device = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            replay(
                &transcript,
                stream,
                ReplayOptions {
                    idle: std::time::Duration::from_secs(5),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        });
        let profile = std::sync::Arc::new(satellite::printer::Profile::load(model, None).unwrap());
        let mut settings = satellite::printer::LinkSettings::from_profile(
            satellite::printer::Endpoint::Tcp(addr.to_string()),
            &profile,
        );
        settings.timeouts = test_timeouts(&profile);
        let take = std::time::Duration::from_millis(settings.timeouts.take);
        let printer =
            satellite::printer::Printer::new(settings, profile, Default::default(), None, false);
        let card = golden_card();
        let p = &printer;
        async {
            p.check_ready().await?;
            p.select_feeder(1).await?;
            p.insert().await?;
            p.to_smart_station().await?;
            p.encode_magnetic(&card.tracks).await?;
            p.print_text(&card.text).await?;
            if p.profile().capabilities.emboss {
                p.emboss(&card.emboss).await?;
            }
            p.present().await?;
            p.await_take(take, std::future::pending()).await
        }
        .await
        .unwrap_or_else(|f| panic!("{model}: {f}"));
        drop(printer);
        let report = device.await.unwrap();
        assert!(
            report.ok(),
            "{model}: {}\n{:?}",
            report.summary(),
            report.divergences
        );
    }
}
