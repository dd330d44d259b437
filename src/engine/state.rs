//! What the engine is doing, published on one `watch` channel: the local
//! API shows it, readiness on submission and metrics read it; later the
//! systemd watchdog and STATUS= lines read the same channel instead of
//! each asking the engine or the printer.

use crate::codes::ErrorCode;
use serde::Serialize;
use tokio::sync::watch;

/// One fixed vocabulary of states.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Activity {
    /// Opening, recovering cards a restart caught in production.
    Starting,
    /// Nothing to produce.
    Idle,
    /// A card is in production; `step` is the physical step under way.
    Producing { card: String, step: Option<String> },
    /// Cards wait: the printer cannot take one now.
    WaitingForPrinter { code: ErrorCode, reason: String },
    /// A step's (or a reject's) outcome is not certain: the card's place is
    /// being found, and nothing else is produced until it is. With
    /// `technician` set, the agent cannot settle it alone.
    CardInDoubt {
        card: String,
        step: Option<String>,
        code: ErrorCode,
        reason: String,
        technician: bool,
    },
    /// The store could not say whether a write landed: it is being reopened
    /// and read; nothing is accepted meanwhile.
    CheckingStore { reason: String },
    /// A technician's printer operation (cleaning, test card, reset, a raw
    /// command) runs between cards; production waits for it.
    Maintenance { operation: String },
    /// Finishing the card in production, then stopping.
    Stopping,
}

impl Activity {
    /// Every state's name, as [`Activity::name`] and the API spell them:
    /// metrics show one series per state.
    pub const NAMES: [&'static str; 8] = [
        "starting",
        "idle",
        "producing",
        "waiting_for_printer",
        "card_in_doubt",
        "checking_store",
        "maintenance",
        "stopping",
    ];

    /// The state in one word (the API's `state`).
    pub fn name(&self) -> &'static str {
        match self {
            Activity::Starting => "starting",
            Activity::Idle => "idle",
            Activity::Producing { .. } => "producing",
            Activity::WaitingForPrinter { .. } => "waiting_for_printer",
            Activity::CardInDoubt { .. } => "card_in_doubt",
            Activity::CheckingStore { .. } => "checking_store",
            Activity::Maintenance { .. } => "maintenance",
            Activity::Stopping => "stopping",
        }
    }
}

/// The activity and when it began.
#[derive(Debug, Clone, Serialize)]
pub struct EngineState {
    #[serde(flatten)]
    pub activity: Activity,
    /// RFC 3339.
    pub since: String,
    #[serde(skip)]
    pub since_instant: std::time::Instant,
}

impl EngineState {
    pub fn new(activity: Activity) -> EngineState {
        EngineState {
            activity,
            since: crate::time::now_rfc3339(),
            since_instant: std::time::Instant::now(),
        }
    }

    /// Why no new card may be produced now, when the engine itself says so.
    pub fn blocks_production(&self) -> Option<String> {
        match &self.activity {
            Activity::CardInDoubt {
                card,
                code,
                reason,
                technician,
                ..
            } => Some(format!(
                "card {card} is in doubt ({code}: {reason}){}",
                if *technician {
                    "; a technician must check the printer and resolve it"
                } else {
                    "; production resumes once its place is known"
                }
            )),
            Activity::CheckingStore { reason } => {
                Some(format!("the job store is being checked: {reason}"))
            }
            Activity::Stopping => Some("the agent is stopping".into()),
            _ => None,
        }
    }
}

/// Sets the activity, keeping `since` when it does not change.
pub fn set(tx: &watch::Sender<EngineState>, activity: Activity) {
    tx.send_if_modified(|s| {
        if s.activity == activity {
            false
        } else {
            *s = EngineState::new(activity);
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_is_named_as_the_api_spells_it() {
        let all = [
            Activity::Starting,
            Activity::Idle,
            Activity::Producing {
                card: "c".into(),
                step: None,
            },
            Activity::WaitingForPrinter {
                code: ErrorCode::PRT_COVER_OPEN,
                reason: "r".into(),
            },
            Activity::CardInDoubt {
                card: "c".into(),
                step: None,
                code: ErrorCode::PRT_TIMEOUT,
                reason: "r".into(),
                technician: false,
            },
            Activity::CheckingStore { reason: "r".into() },
            Activity::Maintenance {
                operation: "clean".into(),
            },
            Activity::Stopping,
        ];
        let names: Vec<&str> = all.iter().map(Activity::name).collect();
        assert_eq!(names, Activity::NAMES);
        for a in &all {
            let json = serde_json::to_value(a).unwrap();
            assert_eq!(json["state"], a.name(), "{json}");
        }
    }
}
