//! A store that cannot be written for a few seconds, then can again, and
//! refusals "for now" that are not final: the daemon with its real SQLite
//! store, the simulator over a real pseudo-terminal, real HTTP over the Unix
//! socket; the simulator's record of each card is the ground truth.
//!
//! The store is made unwritable as a file system remounted read-only after
//! an error makes it: writes through open files fail, and opening the file
//! for writing fails, so that SQLite would silently open it read-only. Root
//! ignores permissions, and a file system with open files cannot be
//! remounted read-only (EBUSY), so the files are made immutable
//! (`chattr +i`: EPERM on both, on ext4 even through open files). The test
//! checks first that this works where the store lives, and says loudly that
//! it skips if not.

mod common;

use common::kiosk;
use printer_sim::{Condition, Place, Scenario, Simulator};
use satellite::api::client::{Answer, Client};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests of this file one at a time: the log they count is the
/// process's.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The log lines of this process (the daemon runs in it), as text.
fn log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = buf.clone();
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || Sink(w.clone()))
            .init();
        buf
    })
    .clone()
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where the log is now.
fn log_mark() -> usize {
    log().lock().unwrap().len()
}

/// The log's lines since `mark`.
fn log_since(mark: usize) -> Vec<String> {
    let buf = log();
    let b = buf.lock().unwrap();
    String::from_utf8_lossy(&b[mark..])
        .lines()
        .map(str::to_string)
        .collect()
}

use common::immutable::{immutable_refuses_writes, Immutable};
use kiosk::request;

struct Kiosk {
    sim: Simulator,
    daemon: satellite::daemon::Daemon,
    client: Client,
    db: PathBuf,
    _dir: tempfile::TempDir,
}

/// A kiosk whose store lives in a directory of its own (`store/`), with the
/// simulator's `scenario` and a queue of `queue_limit`.
async fn kiosk(scenario: &str, queue_limit: usize) -> Kiosk {
    let p = kiosk::start(
        |c| c.scenario = Some(Scenario::parse("store", scenario).unwrap()),
        |dir, cfg| {
            std::fs::create_dir(dir.join("store")).unwrap();
            cfg.store.path = dir.join("store/satellite.db");
            cfg.production.queue_limit = queue_limit;
            cfg.printer.timeouts.take = Some(1500);
            cfg.printer.timeouts.command = Some(600);
            cfg.printer.timeouts.movement = Some(1000);
            cfg.printer.timeouts.magnetic = Some(3000);
            cfg.printer.timeouts.print = Some(1500);
        },
    )
    .await;
    kiosk::stock(&p.client).await;
    let db = p.dir.path().join("store/satellite.db");
    Kiosk {
        sim: p.sim,
        daemon: p.daemon,
        client: p.client,
        db,
        _dir: p.dir,
    }
}

impl Kiosk {
    async fn post(&self, body: &Value) -> Answer {
        self.client
            .post("/v1/cards", body.to_string().as_bytes())
            .await
            .unwrap()
    }

    async fn production(&self, token: &str) -> Answer {
        self.client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap()
    }

    async fn engine(&self) -> Value {
        self.client.get("/v1/status").await.unwrap().body["engine"].clone()
    }

    /// The store's files as a read-only file system leaves them: the
    /// database and its log refuse writes, and its directory new files.
    /// The shared-memory index is left alone: SQLite maps it, and a
    /// mapped page of an immutable file faults (SIGBUS) where a read-only
    /// file system would have let the mapping be.
    fn freeze(&self) -> Immutable {
        let wal = PathBuf::from(format!("{}-wal", self.db.display()));
        Immutable::set(vec![
            self.db.clone(),
            wal,
            self.db.parent().unwrap().to_path_buf(),
        ])
    }

    /// Waits for the card to be final; returns its production object.
    async fn final_state(&self, token: &str) -> Value {
        let until = Instant::now() + Duration::from_secs(40);
        loop {
            let p = self.production(token).await.body;
            if matches!(
                p["status"].as_str(),
                Some("PRODUCED" | "PRODUCTION_ERROR" | "REQUEST_ERROR")
            ) {
                return p;
            }
            if Instant::now() > until {
                let lines = log_since(0);
                let tail = &lines[lines.len().saturating_sub(40)..];
                panic!(
                    "card {token} never ended: {p} / engine {}\nlog:\n{}",
                    self.engine().await,
                    tail.join("\n")
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends `body` until it is answered other than 503 (the store is being
    /// checked); the answer.
    async fn post_until_taken(&self, body: &Value) -> Answer {
        let until = Instant::now() + Duration::from_secs(30);
        loop {
            let a = self.post(body).await;
            if a.status != 503 {
                return a;
            }
            assert!(Instant::now() < until, "still refused: {}", a.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// What a kiosk is told when the store cannot take its request: a 503 with
/// a standard code, in words meant for it, never the store's own message.
fn assert_kiosk_words(a: &Answer) {
    assert_eq!(a.status, 503, "{}", a.body);
    let code = a.body["errorCode"]
        .as_str()
        .or(a.body["error"]["code"].as_str())
        .unwrap_or("");
    assert!(
        ["UNABLE_TO_ACCEPT_REQUEST", "OUTCOME_UNKNOWN"].contains(&code),
        "{}",
        a.body
    );
    let text = a.body.to_string();
    for internal in [
        "database:",
        "readonly",
        "read-only",
        "I/O",
        "insert",
        "commit",
        "locked",
        "satellite.db",
    ] {
        assert!(!text.contains(internal), "{internal:?} in {text}");
    }
}

/// Lines at WARN or ERROR, and those of the store's trouble.
fn loud(lines: &[String]) -> Vec<&String> {
    lines
        .iter()
        .filter(|l| l.contains(" WARN ") || l.contains(" ERROR "))
        .collect()
}

/// The store cannot be written for 4 s, first while the kiosk is idle, then
/// while a card is in production (between the magnetic step's intent and
/// its outcome). Each time the agent comes back by itself, without a
/// restart: the card in production is settled once (in the reject box, as
/// its status says), requests are taken again, and the log holds a few
/// lines about each outage, not one per retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_cannot_be_written_for_seconds_comes_back_by_itself() {
    let _one = SERIAL.lock().await;
    log();
    // Card 2's magnetic write answers slowly (600 ms): the store goes read-only meanwhile.
    let k = kiosk(
        "[[at]]\ncard = 2\nstep = \"magnetic\"\nraise = \"slow:600\"\n",
        50,
    )
    .await;
    if let Err(why) = immutable_refuses_writes(k.db.parent().unwrap()) {
        eprintln!(
            "\n\n*** SKIPPED a_store_that_cannot_be_written_for_seconds_comes_back_by_itself: \
             immutable files do not stand for a read-only file system here ({why}); \
             run it as root with the temporary directory on ext4 ***\n\n"
        );
        k.daemon.stop().await;
        return;
    }

    // Idle.
    let mark = log_mark();
    let frozen = k.freeze();
    let c1 = request("c1", "4000001234567899");
    let first = k.post(&c1).await;
    eprintln!("idle, store read-only: {} {}", first.status, first.body);
    assert_kiosk_words(&first);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        let a = k.post(&c1).await;
        assert_kiosk_words(&a);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(k.engine().await["state"], "checking_store");
    frozen.lift();
    let again = k.post_until_taken(&c1).await;
    assert!(
        again.status == 201 || again.body["status"] == "READY",
        "{} {}",
        again.status,
        again.body
    );
    assert_eq!(k.final_state("c1").await["status"], "PRODUCED");
    let lines = log_since(mark);
    let loud_idle = loud(&lines);
    eprintln!("idle outage, loud lines: {loud_idle:#?}");
    assert!(
        loud_idle.len() <= 6,
        "{} loud lines for a 4 s outage: {loud_idle:#?}",
        loud_idle.len()
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("the job store can be written again after"))
            .count(),
        1,
        "{lines:#?}"
    );

    // A card in production.
    let mark = log_mark();
    let c2 = request("c2", "4000001234567808");
    assert_eq!(k.post(&c2).await.status, 201);
    let until = Instant::now() + Duration::from_secs(20);
    while k.engine().await["step"] != "magnetic" {
        assert!(Instant::now() < until, "{}", k.engine().await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let frozen = k.freeze();
    let froze_at = Instant::now();
    let c3 = request("c3", "4000001234567816");
    // The step's outcome cannot be journaled: the card is in doubt. The
    // store stays unwritable 4 s from then.
    let mut doubt_at = None;
    while doubt_at.is_none_or(|at: Instant| at.elapsed() < Duration::from_secs(4)) {
        let e = k.engine().await;
        if doubt_at.is_none() && e["state"] == "card_in_doubt" {
            eprintln!(
                "in doubt {:?} after the store went read-only: {e}",
                froze_at.elapsed()
            );
            doubt_at = Some(Instant::now());
            // The printer answers at its usual pace again (the slow answers
            // were only there to catch the card mid-step).
            k.sim.clear(None);
        }
        assert!(
            froze_at.elapsed() < Duration::from_secs(20),
            "the card never went in doubt: {e}"
        );
        assert_kiosk_words(&k.post(&c3).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(k.production("c2").await.body["status"], "IN_PROGRESS");
    assert_eq!(
        k.sim.state().cards[1].place,
        Place::Inside,
        "the card waits in the printer"
    );
    frozen.lift();
    let settled = k.final_state("c2").await;
    eprintln!("card in production: {settled}");
    assert_eq!(settled["status"], "PRODUCTION_ERROR", "{settled}");
    assert!(
        settled["description"]
            .as_str()
            .unwrap()
            .contains("reject box"),
        "{settled}"
    );
    let again = k.post_until_taken(&c3).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(k.final_state("c3").await["status"], "PRODUCED");
    let s = k.sim.state();
    let places: Vec<Place> = s.cards.iter().map(|c| c.place).collect();
    assert_eq!(
        places,
        [Place::Taken, Place::RejectBox, Place::Taken],
        "each card once, where its status says"
    );
    assert_eq!((s.counters.taken, s.counters.rejected), (2, 1));
    let lines = log_since(mark);
    let loud_card = loud(&lines);
    eprintln!("outage during a card, loud lines: {loud_card:#?}");
    assert!(
        loud_card.len() <= 8,
        "{} loud lines for a 4 s outage: {loud_card:#?}",
        loud_card.len()
    );
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("the job store can be written again after"))
            .count(),
        1,
        "{lines:#?}"
    );
    k.daemon.stop().await;
}

/// A request refused because the queue is full is not refused for good:
/// once the queue has room, the same request is accepted and produced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_for_a_full_queue_is_taken_once_there_is_room() {
    let _one = SERIAL.lock().await;
    let k = kiosk("", 1).await;
    // The cover is open: the first card waits in the queue.
    k.sim.raise("cover-open".parse::<Condition>().unwrap());
    assert_eq!(k.post(&request("q1", "4000001234567899")).await.status, 201);
    let q2 = request("q2", "4000001234567808");
    let full = k.post(&q2).await;
    assert_eq!(
        (full.status, full.body["errorCode"].as_str()),
        (503, Some("UNABLE_TO_ACCEPT_REQUEST")),
        "{}",
        full.body
    );
    // Refused for now: nothing recorded for it.
    assert_eq!(k.production("q2").await.status, 404);
    // Sent again while the queue is still full: refused again, for now.
    assert_eq!(
        k.post(&q2).await.body["errorCode"],
        "UNABLE_TO_ACCEPT_REQUEST"
    );
    k.sim.clear(None);
    assert_eq!(k.final_state("q1").await["status"], "PRODUCED");
    let again = k.post(&q2).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(k.final_state("q2").await["status"], "PRODUCED");
    assert_eq!(k.sim.state().counters.taken, 2);
    k.daemon.stop().await;
}

/// Another program holds the store's write lock (a backup tool) past the
/// busy time-out: the request is refused for now, with the standard code
/// and words meant for the kiosk; nothing is recorded, and the same request
/// is taken once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_locked_by_another_program_refuses_for_now_in_the_kiosks_words() {
    let _one = SERIAL.lock().await;
    let k = kiosk("", 50).await;
    let (locked_tx, locked_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let db = k.db.clone();
    let holder = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked_tx.send(()).unwrap();
        let _ = release_rx.recv();
        conn.execute_batch("ROLLBACK").unwrap();
    });
    locked_rx.recv().unwrap();
    let r = request("l1", "4000001234567899");
    let refused = k.post(&r).await;
    eprintln!("store locked: {} {}", refused.status, refused.body);
    assert_kiosk_words(&refused);
    assert_eq!(refused.body["status"], "REQUEST_ERROR", "{}", refused.body);
    assert_eq!(refused.body["errorCode"], "UNABLE_TO_ACCEPT_REQUEST");
    release_tx.send(()).unwrap();
    holder.join().unwrap();
    assert_eq!(k.production("l1").await.status, 404, "nothing recorded");
    let again = k.post(&r).await;
    assert_eq!(again.status, 201, "{}", again.body);
    assert_eq!(k.final_state("l1").await["status"], "PRODUCED");
    assert_eq!(k.sim.state().counters.taken, 1);
    k.daemon.stop().await;
}
