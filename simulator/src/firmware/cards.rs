//! Card movements: insertion, stations, presentation, reject, test card.
//!
//! The physical rule kept throughout: at most one card on the path inside
//! the printer, at most one in the bezel, and every card in exactly one
//! [`Place`]. Commands that would break it are refused, not queued.

use super::words::*;
use super::{Answer, Cx, Effect, Latched, Printer, Res};
use crate::condition::Condition;
use crate::font;
use crate::model::{Card, PanelImage, PanelPrint, Place};
use dialect::panel::{self, Bitmap, Levels, Panel};

/// Physical times at speed 1, in ms.
pub(super) const INSERT_MS: u64 = 1_500;
pub(super) const STATION_MS: u64 = 800;
pub(super) const EJECT_MS: u64 = 1_200;
const TEST_CARD_MS: u64 = 15_000;

impl Printer {
    /// The feeder `Si` takes from: the `Piem` choice, or the first with cards.
    fn pick_feeder(&self) -> Result<usize, &'static str> {
        if self.has(Condition::FeederEmpty) || self.has(Condition::FeederDoorOpen) {
            return Err(FEEDER_EMPTY);
        }
        let found = match self.selected_feeder {
            0 => self.feeders.iter().position(|f| f.count > 0),
            n => self
                .feeders
                .iter()
                .position(|f| f.number == n && f.count > 0),
        };
        found.ok_or(FEEDER_EMPTY)
    }

    /// Takes a card from a feeder into a new record (at the print position).
    fn feed(&mut self, f: usize, cx: &mut Cx) -> usize {
        let feeder = &mut self.feeders[f];
        feeder.count -= 1;
        let seq = self.cards.len() as u64 + 1;
        let mut card = Card::new(seq, feeder.number, &feeder.card_type);
        card.event(cx.now, format!("picked from feeder {}", feeder.number));
        self.cards.push(card);
        self.cards.len() - 1
    }

    /// `Si`.
    pub(super) fn insert(&mut self, cx: &mut Cx) -> Res {
        if let Some(i) = self.path_index() {
            // A second card would collide with the one on the path.
            return Err(if self.cards[i].record.place.jammed() {
                CARD_JAM
            } else {
                ERROR_CDE
            });
        }
        self.take_card(cx).map(|_| Answer::Ok)
    }

    /// Takes a card from the feeder onto the empty path: `Si`, and a print
    /// sequence that needs a card.
    pub(super) fn take_card(&mut self, cx: &mut Cx) -> Result<usize, &'static str> {
        let f = self.pick_feeder()?;
        let i = self.feed(f, cx);
        cx.work += INSERT_MS;
        if self.has(Condition::FeederJam) {
            self.cards[i].record.place = Place::FeederJammed;
            self.cards[i].event(cx.now, "jammed at the feeder");
            return Err(CARD_JAM);
        }
        // A new card starts with a clean slate of event flags; a restart
        // stays reported until an `Rst` answer has told the host.
        self.latched = Latched {
            just_rebooted: self.latched.just_rebooted,
            ..Latched::default()
        };
        self.counters.inserted += 1;
        self.cards[i].event(cx.now, "inserted");
        Ok(i)
    }

    /// `Sis`: under the contacts; the chip reaches the reader unless the
    /// `card-not-in-reader` condition says the contacts missed it.
    pub(super) fn move_to_smart_station(&mut self, cx: &mut Cx) -> Res {
        let smart = self.available().smart;
        self.need(smart)?;
        let i = match self.working_card() {
            Err(ERROR_TIME_OUT) => return Err(NO_CARD_IN_STATION),
            other => other?,
        };
        let seq = self.cards[i].record.seq;
        if self.cards[i].record.place != Place::SmartStation {
            self.move_card(i, Place::SmartStation, cx);
            cx.work += STATION_MS;
        }
        if self.has(Condition::CardNotInReader) {
            self.cards[i].event(cx.now, "contacts missed the chip");
        } else if self.chip_card != Some(seq) {
            self.chip_card = Some(seq);
            cx.effects.push(Effect::ChipInsert { card: seq });
        }
        Ok(Answer::Ok)
    }

    /// `Sic`.
    pub(super) fn move_to_contactless_station(&mut self, cx: &mut Cx) -> Res {
        let contactless = self.available().contactless;
        self.need(contactless)?;
        let i = match self.working_card() {
            Err(ERROR_TIME_OUT) => return Err(NO_CARD_IN_STATION),
            other => other?,
        };
        if self.cards[i].record.place != Place::ContactlessStation {
            self.move_card(i, Place::ContactlessStation, cx);
            cx.work += STATION_MS;
        }
        Ok(Answer::Ok)
    }

    /// `Se`: to the bezel for the customer, or into the output hopper on a
    /// printer without a bezel.
    pub(super) fn eject(&mut self, cx: &mut Cx) -> Res {
        let i = self.working_card()?;
        if self.has(Condition::HopperDoorOpen) {
            return Err(HOPPER_DOOR);
        }
        if self.has(Condition::HopperFull) {
            return Err(HOPPER_FULL);
        }
        cx.work += EJECT_MS;
        if self.has(Condition::HopperJam) {
            self.move_card(i, Place::HopperJammed, cx);
            self.cards[i].event(cx.now, "jammed at the output");
            return Err(CARD_JAM);
        }
        if self.available().bezel {
            if self.bezel_index().is_some() {
                // The previous card was never taken: the printer waits for the
                // bezel to clear and gives up.
                return Err(ERROR_TIME_OUT);
            }
            self.move_card(i, Place::Bezel, cx);
            self.counters.presented += 1;
            self.present_to_customer(i);
            let seq = self.cards[i].record.seq;
            cx.effects.push(Effect::Presented {
                card: seq,
                take_after: self.take_after(),
            });
        } else {
            if self.hopper.full() {
                return Err(HOPPER_FULL);
            }
            self.move_card(i, Place::Hopper, cx);
            self.hopper.count += 1;
        }
        Ok(Answer::Ok)
    }

    /// `Ser`: the card on the path, or else the one waiting in the bezel,
    /// into the reject box. A card jammed at the output is pulled back into
    /// the box (it sits right above it); one jammed at the feeder cannot be
    /// reached. With no card at all there is nothing to do.
    pub(super) fn reject_card(&mut self, cx: &mut Cx) -> Res {
        let reject = self.available().reject;
        self.need(reject)?;
        let i = match self.path_index() {
            Some(i) if self.cards[i].record.place == Place::FeederJammed => return Err(CARD_JAM),
            Some(i) => i,
            None => match self.bezel_index() {
                Some(i) => i,
                None => return Ok(Answer::Ok),
            },
        };
        if self.has(Condition::RejectFull) || self.reject.full() {
            return Err(REJECT_BOX_FULL);
        }
        self.move_card(i, Place::RejectBox, cx);
        self.reject.count += 1;
        self.counters.rejected += 1;
        cx.work += EJECT_MS;
        Ok(Answer::Ok)
    }

    /// `St`: a card from the feeder, a printed test pattern, into the hopper.
    pub(super) fn test_card(&mut self, cx: &mut Cx) -> Res {
        if self.path_index().is_some() {
            return Err(ERROR_CDE);
        }
        self.ribbon_ready(Panel::K)?;
        let f = self.pick_feeder()?;
        let i = self.feed(f, cx);
        self.cards[i].record.test_card = true;
        self.counters.inserted += 1;
        let g = self.cfg.profile.geometry;
        let mut bm = Bitmap::blank(g, Levels::Two);
        font::draw_text(
            &mut bm,
            40,
            40,
            4,
            &format!("TEST CARD {}", self.cfg.serial),
        );
        let inked = bm.inked() as u64;
        self.cards[i].images.push(PanelImage {
            panel: Panel::K,
            side: "front",
            levels: Levels::Two,
            data: panel::compress(&bm),
        });
        self.cards[i].record.panels.push(PanelPrint {
            panel: "k".into(),
            side: "front".into(),
            inked,
        });
        self.ribbon.panels_left -= 1;
        self.counters.printed_panels += 1;
        self.move_card(i, Place::Hopper, cx);
        self.hopper.count += 1;
        cx.work += TEST_CARD_MS;
        Ok(Answer::Ok)
    }
}
