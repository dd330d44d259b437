//! The physical parts of the printer, as plain data: cards and where they
//! are, feeders, ribbon, boxes, counters.
//!
//! Card data rule: a card's record (what the state, the logs and the dumps
//! show) only ever holds masked text. The clear magnetic data lives in
//! [`Stripe`], which has no `Serialize` and a `Debug` that shows nothing, and
//! is only read back by `Smr`.

use crate::chip::ChipStats;
use dialect::panel::{Levels, Panel};
use serde::{Deserialize, Serialize};

/// Where a card is. A card is in exactly one place at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Place {
    /// Half out of the feeder, jammed (ERR card_jam, INF card_feeder).
    FeederJammed,
    /// In the print position (INF card_print).
    Inside,
    /// Under the contacts of the smart station (INF card_smart).
    SmartStation,
    /// At the contactless station (INF card_contactless).
    ContactlessStation,
    /// Presented in the bezel, waiting for the customer (INF card_eject).
    Bezel,
    /// Jammed at the output (ERR card_jam, INF card_hopper).
    HopperJammed,
    /// Delivered into the output hopper.
    Hopper,
    /// In the reject box.
    RejectBox,
    /// Taken by the customer.
    Taken,
    /// Taken out by a technician clearing a jam.
    Removed,
}

impl Place {
    /// On the card path inside the printer: at most one card is there.
    pub fn in_path(self) -> bool {
        matches!(
            self,
            Place::FeederJammed
                | Place::Inside
                | Place::SmartStation
                | Place::ContactlessStation
                | Place::HopperJammed
        )
    }
    /// Inside the printer and movable by a command.
    pub fn movable(self) -> bool {
        matches!(
            self,
            Place::Inside | Place::SmartStation | Place::ContactlessStation
        )
    }
    pub fn jammed(self) -> bool {
        matches!(self, Place::FeederJammed | Place::HopperJammed)
    }
}

/// A panel printed on a card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelPrint {
    pub panel: String,
    /// `front` or `back` (`Sr` / `Sv`).
    pub side: String,
    /// Pixels with ink.
    pub inked: u64,
}

/// A `Wt` text line, masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextLine {
    pub x: u32,
    pub y: u32,
    pub font: u32,
    pub height: u32,
    pub text: String,
}

/// An embossed line, masked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmbossLine {
    pub line: u8,
    pub font: u8,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardEvent {
    pub t_ms: u64,
    pub what: String,
}

/// Everything known about one card, safe to show (all card data masked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CardRecord {
    /// 1-based, in the order cards left a feeder.
    pub seq: u64,
    pub feeder: u8,
    pub card_type: String,
    pub place: Place,
    /// Track number to the masked data written there.
    pub tracks: std::collections::BTreeMap<u8, String>,
    pub text_lines: Vec<TextLine>,
    pub panels: Vec<PanelPrint>,
    pub emboss_lines: Vec<EmbossLine>,
    /// What the chip saw while the card was in the station (not read back from JSON).
    #[serde(skip_deserializing)]
    pub chip: Option<ChipStats>,
    /// The customer refused it at the kiosk.
    pub refused: bool,
    /// A test card (`St`), not a customer's.
    pub test_card: bool,
    pub events: Vec<CardEvent>,
}

/// The magnetic stripe as written: the encoder's memory for read-back.
/// Never serialized, never shown.
#[derive(Clone, Default)]
pub struct Stripe(pub [Option<String>; 3]);

impl std::fmt::Debug for Stripe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Stripe({} tracks)",
            self.0.iter().filter(|t| t.is_some()).count()
        )
    }
}

/// A printed panel's image, compressed, kept for `dump`.
#[derive(Clone)]
pub struct PanelImage {
    pub panel: Panel,
    /// `front` or `back`, as in [`PanelPrint`].
    pub side: &'static str,
    pub levels: Levels,
    pub data: Vec<u8>,
}

/// A card: its record, its stripe and the images printed on it.
#[derive(Clone)]
pub struct Card {
    pub record: CardRecord,
    pub stripe: Stripe,
    pub images: Vec<PanelImage>,
}

impl Card {
    pub fn new(seq: u64, feeder: u8, card_type: &str) -> Card {
        Card {
            record: CardRecord {
                seq,
                feeder,
                card_type: card_type.to_string(),
                place: Place::Inside,
                tracks: Default::default(),
                text_lines: Vec::new(),
                panels: Vec::new(),
                emboss_lines: Vec::new(),
                chip: None,
                refused: false,
                test_card: false,
                events: Vec::new(),
            },
            stripe: Stripe::default(),
            images: Vec::new(),
        }
    }

    pub fn event(&mut self, t_ms: u64, what: impl Into<String>) {
        // Bounded: a card stuck in a loop of commands must not grow without end.
        if self.record.events.len() < 500 {
            self.record.events.push(CardEvent {
                t_ms,
                what: what.into(),
            });
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Feeder {
    pub number: u8,
    pub card_type: String,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ribbon {
    /// Lower-case type as `Pr` sets it (`ymcko`, `ko`, `kb`...).
    pub ribbon_type: String,
    pub panels_left: u32,
}

impl Ribbon {
    /// Panels a card uses on this ribbon type (one per letter of the type,
    /// `kb` being a one-panel black ribbon).
    pub fn panels_per_card(&self) -> u32 {
        match self.ribbon_type.as_str() {
            "kb" | "k" => 1,
            t => t.len().max(1) as u32,
        }
    }
    pub fn cards_left(&self) -> u32 {
        self.panels_left / self.panels_per_card()
    }
    /// Whether the ribbon carries this panel.
    pub fn has_panel(&self, p: Panel) -> bool {
        match self.ribbon_type.as_str() {
            "kb" | "k" => p == Panel::K,
            t => t.contains(p.letter()),
        }
    }
}

/// Output hopper or reject box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoxState {
    pub count: u32,
    pub capacity: u32,
}

impl BoxState {
    pub fn full(&self) -> bool {
        self.count >= self.capacity
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub inserted: u64,
    pub presented: u64,
    pub taken: u64,
    pub rejected: u64,
    pub printed_panels: u64,
    pub cleanings: u64,
}
