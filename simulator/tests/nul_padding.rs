//! NUL padding, as real drivers send it (runs of 16 to 64 NULs after a
//! download, between frames and at the end of a job): skipped outside a frame,
//! over every link, and the command after it is always executed and answered.

mod common;

use common::*;
use dialect::panel::{self, Bitmap, Geometry, Levels};
use dialect::{Reply, Terminator};
use printer_sim::Simulator;
use std::net::TcpStream;

fn nuls(n: usize) -> Vec<u8> {
    vec![0; n]
}

fn frame(text: &str) -> Vec<u8> {
    cmd(text).to_bytes().unwrap().to_vec()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// One step: the writes, one after the other, and the replies they must get.
struct Step {
    writes: Vec<Vec<u8>>,
    replies: Vec<&'static str>,
}

/// A card job with padding before, between and after commands, in the same
/// write as a frame and in writes of its own.
fn script(g: Geometry) -> Vec<Step> {
    let mut mark = Bitmap::blank(g, Levels::Two);
    mark.set(3, 5, 1);
    let data = panel::compress(&mark);
    let download = dialect::Command::new("Dbc")
        .param("k")
        .param(2)
        .param(data.len())
        .with_payload(data.into())
        .to_bytes()
        .unwrap()
        .to_vec();
    let step = |writes: Vec<Vec<u8>>, replies: Vec<&'static str>| Step { writes, replies };
    vec![
        // Before the very first command.
        step(vec![cat(&[&nuls(16), &frame("Rtp")])], vec!["KM500B"]),
        step(vec![nuls(64), frame("Pem;2")], vec!["OK"]),
        step(vec![frame("Pmi;F")], vec!["OK"]),
        step(vec![cat(&[&frame("Si"), &nuls(17)])], vec!["OK"]),
        // After a download, in the same write, and again in a write of its own.
        step(vec![cat(&[&download, &nuls(64)]), nuls(32)], vec!["OK"]),
        step(vec![frame("Sp;k")], vec!["OK"]),
        // Between two frames of one write, and around them.
        step(
            vec![cat(&[
                &nuls(20),
                &frame("Rsn"),
                &nuls(40),
                &frame("Rtp"),
                &nuls(1),
            ])],
            vec!["SIM000001", "KM500B"],
        ),
        // At the end of the job, as public drivers end every job.
        step(vec![cat(&[&frame("Se"), &nuls(64)])], vec!["OK"]),
        // The command after the job's trailing padding.
        step(vec![frame("Rsn")], vec!["SIM000001"]),
    ]
}

fn text(r: Reply) -> String {
    match r {
        Reply::Text(t) => t,
        other => panic!("expected a text reply, got {other:?}"),
    }
}

async fn run_async<S>(mut c: Client<S>, g: Geometry)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    for s in script(g) {
        for w in &s.writes {
            c.stream.write_all(w).await.unwrap();
            c.stream.flush().await.unwrap();
        }
        for want in &s.replies {
            assert_eq!(text(c.reply().await.expect("the link closed")), *want);
        }
    }
}

fn run_sync<S: std::io::Read + std::io::Write>(mut c: SyncClient<S>, g: Geometry) {
    for s in script(g) {
        for w in &s.writes {
            c.write_raw(w);
        }
        for want in &s.replies {
            assert_eq!(text(c.read_reply().0), *want);
        }
    }
}

async fn job_done(sim: &Simulator) {
    let s = wait_state(sim, "the padded job's card taken", |s| {
        s.counters.taken == 1
    })
    .await;
    assert_eq!(s.counters.presented, 1, "{}", s.summary());
}

#[tokio::test]
async fn in_process_link_skips_nul_padding() {
    let cfg = fast_config("evolis-km500b");
    let g = cfg.profile.geometry;
    let sim = Simulator::new(cfg);
    run_async(Client::new(sim.connect()), g).await;
    job_done(&sim).await;
}

#[tokio::test]
async fn usb_style_link_skips_nul_padding() {
    // Replies end with NUL there, and NULs come in as padding too.
    let mut cfg = fast_config("evolis-km500b");
    cfg.reply_terminator = Terminator::Nul;
    let g = cfg.profile.geometry;
    let sim = Simulator::new(cfg);
    run_async(Client::with_terminator(sim.connect(), Terminator::Nul), g).await;
    job_done(&sim).await;
}

#[tokio::test]
async fn pty_link_skips_nul_padding() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer");
    let cfg = fast_config("evolis-km500b");
    let g = cfg.profile.geometry;
    let sim = Simulator::new(cfg);
    let path = sim.serve_pty(Some(&link)).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let port = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        run_sync(SyncClient::new(port), g);
    })
    .await
    .unwrap();
    job_done(&sim).await;
}

#[tokio::test]
async fn tcp_link_skips_nul_padding() {
    let cfg = fast_config("evolis-km500b");
    let g = cfg.profile.geometry;
    let sim = Simulator::new(cfg);
    let addr = sim.serve_tcp("127.0.0.1:0".parse().unwrap()).await.unwrap();
    tokio::task::spawn_blocking(move || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(PATIENCE)).unwrap();
        run_sync(SyncClient::new(s), g);
    })
    .await
    .unwrap();
    job_done(&sim).await;
}

/// A bad number is refused as a real printer would (the frame is malformed:
/// an error about parameters), and NUL padding after it costs nothing.
#[tokio::test]
async fn leading_zero_byte_count_is_refused_then_padding_is_skipped() {
    let sim = Simulator::new(fast_config("evolis-km500b"));
    let mut c = Client::new(sim.connect());
    use tokio::io::AsyncWriteExt;
    c.stream
        .write_all(&cat(&[
            b"\x1bDbc;c;32;02;\x01\x02\r",
            &nuls(16),
            &frame("Rsn"),
        ]))
        .await
        .unwrap();
    assert_eq!(text(c.reply().await.unwrap()), "ERROR PARAMETRES");
    assert_eq!(text(c.reply().await.unwrap()), "SIM000001");
}
