//! The async shell of [`super::deferred`]: one task asks the central base
//! for the data of the READY cards that wait for it, one call at a time,
//! validates it and seals it in the store; meanwhile the production loop
//! goes on with the cards whose data is in hand (it never starts a card
//! still waiting: [`super::next_card`]). The decisions (order, back-off,
//! patience) are the pure [`Waits`]; this file only calls, stores and logs.

use super::deferred::{After, Failure, Next, Waits};
use super::Engine;
use crate::codes::ErrorCode;
use crate::store::{Status, StoreError};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use zeroize::Zeroizing;

/// The patience when no central base is configured (a reload removed it):
/// the configuration's default.
const DEFAULT_PATIENCE: Duration = Duration::from_secs(300);
/// Between attempts to read the queue or record a card's end when the
/// store fails.
const STORE_PAUSE: Duration = Duration::from_secs(1);

impl Engine {
    /// Fetches deferred card data until `shutdown`.
    pub(super) async fn fetch_deferred(&self, shutdown: CancellationToken) {
        while !shutdown.is_cancelled() {
            let patience = self.central().map_or(DEFAULT_PATIENCE, |cb| {
                Duration::from_secs(cb.config().data_patience_s)
            });
            let queue = match self.db(|s| s.awaiting_data()).await {
                Ok(q) => q,
                Err(e) => {
                    self.store_trouble("reading the cards waiting for their data", &e);
                    self.rest(STORE_PAUSE, &shutdown).await;
                    continue;
                }
            };
            let now = Instant::now();
            let next = {
                let mut w = self.waits();
                w.set_patience(patience);
                w.sync(&queue, now);
                w.next(now)
            };
            match next {
                Next::Fetch(token) => {
                    let span = tracing::info_span!("card", card_token = %token);
                    let fetch = tracing::Instrument::instrument(self.fetch_one(&token), span);
                    tokio::select! {
                        _ = fetch => {}
                        // A call under way is dropped: the card stays READY
                        // and is asked for again at the next start.
                        _ = shutdown.cancelled() => {}
                    }
                }
                Next::At(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at.into()) => {}
                        _ = self.inner.data_wake.notified() => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
                Next::Nothing => {
                    tokio::select! {
                        _ = self.inner.data_wake.notified() => {}
                        _ = shutdown.cancelled() => {}
                    }
                }
            }
        }
    }

    fn waits(&self) -> std::sync::MutexGuard<'_, Waits> {
        self.inner.data_waits.lock().expect("data waits lock")
    }

    /// What a card waits for, if it waits for its data (the local API).
    pub(super) fn data_note(&self, token: &str) -> Option<String> {
        self.waits().note(token, Instant::now())
    }

    async fn rest(&self, d: Duration, shutdown: &CancellationToken) {
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = shutdown.cancelled() => {}
        }
    }

    /// One call for one card's data, and what follows from its outcome.
    async fn fetch_one(&self, token: &str) {
        let outcome = self.data_for(token).await;
        let now = Instant::now();
        let f = match outcome {
            Ok(Kept::Sealed { pan_masked }) => {
                let (calls, since) = self.waits().tries(token).unwrap_or((0, now));
                self.waits().done(token);
                tracing::info!(
                    pan = %pan_masked,
                    failed_calls = calls,
                    waited_ms = now.duration_since(since).as_millis() as u64,
                    "deferred card data received and sealed: the card can be produced"
                );
                // The production loop may be idle with only this card queued.
                self.inner.wake.notify_one();
                return;
            }
            Ok(Kept::Gone) => {
                // Cancelled meanwhile: its data is not kept.
                self.waits().done(token);
                return;
            }
            Err(f) => f,
        };
        let after = self.waits().failed(token, f.clone(), now, draw());
        match after {
            After::Retry { at, log } => {
                let retry_in_ms = at.saturating_duration_since(now).as_millis() as u64;
                if log {
                    tracing::warn!(error_code = %f.code, error = %f.description, retry_in_ms, "deferred card data not received yet: the card stays READY and is asked for again (other cards go on)");
                } else {
                    tracing::debug!(error_code = %f.code, error = %f.description, retry_in_ms, "deferred card data not received yet");
                }
            }
            After::GiveUp { code, description } => {
                tracing::warn!(error_code = %code, description = %description, "deferred card data not received: the card ends without being started");
                self.fail_unstarted(token, code, &description).await;
            }
        }
    }

    /// Asks the central base for the card's data, validates it as the
    /// request would have been, and seals it in the store.
    async fn data_for(&self, token: &str) -> Result<Kept, Failure> {
        let Some(cb) = self.central() else {
            return Err(Failure {
                code: ErrorCode::SAT_SERVER_NOT_REACHABLE,
                description: "no central base is configured (a reload removed it?)".into(),
                transient: true,
                retry_after: None,
            });
        };
        let t = token.to_string();
        let job = match self.db(move |s| s.job(&t)).await {
            Ok(Some(job)) if job.status == Status::Ready => job,
            Ok(_) => return Ok(Kept::Gone),
            Err(e) => return Err(store_failure(&e)),
        };
        let data = cb.card_data(token).await.map_err(|e| Failure {
            code: e.code,
            description: e.description,
            transient: e.transient,
            retry_after: e.retry_after,
        })?;
        let caps = self.capabilities();
        let config = self.config();
        let ctx = crate::request::Context {
            kiosk_id: &config.kiosk_id,
            card_types: &config.card_types,
            capabilities: &caps,
            geometry: self.printer().profile().geometry,
        };
        let accepted = crate::request::complete(&job.meta, &data, &ctx).map_err(|e| Failure {
            code: ErrorCode::PRD_UNEXPECTED_DATA,
            // The validator names the field, never its value.
            description: format!(
                "the deferred card data is refused ({}{}: {})",
                e.code,
                e.field.map(|f| format!(" at {f}")).unwrap_or_default(),
                e.message
            ),
            transient: false,
            retry_after: None,
        })?;
        drop(data);
        let sealed = serde_json::to_vec(&accepted.card)
            .map(Zeroizing::new)
            .map_err(|e| Failure {
                code: ErrorCode::UNKNOWN_ERROR,
                description: format!("the card data could not be prepared ({:?})", e.classify()),
                transient: false,
                retry_after: None,
            })?;
        let pan_masked = accepted.meta.pan_masked.clone();
        drop(accepted);
        let (t, masked) = (token.to_string(), pan_masked.clone());
        match self
            .db(move |s| s.keep_deferred_data(&t, &masked, &sealed))
            .await
        {
            Ok(()) => {
                self.store_ok();
                Ok(Kept::Sealed { pan_masked })
            }
            Err(StoreError::WrongState { .. } | StoreError::NotFound) => Ok(Kept::Gone),
            // Kept by an earlier call whose answer was lost: in hand.
            Err(StoreError::Duplicate) => Ok(Kept::Sealed { pan_masked }),
            Err(e) => {
                self.store_trouble("keeping deferred card data", &e);
                self.store_failed(&e);
                Err(store_failure(&e))
            }
        }
    }

    /// Ends a card whose data never came, retried while the store fails
    /// (the card is not forgotten meanwhile: it is no longer in the waits,
    /// and the loop does not move on until its end is recorded).
    async fn fail_unstarted(&self, token: &str, code: ErrorCode, description: &str) {
        let stopping = self.inner.stopping.clone();
        loop {
            let (t, d) = (token.to_string(), description.to_string());
            match self.db(move |s| s.fail_unstarted(&t, code, &d)).await {
                Ok(_) => {
                    self.store_ok();
                    self.inner
                        .metrics
                        .card_final(Status::ProductionError, Some(code));
                    return;
                }
                // Cancelled meanwhile, or ended by an earlier attempt whose
                // commit's outcome was unknown.
                Err(StoreError::WrongState { .. } | StoreError::NotFound) => return,
                Err(e) => {
                    self.store_trouble("ending a card whose data did not come", &e);
                    self.store_failed(&e);
                    if stopping.is_cancelled() {
                        // Still READY and still waiting: asked for again at
                        // the next start.
                        return;
                    }
                    self.rest(STORE_PAUSE, &stopping).await;
                }
            }
        }
    }
}

/// What became of the data a call brought.
enum Kept {
    /// Sealed in the store; the card can be produced.
    Sealed { pan_masked: String },
    /// The card is no longer READY (cancelled): nothing kept.
    Gone,
}

/// The store failed while the data was fetched or kept: tried again like
/// a central base busy for now (the store's own trouble is logged apart).
fn store_failure(e: &StoreError) -> Failure {
    Failure {
        code: ErrorCode::UNKNOWN_ERROR,
        description: format!("the card data could not be kept in the job store: {e}"),
        transient: true,
        retry_after: None,
    }
}

/// A uniform draw in [0, 1) for the jitter.
fn draw() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
