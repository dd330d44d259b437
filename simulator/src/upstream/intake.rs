//! Production requests waiting for the kiosk: the long poll that delivers
//! them and the acknowledgements that retire them. A request is delivered
//! again on every poll until it is acknowledged (at-least-once), so the
//! agent must de-duplicate by `deliveryId`.

use super::answer;
use super::faults::Group;
use super::gate;
use super::state::{Arrival, Shared};
use super::time;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// At most this many requests in one answer.
pub const MAX_PER_ANSWER: usize = 50;
/// The longest long poll.
pub const MAX_WAIT_S: u64 = 60;
pub const DEFAULT_WAIT_S: u64 = 25;

struct Delivery {
    id: String,
    request: Box<RawValue>,
    acked: bool,
    /// A `duplicate` fault delivered it: one more delivery after its ack.
    redeliver_after_ack: bool,
    redelivered: bool,
    /// Pending again after its first ack (the duplicate fault's extra one).
    again: bool,
}

impl Delivery {
    fn pending(&self) -> bool {
        !self.acked || self.again
    }
}

/// One acknowledgement as received.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AckRecord {
    pub n: u64,
    pub received_at: String,
    pub delivery_id: String,
    /// A second (or later) ack of the same delivery; the first is kept.
    pub duplicate: bool,
    pub body: Value,
}

#[derive(Default)]
pub struct Queue {
    items: Vec<Delivery>,
    acks: Vec<AckRecord>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum AckError {
    UnknownDelivery,
}

impl Queue {
    /// Queues a request (its JSON kept byte for byte); gives its delivery id.
    pub fn enqueue(&mut self, request: Box<RawValue>) -> String {
        let id = format!("dlv-{}", uuid::Uuid::new_v4().simple());
        self.items.push(Delivery {
            id: id.clone(),
            request,
            acked: false,
            redeliver_after_ack: false,
            redelivered: false,
            again: false,
        });
        id
    }

    pub fn pending_count(&self) -> usize {
        self.items.iter().filter(|d| d.pending()).count()
    }

    /// The next answer's entries; with `duplicate`, each one twice (and
    /// marked for one more delivery after its ack).
    fn answer(&mut self, duplicate: bool) -> Vec<Entry> {
        let room = if duplicate {
            MAX_PER_ANSWER / 2
        } else {
            MAX_PER_ANSWER
        };
        let mut out = Vec::new();
        for d in self.items.iter_mut().filter(|d| d.pending()).take(room) {
            let entry = Entry {
                delivery_id: d.id.clone(),
                request: d.request.clone(),
            };
            if duplicate {
                out.push(entry.clone());
                d.redeliver_after_ack |= !d.redelivered;
            }
            out.push(entry);
        }
        out
    }

    fn has_pending(&self) -> bool {
        self.items.iter().any(Delivery::pending)
    }

    /// Records an ack; `Ok(true)` when the delivery is pending again (the
    /// duplicate fault's re-delivery).
    pub fn ack(&mut self, id: &str, arrival: Arrival, body: Value) -> Result<bool, AckError> {
        let d = self
            .items
            .iter_mut()
            .find(|d| d.id == id)
            .ok_or(AckError::UnknownDelivery)?;
        let duplicate = d.acked;
        d.acked = true;
        d.again = false;
        if !duplicate && d.redeliver_after_ack && !d.redelivered {
            d.redelivered = true;
            d.again = true;
        }
        let again = d.again;
        self.acks.push(AckRecord {
            n: arrival.n,
            received_at: time::micros(arrival.at),
            delivery_id: id.to_owned(),
            duplicate,
            body,
        });
        Ok(again)
    }

    pub fn acks(&self) -> Vec<AckRecord> {
        self.acks.clone()
    }
}

#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    delivery_id: String,
    request: Box<RawValue>,
}

#[derive(Serialize)]
struct Answer {
    requests: Vec<Entry>,
}

#[derive(Deserialize)]
pub struct PollQuery {
    wait: Option<String>,
}

/// `GET {base}/kiosks/{kioskId}/requests?wait=S`
pub async fn poll(
    State(s): State<Arc<Shared>>,
    Path(kiosk): Path<String>,
    Query(q): Query<PollQuery>,
    headers: HeaderMap,
) -> Response {
    if let Err(r) = gate::faults(&s, Group::Intake).await {
        return r;
    }
    if let Err(r) = gate::cb(&s, &headers, &kiosk) {
        return r;
    }
    let wait = match q.wait.as_deref().map(str::parse::<u64>) {
        None => DEFAULT_WAIT_S,
        Some(Ok(w)) if w <= MAX_WAIT_S => w,
        _ => {
            return answer::cb(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER",
                "wait must be an integer from 0 to 60",
            )
        }
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    loop {
        // Registered before looking, so an enqueue in between still wakes us.
        let notified = s.intake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut inner = s.lock();
            if inner.queue.has_pending() {
                let duplicate = inner.faults.take_duplicate();
                let requests = inner.queue.answer(duplicate);
                return Json(Answer { requests }).into_response();
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return Json(Answer { requests: vec![] }).into_response();
        }
    }
}

/// `POST {base}/kiosks/{kioskId}/requests/{deliveryId}/ack`
pub async fn ack(
    State(s): State<Arc<Shared>>,
    Path((kiosk, delivery)): Path<(String, String)>,
    Extension(arrival): Extension<Arrival>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = gate::faults(&s, Group::Ack).await {
        return r;
    }
    if let Err(r) = gate::cb(&s, &headers, &kiosk) {
        return r;
    }
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(_) => return answer::cb(StatusCode::BAD_REQUEST, "INVALID_ACK", "body: not JSON"),
    };
    if let Err(field) = super::schema::ack(&value) {
        return answer::cb(StatusCode::BAD_REQUEST, "INVALID_ACK", field);
    }
    let result = s.lock().queue.ack(&delivery, arrival, value);
    match result {
        Ok(again) => {
            if again {
                s.intake.notify_waiters();
            }
            StatusCode::NO_CONTENT.into_response()
        }
        Err(AckError::UnknownDelivery) => answer::cb(
            StatusCode::NOT_FOUND,
            "DELIVERY_NOT_FOUND",
            format!("no delivery {delivery:?}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    fn arrival() -> Arrival {
        Arrival {
            n: 1,
            at: SystemTime::now(),
        }
    }

    #[test]
    fn pending_until_acked_and_duplicate_once_more() {
        let mut q = Queue::default();
        let a = q.enqueue(raw(r#"{"b":1,  "a":2}"#));
        assert_eq!(q.answer(false).len(), 1);
        assert_eq!(q.answer(true).len(), 2);
        assert_eq!(q.ack(&a, arrival(), Value::Null), Ok(true));
        let again = q.answer(false);
        assert_eq!(again.len(), 1);
        // Byte for byte, spacing and key order included.
        assert_eq!(again[0].request.get(), r#"{"b":1,  "a":2}"#);
        assert_eq!(q.ack(&a, arrival(), Value::Null), Ok(false));
        assert!(q.answer(false).is_empty());
        assert_eq!(q.ack(&a, arrival(), Value::Null), Ok(false));
        let dups: Vec<bool> = q.acks().iter().map(|r| r.duplicate).collect();
        assert_eq!(dups, [false, true, true]);
        assert_eq!(
            q.ack("nope", arrival(), Value::Null),
            Err(AckError::UnknownDelivery)
        );
    }

    #[test]
    fn at_most_fifty_per_answer() {
        let mut q = Queue::default();
        for i in 0..60 {
            q.enqueue(raw(&format!("{{\"i\":{i}}}")));
        }
        assert_eq!(q.answer(false).len(), MAX_PER_ANSWER);
        assert_eq!(q.answer(true).len(), MAX_PER_ANSWER);
    }
}
