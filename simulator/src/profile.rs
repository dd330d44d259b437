//! The part of a hardware profile the simulator reads: `[model]`,
//! `[capabilities]`, `[panel]`, two `[link]` keys, `[commands]` (what the
//! firmware answers beyond the guide; the agent reads it with the same
//! parser), and `extends`.
//!
//! Profiles live in `hardware/`. The shipped ones are embedded so that the
//! simulator runs from any directory; a profile given by path may extend
//! another file in its own directory or one of the embedded profiles.

use dialect::commands::Commands;
use dialect::panel::Geometry;
use dialect::profiles;
use std::path::Path;
use toml::{Table, Value};

/// Ids of the embedded profiles.
pub fn embedded_ids() -> Vec<&'static str> {
    profiles::embedded_ids().collect()
}

/// What the simulated printer is, as its profile describes it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Profile {
    pub id: String,
    pub name: String,
    /// What `Rtp` answers.
    pub model_reply: String,
    pub feeders: u8,
    pub magnetic: bool,
    pub smart_station: bool,
    pub contactless: bool,
    pub emboss: bool,
    pub bezel: bool,
    pub reject_box: bool,
    pub lock: bool,
    pub ribbons: Vec<String>,
    pub emboss_lines: u8,
    pub emboss_line_chars: Vec<usize>,
    #[serde(skip)]
    pub geometry: Geometry,
    /// The `Pem` value that adds ACK/NACK on top of the current mode.
    pub ack_nack_mode: u32,
    /// Commands outside the guide the firmware answers; the others it
    /// refuses as a real firmware would (`ERROR CDE`).
    #[serde(skip)]
    pub commands: Commands,
}

pub use dialect::profiles::ProfileError;

impl Profile {
    /// An embedded profile by id.
    pub fn embedded(id: &str) -> Result<Profile, ProfileError> {
        let r = profiles::resolve(id, None)?;
        Profile::from_table(&r.source, &r.table)
    }

    /// A profile file; `extends` looks in the file's directory first, then
    /// among the embedded profiles.
    pub fn from_path(path: &Path) -> Result<Profile, ProfileError> {
        let r = profiles::resolve(&path.display().to_string(), None)?;
        Profile::from_table(&r.source, &r.table)
    }

    /// A profile from its text (`extends` resolves among the embedded profiles).
    pub fn from_toml_str(name: &str, text: &str) -> Result<Profile, ProfileError> {
        let r = profiles::resolve_text(name, text, None)?;
        Profile::from_table(name, &r.table)
    }

    fn from_table(name: &str, t: &Table) -> Result<Profile, ProfileError> {
        let bad = |what: String| ProfileError::Invalid {
            source_name: name.to_string(),
            message: what,
        };
        let model = t
            .get("model")
            .and_then(Value::as_table)
            .ok_or_else(|| bad("no [model] table".into()))?;
        let caps = t
            .get("capabilities")
            .and_then(Value::as_table)
            .cloned()
            .unwrap_or_default();
        let s = |tab: &Table, k: &str| tab.get(k).and_then(Value::as_str).map(str::to_string);
        let b = |k: &str| caps.get(k).and_then(Value::as_bool).unwrap_or(false);
        let id = s(model, "id").ok_or_else(|| bad("[model] has no id".into()))?;
        let model_reply =
            s(model, "model_reply").ok_or_else(|| bad("[model] has no model_reply".into()))?;
        let feeders = caps.get("feeders").and_then(Value::as_integer).unwrap_or(1);
        if !(1..=4).contains(&feeders) {
            return Err(bad(format!(
                "capabilities.feeders is {feeders}, expected 1 to 4"
            )));
        }
        let ribbons = match caps.get("ribbons") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_lowercase)
                .collect(),
            _ => vec!["ymcko".to_string()],
        };
        let emboss = b("emboss");
        let emboss_lines = caps
            .get("emboss_lines")
            .and_then(Value::as_integer)
            .unwrap_or(if emboss { 3 } else { 0 });
        if !(0..=8).contains(&emboss_lines) {
            return Err(bad(format!(
                "capabilities.emboss_lines is {emboss_lines}, expected 0 to 8"
            )));
        }
        let mut emboss_line_chars: Vec<usize> = match caps.get("emboss_line_chars") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_integer)
                .map(|n| n.clamp(0, 64) as usize)
                .collect(),
            _ => Vec::new(),
        };
        // A line without a stated width takes the usual 27 characters.
        emboss_line_chars.resize(emboss_lines as usize, 27);
        let panel = t
            .get("panel")
            .and_then(Value::as_table)
            .cloned()
            .unwrap_or_default();
        let dim = |k: &str, d: usize| -> Result<usize, ProfileError> {
            match panel.get(k).and_then(Value::as_integer) {
                None => Ok(d),
                Some(n) if (8..=4096).contains(&n) => Ok(n as usize),
                Some(n) => Err(bad(format!("panel.{k} is {n}, expected 8 to 4096"))),
            }
        };
        let geometry = Geometry {
            width: dim("width", 648)?,
            height: dim("height", 1016)?,
        };
        let link = t
            .get("link")
            .and_then(Value::as_table)
            .cloned()
            .unwrap_or_default();
        let ack_nack_mode = link
            .get("ack_nack_mode")
            .and_then(Value::as_integer)
            .unwrap_or(4)
            .clamp(0, u32::MAX as i64) as u32;
        let commands = Commands::from_profile(t).map_err(bad)?;
        Ok(Profile {
            name: s(model, "name").unwrap_or_else(|| id.clone()),
            id,
            model_reply,
            feeders: feeders as u8,
            magnetic: b("magnetic"),
            smart_station: b("smart_station"),
            contactless: b("contactless"),
            emboss,
            bezel: b("bezel"),
            reject_box: b("reject_box"),
            lock: b("lock"),
            ribbons,
            emboss_lines: emboss_lines as u8,
            emboss_line_chars,
            geometry,
            ack_nack_mode,
            commands,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_profiles_load_and_extend() {
        let km = Profile::embedded("evolis-km500b").unwrap();
        assert_eq!(km.model_reply, "KM500B");
        assert_eq!(km.feeders, 2);
        assert!(km.magnetic && km.smart_station && km.bezel && km.reject_box && !km.emboss);
        assert_eq!(
            km.geometry,
            Geometry {
                width: 648,
                height: 1016
            }
        );
        assert_eq!(km.ack_nack_mode, 4);
        let ie = Profile::embedded("instant-embosser-ie4").unwrap();
        assert_eq!(ie.model_reply, "IE4-EMB");
        assert_eq!(ie.feeders, 4);
        assert!(
            ie.emboss && ie.magnetic,
            "inherits the parent's capabilities"
        );
        assert_eq!(ie.emboss_line_chars, vec![19, 27, 27, 27]);
        assert!(matches!(
            Profile::embedded("nope"),
            Err(ProfileError::Unknown { .. })
        ));
        let old = Profile::embedded("evolis-km500b-older").unwrap();
        assert_eq!(old.model_reply, "KM500B");
        assert!(
            old.bezel && old.reject_box,
            "inherits the parent's capabilities"
        );
        assert!(!old.commands.status_words);
        assert_eq!(
            old.commands.card_position,
            dialect::status::PositionWords::Older
        );
        assert!(km.commands.status_words && km.commands.sensors.len() == 8);
    }

    #[test]
    fn bad_profiles_are_errors() {
        let e = Profile::from_toml_str(
            "x",
            "[model]\nid='x'\nmodel_reply='X'\n[capabilities]\nfeeders=9\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("feeders"), "{e}");
        let e = Profile::from_toml_str(
            "x",
            "[model]\nid='x'\nmodel_reply='X'\n[commands]\nsensors=['q']\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("commands.sensors"), "{e}");
        assert!(Profile::from_toml_str("x", "not toml [").is_err());
        assert!(Profile::from_toml_str("x", "extends='x-missing'\n").is_err());
    }
}
