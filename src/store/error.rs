//! The store's error type. Messages never hold card data: no PAN, track,
//! PIN block, chip script or image, and no SQL parameter values.

use super::Status;
use crate::codes::ErrorCode;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The card token is already known (any status): `REQUEST_ALREADY_EXISTS`.
    #[error("a request with this card token already exists")]
    Duplicate,
    /// A job with the same PAN (same keyed fingerprint) is READY or IN_PROGRESS:
    /// `PAN_ALREADY_EXISTS`.
    #[error("a card with this PAN is already queued or in production")]
    PanInProduction,
    /// The queue already holds its limit of READY jobs: `UNABLE_TO_ACCEPT_REQUEST`.
    #[error("the production queue is full")]
    QueueFull,
    /// The store has reached its configured size: new requests are refused
    /// (`UNABLE_TO_ACCEPT_REQUEST`) until delivered history is pruned;
    /// status changes of accepted cards are still written.
    #[error("the store holds {used} bytes, its limit is {limit}: no new request until delivered events are pruned")]
    SizeLimit { used: u64, limit: u64 },
    /// No such job, no card data (never stored or already erased), or no such feeder.
    #[error("not found")]
    NotFound,
    /// Only a READY job can be cancelled.
    #[error("the job is {0} and can no longer be cancelled")]
    NotCancellable(Status),
    /// The job is not in the state the operation starts from.
    #[error("the job is {found}, the operation needs {expected}")]
    WrongState { expected: Status, found: Status },
    /// The key: unreadable or badly permissioned key file, wrong key for this
    /// database, card data that does not authenticate.
    #[error("card data key: {0}")]
    Key(String),
    /// A commit failed in a way that does not say whether it reached the
    /// disk (an I/O error on commit or sync): the change may or may not be
    /// there. The store must be reopened and read before anything more is
    /// accepted.
    #[error("database: outcome unknown: {0}")]
    Uncertain(String),
    /// The store cannot be written now, and nothing was: the file system
    /// is read-only (remounted after an error) or refuses this process
    /// (EROFS, EPERM), the disk is full, another process holds the lock (a
    /// backup tool) past the busy time-out, or an I/O error. A new request
    /// meets `UNABLE_TO_ACCEPT_REQUEST`; the engine reopens the store
    /// until a write succeeds. The message is for the log, not the kiosk.
    #[error("database cannot be written now: {0}")]
    Unwritable(String),
    /// SQLite failed; the message names what the store was doing.
    #[error("database: {0}")]
    Db(String),
    /// The schema cannot be brought to this version (including a database
    /// newer than this program).
    #[error("database schema: {0}")]
    Migration(String),
    /// A call the store refuses as a caller's mistake (a finish to a status
    /// that is not final, an outcome without its intent, a masked PAN that
    /// shows too much, feeder 0...). The message says which.
    #[error("refused: {0}")]
    Invalid(String),
}

impl StoreError {
    /// The request error code of the production-status API this refusal
    /// stands for, where there is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            StoreError::Duplicate => Some(ErrorCode::REQUEST_ALREADY_EXISTS),
            StoreError::PanInProduction => Some(ErrorCode::PAN_ALREADY_EXISTS),
            StoreError::QueueFull => Some(ErrorCode::UNABLE_TO_ACCEPT_REQUEST),
            StoreError::SizeLimit { .. } => Some(ErrorCode::UNABLE_TO_ACCEPT_REQUEST),
            StoreError::Unwritable(_) => Some(ErrorCode::UNABLE_TO_ACCEPT_REQUEST),
            _ => None,
        }
    }
}

/// Adds what the store was doing to a SQLite error. rusqlite's messages name
/// constraints and columns, never bound values, so no card data leaks here.
/// Errors of the file rather than of the statement (read-only, locked,
/// full, I/O) are [`StoreError::Unwritable`]: they pass.
pub(crate) trait Context<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError>;
}

impl<T> Context<T> for rusqlite::Result<T> {
    fn ctx(self, what: &str) -> Result<T, StoreError> {
        self.map_err(|e| {
            if of_the_file(&e) {
                StoreError::Unwritable(format!("{what}: {e}"))
            } else {
                StoreError::Db(format!("{what}: {e}"))
            }
        })
    }
}

/// Whether SQLite failed because of the file system or another process,
/// not because of what was asked.
pub(crate) fn of_the_file(e: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        e.sqlite_error_code(),
        Some(
            ReadOnly
                | SystemIoFailure
                | DiskFull
                | CannotOpen
                | PermissionDenied
                | DatabaseBusy
                | DatabaseLocked
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_of_the_file_pass_and_errors_of_the_statement_do_not() {
        let file = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            Some("attempt to write a readonly database".into()),
        );
        let e = Err::<(), _>(file).ctx("insert job").unwrap_err();
        assert!(matches!(e, StoreError::Unwritable(_)), "{e}");
        assert_eq!(e.code(), Some(ErrorCode::UNABLE_TO_ACCEPT_REQUEST));
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(matches!(
            Err::<(), _>(busy).ctx("begin"),
            Err(StoreError::Unwritable(_))
        ));
        let constraint = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        );
        assert!(matches!(
            Err::<(), _>(constraint).ctx("insert job"),
            Err(StoreError::Db(_))
        ));
    }
}
