//! The state one stub shares between its listeners, handlers and control
//! handle. One mutex guards it all: the stub serves one kiosk, and a single
//! lock keeps "what was received" and "what was answered" in one order.

use super::config::StubConfig;
use super::d1::D1Track;
use super::data::DataFetch;
use super::events::EventRecord;
use super::faults::Faults;
use super::heartbeat::Heartbeats;
use super::intake::Queue;
use super::jwt::AssertionKey;
use super::reconcile::Reconciler;
use super::record::Log;
use super::tokens::Tokens;
use super::webhook::WebhookRecord;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::SystemTime;
use tokio::sync::{watch, Notify};

pub struct Shared {
    pub cfg: StubConfig,
    pub jwt_key: Option<AssertionKey>,
    inner: Mutex<Inner>,
    /// Woken whenever a request becomes pending (long polls wait on it).
    pub intake: Notify,
    /// Wanted state of the upstream listener: `true` while a `down` fault is
    /// in force.
    pub down: watch::Sender<bool>,
    /// Actual state: `true` while the upstream listener accepts.
    pub bound: watch::Sender<bool>,
    /// The upstream address once bound (the port a "down" re-binds).
    pub addr: OnceLock<SocketAddr>,
}

#[derive(Default)]
pub struct Inner {
    pub faults: Faults,
    pub log: Log,
    pub tokens: Tokens,
    pub queue: Queue,
    pub card_data: HashMap<String, Box<RawValue>>,
    pub data_fetches: Vec<DataFetch>,
    pub events: Vec<EventRecord>,
    /// Event ids this endpoint received (its duplicates are its own: the
    /// same status change may also come by the webhook).
    pub event_ids: std::collections::HashSet<String>,
    pub heartbeats: Heartbeats,
    pub webhooks: Vec<WebhookRecord>,
    /// `webhook-id`s received (a retry's is one of them).
    pub webhook_ids: std::collections::HashSet<String>,
    pub d1_tracks: Vec<D1Track>,
    pub cards: Reconciler,
}

impl Shared {
    pub fn new(cfg: StubConfig, jwt_key: Option<AssertionKey>, log: Log) -> Shared {
        Shared {
            cfg,
            jwt_key,
            inner: Mutex::new(Inner {
                log,
                ..Inner::default()
            }),
            intake: Notify::new(),
            down: watch::channel(false).0,
            bound: watch::channel(false).0,
            addr: OnceLock::new(),
        }
    }

    /// The state; a handler that panicked while holding it leaves nothing
    /// half-written that matters to a test double, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn scheme(&self) -> &'static str {
        if self.cfg.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Where a call stands in the received log; put in the request's extensions
/// by the recording layer so handlers record the same number and time.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    pub n: u64,
    pub at: SystemTime,
}
