//! Check before you spend: what one card needs from the printer's supplies,
//! against the reading taken just before it would start. A card that fails
//! the check never leaves the feeder: it waits (other card types the printer
//! can serve go first), and its request is answered
//! REQUEST_CREATED_BUT_NOT_STARTED or refused, as `[production] not_ready`
//! says. Pure: tested without a printer.
//!
//! What stops the whole printer (a status flag of error severity, cleaning
//! required, a full reject box on firmware without status words) is
//! [`Snapshot::stopping_fault`], which the published view's `not_ready`
//! uses too, and is checked first; what concerns one card type (its feeder,
//! its ribbon panels) is here.

use crate::codes::{ErrorCode, Fault};
use crate::printer::snapshot::Snapshot;
use crate::printer::Profile;

/// What a card of one type needs before it is taken from the feeder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardNeeds {
    pub card_type: String,
    /// Ribbon panels, upper case (`"YMCK"`); empty when nothing is printed.
    pub panels: String,
    /// The feeder its blank cards come from (1-based), when the inventory
    /// says which.
    pub feeder: Option<u8>,
}

/// Whether a card with these needs can start on a printer in this state.
/// The printer-wide faults come first ([`Snapshot::stopping_fault`]).
pub fn check(needs: &CardNeeds, s: &Snapshot, profile: &Profile) -> Result<(), Fault> {
    if let Some(f) = s.stopping_fault() {
        return Err(f);
    }
    if let Some(feeder) = needs.feeder {
        let known = !s.unavailable.contains_key("feeders");
        if let Some(state) = s.feeders.iter().find(|f| f.feeder == feeder) {
            if known && state.empty {
                return Err(Fault::new(
                    ErrorCode::PRD_FEEDER_EMPTY,
                    "media-empty",
                    format!(
                        "feeder {feeder} (card type {}) is empty: load blank cards of that type",
                        needs.card_type
                    ),
                ));
            }
        }
    }
    if needs.panels.is_empty() {
        return Ok(());
    }
    match &s.ribbon {
        Some(ribbon) => {
            if let Some(have) = profile.ribbon_panels(ribbon) {
                let missing: String = needs
                    .panels
                    .chars()
                    .filter(|p| !have.contains(*p))
                    .collect();
                if !missing.is_empty() {
                    return Err(Fault::new(
                        ErrorCode::PRT_RIBBON,
                        "ribbon-mismatch",
                        format!(
                            "card type {} needs the {} ribbon panels; the loaded {} ribbon carries {have}, not {missing}: load a ribbon with {} panels",
                            needs.card_type,
                            needs.panels,
                            ribbon.trim(),
                            needs.panels
                        ),
                    ));
                }
            }
            // A ribbon type the profile does not describe: the printer
            // itself will say at print time (nothing to foresee here).
        }
        None => {
            if let Some(why) = s.unavailable.get("ribbon") {
                if why.starts_with("PRT_RIBBON") {
                    return Err(Fault::new(
                        ErrorCode::PRT_RIBBON_MISSING,
                        "marker-supply-missing",
                        format!("the printer reports no usable ribbon ({why}): load a ribbon"),
                    ));
                }
            }
        }
    }
    if s.ribbon_cards_left == Some(0) {
        return Err(Fault::new(
            ErrorCode::PRT_RIBBON_ENDED,
            "marker-supply-empty",
            "the ribbon has no panels left for another card: replace it",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::printer::snapshot::FeederState;

    fn profile() -> Profile {
        Profile::load("evolis-km500b", None).unwrap()
    }

    fn reading(ribbon: &str) -> Snapshot {
        let mut s = Snapshot::empty(None, &profile());
        s.ribbon = Some(ribbon.into());
        s.ribbon_cards_left = Some(100);
        s.cleaning_due = Some(false);
        s.reject_box_full = Some(false);
        s.feeders = vec![
            FeederState {
                feeder: 1,
                empty: false,
                near_empty: false,
            },
            FeederState {
                feeder: 2,
                empty: true,
                near_empty: true,
            },
        ];
        s
    }

    fn needs(panels: &str, feeder: u8) -> CardNeeds {
        CardNeeds {
            card_type: "t".into(),
            panels: panels.into(),
            feeder: Some(feeder),
        }
    }

    #[test]
    fn a_ribbon_serves_the_card_types_whose_panels_it_carries() {
        let p = profile();
        assert!(check(&needs("K", 1), &reading("kb"), &p).is_ok());
        assert!(check(&needs("YMCK", 1), &reading("ymcko"), &p).is_ok());
        assert!(check(&needs("YMCKO", 1), &reading("YMCKO"), &p).is_ok());
        let f = check(&needs("YMCK", 1), &reading("kb"), &p).unwrap_err();
        assert_eq!(f.code, ErrorCode::PRT_RIBBON);
        assert_eq!(f.reason, "ribbon-mismatch");
        assert!(
            f.description.contains("kb ribbon carries K, not YMC"),
            "{}",
            f.description
        );
        // Nothing printed: no ribbon needed at all.
        let mut none = reading("kb");
        none.ribbon = None;
        none.unavailable
            .insert("ribbon".into(), "PRT_RIBBON_MISSING no ribbon".into());
        assert!(check(&needs("", 1), &none, &p).is_ok());
        assert_eq!(
            check(&needs("K", 1), &none, &p).unwrap_err().code,
            ErrorCode::PRT_RIBBON_MISSING
        );
    }

    #[test]
    fn the_card_types_own_feeder_decides() {
        let p = profile();
        assert!(check(&needs("K", 1), &reading("ymcko"), &p).is_ok());
        let f = check(&needs("K", 2), &reading("ymcko"), &p).unwrap_err();
        assert_eq!(f.code, ErrorCode::PRD_FEEDER_EMPTY);
        assert!(f.description.contains("feeder 2"), "{}", f.description);
        // Sensors not read: the count and the printer decide, as before.
        let mut unknown = reading("ymcko");
        unknown.unavailable.insert("feeders".into(), "x".into());
        assert!(check(&needs("K", 2), &unknown, &p).is_ok());
    }

    #[test]
    fn a_ribbon_at_its_end_stops_printed_cards_only() {
        let p = profile();
        let mut s = reading("ymcko");
        s.ribbon_cards_left = Some(0);
        assert_eq!(
            check(&needs("K", 1), &s, &p).unwrap_err().code,
            ErrorCode::PRT_RIBBON_ENDED
        );
        assert!(check(&needs("", 1), &s, &p).is_ok());
    }

    #[test]
    fn printer_wide_faults_come_first() {
        let p = profile();
        let mut s = reading("ymcko");
        s.cleaning_due = Some(true);
        let f = check(&needs("K", 1), &s, &p).unwrap_err();
        assert_eq!(
            (f.code, f.reason.as_str()),
            (ErrorCode::PRT_SETUP_ERROR, "cleaning-required")
        );
        let mut s = reading("ymcko");
        s.reject_box_full = Some(true);
        assert_eq!(
            check(&needs("", 1), &s, &p).unwrap_err().code,
            ErrorCode::PRD_REJECT_FULL
        );
    }
}
