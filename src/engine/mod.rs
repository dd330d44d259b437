//! The production engine: requests in, cards out, one at a time per printer.
//!
//! * [`plan`]: the steps of a card (pure).
//! * [`recovery`]: what became of a card a restart caught in production (pure).
//! * [`runner`]: the loop that drives the printer through the steps, journaling
//!   each physical step in the store before and after it.
//! * [`view`]: what the local API answers.
//!
//! Every status change goes through the store, which writes its event in the
//! same transaction: the delivery of events upstream reads that outbox.

pub mod deferred;
mod deferred_fetch;
pub mod forecast;
pub mod forecast_watch;
pub mod maintenance;
mod next_card;
pub mod plan;
pub mod progress;
pub mod recovery;
pub mod reload;
pub mod report;
pub mod runner;
pub mod state;
pub mod store_trouble;
pub mod supplies;
pub mod view;

use crate::chip::PcscStation;
use crate::codes::ErrorCode;
use crate::config::{Config, NotReady};
use crate::printer::steps::Verdict;
use crate::printer::Printer;
use crate::request::{self, RequestError};
use crate::store::{NewJob, Store, StoreError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
pub use store_trouble::refused_for_now;
use tokio::sync::{oneshot, Notify};
use view::{CardView, Production};

/// Step durations kept per step: bounded, the daemon runs for months.
pub const TIMINGS_KEPT: usize = 10_000;

/// The engine handle; cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    /// The configuration in force; a reload (SIGHUP) replaces it whole.
    config: tokio::sync::watch::Sender<Arc<Config>>,
    store: Arc<Store>,
    /// The printer link; replaced between cards when a reload changes the
    /// `[printer]` section (see [`Engine::apply_link`]).
    printer: tokio::sync::watch::Sender<Printer>,
    chip: std::sync::RwLock<Option<PcscStation>>,
    /// A reloaded configuration whose `[printer]` or `[chip]` section
    /// differs: applied by the production loop before its next card.
    pending_link: Mutex<Option<reload::LinkChange>>,
    /// What the production loop promised to report again by (the watchdog
    /// reads it).
    progress: progress::Progress,
    /// When the card in production ends at the latest (its steps' budgets).
    card_until: Mutex<Option<std::time::Instant>>,
    wake: Notify,
    /// The READY cards waiting for their deferred data, and when each is
    /// asked for again (`deferred_fetch.rs`).
    data_waits: Mutex<deferred::Waits>,
    /// Wakes the deferred-data task: a request accepted, a central base set.
    data_wake: Notify,
    /// Presented cards waiting for the kiosk application's verdict.
    verdicts: Mutex<HashMap<String, oneshot::Sender<Verdict>>>,
    /// A card is in production: the printer is busy, hence ready, and asking
    /// it would wait for the step in progress.
    producing: std::sync::atomic::AtomicBool,
    /// A store commit's outcome is unknown: nothing is accepted until the
    /// store has been reopened and read.
    store_suspect: std::sync::atomic::AtomicBool,
    /// The store's trouble, as the log is told of it (once, then reminders).
    store_trouble: store_trouble::StoreTrouble,
    /// What the engine does, published.
    state: tokio::sync::watch::Sender<state::EngineState>,
    /// Cards in doubt waiting for a technician's word.
    resolutions: Mutex<HashMap<String, oneshot::Sender<Resolution>>>,
    /// Cancelled when the engine stops (retries that could wait forever end).
    stopping: tokio_util::sync::CancellationToken,
    /// The central base, where deferred card data comes from (set when the
    /// daemon has one configured; replaced when a reload restarts upstream).
    central: std::sync::RwLock<Option<Arc<crate::upstream::central::CentralBase>>>,
    /// The upstream links' health, published (empty when none is configured).
    upstream: crate::upstream::Health,
    /// The printer's turn: held by the production loop for a whole card and
    /// by a technician's operation, so that neither cuts into the other.
    printer_turn: tokio::sync::Mutex<()>,
    /// How long each step took (the most recent [`TIMINGS_KEPT`] of each), for
    /// the benchmark.
    timings: Mutex<HashMap<plan::Step, std::collections::VecDeque<std::time::Duration>>>,
    /// Counters of what happens (cards ended, step durations, deliveries).
    metrics: crate::metrics::Metrics,
}

/// One feeder: its stock (None until a technician sets it) and its sensors
/// (None when the printer cannot be asked).
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeederView {
    pub feeder: u8,
    pub card_type: Option<String>,
    pub count: Option<u32>,
    pub set_at: Option<String>,
    pub empty: Option<bool>,
    pub near_empty: Option<bool>,
}

/// A submission the engine accepted.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Submitted {
    #[serde(flatten)]
    pub production: Production,
}

/// A technician's word on a card in doubt that the agent cannot settle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resolution {
    /// The technician took the card out of the printer: PRODUCTION_ERROR.
    Removed,
    /// The cause is fixed (reject box emptied, jam cleared): locate the
    /// card and reject it again.
    Retry,
}

/// Why a submission got no final answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Refused: REQUEST_ERROR with its code.
    #[error("{0}")]
    Refused(Refused),
    /// Not answered either way: the store could not say whether it wrote
    /// the request, or is being checked. Send the same request again.
    #[error("{0}")]
    Unavailable(String),
}

impl From<RequestError> for SubmitError {
    /// A refusal; its time is set when it is recorded.
    fn from(e: RequestError) -> Self {
        SubmitError::Refused(Refused {
            error: e,
            occurred_at: crate::time::now_rfc3339(),
        })
    }
}

/// A submission the engine refused: why, and when. The time is that of the
/// REQUEST_ERROR event stored for it, when one was (the request's token could
/// be read and was not another request's); the time of the refusal otherwise.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}")]
pub struct Refused {
    pub error: RequestError,
    pub occurred_at: String,
}

/// Why a call on one card cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("no card with token {0:?}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Engine {
    pub fn new(
        config: Config,
        store: Store,
        printer: Printer,
        chip: Option<PcscStation>,
    ) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                config: tokio::sync::watch::channel(Arc::new(config)).0,
                store: Arc::new(store),
                printer: tokio::sync::watch::channel(printer).0,
                chip: std::sync::RwLock::new(chip),
                pending_link: Mutex::new(None),
                progress: progress::Progress::default(),
                card_until: Mutex::new(None),
                wake: Notify::new(),
                data_waits: Mutex::new(deferred::Waits::new(std::time::Duration::from_secs(300))),
                data_wake: Notify::new(),
                printer_turn: tokio::sync::Mutex::new(()),
                verdicts: Mutex::new(HashMap::new()),
                timings: Mutex::new(HashMap::new()),
                producing: std::sync::atomic::AtomicBool::new(false),
                store_suspect: std::sync::atomic::AtomicBool::new(false),
                store_trouble: store_trouble::StoreTrouble::default(),
                state: tokio::sync::watch::channel(state::EngineState::new(
                    state::Activity::Starting,
                ))
                .0,
                resolutions: Mutex::new(HashMap::new()),
                stopping: tokio_util::sync::CancellationToken::new(),
                central: std::sync::RwLock::new(None),
                upstream: crate::upstream::Health::default(),
                metrics: crate::metrics::Metrics::default(),
            }),
        }
    }

    /// Durations of the steps run so far (journaling excluded), by step.
    pub fn step_timings(&self) -> HashMap<plan::Step, Vec<std::time::Duration>> {
        let t = self.inner.timings.lock().expect("timings lock");
        t.iter()
            .map(|(k, v)| (*k, v.iter().copied().collect()))
            .collect()
    }

    fn record_timing(&self, step: plan::Step, took: std::time::Duration) {
        self.inner.metrics.step(step, took);
        let mut t = self.inner.timings.lock().expect("timings lock");
        let q = t.entry(step).or_default();
        if q.len() == TIMINGS_KEPT {
            q.pop_front();
        }
        q.push_back(took);
    }

    /// The central base to fetch deferred card data from (`None`: there is
    /// none, e.g. after a reload removed it).
    pub fn set_central(&self, cb: Option<Arc<crate::upstream::central::CentralBase>>) {
        *self.inner.central.write().expect("central lock") = cb;
        // Cards waiting for their data are asked for through the new one.
        self.inner.data_wake.notify_one();
    }

    pub(crate) fn central(&self) -> Option<Arc<crate::upstream::central::CentralBase>> {
        self.inner.central.read().expect("central lock").clone()
    }

    /// The counters of what happens, shared with the upstream relays.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.inner.metrics
    }

    /// The upstream links' health.
    pub fn upstream(&self) -> &crate::upstream::Health {
        &self.inner.upstream
    }

    /// The store (shared with the upstream relay).
    pub fn store(&self) -> Arc<Store> {
        self.inner.store.clone()
    }

    /// What the printer and its chip station can do, as validation sees it.
    pub(crate) fn capabilities(&self) -> crate::printer::profile::Capabilities {
        let mut caps = self.printer().profile().capabilities.clone();
        if self.chip().is_none() {
            caps.smart_station = false;
        }
        caps
    }

    /// What the engine is doing, and since when.
    pub fn state(&self) -> tokio::sync::watch::Receiver<state::EngineState> {
        self.inner.state.subscribe()
    }

    /// The printer link in force (a reload may replace it between cards).
    pub fn printer(&self) -> Printer {
        self.inner.printer.borrow().clone()
    }

    /// Told each time a reload replaced the printer link.
    pub fn printer_changes(&self) -> tokio::sync::watch::Receiver<Printer> {
        self.inner.printer.subscribe()
    }

    /// The chip station in force, if chip personalisation is on.
    pub(crate) fn chip(&self) -> Option<PcscStation> {
        self.inner.chip.read().expect("chip lock").clone()
    }

    /// The configuration in force (a reload may replace it).
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.borrow().clone()
    }

    /// How long the card in production may still take at most (`None`:
    /// none is in production).
    pub fn card_time_left(&self) -> Option<std::time::Duration> {
        self.inner
            .card_until
            .lock()
            .expect("card_until lock")
            .map(|until| until.saturating_duration_since(std::time::Instant::now()))
    }

    /// What the production loop promised: the watchdog pings only while it
    /// keeps its word.
    pub fn progress(&self) -> &progress::Progress {
        &self.inner.progress
    }

    /// Runs a store call off the async threads (it may wait for a disk sync).
    async fn db<T: Send + 'static>(&self, f: impl FnOnce(&Store) -> T + Send + 'static) -> T {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&store))
            .await
            .expect("store task panicked")
    }

    /// Parses, validates and queues a request. A refused request whose token
    /// can be read is recorded as REQUEST_ERROR (so its status can be asked
    /// for), unless the token belongs to another request already; the refusal
    /// then carries the time of that stored event. A refusal for now
    /// ([`refused_for_now`]: a full queue, a store that cannot take it, a
    /// printer not ready) is not recorded: the same request sent again is
    /// considered afresh.
    pub async fn submit(&self, body: &[u8]) -> Result<Submitted, SubmitError> {
        if self
            .inner
            .store_suspect
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(SubmitError::Unavailable(
                "the job store is being checked after a write whose outcome is unknown; send the request again in a moment".into(),
            ));
        }
        let token_hint = request::token_of(body);
        let digest = self.request_digest(body);
        // The same request again (a lost answer, a retry after "outcome
        // unknown"): its first answer, not REQUEST_ALREADY_EXISTS.
        if let Some(first) = self.first_answer(&token_hint, &digest).await {
            return first;
        }
        let mut refused = match self.accept(body, digest.clone()).await {
            Ok(s) => return Ok(s),
            Err(SubmitError::Refused(r)) => r,
            Err(e) => return Err(e),
        };
        let e = refused.error.clone();
        if e.code == ErrorCode::REQUEST_ALREADY_EXISTS {
            // It may have been stored by an identical request just now.
            if let Some(first) = self.first_answer(&token_hint, &digest).await {
                return first;
            }
        }
        tracing::info!(error_code = %e.code, field = e.field.as_deref().unwrap_or(""), "request refused");
        let final_refusal = e.code != ErrorCode::REQUEST_ALREADY_EXISTS && !refused_for_now(e.code);
        if let (Some(token), true) = (token_hint, final_refusal) {
            let mut job = self.stub_job(token, body);
            job.request_digest = digest;
            let (code, message) = (e.code, e.message.clone());
            match self
                .db(move |s| s.record_request_error(&job, code, &message))
                .await
            {
                Ok(event) => {
                    refused.occurred_at = event.occurred_at;
                    self.inner
                        .metrics
                        .card_final(crate::store::Status::RequestError, Some(code));
                }
                // The token is another request's, or unfit to be stored.
                Err(StoreError::Duplicate | StoreError::Invalid(_)) => {}
                // Answered all the same; sent again, it is refused again.
                Err(err) => self.store_trouble("recording a refused request", &err),
            }
        }
        Err(SubmitError::Refused(refused))
    }

    /// A keyed digest of the request's canonical JSON (keys sorted, spacing
    /// dropped), or `None` for a body that is not JSON.
    fn request_digest(&self, body: &[u8]) -> Option<Vec<u8>> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let canonical = zeroize::Zeroizing::new(serde_json::to_vec(&v).ok()?);
        Some(self.inner.store.request_digest(&canonical))
    }

    /// The first answer given to this very request, if it was seen before.
    async fn first_answer(
        &self,
        token: &Option<String>,
        digest: &Option<Vec<u8>>,
    ) -> Option<Result<Submitted, SubmitError>> {
        let (token, digest) = (token.clone()?, digest.clone()?);
        let t = token.clone();
        let first = match self.db(move |s| s.same_request(&t, &digest)).await {
            Ok(first) => first?,
            Err(e) => {
                tracing::warn!(card_token = %token, error = %e, "cannot look up an earlier delivery of this request");
                return None;
            }
        };
        tracing::info!(card_token = %token, "the same request again: answered as the first time");
        Some(match first.status {
            crate::store::Status::RequestError => Err(SubmitError::Refused(Refused {
                error: RequestError {
                    code: first.error_code.unwrap_or(ErrorCode::UNKNOWN_ERROR),
                    field: None,
                    message: first.description.unwrap_or_default(),
                },
                occurred_at: first.occurred_at,
            })),
            _ => Ok(Submitted {
                production: Production {
                    status: "READY",
                    kiosk_id: None,
                    occurred_at: first.occurred_at,
                    error_code: None,
                    description: None,
                },
            }),
        })
    }

    /// What can be said of a refused request without trusting it.
    fn stub_job(&self, token: String, body: &[u8]) -> NewJob {
        let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        let s = |k: &str| {
            v.get(k)
                .and_then(|x| x.as_str())
                .unwrap_or("")
                .chars()
                .take(64)
                .collect::<String>()
        };
        NewJob::from(crate::job::JobMeta {
            card_token: token,
            profile_id: v.get("profileId").and_then(|x| x.as_i64()).unwrap_or(0),
            kiosk_id: self.config().kiosk_id.clone(),
            card_type: s("cardType"),
            issuer_request_id: s("issuerRequestId"),
            card_id: s("cardId"),
            pan_masked: String::new(),
        })
    }

    async fn accept(&self, body: &[u8], digest: Option<Vec<u8>>) -> Result<Submitted, SubmitError> {
        let req = request::parse(body)?;
        let caps = self.capabilities();
        // One configuration for the whole validation, even if a reload
        // lands meanwhile.
        let config = self.config();
        let ctx = request::Context {
            kiosk_id: &config.kiosk_id,
            card_types: &config.card_types,
            capabilities: &caps,
            geometry: self.printer().profile().geometry,
        };
        if req.deferred_card_data && self.central().is_none() {
            return Err(SubmitError::from(RequestError {
                code: ErrorCode::INVALID_FIELD_VALUE,
                field: Some("deferredCardData".into()),
                message: "this kiosk has no central base to fetch deferred card data from: send the card data in the request".into(),
            }));
        }
        // A deferred request is checked for its identity now, for its card
        // data when it arrives, before the card may start (`deferred_fetch.rs`).
        let (meta, sealed) = if req.deferred_card_data {
            (request::validate_deferred(req, &ctx)?, None)
        } else {
            let accepted = request::validate(req, &ctx)?;
            let data = serde_json::to_vec(&accepted.card).map_err(|e| {
                tracing::error!(error = %e, "cannot serialise a request's card data");
                internal(
                    "the kiosk could not prepare this request (an internal error, logged); \
                     send the request again later"
                        .into(),
                )
            })?;
            (
                accepted.meta.clone(),
                Some((accepted.pan.clone(), zeroize::Zeroizing::new(data))),
            )
        };
        let not_ready = match self.not_ready().await {
            Some(why) => Some(why),
            // The printer works, but not for this card: its feeder or its
            // ribbon panels (other card types go on).
            None => self
                .type_not_ready(&meta.card_type)
                .await
                .map(|f| format!("{}: {}", f.code, f.description)),
        };
        if let (Some(why), NotReady::Reject) = (&not_ready, config.production.not_ready) {
            return Err(SubmitError::from(RequestError {
                code: ErrorCode::PRINTER_OR_SATELLITE_NOT_READY,
                field: None,
                message: why.clone(),
            }));
        }
        let job = NewJob {
            meta,
            request_digest: digest,
        };
        let limit = config.production.queue_limit;
        let token = job.meta.card_token.clone();
        let (masked, card_type) = (job.meta.pan_masked.clone(), job.meta.card_type.clone());
        // The answer is built from what was committed: a failure to read it
        // back must not turn an accepted request into an error.
        let stored = self
            .db(move |s| match sealed {
                Some((pan, data)) => s.accept(&job, &pan, &data, limit),
                None => s.accept_deferred(&job, limit),
            })
            .await;
        let event = match stored {
            Ok(event) => event,
            Err(StoreError::Duplicate) => {
                return Err(SubmitError::from(RequestError {
                    code: ErrorCode::REQUEST_ALREADY_EXISTS,
                    field: Some("cardToken".into()),
                    message: "a request with this cardToken was already submitted".into(),
                }))
            }
            Err(StoreError::PanInProduction) => {
                return Err(SubmitError::from(RequestError {
                    code: ErrorCode::PAN_ALREADY_EXISTS,
                    field: Some("pan".into()),
                    message: "a card with this PAN is already waiting or in production".into(),
                }))
            }
            Err(e @ StoreError::SizeLimit { .. }) => {
                tracing::error!(error = %e, "the store is at its size limit: new requests are refused");
                return Err(SubmitError::from(RequestError {
                    code: ErrorCode::UNABLE_TO_ACCEPT_REQUEST,
                    field: None,
                    message: format!("{e}; try again later"),
                }));
            }
            Err(StoreError::QueueFull) => {
                return Err(SubmitError::from(RequestError {
                    code: ErrorCode::UNABLE_TO_ACCEPT_REQUEST,
                    field: None,
                    message: format!("{limit} requests are already waiting; try again later"),
                }))
            }
            Err(e @ StoreError::Uncertain(_)) => {
                // The commit may have reached the disk: never a final answer.
                tracing::error!(card_token = %token, error = %e, "a request's write has an unknown outcome: the store is reopened before anything more is accepted");
                self.inner
                    .store_suspect
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                self.inner.wake.notify_one();
                return Err(SubmitError::Unavailable(
                    "outcome unknown: send the same request again".into(),
                ));
            }
            // Nothing was written: refused for now, in the kiosk's words;
            // the store's own message is for the log.
            Err(e) => {
                self.store_trouble("accepting a request", &e);
                return Err(SubmitError::from(store_trouble::unstored(&e)));
            }
        };
        self.store_ok();
        tracing::info!(card_token = %token, pan = %masked, card_type = %card_type, "request accepted");
        self.inner.wake.notify_one();
        // A card whose data is deferred: asked for now, while it is READY.
        self.inner.data_wake.notify_one();
        let mut production = Production {
            status: "READY",
            kiosk_id: None,
            occurred_at: event.occurred_at,
            error_code: None,
            description: None,
        };
        if let Some(why) = not_ready {
            production.error_code = Some(ErrorCode::REQUEST_CREATED_BUT_NOT_STARTED);
            production.description = Some(format!(
                "queued; production starts when the printer is ready ({why})"
            ));
        }
        Ok(Submitted { production })
    }

    /// Why a card cannot be produced now, if it cannot: a card in doubt, the
    /// store being checked, or what the published view of the printer says.
    /// Never asks the printer: it answers at once whatever the printer does.
    async fn not_ready(&self) -> Option<String> {
        if let Some(why) = self.inner.state.borrow().blocks_production() {
            return Some(why);
        }
        if self
            .inner
            .producing
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            // Busy with a card, hence working.
            return None;
        }
        self.printer()
            .view()
            .borrow()
            .not_ready()
            .map(|f| format!("{}: {}", f.code, f.description))
    }

    /// A technician's word on a card in doubt. `Removed` is refused while
    /// the printer still senses a card: take it out first.
    pub async fn resolve(&self, token: &str, resolution: Resolution) -> Result<(), CardError> {
        let waiting = self
            .inner
            .resolutions
            .lock()
            .expect("resolutions lock")
            .contains_key(token);
        if !waiting {
            let t = token.to_string();
            return match self.db(move |s| s.job(&t)).await {
                Ok(None) => Err(CardError::NotFound(token.to_string())),
                _ => Err(CardError::Conflict(format!(
                    "card {token:?} is not waiting for a technician"
                ))),
            };
        }
        if resolution == Resolution::Removed {
            match self.printer().locate_card().await {
                Ok(crate::printer::steps::CardWhere::None) => {}
                Ok(w) => {
                    return Err(CardError::Conflict(format!(
                        "the printer still senses a card ({w:?}): open the printer, take the card out, close it, then resolve again"
                    )))
                }
                Err(f) => {
                    return Err(CardError::Conflict(format!(
                        "the printer cannot be asked where the card is ({}: {}): check the link first",
                        f.code, f.description
                    )))
                }
            }
        }
        let sender = self
            .inner
            .resolutions
            .lock()
            .expect("resolutions lock")
            .remove(token);
        match sender.map(|tx| tx.send(resolution)) {
            Some(Ok(())) => Ok(()),
            _ => Err(CardError::Conflict(format!(
                "card {token:?} is not waiting for a technician"
            ))),
        }
    }

    pub async fn production(&self, token: &str) -> Result<Production, CardError> {
        let t = token.to_string();
        match self.db(move |s| s.job(&t)).await {
            Ok(Some(job)) => Ok(Production::of(&job)),
            Ok(None) => Err(CardError::NotFound(token.to_string())),
            Err(e) => Err(CardError::Internal(e.to_string())),
        }
    }

    pub async fn card(&self, token: &str) -> Result<CardView, CardError> {
        let t = token.to_string();
        // The job first: the events of a token nobody submitted are not an
        // internal error but an unknown card.
        let found = self
            .db(move |s| match s.job(&t)? {
                Some(job) => s.events(&t).map(|events| Some((job, events))),
                None => Ok(None),
            })
            .await;
        match found {
            Ok(Some((job, events))) => {
                let mut view = CardView::of(&job, &events);
                if job.status == crate::store::Status::Ready {
                    view.waiting = self.data_note(token);
                }
                Ok(view)
            }
            Ok(None) | Err(StoreError::NotFound) => Err(CardError::NotFound(token.to_string())),
            Err(e) => Err(CardError::Internal(e.to_string())),
        }
    }

    /// Cancels a request before its production starts.
    pub async fn cancel(&self, token: &str) -> Result<Production, CardError> {
        let t = token.to_string();
        match self.db(move |s| s.cancel(&t).and_then(|_| s.job(&t))).await {
            Ok(Some(job)) => {
                tracing::info!(card_token = %token, "request cancelled by the issuer");
                self.inner
                    .metrics
                    .card_final(crate::store::Status::Cancelled, None);
                Ok(Production::of(&job))
            }
            Ok(None) | Err(StoreError::NotFound) => Err(CardError::NotFound(token.to_string())),
            Err(StoreError::NotCancellable(status)) => Err(CardError::Conflict(format!(
                "the card is {}: only a request still waiting can be cancelled",
                view::api_status(status)
            ))),
            Err(e) => Err(CardError::Internal(e.to_string())),
        }
    }

    /// The kiosk application's verdict on a presented card. A card that is
    /// not waiting for one is a conflict; a token nobody submitted, unknown.
    pub async fn final_validation(&self, token: &str, accept: bool) -> Result<(), CardError> {
        let sender = self
            .inner
            .verdicts
            .lock()
            .expect("verdicts lock")
            .remove(token);
        if let Some(tx) = sender {
            let _ = tx.send(if accept {
                Verdict::Accept
            } else {
                Verdict::Refuse
            });
            return Ok(());
        }
        let t = token.to_string();
        match self.db(move |s| s.job(&t)).await {
            Ok(Some(_)) => Err(CardError::Conflict(format!(
                "card {token:?} is not waiting for a final validation"
            ))),
            Ok(None) => Err(CardError::NotFound(token.to_string())),
            Err(e) => Err(CardError::Internal(e.to_string())),
        }
    }

    /// Stores a fact the agent keeps across restarts.
    pub async fn remember(&self, key: &'static str, value: String) -> Result<(), CardError> {
        self.db(move |s| s.set_meta(key, &value))
            .await
            .map_err(|e| CardError::Internal(e.to_string()))
    }

    /// Stock per feeder as set by a technician and counted down per card,
    /// with what the feeder's own sensors say (they win over the count).
    pub async fn inventory(&self) -> Result<Vec<FeederView>, CardError> {
        let stock = self
            .db(|s| s.inventory())
            .await
            .map_err(|e| CardError::Internal(e.to_string()))?;
        // From the published view: never waits for the printer.
        let sensors = self.printer().view().borrow().feeder_sensors();
        let feeders = self.printer().profile().capabilities.feeders;
        Ok((1..=feeders)
            .map(|n| {
                let s = stock.iter().find(|f| f.feeder == n);
                let sensed = sensors
                    .as_ref()
                    .and_then(|v| v.get(usize::from(n) - 1))
                    .copied();
                FeederView {
                    feeder: n,
                    card_type: s.map(|f| f.card_type.clone()),
                    count: s.map(|f| f.count),
                    set_at: s.map(|f| f.set_at.clone()),
                    empty: sensed.map(|(empty, _)| empty),
                    near_empty: sensed.map(|(_, near)| near),
                }
            })
            .collect())
    }

    pub async fn set_inventory(
        &self,
        feeder: u8,
        card_type: String,
        count: u32,
    ) -> Result<(), CardError> {
        let feeders = self.printer().profile().capabilities.feeders;
        if feeder == 0 || feeder > feeders {
            return Err(CardError::Conflict(format!(
                "feeder {feeder} does not exist: the printer has {feeders}"
            )));
        }
        if !self.config().card_types.iter().any(|t| t.id == card_type) {
            return Err(CardError::Conflict(format!(
                "card type {card_type:?} is not configured"
            )));
        }
        tracing::info!(feeder, card_type = %card_type, count, "inventory set");
        self.db(move |s| s.set_inventory(feeder, &card_type, count))
            .await
            .map_err(|e| CardError::Internal(e.to_string()))?;
        self.printer().refresh_soon();
        self.inner.wake.notify_one();
        Ok(())
    }
}

fn internal(message: String) -> RequestError {
    RequestError {
        code: ErrorCode::UNKNOWN_ERROR,
        field: None,
        message,
    }
}
