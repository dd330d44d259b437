//! The library's control handle: what a test (or the agent's demo) does to
//! a running stub, in process. The control HTTP listener is a thin JSON
//! skin over the same calls.

use super::d1::D1Track;
use super::data::DataFetch;
use super::events::EventRecord;
use super::faults::{Active, Fault, Group};
use super::heartbeat::Heartbeats;
use super::intake::AckRecord;
use super::reconcile::CardState;
use super::record::Received;
use super::state::Shared;
use super::webhook::WebhookRecord;
use serde::Serialize;
use serde_json::value::RawValue;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct Control {
    pub(crate) shared: Arc<Shared>,
}

fn raw<T: Serialize + ?Sized>(v: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(v).expect("a value that serializes to JSON")
}

impl Control {
    /// Queues a production request for the kiosk; gives its `deliveryId`.
    /// The request reaches the kiosk exactly as `serde_json` writes it.
    pub fn enqueue<T: Serialize + ?Sized>(&self, request: &T) -> String {
        self.enqueue_raw_value(raw(request))
    }

    /// Queues a request given as JSON text, passed on byte for byte.
    pub fn enqueue_raw(&self, json: &str) -> Result<String, serde_json::Error> {
        Ok(self.enqueue_raw_value(RawValue::from_string(json.to_owned())?))
    }

    pub(crate) fn enqueue_raw_value(&self, request: Box<RawValue>) -> String {
        let id = self.shared.lock().queue.enqueue(request);
        self.shared.intake.notify_waiters();
        id
    }

    /// Queues a request sent without its card data, and registers that data
    /// for the deferred fetch under `card_token`.
    pub fn enqueue_with_data<T: Serialize + ?Sized, D: Serialize + ?Sized>(
        &self,
        request: &T,
        card_token: &str,
        card_data: &D,
    ) -> String {
        self.set_card_data(card_token, card_data);
        self.enqueue(request)
    }

    /// Registers (or replaces) the deferred card data of a card.
    pub fn set_card_data<D: Serialize + ?Sized>(&self, card_token: &str, card_data: &D) {
        self.set_card_data_raw_value(card_token, raw(card_data));
    }

    pub(crate) fn set_card_data_raw_value(&self, card_token: &str, data: Box<RawValue>) {
        self.shared
            .lock()
            .card_data
            .insert(card_token.to_owned(), data);
    }

    /// Requests delivered but not yet acknowledged (or due again).
    pub fn pending(&self) -> usize {
        self.shared.lock().queue.pending_count()
    }

    /// Every call received, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().log.entries()
    }

    pub fn acks(&self) -> Vec<AckRecord> {
        self.shared.lock().queue.acks()
    }

    /// Every event envelope received, duplicates included, in order.
    pub fn events(&self) -> Vec<EventRecord> {
        self.shared.lock().events.clone()
    }

    pub fn heartbeat(&self) -> Heartbeats {
        self.shared.lock().heartbeats.clone()
    }

    pub fn webhooks(&self) -> Vec<WebhookRecord> {
        self.shared.lock().webhooks.clone()
    }

    pub fn d1_tracks(&self) -> Vec<D1Track> {
        self.shared.lock().d1_tracks.clone()
    }

    pub fn data_fetches(&self) -> Vec<DataFetch> {
        self.shared.lock().data_fetches.clone()
    }

    /// The receiver's reconciled latest state of a card (by token, or by
    /// D1 `cardId`).
    pub fn latest(&self, card_token: &str) -> Option<CardState> {
        self.shared.lock().cards.latest(card_token)
    }

    /// Injects a fault for `group`, limited to the next `count` calls when
    /// given (`down` ignores the count). Returns once a `down` has taken the
    /// listener down.
    pub async fn set_fault(&self, group: Group, fault: Fault, count: Option<u32>) {
        self.shared.lock().faults.set(group, fault, count);
        self.settle().await;
    }

    /// Clears the faults of a group (`None` or `All`: every fault). Returns
    /// once a cleared `down` has re-bound the listener.
    pub async fn clear_faults(&self, group: Option<Group>) {
        self.shared.lock().faults.clear(group);
        self.settle().await;
    }

    pub fn faults(&self) -> Vec<Active> {
        self.shared.lock().faults.list()
    }

    /// Tells the listener whether to be down and waits until it is so.
    async fn settle(&self) {
        let down = self.shared.lock().faults.is_down();
        self.shared.down.send_replace(down);
        let mut bound = self.shared.bound.subscribe();
        let _ = tokio::time::timeout(Duration::from_secs(5), bound.wait_for(|b| *b != down)).await;
    }

    /// Whether the upstream listener accepts connections now.
    pub fn is_up(&self) -> bool {
        *self.shared.bound.borrow()
    }

    /// Expires every access token issued so far (renewal tests).
    pub fn expire_tokens(&self) {
        self.shared.lock().tokens.expire_all();
    }
}
