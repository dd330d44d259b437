//! Which queued card starts next: the oldest one whose needs the printer
//! meets now ([`super::supplies::check`] on a reading taken just before),
//! so that a card type waiting for its ribbon or its feeder does not hold
//! back the others. A card whose deferred data is not in hand yet is not
//! eligible at all (it is fetched while the card waits: `deferred.rs`), and
//! never holds back the cards behind it.

use super::supplies::{self, CardNeeds};
use super::Engine;
use crate::codes::Fault;
use crate::config::Config;
use crate::printer::snapshot::Snapshot;
use crate::store::{FeederStock, Job};
use std::collections::BTreeMap;

/// Why card types wait while others are produced, as last logged: each
/// change is logged once.
pub(super) type Held = BTreeMap<String, String>;

impl Engine {
    /// The oldest queued card that can start now, or why none can (the
    /// oldest card's reason); `None` when nothing is queued (or the queue
    /// cannot be read: said once by `store_trouble`). Reads the status words and supplies first,
    /// under the printer's turn: the check is made on what the printer says
    /// now, not on a reading taken before the last card.
    pub(super) async fn next_card(&self, held: &mut Held) -> Result<Option<Job>, Fault> {
        let read = self
            .db(|s| Ok::<_, crate::store::StoreError>((s.queued()?, s.awaiting_data()?)))
            .await;
        let queued = match read {
            Ok((queued, awaiting)) => eligible(queued, &awaiting),
            Err(e) => {
                self.store_trouble("reading the queue", &e);
                return Ok(None);
            }
        };
        if queued.is_empty() {
            return Ok(None);
        }
        let reading = self.printer().refresh_supplies().await?;
        if let Some(f) = reading.stopping_fault() {
            return Err(Fault {
                description: format!("the printer is not ready: {}", f.description),
                ..f
            });
        }
        // Without an inventory the card's steps say so (INV_NOT_INITIALIZED)
        // before any card is taken.
        let stock = self.db(|s| s.inventory()).await.unwrap_or_default();
        let config = self.config();
        let profile = self.printer().profile().clone();
        let mut now_held = Held::new();
        let mut first_fault = None;
        let mut chosen = None;
        for job in queued {
            let needs = needs_of(&config, &stock, Some(&reading), &job.meta.card_type);
            match supplies::check(&needs, &reading, &profile) {
                Ok(()) => {
                    chosen = Some(job);
                    break;
                }
                Err(f) => {
                    now_held
                        .entry(needs.card_type.clone())
                        .or_insert_with(|| format!("{}: {}", f.code, f.description));
                    first_fault.get_or_insert(f);
                }
            }
        }
        let Some(job) = chosen else {
            // Nothing can start: the loop says why (the oldest card's reason).
            return first_fault.map_or(Ok(None), Err);
        };
        // Some card types wait while others go on: each change said once.
        for (card_type, why) in &now_held {
            if held.get(card_type) != Some(why) {
                tracing::warn!(card_type = %card_type, reason = %why, "cards of this type wait; other card types go on");
            }
        }
        *held = now_held;
        Ok(Some(job))
    }

    /// Whether a card of this type could start on the printer as last
    /// published (never asks the printer): for the answer to a submission.
    pub(super) async fn type_not_ready(&self, card_type: &str) -> Option<Fault> {
        let reading = self.printer().view().borrow().reading.clone()?;
        let stock = self.db(|s| s.inventory()).await.unwrap_or_default();
        let needs = needs_of(&self.config(), &stock, Some(&reading), card_type);
        supplies::check(&needs, &reading, self.printer().profile()).err()
    }
}

/// The queued cards that may start: those whose card data is in hand
/// (`awaiting`: the deferred ones still waiting for theirs), in order.
pub(super) fn eligible(queued: Vec<Job>, awaiting: &[String]) -> Vec<Job> {
    queued
        .into_iter()
        .filter(|j| !awaiting.contains(&j.meta.card_token))
        .collect()
}

/// What a card of `card_type` needs, from the configuration and the
/// inventory. A type no longer configured needs what its steps will find.
pub(super) fn needs_of(
    config: &Config,
    stock: &[FeederStock],
    reading: Option<&Snapshot>,
    card_type: &str,
) -> CardNeeds {
    let panels = config
        .card_types
        .iter()
        .find(|t| t.id == card_type)
        .map(|t| t.needed_panels())
        .unwrap_or_default();
    CardNeeds {
        card_type: card_type.to_string(),
        panels,
        feeder: feeder_of(stock, card_type, |n| sensed_empty(reading, n)),
    }
}

/// The feeder a card type's blank cards come from: of those the inventory
/// gives that type, one whose sensor does not say empty (`empty`, from the
/// last reading), then the one with the most cards.
pub(super) fn feeder_of(
    stock: &[FeederStock],
    card_type: &str,
    empty: impl Fn(u8) -> bool,
) -> Option<u8> {
    stock
        .iter()
        .filter(|f| f.card_type == card_type)
        .max_by_key(|f| (!empty(f.feeder), f.count, std::cmp::Reverse(f.feeder)))
        .map(|f| f.feeder)
}

/// Whether the reading's sensor says feeder `n` is empty.
pub(super) fn sensed_empty(reading: Option<&Snapshot>, n: u8) -> bool {
    reading.is_some_and(|r| {
        !r.unavailable.contains_key("feeders") && r.feeders.iter().any(|f| f.feeder == n && f.empty)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stock(feeder: u8, card_type: &str, count: u32) -> FeederStock {
        FeederStock {
            feeder,
            card_type: card_type.into(),
            count,
            set_at: String::new(),
        }
    }

    #[test]
    fn the_fullest_feeder_of_the_type_serves_it() {
        let none = |_| false;
        let s = [stock(1, "a", 3), stock(2, "b", 9), stock(3, "a", 7)];
        assert_eq!(feeder_of(&s, "a", none), Some(3));
        assert_eq!(feeder_of(&s, "b", none), Some(2));
        assert_eq!(feeder_of(&s, "c", none), None);
        // A tie goes to the lower feeder, as the sort before did.
        let s = [stock(1, "a", 5), stock(2, "a", 5)];
        assert_eq!(feeder_of(&s, "a", none), Some(1));
        // A feeder its sensor says is empty goes last, whatever its count.
        let s = [stock(1, "a", 3), stock(3, "a", 7)];
        assert_eq!(feeder_of(&s, "a", |n| n == 3), Some(1));
        assert_eq!(feeder_of(&s, "a", |_| true), Some(3));
    }
}
