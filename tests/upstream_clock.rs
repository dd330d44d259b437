//! A wall clock stepped back delays no delivery: the daemon, a real process,
//! runs under libfaketime (Debian's `faketime` package) with its wall clock
//! an hour ahead, while its monotonic clock is left alone. The webhook
//! receiver (the stub, in this test process) fails with 503, so the cards'
//! status changes wait in the outbox and the relay retries on its back-off.
//! Then the daemon's wall clock is stepped back by the hour (NTP correcting
//! it, as on a kiosk that booted with a wrong clock), and the receiver is
//! fixed: every status change must reach it within seconds, in each card's
//! order. A relay that scheduled its retries on the wall clock would wait
//! out the hour.
//!
//! That the daemon's clock really moved is checked from the daemon's own
//! report, not assumed: the skew it learns from the receiver's `Date` is an
//! hour before the step and none after, the cards' `occurredAt` are an hour
//! ahead of their arrival, and the stub accepts the `webhook-timestamp`s
//! (within 5 minutes of its clock) only once the step is made.

mod common;

use common::child::{self, status_changes};
use common::upstream as up;
use printer_sim::upstream::{Fault, Group, StubHandle, WebhookRecord};
use printer_sim::Simulator;
use satellite::api::client::Client;
use satellite::store::{Keys, Store};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

const CARDS: usize = 2;
/// The daemon's wall clock ahead of the real one until the step.
const AHEAD_S: i64 = 3600;
/// From the receiver fixed to every status change received: the relay's
/// back-off cap (1 s) and a round, with room for a busy machine.
const DELIVER_WITHIN: Duration = Duration::from_secs(15);
/// The receiver keeps failing this long after the step: retries must go on.
const FAILING_AFTER_STEP: Duration = Duration::from_secs(3);

/// libfaketime's preload library: `LIBFAKETIME` if set, else where Debian's
/// `libfaketime` package (a dependency of `faketime`) installs it.
fn libfaketime() -> PathBuf {
    if let Some(p) = std::env::var_os("LIBFAKETIME") {
        return p.into();
    }
    let mut dirs = vec![PathBuf::from("/usr/lib/faketime")];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        dirs.extend(entries.flatten().map(|e| e.path().join("faketime")));
    }
    dirs.push("/usr/local/lib/faketime".into());
    dirs.into_iter()
        .map(|d| d.join("libfaketime.so.1"))
        .find(|p| p.is_file())
        .expect(
            "libfaketime.so.1 not found: install Debian's `faketime` package \
             (scripts/test.sh does), or set LIBFAKETIME to the library",
        )
}

/// The daemon's wall clock: libfaketime reads the offset from `file` at
/// every call (no cache), so writing it steps the running daemon's clock.
struct FakeClock {
    file: PathBuf,
}

impl FakeClock {
    fn new(dir: &Path, offset_s: i64) -> FakeClock {
        let clock = FakeClock {
            file: dir.join("faketime.rc"),
        };
        clock.set(offset_s);
        clock
    }

    /// Sets the offset, atomically: the daemon never reads a half-written
    /// file.
    fn set(&self, offset_s: i64) {
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset_s:+}\n")).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }

    /// The daemon's environment: only the wall clock is faked (the
    /// monotonic clock, which the relay schedules on, is the real one).
    fn apply(&self, cmd: &mut tokio::process::Command) {
        cmd.env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", &self.file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env_remove("FAKETIME");
    }
}

/// libfaketime leaves a shared memory segment and a semaphore in /dev/shm
/// for each process it ran in (named by its pid), removed only when the
/// process exits by itself: a daemon killed (a failing test drops it) leaves
/// them, and a later process under libfaketime that gets the same pid
/// refuses to start ("shm_open failed: File exists"). Removed on drop.
struct FaketimeLeftovers(u32);

impl Drop for FaketimeLeftovers {
    fn drop(&mut self) {
        let pid = self.0;
        let _ = std::fs::remove_file(format!("/dev/shm/faketime_shm_{pid}"));
        let _ = std::fs::remove_file(format!("/dev/shm/sem.faketime_sem_{pid}"));
    }
}

/// `GET /v1/status` every 100 ms until stopped: the answers, and each
/// failure (no answer within 5 s, or not 200).
struct StatusWatch {
    stop: Arc<AtomicBool>,
    answered: Arc<Mutex<usize>>,
    failures: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusWatch {
    fn start(socket: &Path) -> StatusWatch {
        let (stop, answered, failures) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(Mutex::new(0)),
            Arc::new(Mutex::new(Vec::new())),
        );
        let client = Client::new(socket);
        let (s, a, f) = (stop.clone(), answered.clone(), failures.clone());
        let task = tokio::spawn(async move {
            let began = Instant::now();
            while !s.load(Ordering::Relaxed) {
                let at = began.elapsed().as_secs_f64();
                match tokio::time::timeout(Duration::from_secs(5), client.get("/v1/status")).await {
                    Ok(Ok(a200)) if a200.status == 200 => *a.lock().unwrap() += 1,
                    Ok(Ok(other)) => f
                        .lock()
                        .unwrap()
                        .push(format!("{at:.1} s: {} {}", other.status, other.body)),
                    Ok(Err(e)) => f.lock().unwrap().push(format!("{at:.1} s: {e}")),
                    Err(_) => f
                        .lock()
                        .unwrap()
                        .push(format!("{at:.1} s: no answer in 5 s")),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        StatusWatch {
            stop,
            answered,
            failures,
            task,
        }
    }

    /// Stops watching: (answers, failures).
    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let answered = *self.answered.lock().unwrap();
        let failures = self.failures.lock().unwrap().clone();
        (answered, failures)
    }
}

/// Webhook calls the stub answered 503 (the receiver down).
fn refused(stub: &StubHandle) -> Vec<printer_sim::upstream::Received> {
    stub.control()
        .received()
        .into_iter()
        .filter(|r| r.group == Some(Group::Webhook) && r.status == Some(503))
        .collect()
}

/// The kiosk's status: the webhook sink's outbox depth and the clock skew
/// the daemon reports for it.
async fn issuer(client: &Client) -> (Value, Option<i64>, Value) {
    let s = client.get("/v1/status").await.unwrap().body;
    let depth = s["outbox"]["issuer"]["depth"].clone();
    let skew = s["upstream"]["issuer"]["clockSkewMs"].as_i64();
    (depth, skew, s)
}

/// The daemon's log so far (its stderr), for a failure's message.
fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Waits (bounded) until `check` passes: the time it took. On time-out,
/// panics with the last complaint and the daemon's log.
async fn wait(
    log: &Path,
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Result<(), String>,
) -> Duration {
    let began = Instant::now();
    loop {
        let last = match check().await {
            Ok(()) => return began.elapsed(),
            Err(why) => why,
        };
        assert!(
            began.elapsed() < within,
            "{what}: not within {within:?}: {last}\n--- daemon log ---\n{}",
            log_tail(log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn webhook_data(w: &WebhookRecord) -> Value {
    serde_json::from_str::<Value>(&w.body).unwrap()["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wall_clock_stepped_back_delays_no_delivery() {
    let began = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    Keys::generate(&dir.path().join("card.key")).unwrap();
    let mut c = printer_sim::SimConfig::for_model("evolis-km500b").unwrap();
    c.speed = 0.02;
    let sim = Simulator::new(c);
    let link = sim
        .serve_pty(Some(&dir.path().join("printer")))
        .await
        .unwrap();
    let stub = up::stub().await;
    let control = stub.control();
    control
        .set_fault(Group::Webhook, Fault::Status(503), None)
        .await;
    let config = child::write_config(
        dir.path(),
        &link,
        &("\n[upstream]\nbackoff_first_ms = 200\nbackoff_cap_ms = 1000\n".to_string()
            + &child::webhook_sink(dir.path(), &stub, "issuer")),
    );
    let socket = dir.path().join("api.sock");
    let log = dir.path().join("daemon.log");
    let clock = FakeClock::new(dir.path(), AHEAD_S);
    let stderr = std::fs::File::create(&log).unwrap();
    let mut daemon = child::start_with(&config, &socket, |cmd| {
        clock.apply(cmd);
        cmd.env("RUST_LOG", "info").stderr(stderr);
    })
    .await;
    let _leftovers = FaketimeLeftovers(daemon.id().unwrap());
    let watch = StatusWatch::start(&socket);
    let client = Client::new(&socket);

    // Cards produced while the receiver fails: their status changes wait.
    let a = client
        .put("/v1/inventory/1", br#"{"cardType":"debit","count":10}"#)
        .await
        .unwrap();
    assert_eq!(a.status, 204, "{}", a.body);
    let tokens: Vec<String> = (0..CARDS).map(|i| format!("clock-{i}")).collect();
    for (i, t) in tokens.iter().enumerate() {
        let body = up::request(t, &up::pan(700 + i as u32));
        let a = client
            .post("/v1/cards", body.to_string().as_bytes())
            .await
            .unwrap();
        assert_eq!(a.status, 201, "{}", a.body);
    }
    wait(
        &log,
        "every card produced",
        Duration::from_secs(60),
        async || {
            for t in &tokens {
                let p = client.get(&format!("/v1/cards/{t}/production")).await?.body;
                if p["status"] != "PRODUCED" {
                    return Err(format!("{t}: {p}"));
                }
            }
            Ok(())
        },
    )
    .await;
    // The relay keeps retrying on its back-off, and the daemon's clock is
    // the faked one: the skew it learns from the receiver's answers is the
    // hour (this fails if libfaketime did not take).
    let ahead_ms = AHEAD_S * 1000;
    let refused_before = refused(&stub).len();
    wait(
        &log,
        "retries refused, an hour of skew",
        Duration::from_secs(20),
        async || {
            let (depth, skew, s) = issuer(&client).await;
            let retried = refused(&stub).len() >= refused_before + 3;
            match skew {
                Some(ms) if retried && (ms - ahead_ms).abs() < 10_000 => Ok(()),
                _ => Err(format!(
                    "{} refused, depth {depth}, skew {skew:?}: {s}",
                    refused(&stub).len()
                )),
            }
        },
    )
    .await;
    assert!(
        control.webhooks().is_empty(),
        "nothing got through a failing receiver"
    );
    let (depth, _, _) = issuer(&client).await;
    let waiting = depth.as_u64().unwrap_or_default();
    assert_eq!(
        waiting,
        CARDS as u64 * 3,
        "READY, IN_PROGRESS, PRODUCED of each card wait: depth {depth}"
    );

    // The step back, while the relay is paused on its back-off; the
    // receiver still fails for a while: retries must go on.
    clock.set(0);
    let refused_at_step = refused(&stub).len();
    tokio::time::sleep(FAILING_AFTER_STEP).await;
    let refused_after_step = refused(&stub).len() - refused_at_step;

    // The receiver fixed: every status change arrives within seconds.
    control.clear_faults(Some(Group::Webhook)).await;
    let fixed_wall = SystemTime::now();
    let delivered_in = wait(
        &log,
        "every status change delivered",
        DELIVER_WITHIN,
        async || {
            let (depth, _, s) = issuer(&client).await;
            if depth == 0 && s["outbox"]["issuer"]["deadLetters"] == 0 {
                Ok(())
            } else {
                Err(format!("still waiting: {}", s["outbox"]))
            }
        },
    )
    .await;
    assert!(
        refused_after_step >= 1,
        "no retry in the {FAILING_AFTER_STEP:?} after the step (the relay waits on the wall clock?)"
    );
    // The daemon's clock is right again: no skew left.
    let (_, skew, s) = issuer(&client).await;
    assert!(
        skew.is_some_and(|ms| ms.abs() < 10_000),
        "skew after the step: {skew:?}: {s}"
    );

    // The daemon ran and answered all along.
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon exited");
    let (answered, failures) = watch.finish().await;
    assert!(failures.is_empty(), "GET /v1/status failed: {failures:?}");
    assert!(
        answered >= 20,
        "GET /v1/status answered only {answered} times"
    );
    // Stopped as systemd stops it: it exits by itself.
    let pid = nix::unistd::Pid::from_raw(daemon.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let exit = tokio::time::timeout(Duration::from_secs(20), daemon.wait())
        .await
        .expect("the daemon stops on SIGTERM")
        .unwrap();
    assert!(
        exit.success(),
        "the daemon's exit: {exit}\n{}",
        log_tail(&log)
    );
    let daemon_log = std::fs::read_to_string(&log).unwrap();
    assert!(!daemon_log.contains("panicked"), "{}", log_tail(&log));

    // Each card's status changes, as the store wrote them, arrived after
    // the fix, in order; written an hour ahead (before the step), signed
    // with the clock set right (after it).
    let store = Store::open(
        &dir.path().join("s.db"),
        Keys::load(&dir.path().join("card.key")).unwrap(),
    )
    .unwrap();
    let webhooks = control.webhooks();
    let mut last_arrival = fixed_wall;
    for t in &tokens {
        let changes = status_changes(&store, t);
        let statuses: Vec<&str> = changes.iter().map(|c| c.2.as_str()).collect();
        assert_eq!(statuses, ["READY", "IN_PROGRESS", "PRODUCED"], "{t}");
        let first: Vec<&WebhookRecord> = webhooks
            .iter()
            .filter(|w| !w.duplicate && webhook_data(w)["cardToken"] == *t)
            .collect();
        let got: Vec<(String, i64, String)> = first
            .iter()
            .map(|w| {
                let d = webhook_data(w);
                (
                    d["eventId"].as_str().unwrap().to_string(),
                    d["sequence"].as_i64().unwrap(),
                    d["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(got, changes, "{t}: first arrivals at the receiver");
        for w in first {
            assert!(w.at >= fixed_wall, "{t}: arrived before the fix");
            last_arrival = last_arrival.max(w.at);
            let arrived =
                w.at.duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as i64;
            let occurred = humantime::parse_rfc3339(webhook_data(w)["occurredAt"].as_str().unwrap())
                .unwrap()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64;
            assert!(
                (AHEAD_S - 600..=AHEAD_S + 2).contains(&(occurred - arrived)),
                "{t}: occurredAt {occurred} against arrival {arrived}: not an hour ahead"
            );
            let signed: i64 = w.webhook_timestamp.parse().unwrap();
            assert!(
                (signed - arrived).abs() <= 60,
                "{t}: webhook-timestamp {signed} against arrival {arrived}"
            );
        }
    }
    let latest = last_arrival.duration_since(fixed_wall).unwrap();
    assert!(
        latest <= DELIVER_WITHIN,
        "last status change {latest:?} after the fix"
    );
    eprintln!(
        "clock step: {refused_before} refused before the card was done, {refused_after_step} \
         retries refused in the {FAILING_AFTER_STEP:?} after the step back by {AHEAD_S} s; \
         {waiting} status changes delivered {:.2} s after the receiver was fixed (last arrival \
         {:.2} s); GET /v1/status answered {answered} times; {:.1} s in all",
        delivered_in.as_secs_f64(),
        latest.as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
}
