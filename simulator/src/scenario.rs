//! Scenario files: conditions raised or cleared at a card's step or after a
//! wall-clock delay.
//!
//! ```toml
//! [[at]]
//! card = 3            # when the 3rd card is inserted (1-based)
//! step = "magnetic"   # optional; just before that step of that card (default: insert)
//! raise = "mag-write-fail"
//! [[at]]
//! after_ms = 5000
//! clear = "cover-open"   # or "all"
//! ```
//!
//! Entries are checked whole when the file is read, and an error names the
//! entry, so a typo never surfaces half-way through a test run.

use crate::condition::{check_name, Condition};
use std::path::Path;
use toml::{Table, Value};

/// The card steps a trigger can precede.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    /// `Si` that would insert the card.
    Insert,
    /// `Sis` (or `Sic`).
    Smart,
    /// `Smw`.
    Magnetic,
    /// The card's first `Sp`.
    Print,
    /// `Xee`.
    Emboss,
    /// `Se`.
    Eject,
    /// The customer (or `take`) taking the card from the bezel.
    Take,
}

impl Step {
    pub const NAMES: &'static [&'static str] = &[
        "insert", "smart", "magnetic", "print", "emboss", "eject", "take",
    ];

    pub fn parse(s: &str) -> Option<Step> {
        Some(match s {
            "insert" => Step::Insert,
            "smart" => Step::Smart,
            "magnetic" => Step::Magnetic,
            "print" => Step::Print,
            "emboss" => Step::Emboss,
            "eject" => Step::Eject,
            "take" => Step::Take,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    /// Just before `step` of card number `card` (1-based, in insertion order).
    Card { card: u64, step: Step },
    /// Wall-clock time after the simulator started.
    AfterMs(u64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Raise(Condition),
    /// `None` clears every condition.
    Clear(Option<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// 1-based position in the file, for messages.
    pub index: usize,
    pub trigger: Trigger,
    pub action: Action,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scenario {
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScenarioError {
    #[error("scenario {file}: {msg}")]
    File { file: String, msg: String },
    #[error("scenario {file}: entry {index} ([[at]] number {index}): {msg}")]
    Entry {
        file: String,
        index: usize,
        msg: String,
    },
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError::File {
            file: file.clone(),
            msg: e.to_string(),
        })?;
        Scenario::parse(&file, &text)
    }

    /// Parses scenario text; `file` only names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let ferr = |msg: String| ScenarioError::File {
            file: file.to_string(),
            msg,
        };
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ferr(e.to_string().trim().to_string()))?;
        if let Some(k) = table.keys().find(|k| *k != "at") {
            return Err(ferr(format!(
                "unknown top-level key {k:?} (only [[at]] entries are allowed)"
            )));
        }
        let entries = match table.get("at") {
            None => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(ferr("`at` must be an array of tables ([[at]])".into())),
        };
        let mut out = Vec::new();
        for (i, v) in entries.iter().enumerate() {
            let index = i + 1;
            let e = |msg: String| ScenarioError::Entry {
                file: file.to_string(),
                index,
                msg,
            };
            let Value::Table(t) = v else {
                return Err(e("is not a table".into()));
            };
            out.push(parse_entry(index, t).map_err(e)?);
        }
        Ok(Scenario { entries: out })
    }
}

fn parse_entry(index: usize, t: &Table) -> Result<Entry, String> {
    const KEYS: &[&str] = &["card", "step", "after_ms", "raise", "clear"];
    if let Some(k) = t.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(format!(
            "unknown key {k:?} (expected one of {})",
            KEYS.join(", ")
        ));
    }
    let int = |k: &str| -> Result<Option<u64>, String> {
        match t.get(k) {
            None => Ok(None),
            Some(Value::Integer(n)) if *n >= 0 => Ok(Some(*n as u64)),
            Some(v) => Err(format!("`{k}` must be a whole number, not {v}")),
        }
    };
    let text = |k: &str| -> Result<Option<String>, String> {
        match t.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(format!("`{k}` must be a string, not {v}")),
        }
    };
    let card = int("card")?;
    let after = int("after_ms")?;
    let step = text("step")?;
    let trigger = match (card, after) {
        (Some(_), Some(_)) => return Err("has both `card` and `after_ms`: give one".into()),
        (None, None) => return Err("needs `card` or `after_ms`".into()),
        (Some(0), None) => return Err("`card` counts from 1".into()),
        (Some(card), None) => {
            let step = match step.as_deref() {
                None => Step::Insert,
                Some(s) => Step::parse(s).ok_or_else(|| {
                    format!(
                        "unknown step {s:?} (expected one of {})",
                        Step::NAMES.join(", ")
                    )
                })?,
            };
            Trigger::Card { card, step }
        }
        (None, Some(ms)) => {
            if step.is_some() {
                return Err("`step` only goes with `card`".into());
            }
            Trigger::AfterMs(ms)
        }
    };
    let action = match (text("raise")?, text("clear")?) {
        (Some(_), Some(_)) => return Err("has both `raise` and `clear`: give one".into()),
        (None, None) => return Err("needs `raise` or `clear`".into()),
        (Some(r), None) => Action::Raise(r.parse::<Condition>()?),
        (None, Some(c)) if c == "all" || c.is_empty() => Action::Clear(None),
        (None, Some(c)) => Action::Clear(Some(check_name(&c)?.to_string())),
    };
    Ok(Entry {
        index,
        trigger,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let s = Scenario::parse(
            "t",
            r#"
[[at]]
card = 3
step = "magnetic"
raise = "mag-write-fail"
[[at]]
after_ms = 5000
raise = "cover-open"
[[at]]
after_ms = 8000
clear = "cover-open"
[[at]]
card = 1
raise = "slow:10"
"#,
        )
        .unwrap();
        assert_eq!(s.entries.len(), 4);
        assert_eq!(
            s.entries[0].trigger,
            Trigger::Card {
                card: 3,
                step: Step::Magnetic
            }
        );
        assert_eq!(s.entries[0].action, Action::Raise(Condition::MagWriteFail));
        assert_eq!(
            s.entries[2].action,
            Action::Clear(Some("cover-open".into()))
        );
        assert_eq!(
            s.entries[3].trigger,
            Trigger::Card {
                card: 1,
                step: Step::Insert
            }
        );
    }

    #[test]
    fn errors_name_the_entry() {
        let cases = [
            (
                "[[at]]\ncard=1\nraise='cover-open'\n[[at]]\ncard=2\nraise='cover-opn'\n",
                "entry 2",
                "cover-opn",
            ),
            (
                "[[at]]\ncard=1\nstep='printing'\nraise='paused'\n",
                "entry 1",
                "printing",
            ),
            ("[[at]]\nraise='paused'\n", "entry 1", "card"),
            (
                "[[at]]\ncard=1\nafter_ms=3\nraise='paused'\n",
                "entry 1",
                "both",
            ),
            ("[[at]]\ncard=1\n", "entry 1", "raise"),
            (
                "[[at]]\ncard=1\nraise='paused'\nwhen=3\n",
                "entry 1",
                "when",
            ),
            (
                "[[at]]\ncard=-1\nraise='paused'\n",
                "entry 1",
                "whole number",
            ),
            (
                "[[at]]\nafter_ms=1\nclear='nothing'\n",
                "entry 1",
                "nothing",
            ),
        ];
        for (text, entry, word) in cases {
            let e = Scenario::parse("f.toml", text).unwrap_err().to_string();
            assert!(
                e.contains(entry) && e.contains(word) && e.contains("f.toml"),
                "{e}"
            );
        }
        assert!(Scenario::parse("f", "[[at]\n").is_err());
        assert!(Scenario::parse("f", "x = 1\n")
            .unwrap_err()
            .to_string()
            .contains("\"x\""));
    }
}
