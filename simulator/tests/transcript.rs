//! Transcripts: record a session, then replay it, in the library and the binary.

mod common;

use common::*;
use dialect::Reply;
use printer_sim::transcript::{Dir, Transcript};
use printer_sim::{replay, Condition, ReplayOptions, Simulator};
use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};

/// Records a session with card data, a fault, a binary download and garbage.
async fn record(path: &std::path::Path) -> Vec<Reply> {
    let mut cfg = fast_config("evolis-km500b");
    cfg.record = Some(path.to_path_buf());
    let sim = Simulator::new(cfg);
    let mut c = Client::new(sim.connect());
    let mut replies = Vec::new();
    for f in [
        "Rtp",
        "Pem;2",
        "Si",
        &format!("Dm;2;{PAN}=2812101"),
        "Smw",
        "Smr;2",
        "Zz",
    ] {
        replies.push(c.ask(f).await);
    }
    let bm = dialect::panel::Bitmap::blank(
        dialect::panel::Geometry::default(),
        dialect::panel::Levels::Two,
    );
    let dbc = dialect::ops::Op::Download {
        panel: dialect::panel::Panel::K,
        bitmap: bm,
        compressed: true,
    }
    .command();
    c.send(&dbc).await;
    replies.push(c.reply().await.unwrap());
    sim.raise(Condition::Garbage(Some(1)));
    replies.push(c.ask("Rsn").await);
    replies.push(c.ask("Pem;4").await);
    replies.push(c.ask("Sp;k").await);
    replies
}

const FRAMES_AFTER_DM: [&str; 3] = ["Smw", "Smr;2", "Zz"];

async fn play_back<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    c: &mut Client<S>,
    diverge: bool,
) -> Vec<Reply> {
    let mut replies = Vec::new();
    for f in ["Rtp", "Pem;2", "Si", &format!("Dm;2;{PAN}=2812101")] {
        replies.push(c.ask(f).await);
    }
    for f in FRAMES_AFTER_DM {
        let f = if diverge && f == "Zz" { "Rsn" } else { f };
        replies.push(c.ask(f).await);
    }
    let bm = dialect::panel::Bitmap::blank(
        dialect::panel::Geometry::default(),
        dialect::panel::Levels::Two,
    );
    let dbc = dialect::ops::Op::Download {
        panel: dialect::panel::Panel::K,
        bitmap: bm,
        compressed: true,
    }
    .command();
    c.send(&dbc).await;
    replies.push(c.reply().await.unwrap());
    replies.push(c.ask("Rsn").await);
    replies.push(c.ask("Pem;4").await);
    replies.push(c.ask("Sp;k").await);
    replies
}

#[tokio::test]
async fn record_then_replay() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.jsonl");
    let live = record(&file).await;
    assert!(matches!(live[8], Reply::Malformed { .. }), "{live:?}");
    assert_eq!(live[10], Reply::Ack);

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(PAN), "{text}");
    // Magnetic data down to its length; not even the masked number.
    assert!(text.contains("Dm;2;<24 chars withheld>"), "{text}");
    assert!(!text.contains("=2812"), "{text}");
    assert!(
        text.contains("\"frame\":\"Dbc;k;2;1016;<1016 bytes #"),
        "{text}"
    );
    let t = Transcript::load(&file).unwrap();
    assert_eq!(t.entries.iter().filter(|e| e.dir == Dir::In).count(), 11);
    assert_eq!(t.entries[0].frame.as_deref(), Some("Rtp"));
    assert_eq!(t.entries[1].reply.as_deref(), Some("KM500B"));
    t.save(&dir.path().join("copy.jsonl")).unwrap();
    assert_eq!(Transcript::load(&dir.path().join("copy.jsonl")).unwrap(), t);

    // Faithful replay: the same replies, the read-back being what this
    // session wrote (the transcript kept only its length); no divergence.
    let (client, device) = tokio::io::duplex(1 << 20);
    let t2 = t.clone();
    let device =
        tokio::spawn(async move { replay(&t2, device, ReplayOptions::default()).await.unwrap() });
    let mut c = Client::new(client);
    let replayed = play_back(&mut c, false).await;
    let report = device.await.unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.matched, 11);
    for (i, (a, b)) in live.iter().zip(&replayed).enumerate() {
        assert_eq!(a, b, "reply {i}");
    }

    // A session that goes its own way.
    let (client, device) = tokio::io::duplex(1 << 20);
    let t2 = t.clone();
    let device =
        tokio::spawn(async move { replay(&t2, device, ReplayOptions::default()).await.unwrap() });
    let mut c = Client::new(client);
    let replayed = play_back(&mut c, true).await;
    assert_eq!(replayed[6], Reply::Text("ERROR CDE".into()));
    let report = device.await.unwrap();
    assert!(!report.ok());
    assert_eq!(report.divergences.len(), 1);
    assert!(
        report.divergences[0].contains("\"Zz\"") && report.divergences[0].contains("\"Rsn\""),
        "{:?}",
        report.divergences
    );
}

#[tokio::test]
async fn the_binary_replays_over_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("session.jsonl");
    record(&file).await;
    for diverge in [false, true] {
        let mut child = Process::new(env!("CARGO_BIN_EXE_printer-sim"))
            .args(["replay", "--tcp", "127.0.0.1:0", "--idle-ms", "20000"])
            .arg(&file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        let addr = first.trim().strip_prefix("tcp ").expect(&first).to_string();
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut c = Client::new(stream);
        play_back(&mut c, diverge).await;
        let status = tokio::task::spawn_blocking(move || {
            let status = child.wait().unwrap();
            let mut rest = String::new();
            std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
            (status, rest)
        })
        .await
        .unwrap();
        assert_eq!(status.0.success(), !diverge, "{}", status.1);
        assert!(
            status.1.contains("replay: 11 frame(s) received"),
            "{}",
            status.1
        );
    }
}
