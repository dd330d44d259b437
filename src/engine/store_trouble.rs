//! A store that cannot be written for a while (a file system remounted
//! read-only, a backup tool's lock, a full disk): what the engine logs, and
//! which refusals are only "for now".
//!
//! Every loop that retries a store call reports here, so one trouble is
//! one line when it begins, reminders at a slowing rate ([`Outage`]), and
//! one line when a write succeeds again, with how long it lasted: the
//! journal is not flooded (it once got a warning every 200 ms).

use super::Engine;
use crate::codes::ErrorCode;
use crate::outage::Outage;
use crate::store::StoreError;
use std::time::Instant;

/// What the engine knows of the store's trouble, shared by its loops.
#[derive(Debug, Default)]
pub(super) struct StoreTrouble {
    outage: std::sync::Mutex<Outage>,
}

/// A refusal "for now": the request was not wrong, the kiosk could not
/// take it at this moment (its queue is full, its store is at its limit or
/// cannot be written, the printer is not ready). It is answered 503 and
/// never recorded, so the same request sent again is considered afresh.
pub fn refused_for_now(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::UNABLE_TO_ACCEPT_REQUEST
            | ErrorCode::PRINTER_OR_SATELLITE_NOT_READY
            | ErrorCode::UNKNOWN_ERROR
    )
}

/// What the kiosk is told when its request could not be stored: the
/// standard code and words meant for it. The store's own message (paths,
/// SQL, errno) goes to the log only.
pub(super) fn unstored(e: &StoreError) -> crate::request::RequestError {
    let (code, message) = match e {
        StoreError::Unwritable(_) => (
            ErrorCode::UNABLE_TO_ACCEPT_REQUEST,
            "the kiosk cannot record new requests at the moment (its storage is not writable); \
             nothing was recorded: send the request again later",
        ),
        _ => (
            ErrorCode::UNKNOWN_ERROR,
            "the kiosk could not record this request (an internal error, logged); \
             nothing was recorded: send the request again later",
        ),
    };
    crate::request::RequestError {
        code,
        field: None,
        message: message.into(),
    }
}

impl Engine {
    /// A store call failed while `doing` something that will be retried:
    /// logged when the trouble begins and then at a slowing rate, never
    /// once per attempt.
    pub(super) fn store_trouble(&self, doing: &'static str, e: &StoreError) {
        let note = self
            .inner
            .store_trouble
            .outage
            .lock()
            .expect("store outage lock")
            .failed(Instant::now());
        match note {
            Some(n) if n.first => {
                tracing::error!(doing, error = %e, "the job store fails: retrying until it can be written again (reminders follow at most once a minute)")
            }
            Some(n) => {
                tracing::warn!(doing, error = %e, down_s = n.since.as_secs(), failed_attempts = n.failures, "the job store still fails: retrying")
            }
            None => tracing::debug!(doing, error = %e, "the job store still fails"),
        }
    }

    /// A store write succeeded: if the store was in trouble, one line says
    /// that it is over and how long it lasted.
    pub(super) fn store_ok(&self) {
        let ended = self
            .inner
            .store_trouble
            .outage
            .lock()
            .expect("store outage lock")
            .recovered(Instant::now());
        if let Some(end) = ended {
            tracing::info!(
                lasted_ms = end.lasted.as_millis() as u64,
                failed_attempts = end.failures,
                "the job store can be written again after {:.1} s",
                end.lasted.as_secs_f64()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kiosk_is_told_a_standard_code_and_no_internal_detail() {
        let ro = StoreError::Unwritable(
            "insert job: attempt to write a readonly database /var/lib/satellite/satellite.db"
                .into(),
        );
        let r = unstored(&ro);
        assert_eq!(r.code, ErrorCode::UNABLE_TO_ACCEPT_REQUEST);
        assert!(refused_for_now(r.code));
        for internal in ["database", "insert", "readonly", "/var/lib"] {
            assert!(!r.message.contains(internal), "{}", r.message);
        }
        let other = unstored(&StoreError::Db("insert job: constraint failed".into()));
        assert_eq!(other.code, ErrorCode::UNKNOWN_ERROR);
        assert!(refused_for_now(other.code));
        assert!(!other.message.contains("constraint"), "{}", other.message);
    }

    #[test]
    fn refusals_of_the_request_itself_are_final() {
        for code in [
            ErrorCode::INVALID_FIELD_VALUE,
            ErrorCode::REQUEST_ALREADY_EXISTS,
            ErrorCode::PAN_ALREADY_EXISTS,
            ErrorCode::KIOSK_ID_NOT_FOUND,
        ] {
            assert!(!refused_for_now(code), "{code}");
        }
    }
}
