//! Printer model profiles: `hardware/*.toml`, one file per model.
//!
//! A profile is data: link defaults, capabilities, panel geometry, time-outs and
//! the tables that turn native reply words, NACK characters and status flags
//! into the standard codes. The shipped profiles are embedded in the binary; a
//! directory of profiles (config `hardware_dir`) adds or overrides models, so a
//! new model is a new file, not new code.

use crate::codes::{ErrorCode, Severity};
use dialect::commands::Commands;
use dialect::panel::Geometry;
use dialect::profiles::{self, ProfileError};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub id: String,
    pub name: String,
    pub model_reply: String,
    #[serde(default = "default_dialect")]
    pub dialect: String,
}

fn default_dialect() -> String {
    "evolis".into()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    Odd,
    Even,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum FlowControl {
    None,
    Software,
    Hardware,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminatorName {
    Cr,
    Nul,
}

impl TerminatorName {
    pub fn to_dialect(self) -> dialect::Terminator {
        match self {
            TerminatorName::Cr => dialect::Terminator::Cr,
            TerminatorName::Nul => dialect::Terminator::Nul,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkDefaults {
    pub baud: u32,
    pub parity: Parity,
    pub stop_bits: u8,
    pub data_bits: u8,
    pub flow_control: FlowControl,
    pub usb_reply_terminator: TerminatorName,
    pub usb_reopen_before_read: bool,
    pub reply_terminator: TerminatorName,
    pub max_reply_bytes: usize,
    pub host_error_mode: u32,
    /// The `Pem` value that adds ACK/NACK on top of the current mode.
    pub ack_nack_mode: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    pub feeders: u8,
    pub magnetic: bool,
    pub smart_station: bool,
    pub contactless: bool,
    pub emboss: bool,
    pub bezel: bool,
    pub reject_box: bool,
    pub lock: bool,
    pub ribbons: Vec<String>,
    /// The firmware counts rejected cards (`Rco;r`, an extension): the agent
    /// then checks every reject against the count.
    #[serde(default)]
    pub reject_counter: bool,
    /// Cards the reject box holds when full: with the reject counter, the
    /// free slots the supplies forecast shows. Unknown without it.
    #[serde(default)]
    pub reject_box_capacity: Option<u32>,
    #[serde(default)]
    pub emboss_lines: u8,
    #[serde(default)]
    pub emboss_line_chars: Vec<usize>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelSize {
    pub width: usize,
    pub height: usize,
}

/// Time-outs in milliseconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub command: u64,
    #[serde(rename = "move")]
    pub movement: u64,
    pub magnetic: u64,
    pub print: u64,
    pub emboss: u64,
    pub maintenance: u64,
    pub download_base: u64,
    pub download_bytes_per_second: u64,
    pub download_margin: f64,
    pub take: u64,
}

impl Timeouts {
    pub fn for_class(&self, class: dialect::ops::TimeoutClass) -> Duration {
        use dialect::ops::TimeoutClass::*;
        let ms = match class {
            Command => self.command,
            Move => self.movement,
            Magnetic => self.magnetic,
            Print => self.print,
            Emboss => self.emboss,
            Maintenance => self.maintenance,
            Download { bytes } => {
                let wire_ms = (bytes as f64 * 1000.0
                    / self.download_bytes_per_second.max(1) as f64)
                    * self.download_margin.max(1.0);
                self.download_base.saturating_add(wire_ms as u64)
            }
        };
        Duration::from_millis(ms)
    }
}

/// What names a fault more precisely than the reply word: a status flag
/// that is set, or, when the status words are not at hand, the command
/// that failed. Exactly one of `flag` and `command` is given.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refine {
    #[serde(default)]
    pub flag: Option<String>,
    /// A mnemonic (`Se`): used only without status words.
    #[serde(default)]
    pub command: Option<String>,
    pub code: ErrorCode,
    pub reason: String,
}

/// A reply word or NACK character and what it means.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplyRule {
    #[serde(alias = "char")]
    pub word: String,
    pub code: ErrorCode,
    pub reason: String,
    #[serde(default)]
    pub refine: Vec<Refine>,
}

/// One bit of the status words.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FlagRule {
    pub word: String,
    pub bit: u8,
    pub name: String,
    #[serde(default)]
    pub code: Option<ErrorCode>,
    pub severity: Severity,
    pub reason: String,
    /// An error that stops the next card but not the one in progress: a
    /// supply its own printing may have used up (the ribbon's last panel,
    /// the cleaning counter's last card). Checked before a card starts,
    /// not before the card in progress is presented.
    #[serde(default)]
    pub between_cards: bool,
}

/// When the printer requires cleaning, as its counters tell (`[cleaning]`):
/// the supplies forecast's cards until cleaning. Without the table that
/// figure is unknown (never guessed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleaningRule {
    /// `Rco;m` answers the cleaning interval, in cards.
    pub interval_counter: bool,
    /// Cleaning is required (printing refused) once this many intervals
    /// of cards have left the printer since the last cleaning.
    pub required_after_intervals: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    // `extends` is resolved (and removed) before this is read.
    model: Model,
    link: LinkDefaults,
    capabilities: Capabilities,
    panel: PanelSize,
    timeouts: Timeouts,
    #[serde(default)]
    reply: Vec<ReplyRule>,
    #[serde(default)]
    nack: Vec<ReplyRule>,
    #[serde(default)]
    flag: Vec<FlagRule>,
    /// The panels each ribbon type carries (`ymcko = "YMCKO"`).
    #[serde(default)]
    ribbon_panels: BTreeMap<String, String>,
    #[serde(default)]
    cleaning: Option<CleaningRule>,
}

/// A loaded, checked profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub model: Model,
    pub link: LinkDefaults,
    pub capabilities: Capabilities,
    pub geometry: Geometry,
    pub timeouts: Timeouts,
    pub replies: Vec<ReplyRule>,
    pub nacks: Vec<ReplyRule>,
    pub flags: Vec<FlagRule>,
    /// Commands outside the guide this firmware answers (`[commands]`).
    pub commands: Commands,
    /// The panels each ribbon type carries, by lower-case type (`ymcko` ->
    /// `YMCKO`): which card types a loaded ribbon serves.
    pub ribbon_panels: BTreeMap<String, String>,
    /// When cleaning falls due, by the counters (`[cleaning]`).
    pub cleaning: Option<CleaningRule>,
    /// Where it came from, for diagnostics.
    pub source: String,
}

impl Profile {
    /// Finds a profile by id (in `dir`, then embedded) or by path (a value with a
    /// `/` or ending in `.toml`), resolves `extends` and checks it.
    pub fn load(name: &str, dir: Option<&Path>) -> Result<Profile, ProfileError> {
        let r = profiles::resolve(name, dir)?;
        Profile::from_table(r.table, r.source)
    }

    /// Parses a profile from text (`extends` resolves among the embedded profiles).
    pub fn from_toml(text: &str, source: &str) -> Result<Profile, ProfileError> {
        let r = profiles::resolve_text(source, text, None)?;
        Profile::from_table(r.table, r.source)
    }

    fn from_table(mut table: toml::Table, source: String) -> Result<Profile, ProfileError> {
        // `[commands]` is read by the parser the simulator shares.
        let commands = Commands::from_profile(&table).map_err(|m| invalid(&source, m))?;
        table.remove("commands");
        let file: ProfileFile = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| invalid(&source, e.to_string()))?;
        Profile::check(file, commands, source)
    }

    fn check(
        file: ProfileFile,
        commands: Commands,
        source: String,
    ) -> Result<Profile, ProfileError> {
        let bad = |m: String| Err(invalid(&source, m));
        let c = &file.capabilities;
        if !(1..=4).contains(&c.feeders) {
            return bad(format!(
                "capabilities.feeders is {}, a printer has 1 to 4",
                c.feeders
            ));
        }
        if c.emboss && (c.emboss_lines == 0 || c.emboss_line_chars.len() != c.emboss_lines as usize)
        {
            return bad(
                "an emboss module needs emboss_lines and one emboss_line_chars entry per line"
                    .into(),
            );
        }
        if file.panel.width == 0
            || file.panel.height == 0
            || file.panel.width > 4096
            || file.panel.height > 4096
        {
            return bad(format!(
                "panel {}x{} is not a plausible size",
                file.panel.width, file.panel.height
            ));
        }
        if file.link.max_reply_bytes < 64 {
            return bad("link.max_reply_bytes must be at least 64".into());
        }
        let mut names = BTreeSet::new();
        let mut bits = BTreeSet::new();
        for f in &file.flag {
            if f.bit > 31 {
                return bad(format!(
                    "flag {}: bit {} is beyond a 32-bit word",
                    f.name, f.bit
                ));
            }
            if f.word.len() != 3 {
                return bad(format!(
                    "flag {}: word {:?} is not a three-letter status word",
                    f.name, f.word
                ));
            }
            if !names.insert(f.name.clone()) {
                return bad(format!("flag {} is defined twice", f.name));
            }
            if !bits.insert((f.word.clone(), f.bit)) {
                return bad(format!(
                    "flag {}: {} bit {} is already taken",
                    f.name, f.word, f.bit
                ));
            }
        }
        for (kind, rules) in [("reply", &file.reply), ("nack", &file.nack)] {
            let mut seen = BTreeSet::new();
            for r in rules {
                if !seen.insert(r.word.clone()) {
                    return bad(format!("{kind} {:?} is defined twice", r.word));
                }
                if kind == "nack" && r.word.len() != 1 {
                    return bad(format!("nack {:?} is not one character", r.word));
                }
                for x in &r.refine {
                    match (&x.flag, &x.command) {
                        (Some(flag), None) if !names.contains(flag) => {
                            return bad(format!(
                                "{kind} {:?} refines by flag {flag:?}, which no [[flag]] defines",
                                r.word
                            ));
                        }
                        (Some(_), None) => {}
                        (None, Some(m))
                            if m.is_empty()
                                || m.len() > 8
                                || !m.bytes().all(|b| b.is_ascii_alphabetic()) =>
                        {
                            return bad(format!(
                                "{kind} {:?} refines by command {m:?}, which is not a mnemonic (1 to 8 letters)",
                                r.word
                            ));
                        }
                        (None, Some(_)) => {}
                        _ => {
                            return bad(format!(
                                "{kind} {:?}: a refine entry gives either `flag` or `command`",
                                r.word
                            ));
                        }
                    }
                }
            }
        }
        let mut ribbon_panels = BTreeMap::new();
        for (ribbon, panels) in &file.ribbon_panels {
            let panels = panels.to_ascii_uppercase();
            if panels.is_empty() || !panels.chars().all(|p| "YMCKO".contains(p)) {
                return bad(format!(
                    "ribbon_panels.{ribbon} is {panels:?}: give the panels the ribbon carries, from Y, M, C, K and O"
                ));
            }
            ribbon_panels.insert(ribbon.to_ascii_lowercase(), panels);
        }
        if !ribbon_panels.is_empty() {
            if let Some(r) = c
                .ribbons
                .iter()
                .find(|r| !ribbon_panels.contains_key(&r.to_ascii_lowercase()))
            {
                return bad(format!(
                    "capabilities.ribbons lists {r:?}, which [ribbon_panels] does not describe"
                ));
            }
        }
        if let Some(rule) = &file.cleaning {
            if rule.required_after_intervals == 0 {
                return bad("cleaning.required_after_intervals must be at least 1".into());
            }
        }
        if c.reject_box_capacity == Some(0) || (c.reject_box_capacity.is_some() && !c.reject_box) {
            return bad(
                "capabilities.reject_box_capacity: give the cards a reject box holds (at least 1), and only with reject_box = true"
                    .into(),
            );
        }
        Ok(Profile {
            model: file.model,
            link: file.link,
            capabilities: file.capabilities,
            geometry: Geometry {
                width: file.panel.width,
                height: file.panel.height,
            },
            timeouts: file.timeouts,
            replies: file.reply,
            nacks: file.nack,
            flags: file.flag,
            commands,
            ribbon_panels,
            cleaning: file.cleaning,
            source,
        })
    }

    pub fn reply_rule(&self, word: &str) -> Option<&ReplyRule> {
        self.replies.iter().find(|r| r.word == word)
    }

    pub fn nack_rule(&self, code: u8) -> Option<&ReplyRule> {
        self.nacks.iter().find(|r| r.word.as_bytes() == [code])
    }

    pub fn flag(&self, name: &str) -> Option<&FlagRule> {
        self.flags.iter().find(|f| f.name == name)
    }

    /// The panels a ribbon type carries, as the printer names the type
    /// (`Rr`), or `None` when the profile does not describe it.
    pub fn ribbon_panels(&self, ribbon: &str) -> Option<&str> {
        self.ribbon_panels
            .get(&ribbon.trim().to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Ids of the embedded profiles.
    pub fn embedded_ids() -> impl Iterator<Item = &'static str> {
        profiles::embedded_ids()
    }
}

fn invalid(source: &str, message: String) -> ProfileError {
    ProfileError::Invalid {
        source_name: source.to_string(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_profiles_load_and_check() {
        for id in Profile::embedded_ids() {
            let p = Profile::load(id, None).unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(p.model.id, id);
        }
    }

    #[test]
    fn the_embosser_extends_the_kiosk_printer() {
        let p = Profile::load("instant-embosser-ie4", None).unwrap();
        assert_eq!(p.capabilities.feeders, 4);
        assert!(p.capabilities.emboss);
        // Inherited rules are there, and the embosser's own.
        assert_eq!(
            p.reply_rule("COVER OPEN").unwrap().code,
            ErrorCode::PRT_COVER_OPEN
        );
        assert_eq!(
            p.reply_rule("ERROR EMBOSS").unwrap().code,
            ErrorCode::PRD_EMBOSSER
        );
        assert_eq!(
            p.flag("emboss_fault").unwrap().code,
            Some(ErrorCode::PRD_EMBOSSER)
        );
        assert_eq!(p.timeouts.emboss, 45_000);
        assert_eq!(p.timeouts.command, 2_000);
    }

    #[test]
    fn ribbons_say_which_panels_they_carry() {
        let p = Profile::load("evolis-km500b", None).unwrap();
        assert_eq!(p.ribbon_panels("YMCKO"), Some("YMCKO"));
        assert_eq!(p.ribbon_panels("kb"), Some("K"));
        assert_eq!(p.ribbon_panels("hologram"), None);
        // The embosser inherits the table.
        let e = Profile::load("instant-embosser-ie4", None).unwrap();
        assert_eq!(e.ribbon_panels("ko"), Some("KO"));
        // Supplies a card's own printing may use up stop the next card only.
        for name in ["ribbon_ended", "cleaning_required"] {
            assert!(p.flag(name).unwrap().between_cards, "{name}");
        }
        assert!(!p.flag("cover_open").unwrap().between_cards);
    }

    #[test]
    fn bad_profiles_get_specific_errors() {
        let base = dialect::profiles::EMBEDDED[0].1;
        let cases = [
            (base.replace("code = \"PRD_FEEDER_EMPTY\"\nreason = \"media-empty\"\n\n[[reply]]\nword = \"CARD JAM\"", "code = \"PRD_NOPE\"\nreason = \"media-empty\"\n\n[[reply]]\nword = \"CARD JAM\""), "PRD_NOPE"),
            (base.replace("feeders = 2", "feeders = 9"), "1 to 4"),
            (base.replace("flag = \"no_ribbon\", code = \"PRT_RIBBON_MISSING\"", "flag = \"no_such\", code = \"PRT_RIBBON_MISSING\""), "no_such"),
            (base.replace("bit = 19", "bit = 40"), "beyond"),
            (base.replace("[panel]", "[panel]\ncolour = true"), "colour"),
            (base.replace("status_words = true", "status_words = 1"), "commands.status_words"),
            (base.replace("card_position = \"newer\"", "card_position = \"new\""), "commands.card_position"),
            (base.replace("sensors = [\"o\",", "sensors = [\"x\","), "commands.sensors"),
            (base.replace("{ command = \"Se\",", "{ command = \"Se;1\","), "Se;1"),
            (base.replace("{ command = \"Se\",", "{ flag = \"card_eject\", command = \"Se\","), "either"),
            (base.replace("kb = \"K\"", "kb = \"KX\""), "ribbon_panels.kb"),
            (base.replace("kb = \"K\"\n", ""), "[ribbon_panels] does not describe"),
        ];
        for (text, needle) in cases {
            let err = Profile::from_toml(&text, "test.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn the_older_firmware_answers_the_guides_commands_only() {
        use dialect::ops::Sensor;
        use dialect::status::PositionWords;
        let km = Profile::load("evolis-km500b", None).unwrap();
        assert!(km.commands.status_words);
        assert_eq!(km.commands.sensors, Sensor::ALL.to_vec());
        assert_eq!(km.commands.card_position, PositionWords::Newer);
        let old = Profile::load("evolis-km500b-older", None).unwrap();
        assert_eq!(old.model.name, "Evolis KM500B (older firmware)");
        assert_eq!(old.model.model_reply, "KM500B");
        assert!(!old.commands.status_words);
        let mut guide = Sensor::GUIDE.to_vec();
        let mut has = old.commands.sensors.clone();
        guide.sort_by_key(|s| s.letter());
        has.sort_by_key(|s| s.letter());
        assert_eq!(has, guide);
        assert_eq!(old.commands.card_position, PositionWords::Older);
        // The rest is inherited: the reply words and their refinements.
        let jam = old.reply_rule("CARD JAM").unwrap();
        assert!(jam
            .refine
            .iter()
            .any(|r| r.command.as_deref() == Some("Se") && r.code == ErrorCode::PRD_HOPPER_JAM));
    }

    #[test]
    fn download_timeouts_scale_with_size() {
        let p = Profile::load("evolis-km500b", None).unwrap();
        let small = p
            .timeouts
            .for_class(dialect::ops::TimeoutClass::Download { bytes: 1_000 });
        let big = p
            .timeouts
            .for_class(dialect::ops::TimeoutClass::Download { bytes: 600_000 });
        assert!(big > small * 10, "{small:?} {big:?}");
    }
}
