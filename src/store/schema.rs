//! Schema versions: `PRAGMA user_version` counts the migrations applied;
//! each migration runs in its own transaction together with the version bump,
//! so a failure leaves the previous version intact. A database newer than
//! this program is refused, and so is a file that is some other program's
//! database.

use super::StoreError;
use rusqlite::{Connection, TransactionBehavior};

/// `PRAGMA application_id` of a satellite store: "SATL".
pub(crate) const APPLICATION_ID: i64 = 0x5341_544C;

/// One step of the schema: from `version - 1` to `version`.
pub(crate) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order, starting at 1 with no gap. Never edit one that
/// has shipped: add the next.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "jobs, sealed card data, step journal, event outbox, inventory, meta",
        sql: V1,
    },
    Migration {
        version: 2,
        name: "each job's request digest, for idempotent re-delivery",
        sql: V2,
    },
    Migration {
        version: 3,
        name: "per-sink delivery of status changes, D1 operation ids",
        sql: V3,
    },
    Migration {
        version: 4,
        name: "the printer (serial number) of each journaled step",
        sql: V4,
    },
    Migration {
        version: 5,
        name: "parked deliveries, and each sink's current error and disabling",
        sql: V5,
    },
];

/// The schema version this program writes.
pub const SCHEMA_VERSION: i64 = 5;

/// The outbox as a scheduler sees it. A delivery that failed on its own too
/// often or for too long is PARKED (like a dead letter, an operator replays
/// it); a card's later deliveries wait behind any earlier one not delivered
/// (pending, dead or parked), so that a replay keeps the card's order. Each
/// sink keeps its current sink-wide error (cleared by the next delivery, so
/// that a recovered sink does not show an old one) and whether an operator
/// must re-enable it (the receiver answered 410 Gone). `due_ms` is shown,
/// no longer scheduled on: retry times live on the relay's monotonic clock.
/// SQLite cannot change a CHECK constraint in place: the table is rebuilt.
const V5: &str = r#"
CREATE TABLE deliveries_v5 (
    sink       TEXT    NOT NULL REFERENCES sinks (name),
    event_ord  INTEGER NOT NULL REFERENCES events (ord) ON DELETE CASCADE,
    job_seq    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'DEAD', 'PARKED')),
    -- Attempts that failed on this delivery alone (sink-wide failures do not count).
    attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Unix milliseconds of the next attempt, as last planned (shown only).
    due_ms     INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT    NOT NULL,
    done_at    TEXT,
    PRIMARY KEY (sink, event_ord),
    CHECK ((state = 'PENDING') = (done_at IS NULL))
) STRICT;
INSERT INTO deliveries_v5 (sink, event_ord, job_seq, seq, state, attempts, due_ms, last_error,
                           created_at, done_at)
    SELECT sink, event_ord, job_seq, seq, state, attempts, due_ms, last_error, created_at, done_at
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v5 RENAME TO deliveries;
CREATE INDEX deliveries_pending ON deliveries (sink, event_ord) WHERE state = 'PENDING';
CREATE INDEX deliveries_by_card ON deliveries (sink, job_seq, seq) WHERE state <> 'DELIVERED';
CREATE INDEX deliveries_dead ON deliveries (sink, event_ord) WHERE state IN ('DEAD', 'PARKED');

-- The sink-wide error now (NULL once a delivery went through) and since when.
ALTER TABLE sinks ADD COLUMN error TEXT;
ALTER TABLE sinks ADD COLUMN error_at TEXT;
-- Set when the receiver said the endpoint is gone for good (410): nothing is
-- sent until an operator re-enables the sink.
ALTER TABLE sinks ADD COLUMN disabled_at TEXT;
ALTER TABLE sinks ADD COLUMN disabled_why TEXT;
"#;

/// Which printer did each journaled step (its serial number): a card in
/// doubt is settled only by the printer that holds it, so recovery must know
/// which one that is. NULL on lines written before this version, and where
/// no printer was connected when the line was written.
const V4: &str = r#"
ALTER TABLE journal ADD COLUMN printer TEXT;
"#;

/// The outbox per sink. `sinks` lists every upstream the configuration ever
/// named (an inactive one keeps what it had pending, shown, not sent); each
/// status change gets one `deliveries` row per active sink that wants its
/// status, in the transaction that writes the event (see `push_event`).
/// Events written before a sink was configured are not sent to it.
const V3: &str = r#"
CREATE TABLE sinks (
    name     TEXT    PRIMARY KEY,
    kind     TEXT    NOT NULL,
    -- Space-separated statuses this sink is sent; NULL: every status change.
    statuses TEXT,
    active   INTEGER NOT NULL CHECK (active IN (0, 1)),
    added_at TEXT    NOT NULL
) STRICT;

CREATE TABLE deliveries (
    sink       TEXT    NOT NULL REFERENCES sinks (name),
    event_ord  INTEGER NOT NULL REFERENCES events (ord) ON DELETE CASCADE,
    -- The card and its event's per-card sequence: a card's events go out in order.
    job_seq    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'DEAD')),
    attempts   INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    -- Unix milliseconds before which the next attempt is not made.
    due_ms     INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at TEXT    NOT NULL,
    done_at    TEXT,
    PRIMARY KEY (sink, event_ord),
    CHECK ((state = 'PENDING') = (done_at IS NULL))
) STRICT;
CREATE INDEX deliveries_pending ON deliveries (sink, event_ord) WHERE state = 'PENDING';
CREATE INDEX deliveries_by_card ON deliveries (sink, job_seq, seq) WHERE state = 'PENDING';
CREATE INDEX deliveries_dead ON deliveries (sink, event_ord) WHERE state = 'DEAD';

-- What D1's Track Card API answered for a produced card.
ALTER TABLE jobs ADD COLUMN d1_operation_id TEXT;
-- The card data comes from the central base when the card's turn comes.
ALTER TABLE jobs ADD COLUMN deferred INTEGER NOT NULL DEFAULT 0 CHECK (deferred IN (0, 1));

-- Delivery is per sink now.
DROP INDEX events_undelivered;
ALTER TABLE events DROP COLUMN delivered_at;
"#;

/// A keyed digest of the request as it arrived (canonical JSON): the same
/// request delivered again is answered with its first outcome. Kept for the
/// job's life; it reveals nothing without the card-data key.
const V2: &str = r#"
ALTER TABLE jobs ADD COLUMN request_digest BLOB;
"#;

const V1: &str = r#"
PRAGMA application_id = 1396790348;

-- One row per card request, kept after it is final (no card data then).
CREATE TABLE jobs (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    card_token        TEXT    NOT NULL UNIQUE,
    profile_id        INTEGER NOT NULL,
    kiosk_id          TEXT    NOT NULL,
    card_type         TEXT    NOT NULL,
    issuer_request_id TEXT    NOT NULL,
    card_id           TEXT    NOT NULL,
    pan_masked        TEXT    NOT NULL,
    -- HMAC-SHA256 of the PAN under the fingerprint key; only while the job
    -- is READY or IN_PROGRESS (PAN_ALREADY_EXISTS), cleared when final.
    pan_fingerprint   BLOB,
    status            TEXT    NOT NULL CHECK (status IN ('READY', 'IN_PROGRESS',
                          'PRODUCED', 'PRODUCTION_ERROR', 'REQUEST_ERROR', 'CANCELLED')),
    step              TEXT,
    error_code        TEXT,
    description       TEXT,
    occurred_at       TEXT    NOT NULL,
    created_at        TEXT    NOT NULL,
    last_event_seq    INTEGER NOT NULL DEFAULT 0,
    CHECK (pan_fingerprint IS NULL OR status IN ('READY', 'IN_PROGRESS'))
) STRICT;
CREATE INDEX jobs_by_status ON jobs (status, seq);
CREATE INDEX jobs_by_fingerprint ON jobs (pan_fingerprint) WHERE pan_fingerprint IS NOT NULL;

-- Card data sealed with ChaCha20-Poly1305 (card token as associated data);
-- deleted, with secure_delete on, in the transaction that makes the job final.
CREATE TABLE card_data (
    job_seq INTEGER PRIMARY KEY REFERENCES jobs (seq),
    sealed  BLOB    NOT NULL
) STRICT;

-- Intent of each physical step before it, outcome after it.
CREATE TABLE journal (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_seq INTEGER NOT NULL REFERENCES jobs (seq),
    step    TEXT    NOT NULL,
    phase   TEXT    NOT NULL CHECK (phase IN ('INTENT', 'OUTCOME')),
    ok      INTEGER CHECK (ok IN (0, 1)),
    detail  TEXT,
    at      TEXT    NOT NULL,
    CHECK ((phase = 'INTENT') = (ok IS NULL))
) STRICT;
CREATE INDEX journal_by_job ON journal (job_seq, id);

-- The outbox: every status change (and step), written in the transaction of
-- the change; `ord` is the global order, `seq` the per-card one.
CREATE TABLE events (
    ord          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           TEXT    NOT NULL UNIQUE,
    job_seq      INTEGER NOT NULL REFERENCES jobs (seq),
    seq          INTEGER NOT NULL CHECK (seq >= 1),
    status       TEXT    NOT NULL,
    step         TEXT,
    error_code   TEXT,
    description  TEXT,
    occurred_at  TEXT    NOT NULL,
    delivered_at TEXT,
    UNIQUE (job_seq, seq)
) STRICT;
CREATE INDEX events_undelivered ON events (ord) WHERE delivered_at IS NULL;

CREATE TABLE inventory (
    feeder    INTEGER PRIMARY KEY CHECK (feeder BETWEEN 1 AND 255),
    card_type TEXT    NOT NULL,
    count     INTEGER NOT NULL CHECK (count >= 0),
    set_at    TEXT    NOT NULL
) STRICT;

CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Proof of the key the database was created with (an HKDF output of the
-- secret, useless for anything else): another key is refused at open.
CREATE TABLE store_key (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    check_value BLOB    NOT NULL,
    created_at  TEXT    NOT NULL
) STRICT;

-- The rules the code follows, enforced by the database as well.
CREATE TRIGGER events_in_sequence BEFORE INSERT ON events
BEGIN
    SELECT RAISE(ABORT, 'event out of sequence')
    WHERE NEW.seq IS NOT (SELECT last_event_seq + 1 FROM jobs WHERE seq = NEW.job_seq);
END;

CREATE TRIGGER events_are_immutable BEFORE UPDATE ON events
WHEN NEW.ord IS NOT OLD.ord OR NEW.id IS NOT OLD.id OR NEW.job_seq IS NOT OLD.job_seq
    OR NEW.seq IS NOT OLD.seq OR NEW.status IS NOT OLD.status OR NEW.step IS NOT OLD.step
    OR NEW.error_code IS NOT OLD.error_code OR NEW.description IS NOT OLD.description
    OR NEW.occurred_at IS NOT OLD.occurred_at
BEGIN
    SELECT RAISE(ABORT, 'events are immutable');
END;

CREATE TRIGGER jobs_guard BEFORE UPDATE ON jobs
BEGIN
    SELECT RAISE(ABORT, 'a job''s identity never changes')
    WHERE NEW.seq IS NOT OLD.seq OR NEW.card_token IS NOT OLD.card_token;
    SELECT RAISE(ABORT, 'forbidden status transition')
    WHERE NOT (NEW.status = OLD.status
        OR (OLD.status = 'READY' AND NEW.status IN ('IN_PROGRESS', 'CANCELLED'))
        OR (OLD.status = 'IN_PROGRESS' AND NEW.status IN ('PRODUCED', 'PRODUCTION_ERROR')));
    SELECT RAISE(ABORT, 'status change without its event')
    WHERE NEW.status <> OLD.status AND NEW.last_event_seq = OLD.last_event_seq;
    SELECT RAISE(ABORT, 'event sequence broken')
    WHERE NEW.last_event_seq <> OLD.last_event_seq
        AND (NEW.last_event_seq <> OLD.last_event_seq + 1
            OR NOT EXISTS (SELECT 1 FROM events
                           WHERE job_seq = NEW.seq AND seq = NEW.last_event_seq
                             AND status = NEW.status));
    SELECT RAISE(ABORT, 'card data left on a final job')
    WHERE NEW.status NOT IN ('READY', 'IN_PROGRESS')
        AND EXISTS (SELECT 1 FROM card_data WHERE job_seq = NEW.seq);
END;

CREATE TRIGGER card_data_only_for_open_jobs BEFORE INSERT ON card_data
BEGIN
    SELECT RAISE(ABORT, 'card data for a final job')
    WHERE (SELECT status FROM jobs WHERE seq = NEW.job_seq) NOT IN ('READY', 'IN_PROGRESS');
END;
"#;

/// Brings the database to the last of `migrations`; returns the version found
/// before. Runs outside any transaction (each migration opens its own).
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<i64, StoreError> {
    debug_assert!(migrations
        .iter()
        .enumerate()
        .all(|(i, m)| m.version == i as i64 + 1));
    let latest = migrations.last().map_or(0, |m| m.version);
    let read = |conn: &Connection, pragma: &str| -> Result<i64, StoreError> {
        conn.pragma_query_value(None, pragma, |r| r.get(0))
            .map_err(|e| StoreError::Migration(format!("cannot read {pragma}: {e}")))
    };
    let found = read(conn, "user_version")?;
    let app = read(conn, "application_id")?;
    if app != 0 && app != APPLICATION_ID {
        return Err(StoreError::Migration(format!(
            "this file is another program's database (application_id {app:#x}), not a \
             satellite store"
        )));
    }
    if found == 0 && app == 0 {
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'",
                [],
                |r| r.get(0),
            )
            .map_err(|e| StoreError::Migration(format!("cannot read the schema: {e}")))?;
        if tables > 0 {
            return Err(StoreError::Migration(
                "this file holds a database that is not a satellite store".into(),
            ));
        }
    }
    if found > latest {
        return Err(StoreError::Migration(format!(
            "the database is at schema version {found}, newer than this satellite knows \
             (at most {latest}): refusing to open it; run a satellite at least as recent \
             as the one that wrote it"
        )));
    }
    for m in migrations.iter().filter(|m| m.version > found) {
        let fail = |e: rusqlite::Error| {
            StoreError::Migration(format!(
                "migration to version {} ({}) failed: {e}",
                m.version, m.name
            ))
        };
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(fail)?;
        // Another process may have migrated while we waited for the lock.
        let now: i64 = tx
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(fail)?;
        if now >= m.version {
            continue;
        }
        tx.execute_batch(m.sql).map_err(fail)?;
        tx.pragma_update(None, "user_version", m.version)
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn tables(conn: &Connection) -> Vec<String> {
        let mut st = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    const A: Migration = Migration {
        version: 1,
        name: "a",
        sql: "PRAGMA application_id = 1396790348; CREATE TABLE a (x INTEGER) STRICT;",
    };
    const B: Migration = Migration {
        version: 2,
        name: "b",
        sql: "CREATE TABLE b (y INTEGER) STRICT; INSERT INTO a VALUES (2);",
    };
    const BAD: Migration = Migration {
        version: 3,
        name: "bad",
        sql: "CREATE TABLE c (z INTEGER); INSERT INTO nowhere VALUES (1);",
    };

    #[test]
    fn migrations_apply_in_order_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn, &[A]).unwrap(), 0);
        assert_eq!(version(&conn), 1);
        assert_eq!(migrate(&mut conn, &[A]).unwrap(), 1);
        drop(conn);
        let mut conn = Connection::open(&path).unwrap();
        assert_eq!(migrate(&mut conn, &[A, B]).unwrap(), 1);
        assert_eq!(version(&conn), 2);
        assert_eq!(tables(&conn), ["a", "b"]);
        // B ran once: one row.
        migrate(&mut conn, &[A, B]).unwrap();
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM a", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_failed_migration_leaves_the_previous_version_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("m.db")).unwrap();
        migrate(&mut conn, &[A, B]).unwrap();
        let e = migrate(&mut conn, &[A, B, BAD]).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, StoreError::Migration(_)), "{msg}");
        assert!(msg.contains("version 3 (bad)"), "{msg}");
        assert_eq!(version(&conn), 2);
        assert_eq!(
            tables(&conn),
            ["a", "b"],
            "the half-run migration left nothing"
        );
    }

    #[test]
    fn a_newer_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("m.db")).unwrap();
        migrate(&mut conn, &[A, B]).unwrap();
        let e = migrate(&mut conn, &[A]).unwrap_err().to_string();
        assert!(e.contains("schema version 2, newer"), "{e}");
        assert_eq!(version(&conn), 2);
    }

    #[test]
    fn another_programs_database_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("other.db")).unwrap();
        conn.execute_batch("CREATE TABLE theirs (x)").unwrap();
        let e = migrate(&mut conn, MIGRATIONS).unwrap_err().to_string();
        assert!(e.contains("not a satellite store"), "{e}");
        conn.execute_batch("PRAGMA application_id = 42").unwrap();
        let e = migrate(&mut conn, MIGRATIONS).unwrap_err().to_string();
        assert!(e.contains("another program"), "{e}");
    }

    #[test]
    fn the_shipped_migrations_run_from_empty() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, MIGRATIONS).unwrap();
        assert_eq!(version(&conn), SCHEMA_VERSION);
        assert_eq!(MIGRATIONS.last().unwrap().version, SCHEMA_VERSION);
        let app: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .unwrap();
        assert_eq!(app, APPLICATION_ID);
    }

    #[test]
    fn a_version_1_store_gains_request_digests_and_keeps_its_jobs() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, &MIGRATIONS[..1]).unwrap();
        conn.execute(
            "INSERT INTO jobs (card_token, profile_id, kiosk_id, card_type, issuer_request_id, \
             card_id, pan_masked, status, occurred_at, created_at) \
             VALUES ('old', 1, 'K', 'debit', 'r', 'c', '400000******7899', 'READY', 't', 't')",
            [],
        )
        .unwrap();
        assert_eq!(migrate(&mut conn, MIGRATIONS).unwrap(), 1);
        assert_eq!(version(&conn), SCHEMA_VERSION);
        let digest: Option<Vec<u8>> = conn
            .query_row(
                "SELECT request_digest FROM jobs WHERE card_token = 'old'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(digest, None, "a job from before has no digest");
    }
}
