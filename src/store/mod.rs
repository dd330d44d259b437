//! The durable store: jobs, their step journal, the event outbox, inventory
//! and card data sealed at rest, in one SQLite file.
//!
//! * SQLite (bundled) in WAL mode with `synchronous=FULL`: a committed change
//!   survives a crash of the process and a loss of power. `secure_delete` is
//!   on, so erased card data is overwritten in the file, not just unlinked
//!   from its b-tree; [`Store::checkpoint`] also truncates the WAL, where
//!   older copies of pages live until then.
//! * Every status change is written in the same transaction as its event
//!   (stable UUID, per-card sequence 1, 2, 3...): the outbox from which
//!   events are delivered upstream. Triggers in the schema refuse a status
//!   change without its event, a forbidden transition, a gap in a card's
//!   sequence, and card data left on a final job.
//! * Card data is sealed with ChaCha20-Poly1305 under a key derived from the
//!   kiosk's secret ([`Keys`]), bound to the card token; it is deleted in the
//!   transaction that makes the job final. The PAN itself is never stored:
//!   only its masked form and a keyed fingerprint (HMAC-SHA256), kept while
//!   the job is READY or IN_PROGRESS to refuse the same PAN twice.
//! * One connection behind a mutex; every method is one short transaction.
//!
//! Nothing here logs, and no error message carries card data.

mod deferred;
mod error;
mod keys;
mod listing;
mod outbox;
mod outbox_admin;
mod schema;
mod types;
mod usage;

pub use error::StoreError;
pub use keys::Keys;
pub use listing::StoreStats;
pub use outbox::{DeadLetter, Due, Nudges, Record, SinkDepth, SinkSpec, SinkState};
pub use schema::SCHEMA_VERSION;
pub use types::{Event, FeederStock, Job, JobMeta, JournalEntry, NewJob, Phase, Status};
pub use usage::Usage;

use crate::codes::ErrorCode;
use error::Context;
use keys::Crypto;
use rusqlite::TransactionBehavior;
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, Row, Transaction};
use std::fmt;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use zeroize::Zeroizing;

/// How long a write waits for another process's lock (a technician's tool
/// reading the file, say) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const JOB_COLUMNS: &str = "seq, card_token, profile_id, kiosk_id, card_type, \
     issuer_request_id, card_id, pan_masked, status, step, error_code, description, \
     occurred_at, created_at, deferred";

const EVENT_COLUMNS: &str = "e.id, j.card_token, e.seq, e.status, e.step, e.error_code, \
     e.description, e.occurred_at";

/// The durable store. `Send + Sync`; share it behind an `Arc`. Methods block
/// for one short transaction (a few fsyncs at most).
pub struct Store {
    conn: Mutex<Connection>,
    crypto: Crypto,
    path: PathBuf,
    /// Bumped after every commit: the upstream relay wakes on it instead of
    /// polling the outbox.
    written: tokio::sync::watch::Sender<u64>,
    /// Operators' "go now" per sink (see `outbox_admin`).
    nudges: tokio::sync::watch::Sender<Nudges>,
    /// The size at which new requests are refused (bytes; 0: no limit).
    size_limit: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// What a write transaction needs to know of a job.
#[derive(Clone)]
struct JobState {
    seq: i64,
    status: Status,
    step: Option<String>,
    last_event_seq: i64,
}

impl Store {
    /// Opens the store at `path`, creating it (mode 0600) or migrating it to
    /// [`SCHEMA_VERSION`]. Refuses a database newer than this program,
    /// another program's database, and a key other than the one the
    /// database was created with.
    pub fn open(path: &Path, keys: Keys) -> Result<Store, StoreError> {
        let crypto = Crypto::new(keys);
        // SQLite would create the file with the umask's mode; create it
        // private first (its -wal and -shm files take the same mode).
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                return Err(StoreError::Db(format!(
                    "cannot create the database {}: {e}",
                    path.display()
                )))
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let shown = path.display();
        let mut conn = Connection::open_with_flags(path, flags)
            .ctx(&format!("cannot open the database {shown}"))?;
        refuse_read_only(&conn, &shown)?;
        conn.busy_timeout(BUSY_TIMEOUT).ctx("busy_timeout")?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .ctx(&format!("cannot set WAL mode on {shown}"))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Db(format!(
                "{shown} stays in journal mode {mode:?}, not WAL"
            )));
        }
        for (pragma, value, expect) in [
            ("synchronous", "FULL", 2),
            ("foreign_keys", "ON", 1),
            ("secure_delete", "ON", 1),
        ] {
            conn.pragma_update(None, pragma, value)
                .ctx(&format!("cannot set {pragma}"))?;
            let got: i64 = conn
                .pragma_query_value(None, pragma, |r| r.get(0))
                .ctx(&format!("cannot read {pragma}"))?;
            if got != expect {
                return Err(StoreError::Db(format!(
                    "{pragma} is {got} after setting it to {value}"
                )));
            }
        }
        conn.set_prepared_statement_cache_capacity(48);
        schema::migrate(&mut conn, schema::MIGRATIONS)?;

        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("key check")?;
        let stored: Option<Vec<u8>> = tx
            .query_row("SELECT check_value FROM store_key WHERE id = 1", [], |r| {
                r.get(0)
            })
            .optional()
            .ctx("key check: read")?;
        match stored {
            None => {
                tx.execute(
                    "INSERT INTO store_key (id, check_value, created_at) VALUES (1, ?1, ?2)",
                    params![crypto.check_value(), now()],
                )
                .ctx("key check: write")?;
            }
            Some(v) if crypto.matches_check(&v) => {}
            Some(_) => {
                return Err(StoreError::Key(format!(
                    "{shown} was created with another card-data key: this key cannot read \
                     its card data nor match its PAN fingerprints (restore the right key \
                     file or credential)"
                )))
            }
        }
        tx.commit().ctx("key check: commit")?;

        Ok(Store {
            conn: Mutex::new(conn),
            crypto,
            path: path.to_path_buf(),
            written: tokio::sync::watch::channel(0).0,
            nudges: tokio::sync::watch::channel(Nudges::new()).0,
            size_limit: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Closes the database connection and opens it again, then reads the
    /// schema back: after an uncertain commit, what the file holds is what
    /// counts, not what the old connection believed. The new connection
    /// replaces the old one only once a write through it has committed: a
    /// store that opens read-only, or opens but cannot write (a file
    /// system remounted read-only, another process's lock), is
    /// [`StoreError::Unwritable`] and the old connection stays; call again
    /// later.
    pub fn reopen(&self) -> Result<(), StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let shown = self.path.display();
        let mut conn = Connection::open_with_flags(&self.path, flags)
            .ctx(&format!("cannot reopen the database {shown}"))?;
        refuse_read_only(&conn, &shown)?;
        conn.busy_timeout(BUSY_TIMEOUT).ctx("busy_timeout")?;
        for (pragma, value) in [
            ("synchronous", "FULL"),
            ("foreign_keys", "ON"),
            ("secure_delete", "ON"),
        ] {
            conn.pragma_update(None, pragma, value)
                .ctx(&format!("cannot set {pragma}"))?;
        }
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .ctx("reopen: schema version")?;
        if version != SCHEMA_VERSION {
            return Err(StoreError::Migration(format!(
                "reopened {shown} at schema version {version}, expected {SCHEMA_VERSION}"
            )));
        }
        let ok: String = conn
            .query_row("PRAGMA quick_check", [], |r| r.get(0))
            .ctx("reopen: quick_check")?;
        if ok != "ok" {
            return Err(StoreError::Db(format!(
                "{shown} fails its integrity check: {ok}"
            )));
        }
        conn.set_prepared_statement_cache_capacity(48);
        // SQLite can open a file it may not write, and only a commit that
        // reaches the disk shows that writing works again.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("reopen: write check: begin")?;
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('store_reopened_at', ?1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [now()],
        )
        .ctx("reopen: write check")?;
        tx.commit().map_err(|e| {
            let what = format!("reopen: write check: commit: {e}");
            if error::of_the_file(&e) {
                StoreError::Unwritable(what)
            } else {
                StoreError::Db(what)
            }
        })?;
        *self.lock() = conn;
        self.written.send_modify(|n| *n = n.wrapping_add(1));
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Accepts a validated request: the job READY, its card data sealed, the
    /// PAN's keyed fingerprint and event 1 (READY), in one transaction.
    /// Refused, with nothing written: a known card token
    /// ([`StoreError::Duplicate`]), a PAN whose fingerprint belongs to a job
    /// READY or IN_PROGRESS ([`StoreError::PanInProduction`]), `queue_limit`
    /// READY jobs already ([`StoreError::QueueFull`]), checked in that order.
    pub fn accept(
        &self,
        job: &NewJob,
        pan: &str,
        card_data: &[u8],
        queue_limit: usize,
    ) -> Result<Event, StoreError> {
        check_new_job(job)?;
        if !pan.bytes().any(|b| b.is_ascii_digit()) {
            return Err(StoreError::Invalid("the PAN has no digits".into()));
        }
        if job
            .meta
            .pan_masked
            .bytes()
            .filter(u8::is_ascii_digit)
            .count()
            > 10
        {
            return Err(StoreError::Invalid(
                "pan_masked shows more than the first six and last four digits".into(),
            ));
        }
        // The crypto runs before the lock is taken.
        let fingerprint = self.crypto.fingerprint(pan);
        let sealed = self
            .crypto
            .seal(job.meta.card_token.as_bytes(), card_data)?;
        let limit = i64::try_from(queue_limit).unwrap_or(i64::MAX);
        self.write("accept", |tx| {
            if token_known(tx, &job.meta.card_token)? {
                return Err(StoreError::Duplicate);
            }
            let busy: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM jobs WHERE pan_fingerprint = ?1)")
                .and_then(|mut st| st.query_row([&fingerprint], |r| r.get(0)))
                .ctx("accept: fingerprint")?;
            if busy {
                return Err(StoreError::PanInProduction);
            }
            self.check_room(tx, limit)?;
            let at = now();
            let seq = insert_job(tx, job, Status::Ready, Some(&fingerprint), None, None, &at)?;
            tx.prepare_cached("INSERT INTO card_data (job_seq, sealed) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![seq, sealed]))
                .ctx("accept: card data")?;
            let state = JobState {
                seq,
                status: Status::Ready,
                step: None,
                last_event_seq: 0,
            };
            let event = push_event(
                tx,
                &job.meta.card_token,
                &state,
                Status::Ready,
                None,
                None,
                None,
                &at,
            )?;
            set_last_event(tx, seq, event.seq)?;
            Ok(event)
        })
    }

    /// Accepts a request whose card data is deferred: the job READY and
    /// event 1, no card data and no fingerprint (the central base answers
    /// for the PAN's uniqueness). Refused as [`Store::accept`] refuses.
    pub fn accept_deferred(&self, job: &NewJob, queue_limit: usize) -> Result<Event, StoreError> {
        check_new_job(job)?;
        let limit = i64::try_from(queue_limit).unwrap_or(i64::MAX);
        self.write("accept_deferred", |tx| {
            if token_known(tx, &job.meta.card_token)? {
                return Err(StoreError::Duplicate);
            }
            self.check_room(tx, limit)?;
            let at = now();
            let seq = insert_job(tx, job, Status::Ready, None, None, None, &at)?;
            tx.prepare_cached("UPDATE jobs SET deferred = 1 WHERE seq = ?1")
                .and_then(|mut st| st.execute([seq]))
                .ctx("accept_deferred")?;
            let state = JobState {
                seq,
                status: Status::Ready,
                step: None,
                last_event_seq: 0,
            };
            let event = push_event(
                tx,
                &job.meta.card_token,
                &state,
                Status::Ready,
                None,
                None,
                None,
                &at,
            )?;
            set_last_event(tx, seq, event.seq)?;
            Ok(event)
        })
    }

    /// The queue's length and the store's size, against their limits.
    fn check_room(&self, tx: &Transaction<'_>, limit: i64) -> Result<(), StoreError> {
        let queued: i64 = tx
            .prepare_cached("SELECT count(*) FROM jobs WHERE status = 'READY'")
            .and_then(|mut st| st.query_row([], |r| r.get(0)))
            .ctx("accept: queue length")?;
        if queued >= limit {
            return Err(StoreError::QueueFull);
        }
        let size_limit = self.size_limit.load(std::sync::atomic::Ordering::Relaxed);
        if size_limit > 0 {
            let used = used_bytes(tx)?;
            if used >= size_limit {
                return Err(StoreError::SizeLimit {
                    used,
                    limit: size_limit,
                });
            }
        }
        Ok(())
    }

    /// Records the masked PAN of a job whose card data arrived late.
    pub fn set_pan_masked(&self, card_token: &str, masked: &str) -> Result<(), StoreError> {
        if masked.bytes().filter(u8::is_ascii_digit).count() > 10 {
            return Err(StoreError::Invalid(
                "pan_masked shows more than the first six and last four digits".into(),
            ));
        }
        self.write("set_pan_masked", |tx| {
            let n = tx
                .execute(
                    "UPDATE jobs SET pan_masked = ?2 WHERE card_token = ?1",
                    params![card_token, masked],
                )
                .ctx("set_pan_masked")?;
            if n == 0 {
                return Err(StoreError::NotFound);
            }
            Ok(())
        })
    }

    /// Records a request refused at validation whose card token is known: a
    /// job in REQUEST_ERROR with no card data and no fingerprint, and its
    /// event. A known token is [`StoreError::Duplicate`]. An empty
    /// description takes the code's own.
    pub fn record_request_error(
        &self,
        job: &NewJob,
        code: ErrorCode,
        description: &str,
    ) -> Result<Event, StoreError> {
        check_new_job(job)?;
        let description = describe(Some(code), Some(description));
        self.write("record_request_error", |tx| {
            if token_known(tx, &job.meta.card_token)? {
                return Err(StoreError::Duplicate);
            }
            let at = now();
            let seq = insert_job(
                tx,
                job,
                Status::RequestError,
                None,
                Some(code),
                description.as_deref(),
                &at,
            )?;
            let state = JobState {
                seq,
                status: Status::RequestError,
                step: None,
                last_event_seq: 0,
            };
            let event = push_event(
                tx,
                &job.meta.card_token,
                &state,
                Status::RequestError,
                None,
                Some(code),
                description.as_deref(),
                &at,
            )?;
            set_last_event(tx, seq, event.seq)?;
            Ok(event)
        })
    }

    /// The keyed digest of a request's canonical bytes (see [`Store::same_request`]).
    pub fn request_digest(&self, canonical: &[u8]) -> Vec<u8> {
        self.crypto.request_digest(canonical)
    }

    /// The first event of the job with this token, when the request it came
    /// from had this digest: the same request delivered again gets the same
    /// answer. `None` for an unknown token or another request.
    pub fn same_request(
        &self,
        card_token: &str,
        digest: &[u8],
    ) -> Result<Option<Event>, StoreError> {
        let conn = self.lock();
        let stored: Option<Option<Vec<u8>>> = conn
            .prepare_cached("SELECT request_digest FROM jobs WHERE card_token = ?1")
            .and_then(|mut st| st.query_row([card_token], |r| r.get(0)).optional())
            .ctx("request digest lookup")?;
        if stored.flatten().as_deref() != Some(digest) {
            return Ok(None);
        }
        conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events e JOIN jobs j ON j.seq = e.job_seq \
             WHERE j.card_token = ?1 AND e.seq = 1"
        ))
        .and_then(|mut st| st.query_row([card_token], event_from_row).optional())
        .ctx("first event")
    }

    /// The job with this card token, if any.
    pub fn job(&self, card_token: &str) -> Result<Option<Job>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE card_token = ?1"
        ))
        .and_then(|mut st| st.query_row([card_token], job_from_row).optional())
        .ctx("job")
    }

    /// READY jobs in order of arrival.
    pub fn queued(&self) -> Result<Vec<Job>, StoreError> {
        self.jobs_in(Status::Ready)
    }

    /// IN_PROGRESS jobs in order of arrival (after a restart: the jobs in doubt).
    pub fn in_progress(&self) -> Result<Vec<Job>, StoreError> {
        self.jobs_in(Status::InProgress)
    }

    fn jobs_in(&self, status: Status) -> Result<Vec<Job>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE status = ?1 ORDER BY seq"
            ))
            .ctx("jobs by status")?;
        let rows = st
            .query_map([status.as_str()], job_from_row)
            .ctx("jobs by status")?;
        rows.collect::<Result<_, _>>().ctx("jobs by status")
    }

    /// The job's card data, decrypted. [`StoreError::NotFound`] for an
    /// unknown token and once the data is erased (the job is final);
    /// [`StoreError::Key`] when it does not authenticate.
    pub fn card_data(&self, card_token: &str) -> Result<Zeroizing<Vec<u8>>, StoreError> {
        let sealed: Option<Vec<u8>> = {
            let conn = self.lock();
            conn.prepare_cached(
                "SELECT c.sealed FROM card_data c JOIN jobs j ON j.seq = c.job_seq \
                 WHERE j.card_token = ?1",
            )
            .and_then(|mut st| st.query_row([card_token], |r| r.get(0)).optional())
            .ctx("card data")?
        };
        let sealed = sealed.ok_or(StoreError::NotFound)?;
        self.crypto.open(card_token.as_bytes(), &sealed)
    }

    /// READY -> IN_PROGRESS, with its event.
    pub fn start(&self, card_token: &str) -> Result<Event, StoreError> {
        self.write("start", |tx| {
            let state = load_state(tx, card_token)?;
            start_in(tx, card_token, &state, &now()).map(|(event, _)| event)
        })
    }

    /// Journals the intent of a physical step, durably, before the step:
    /// sets the job's step and writes an IN_PROGRESS event carrying it (so
    /// that watchers see the steps). Only while IN_PROGRESS.
    pub fn intent(&self, card_token: &str, step: &str) -> Result<Event, StoreError> {
        self.intent_noted(card_token, step, None)
    }

    /// [`Store::intent`] with a note on the journal line (what recovery
    /// must know of the step before it runs: where a rejected card was, the
    /// reject counter). The note is masked like any text shown to a person.
    pub fn intent_noted(
        &self,
        card_token: &str,
        step: &str,
        note: Option<&str>,
    ) -> Result<Event, StoreError> {
        self.intent_on(card_token, step, note, None)
    }

    /// [`Store::intent_noted`], recording the serial number of the printer
    /// the step is sent to (what the engine writes for every step).
    pub fn intent_on(
        &self,
        card_token: &str,
        step: &str,
        note: Option<&str>,
        printer: Option<&str>,
    ) -> Result<Event, StoreError> {
        check_step(step)?;
        let note = note.map(dialect::redact::mask_text);
        self.write("intent", |tx| {
            let state = load_state(tx, card_token)?;
            expect(&state, Status::InProgress)?;
            let at = now();
            journal_insert(
                tx,
                state.seq,
                step,
                Phase::Intent,
                None,
                note.as_deref(),
                &at,
                printer,
            )?;
            let event = push_event(
                tx,
                card_token,
                &state,
                Status::InProgress,
                Some(step),
                None,
                None,
                &at,
            )?;
            tx.prepare_cached("UPDATE jobs SET step = ?1, last_event_seq = ?2 WHERE seq = ?3")
                .and_then(|mut st| st.execute(params![step, event.seq, state.seq]))
                .ctx("intent: update")?;
            Ok(event)
        })
    }

    /// Journals the outcome of the step whose intent is the job's last
    /// journal entry. Only while IN_PROGRESS; an outcome with no open intent
    /// for `step` is refused ([`StoreError::Invalid`]). `detail` is masked
    /// like any text shown to a person (PAN-length digit runs).
    pub fn outcome(
        &self,
        card_token: &str,
        step: &str,
        ok: bool,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        self.outcome_on(card_token, step, ok, detail, None)
    }

    /// [`Store::outcome`], recording the serial number of the printer that
    /// did the step (what the engine writes for every step).
    pub fn outcome_on(
        &self,
        card_token: &str,
        step: &str,
        ok: bool,
        detail: Option<&str>,
        printer: Option<&str>,
    ) -> Result<(), StoreError> {
        check_step(step)?;
        let detail = detail.map(dialect::redact::mask_text);
        self.write("outcome", |tx| {
            let state = load_state(tx, card_token)?;
            expect(&state, Status::InProgress)?;
            let last: Option<(String, String)> = tx
                .prepare_cached(
                    "SELECT step, phase FROM journal WHERE job_seq = ?1 ORDER BY id DESC LIMIT 1",
                )
                .and_then(|mut st| {
                    st.query_row([state.seq], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .ctx("outcome: journal")?;
            match last {
                Some((s, p)) if s == step && p == Phase::Intent.as_str() => {}
                _ => {
                    return Err(StoreError::Invalid(format!(
                        "no open intent for step {step:?}: an outcome follows the intent of \
                         its step"
                    )))
                }
            }
            journal_insert(
                tx,
                state.seq,
                step,
                Phase::Outcome,
                Some(ok),
                detail.as_deref(),
                &now(),
                printer,
            )
        })
    }

    /// The job's journal, oldest first.
    pub fn journal(&self, card_token: &str) -> Result<Vec<JournalEntry>, StoreError> {
        let conn = self.lock();
        let seq = job_seq(&conn, card_token)?;
        let mut st = conn
            .prepare_cached(
                "SELECT step, phase, ok, detail, at, printer FROM journal WHERE job_seq = ?1 \
                 ORDER BY id",
            )
            .ctx("journal")?;
        let rows = st
            .query_map([seq], |r| {
                Ok(JournalEntry {
                    step: r.get(0)?,
                    phase: parse_col(r, 1)?,
                    ok: r.get(2)?,
                    detail: r.get(3)?,
                    at: r.get(4)?,
                    printer: r.get(5)?,
                })
            })
            .ctx("journal")?;
        rows.collect::<Result<_, _>>().ctx("journal")
    }

    /// IN_PROGRESS -> PRODUCED (no code) or PRODUCTION_ERROR (a code; the
    /// description defaults to the code's own), with its event; the card
    /// data is erased and the fingerprint cleared in the same transaction.
    /// The event carries the job's last step.
    pub fn finish(
        &self,
        card_token: &str,
        status: Status,
        code: Option<ErrorCode>,
        description: Option<&str>,
    ) -> Result<Event, StoreError> {
        match (status, code) {
            (Status::Produced, None) | (Status::ProductionError, Some(_)) => {}
            (Status::Produced, Some(_)) => {
                return Err(StoreError::Invalid(
                    "a PRODUCED card has no error code".into(),
                ))
            }
            (Status::ProductionError, None) => {
                return Err(StoreError::Invalid(
                    "a PRODUCTION_ERROR needs its error code".into(),
                ))
            }
            (other, _) => {
                return Err(StoreError::Invalid(format!(
                    "finish goes to PRODUCED or PRODUCTION_ERROR, not {other}"
                )))
            }
        }
        let description = describe(code, description);
        self.write("finish", |tx| {
            let state = load_state(tx, card_token)?;
            expect(&state, Status::InProgress)?;
            let at = now();
            erase_card_data(tx, state.seq)?;
            let event = push_event(
                tx,
                card_token,
                &state,
                status,
                state.step.as_deref(),
                code,
                description.as_deref(),
                &at,
            )?;
            close_job(
                tx,
                &state,
                status,
                code,
                description.as_deref(),
                &at,
                event.seq,
            )?;
            Ok(event)
        })
    }

    /// READY -> CANCELLED (the issuer withdrew the request before
    /// production), with its event; card data erased. Any other status is
    /// [`StoreError::NotCancellable`].
    pub fn cancel(&self, card_token: &str) -> Result<Event, StoreError> {
        self.write("cancel", |tx| {
            let state = load_state(tx, card_token)?;
            if state.status != Status::Ready {
                return Err(StoreError::NotCancellable(state.status));
            }
            let at = now();
            erase_card_data(tx, state.seq)?;
            let event = push_event(
                tx,
                card_token,
                &state,
                Status::Cancelled,
                None,
                None,
                None,
                &at,
            )?;
            close_job(tx, &state, Status::Cancelled, None, None, &at, event.seq)?;
            Ok(event)
        })
    }

    /// The job's events, by their per-card sequence.
    pub fn events(&self, card_token: &str) -> Result<Vec<Event>, StoreError> {
        let conn = self.lock();
        let seq = job_seq(&conn, card_token)?;
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {EVENT_COLUMNS} FROM events e JOIN jobs j ON j.seq = e.job_seq \
                 WHERE e.job_seq = ?1 ORDER BY e.seq"
            ))
            .ctx("events")?;
        let rows = st.query_map([seq], event_from_row).ctx("events")?;
        rows.collect::<Result<_, _>>().ctx("events")
    }

    /// Every feeder a technician has set, by feeder number. Empty until then.
    pub fn inventory(&self) -> Result<Vec<FeederStock>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT feeder, card_type, count, set_at FROM inventory ORDER BY feeder",
            )
            .ctx("inventory")?;
        let rows = st.query_map([], stock_from_row).ctx("inventory")?;
        rows.collect::<Result<_, _>>().ctx("inventory")
    }

    /// One feeder's stock; `None` until a technician sets it.
    pub fn feeder(&self, feeder: u8) -> Result<Option<FeederStock>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached(
            "SELECT feeder, card_type, count, set_at FROM inventory WHERE feeder = ?1",
        )
        .and_then(|mut st| st.query_row([feeder], stock_from_row).optional())
        .ctx("feeder")
    }

    /// A technician loads a feeder (1-based): its card type and count.
    pub fn set_inventory(&self, feeder: u8, card_type: &str, count: u32) -> Result<(), StoreError> {
        if feeder == 0 {
            return Err(StoreError::Invalid("feeders are numbered from 1".into()));
        }
        if card_type.trim().is_empty() {
            return Err(StoreError::Invalid(
                "a feeder's card type cannot be empty".into(),
            ));
        }
        self.write("set_inventory", |tx| {
            tx.prepare_cached(
                "INSERT INTO inventory (feeder, card_type, count, set_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (feeder) DO UPDATE SET card_type = excluded.card_type, \
                 count = excluded.count, set_at = excluded.set_at",
            )
            .and_then(|mut st| st.execute(params![feeder, card_type, count, now()]))
            .ctx("set_inventory")?;
            Ok(())
        })
    }

    /// One card taken from `feeder`: the count goes down by one, never below
    /// 0; returns the new count. A feeder never set is [`StoreError::NotFound`].
    pub fn consume(&self, feeder: u8) -> Result<u32, StoreError> {
        self.write("consume", |tx| {
            let count: Option<u32> = tx
                .prepare_cached(
                    "UPDATE inventory SET count = max(count - 1, 0) WHERE feeder = ?1 \
                     RETURNING count",
                )
                .and_then(|mut st| st.query_row([feeder], |r| r.get(0)).optional())
                .ctx("consume")?;
            count.ok_or(StoreError::NotFound)
        })
    }

    /// A small named value (the last printer serial number, say).
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        let conn = self.lock();
        conn.prepare_cached("SELECT value FROM meta WHERE key = ?1")
            .and_then(|mut st| st.query_row([key], |r| r.get(0)).optional())
            .ctx("meta")
    }

    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.write("set_meta", |tx| {
            tx.prepare_cached(
                "INSERT INTO meta (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut st| st.execute(params![key, value]))
            .ctx("set_meta")?;
            Ok(())
        })
    }

    /// Copies the WAL into the database file and truncates the WAL to zero
    /// bytes: older copies of erased pages leave the WAL too. Costs a few
    /// fsyncs; call it when the queue is idle.
    /// Whether the write-ahead log holds anything for [`Store::checkpoint`]
    /// to fold in: `wal_checkpoint(TRUNCATE)` leaves it empty, and only a
    /// write fills it again. One `stat`, cheap enough for the async side.
    pub fn wal_pending(&self) -> bool {
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(true, |m| m.len() > 0)
    }

    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.lock();
        let busy: i64 = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
            .ctx("checkpoint")?;
        if busy != 0 {
            return Err(StoreError::Db(
                "checkpoint: another connection kept the WAL busy".into(),
            ));
        }
        Ok(())
    }

    /// The connection. A panic while it was held rolled its transaction back
    /// (the transaction's drop), so a poisoned lock is safe to take over.
    /// Refuse new requests once the database holds `bytes` (0: no limit).
    pub fn set_size_limit(&self, bytes: u64) {
        self.size_limit
            .store(bytes, std::sync::atomic::Ordering::Relaxed);
    }

    /// Bytes in use in the database (pages less free ones), and the limit.
    pub fn usage(&self) -> Result<(u64, u64), StoreError> {
        let used = used_bytes(&self.lock())?;
        Ok((
            used,
            self.size_limit.load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    /// A receiver that changes after every commit (the relay waits on it).
    pub fn written(&self) -> tokio::sync::watch::Receiver<u64> {
        self.written.subscribe()
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one IMMEDIATE transaction: committed if `f` succeeds,
    /// rolled back (nothing written) if it fails.
    fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx(&format!("{what}: begin"))?;
        let out = f(&tx)?;
        tx.commit().map_err(|e| {
            // A commit that failed may still have reached the disk.
            StoreError::Uncertain(format!("{what}: commit: {e}"))
        })?;
        self.written.send_modify(|n| *n = n.wrapping_add(1));
        Ok(out)
    }
}

/// SQLite opens a file it may not write read-only, without an error (a
/// read-only file system, EPERM, an immutable file), and every write then
/// fails "attempt to write a readonly database" until the connection is
/// replaced. A store that opens read-only has failed to open.
fn refuse_read_only(conn: &Connection, shown: &impl fmt::Display) -> Result<(), StoreError> {
    match conn.is_readonly(rusqlite::MAIN_DB) {
        Ok(false) => Ok(()),
        Ok(true) => Err(StoreError::Unwritable(format!(
            "{shown} opens read-only: the file system is read-only, or the file's \
             permissions or attributes refuse this process's writes"
        ))),
        Err(e) => Err(StoreError::Db(format!(
            "cannot tell whether {shown} is writable: {e}"
        ))),
    }
}

/// Pages in use times the page size.
fn used_bytes(conn: &Connection) -> Result<u64, StoreError> {
    let (pages, free, size): (i64, i64, i64) = conn
        .query_row(
            "SELECT (SELECT page_count FROM pragma_page_count()), \
             (SELECT freelist_count FROM pragma_freelist_count()), \
             (SELECT page_size FROM pragma_page_size())",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .ctx("size")?;
    Ok(((pages - free).max(0) as u64) * size.max(0) as u64)
}

fn now() -> String {
    crate::time::now_rfc3339()
}

/// The description stored with an error: the caller's (masked), else the
/// code's own.
fn describe(code: Option<ErrorCode>, description: Option<&str>) -> Option<String> {
    match description.filter(|d| !d.trim().is_empty()) {
        Some(d) => Some(dialect::redact::mask_text(d)),
        None => code.map(|c| c.description().to_string()),
    }
}

fn check_new_job(job: &NewJob) -> Result<(), StoreError> {
    if job.meta.card_token.trim().is_empty() {
        return Err(StoreError::Invalid("the card token is empty".into()));
    }
    Ok(())
}

fn check_step(step: &str) -> Result<(), StoreError> {
    if step.trim().is_empty() {
        return Err(StoreError::Invalid("a step needs a name".into()));
    }
    Ok(())
}

fn expect(state: &JobState, expected: Status) -> Result<(), StoreError> {
    if state.status == expected {
        Ok(())
    } else {
        Err(StoreError::WrongState {
            expected,
            found: state.status,
        })
    }
}

fn token_known(tx: &Transaction<'_>, token: &str) -> Result<bool, StoreError> {
    tx.prepare_cached("SELECT EXISTS (SELECT 1 FROM jobs WHERE card_token = ?1)")
        .and_then(|mut st| st.query_row([token], |r| r.get(0)))
        .ctx("card token lookup")
}

fn job_seq(conn: &Connection, token: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT seq FROM jobs WHERE card_token = ?1")
        .and_then(|mut st| st.query_row([token], |r| r.get(0)).optional())
        .ctx("job lookup")?
        .ok_or(StoreError::NotFound)
}

fn load_state(tx: &Transaction<'_>, token: &str) -> Result<JobState, StoreError> {
    tx.prepare_cached("SELECT seq, status, step, last_event_seq FROM jobs WHERE card_token = ?1")
        .and_then(|mut st| {
            st.query_row([token], |r| {
                Ok(JobState {
                    seq: r.get(0)?,
                    status: parse_col(r, 1)?,
                    step: r.get(2)?,
                    last_event_seq: r.get(3)?,
                })
            })
            .optional()
        })
        .ctx("job state")?
        .ok_or(StoreError::NotFound)
}

#[allow(clippy::too_many_arguments)]
fn insert_job(
    tx: &Transaction<'_>,
    job: &NewJob,
    status: Status,
    fingerprint: Option<&[u8]>,
    code: Option<ErrorCode>,
    description: Option<&str>,
    at: &str,
) -> Result<i64, StoreError> {
    tx.prepare_cached(
        "INSERT INTO jobs (card_token, profile_id, kiosk_id, card_type, issuer_request_id, \
         card_id, pan_masked, pan_fingerprint, status, error_code, description, occurred_at, \
         created_at, last_event_seq, request_digest) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, 0, ?13)",
    )
    .and_then(|mut st| {
        st.execute(params![
            job.meta.card_token,
            job.meta.profile_id,
            job.meta.kiosk_id,
            job.meta.card_type,
            job.meta.issuer_request_id,
            job.meta.card_id,
            job.meta.pan_masked,
            fingerprint,
            status.as_str(),
            code.map(ErrorCode::as_str),
            description,
            at,
            job.request_digest,
        ])
    })
    .ctx("insert job")?;
    Ok(tx.last_insert_rowid())
}

/// Writes the job's next event (sequence `last_event_seq + 1`, fresh UUID).
/// The caller updates `jobs.last_event_seq` to it in the same transaction.
#[allow(clippy::too_many_arguments)]
fn push_event(
    tx: &Transaction<'_>,
    card_token: &str,
    state: &JobState,
    status: Status,
    step: Option<&str>,
    code: Option<ErrorCode>,
    description: Option<&str>,
    at: &str,
) -> Result<Event, StoreError> {
    let event = Event {
        id: uuid::Uuid::new_v4().to_string(),
        card_token: card_token.to_string(),
        seq: state.last_event_seq + 1,
        status,
        step: step.map(str::to_string),
        error_code: code,
        description: description.map(str::to_string),
        occurred_at: at.to_string(),
    };
    tx.prepare_cached(
        "INSERT INTO events (id, job_seq, seq, status, step, error_code, description, occurred_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .and_then(|mut st| {
        st.execute(params![
            event.id,
            state.seq,
            event.seq,
            status.as_str(),
            event.step,
            code.map(ErrorCode::as_str),
            event.description,
            event.occurred_at,
        ])
    })
    .ctx("write event")?;
    // A status change (not a step inside IN_PROGRESS) goes to every active
    // sink that wants its status, in this same transaction.
    if event.seq == 1 || status != state.status {
        // Read here: inside the INSERT below it would move with each row.
        let ord = tx.last_insert_rowid();
        tx.prepare_cached(
            "INSERT INTO deliveries (sink, event_ord, job_seq, seq, state, created_at) \
             SELECT name, ?5, ?1, ?2, 'PENDING', ?3 FROM sinks \
             WHERE active = 1 AND (statuses IS NULL OR instr(' ' || statuses || ' ', ?4) > 0)",
        )
        .and_then(|mut st| {
            st.execute(params![
                state.seq,
                event.seq,
                at,
                format!(" {} ", status.as_str()),
                ord
            ])
        })
        .ctx("write deliveries")?;
    }
    Ok(event)
}

fn set_last_event(tx: &Transaction<'_>, job_seq: i64, event_seq: i64) -> Result<(), StoreError> {
    tx.prepare_cached("UPDATE jobs SET last_event_seq = ?1 WHERE seq = ?2")
        .and_then(|mut st| st.execute(params![event_seq, job_seq]))
        .ctx("event sequence")?;
    Ok(())
}

fn erase_card_data(tx: &Transaction<'_>, job_seq: i64) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM card_data WHERE job_seq = ?1")
        .and_then(|mut st| st.execute([job_seq]))
        .ctx("erase card data")?;
    Ok(())
}

/// READY -> IN_PROGRESS inside `tx`: the event, and the job's state after.
fn start_in(
    tx: &Transaction<'_>,
    card_token: &str,
    state: &JobState,
    at: &str,
) -> Result<(Event, JobState), StoreError> {
    expect(state, Status::Ready)?;
    let event = push_event(
        tx,
        card_token,
        state,
        Status::InProgress,
        None,
        None,
        None,
        at,
    )?;
    tx.prepare_cached(
        "UPDATE jobs SET status = ?1, step = NULL, occurred_at = ?2, last_event_seq = ?3 \
         WHERE seq = ?4",
    )
    .and_then(|mut st| {
        st.execute(params![
            Status::InProgress.as_str(),
            at,
            event.seq,
            state.seq
        ])
    })
    .ctx("start: update")?;
    let started = JobState {
        status: Status::InProgress,
        step: None,
        last_event_seq: event.seq,
        ..state.clone()
    };
    Ok((event, started))
}

/// The final status, with the fingerprint cleared.
#[allow(clippy::too_many_arguments)]
fn close_job(
    tx: &Transaction<'_>,
    state: &JobState,
    status: Status,
    code: Option<ErrorCode>,
    description: Option<&str>,
    at: &str,
    event_seq: i64,
) -> Result<(), StoreError> {
    debug_assert!(status.is_final());
    tx.prepare_cached(
        "UPDATE jobs SET status = ?1, error_code = ?2, description = ?3, occurred_at = ?4, \
         last_event_seq = ?5, pan_fingerprint = NULL WHERE seq = ?6",
    )
    .and_then(|mut st| {
        st.execute(params![
            status.as_str(),
            code.map(ErrorCode::as_str),
            description,
            at,
            event_seq,
            state.seq,
        ])
    })
    .ctx("close job")?;
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn journal_insert(
    tx: &Transaction<'_>,
    job_seq: i64,
    step: &str,
    phase: Phase,
    ok: Option<bool>,
    detail: Option<&str>,
    at: &str,
    printer: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO journal (job_seq, step, phase, ok, detail, at, printer) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )
    .and_then(|mut st| {
        st.execute(params![
            job_seq,
            step,
            phase.as_str(),
            ok,
            detail,
            at,
            printer
        ])
    })
    .ctx("journal")?;
    Ok(())
}

/// A text column parsed with `FromStr` (statuses, codes, phases).
fn parse_col<T: FromStr<Err = String>>(r: &Row<'_>, i: usize) -> rusqlite::Result<T> {
    let text: String = r.get(i)?;
    text.parse().map_err(|e: String| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
    })
}

fn parse_opt_col<T: FromStr<Err = String>>(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<T>> {
    match r.get::<_, Option<String>>(i)? {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, e.into())
        }),
    }
}

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<Job> {
    job_at(r, 0)
}

/// A job read from `JOB_COLUMNS` starting at column `at` (of a join).
fn job_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Job> {
    Ok(Job {
        seq: r.get(at)?,
        meta: JobMeta {
            card_token: r.get(at + 1)?,
            profile_id: r.get(at + 2)?,
            kiosk_id: r.get(at + 3)?,
            card_type: r.get(at + 4)?,
            issuer_request_id: r.get(at + 5)?,
            card_id: r.get(at + 6)?,
            pan_masked: r.get(at + 7)?,
        },
        status: parse_col(r, at + 8)?,
        step: r.get(at + 9)?,
        error_code: parse_opt_col(r, at + 10)?,
        description: r.get(at + 11)?,
        occurred_at: r.get(at + 12)?,
        created_at: r.get(at + 13)?,
        deferred: r.get::<_, i64>(at + 14)? == 1,
    })
}

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    event_at(r, 0)
}

/// An event read from `EVENT_COLUMNS` starting at column `at`.
fn event_at(r: &Row<'_>, at: usize) -> rusqlite::Result<Event> {
    Ok(Event {
        id: r.get(at)?,
        card_token: r.get(at + 1)?,
        seq: r.get(at + 2)?,
        status: parse_col(r, at + 3)?,
        step: r.get(at + 4)?,
        error_code: parse_opt_col(r, at + 5)?,
        description: r.get(at + 6)?,
        occurred_at: r.get(at + 7)?,
    })
}

fn stock_from_row(r: &Row<'_>) -> rusqlite::Result<FeederStock> {
    Ok(FeederStock {
        feeder: r.get(0)?,
        card_type: r.get(1)?,
        count: r.get(2)?,
        set_at: r.get(3)?,
    })
}
