//! What a scrape shows of the agent's state, read only from what is
//! published (the engine's state watch, the printer's view and link count,
//! the upstream links' health) and from the store. Nothing here sends a
//! command to the printer or waits for the link: a scrape answers whatever
//! the printer is doing.

use crate::codes::ErrorCode;
use crate::engine::state::Activity;
use crate::engine::Engine;
use crate::printer::{LinkState, PrinterView, Profile};
use crate::store::{FeederStock, SinkDepth, Store, StoreError};
use crate::upstream::health::Upstream;
use std::collections::BTreeMap;
use std::time::Duration;

/// The published state at one scrape: plain data, encoded by `encode.rs`.
#[derive(Debug, Clone)]
pub struct Published {
    pub activity: Activity,
    pub printer: PrinterNow,
    pub links: Upstream,
    /// `None` when the store could not be read (logged).
    pub store: Option<StoreNow>,
    /// Every supply's forecast (`engine::forecast`).
    pub forecast: Option<crate::engine::forecast::Forecast>,
}

/// The printer as last published.
#[derive(Debug, Clone, PartialEq)]
pub struct PrinterNow {
    /// `ready`, `not_ready` (connected, an error condition stops
    /// production) or `offline` (the link is not up).
    pub state: &'static str,
    /// Every reason word the profile knows (IPP style, such as
    /// `media-empty`), true for those reported now.
    pub reasons: BTreeMap<String, bool>,
    /// Every printer and production code, true for those stopping
    /// production now.
    pub faults: BTreeMap<ErrorCode, bool>,
    /// Age of the last status reading.
    pub reading_age: Option<Duration>,
    /// Each feeder's sensors: (empty, near empty), from the last full reading.
    pub feeders: Option<Vec<(bool, bool)>>,
    pub ribbon_cards_left: Option<u64>,
    pub reject_box_full: Option<bool>,
    pub cleaning_due: Option<bool>,
    /// Handshakes completed since the agent started.
    pub connections: u64,
}

/// The printer states, in the order metrics list them.
pub const PRINTER_STATES: [&str; 3] = ["ready", "not_ready", "offline"];

/// What the store says at one scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreNow {
    /// READY cards.
    pub queued: u64,
    /// IN_PROGRESS cards.
    pub in_progress: u64,
    pub outbox: Vec<SinkDepth>,
    pub used_bytes: u64,
    pub limit_bytes: u64,
    pub stock: Vec<FeederStock>,
}

impl Published {
    /// Reads the published state and the store (off the async threads).
    pub async fn read(engine: &Engine) -> Published {
        let store = engine.store();
        let stored = match tokio::task::spawn_blocking(move || StoreNow::read(&store)).await {
            Ok(Ok(s)) => Some(s),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "metrics: the store cannot be read; its figures are left out of this scrape");
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics: the store read failed; its figures are left out of this scrape");
                None
            }
        };
        // Before the view is read: no borrow of a watch is held across it.
        let forecast = Some(engine.forecast().await);
        let view = engine.printer().view().borrow().clone();
        Published {
            activity: engine.state().borrow().activity.clone(),
            printer: PrinterNow::of(
                &view,
                engine.printer().profile(),
                engine.printer().connections(),
            ),
            links: engine.upstream().snapshot(),
            store: stored,
            forecast,
        }
    }

    /// Cards whose outcome the agent is not sure of. The runner settles
    /// every card in doubt before it produces another (recovery first, and
    /// nothing starts while a card is in doubt), so while it produces,
    /// idles or waits for the printer, no card is in doubt; the IN_PROGRESS
    /// cards found while starting, checking the store or stopping are.
    pub fn cards_in_doubt(&self) -> Option<u64> {
        let n = self.store.as_ref()?.in_progress;
        Some(match &self.activity {
            Activity::CardInDoubt { .. } => n.max(1),
            Activity::Starting | Activity::CheckingStore { .. } | Activity::Stopping => n,
            Activity::Idle
            | Activity::Producing { .. }
            | Activity::WaitingForPrinter { .. }
            | Activity::Maintenance { .. } => 0,
        })
    }

    /// Whether a card in doubt waits for a technician's word.
    pub fn technician_needed(&self) -> bool {
        matches!(
            self.activity,
            Activity::CardInDoubt {
                technician: true,
                ..
            }
        )
    }
}

impl StoreNow {
    fn read(store: &Store) -> Result<StoreNow, StoreError> {
        let (used_bytes, limit_bytes) = store.usage()?;
        Ok(StoreNow {
            // Both bounded: the queue by `queue_limit`, production to one
            // card (more only after a restart, until they are settled).
            queued: store.queued()?.len() as u64,
            in_progress: store.in_progress()?.len() as u64,
            outbox: store.outbox_depths()?,
            used_bytes,
            limit_bytes,
            stock: store.inventory()?,
        })
    }
}

impl PrinterNow {
    /// The printer as `view` shows it. While the link is down, the last
    /// reading is stale: only the link's own fault is reported then.
    pub fn of(view: &PrinterView, profile: &Profile, connections: u64) -> PrinterNow {
        let mut reasons: BTreeMap<String, bool> = reason_vocabulary(profile)
            .into_iter()
            .map(|r| (r, false))
            .collect();
        let mut faults: BTreeMap<ErrorCode, bool> =
            ErrorCode::printer_codes().map(|c| (c, false)).collect();
        let state = match &view.link.state {
            LinkState::Connected { .. } => {
                if let Some(r) = &view.reading {
                    for f in &r.flags {
                        reasons.insert(f.reason.clone(), true);
                    }
                    for f in &r.faults {
                        faults.insert(f.code, true);
                    }
                }
                // What stops production without a status flag (cleaning
                // required or a full reject box read by `Rlr` on firmware
                // without status words) counts too.
                if let Some(f) = view.not_ready() {
                    reasons.insert(f.reason, true);
                    faults.insert(f.code, true);
                    "not_ready"
                } else {
                    "ready"
                }
            }
            LinkState::Idle | LinkState::Reconnecting { .. } => {
                if let Some(f) = view.not_ready() {
                    reasons.insert(f.reason, true);
                    faults.insert(f.code, true);
                }
                "offline"
            }
        };
        let reading = view.reading.as_ref();
        PrinterNow {
            state,
            reasons,
            faults,
            reading_age: view.age(),
            feeders: view.feeder_sensors(),
            ribbon_cards_left: reading.and_then(|r| r.ribbon_cards_left),
            reject_box_full: reading.and_then(|r| r.reject_box_full),
            cleaning_due: reading.and_then(|r| r.cleaning_due),
            connections,
        }
    }
}

/// Every reason word the printer can report: the profile's status flags,
/// replies and NACKs, and the link's own (`offline`, `timed-out`). Bounded
/// by the profile, which the configuration names.
fn reason_vocabulary(profile: &Profile) -> Vec<String> {
    let flags = profile.flags.iter().map(|f| f.reason.clone());
    let replies = profile.replies.iter().chain(&profile.nacks).flat_map(|r| {
        std::iter::once(r.reason.clone()).chain(r.refine.iter().map(|x| x.reason.clone()))
    });
    let link = ["offline", "timed-out"].into_iter().map(String::from);
    flags.chain(replies).chain(link).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(activity: Activity, in_progress: u64) -> Published {
        Published {
            activity,
            printer: PrinterNow {
                state: "ready",
                reasons: BTreeMap::new(),
                faults: BTreeMap::new(),
                reading_age: None,
                feeders: None,
                ribbon_cards_left: None,
                reject_box_full: None,
                cleaning_due: None,
                connections: 1,
            },
            links: Upstream::new(),
            store: Some(StoreNow {
                queued: 0,
                in_progress,
                outbox: vec![],
                used_bytes: 0,
                limit_bytes: 0,
                stock: vec![],
            }),
            forecast: None,
        }
    }

    fn doubt(technician: bool) -> Activity {
        Activity::CardInDoubt {
            card: "c".into(),
            step: Some("magnetic".into()),
            code: ErrorCode::PRT_TIMEOUT,
            reason: "no answer".into(),
            technician,
        }
    }

    #[test]
    fn the_card_in_production_is_not_in_doubt_and_those_a_restart_caught_are() {
        let producing = Activity::Producing {
            card: "c".into(),
            step: None,
        };
        assert_eq!(at(producing, 1).cards_in_doubt(), Some(0));
        assert_eq!(at(Activity::Idle, 0).cards_in_doubt(), Some(0));
        // A restart caught three cards in production: all in doubt until settled.
        assert_eq!(at(Activity::Starting, 3).cards_in_doubt(), Some(3));
        assert_eq!(at(doubt(false), 2).cards_in_doubt(), Some(2));
        // Read as the card was being settled: the engine still says so.
        assert_eq!(at(doubt(false), 0).cards_in_doubt(), Some(1));
        assert_eq!(at(Activity::Stopping, 1).cards_in_doubt(), Some(1));
        let mut unread = at(Activity::Starting, 3);
        unread.store = None;
        assert_eq!(unread.cards_in_doubt(), None, "no figure without the store");
    }

    #[test]
    fn only_a_refused_reject_needs_a_technician() {
        assert!(at(doubt(true), 1).technician_needed());
        assert!(!at(doubt(false), 1).technician_needed());
        assert!(!at(Activity::Idle, 0).technician_needed());
    }

    #[test]
    fn the_reason_vocabulary_is_the_profiles_and_the_links() {
        let profile = Profile::load("evolis-km500b", None).unwrap();
        let words = reason_vocabulary(&profile);
        for w in ["cover-open", "media-empty", "offline", "timed-out"] {
            assert!(words.iter().any(|x| x == w), "{w} in {words:?}");
        }
    }
}
