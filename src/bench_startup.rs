//! `satellite bench --startup`: how long the daemon takes from exec to
//! `READY=1` (the store open, the local API listening) on a store that
//! holds 10,000 finished cards.
//!
//! The store is built through the store API (accept, start, finish: one
//! transaction each, as the engine writes them) in memory-backed
//! `/dev/shm` when there is one, and copied to the disk. Then this binary's own
//! `run --config` is started N times as a child process, with a
//! notification socket of the bench's (`NOTIFY_SOCKET`); each run is timed
//! from just before the exec to the arrival of `READY=1`, then stopped with
//! SIGTERM. The printer is the simulator in this process over a
//! pseudo-terminal (the agent connects to it in the background: readiness
//! does not wait for the printer).
//!
//! Figures, not assertions: machines are noisy.

use crate::store::{JobMeta, Keys, NewJob, Status, Store};
use printer_sim::{SimConfig, Simulator};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

/// Finished cards in the store the daemon opens.
pub const CARDS: usize = 10_000;
/// The target for p95, exec to READY=1.
const TARGET_MS: f64 = 200.0;
/// Memory-backed: where the store is built.
const SCRATCH: &str = "/dev/shm";
/// A run that does not say READY=1 within this failed.
const READY_LIMIT: Duration = Duration::from_secs(20);

pub async fn run(runs: usize, json_out: bool) -> Result<(), String> {
    let runs = runs.max(1);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let keys = Keys::generate(&dir.path().join("card.key")).map_err(|e| e.to_string())?;
    let db = dir.path().join("satellite.db");
    // Built where a sync costs nothing when there is such a place (30,000
    // transactions at a disk's fsync take minutes), then copied next to
    // the key: the daemon opens it on the disk, as a kiosk does.
    let scratch = tempfile::tempdir_in(SCRATCH)
        .or_else(|_| tempfile::tempdir())
        .map_err(|e| e.to_string())?;
    let built = {
        let db = scratch.path().join("satellite.db");
        tokio::task::spawn_blocking(move || build(&db, keys))
            .await
            .map_err(|e| e.to_string())??
    };
    std::fs::copy(scratch.path().join("satellite.db"), &db)
        .map_err(|e| format!("copying the store: {e}"))?;
    drop(scratch);
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);

    let mut sc = SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string())?;
    sc.speed = 0.0;
    let sim = Simulator::new(sc);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .map_err(|e| format!("simulator: {e}"))?;
    let config = dir.path().join("satellite.toml");
    std::fs::write(
        &config,
        crate::config::Config::local_text(dir.path(), "BENCH01", &link.display().to_string()),
    )
    .map_err(|e| e.to_string())?;
    let notify_path = dir.path().join("notify.sock");
    let notify = tokio::net::UnixDatagram::bind(&notify_path).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;

    let mut took = Vec::with_capacity(runs);
    for i in 0..runs {
        took.push(
            once(&exe, &config, &notify, &notify_path, dir.path())
                .await
                .map_err(|e| format!("run {}: {e}", i + 1))?,
        );
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (p50, p95, max) = (
        ms(pct(&took, 0.50)),
        ms(pct(&took, 0.95)),
        ms(took[took.len() - 1]),
    );
    if json_out {
        println!(
            "{:#}",
            json!({
                "cards_in_store": CARDS,
                "store_bytes": size,
                "store_build_s": built.as_secs_f64(),
                "runs": runs,
                "exec_to_ready_ms": { "p50": p50, "p95": p95, "max": max },
                "target_p95_ms": TARGET_MS,
            })
        );
    } else {
        println!(
            "store: {CARDS} finished cards, {:.1} MB, built in {:.1} s through the store API (in {SCRATCH} when there is one)",
            size as f64 / 1e6,
            built.as_secs_f64()
        );
        println!(
            "exec -> READY=1 over {runs} starts: p50 {p50:.1} ms, p95 {p95:.1} ms, max {max:.1} ms (target: p95 at most {TARGET_MS:.0} ms: {})",
            if p95 <= TARGET_MS { "met" } else { "NOT met" }
        );
    }
    Ok(())
}

/// One start: exec, wait for READY=1, SIGTERM, wait for the exit.
async fn once(
    exe: &Path,
    config: &Path,
    notify: &tokio::net::UnixDatagram,
    notify_path: &Path,
    dir: &Path,
) -> Result<Duration, String> {
    // What an earlier run said after its READY=1 (STATUS=, STOPPING=1).
    let mut buf = vec![0u8; 4096];
    while notify.try_recv(&mut buf).is_ok() {}
    let _ = std::fs::remove_file(dir.join("api.sock"));
    let began = Instant::now();
    let mut child = tokio::process::Command::new(exe)
        .args(["run", "--config"])
        .arg(config)
        .env("NOTIFY_SOCKET", notify_path)
        .env_remove("WATCHDOG_USEC")
        .env_remove("JOURNAL_STREAM")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))?;
    let ready = tokio::time::timeout(READY_LIMIT, async {
        loop {
            let n = notify.recv(&mut buf).await.map_err(|e| e.to_string())?;
            if String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "READY=1")
            {
                return Ok::<_, String>(began.elapsed());
            }
        }
    })
    .await
    .map_err(|_| format!("no READY=1 within {READY_LIMIT:?}"))??;
    if let Some(pid) = child.id() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .map_err(|_| "the agent did not stop within 30 s of SIGTERM".to_string())?
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the agent exited with {status}"));
    }
    Ok(ready)
}

/// 10,000 cards accepted, started and produced, as the engine writes them.
fn build(db: &Path, keys: Keys) -> Result<Duration, String> {
    let store = Store::open(db, keys).map_err(|e| e.to_string())?;
    let t = Instant::now();
    for i in 0..CARDS {
        let pan = crate::bench::pan(i);
        let token = format!("startup-{i}");
        let job = NewJob::from(JobMeta {
            card_token: token.clone(),
            profile_id: 1,
            kiosk_id: "BENCH01".into(),
            card_type: "debit".into(),
            issuer_request_id: format!("r{i}"),
            card_id: format!("c{i}"),
            pan_masked: dialect::redact::mask_digits(&pan),
        });
        let data = format!("{{\"pan\":\"{pan}\",\"track2\":\"{pan}=2812101\"}}");
        let e = |e: crate::store::StoreError| format!("{token}: {e}");
        store
            .accept(&job, &pan, data.as_bytes(), usize::MAX)
            .map_err(e)?;
        store.start(&token).map_err(e)?;
        store
            .finish(&token, Status::Produced, None, None)
            .map_err(e)?;
    }
    store.checkpoint().map_err(|e| e.to_string())?;
    Ok(t.elapsed())
}

fn pct(sorted: &[Duration], q: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
