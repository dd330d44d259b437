//! The printer's state as tests, `ctl state` and the control socket see it.
//! Everything here is safe to print: card data is masked at the source.

use crate::chip::ChipStats;
use crate::model::{BoxState, CardRecord, Counters, Feeder};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    /// Profile id.
    pub model: String,
    pub model_name: String,
    pub identity: Identity,
    pub speed: f64,
    /// Whether the printer answers: `on`, `silent` (the `silent` condition)
    /// or `booting` (a `power-cycle` not finished yet).
    #[serde(default)]
    pub power: Power,
    /// Options available now (in the profile and switched on).
    pub options: Options,
    pub feeders: Vec<Feeder>,
    /// `Piem` choice: 0 automatic.
    pub selected_feeder: u8,
    pub ribbon: RibbonState,
    pub doors: Doors,
    pub locked: bool,
    pub paused: bool,
    /// Raised conditions, as `name[:arg]`.
    pub conditions: Vec<String>,
    /// `Pem` value.
    pub error_mode: u32,
    /// The mode saved by `Pem;mode;s`: what a power cycle falls back to.
    #[serde(default)]
    pub saved_error_mode: u32,
    pub ack_nack: bool,
    /// The card on the path inside the printer (print position, a station, or jammed).
    pub card_inside: Option<u64>,
    /// The card waiting in the bezel.
    pub bezel: Option<u64>,
    pub hopper: BoxState,
    pub reject_box: BoxState,
    pub counters: Counters,
    pub cleaning: Cleaning,
    pub customer: String,
    /// `"refused"` when the customer refused the presented card at the kiosk,
    /// `"accepted"` when they will take it, null otherwise.
    pub customer_verdict: Option<String>,
    /// The chip's view, when a vpcd chip is attached (not read back from JSON).
    #[serde(skip_deserializing)]
    pub chip: Option<ChipStats>,
    /// `Rst` words as 8 hex digits.
    pub status: BTreeMap<String, String>,
    pub links: Links,
    pub cards: Vec<CardRecord>,
    /// The printer's own log, oldest first and bounded: conditions raised and
    /// cleared, power going off, booting and answering again.
    #[serde(default)]
    pub events: Vec<PrinterEvent>,
}

/// Whether the printer answers on its links.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Power {
    /// Answers.
    #[default]
    On,
    /// Restarting after a `power-cycle`: answers nothing until booted.
    Booting,
    /// Switched off on an open line (`silent`): answers nothing.
    Silent,
}

impl Power {
    pub fn as_str(self) -> &'static str {
        match self {
            Power::On => "on",
            Power::Booting => "booting",
            Power::Silent => "silent",
        }
    }
}

/// One entry of the printer's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterEvent {
    /// Ms since the simulator started.
    pub t_ms: u64,
    pub what: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Identity {
    pub model: String,
    pub serial: String,
    pub firmware: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Options {
    pub mag: bool,
    pub smart: bool,
    pub contactless: bool,
    pub emboss: bool,
    pub bezel: bool,
    pub reject: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RibbonState {
    pub ribbon_type: String,
    pub present: bool,
    pub panels_left: u32,
    pub cards_left: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Doors {
    pub cover_open: bool,
    pub feeder_door_open: bool,
    pub hopper_door_open: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Cleaning {
    pub cards_since: u32,
    pub recommended: bool,
    pub required: bool,
}

/// Where the links can be reached now (the pty path changes when it comes
/// back without a symlink).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Links {
    pub reachable: bool,
    pub pty: Option<String>,
    pub tcp: Option<String>,
}

impl State {
    pub fn card(&self, seq: u64) -> Option<&CardRecord> {
        self.cards.iter().find(|c| c.seq == seq)
    }

    /// A few lines for a person.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let opt = |v: Option<u64>| v.map_or("-".to_string(), |n| format!("#{n}"));
        let _ = writeln!(
            s,
            "printer  {} ({}) serial {} firmware {}",
            self.identity.model, self.model, self.identity.serial, self.identity.firmware
        );
        let feeders: Vec<String> = self
            .feeders
            .iter()
            .map(|f| format!("{}: {} x{}", f.number, f.card_type, f.count))
            .collect();
        let _ = writeln!(s, "feeders  {}", feeders.join(", "));
        let _ = writeln!(
            s,
            "ribbon   {} {} (cards left {})",
            self.ribbon.ribbon_type,
            if self.ribbon.present {
                "present"
            } else {
                "MISSING"
            },
            self.ribbon.cards_left
        );
        let conds = if self.conditions.is_empty() {
            "none".to_string()
        } else {
            self.conditions.join(", ")
        };
        let _ = writeln!(s, "power    {}", self.power.as_str());
        let _ = writeln!(s, "faults   {conds}");
        let _ = writeln!(
            s,
            "status   {}",
            self.status
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let _ = writeln!(
            s,
            "cards    inside {}  bezel {}  hopper {}/{}  reject box {}/{}",
            opt(self.card_inside),
            opt(self.bezel),
            self.hopper.count,
            self.hopper.capacity,
            self.reject_box.count,
            self.reject_box.capacity
        );
        let c = &self.counters;
        let _ = writeln!(
            s,
            "counters inserted {} presented {} taken {} rejected {} printed panels {} cleanings {}",
            c.inserted, c.presented, c.taken, c.rejected, c.printed_panels, c.cleanings
        );
        let _ = writeln!(
            s,
            "customer {} verdict {}",
            self.customer,
            self.customer_verdict.as_deref().unwrap_or("-")
        );
        if let Some(last) = self.cards.last() {
            let _ = writeln!(
                s,
                "last     card #{} from feeder {} is at {:?}",
                last.seq, last.feeder, last.place
            );
        }
        s
    }
}
