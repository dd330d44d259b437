//! The supplies forecast's shell: gathers its inputs from what is published
//! (the printer's view, the configuration) and the store (inventory, marks,
//! the journal's recent use), never from the printer; and a task that keeps
//! the two marks and logs each supply's change of level once.
//!
//! The marks, in the store's `meta` table:
//! * [`REJECT_MARK`]: the reject counter (`Rco;r`) when the box was last
//!   emptied: set when the printer's full indication clears, or on a
//!   technician's word (`PUT /v1/inventory/reject-box`).
//! * [`CLEANING_MARK`]: the counters when the agent saw the cleanings
//!   counter (`Rco;n`) go up: cards since cleaning count from it.

use super::forecast::{self, CleaningMark, Forecast, Inputs, Rate, SupplyForecast};
use super::{CardError, Engine};
use crate::printer::snapshot::Snapshot;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

pub const REJECT_MARK: &str = "reject_box_emptied_at";
pub const CLEANING_MARK: &str = "cleaning_mark";

/// At most one forecast this often for the log: the view changes at every
/// idle probe, the supplies only with a card or a technician.
const EVERY: Duration = Duration::from_secs(1);

impl Engine {
    /// Every supply's forecast, from what is published and the store.
    pub async fn forecast(&self) -> Forecast {
        let config = self.config();
        let window = config.supplies.rate_window_hours;
        let since = crate::time::rfc3339(
            SystemTime::now()
                .checked_sub(Duration::from_secs(u64::from(window) * 3600))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let (stock, usage, reject_mark, cleaning_mark) = self
            .db(move |s| {
                let usage = s.usage_since(&since).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "supplies forecast: the recent production rate cannot be read");
                    Default::default()
                });
                (
                    s.inventory().unwrap_or_default(),
                    usage,
                    s.meta(REJECT_MARK).ok().flatten(),
                    s.meta(CLEANING_MARK).ok().flatten(),
                )
            })
            .await;
        let printer = self.printer();
        let reading = printer.view().borrow().reading.clone();
        let profile = printer.profile();
        forecast::forecast(&Inputs {
            reading: reading.as_ref(),
            stock: &stock,
            feeders: profile.capabilities.feeders,
            reject_capacity: profile.capabilities.reject_box_capacity,
            cleaning_rule: profile.cleaning,
            reject_mark: reject_mark.and_then(|m| m.parse().ok()),
            cleaning_mark: cleaning_mark
                .and_then(|m| serde_json::from_str::<StoredCleaning>(&m).ok())
                .and_then(|m| m.exact()),
            rate: Rate::of(usage, window),
            thresholds: &config.supplies,
        })
    }

    /// A technician's word: the reject box now holds `cards` (0 once
    /// emptied). Counted from the printer's reject counter as last read.
    pub async fn set_reject_box(&self, cards: u64) -> Result<u64, CardError> {
        let profile = self.printer().profile().clone();
        if !profile.capabilities.reject_box {
            return Err(CardError::Conflict(format!(
                "the {} has no reject box",
                profile.model.id
            )));
        }
        if let Some(cap) = profile.capabilities.reject_box_capacity {
            if cards > u64::from(cap) {
                return Err(CardError::Conflict(format!(
                    "the reject box holds at most {cap} cards, not {cards}"
                )));
            }
        }
        let counter = self
            .printer()
            .view()
            .borrow()
            .reading
            .as_ref()
            .and_then(|r| r.counters.get("rejected").copied())
            .ok_or_else(|| {
                CardError::Conflict(
                    "the printer's reject counter (Rco;r) is not read yet: try again once the printer is connected and read (`satellite printer status`)"
                        .into(),
                )
            })?;
        let mark = counter.checked_sub(cards).ok_or_else(|| {
            CardError::Conflict(format!(
                "the printer has put {counter} cards in the reject box in all: it cannot hold {cards}"
            ))
        })?;
        self.db(move |s| s.set_meta(REJECT_MARK, &mark.to_string()))
            .await
            .map_err(|e| CardError::Internal(e.to_string()))?;
        tracing::info!(
            cards,
            reject_counter = counter,
            "reject box: a technician says what it holds"
        );
        Ok(mark)
    }
}

/// The cleaning mark as stored: `inserted` is `None` when the agent first
/// saw this many cleanings without seeing the cleaning (its cards since are
/// then unknown until the next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct StoredCleaning {
    cleanings: u64,
    inserted: Option<u64>,
}

impl StoredCleaning {
    fn exact(self) -> Option<CleaningMark> {
        Some(CleaningMark {
            cleanings: self.cleanings,
            inserted: self.inserted?,
        })
    }
}

/// What a new reading changes in the marks: the reject counter when the
/// box's full indication cleared (it was emptied), or first seen at 0 (no
/// card was ever rejected: the box is empty), and a new cleaning mark when
/// the cleanings counter moved. Pure.
fn new_marks(
    prev: Option<&Snapshot>,
    now: &Snapshot,
    reject_mark: Option<u64>,
    cleaning: Option<StoredCleaning>,
) -> (Option<u64>, Option<StoredCleaning>) {
    let emptied =
        prev.is_some_and(|p| p.reject_box_full == Some(true)) && now.reject_box_full == Some(false);
    let counter = now.counters.get("rejected").copied();
    let reject = if emptied {
        counter
    } else {
        counter.filter(|c| *c == 0 && reject_mark.is_none())
    };
    let counters = (
        now.counters.get("cleanings").copied(),
        now.counters.get("inserted_cards").copied(),
    );
    let cleaning = match (counters, cleaning) {
        ((Some(c), Some(i)), stored) => match stored {
            Some(m) if m.cleanings == c => None,
            // Seen going up: the cleaning happened since the last reading.
            Some(m) if c > m.cleanings => Some(StoredCleaning {
                cleanings: c,
                inserted: Some(i),
            }),
            // First seen, or gone back (another printer): exact only for a
            // printer never cleaned.
            _ => Some(StoredCleaning {
                cleanings: c,
                inserted: (c == 0).then_some(i),
            }),
        },
        _ => None,
    };
    (reject, cleaning)
}

/// Keeps the marks and logs each supply's change of level once (a warning
/// on crossing its threshold, an info when replenished), until `stop`.
pub async fn watch(engine: Engine, stop: CancellationToken) {
    let mut prev: Option<Snapshot> = None;
    let mut levels: BTreeMap<String, &'static str> = BTreeMap::new();
    // The last reading's supplies and the store's commit count when they
    // were taken in.
    let mut last: Option<(String, u64)> = None;
    let mut written = engine.store().written();
    loop {
        let mut view = engine.printer().view();
        // Driven by the view (which the idle probe changes every period)
        // and the store's commits (a card, a technician's inventory or
        // reject-box word): no timer of its own, which cost the idle agent
        // wake-ups and a store read a minute for nothing (`satellite bench
        // --idle`). A supply's level depends on what is left and its
        // threshold only; the rate (hours left) is read when asked.
        let gone = tokio::select! {
            _ = stop.cancelled() => return,
            changed = view.changed() => changed.is_err(),
            w = written.changed() => {
                if w.is_err() {
                    // The store is gone: the agent is stopping.
                    return;
                }
                false
            }
        };
        if gone {
            // The printer handle was replaced (a reload changed the link):
            // the next turn watches the new one's view.
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            continue;
        }
        let reading = view.borrow().reading.clone();
        if let Some(now) = &reading {
            // An idle probe that changed no supply is not worth a store
            // read each second (`satellite bench --idle`).
            let key = supplies_key(now);
            let commits = *written.borrow_and_update();
            if last
                .as_ref()
                .is_some_and(|(k, n)| *k == key && *n == commits)
            {
                continue;
            }
            last = Some((key, commits));
            let (reject_mark, stored) = engine
                .db(|s| {
                    (
                        s.meta(REJECT_MARK).ok().flatten(),
                        s.meta(CLEANING_MARK).ok().flatten(),
                    )
                })
                .await;
            let reject_mark = reject_mark.and_then(|m| m.parse().ok());
            let stored = stored.and_then(|m| serde_json::from_str::<StoredCleaning>(&m).ok());
            let (reject, cleaning) = new_marks(prev.as_ref(), now, reject_mark, stored);
            if let Some(counter) = reject {
                if counter > 0 {
                    tracing::info!(
                        reject_counter = counter,
                        "reject box emptied (its full indication cleared)"
                    );
                }
                if let Err(e) = engine
                    .db(move |s| s.set_meta(REJECT_MARK, &counter.to_string()))
                    .await
                {
                    tracing::warn!(error = %e, "the reject box's mark cannot be stored");
                }
            }
            if let Some(mark) = cleaning {
                if mark.inserted.is_some() && stored.is_some() {
                    tracing::info!(
                        cleanings = mark.cleanings,
                        "printer cleaned: cards until cleaning count again"
                    );
                }
                let text = serde_json::to_string(&mark).unwrap_or_default();
                if let Err(e) = engine.db(move |s| s.set_meta(CLEANING_MARK, &text)).await {
                    tracing::warn!(error = %e, "the cleaning mark cannot be stored");
                }
            }
            prev = reading;
        } else {
            // Until the first reading, nothing to forecast or mark: the
            // first one is taken in as soon as it is published.
            continue;
        }
        let f = engine.forecast().await;
        log_changes(&mut levels, &f);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// What in a reading the forecast and the marks depend on.
fn supplies_key(s: &Snapshot) -> String {
    let feeders: Vec<(u8, bool)> = s.feeders.iter().map(|f| (f.feeder, f.empty)).collect();
    let faults: Vec<&str> = s.faults.iter().map(|f| f.code.as_str()).collect();
    format!(
        "{:?}|{feeders:?}|{:?}|{:?}|{:?}|{faults:?}|{:?}",
        s.ribbon_cards_left,
        s.reject_box_full,
        s.cleaning_due,
        s.counters,
        s.unavailable.keys().collect::<Vec<_>>()
    )
}

/// What a new forecast brings to the log: a supply that reached its
/// threshold or ran out (`true`), or one replenished above it (`false`).
/// A level seen before is not news; nor is an unknown figure. Pure.
fn news<'f>(
    levels: &mut BTreeMap<String, &'static str>,
    f: &'f Forecast,
) -> Vec<(&'f SupplyForecast, bool)> {
    let mut out = Vec::new();
    for s in &f.supplies {
        let level = s.level();
        let before = levels.insert(s.name(), level);
        if before == Some(level) || level == "unknown" {
            continue;
        }
        match level {
            "warning" | "exhausted" => out.push((s, true)),
            _ if matches!(before, Some("warning" | "exhausted")) => out.push((s, false)),
            _ => {}
        }
    }
    out
}

/// Logs each supply's change of level once: a warning when one reaches its
/// threshold or runs out, an info when it is replenished.
fn log_changes(levels: &mut BTreeMap<String, &'static str>, f: &Forecast) {
    for (s, warn) in news(levels, f) {
        if warn {
            tracing::warn!(
                supply = %s.name(),
                level = s.level(),
                left = s.left,
                warn_at = s.warn_at,
                hours_left = s.hours_left,
                next_step = s.next_step.as_deref().unwrap_or(""),
                "{}",
                s.summary
            );
        } else {
            tracing::info!(
                supply = %s.name(),
                left = s.left,
                warn_at = s.warn_at,
                "{}: replenished, above its threshold again",
                s.name()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::Profile;

    fn reading(full: bool, rejected: u64, cleanings: u64, inserted: u64) -> Snapshot {
        let mut s = Snapshot::empty(None, &Profile::load("evolis-km500b", None).unwrap());
        s.reject_box_full = Some(full);
        for (k, v) in [
            ("rejected", rejected),
            ("cleanings", cleanings),
            ("inserted_cards", inserted),
        ] {
            s.counters.insert(k.into(), v);
        }
        s
    }

    #[test]
    fn the_box_is_emptied_when_its_full_indication_clears() {
        let full = reading(true, 20, 0, 50);
        let emptied = reading(false, 20, 0, 50);
        assert_eq!(new_marks(Some(&full), &emptied, Some(0), None).0, Some(20));
        assert_eq!(new_marks(Some(&emptied), &emptied, Some(0), None).0, None);
        assert_eq!(new_marks(None, &emptied, Some(0), None).0, None);
        // A counter first seen at 0: nothing was ever rejected, the box is empty.
        let new = reading(false, 0, 0, 0);
        assert_eq!(new_marks(None, &new, None, None).0, Some(0));
        assert_eq!(new_marks(None, &new, Some(0), None).0, None);
        assert_eq!(new_marks(None, &emptied, None, None).0, None);
    }

    #[test]
    fn a_cleaning_is_marked_when_the_agent_sees_the_counter_go_up() {
        let r = reading(false, 0, 3, 900);
        // First seen already cleaned: not exact.
        let first = new_marks(None, &r, None, None).1.unwrap();
        assert_eq!(first.exact(), None);
        // Unchanged: nothing to store.
        assert_eq!(new_marks(None, &r, None, Some(first)).1, None);
        // Up by one: counted from now.
        let after = reading(false, 0, 4, 950);
        let m = new_marks(Some(&r), &after, None, Some(first)).1.unwrap();
        assert_eq!(
            m.exact(),
            Some(CleaningMark {
                cleanings: 4,
                inserted: 950
            })
        );
        // A printer never cleaned: exact from the start.
        let new = reading(false, 0, 0, 10);
        assert!(new_marks(None, &new, None, None)
            .1
            .unwrap()
            .exact()
            .is_some());
    }

    #[test]
    fn a_change_of_level_is_news_once() {
        let mut s = Snapshot::empty(None, &Profile::load("evolis-km500b", None).unwrap());
        let t = crate::config::SuppliesConfig::default();
        let at = |s: &Snapshot| {
            forecast::forecast(&Inputs {
                reading: Some(s),
                stock: &[],
                feeders: 1,
                reject_capacity: None,
                cleaning_rule: None,
                reject_mark: None,
                cleaning_mark: None,
                rate: Rate::of(Default::default(), 6),
                thresholds: &t,
            })
        };
        let mut levels = BTreeMap::new();
        s.ribbon_cards_left = Some(200);
        assert!(
            news(&mut levels, &at(&s)).is_empty(),
            "ok at start is not news"
        );
        s.ribbon_cards_left = Some(50);
        let f = at(&s);
        let n = news(&mut levels, &f);
        assert_eq!(n.len(), 1);
        assert_eq!((n[0].0.supply, n[0].1), ("ribbon", true));
        // The next card: still a warning, not news again.
        s.ribbon_cards_left = Some(49);
        assert!(news(&mut levels, &at(&s)).is_empty());
        s.ribbon_cards_left = Some(0);
        let f = at(&s);
        assert_eq!(news(&mut levels, &f)[0].0.level(), "exhausted");
        // A new ribbon: replenished, once.
        s.ribbon_cards_left = Some(500);
        let f = at(&s);
        let n = news(&mut levels, &f);
        assert_eq!((n.len(), n[0].1), (1, false));
        assert!(news(&mut levels, &at(&s)).is_empty());
    }
}
