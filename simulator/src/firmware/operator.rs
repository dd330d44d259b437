//! What the simulator's operator changes and sees: options, identity,
//! feeders, the customer, and the state snapshot.

use super::words::OPT_NOT_AVAILABLE;
use super::{Cx, Effect, Printer};
use crate::chip::ChipStats;
use crate::condition::Condition;
use crate::config::Customer;
use crate::model::{CardRecord, PanelImage, Place};
use crate::scenario::Step;
use crate::state::{Cleaning, Doors, Identity, Options, RibbonState, State};

impl Printer {
    pub(super) fn available(&self) -> Options {
        let p = &self.cfg.profile;
        let e = &self.enabled;
        Options {
            mag: p.magnetic && e.mag,
            smart: p.smart_station && e.smart,
            contactless: p.contactless && e.contactless,
            emboss: p.emboss && e.emboss,
            bezel: p.bezel && e.bezel,
            reject: p.reject_box && e.reject,
        }
    }

    /// A command for a missing option: `OPT NOT AVAILABLE` and ERR option_not_available.
    pub(super) fn need(&mut self, available: bool) -> Result<(), &'static str> {
        if available {
            Ok(())
        } else {
            self.latched.option_not_available = true;
            Err(OPT_NOT_AVAILABLE)
        }
    }

    /// Switches an option (`mag`, `smart`, `contactless`, `emboss`, `bezel`,
    /// `reject`) on or off. An option the profile lacks cannot be switched on.
    pub fn set_option(&mut self, name: &str, on: bool) -> Result<(), String> {
        let p = &self.cfg.profile;
        let (slot, has) = match name {
            "mag" | "magnetic" => (&mut self.enabled.mag, p.magnetic),
            "smart" | "smart_station" | "smart-station" => {
                (&mut self.enabled.smart, p.smart_station)
            }
            "contactless" => (&mut self.enabled.contactless, p.contactless),
            "emboss" => (&mut self.enabled.emboss, p.emboss),
            "bezel" => (&mut self.enabled.bezel, p.bezel),
            "reject" | "reject_box" | "reject-box" => (&mut self.enabled.reject, p.reject_box),
            other => {
                return Err(format!(
                    "unknown option {other:?} (mag, smart, contactless, emboss, bezel, reject)"
                ))
            }
        };
        if on && !has {
            return Err(format!(
                "profile {} has no {name}: it cannot be switched on",
                p.id
            ));
        }
        *slot = on;
        Ok(())
    }

    pub fn set_serial(&mut self, serial: &str) {
        self.cfg.serial = serial.to_string();
    }

    pub fn set_feeder(&mut self, n: u8, count: u32, card_type: Option<&str>) -> Result<(), String> {
        let total = self.feeders.len();
        let f = self
            .feeders
            .iter_mut()
            .find(|f| f.number == n)
            .ok_or_else(|| format!("feeder {n} does not exist (this printer has {total})"))?;
        f.count = count;
        if let Some(t) = card_type {
            if t.is_empty() {
                return Err("empty card type".into());
            }
            f.card_type = t.to_string();
        }
        Ok(())
    }

    /// A technician loads a new ribbon: `ribbon_type` (one the profile lists)
    /// with `cards` cards' worth of panels.
    pub fn load_ribbon(&mut self, ribbon_type: &str, cards: u32) -> Result<(), String> {
        let t = ribbon_type.to_ascii_lowercase();
        if !self.cfg.profile.ribbons.contains(&t) {
            return Err(format!(
                "ribbon {t:?} does not fit this printer (it takes {})",
                self.cfg.profile.ribbons.join(", ")
            ));
        }
        self.ribbon.ribbon_type = t;
        self.ribbon.panels_left = cards.saturating_mul(self.ribbon.panels_per_card());
        Ok(())
    }

    /// A technician empties the reject box (`reject`) or the output hopper
    /// (`hopper`).
    pub fn empty_box(&mut self, which: &str) -> Result<(), String> {
        match which {
            "reject" => self.reject.count = 0,
            "hopper" => self.hopper.count = 0,
            other => return Err(format!("no box {other:?}: reject or hopper")),
        }
        Ok(())
    }

    /// Changes the customer; a card already waiting in the bezel gets the new behaviour.
    pub fn set_customer(&mut self, c: Customer) -> Vec<Effect> {
        self.customer = c;
        match self.bezel_index() {
            Some(i) => {
                let seq = self.cards[i].record.seq;
                self.present_to_customer(i);
                vec![Effect::Presented {
                    card: seq,
                    take_after: self.take_after(),
                }]
            }
            None => Vec::new(),
        }
    }

    pub(super) fn take_after(&self) -> Option<u64> {
        match self.customer {
            Customer::TakeAfter(ms) => Some(ms),
            _ => None,
        }
    }

    /// Records what the customer says of the card now in the bezel.
    pub(super) fn present_to_customer(&mut self, i: usize) {
        let refused = self.customer == Customer::Refuse;
        self.cards[i].record.refused = refused;
        self.verdict = match self.customer {
            Customer::Refuse => Some("refused".into()),
            Customer::TakeAfter(_) => Some("accepted".into()),
            Customer::Never => None,
        };
    }

    /// Takes the presented card now. Returns whether there was one.
    pub fn take(&mut self, now: u64) -> (bool, Vec<Effect>) {
        let Some(i) = self.bezel_index() else {
            return (false, Vec::new());
        };
        let seq = self.cards[i].record.seq;
        let mut cx = Cx {
            now,
            work: 0,
            effects: Vec::new(),
        };
        self.fire(Step::Take, seq, &mut cx);
        // A trigger may not move cards, but check again to keep the rule simple.
        let Some(i) = self.bezel_index() else {
            return (false, cx.effects);
        };
        self.cards[i].record.place = Place::Taken;
        self.cards[i].event(now, "taken by the customer");
        self.counters.taken += 1;
        (true, cx.effects)
    }

    /// The customer's own take, scheduled at presentation: only if that card
    /// still waits and the customer still takes cards. While the printer is
    /// off (silent or booting) nothing moves: the customer waits and takes
    /// the card as soon as the printer answers again.
    pub fn customer_take(&mut self, card: u64, now: u64) -> (bool, Vec<Effect>) {
        let waiting = self.bezel_index().map(|i| self.cards[i].record.seq) == Some(card);
        if !waiting || self.take_after().is_none() {
            return (false, Vec::new());
        }
        if !self.answers() {
            self.deferred_take = Some(card);
            self.log(
                now,
                format!("the customer waits for card #{card}: the printer is off"),
            );
            return (false, Vec::new());
        }
        self.take(now)
    }

    pub fn set_card_chip(&mut self, card: u64, stats: ChipStats) {
        if let Some(c) = self.cards.iter_mut().find(|c| c.record.seq == card) {
            c.record.chip = Some(stats);
        }
    }

    /// A card's record and kept images, for `dump`.
    pub fn card_images(&self, card: u64) -> Option<(CardRecord, Vec<PanelImage>)> {
        self.cards
            .iter()
            .find(|c| c.record.seq == card)
            .map(|c| (c.record.clone(), c.images.clone()))
    }

    /// Everything about the printer, safe to show (card data masked).
    pub fn snapshot(&self, now: u64) -> State {
        let p = &self.cfg.profile;
        let words = self.status_words(now);
        State {
            model: p.id.clone(),
            model_name: p.name.clone(),
            identity: Identity {
                model: p.model_reply.clone(),
                serial: self.cfg.serial.clone(),
                firmware: self.cfg.firmware.clone(),
            },
            speed: self.cfg.speed,
            power: self.power(),
            options: self.available(),
            feeders: self.feeders.clone(),
            selected_feeder: self.selected_feeder,
            ribbon: RibbonState {
                ribbon_type: self.ribbon.ribbon_type.clone(),
                present: !self.has(Condition::RibbonMissing),
                panels_left: self.ribbon.panels_left,
                cards_left: self.ribbon.cards_left(),
            },
            doors: Doors {
                cover_open: self.has(Condition::CoverOpen),
                feeder_door_open: self.has(Condition::FeederDoorOpen),
                hopper_door_open: self.has(Condition::HopperDoorOpen),
            },
            locked: self.has(Condition::Locked),
            paused: self.has(Condition::Paused),
            conditions: self.conditions.iter().map(|c| c.to_string()).collect(),
            error_mode: self.error_mode,
            saved_error_mode: self.saved_error_mode,
            ack_nack: self.ack_nack(),
            card_inside: self.path_index().map(|i| self.cards[i].record.seq),
            bezel: self.bezel_index().map(|i| self.cards[i].record.seq),
            hopper: self.hopper,
            reject_box: self.reject,
            counters: self.counters,
            cleaning: Cleaning {
                cards_since: self.cards_since_cleaning,
                recommended: self.cleaning_recommended(),
                required: self.cleaning_required(),
            },
            customer: self.customer.to_string(),
            customer_verdict: self.verdict.clone(),
            chip: None,
            status: words.map(),
            links: Default::default(),
            cards: self.cards.iter().map(|c| c.record.clone()).collect(),
            events: self.events.clone(),
        }
    }

    pub(super) fn cleaning_recommended(&self) -> bool {
        self.cfg.cleaning_interval > 0 && self.cards_since_cleaning >= self.cfg.cleaning_interval
    }

    pub(super) fn cleaning_required(&self) -> bool {
        self.cfg.cleaning_interval > 0
            && self.cards_since_cleaning >= self.cfg.cleaning_interval.saturating_mul(2)
    }
}
