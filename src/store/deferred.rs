//! Cards whose data is deferred: which still wait for it, keeping it once
//! it came (sealed as a request's own card data is, so that production
//! reads it the same way), and ending a card whose data never came.

use super::error::Context;
use super::{close_job, erase_card_data, expect, load_state, now, push_event, start_in};
use super::{Event, Status, Store, StoreError};
use crate::codes::ErrorCode;
use rusqlite::params;

impl Store {
    /// READY cards whose data is deferred and not in hand yet, oldest first.
    pub fn awaiting_data(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut st = conn
            .prepare_cached(
                "SELECT card_token FROM jobs j WHERE status = 'READY' AND deferred = 1 \
                 AND NOT EXISTS (SELECT 1 FROM card_data c WHERE c.job_seq = j.seq) \
                 ORDER BY seq",
            )
            .ctx("awaiting data")?;
        let rows = st.query_map([], |r| r.get(0)).ctx("awaiting data")?;
        rows.collect::<Result<_, _>>().ctx("awaiting data")
    }

    /// Keeps the deferred card data of a READY card (sealed, bound to its
    /// token) with its masked PAN, in one transaction: from then on the
    /// card is produced as one whose data came with the request. A card no
    /// longer READY (cancelled meanwhile) is [`StoreError::WrongState`];
    /// data already in hand is [`StoreError::Duplicate`].
    pub fn keep_deferred_data(
        &self,
        card_token: &str,
        pan_masked: &str,
        card_data: &[u8],
    ) -> Result<(), StoreError> {
        if pan_masked.bytes().filter(u8::is_ascii_digit).count() > 10 {
            return Err(StoreError::Invalid(
                "pan_masked shows more than the first six and last four digits".into(),
            ));
        }
        let sealed = self.crypto.seal(card_token.as_bytes(), card_data)?;
        self.write("keep_deferred_data", |tx| {
            let state = load_state(tx, card_token)?;
            expect(&state, Status::Ready)?;
            let has: bool = tx
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM card_data WHERE job_seq = ?1)")
                .and_then(|mut st| st.query_row([state.seq], |r| r.get(0)))
                .ctx("keep_deferred_data: lookup")?;
            if has {
                return Err(StoreError::Duplicate);
            }
            tx.prepare_cached("INSERT INTO card_data (job_seq, sealed) VALUES (?1, ?2)")
                .and_then(|mut st| st.execute(params![state.seq, sealed]))
                .ctx("keep_deferred_data: card data")?;
            tx.prepare_cached("UPDATE jobs SET pan_masked = ?1 WHERE seq = ?2")
                .and_then(|mut st| st.execute(params![pan_masked, state.seq]))
                .ctx("keep_deferred_data: masked PAN")?;
            Ok(())
        })
    }

    /// Ends a READY card that never started (its deferred data did not
    /// come): IN_PROGRESS then PRODUCTION_ERROR with `code`, both events in
    /// one transaction (the platform knows no READY -> PRODUCTION_ERROR),
    /// so the card is never seen in production. Returns the final event.
    pub fn fail_unstarted(
        &self,
        card_token: &str,
        code: ErrorCode,
        description: &str,
    ) -> Result<Event, StoreError> {
        self.write("fail_unstarted", |tx| {
            let state = load_state(tx, card_token)?;
            let at = now();
            let (_, state) = start_in(tx, card_token, &state, &at)?;
            erase_card_data(tx, state.seq)?;
            let event = push_event(
                tx,
                card_token,
                &state,
                Status::ProductionError,
                None,
                Some(code),
                Some(description),
                &at,
            )?;
            close_job(
                tx,
                &state,
                Status::ProductionError,
                Some(code),
                Some(description),
                &at,
                event.seq,
            )?;
            Ok(event)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{JobMeta, Keys, NewJob};
    use super::*;

    fn store(dir: &std::path::Path) -> Store {
        let key = dir.join("card.key");
        Keys::generate(&key).unwrap();
        Store::open(&dir.join("satellite.db"), Keys::load(&key).unwrap()).unwrap()
    }

    fn job(token: &str) -> NewJob {
        NewJob::from(JobMeta {
            card_token: token.into(),
            profile_id: 1,
            kiosk_id: "K1".into(),
            card_type: "debit".into(),
            issuer_request_id: format!("req-{token}"),
            card_id: format!("card-{token}"),
            pan_masked: String::new(),
        })
    }

    #[test]
    fn deferred_data_is_kept_sealed_and_the_card_leaves_the_waiting_list() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.accept_deferred(&job("a"), 10).unwrap();
        s.accept_deferred(&job("b"), 10).unwrap();
        s.accept(&job("c"), "4000001234567899", b"{}", 10).unwrap();
        assert_eq!(s.awaiting_data().unwrap(), ["a", "b"]);
        assert!(matches!(s.card_data("a"), Err(StoreError::NotFound)));

        s.keep_deferred_data("a", "400000******7899", b"{\"x\":1}")
            .unwrap();
        assert_eq!(s.awaiting_data().unwrap(), ["b"]);
        assert_eq!(&s.card_data("a").unwrap()[..], b"{\"x\":1}");
        let a = s.job("a").unwrap().unwrap();
        assert_eq!(a.meta.pan_masked, "400000******7899");
        assert_eq!(a.status, Status::Ready);
        // Once only; never with a PAN shown whole; never for a card gone.
        assert!(matches!(
            s.keep_deferred_data("a", "400000******7899", b"{}"),
            Err(StoreError::Duplicate)
        ));
        assert!(matches!(
            s.keep_deferred_data("b", "4000001234567899", b"{}"),
            Err(StoreError::Invalid(_))
        ));
        s.cancel("b").unwrap();
        assert!(matches!(
            s.keep_deferred_data("b", "400000******7899", b"{}"),
            Err(StoreError::WrongState { .. })
        ));
        assert!(s.awaiting_data().unwrap().is_empty());
    }

    #[test]
    fn a_card_whose_data_never_came_ends_in_one_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path());
        s.accept_deferred(&job("a"), 10).unwrap();
        let end = s
            .fail_unstarted("a", ErrorCode::CB_NOT_AVAILABLE, "no data; no card taken")
            .unwrap();
        assert_eq!(end.status, Status::ProductionError);
        let events: Vec<_> = s
            .events("a")
            .unwrap()
            .into_iter()
            .map(|e| (e.seq, e.status, e.error_code))
            .collect();
        assert_eq!(
            events,
            [
                (1, Status::Ready, None),
                (2, Status::InProgress, None),
                (
                    3,
                    Status::ProductionError,
                    Some(ErrorCode::CB_NOT_AVAILABLE)
                ),
            ]
        );
        let a = s.job("a").unwrap().unwrap();
        assert_eq!(a.error_code, Some(ErrorCode::CB_NOT_AVAILABLE));
        assert_eq!(a.description.as_deref(), Some("no data; no card taken"));
        assert!(s.in_progress().unwrap().is_empty());
        // Only a card that has not started.
        assert!(matches!(
            s.fail_unstarted("a", ErrorCode::CB_NOT_AVAILABLE, "again"),
            Err(StoreError::WrongState { .. })
        ));
    }
}
