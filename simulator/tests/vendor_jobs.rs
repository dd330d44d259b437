//! Print jobs as real drivers send them, replayed into the simulator over a
//! pseudo-terminal: each prints its card, and the dump shows the image the
//! job was made from.
//!
//! The jobs and the images live in `tests/vendor-jobs/`, written by
//! `make_jobs.py` from the reference fact sheet's two examples (the vendor's
//! driver's monochrome job and a public driver's two-sided job) with code
//! that shares nothing with the simulator or the agent: the orientation, the
//! bit order and the compression there are the fact sheet's, so a simulator
//! that drifted from them fails here.

mod common;

use common::*;
use printer_sim::{Customer, Simulator};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

fn jobs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vendor-jobs")
}

/// The ink of a PNG, row by row: `true` where the pixel is not white.
fn ink(path: &Path) -> (u32, u32, Vec<bool>) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let px = buf[..info.buffer_size()]
        .chunks(channels)
        .map(|c| c.iter().any(|&v| v < 128))
        .collect();
    (info.width, info.height, px)
}

/// Writes the job to the simulator's pty as a spooler does (in chunks,
/// without waiting for answers), then reads the `frames` answers.
fn spool(path: &Path, job: &[u8], frames: usize) -> Vec<String> {
    let mut port = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    for chunk in job.chunks(4096) {
        port.write_all(chunk).unwrap();
    }
    port.flush().unwrap();
    let mut answers = Vec::new();
    let mut pending = Vec::new();
    let mut byte = [0u8; 256];
    while answers.len() < frames {
        let n = port.read(&mut byte).unwrap();
        assert!(n > 0, "the link closed after {answers:?}");
        for &b in &byte[..n] {
            if b == b'\r' {
                answers.push(String::from_utf8_lossy(&pending).into_owned());
                pending.clear();
            } else {
                pending.push(b);
            }
        }
    }
    answers
}

/// Replays `job` and checks the card: one card, taken from the feeder without
/// `Si`, each side printed once, presented, and each dumped side equal to
/// its expected image.
async fn replay(job: &str, frames: usize, sides: &[(&str, &str)]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = fast_config("evolis-km500b");
    cfg.customer = Customer::Never;
    let sim = Simulator::new(cfg);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .unwrap();
    let bytes = std::fs::read(jobs_dir().join(job)).unwrap();
    let answers = tokio::task::spawn_blocking(move || spool(&link, &bytes, frames))
        .await
        .unwrap();
    assert!(
        answers.iter().all(|a| a == "OK"),
        "{job}: every frame is accepted: {answers:?}"
    );
    let state = sim.state();
    assert_eq!(state.cards.len(), 1, "{job}: one card");
    let card = &state.cards[0];
    assert_eq!(
        serde_json::to_value(card.place).unwrap(),
        "bezel",
        "{job}: Se ejects the card to the customer"
    );
    let printed: Vec<(&str, &str)> = card
        .panels
        .iter()
        .map(|p| (p.side.as_str(), p.panel.as_str()))
        .collect();
    let want: Vec<(&str, &str)> = sides.iter().map(|(side, _)| (*side, "k")).collect();
    assert_eq!(printed, want, "{job}: panels printed");
    let out = tempfile::tempdir().unwrap();
    let files = sim.dump_card(card.seq, out.path()).unwrap();
    assert_eq!(files.len(), sides.len());
    for (file, (side, expected)) in files.iter().zip(sides) {
        assert!(
            file.to_string_lossy().ends_with(&format!("-{side}-k.png")),
            "{}",
            file.display()
        );
        let (w, h, got) = ink(file);
        let (ew, eh, want) = ink(&jobs_dir().join(expected));
        assert_eq!(
            (w, h),
            (ew, eh),
            "{job} {side}: the dump is the card, landscape"
        );
        let wrong: Vec<(u32, u32)> = got
            .iter()
            .zip(&want)
            .enumerate()
            .filter(|(_, (g, w))| g != w)
            .map(|(i, _)| (i as u32 % w, i as u32 / w))
            .collect();
        assert!(
            wrong.is_empty(),
            "{job} {side}: {} pixels differ from {expected}, first at (x, y) {:?}",
            wrong.len(),
            &wrong[..wrong.len().min(5)]
        );
        assert!(want.iter().any(|&v| v), "the expected image has ink");
    }
}

#[tokio::test]
async fn the_vendor_drivers_monochrome_job_prints_its_card() {
    // Pr, Pmi, Pc, Pdt, Mr, Ppws, Ss, Sr, Dbc, Se;1: ten frames.
    replay("vendor-mono.job", 10, &[("front", "front.png")]).await;
}

#[tokio::test]
async fn the_public_drivers_two_sided_job_prints_both_sides() {
    // Pr, Pmi, Pc, Ss, Sr, Db, Sv, Pc, Db, Se: ten frames.
    replay(
        "public-duplex.job",
        10,
        &[("front", "front.png"), ("back", "back.png")],
    )
    .await;
}

/// The committed jobs are what the generator writes from the fact sheet.
#[test]
fn the_jobs_are_the_generators() {
    let out = Command::new("python3")
        .arg(jobs_dir().join("make_jobs.py"))
        .arg("--check")
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
