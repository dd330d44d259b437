//! The durable store on real SQLite files: schema versions, every transition
//! and its event, refusals, card data sealed at rest and erased, the key,
//! the journal, the outbox, inventory, and what survives a crash.

use satellite::codes::ErrorCode;
use satellite::store::{JobMeta, Keys, NewJob, Phase, Record, SinkSpec, Status, Store, StoreError};
use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const PAN: &str = "4000001234567899";
const OTHER_PAN: &str = "5100009876543210";
const TRACK2: &str = ";4000001234567899=29121010000012300000?";
const MARKER: &str = "MARKER-c0ffee-7f3a9c";

struct Kiosk {
    dir: tempfile::TempDir,
}

impl Kiosk {
    fn new() -> Kiosk {
        let dir = tempfile::tempdir().unwrap();
        Keys::generate(&dir.path().join("card.key")).unwrap();
        Kiosk { dir }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("satellite.db")
    }

    fn keys(&self) -> Keys {
        Keys::load(&self.dir.path().join("card.key")).unwrap()
    }

    fn open(&self) -> Store {
        Store::open(&self.db(), self.keys()).unwrap()
    }

    /// A plain SQLite connection beside the store, to look under it.
    fn raw(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).unwrap()
    }

    /// The database file, its WAL and its shared-memory index, as bytes.
    fn file_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for suffix in ["", "-wal", "-shm"] {
            let mut p = self.db().into_os_string();
            p.push(suffix);
            if let Ok(b) = fs::read(&p) {
                all.extend_from_slice(&b);
            }
        }
        all
    }

    fn wal_len(&self) -> u64 {
        let mut p = self.db().into_os_string();
        p.push("-wal");
        fs::metadata(p).map(|m| m.len()).unwrap_or(0)
    }
}

fn job(token: &str, pan: &str) -> NewJob {
    NewJob::from(JobMeta {
        card_token: token.to_string(),
        profile_id: 123456,
        kiosk_id: "WIS00001".to_string(),
        card_type: "VISA_DEBIT".to_string(),
        issuer_request_id: format!("req-{token}"),
        card_id: format!("card-{token}"),
        pan_masked: dialect::redact::mask_digits(pan),
    })
}

/// Card data as the engine would seal it: PAN, tracks, a marker.
fn card_data(pan: &str) -> Vec<u8> {
    format!(
        "{{\"pan\":\"{pan}\",\"track1\":\"%B{pan}^DOE/JANE^2912101?\",\"track2\":\"{TRACK2}\",\
         \"pinBlock\":\"26123456FFFFFFFF\",\"note\":\"{MARKER}\"}}"
    )
    .into_bytes()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

fn accept(store: &Store, token: &str, pan: &str) {
    store
        .accept(&job(token, pan), pan, &card_data(pan), 100)
        .unwrap();
}

fn event_count(store: &Store, token: &str) -> usize {
    store.events(token).unwrap().len()
}

const STEPS: [&str; 8] = [
    "insert", "chip", "magnetic", "print", "emboss", "verify", "present", "taken",
];

// ---------------------------------------------------------------- schema

#[test]
fn a_new_database_is_created_migrated_private_and_reopens() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "t1", PAN);
    drop(store);

    let raw = k.raw();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, satellite::store::SCHEMA_VERSION);
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "WAL is a property of the file");
    drop(raw);
    let perms = fs::metadata(k.db()).unwrap().permissions().mode() & 0o777;
    assert_eq!(perms, 0o600);

    let store = k.open();
    assert_eq!(store.job("t1").unwrap().unwrap().status, Status::Ready);
    assert_eq!(store.queued().unwrap().len(), 1);
    // And once more: an up-to-date database opens as it is.
    drop(store);
    k.open();
}

#[test]
fn a_database_newer_than_the_code_is_refused() {
    let k = Kiosk::new();
    drop(k.open());
    k.raw().pragma_update(None, "user_version", 99).unwrap();
    let e = Store::open(&k.db(), k.keys()).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Migration(_)), "{msg}");
    assert!(msg.contains("version 99") && msg.contains("newer"), "{msg}");
}

#[test]
fn another_programs_file_is_refused() {
    let k = Kiosk::new();
    k.raw()
        .execute_batch("CREATE TABLE notes (x TEXT)")
        .unwrap();
    let e = Store::open(&k.db(), k.keys()).unwrap_err();
    assert!(matches!(e, StoreError::Migration(_)), "{e}");
}

// ------------------------------------------------- transitions and events

fn assert_sequence(store: &Store, token: &str, statuses: &[Status]) {
    let events = store.events(token).unwrap();
    let got: Vec<Status> = events.iter().map(|e| e.status).collect();
    assert_eq!(got, statuses, "{token}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "{token}: seq starts at 1, no gap");
        assert_eq!(e.card_token, token);
        assert!(uuid::Uuid::parse_str(&e.id).is_ok(), "{}", e.id);
    }
    let ids: HashSet<_> = events.iter().map(|e| &e.id).collect();
    assert_eq!(ids.len(), events.len(), "ids are unique");
    // The last event is the job's status.
    let job = store.job(token).unwrap().unwrap();
    assert_eq!(job.status, *statuses.last().unwrap());
}

#[test]
fn produced_every_step_has_its_event() {
    let k = Kiosk::new();
    let store = k.open();
    let e1 = store
        .accept(&job("t1", PAN), PAN, &card_data(PAN), 10)
        .unwrap();
    assert_eq!((e1.seq, e1.status), (1, Status::Ready));
    assert_eq!(e1.step, None);
    let ready = store.job("t1").unwrap().unwrap();
    assert_eq!(ready.occurred_at, e1.occurred_at);
    assert_eq!(ready.created_at, e1.occurred_at);
    assert_eq!(ready.meta.pan_masked, "400000******7899");
    assert_eq!(ready.meta.kiosk_id, "WIS00001");

    let e2 = store.start("t1").unwrap();
    assert_eq!((e2.seq, e2.status), (2, Status::InProgress));
    let started = store.job("t1").unwrap().unwrap();
    assert_eq!(started.occurred_at, e2.occurred_at);

    let mut expected = vec![Status::Ready, Status::InProgress];
    for (i, step) in STEPS.iter().enumerate() {
        let e = store.intent("t1", step).unwrap();
        assert_eq!(e.seq, 3 + i as i64);
        assert_eq!(e.status, Status::InProgress);
        assert_eq!(e.step.as_deref(), Some(*step));
        expected.push(Status::InProgress);
        assert_eq!(
            store.job("t1").unwrap().unwrap().step.as_deref(),
            Some(*step)
        );
        let before = event_count(&store, "t1");
        store.outcome("t1", step, true, None).unwrap();
        assert_eq!(event_count(&store, "t1"), before, "an outcome is no event");
    }
    // A step is not a status change: occurredAt stays the start's.
    assert_eq!(
        store.job("t1").unwrap().unwrap().occurred_at,
        e2.occurred_at
    );

    let done = store.finish("t1", Status::Produced, None, None).unwrap();
    assert_eq!((done.seq, done.status), (11, Status::Produced));
    assert_eq!(done.step.as_deref(), Some("taken"));
    assert_eq!(done.error_code, None);
    expected.push(Status::Produced);
    assert_sequence(&store, "t1", &expected);
    let job = store.job("t1").unwrap().unwrap();
    assert_eq!(job.occurred_at, done.occurred_at);
    assert_eq!(job.error_code, None);

    // Event ids are stable: read again, and after a reopen.
    let first = store.events("t1").unwrap();
    drop(store);
    assert_eq!(k.open().events("t1").unwrap(), first);
}

#[test]
fn production_error_cancel_and_request_error_have_their_events() {
    let k = Kiosk::new();
    let store = k.open();

    accept(&store, "err", PAN);
    store.start("err").unwrap();
    store.intent("err", "magnetic").unwrap();
    store
        .outcome(
            "err",
            "magnetic",
            false,
            Some("read-back differs on track 2"),
        )
        .unwrap();
    let e = store
        .finish(
            "err",
            Status::ProductionError,
            Some(ErrorCode::PRD_MAGSTRIPE),
            None,
        )
        .unwrap();
    assert_eq!(e.error_code, Some(ErrorCode::PRD_MAGSTRIPE));
    assert_eq!(
        e.description.as_deref(),
        Some(ErrorCode::PRD_MAGSTRIPE.description()),
        "the description defaults to the code's"
    );
    assert_eq!(e.step.as_deref(), Some("magnetic"));
    assert_sequence(
        &store,
        "err",
        &[
            Status::Ready,
            Status::InProgress,
            Status::InProgress,
            Status::ProductionError,
        ],
    );
    let failed = store.job("err").unwrap().unwrap();
    assert_eq!(failed.error_code, Some(ErrorCode::PRD_MAGSTRIPE));

    accept(&store, "doubt", OTHER_PAN);
    store.start("doubt").unwrap();
    store.intent("doubt", "print").unwrap();
    let e = store
        .finish(
            "doubt",
            Status::ProductionError,
            Some(ErrorCode::UNKNOWN_ERROR),
            Some("interrupted during step print; card rejected"),
        )
        .unwrap();
    assert_eq!(
        e.description.as_deref(),
        Some("interrupted during step print; card rejected")
    );

    accept(&store, "cxl", "4111111111111111");
    let e = store.cancel("cxl").unwrap();
    assert_eq!(
        (e.seq, e.status, e.step.as_deref()),
        (2, Status::Cancelled, None)
    );
    assert_sequence(&store, "cxl", &[Status::Ready, Status::Cancelled]);

    let e = store
        .record_request_error(
            &job("bad", "4000000000000002"),
            ErrorCode::INVALID_PIN_FORMAT,
            "pinBlock: first nibble is 5",
        )
        .unwrap();
    assert_eq!((e.seq, e.status), (1, Status::RequestError));
    assert_eq!(e.error_code, Some(ErrorCode::INVALID_PIN_FORMAT));
    assert_eq!(
        e.description.as_deref(),
        Some("pinBlock: first nibble is 5")
    );
    assert_sequence(&store, "bad", &[Status::RequestError]);
    assert!(matches!(store.card_data("bad"), Err(StoreError::NotFound)));
    let e = store
        .record_request_error(&job("bad2", ""), ErrorCode::EMPTY_OR_NULL_FIELD_VALUE, "")
        .unwrap();
    assert_eq!(
        e.description.as_deref(),
        Some(ErrorCode::EMPTY_OR_NULL_FIELD_VALUE.description())
    );
}

#[test]
fn forbidden_transitions_are_refused_and_write_nothing() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "r", PAN);

    let check =
        |what: &str, r: Result<satellite::store::Event, StoreError>, token: &str, n: usize| {
            assert!(r.is_err(), "{what} was allowed");
            assert_eq!(event_count(&store, token), n, "{what} wrote an event");
            r.unwrap_err()
        };

    // READY: no intent, no outcome, no finish.
    let e = check("intent on READY", store.intent("r", "insert"), "r", 1);
    assert!(matches!(
        e,
        StoreError::WrongState {
            expected: Status::InProgress,
            found: Status::Ready
        }
    ));
    assert!(matches!(
        store.outcome("r", "insert", true, None),
        Err(StoreError::WrongState { .. })
    ));
    let e = check(
        "finish on READY",
        store.finish("r", Status::Produced, None, None),
        "r",
        1,
    );
    assert!(matches!(
        e,
        StoreError::WrongState {
            found: Status::Ready,
            ..
        }
    ));

    store.start("r").unwrap();
    let e = check("start twice", store.start("r"), "r", 2);
    assert!(matches!(
        e,
        StoreError::WrongState {
            expected: Status::Ready,
            found: Status::InProgress
        }
    ));
    let e = check("cancel IN_PROGRESS", store.cancel("r"), "r", 2);
    assert!(matches!(e, StoreError::NotCancellable(Status::InProgress)));
    // finish only to a production outcome, with a code exactly when it failed.
    for (status, code) in [
        (Status::Ready, None),
        (Status::Cancelled, None),
        (Status::RequestError, Some(ErrorCode::UNKNOWN_ERROR)),
        (Status::InProgress, None),
        (Status::Produced, Some(ErrorCode::PRD_TIMEOUT)),
        (Status::ProductionError, None),
    ] {
        let e = check("bad finish", store.finish("r", status, code, None), "r", 2);
        assert!(matches!(e, StoreError::Invalid(_)), "{status}: {e}");
    }
    // An outcome needs the intent of its step.
    assert!(matches!(
        store.outcome("r", "insert", true, None),
        Err(StoreError::Invalid(_))
    ));
    store.intent("r", "insert").unwrap();
    assert!(matches!(
        store.outcome("r", "chip", true, None),
        Err(StoreError::Invalid(_))
    ));
    store.outcome("r", "insert", true, None).unwrap();
    assert!(matches!(
        store.outcome("r", "insert", true, None),
        Err(StoreError::Invalid(_))
    ));
    store.finish("r", Status::Produced, None, None).unwrap();

    // Final is final.
    let n = event_count(&store, "r");
    let e = check("start PRODUCED", store.start("r"), "r", n);
    assert!(matches!(
        e,
        StoreError::WrongState {
            found: Status::Produced,
            ..
        }
    ));
    check("intent PRODUCED", store.intent("r", "x"), "r", n);
    check(
        "finish twice",
        store.finish(
            "r",
            Status::ProductionError,
            Some(ErrorCode::PRD_TIMEOUT),
            None,
        ),
        "r",
        n,
    );
    let e = check("cancel PRODUCED", store.cancel("r"), "r", n);
    assert!(matches!(e, StoreError::NotCancellable(Status::Produced)));

    accept(&store, "c", OTHER_PAN);
    store.cancel("c").unwrap();
    let e = check("start CANCELLED", store.start("c"), "c", 2);
    assert!(matches!(
        e,
        StoreError::WrongState {
            found: Status::Cancelled,
            ..
        }
    ));
    let e = check("cancel twice", store.cancel("c"), "c", 2);
    assert!(matches!(e, StoreError::NotCancellable(Status::Cancelled)));

    for r in [
        store.start("nope"),
        store.cancel("nope"),
        store.intent("nope", "insert"),
        store.finish("nope", Status::Produced, None, None),
    ] {
        assert!(matches!(r, Err(StoreError::NotFound)));
    }
    assert!(matches!(store.events("nope"), Err(StoreError::NotFound)));
    assert!(matches!(store.journal("nope"), Err(StoreError::NotFound)));
    assert!(store.job("nope").unwrap().is_none());
}

#[test]
fn the_database_itself_refuses_a_change_without_its_event() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "t", PAN);
    store.start("t").unwrap();
    store.intent("t", "insert").unwrap();
    store.outcome("t", "insert", true, None).unwrap();
    store.finish("t", Status::Produced, None, None).unwrap();
    accept(&store, "q", OTHER_PAN);
    drop(store);

    let raw = k.raw();
    for (sql, why) in [
        (
            "UPDATE jobs SET status = 'READY' WHERE card_token = 't'",
            "forbidden status transition",
        ),
        (
            "UPDATE jobs SET status = 'IN_PROGRESS' WHERE card_token = 'q'",
            "status change without its event",
        ),
        (
            "UPDATE jobs SET status = 'IN_PROGRESS', last_event_seq = 2 WHERE card_token = 'q'",
            "event sequence broken",
        ),
        (
            "UPDATE jobs SET status = 'CANCELLED', last_event_seq = last_event_seq + 1 \
             WHERE card_token = 'q'",
            "event sequence broken",
        ),
        (
            "INSERT INTO events (id, job_seq, seq, status, occurred_at) \
             SELECT 'x', seq, 7, 'READY', 'now' FROM jobs WHERE card_token = 'q'",
            "event out of sequence",
        ),
        (
            "UPDATE events SET status = 'PRODUCED' WHERE seq = 1",
            "events are immutable",
        ),
        (
            "UPDATE jobs SET card_token = 'other' WHERE card_token = 'q'",
            "identity",
        ),
    ] {
        let e = raw.execute(sql, []).unwrap_err().to_string();
        assert!(e.contains(why), "{sql}: {e}");
    }
}

// ------------------------------------------------------------- refusals

#[test]
fn a_duplicate_card_token_is_refused_whatever_its_state() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "t1", PAN);
    let before = store.job("t1").unwrap().unwrap();
    let e = store
        .accept(&job("t1", OTHER_PAN), OTHER_PAN, b"other", 10)
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate));
    assert_eq!(e.code(), Some(ErrorCode::REQUEST_ALREADY_EXISTS));
    let e = store
        .record_request_error(&job("t1", OTHER_PAN), ErrorCode::INVALID_FIELD_VALUE, "x")
        .unwrap_err();
    assert!(matches!(e, StoreError::Duplicate));
    assert_eq!(store.job("t1").unwrap().unwrap(), before);
    assert_eq!(event_count(&store, "t1"), 1);
    assert_eq!(&store.card_data("t1").unwrap()[..], &card_data(PAN)[..]);

    // Also once final, and for a request error.
    store.cancel("t1").unwrap();
    assert!(matches!(
        store.accept(&job("t1", PAN), PAN, b"again", 10),
        Err(StoreError::Duplicate)
    ));
    store
        .record_request_error(&job("t2", ""), ErrorCode::INVALID_FIELD_VALUE, "x")
        .unwrap();
    assert!(matches!(
        store.accept(&job("t2", PAN), PAN, b"again", 10),
        Err(StoreError::Duplicate)
    ));
}

#[test]
fn a_pan_in_production_is_refused_until_its_job_is_final() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "a", PAN);
    let spaced = "4000 0012 3456 7899";
    let e = store
        .accept(&job("b", PAN), spaced, &card_data(PAN), 10)
        .unwrap_err();
    assert!(matches!(e, StoreError::PanInProduction), "{e}");
    assert_eq!(e.code(), Some(ErrorCode::PAN_ALREADY_EXISTS));
    assert!(store.job("b").unwrap().is_none(), "nothing written");

    store.start("a").unwrap();
    assert!(matches!(
        store.accept(&job("b", PAN), PAN, &card_data(PAN), 10),
        Err(StoreError::PanInProduction)
    ));
    // Another PAN is fine meanwhile.
    accept(&store, "c", OTHER_PAN);

    store
        .finish(
            "a",
            Status::ProductionError,
            Some(ErrorCode::PRD_FEEDER_JAM),
            None,
        )
        .unwrap();
    accept(&store, "b", PAN);
    // And cancelling releases it too.
    assert!(matches!(
        store.accept(&job("d", PAN), PAN, &card_data(PAN), 10),
        Err(StoreError::PanInProduction)
    ));
    store.cancel("b").unwrap();
    accept(&store, "d", PAN);
    // A final job keeps no fingerprint at all.
    let raw = k.raw();
    let kept: i64 = raw
        .query_row(
            "SELECT count(*) FROM jobs WHERE pan_fingerprint IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 2, "c and d only");
}

#[test]
fn a_full_queue_refuses_and_counts_only_ready_jobs() {
    let k = Kiosk::new();
    let store = k.open();
    let limit = 2;
    store.accept(&job("a", PAN), PAN, b"a", limit).unwrap();
    store
        .accept(&job("b", OTHER_PAN), OTHER_PAN, b"b", limit)
        .unwrap();
    let e = store
        .accept(
            &job("c", "4111111111111111"),
            "4111111111111111",
            b"c",
            limit,
        )
        .unwrap_err();
    assert!(matches!(e, StoreError::QueueFull));
    assert_eq!(e.code(), Some(ErrorCode::UNABLE_TO_ACCEPT_REQUEST));
    assert!(store.job("c").unwrap().is_none(), "nothing written");
    store.start("a").unwrap();
    store
        .accept(
            &job("c", "4111111111111111"),
            "4111111111111111",
            b"c",
            limit,
        )
        .unwrap();
    let order: Vec<_> = store
        .queued()
        .unwrap()
        .into_iter()
        .map(|j| j.meta.card_token)
        .collect();
    assert_eq!(order, ["b", "c"], "arrival order");
    let seqs: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|t| store.job(t).unwrap().unwrap().seq)
        .collect();
    assert!(seqs[0] < seqs[1] && seqs[1] < seqs[2]);
    assert_eq!(store.in_progress().unwrap()[0].meta.card_token, "a");
    assert!(matches!(
        store.accept(&job("z", "4222222222222"), "4222222222222", b"z", 0),
        Err(StoreError::QueueFull)
    ));
}

#[test]
fn a_masked_pan_that_shows_the_pan_is_refused() {
    let k = Kiosk::new();
    let store = k.open();
    let mut leaky = job("t", PAN);
    leaky.meta.pan_masked = PAN.to_string();
    let e = store.accept(&leaky, PAN, b"x", 10).unwrap_err();
    assert!(matches!(e, StoreError::Invalid(_)), "{e}");
    assert!(!e.to_string().contains(PAN));
    assert!(store.job("t").unwrap().is_none());
}

// ------------------------------------------------------------ card data

#[test]
fn card_data_round_trips_and_is_never_plain_in_the_files() {
    let k = Kiosk::new();
    let store = k.open();
    // Small card data, and a large one (an image) on overflow pages.
    let small = card_data(PAN);
    let mut large = card_data(OTHER_PAN);
    large.extend((0..200_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    large.extend_from_slice(MARKER.as_bytes());
    store.accept(&job("s", PAN), PAN, &small, 10).unwrap();
    store
        .accept(&job("l", OTHER_PAN), OTHER_PAN, &large, 10)
        .unwrap();
    assert_eq!(&store.card_data("s").unwrap()[..], &small[..]);
    assert_eq!(&store.card_data("l").unwrap()[..], &large[..]);

    let sha = |s: &str| {
        use sha2::Digest;
        sha2::Sha256::digest(s.as_bytes()).to_vec()
    };
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("PAN", PAN.as_bytes().to_vec()),
        ("other PAN", OTHER_PAN.as_bytes().to_vec()),
        ("track 2", TRACK2.as_bytes().to_vec()),
        ("track 1 name", b"DOE/JANE".to_vec()),
        ("PIN block", b"26123456FFFFFFFF".to_vec()),
        ("marker", MARKER.as_bytes().to_vec()),
        (
            "image bytes",
            large[small.len() + 1000..small.len() + 1032].to_vec(),
        ),
        ("bare SHA-256 of the PAN", sha(PAN)),
    ];
    let look = |when: &str| {
        let bytes = k.file_bytes();
        assert!(bytes.len() > 200_000, "{when}: the files were read");
        for (what, needle) in &secrets {
            assert!(
                !contains(&bytes, needle),
                "{when}: {what} found in the files"
            );
        }
        // The masked form is what is kept.
        assert!(contains(&bytes, b"400000******7899"), "{when}");
    };
    look("in the WAL");
    store.checkpoint().unwrap();
    assert_eq!(k.wal_len(), 0);
    look("after a checkpoint");
    drop(store);
    look("after close");
}

/// The sealed records as they lie in the file.
fn sealed(k: &Kiosk) -> Vec<Vec<u8>> {
    let raw = k.raw();
    let mut st = raw
        .prepare("SELECT sealed FROM card_data ORDER BY job_seq")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Windows of a sealed record (nonce and start, middle, end with the tag).
fn pieces(blob: &[u8]) -> Vec<&[u8]> {
    let n = blob.len();
    let w = 24.min(n);
    vec![
        &blob[..w],
        &blob[n / 2 - w / 2..n / 2 + w / 2],
        &blob[n - w..],
    ]
}

#[test]
fn card_data_is_erased_when_the_job_is_final_even_from_the_file() {
    let k = Kiosk::new();
    let store = k.open();
    let mut image = card_data(OTHER_PAN);
    image.extend((0..50_000u32).map(|i| (i.wrapping_mul(2246822519) >> 11) as u8));
    store
        .accept(&job("done", PAN), PAN, &card_data(PAN), 10)
        .unwrap();
    store
        .accept(&job("cxl", OTHER_PAN), OTHER_PAN, &image, 10)
        .unwrap();
    store
        .accept(
            &job("kept", "4111111111111111"),
            "4111111111111111",
            b"still queued",
            10,
        )
        .unwrap();
    // Move the records into the main file, so that erasing is tested there.
    store.checkpoint().unwrap();
    let records = sealed(&k);
    assert_eq!(records.len(), 3);
    let before = k.file_bytes();
    for r in &records[..2] {
        for p in pieces(r) {
            assert!(contains(&before, p), "the record is in the file before");
        }
    }

    store.start("done").unwrap();
    store.intent("done", "insert").unwrap();
    store.outcome("done", "insert", true, None).unwrap();
    store.finish("done", Status::Produced, None, None).unwrap();
    store.cancel("cxl").unwrap();
    for t in ["done", "cxl"] {
        assert!(
            matches!(store.card_data(t), Err(StoreError::NotFound)),
            "{t}"
        );
    }
    assert_eq!(&store.card_data("kept").unwrap()[..], b"still queued");
    assert_eq!(sealed(&k).len(), 1);

    store.checkpoint().unwrap();
    assert_eq!(k.wal_len(), 0);
    let after = k.file_bytes();
    for (i, r) in records[..2].iter().enumerate() {
        for p in pieces(r) {
            assert!(
                !contains(&after, p),
                "record {i} still in the file (secure_delete)"
            );
        }
    }
    for p in pieces(&records[2]) {
        assert!(contains(&after, p), "the queued job's record stays");
    }
}

#[test]
fn another_key_is_refused_with_a_clear_error() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "t", PAN);
    drop(store);
    let other = Keys::generate(&k.dir.path().join("other.key")).unwrap();
    let e = Store::open(&k.db(), other).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Key(_)), "{msg}");
    assert!(msg.contains("another card-data key"), "{msg}");
    // The right key still opens it.
    assert_eq!(&k.open().card_data("t").unwrap()[..], &card_data(PAN)[..]);
}

#[test]
fn a_record_moved_to_another_job_does_not_open() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "a", PAN);
    accept(&store, "b", OTHER_PAN);
    k.raw()
        .execute(
            "UPDATE card_data SET sealed = (SELECT sealed FROM card_data c JOIN jobs j \
             ON j.seq = c.job_seq WHERE j.card_token = 'a') \
             WHERE job_seq = (SELECT seq FROM jobs WHERE card_token = 'b')",
            [],
        )
        .unwrap();
    let e = store.card_data("b").unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, StoreError::Key(_)), "{msg}");
    assert!(msg.contains("does not authenticate"), "{msg}");
    assert!(!msg.contains(PAN) && !msg.contains(OTHER_PAN));
    assert_eq!(&store.card_data("a").unwrap()[..], &card_data(PAN)[..]);
}

#[test]
fn key_files_open_to_group_or_others_are_refused() {
    let k = Kiosk::new();
    let path = k.dir.path().join("card.key");
    for mode in [0o640, 0o644, 0o604] {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
        let e = Keys::load(&path).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, StoreError::Key(_)), "{msg}");
        assert!(msg.contains("chmod 600"), "{msg}");
    }
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
    Keys::load(&path).unwrap();
}

#[test]
fn nothing_secret_in_errors_or_debug() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "t", PAN);
    let mut shown = vec![
        format!("{store:?}"),
        format!("{:?}", k.keys()),
        format!("{:?}", store.job("t").unwrap()),
        format!("{:?}", store.events("t").unwrap()),
    ];
    for e in [
        store
            .accept(&job("t", PAN), PAN, &card_data(PAN), 10)
            .unwrap_err(),
        store
            .accept(&job("u", PAN), PAN, &card_data(PAN), 10)
            .unwrap_err(),
        store
            .accept(&job("v", OTHER_PAN), OTHER_PAN, &card_data(PAN), 0)
            .unwrap_err(),
    ] {
        shown.push(e.to_string());
        shown.push(format!("{e:?}"));
    }
    store.start("t").unwrap();
    store.intent("t", "magnetic").unwrap();
    // A detail or description that carries a PAN by mistake is masked.
    store
        .outcome("t", "magnetic", false, Some(&format!("read back {PAN}")))
        .unwrap();
    let j = store.journal("t").unwrap();
    assert_eq!(j[1].detail.as_deref(), Some("read back 400000******7899"));
    let e = store
        .finish(
            "t",
            Status::ProductionError,
            Some(ErrorCode::PRD_MAGSTRIPE),
            Some(&format!("mismatch on {PAN}")),
        )
        .unwrap();
    shown.push(format!("{e:?}"));
    for s in &shown {
        assert!(!s.contains(PAN) && !s.contains(OTHER_PAN), "{s}");
        assert!(!s.contains(MARKER), "{s}");
    }
}

// -------------------------------------------------------------- journal

#[test]
fn the_journal_keeps_intent_then_outcome_in_order() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "t", PAN);
    store.start("t").unwrap();
    for step in STEPS {
        store.intent("t", step).unwrap();
        let ok = step != "verify";
        let detail = (!ok).then_some("chip answered 6A82");
        store.outcome("t", step, ok, detail).unwrap();
    }
    let journal = store.journal("t").unwrap();
    assert_eq!(journal.len(), 16);
    for (i, pair) in journal.chunks(2).enumerate() {
        let (intent, outcome) = (&pair[0], &pair[1]);
        assert_eq!(intent.step, STEPS[i]);
        assert_eq!(intent.phase, Phase::Intent);
        assert_eq!(intent.ok, None);
        assert_eq!(outcome.step, STEPS[i]);
        assert_eq!(outcome.phase, Phase::Outcome);
        assert_eq!(outcome.ok, Some(STEPS[i] != "verify"));
        assert!(intent.at <= outcome.at);
    }
    assert_eq!(journal[11].detail.as_deref(), Some("chip answered 6A82"));
    let stamps: Vec<_> = journal.iter().map(|e| e.at.clone()).collect();
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(stamps, sorted);
    // The journal outlives the job's end (the card data does not).
    store.finish("t", Status::Produced, None, None).unwrap();
    assert_eq!(store.journal("t").unwrap().len(), 16);
}

#[test]
fn after_a_restart_the_job_in_doubt_shows_its_open_step() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "a", PAN);
    accept(&store, "b", OTHER_PAN);
    accept(&store, "c", "4111111111111111");
    store.start("a").unwrap();
    store.intent("a", "insert").unwrap();
    store.outcome("a", "insert", true, None).unwrap();
    store.intent("a", "print").unwrap();
    drop(store);

    let store = k.open();
    let doubt = store.in_progress().unwrap();
    assert_eq!(doubt.len(), 1);
    assert_eq!(doubt[0].meta.card_token, "a");
    assert_eq!(doubt[0].step.as_deref(), Some("print"));
    let last = store.journal("a").unwrap().pop().unwrap();
    assert_eq!((last.step.as_str(), last.phase), ("print", Phase::Intent));
    let e = store
        .finish(
            "a",
            Status::ProductionError,
            Some(ErrorCode::UNKNOWN_ERROR),
            Some("interrupted during step print"),
        )
        .unwrap();
    assert_eq!(e.step.as_deref(), Some("print"));
    let queue: Vec<_> = store
        .queued()
        .unwrap()
        .into_iter()
        .map(|j| j.meta.card_token)
        .collect();
    assert_eq!(queue, ["b", "c"]);
}

// --------------------------------------------------------------- outbox

fn sinks(store: &Store) {
    store
        .configure_sinks(&[
            SinkSpec {
                name: "cb".into(),
                kind: "central_base".into(),
                statuses: None,
            },
            SinkSpec {
                name: "d1".into(),
                kind: "d1".into(),
                statuses: Some(vec![Status::Produced]),
            },
        ])
        .unwrap();
}

fn due(store: &Store, sink: &str) -> Vec<(String, i64, Status)> {
    store
        .due(sink, 100)
        .unwrap()
        .into_iter()
        .map(|d| (d.job.meta.card_token, d.event.seq, d.event.status))
        .collect()
}

fn delivered(store: &Store, sink: &str, ords: &[i64]) {
    let records: Vec<Record> = ords.iter().map(|&ord| Record::Delivered { ord }).collect();
    store.record(sink, &records).unwrap();
}

fn ords(store: &Store, sink: &str) -> Vec<i64> {
    store
        .due(sink, 100)
        .unwrap()
        .iter()
        .map(|d| d.ord)
        .collect()
}

#[test]
fn each_sink_gets_the_status_changes_it_wants_one_per_card_in_order() {
    let k = Kiosk::new();
    let store = k.open();
    // Written before any sink exists: sent to none.
    accept(&store, "early", "4111111111111111");
    sinks(&store);
    accept(&store, "a", PAN);
    accept(&store, "b", OTHER_PAN);
    store.start("a").unwrap();
    // A step inside IN_PROGRESS is not a status change.
    store.intent("a", "insert").unwrap();
    store.outcome("a", "insert", true, None).unwrap();
    store.finish("a", Status::Produced, None, None).unwrap();
    store.cancel("b").unwrap();
    // Only the first pending event of each card is due.
    assert_eq!(
        due(&store, "cb"),
        [
            ("a".into(), 1, Status::Ready),
            ("b".into(), 1, Status::Ready)
        ]
    );
    // D1 hears of the produced card only.
    assert_eq!(due(&store, "d1"), [("a".into(), 4, Status::Produced)]);
    let depth = store.outbox_depths().unwrap();
    let cb = depth.iter().find(|d| d.sink == "cb").unwrap();
    assert_eq!((cb.pending, cb.dead, cb.active), (5, 0, true));
    assert!(cb.oldest_pending_at.is_some());

    // Delivered: the card's next status change comes due.
    let first = ords(&store, "cb");
    delivered(&store, "cb", &first);
    assert_eq!(
        due(&store, "cb"),
        [
            ("a".into(), 2, Status::InProgress),
            ("b".into(), 2, Status::Cancelled)
        ]
    );
    // A failed attempt is counted and the delivery stays due (when to try
    // again is the relay's clock, not the store's).
    let next = ords(&store, "cb");
    store
        .record(
            "cb",
            &[Record::Failed {
                ord: next[0],
                why: "HTTP 503".into(),
                next_ms: 5_000,
            }],
        )
        .unwrap();
    assert_eq!(store.due("cb", 100).unwrap()[0].attempts, 1);

    // A dead letter holds back its card's later events, not other cards'.
    store
        .record(
            "cb",
            &[Record::Dead {
                ord: next[0],
                why: "HTTP 400 (INVALID_EVENT)".into(),
            }],
        )
        .unwrap();
    assert_eq!(due(&store, "cb"), [("b".into(), 2, Status::Cancelled)]);
    let cb = store.outbox_depths().unwrap();
    let cb = cb.iter().find(|d| d.sink == "cb").unwrap();
    assert_eq!((cb.pending, cb.held, cb.dead), (2, 1, 1));
    let dead = store.dead_letters(Some("cb")).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].event.status, Status::InProgress);
    assert_eq!(dead[0].state, "DEAD");
    assert_eq!(dead[0].error.as_deref(), Some("HTTP 400 (INVALID_EVENT)"));
    // Replayed: it goes first, then the card's later ones in order.
    assert_eq!(store.replay("cb", None).unwrap(), 1);
    assert!(store.dead_letters(None).unwrap().is_empty());
    assert_eq!(due(&store, "cb")[0], ("a".into(), 2, Status::InProgress));
    assert_eq!(store.due("cb", 100).unwrap()[0].attempts, 0);

    // The sink's error now: set, then cleared by a delivery.
    store
        .record(
            "cb",
            &[Record::SinkError {
                why: Some("HTTP 404".into()),
            }],
        )
        .unwrap();
    let depth = |store: &Store| {
        store
            .outbox_depths()
            .unwrap()
            .into_iter()
            .find(|d| d.sink == "cb")
            .unwrap()
    };
    assert_eq!(depth(&store).last_error.as_deref(), Some("HTTP 404"));
    assert!(depth(&store).error_since.is_some());
    store
        .record("cb", &[Record::SinkError { why: None }])
        .unwrap();
    assert_eq!(depth(&store).last_error, None);
    // Disabled (410) until enabled; both survive a reopen.
    store
        .record(
            "cb",
            &[Record::Disabled {
                why: "HTTP 410".into(),
            }],
        )
        .unwrap();
    assert_eq!(
        store.sink_state("cb").unwrap().disabled.as_deref(),
        Some("HTTP 410")
    );

    // Pending deliveries survive a reopen; a sink dropped from the
    // configuration keeps its rows but gets no new ones.
    drop(store);
    let store = k.open();
    store
        .configure_sinks(&[SinkSpec {
            name: "cb".into(),
            kind: "central_base".into(),
            statuses: None,
        }])
        .unwrap();
    assert_eq!(
        store.sink_state("cb").unwrap().disabled.as_deref(),
        Some("HTTP 410")
    );
    assert!(store.enable_sink("cb").unwrap());
    assert_eq!(store.sink_state("cb").unwrap(), Default::default());
    accept(&store, "c", "5555555555554444");
    let d1 = store.outbox_depths().unwrap();
    let d1 = d1.iter().find(|d| d.sink == "d1").unwrap();
    assert_eq!((d1.active, d1.pending), (false, 1));
    assert!(due(&store, "cb").contains(&("c".into(), 1, Status::Ready)));
}

#[test]
fn pruning_keeps_each_cards_final_status_and_anything_undelivered() {
    let k = Kiosk::new();
    let store = k.open();
    sinks(&store);
    accept(&store, "a", PAN);
    store.start("a").unwrap();
    store.finish("a", Status::Produced, None, None).unwrap();
    accept(&store, "b", OTHER_PAN);
    // Nothing delivered yet: nothing goes.
    assert_eq!(store.prune("9999-01-01T00:00:00.000Z").unwrap(), 0);
    loop {
        let o = ords(&store, "cb");
        if o.is_empty() {
            break;
        }
        delivered(&store, "cb", &o);
    }
    let o = ords(&store, "d1");
    delivered(&store, "d1", &o);
    // Too recent: kept.
    assert_eq!(store.prune("2000-01-01T00:00:00.000Z").unwrap(), 0);
    // Delivered history of the final card goes, its final status stays;
    // the open card keeps everything.
    assert_eq!(store.prune("9999-01-01T00:00:00.000Z").unwrap(), 2);
    let a = store.events("a").unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].status, Status::Produced);
    assert_eq!(store.events("b").unwrap().len(), 1);
    assert_eq!(store.job("a").unwrap().unwrap().status, Status::Produced);
}

#[test]
fn a_full_store_refuses_new_requests_but_records_every_status_change() {
    let k = Kiosk::new();
    let store = k.open();
    sinks(&store);
    accept(&store, "a", PAN);
    let (used, _) = store.usage().unwrap();
    store.set_size_limit(used);
    let e = store
        .accept(&job("b", OTHER_PAN), OTHER_PAN, &card_data(OTHER_PAN), 100)
        .unwrap_err();
    assert!(matches!(e, StoreError::SizeLimit { .. }), "{e}");
    assert_eq!(e.code(), Some(ErrorCode::UNABLE_TO_ACCEPT_REQUEST));
    // The accepted card goes on and its events are written.
    store.start("a").unwrap();
    store.finish("a", Status::Produced, None, None).unwrap();
    assert_eq!(store.events("a").unwrap().len(), 3);
    store.set_size_limit(0);
    accept(&store, "b", OTHER_PAN);
}

// ------------------------------------------------------ inventory, meta

#[test]
fn inventory_is_set_by_a_technician_and_counted_down() {
    let k = Kiosk::new();
    let store = k.open();
    assert!(store.inventory().unwrap().is_empty());
    assert_eq!(store.feeder(1).unwrap(), None);
    assert!(matches!(store.consume(1), Err(StoreError::NotFound)));

    store.set_inventory(2, "MC_CREDIT", 50).unwrap();
    store.set_inventory(1, "VISA_DEBIT", 2).unwrap();
    let inv = store.inventory().unwrap();
    assert_eq!(inv.len(), 2);
    assert_eq!(
        (inv[0].feeder, inv[0].card_type.as_str(), inv[0].count),
        (1, "VISA_DEBIT", 2)
    );
    assert_eq!((inv[1].feeder, inv[1].count), (2, 50));
    assert!(!inv[0].set_at.is_empty());

    assert_eq!(store.consume(1).unwrap(), 1);
    assert_eq!(store.consume(1).unwrap(), 0);
    assert_eq!(store.consume(1).unwrap(), 0, "never below 0");
    assert_eq!(store.feeder(2).unwrap().unwrap().count, 50);

    // A reload replaces the feeder's stock.
    store.set_inventory(1, "VISA_CREDIT", 100).unwrap();
    let f1 = store.feeder(1).unwrap().unwrap();
    assert_eq!((f1.card_type.as_str(), f1.count), ("VISA_CREDIT", 100));
    store.set_inventory(3, "X", u32::MAX).unwrap();
    assert_eq!(store.consume(3).unwrap(), u32::MAX - 1);

    assert!(matches!(
        store.set_inventory(0, "X", 1),
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store.set_inventory(4, " ", 1),
        Err(StoreError::Invalid(_))
    ));
    drop(store);
    assert_eq!(k.open().feeder(1).unwrap().unwrap().count, 100);
}

#[test]
fn meta_values_are_kept() {
    let k = Kiosk::new();
    let store = k.open();
    assert_eq!(store.meta("printer.serial").unwrap(), None);
    store.set_meta("printer.serial", "A1B2C3").unwrap();
    store.set_meta("printer.serial", "D4E5F6").unwrap();
    drop(store);
    assert_eq!(
        k.open().meta("printer.serial").unwrap().as_deref(),
        Some("D4E5F6")
    );
}

// ---------------------------------------------------------------- crashes

#[test]
fn a_store_dropped_without_closing_keeps_what_it_committed() {
    let k = Kiosk::new();
    let store = k.open();
    accept(&store, "a", PAN);
    store.start("a").unwrap();
    store.intent("a", "insert").unwrap();
    accept(&store, "b", OTHER_PAN);
    let events = store.events("a").unwrap();
    // Never closed: no checkpoint, the WAL and its index stay as they are.
    std::mem::forget(store);

    let store = k.open();
    assert_eq!(store.events("a").unwrap(), events);
    assert_eq!(store.in_progress().unwrap()[0].meta.card_token, "a");
    assert_eq!(store.queued().unwrap()[0].meta.card_token, "b");
    assert_eq!(
        &store.card_data("b").unwrap()[..],
        &card_data(OTHER_PAN)[..]
    );
}

const CRASH_DIR: &str = "SATELLITE_STORE_TEST_CRASH_DIR";

/// Runs only as the child of the next test: commits, then dies by SIGKILL.
#[test]
#[ignore = "helper process of a_killed_process_loses_nothing_committed"]
fn crash_helper() {
    let Some(dir) = std::env::var_os(CRASH_DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    let store = Store::open(
        &dir.join("satellite.db"),
        Keys::load(&dir.join("card.key")).unwrap(),
    )
    .unwrap();
    for i in 0..20 {
        let pan = format!("40000012345{i:05}");
        store
            .accept(&job(&format!("t{i}"), &pan), &pan, &card_data(&pan), 100)
            .unwrap();
    }
    store.start("t0").unwrap();
    store.intent("t0", "insert").unwrap();
    store.outcome("t0", "insert", true, None).unwrap();
    store.intent("t0", "chip").unwrap();
    store.set_inventory(1, "VISA_DEBIT", 7).unwrap();
    store.consume(1).unwrap();
    nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
    unreachable!("killed");
}

#[test]
fn a_killed_process_loses_nothing_committed() {
    use std::os::unix::process::ExitStatusExt;
    let k = Kiosk::new();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_helper",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR, k.dir.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.signal(),
        Some(9),
        "the helper must die by SIGKILL: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = k.open();
    assert_eq!(store.queued().unwrap().len(), 19);
    let doubt = store.in_progress().unwrap();
    assert_eq!(doubt.len(), 1);
    assert_eq!(doubt[0].step.as_deref(), Some("chip"));
    assert_eq!(store.events("t0").unwrap().len(), 4);
    assert_eq!(store.journal("t0").unwrap().len(), 3);
    assert_eq!(store.feeder(1).unwrap().unwrap().count, 6);
    let events: usize = (0..20)
        .map(|i| store.events(&format!("t{i}")).unwrap().len())
        .sum();
    assert_eq!(events, 23);
    let pan = format!("40000012345{:05}", 19);
    assert_eq!(&store.card_data("t19").unwrap()[..], &card_data(&pan)[..]);
}

#[test]
fn threads_share_one_store() {
    let k = Kiosk::new();
    let store = Arc::new(k.open());
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                for i in 0..10 {
                    let pan = format!("4{t}0000{i:010}");
                    let token = format!("t{t}-{i}");
                    store
                        .accept(&job(&token, &pan), &pan, &card_data(&pan), 1000)
                        .unwrap();
                    if i % 2 == 0 {
                        store.start(&token).unwrap();
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(store.queued().unwrap().len(), 20);
    assert_eq!(store.in_progress().unwrap().len(), 20);
    let events: usize = (0..4)
        .flat_map(|t| (0..10).map(move |i| format!("t{t}-{i}")))
        .map(|token| store.events(&token).unwrap().len())
        .sum();
    assert_eq!(events, 60);
}
