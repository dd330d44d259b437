//! Card types: what a kind of card needs from the printer, and where its
//! printed text goes. The daemon's configuration lists them as `[[card_type]]`:
//!
//! ```toml
//! [[card_type]]
//! id = "debit-chip-mag"
//! magnetic = true
//! chip = true
//! colour = true
//!
//! # Optional: the defaults are shown. Card coordinates, landscape, from the
//! # top left of the front: x along the long edge (0..1015), y along the short
//! # edge (0..647); everything in dots of the printer (300 dpi: 1 mm is
//! # 11.8 dots), the text height as `Wt` takes it; font is the printer's
//! # resident font. A card number is usually 3 to 4 mm tall, a name 2.5 to 3.
//! [card_type.layout.slots]
//! pan = { x = 80, y = 370, height = 42, font = 1 }
//! name = { x = 80, y = 490, height = 32, font = 0 }
//! expiry = { x = 400, y = 430, height = 32, font = 0 }
//! [card_type.layout.lines]        # printed lines without a slot, top down
//! x = 80
//! y = 545
//! height = 30
//! font = 0
//! spacing = 45
//! ```
//!
//! Slots given in the file are added to the default ones (or replace the one
//! of the same name). `[card_type.layout] emboss_fonts = [0, 1, 1, 1]` gives
//! the emboss font of each line (0 OCR-7B large, 1 Farrington 7B small).

use crate::printer::profile::Capabilities;
use dialect::panel::Geometry;
use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

/// The printer's resolution: 1 mm is 11.8 dots.
pub const DOTS_PER_INCH: u32 = 300;

/// The highest resident font number `Wt` takes: 0 Arial, 1 Arial bold
/// (the reference fact sheet lists no other).
pub const MAX_FONT: u8 = 1;
/// Text heights, in dots as `Wt` takes them: below 1.7 mm text is not
/// readable on a card (a height meant in points, 10 to 16, is refused here
/// rather than printed 1 mm tall); above 20 mm it is not card text.
pub const MIN_HEIGHT_DOTS: u32 = 20;
pub const MAX_HEIGHT_DOTS: u32 = 236;

/// The emboss fonts of the dialect's extension: 0 and 1.
pub const MAX_EMBOSS_FONT: u8 = 1;

/// One kind of card this kiosk produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardType {
    /// The id requests name in `cardType`; also the card stock a feeder holds.
    pub id: String,
    /// The card has a magnetic stripe: requests carry tracks.
    #[serde(default)]
    pub magnetic: bool,
    /// The card has a contact chip: requests carry a chip script.
    #[serde(default)]
    pub chip: bool,
    /// The card is embossed: requests carry emboss lines.
    #[serde(default)]
    pub emboss: bool,
    /// A front image may be printed on the colour panels.
    #[serde(default)]
    pub colour: bool,
    /// The ribbon panels a card of this type needs (`"YMCKO"`, `"K"`, `""`
    /// for none); by default YMCK for a colour type, K (printed text)
    /// otherwise. A card whose panels the loaded ribbon lacks never leaves
    /// the feeder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panels: Option<String>,
    #[serde(default)]
    pub layout: Layout,
}

/// Where printed text goes, and the emboss fonts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layout {
    /// Named positions a printed line may ask for with `slot`.
    #[serde(default = "default_slots", deserialize_with = "slots_over_defaults")]
    pub slots: BTreeMap<String, TextPosition>,
    /// Lines without a slot, one under the other.
    #[serde(default)]
    pub lines: FreeLines,
    /// Emboss font of each line (line 1 first); lines past the list use the
    /// last entry.
    #[serde(default = "default_emboss_fonts")]
    pub emboss_fonts: Vec<u8>,
}

/// Where one line of `Wt` text goes, in card coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextPosition {
    pub x: u32,
    pub y: u32,
    /// Text height in dots (`Wt`'s height; 1 mm is 11.8 dots).
    pub height: u32,
    #[serde(default)]
    pub font: u8,
}

/// Lines without a slot: the first at (`x`, `y`), each next `spacing` dots lower.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreeLines {
    pub x: u32,
    pub y: u32,
    pub height: u32,
    #[serde(default)]
    pub font: u8,
    pub spacing: u32,
}

impl Default for FreeLines {
    fn default() -> Self {
        FreeLines {
            x: 80,
            y: 545,
            height: 30,
            font: 0,
            spacing: 45,
        }
    }
}

impl Default for Layout {
    fn default() -> Self {
        Layout {
            slots: default_slots(),
            lines: FreeLines::default(),
            emboss_fonts: default_emboss_fonts(),
        }
    }
}

fn default_slots() -> BTreeMap<String, TextPosition> {
    let at = |x, y, height, font| TextPosition { x, y, height, font };
    BTreeMap::from([
        // 3.6 mm, 2.7 mm, 2.7 mm.
        ("pan".to_string(), at(80, 370, 42, 1)),
        ("name".to_string(), at(80, 490, 32, 0)),
        ("expiry".to_string(), at(400, 430, 32, 0)),
    ])
}

fn slots_over_defaults<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, TextPosition>, D::Error> {
    let given = BTreeMap::<String, TextPosition>::deserialize(d)?;
    let mut slots = default_slots();
    slots.extend(given);
    Ok(slots)
}

fn default_emboss_fonts() -> Vec<u8> {
    vec![0, 1, 1, 1]
}

/// Dots as millimetres, for messages.
pub fn dots_to_mm(dots: u32) -> f64 {
    f64::from(dots) * 25.4 / f64::from(DOTS_PER_INCH)
}

/// The card seen landscape: (long edge, short edge) in dots. A panel line runs
/// across the short edge, so the long edge is the panel's line count.
pub fn card_size(geometry: Geometry) -> (u32, u32) {
    let clamp = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
    (clamp(geometry.height), clamp(geometry.width))
}

impl TextPosition {
    /// Does a line of this height at this place start on the card and end
    /// above its bottom edge?
    pub fn fits(&self, geometry: Geometry) -> bool {
        let (long, short) = card_size(geometry);
        self.x < long && self.y.saturating_add(self.height) <= short
    }

    fn check(&self, what: &str, geometry: Geometry) -> Result<(), String> {
        if self.font > MAX_FONT {
            return Err(format!(
                "{what}: font {} is not a resident font of the printer (0 Arial, 1 Arial bold)",
                self.font
            ));
        }
        if !(MIN_HEIGHT_DOTS..=MAX_HEIGHT_DOTS).contains(&self.height) {
            return Err(format!(
                "{what}: height {} dots ({:.1} mm) is not {MIN_HEIGHT_DOTS} to {MAX_HEIGHT_DOTS} \
                 dots: heights are in dots of the printer (1 mm = 11.8 dots; card text is \
                 usually 30 to 50)",
                self.height,
                dots_to_mm(self.height)
            ));
        }
        if !self.fits(geometry) {
            let (long, short) = card_size(geometry);
            return Err(format!(
                "{what}: a {}-dot line at x {} y {} does not fit on the {long}x{short} card",
                self.height, self.x, self.y
            ));
        }
        Ok(())
    }
}

impl Layout {
    /// The place of the `index`-th line without a slot (0-based), or `None`
    /// when it would fall off the card.
    pub fn free_line(&self, index: usize, geometry: Geometry) -> Option<TextPosition> {
        let step = u32::try_from(index).ok()?.checked_mul(self.lines.spacing)?;
        let pos = TextPosition {
            x: self.lines.x,
            y: self.lines.y.checked_add(step)?,
            height: self.lines.height,
            font: self.lines.font,
        };
        pos.fits(geometry).then_some(pos)
    }

    /// How many lines without a slot fit on the card.
    pub fn free_line_capacity(&self, geometry: Geometry) -> usize {
        let (_, short) = card_size(geometry);
        let first = TextPosition {
            x: self.lines.x,
            y: self.lines.y,
            height: self.lines.height,
            font: self.lines.font,
        };
        if !first.fits(geometry) || self.lines.spacing == 0 {
            return usize::from(first.fits(geometry));
        }
        let room = short - self.lines.y - self.lines.height;
        (room / self.lines.spacing) as usize + 1
    }

    /// The emboss font of line `line` (1-based).
    pub fn emboss_font(&self, line: usize) -> u8 {
        let i = line.saturating_sub(1);
        self.emboss_fonts
            .get(i)
            .or(self.emboss_fonts.last())
            .copied()
            .unwrap_or(0)
    }
}

impl CardType {
    /// What this card type needs that the printer lacks, in words
    /// (`"an emboss module"`); empty when the printer can produce it.
    pub fn missing_capabilities(&self, caps: &Capabilities) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.magnetic && !caps.magnetic {
            missing.push("a magnetic encoder");
        }
        if self.chip && !caps.smart_station {
            missing.push("a contact smart-card station");
        }
        if self.emboss && !caps.emboss {
            missing.push("an emboss module");
        }
        if self.colour && !has_colour_ribbon(caps) {
            missing.push("a colour (YMC) ribbon");
        }
        missing
    }

    /// The ribbon panels a card of this type needs, upper case.
    pub fn needed_panels(&self) -> String {
        match &self.panels {
            Some(p) => p.to_ascii_uppercase(),
            None if self.colour => "YMCK".into(),
            None => "K".into(),
        }
    }

    /// Checks the card type against the panel geometry: an id, every slot and
    /// the first free line on the card, fonts and heights `Wt` accepts, emboss
    /// fonts the module has.
    pub fn check(&self, geometry: Geometry) -> Result<(), String> {
        let id = &self.id;
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "card type id {id:?} must be 1 to 64 printable ASCII characters without spaces"
            ));
        }
        if let Some(p) = &self.panels {
            if !p.to_ascii_uppercase().chars().all(|c| "YMCKO".contains(c)) {
                return Err(format!(
                    "card type {id}: panels {p:?} must be ribbon panels from Y, M, C, K and O (\"YMCKO\", \"K\", or \"\" for none)"
                ));
            }
        }
        for (name, pos) in &self.layout.slots {
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "card type {id}: slot name {name:?} must be letters, digits, '-' or '_'"
                ));
            }
            pos.check(&format!("card type {id}: slot {name}"), geometry)?;
        }
        let l = self.layout.lines;
        let first = TextPosition {
            x: l.x,
            y: l.y,
            height: l.height,
            font: l.font,
        };
        first.check(&format!("card type {id}: layout.lines"), geometry)?;
        if l.spacing == 0 {
            return Err(format!(
                "card type {id}: layout.lines.spacing must be above 0"
            ));
        }
        if self.layout.emboss_fonts.is_empty() {
            return Err(format!("card type {id}: layout.emboss_fonts is empty"));
        }
        if let Some(f) = self
            .layout
            .emboss_fonts
            .iter()
            .find(|&&f| f > MAX_EMBOSS_FONT)
        {
            return Err(format!(
                "card type {id}: emboss font {f} does not exist (0 OCR-7B, 1 Farrington 7B)"
            ));
        }
        Ok(())
    }
}

/// Whether the printer takes a ribbon with colour panels (`ymcko`, `ymcko-k`...).
pub fn has_colour_ribbon(caps: &Capabilities) -> bool {
    caps.ribbons
        .iter()
        .any(|r| r.to_ascii_lowercase().starts_with("ymc"))
}

/// Checks a configuration's card types: each one (see [`CardType::check`]),
/// and no id twice.
pub fn check_card_types(types: &[CardType], geometry: Geometry) -> Result<(), String> {
    for (i, t) in types.iter().enumerate() {
        t.check(geometry)?;
        if types[..i].iter().any(|o| o.id == t.id) {
            return Err(format!("card type {} is defined twice", t.id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Config {
        card_type: Vec<CardType>,
    }

    fn caps(toml_caps: &str) -> Capabilities {
        toml::from_str(toml_caps).unwrap()
    }

    const KM500B: &str = r#"
        feeders = 2
        magnetic = true
        smart_station = true
        contactless = false
        emboss = false
        bezel = true
        reject_box = true
        lock = true
        ribbons = ["ymcko", "ko", "kb"]
    "#;

    #[test]
    fn defaults_follow_the_brief() {
        let c: Config = toml::from_str("[[card_type]]\nid = \"plain\"\n").unwrap();
        let t = &c.card_type[0];
        assert!(!t.magnetic && !t.chip && !t.emboss && !t.colour);
        let pan = t.layout.slots["pan"];
        // Readable on a real printer: heights are dots (1 mm = 11.8 dots).
        assert_eq!((pan.x, pan.y, pan.height, pan.font), (80, 370, 42, 1));
        assert!(
            (3.0..=4.0).contains(&dots_to_mm(pan.height)),
            "a PAN 3 to 4 mm tall"
        );
        let name = t.layout.slots["name"];
        assert_eq!((name.x, name.y, name.height, name.font), (80, 490, 32, 0));
        assert!(dots_to_mm(name.height) >= 2.5);
        assert_eq!(t.layout.emboss_font(1), 0);
        assert_eq!(t.layout.emboss_font(2), 1);
        assert_eq!(t.layout.emboss_font(9), 1);
        assert_eq!(t.check(Geometry::default()), Ok(()));
    }

    #[test]
    fn given_slots_add_to_the_defaults() {
        let c: Config = toml::from_str(
            r#"
            [[card_type]]
            id = "branded"
            magnetic = true
            [card_type.layout.slots]
            name = { x = 90, y = 510, height = 32 }
            bank = { x = 60, y = 40, height = 36, font = 1 }
            [card_type.layout.lines]
            x = 60
            y = 100
            height = 30
            spacing = 40
            "#,
        )
        .unwrap();
        let t = &c.card_type[0];
        assert_eq!(t.layout.slots.len(), 4);
        assert_eq!(t.layout.slots["name"].x, 90);
        assert_eq!(t.layout.slots["name"].font, 0);
        assert_eq!(t.layout.slots["pan"].y, 370);
        assert_eq!(t.layout.slots["bank"].font, 1);
        assert_eq!(t.layout.lines.font, 0);
        assert_eq!(t.check(Geometry::default()), Ok(()));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = toml::from_str::<Config>("[[card_type]]\nid = \"x\"\nmagentic = true\n")
            .err()
            .unwrap();
        assert!(e.to_string().contains("magentic"), "{e}");
    }

    #[test]
    fn free_lines_stop_at_the_card_edge() {
        let l = Layout::default();
        let g = Geometry::default();
        // 30 dots high, 45 apart: 545..575 and 590..620 fit in 648, 635..665 does not.
        assert_eq!(l.free_line(0, g).unwrap().y, 545);
        assert_eq!(l.free_line(1, g).unwrap().y, 590);
        assert_eq!(l.free_line(2, g), None);
        assert_eq!(l.free_line_capacity(g), 2);
        assert_eq!(l.free_line(usize::MAX, g), None);
    }

    #[test]
    fn checks_positions_fonts_and_ids() {
        let g = Geometry::default();
        let mut t = CardType {
            id: "t".into(),
            magnetic: false,
            chip: false,
            emboss: false,
            colour: false,
            panels: None,
            layout: Layout::default(),
        };
        assert_eq!(t.check(g), Ok(()));
        t.layout.slots.insert(
            "off".into(),
            TextPosition {
                x: 1016,
                y: 0,
                height: 30,
                font: 0,
            },
        );
        assert!(t.check(g).unwrap_err().contains("does not fit"));
        // A height meant in points (1.4 mm in dots) is refused, naming the unit.
        t.layout.slots.get_mut("off").unwrap().x = 10;
        t.layout.slots.get_mut("off").unwrap().height = 16;
        let e = t.check(g).unwrap_err();
        assert!(
            e.contains("16 dots (1.4 mm)") && e.contains("11.8 dots"),
            "{e}"
        );
        t.layout.slots.remove("off");
        // Only the resident fonts 0 and 1 exist.
        t.layout.slots.get_mut("pan").unwrap().font = 2;
        assert!(t
            .check(g)
            .unwrap_err()
            .contains("font 2 is not a resident font"));
        t.layout.slots.get_mut("pan").unwrap().font = 1;
        t.layout.emboss_fonts = vec![0, 2];
        assert!(t.check(g).unwrap_err().contains("emboss font 2"));
        t.layout.emboss_fonts = vec![0];
        t.id = "has space".into();
        assert!(t.check(g).is_err());
        t.id = "t".into();
        assert!(check_card_types(&[t.clone(), t.clone()], g)
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn missing_capabilities_are_named() {
        let km = caps(KM500B);
        let t = CardType {
            id: "all".into(),
            magnetic: true,
            chip: true,
            emboss: true,
            colour: true,
            panels: None,
            layout: Layout::default(),
        };
        assert_eq!(t.missing_capabilities(&km), vec!["an emboss module"]);
        let mono = caps(&KM500B.replace("\"ymcko\", ", ""));
        assert_eq!(
            t.missing_capabilities(&mono),
            vec!["an emboss module", "a colour (YMC) ribbon"]
        );
    }
}
