//! After a restart, a job found IN_PROGRESS is in doubt. This decides what
//! became of its card from the journal and from where the printer says the
//! card is. Pure, so every case is tested without a printer.
//!
//! The rule: a physical step is never repeated, and the card is never
//! produced again. A card still inside or waiting in the bezel is rejected.
//! A card that is nowhere in the printer after the agent presented it, with
//! no retraction journaled, left through the bezel: the customer has it, so
//! it is PRODUCED. Anything else ends in PRODUCTION_ERROR naming the step.
//!
//! Only the printer that holds the card can say where it is: each journal
//! line names the printer it was sent to (its serial number), and a card
//! whose printer is no longer the one answering (replaced, or another one
//! on the port) is not located at all but left to a technician
//! ([`printer_replaced`]).

use super::plan::Step;
use crate::printer::steps::CardWhere;

/// A journal line, as recovery needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub step: Step,
    /// `None` for an intent; the outcome's success otherwise.
    pub outcome: Option<bool>,
    /// What the line says besides: for a reject, where the card came from and
    /// the reject counter before it ([`reject_note`]), or that it was taken.
    pub detail: Option<String>,
    /// The serial number of the printer the step was sent to (`None` in a
    /// journal older than the store's schema v4).
    pub printer: Option<String>,
}

/// The card, as a technician's description names it: its token, and its
/// PAN masked (never more).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CardName<'a> {
    pub token: &'a str,
    pub pan_masked: &'a str,
}

/// The printer that holds the card: the one its first journaled step was
/// sent to. `None` when no step names a printer (nothing physical was
/// journaled, or a journal older than schema v4).
pub fn holder(journal: &[Entry]) -> Option<&str> {
    journal.iter().find_map(|e| e.printer.as_deref())
}

/// A card that only a technician can settle because the printer answering
/// now (`answering`, its serial number) is not the one that holds it: asking
/// the new printer where the card is would be asking the wrong one (a card
/// in the old printer's bezel is not in the new one's: it was not taken).
/// Also a journal whose steps went to two printers: neither can say where
/// the card is. `None`: the printer answering is the card's, or no step
/// names a printer, and [`decide`] applies.
pub fn printer_replaced(
    journal: &[Entry],
    answering: &str,
    cause: &str,
    card: &CardName<'_>,
) -> Option<Recovery> {
    let held_by = holder(journal)?;
    let other = journal
        .iter()
        .filter_map(|e| e.printer.as_deref())
        .find(|p| *p != held_by);
    if held_by == answering && other.is_none() {
        return None;
    }
    let at = match interrupted_step(journal) {
        Some(s) => format!("during step {}", s.name()),
        None => match journal.last() {
            Some(e) => format!("after step {}", e.step.name()),
            None => "before the first physical step".into(),
        },
    };
    let card = format!("card {} (PAN {})", card.token, card.pan_masked);
    let description = match other {
        Some(second) => format!(
            "{cause} {at}; the steps of {card} went to two printers (serial {held_by}, then serial {second}) and printer {answering} answers now: the card cannot be located"
        ),
        None => format!(
            "{cause} {at}; {card} was in production on printer {held_by}, which was replaced by printer {answering}: the card cannot be located (printer {answering} never had it)"
        ),
    };
    Some(Recovery::Technician { description })
}

/// The outcome detail of a reject that found the card gone from the bezel:
/// the customer took it first.
pub const TAKEN: &str = "taken by the customer before the reject";

/// The intent detail of a reject: where the card was, and the printer's
/// reject counter just before (when the firmware counts rejects).
pub fn reject_note(from_bezel: bool, rejected_before: Option<u64>) -> String {
    format!(
        "from={} rejected={}",
        if from_bezel { "bezel" } else { "inside" },
        rejected_before.map_or("?".to_string(), |n| n.to_string())
    )
}

/// (from the bezel, counter before) read back from a reject's intent detail.
fn parse_reject_note(d: &str) -> Option<(bool, Option<u64>)> {
    let mut from = None;
    let mut before = None;
    for part in d.split_whitespace() {
        match part.split_once('=') {
            Some(("from", v)) => from = Some(v == "bezel"),
            Some(("rejected", v)) => before = v.parse().ok(),
            _ => {}
        }
    }
    from.map(|f| (f, before))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovery {
    /// The customer has the card.
    Produced,
    /// The card is still in the printer: retract or reject it, then fail the job.
    RejectThenFail { description: String },
    /// Nothing to move: fail the job.
    Fail { description: String },
    /// The printer cannot say where the card is: ask again later.
    AskAgain,
    /// Only a person can tell what became of the card.
    Technician { description: String },
}

/// The step a card was first interrupted in: the earliest intent with no
/// outcome (a card interrupted again during its recovery reject keeps the
/// step it was first interrupted in).
pub fn interrupted_step(journal: &[Entry]) -> Option<Step> {
    let mut open: Vec<Step> = Vec::new();
    for e in journal {
        match e.outcome {
            None => open.push(e.step),
            Some(_) => {
                if let Some(i) = open.iter().rposition(|s| *s == e.step) {
                    open.remove(i);
                }
            }
        }
    }
    open.first().copied()
}

/// `cause` says what interrupted the card ("the agent restarted", "the
/// printer link failed (PRT_TIMEOUT ...)"); descriptions state only what
/// happened.
///
/// `rejected_now` is the printer's reject counter now, where it has one: a
/// reject that began with the card in the bezel and whose card is gone went
/// to the box if the counter moved, and to the customer if it did not.
pub fn decide(
    journal: &[Entry],
    location: CardWhere,
    cause: &str,
    rejected_now: Option<u64>,
) -> Recovery {
    let last_intent = journal
        .iter()
        .rev()
        .find(|e| e.outcome.is_none())
        .map(|e| e.step);
    let completed = |step: Step| {
        journal
            .iter()
            .any(|e| e.step == step && e.outcome == Some(true))
    };
    let interrupted = match (interrupted_step(journal), journal.last()) {
        (Some(s), _) => format!("{cause} during step {}", s.name()),
        (None, Some(e)) => format!("{cause} after step {}", e.step.name()),
        (None, None) => format!("{cause} before the first physical step"),
    };
    if location == CardWhere::Unknown {
        return Recovery::AskAgain;
    }
    let failed = |step: Step| {
        journal
            .iter()
            .any(|e| e.step == step && e.outcome == Some(false))
    };
    // Gone after presentation means taken, unless presenting failed or the
    // wait ended without the customer (then the card went somewhere else).
    let reject = reject_from(journal);
    let presented = matches!(last_intent, Some(Step::Present) | Some(Step::Taken))
        && !failed(Step::Present)
        && !failed(Step::Taken);
    match location {
        CardWhere::Inside | CardWhere::Presented => Recovery::RejectThenFail {
            // What became of it is said once the reject is confirmed.
            description: format!("{interrupted}; the card was still in the printer"),
        },
        CardWhere::None if presented && !journal.iter().any(|e| e.step == Step::Reject) => Recovery::Produced,
        CardWhere::None
            if journal.iter().any(|e| {
                e.step == Step::Reject && e.outcome == Some(true) && e.detail.as_deref() == Some(TAKEN)
            }) =>
        {
            Recovery::Produced
        }
        CardWhere::None if reject.is_some() => {
            let (from_bezel, before) = reject.unwrap_or((false, None));
            match (before, rejected_now) {
                (Some(b), Some(n)) if n > b => {
                    Recovery::Fail { description: format!("{interrupted}; the card is in the reject box") }
                }
                (Some(_), Some(_)) if from_bezel => Recovery::Produced,
                _ if !from_bezel => {
                    Recovery::Fail { description: format!("{interrupted}; the card is in the reject box") }
                }
                _ => Recovery::Technician {
                    description: format!("{interrupted}; the card left the bezel during its reject and the printer cannot tell whether it reached the reject box or the customer took it"),
                },
            }
        }
        CardWhere::None if last_intent == Some(Step::Reject) || completed(Step::Reject) => {
            Recovery::Fail { description: format!("{interrupted}; the card is in the reject box") }
        }
        CardWhere::None if last_intent.is_none() || (last_intent == Some(Step::Insert) && !completed(Step::Insert)) => {
            Recovery::Fail { description: format!("{interrupted}; no card is inside: none was taken from the feeder; it is not started again") }
        }
        CardWhere::None => Recovery::Fail {
            description: format!("{interrupted}; the card is no longer in the printer and was not seen taken (removed by hand?); it is not produced again"),
        },
        CardWhere::Unknown => unreachable!("handled above"),
    }
}

/// Where the last journaled reject began, from its intent's note.
fn reject_from(journal: &[Entry]) -> Option<(bool, Option<u64>)> {
    journal
        .iter()
        .rev()
        .find(|e| e.step == Step::Reject && e.outcome.is_none())
        .and_then(|e| e.detail.as_deref())
        .and_then(parse_reject_note)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intent(step: Step) -> Entry {
        Entry {
            step,
            outcome: None,
            detail: None,
            printer: None,
        }
    }
    fn done(step: Step) -> Entry {
        Entry {
            step,
            outcome: Some(true),
            detail: None,
            printer: None,
        }
    }
    fn on(printer: &str, e: Entry) -> Entry {
        Entry {
            printer: Some(printer.into()),
            ..e
        }
    }
    const CARD: CardName<'static> = CardName {
        token: "c1",
        pan_masked: "400000******7899",
    };

    #[test]
    fn a_card_inside_is_rejected_and_never_produced_again() {
        let j = [
            intent(Step::Insert),
            done(Step::Insert),
            intent(Step::Magnetic),
        ];
        let r = decide(&j, CardWhere::Inside, "the agent restarted", None);
        assert!(
            matches!(&r, Recovery::RejectThenFail { description } if description.contains("magnetic")),
            "{r:?}"
        );
    }

    #[test]
    fn a_card_gone_after_presentation_was_taken() {
        for last in [intent(Step::Present), intent(Step::Taken)] {
            let j = [done(Step::Verify), last];
            assert_eq!(
                decide(&j, CardWhere::None, "the agent restarted", None),
                Recovery::Produced
            );
        }
    }

    #[test]
    fn a_failed_presentation_or_wait_is_never_taken_for_produced() {
        let failed = |step| Entry {
            step,
            outcome: Some(false),
            detail: None,
            printer: None,
        };
        let j = [intent(Step::Present), failed(Step::Present)];
        assert!(matches!(
            decide(&j, CardWhere::None, "the agent restarted", None),
            Recovery::Fail { .. }
        ));
        let j = [
            done(Step::Present),
            intent(Step::Taken),
            failed(Step::Taken),
        ];
        assert!(matches!(
            decide(&j, CardWhere::None, "the agent restarted", None),
            Recovery::Fail { .. }
        ));
    }

    #[test]
    fn a_card_still_in_the_bezel_is_retracted() {
        let j = [done(Step::Present), intent(Step::Taken)];
        assert!(matches!(
            decide(&j, CardWhere::Presented, "the agent restarted", None),
            Recovery::RejectThenFail { .. }
        ));
    }

    #[test]
    fn a_card_being_rejected_is_not_taken_for_produced() {
        let j = [
            done(Step::Present),
            intent(Step::Taken),
            intent(Step::Reject),
        ];
        assert!(
            matches!(decide(&j, CardWhere::None, "the agent restarted", None), Recovery::Fail { description } if description.contains("reject box"))
        );
    }

    #[test]
    fn nothing_started_and_nothing_inside_fails_without_moving() {
        assert!(matches!(
            decide(&[], CardWhere::None, "the agent restarted", None),
            Recovery::Fail { .. }
        ));
        let j = [
            intent(Step::Insert),
            done(Step::Insert),
            intent(Step::Print),
        ];
        assert!(
            matches!(decide(&j, CardWhere::None, "the agent restarted", None), Recovery::Fail { description } if description.contains("print"))
        );
    }

    #[test]
    fn an_insert_that_did_not_happen_is_said_so() {
        let r = decide(
            &[intent(Step::Insert)],
            CardWhere::None,
            "the agent restarted",
            None,
        );
        assert!(
            matches!(&r, Recovery::Fail { description } if description.contains("none was taken")),
            "{r:?}"
        );
    }

    #[test]
    fn an_unreachable_printer_is_asked_again() {
        assert_eq!(
            decide(
                &[intent(Step::Insert)],
                CardWhere::Unknown,
                "the agent restarted",
                None
            ),
            Recovery::AskAgain
        );
    }

    #[test]
    fn a_card_interrupted_twice_keeps_its_first_step() {
        let j = [
            done(Step::Insert),
            intent(Step::Magnetic),
            intent(Step::Reject),
        ];
        assert_eq!(interrupted_step(&j), Some(Step::Magnetic));
        let r = decide(&j, CardWhere::Inside, "the agent restarted", None);
        assert!(
            matches!(&r, Recovery::RejectThenFail { description } if description.contains("during step magnetic")),
            "{r:?}"
        );
    }

    #[test]
    fn a_reject_from_the_bezel_is_settled_by_the_counter() {
        let from_bezel = Entry {
            step: Step::Reject,
            outcome: None,
            detail: Some(reject_note(true, Some(4))),
            printer: None,
        };
        let j = [done(Step::Present), intent(Step::Taken), from_bezel.clone()];
        let cause = "the agent restarted";
        assert!(matches!(
            decide(&j, CardWhere::None, cause, Some(5)),
            Recovery::Fail { .. }
        ));
        assert_eq!(
            decide(&j, CardWhere::None, cause, Some(4)),
            Recovery::Produced
        );
        assert!(matches!(
            decide(&j, CardWhere::None, cause, None),
            Recovery::Technician { .. }
        ));
        let from_inside = Entry {
            detail: Some(reject_note(false, None)),
            ..from_bezel
        };
        let j = [done(Step::Insert), intent(Step::Magnetic), from_inside];
        assert!(matches!(
            decide(&j, CardWhere::None, cause, None),
            Recovery::Fail { description } if description.contains("reject box")
        ));
    }

    #[test]
    fn a_card_taken_before_its_reject_stays_produced() {
        let j = [
            done(Step::Present),
            Entry {
                step: Step::Taken,
                outcome: Some(false),
                detail: None,
                printer: None,
            },
            intent(Step::Reject),
            Entry {
                step: Step::Reject,
                outcome: Some(true),
                detail: Some(TAKEN.into()),
                printer: None,
            },
        ];
        assert_eq!(
            decide(&j, CardWhere::None, "the agent restarted", None),
            Recovery::Produced
        );
    }

    #[test]
    fn a_card_in_the_old_printers_bezel_is_never_settled_by_the_new_one() {
        // Presented by printer A, waiting in its bezel; printer B answers.
        let j = [
            on("A", done(Step::Verify)),
            on("A", intent(Step::Present)),
            on("A", done(Step::Present)),
            on("A", intent(Step::Taken)),
        ];
        let r = printer_replaced(&j, "B", "the printer link failed", &CARD);
        let Some(Recovery::Technician { description }) = &r else {
            panic!("{r:?}")
        };
        for said in [
            "printer A",
            "printer B",
            "c1",
            "400000******7899",
            "during step take",
        ] {
            assert!(description.contains(said), "{said:?} in {description}");
        }
    }

    #[test]
    fn a_card_mid_insert_on_a_replaced_printer_is_not_said_never_taken() {
        let j = [on("A", intent(Step::Insert))];
        let r = printer_replaced(&j, "B", "the agent restarted", &CARD);
        assert!(
            matches!(&r, Some(Recovery::Technician { description })
                if description.contains("during step insert") && !description.contains("none was taken")),
            "{r:?}"
        );
    }

    #[test]
    fn the_printer_that_holds_the_card_decides_as_before() {
        let j = [on("A", intent(Step::Insert)), on("A", done(Step::Insert))];
        assert_eq!(printer_replaced(&j, "A", "x", &CARD), None);
        // Nothing journaled, or a journal older than the printer column:
        // nothing names a printer, the location decides.
        assert_eq!(printer_replaced(&[], "B", "x", &CARD), None);
        assert_eq!(
            printer_replaced(&[intent(Step::Insert)], "B", "x", &CARD),
            None
        );
    }

    #[test]
    fn steps_sent_to_two_printers_go_to_a_technician_whoever_answers() {
        let j = [
            on("A", intent(Step::Insert)),
            on("A", done(Step::Insert)),
            on("B", intent(Step::Magnetic)),
        ];
        for answering in ["A", "B", "C"] {
            let r = printer_replaced(&j, answering, "x", &CARD);
            assert!(
                matches!(&r, Some(Recovery::Technician { description })
                    if description.contains("serial A") && description.contains("serial B")),
                "{answering}: {r:?}"
            );
        }
    }

    #[test]
    fn the_holder_is_the_printer_of_the_first_step() {
        let j = [
            intent(Step::Insert),
            on("A", done(Step::Insert)),
            on("A", intent(Step::Print)),
        ];
        assert_eq!(holder(&j), Some("A"));
        assert_eq!(holder(&[intent(Step::Insert)]), None);
    }
}
