//! The `[commands]` table of a printer profile: which commands outside the
//! vendor's programming guide a firmware answers, and which words it answers
//! `Rlr;p` with. The agent sends a command outside the guide only where this
//! says the firmware has it; the simulator refuses one where it says not.
//!
//! ```toml
//! [commands]
//! status_words = true                       # `Rst`, this project's status command
//! sensors = ["o", "f", "n", "b", "p", "m", "c", "r"]   # `Rse` letters answered
//! card_position = "newer"                   # `Rlr;p` words: "newer" or "older"
//! ```
//!
//! A profile without the table (or without a key) gets today's behaviour:
//! status words, all eight sensors, the newer `Rlr;p` words. Errors name the
//! key, so a profile author knows what to fix. One parser serves the agent
//! and the simulator, so both read a profile the same way.

use crate::ops::Sensor;
use crate::status::PositionWords;
use toml::{Table, Value};

/// What a firmware answers beyond the guide's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commands {
    /// The firmware answers `Rst` with status words (this project's choice of
    /// command for them; see `hardware/DIALECT.md`).
    pub status_words: bool,
    /// The `Rse` letters the firmware answers. The guide lists c, m, o, p
    /// and r; f, n and b are outside it.
    pub sensors: Vec<Sensor>,
    /// The words of `Rlr;p`.
    pub card_position: PositionWords,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            status_words: true,
            sensors: Sensor::ALL.to_vec(),
            card_position: PositionWords::Newer,
        }
    }
}

const KEYS: &str = "status_words, sensors, card_position";

impl Commands {
    /// Reads `[commands]` from a resolved profile table (`extends` already
    /// merged). The error names the key at fault.
    pub fn from_profile(profile: &Table) -> Result<Commands, String> {
        let mut c = Commands::default();
        let Some(v) = profile.get("commands") else {
            return Ok(c);
        };
        let Some(t) = v.as_table() else {
            return Err("`commands` must be a table ([commands])".into());
        };
        for (key, value) in t {
            match key.as_str() {
                "status_words" => {
                    c.status_words = value.as_bool().ok_or_else(|| {
                        format!("commands.status_words is {value}, expected true or false")
                    })?;
                }
                "sensors" => c.sensors = sensors(value)?,
                "card_position" => {
                    c.card_position = match value.as_str() {
                        Some("newer") => PositionWords::Newer,
                        Some("older") => PositionWords::Older,
                        _ => {
                            return Err(format!(
                                "commands.card_position is {value}, expected \"newer\" (OK, CARD, SMART CARD, CONTACTLESS CARD) or \"older\" (NO CARD, ERR CARD)"
                            ))
                        }
                    };
                }
                other => {
                    return Err(format!(
                        "commands.{other} is not a known key (known: {KEYS})"
                    ))
                }
            }
        }
        Ok(c)
    }

    /// Whether the firmware answers `Rse` for this sensor.
    pub fn has_sensor(&self, s: Sensor) -> bool {
        self.sensors.contains(&s)
    }
}

fn sensors(value: &Value) -> Result<Vec<Sensor>, String> {
    let all = || {
        Sensor::ALL
            .iter()
            .map(|s| s.letter())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(items) = value.as_array() else {
        return Err(format!(
            "commands.sensors is {value}, expected a list of Rse letters ({})",
            all()
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let s = item.as_str().and_then(Sensor::from_letter).ok_or_else(|| {
            format!(
                "commands.sensors: {item} is not an Rse sensor letter (known: {})",
                all()
            )
        })?;
        if out.contains(&s) {
            return Err(format!(
                "commands.sensors: {:?} is listed twice",
                s.letter()
            ));
        }
        out.push(s);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Commands, String> {
        Commands::from_profile(&text.parse::<Table>().unwrap())
    }

    #[test]
    fn a_profile_without_the_table_keeps_todays_behaviour() {
        assert_eq!(parse("[model]\nid = \"x\"\n").unwrap(), Commands::default());
        let c = Commands::default();
        assert!(c.status_words && c.sensors.len() == 8);
        assert_eq!(c.card_position, PositionWords::Newer);
    }

    #[test]
    fn the_table_is_read_key_by_key() {
        let c = parse(
            "[commands]\nstatus_words = false\nsensors = [\"c\", \"m\", \"o\", \"p\", \"r\"]\ncard_position = \"older\"\n",
        )
        .unwrap();
        assert!(!c.status_words);
        assert!(c.has_sensor(Sensor::Cover) && !c.has_sensor(Sensor::Bezel));
        assert_eq!(c.card_position, PositionWords::Older);
        // A key left out keeps its default.
        let c = parse("[commands]\nstatus_words = false\n").unwrap();
        assert_eq!(c.sensors, Sensor::ALL.to_vec());
    }

    #[test]
    fn errors_name_the_key() {
        for (text, key) in [
            ("commands = 3\n", "`commands`"),
            (
                "[commands]\nstatus_words = \"no\"\n",
                "commands.status_words",
            ),
            ("[commands]\nsensors = \"c\"\n", "commands.sensors"),
            ("[commands]\nsensors = [\"z\"]\n", "commands.sensors"),
            ("[commands]\nsensors = [\"c\", \"c\"]\n", "commands.sensors"),
            (
                "[commands]\ncard_position = \"oldest\"\n",
                "commands.card_position",
            ),
            ("[commands]\nstatus = true\n", "commands.status"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.contains(key), "{text}: {e}");
        }
    }
}
