//! `satellite bench --d1-kills N`: duplicate D1 Track Card calls per
//! SIGKILL during delivery. D1 has no idempotency key: a call D1 answered
//! whose outcome the agent had not recorded when it died is made again
//! after the restart. The relay records each D1 answer as soon as it is
//! known, so a kill should cost at most the calls answered and not yet
//! recorded at that instant (target: at most 1 per kill).
//!
//! This binary's own `satellite run` is the daemon, a child process with
//! D1 as its only sink; the reference D1 (`printer_sim::upstream::Stub`)
//! and the printer (the simulator at speed 0 over a pseudo-terminal) run
//! in this process and outlive every kill, so their records are the
//! ground truth. Cards are submitted continuously through the local API.
//! N times: D1 answers 503 for [`BACKLOG`] (produced cards pile up), then
//! takes calls again; once a D1 call of the daemon's current life has been
//! answered,
//! the daemon is SIGKILLed, alternately at a random moment up to
//! [`KILL_WINDOW_MS`] later ("random") or as soon as the stub has taken a
//! call ("answered": its answer on the way, the worst moment), then started
//! again on the same store. At the end the last life finishes and
//! delivers everything, and the stub's calls are counted per card.
//!
//! Figures, not assertions.

use crate::api::client::Client;
use crate::bench_idle::{random_below, spawn, Proc};
use crate::bench_upstream_parts::{stub, upstream_toml, SinkKind, KIOSK};
use crate::store::{Keys, Status, Store};
use printer_sim::upstream::{Control, Fault, Group};
use printer_sim::{Customer, SimConfig, Simulator};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A "random" kill comes up to this long after a D1 call of the life was
/// answered.
const KILL_WINDOW_MS: u64 = 50;
/// A card submitted this often (the engine at speed 0 makes about twice
/// as many): D1 calls keep coming.
const SUBMIT_EVERY: Duration = Duration::from_millis(25);
/// Before each kill D1 answers 503 this long, so that a backlog of
/// produced cards builds up and the relay has a full round in flight (its
/// `concurrency`) when D1 is back: the worst case for answers known and
/// not yet recorded.
const BACKLOG: Duration = Duration::from_millis(1000);
/// The target: duplicate calls per kill.
const TARGET_PER_KILL: f64 = 1.0;

/// What one kill caught.
struct Landing {
    moment: &'static str,
    after_ms: u64,
    /// D1 calls that had arrived at the stub and were not answered.
    d1_in_flight: usize,
    /// The stub's last call number at the kill: calls after it belong to
    /// the next life.
    last_call: u64,
}

pub async fn run(kills: usize, json_out: bool) -> Result<(), String> {
    let kills = kills.max(1);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let key = dir.path().join("card.key");
    Keys::generate(&key).map_err(|e| e.to_string())?;
    let mut sc = SimConfig::for_model("evolis-km500b").map_err(|e| e.to_string())?;
    sc.speed = 0.0;
    sc.customer = Customer::TakeAfter(0);
    sc.cleaning_interval = u32::MAX;
    // A kill during a card leaves it in doubt: the next life rejects it.
    sc.reject_capacity = u32::MAX / 4;
    for f in &mut sc.feeders {
        f.count = u32::MAX / 4;
    }
    let sim = Simulator::new(sc);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .map_err(|e| e.to_string())?;
    let stub = stub().await?;
    let control = stub.control();
    let config = dir.path().join("satellite.toml");
    let text = crate::config::Config::local_text(dir.path(), KIOSK, &link.display().to_string())
        + &upstream_toml(dir.path(), &stub, &[SinkKind::D1], 1000, "upstream.")?;
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let socket = dir.path().join("api.sock");
    let began = Instant::now();

    let mut daemon = start(&exe, &config, &socket, dir.path()).await?;
    let client = Client::new(&socket);
    let a = client
        .put(
            "/v1/inventory/1",
            br#"{"cardType":"debit","count":1000000}"#,
        )
        .await?;
    if a.status != 204 {
        return Err(format!("inventory: {} {}", a.status, a.body));
    }
    let producing = Arc::new(AtomicBool::new(true));
    let submitted = Arc::new(AtomicUsize::new(0));
    let producer = tokio::spawn(produce(
        client.clone(),
        producing.clone(),
        submitted.clone(),
    ));

    let mut landings = Vec::with_capacity(kills);
    for k in 0..kills {
        let answered = k % 2 == 1;
        control
            .set_fault(Group::D1track, Fault::Status(503), None)
            .await;
        tokio::time::sleep(BACKLOG).await;
        // A D1 call of this life answered (the relay is delivering).
        let from = control.d1_tracks().len();
        control.clear_faults(Some(Group::D1track)).await;
        let deadline = Instant::now() + Duration::from_secs(30);
        while control.d1_tracks().len() == from {
            if Instant::now() > deadline {
                return Err(format!("kill {}: no D1 call within 30 s", k + 1));
            }
            // Watched closely for "answered": the agent records an
            // outcome within a few milliseconds of the answer.
            tokio::time::sleep(Duration::from_millis(if answered { 1 } else { 2 })).await;
        }
        let after_ms = if answered {
            0
        } else {
            random_below(KILL_WINDOW_MS)
        };
        if after_ms > 0 {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
        }
        kill(&mut daemon).await?;
        // Read after the kill: no call of this life can come later (a call
        // read before it could still be made, and be charged to the next
        // life), and reading the whole log first would delay the kill.
        let (d1_in_flight, last_call) = in_flight(&control);
        landings.push(Landing {
            moment: if answered { "answered" } else { "random" },
            after_ms,
            d1_in_flight,
            last_call,
        });
        daemon = start(&exe, &config, &socket, dir.path()).await?;
    }

    // The last life finishes the cards and tells D1 of every one.
    producing.store(false, Ordering::SeqCst);
    let _ = producer.await;
    let final_state = settle(&client).await?;
    stop(&mut daemon).await?;
    let elapsed = began.elapsed();

    let store = Store::open(
        &dir.path().join("satellite.db"),
        Keys::load(&key).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let produced: Vec<String> = store
        .recent(Some(Status::Produced), 10_000_000)
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|j| j.meta.card_id)
        .collect();
    let tracks = control.d1_tracks();
    let mut calls: HashMap<&str, usize> = HashMap::new();
    for t in &tracks {
        *calls.entry(t.card_id.as_str()).or_default() += 1;
    }
    let told = produced
        .iter()
        .filter(|c| calls.contains_key(c.as_str()))
        .count();
    let not_produced = calls
        .keys()
        .filter(|c| !produced.iter().any(|p| p == *c))
        .count();
    let duplicates: usize = calls.values().map(|n| n - 1).sum();
    let most = calls.values().copied().max().unwrap_or(0);
    // Each repeat is charged to the kill that ended the life before it;
    // one in the same life as the card's previous call owes nothing to a
    // kill, and is counted apart.
    let life = |n: u64| landings.iter().filter(|l| l.last_call < n).count();
    let mut last_life: HashMap<&str, usize> = HashMap::new();
    let mut per_kill = vec![0usize; landings.len()];
    let mut same_life = 0usize;
    for t in &tracks {
        let l = life(t.n);
        match last_life.insert(t.card_id.as_str(), l) {
            Some(before) if before == l => same_life += 1,
            Some(_) => per_kill[l.saturating_sub(1)] += 1,
            None => {}
        }
    }
    let by_moment = |m: &str| -> Value {
        let v: Vec<usize> = landings
            .iter()
            .zip(&per_kill)
            .filter(|(l, _)| l.moment == m)
            .map(|(_, n)| *n)
            .collect();
        let total: usize = v.iter().sum();
        json!({
            "kills": v.len(),
            "duplicates": total,
            "per_kill": total as f64 / v.len().max(1) as f64,
            "max_one_kill": v.iter().copied().max().unwrap_or(0),
            "kills_with_d1_in_flight": landings.iter().filter(|l| l.moment == m && l.d1_in_flight > 0).count(),
        })
    };
    let out = json!({
        "kills": kills,
        "seconds": elapsed.as_secs_f64(),
        "cards_submitted_about": submitted.load(Ordering::SeqCst),
        "cards_produced": produced.len(),
        "cards_told_d1": told,
        "cards_produced_not_told": produced.len() - told,
        "d1_calls_for_cards_not_produced": not_produced,
        "d1_calls": tracks.len(),
        "duplicate_calls": duplicates,
        "duplicates_per_kill": duplicates as f64 / kills as f64,
        "most_calls_one_card": most,
        "repeats_within_one_life": same_life,
        "random": by_moment("random"),
        "answered": by_moment("answered"),
        "landings": landings.iter().zip(&per_kill).map(|(l, n)| json!({
            "moment": l.moment, "after_ms": l.after_ms, "d1_in_flight": l.d1_in_flight, "duplicates": n,
        })).collect::<Vec<_>>(),
        "target_per_kill": TARGET_PER_KILL,
        "engine_at_the_end": final_state,
    });
    if json_out {
        println!("{out:#}");
    } else {
        println!("satellite bench --d1-kills: {kills} SIGKILLs of `satellite run` (this binary, a child process) while it delivers a backlog to D1 (D1 answered 503 for {} s before each), reference D1 and the simulator in this process, {:.0} s", BACKLOG.as_secs_f64(), elapsed.as_secs_f64());
        println!(
            "  cards produced {}, told D1 {} (produced, never told: {}; calls for cards not produced: {})",
            produced.len(),
            told,
            produced.len() - told,
            not_produced
        );
        println!(
            "  D1 Track Card calls {}, duplicates {} ({:.2} per kill; at most {} calls for one card)",
            tracks.len(),
            duplicates,
            duplicates as f64 / kills as f64,
            most
        );
        println!("  of which repeated within one life (no kill between the calls): {same_life}");
        println!("  kill moment                kills   duplicates   per kill   most in one kill   kills with a D1 call in flight");
        for m in ["random", "answered"] {
            let v = by_moment(m);
            println!(
                "  {:<26} {:>5}   {:>10}   {:>8.2}   {:>16}   {:>30}",
                match m {
                    "random" => "random (0-50 ms after one)",
                    _ => "answered (at once)",
                },
                v["kills"].as_u64().unwrap_or(0),
                v["duplicates"].as_u64().unwrap_or(0),
                v["per_kill"].as_f64().unwrap_or(0.0),
                v["max_one_kill"].as_u64().unwrap_or(0),
                v["kills_with_d1_in_flight"].as_u64().unwrap_or(0)
            );
        }
        println!("  target: at most {TARGET_PER_KILL} duplicate call per kill; the engine at the end: {final_state}");
    }
    Ok(())
}

/// Submits a card every [`SUBMIT_EVERY`] while `on`, whatever the
/// daemon's state (refused while it is down: the next one goes later).
async fn produce(client: Client, on: Arc<AtomicBool>, submitted: Arc<AtomicUsize>) {
    let mut i = 0usize;
    while on.load(Ordering::SeqCst) {
        let token = format!("kill-{i}");
        let body = crate::bench::request(i, &token, KIOSK).to_string();
        if let Ok(a) = client.post("/v1/cards", body.as_bytes()).await {
            if a.status == 201 {
                submitted.fetch_add(1, Ordering::SeqCst);
            }
        }
        i += 1;
        tokio::time::sleep(SUBMIT_EVERY).await;
    }
}

/// D1 calls arrived and not answered, and the stub's last call number.
fn in_flight(control: &Control) -> (usize, u64) {
    let log = control.received();
    let open = log
        .iter()
        .filter(|r| r.group == Some(Group::D1track) && r.status.is_none())
        .count();
    (open, log.last().map_or(0, |r| r.n))
}

/// `satellite run --config`, once its API socket answers.
async fn start(exe: &Path, config: &Path, socket: &Path, dir: &Path) -> Result<Proc, String> {
    let _ = std::fs::remove_file(socket);
    let log = dir.join("agent.log");
    let mut proc = spawn(
        tokio::process::Command::new(exe)
            .args(["run", "--config"])
            .arg(config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM"),
        &log,
    )?;
    for _ in 0..1000 {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return Ok(proc);
        }
        if let Ok(Some(status)) = proc.child.try_wait() {
            let why = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!("the daemon exited ({status}): {}", why.trim()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Err("the daemon did not open its socket within 10 s".into())
}

async fn kill(daemon: &mut Proc) -> Result<(), String> {
    daemon.child.start_kill().map_err(|e| e.to_string())?;
    daemon.child.wait().await.map_err(|e| e.to_string())?;
    Ok(())
}

/// SIGTERM, and its exit.
async fn stop(daemon: &mut Proc) -> Result<(), String> {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    tokio::time::timeout(Duration::from_secs(30), daemon.child.wait())
        .await
        .map_err(|_| "the daemon did not stop within 30 s of SIGTERM".to_string())?
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// Until the engine is idle (or waits for the printer: nothing more will
/// be produced) and D1 has nothing pending, twice in a row half a second
/// apart. Returns the engine's state then.
async fn settle(client: &Client) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut calm = 0;
    loop {
        let status = client.get("/v1/status").await?.body;
        let outbox = client.get("/v1/outbox").await?.body;
        let pending = outbox["sinks"]
            .as_array()
            .and_then(|v| v.iter().find(|s| s["sink"] == SinkKind::D1.sink()))
            .and_then(|s| s["pending"].as_u64());
        let state = status["state"].as_str().unwrap_or("?").to_string();
        if matches!(state.as_str(), "idle" | "waiting_for_printer") && pending == Some(0) {
            calm += 1;
            if calm == 2 {
                return Ok(state);
            }
        } else {
            calm = 0;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not idle and delivered after 120 s: state {}, D1 pending {pending:?}",
                status["state"]
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
