//! The issuer receiver's view of each card, built as the D1 tracking seed
//! asks of a receiver: notifications arrive late, out of order and more
//! than once, so keep per card the latest by the event's own time,
//! de-duplicated by id. Events are assumed already schema-checked.

use super::time;
use serde::Serialize;
use serde_json::Value;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// Where an event stands in its card's history.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Rank {
    time: i128,
    sequence: Option<u64>,
    status: u8,
}

impl Rank {
    /// Time first; on a tie the per-card sequence when both have one, else
    /// the status rank (requested < ready < final).
    fn cmp(&self, other: &Rank) -> Ordering {
        self.time
            .cmp(&other.time)
            .then_with(|| match (self.sequence, other.sequence) {
                (Some(a), Some(b)) if a != b => a.cmp(&b),
                _ => self.status.cmp(&other.status),
            })
    }
}

fn production_rank(status: &str) -> u8 {
    match status {
        "READY" => 0,
        "IN_PROGRESS" => 1,
        _ => 2,
    }
}

fn operation_rank(op: &Value) -> u8 {
    match (op["status"].as_str(), op["details"]["status"].as_str()) {
        (Some("PENDING"), Some("CARD_PROD_REQUESTED")) => 0,
        (Some("PENDING"), _) => 1,
        _ => 2,
    }
}

/// The reconciled state of one card.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CardState {
    pub card_token: String,
    /// The latest ProductionStatus received for the card.
    pub production: Option<Value>,
    /// The latest D1Operation received for the card.
    pub operation: Option<Value>,
    /// Distinct events taken into account.
    pub events: u64,
    /// Copies received again (same `eventId`, or same `operationId` and
    /// `details.status`).
    pub duplicates: u64,
    #[serde(skip)]
    production_rank: Option<Rank>,
    #[serde(skip)]
    operation_rank: Option<Rank>,
}

#[derive(Default)]
pub struct Reconciler {
    cards: HashMap<String, CardState>,
    /// D1 `cardId` -> the card token it was seen with in an envelope, so an
    /// operation received alone lands on the same card.
    aliases: HashMap<String, String>,
    event_ids: HashSet<String>,
    operation_keys: HashSet<(String, String)>,
}

impl Reconciler {
    /// Takes an envelope (`{"production", "operation"}`); `false` when its
    /// `eventId` was seen before.
    pub fn envelope(&mut self, env: &Value) -> bool {
        let token = env["production"]["cardToken"].as_str().unwrap_or_default();
        if let Some(card_id) = env["operation"]["cardId"].as_str() {
            self.aliases.insert(card_id.to_owned(), token.to_owned());
        }
        let fresh = self.production(&env["production"]);
        // The operation has its own de-duplication key: the same status
        // change may have reached this receiver first by another path (the
        // webhook carries the production form only).
        let seq = env["production"]["sequence"].as_u64();
        // A copy of a whole envelope counts as one duplicate, not two.
        self.operation_as(&env["operation"], token, seq, fresh);
        fresh
    }

    /// Takes a ProductionStatus alone; `false` when seen before.
    pub fn production(&mut self, p: &Value) -> bool {
        let token = p["cardToken"].as_str().unwrap_or_default().to_owned();
        let id = p["eventId"].as_str().unwrap_or_default().to_owned();
        if !self.event_ids.insert(id) {
            self.card(&token).duplicates += 1;
            return false;
        }
        let rank = Rank {
            time: p["occurredAt"].as_str().and_then(time::parse).unwrap_or(0),
            sequence: p["sequence"].as_u64(),
            status: production_rank(p["status"].as_str().unwrap_or_default()),
        };
        let card = self.card(&token);
        card.events += 1;
        if card
            .production_rank
            .is_none_or(|r| rank.cmp(&r) == Ordering::Greater)
        {
            card.production = Some(p.clone());
            card.production_rank = Some(rank);
        }
        true
    }

    /// Takes a D1Operation alone (webhook); `false` when seen before.
    pub fn operation(&mut self, op: &Value) -> bool {
        let card_id = op["cardId"].as_str().unwrap_or_default();
        let key = self
            .aliases
            .get(card_id)
            .cloned()
            .unwrap_or_else(|| card_id.to_owned());
        let fresh = self.operation_as(op, &key, None, true);
        if fresh {
            self.card(&key).events += 1;
        }
        fresh
    }

    fn operation_as(
        &mut self,
        op: &Value,
        key: &str,
        sequence: Option<u64>,
        count_duplicate: bool,
    ) -> bool {
        let dedup = (
            op["operationId"].as_str().unwrap_or_default().to_owned(),
            op["details"]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
        if !self.operation_keys.insert(dedup) {
            if count_duplicate {
                self.card(key).duplicates += 1;
            }
            return false;
        }
        let when = op["endTime"].as_str().or(op["startTime"].as_str());
        let rank = Rank {
            time: when.and_then(time::parse).unwrap_or(0),
            sequence,
            status: operation_rank(op),
        };
        let card = self.card(key);
        if card
            .operation_rank
            .is_none_or(|r| rank.cmp(&r) == Ordering::Greater)
        {
            card.operation = Some(op.clone());
            card.operation_rank = Some(rank);
        }
        true
    }

    fn card(&mut self, key: &str) -> &mut CardState {
        self.cards
            .entry(key.to_owned())
            .or_insert_with(|| CardState {
                card_token: key.to_owned(),
                ..CardState::default()
            })
    }

    /// The latest state of a card, by card token (or D1 `cardId`).
    pub fn latest(&self, key: &str) -> Option<CardState> {
        self.cards
            .get(key)
            .or_else(|| self.aliases.get(key).and_then(|t| self.cards.get(t)))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(seq: u64, status: &str, at: &str, op: (&str, &str), end: Option<&str>) -> Value {
        let mut operation = json!({
            "operationId": "op-1", "operation": "PRODUCE", "status": op.0,
            "startTime": "2025-01-17T06:28:02.492Z", "cardId": "c-1",
            "details": {"status": op.1}
        });
        if let Some(e) = end {
            operation["endTime"] = e.into();
        }
        json!({
            "production": {
                "eventId": format!("00000000-0000-4000-8000-00000000000{seq}"),
                "sequence": seq, "cardToken": "tok", "profileId": 1, "status": status,
                "kioskId": if status == "READY" { Value::Null } else { "WIS00001".into() },
                "occurredAt": at, "errorCode": null, "description": null
            },
            "operation": operation
        })
    }

    fn history() -> Vec<Value> {
        // The same occurredAt for the first two: the sequence decides.
        vec![
            env(
                1,
                "READY",
                "2025-01-17T06:28:02.492Z",
                ("PENDING", "CARD_PROD_REQUESTED"),
                None,
            ),
            env(
                2,
                "IN_PROGRESS",
                "2025-01-17T06:28:02.492Z",
                ("PENDING", "CARD_PROD_READY"),
                None,
            ),
            env(
                3,
                "PRODUCED",
                "2025-01-17T06:30:00.000Z",
                ("SUCCESSFUL", "CARD_PROD_DONE"),
                Some("2025-01-17T06:30:00.000Z"),
            ),
        ]
    }

    /// Every order of the history, each event sent twice: the same end.
    #[test]
    fn shuffled_and_duplicated_inputs_agree() {
        let h = history();
        let orders = [
            [0, 1, 2],
            [0, 2, 1],
            [1, 0, 2],
            [1, 2, 0],
            [2, 0, 1],
            [2, 1, 0],
        ];
        for order in orders {
            let mut r = Reconciler::default();
            let mut fresh = 0;
            for i in order.iter().chain(order.iter().rev()) {
                fresh += usize::from(r.envelope(&h[*i]));
            }
            assert_eq!(fresh, 3);
            let s = r.latest("tok").unwrap();
            assert_eq!(s.production.unwrap()["status"], "PRODUCED", "{order:?}");
            assert_eq!(s.operation.unwrap()["details"]["status"], "CARD_PROD_DONE");
            assert_eq!((s.events, s.duplicates), (3, 3));
            assert!(r.latest("c-1").is_some());
        }
    }

    /// D1 operations alone: PENDING ones share their startTime, the status
    /// rank orders them; one repeated is a duplicate.
    #[test]
    fn operations_alone_order_by_rank_on_ties() {
        let h = history();
        let mut r = Reconciler::default();
        assert!(r.operation(&h[1]["operation"]));
        assert!(r.operation(&h[0]["operation"]));
        assert!(!r.operation(&h[1]["operation"]));
        let s = r.latest("c-1").unwrap();
        assert_eq!(s.operation.unwrap()["details"]["status"], "CARD_PROD_READY");
        assert_eq!(s.duplicates, 1);
    }

    /// A later time beats a higher rank: a re-queued card is READY again.
    #[test]
    fn time_comes_first() {
        let mut r = Reconciler::default();
        let late = env(
            3,
            "READY",
            "2025-01-17T07:00:00.000Z",
            ("PENDING", "CARD_PROD_REQUESTED"),
            None,
        );
        let early = env(
            2,
            "PRODUCTION_ERROR",
            "2025-01-17T06:00:00.000Z",
            ("FAILED", "CARD_PROD_EXCEPTION"),
            Some("2025-01-17T06:00:00.000Z"),
        );
        r.envelope(&late);
        r.envelope(&early);
        assert_eq!(
            r.latest("tok").unwrap().production.unwrap()["status"],
            "READY"
        );
    }
}
