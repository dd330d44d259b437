//! The steps of one card, in order: pure, from what the card needs.

use serde::Serialize;

/// A step of production. Each physical step is journaled (intent before,
/// outcome after) under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Insert,
    Chip,
    Magnetic,
    Print,
    Emboss,
    /// Status check before the card leaves: still inside, no fault.
    Verify,
    Present,
    /// Waiting for the customer (and the kiosk's final validation).
    Taken,
    /// Into the reject box, after a failure.
    Reject,
}

impl Step {
    pub const ALL: [Step; 9] = [
        Step::Insert,
        Step::Chip,
        Step::Magnetic,
        Step::Print,
        Step::Emboss,
        Step::Verify,
        Step::Present,
        Step::Taken,
        Step::Reject,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Step::Insert => "insert",
            Step::Chip => "chip",
            Step::Magnetic => "magnetic",
            Step::Print => "print",
            Step::Emboss => "emboss",
            Step::Verify => "verify",
            Step::Present => "present",
            Step::Taken => "taken",
            Step::Reject => "reject",
        }
    }

    pub fn from_name(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// What a card carries, as far as planning goes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Needs {
    pub chip: bool,
    pub magnetic: bool,
    pub print: bool,
    pub emboss: bool,
}

/// The steps for a card.
pub fn plan(n: Needs) -> Vec<Step> {
    let mut steps = vec![Step::Insert];
    for (needed, step) in [
        (n.chip, Step::Chip),
        (n.magnetic, Step::Magnetic),
        (n.print, Step::Print),
        (n.emboss, Step::Emboss),
    ] {
        if needed {
            steps.push(step);
        }
    }
    steps.extend([Step::Verify, Step::Present, Step::Taken]);
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_only_what_the_card_needs() {
        let all = plan(Needs {
            chip: true,
            magnetic: true,
            print: true,
            emboss: true,
        });
        assert_eq!(
            all.iter().map(|s| s.name()).collect::<Vec<_>>(),
            ["insert", "chip", "magnetic", "print", "emboss", "verify", "present", "taken"]
        );
        let bare = plan(Needs::default());
        assert_eq!(
            bare,
            [Step::Insert, Step::Verify, Step::Present, Step::Taken]
        );
        for s in Step::ALL {
            assert_eq!(Step::from_name(s.name()), Some(s));
        }
    }
}
