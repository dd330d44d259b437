//! What the printer reports about itself: the `Rst` status words (bit numbers
//! exactly as DIALECT.md's table), sensors, positions, counters, feeders.
//! The profile's `[commands]` says which of these commands outside the guide
//! the firmware has (`Rst`, `Rse;f|n|b`) and which words `Rlr;p` answers; a
//! firmware refuses a command it lacks with `ERROR CDE`, as the reference
//! fact sheet says a real one may.

use super::words::*;
use super::{Answer, Printer, Res};
use crate::condition::Condition;
use crate::model::Place;
use dialect::ops::Sensor;
use dialect::status::PositionWords;
use std::collections::BTreeMap;

/// The `Rst` words. EX1 exists only on printers with the emboss extension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusWords {
    pub cfg: u32,
    pub inf: u32,
    pub war: u32,
    pub err: u32,
    pub ex1: Option<u32>,
}

impl StatusWords {
    /// `CFG=XXXXXXXX INF=XXXXXXXX WAR=XXXXXXXX ERR=XXXXXXXX[ EX1=XXXXXXXX]`.
    pub fn render(&self) -> String {
        let mut s = format!(
            "CFG={:08X} INF={:08X} WAR={:08X} ERR={:08X}",
            self.cfg, self.inf, self.war, self.err
        );
        if let Some(x) = self.ex1 {
            s.push_str(&format!(" EX1={x:08X}"));
        }
        s
    }

    pub fn map(&self) -> BTreeMap<String, String> {
        let mut m: BTreeMap<String, String> = [
            ("CFG", self.cfg),
            ("INF", self.inf),
            ("WAR", self.war),
            ("ERR", self.err),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), format!("{v:08X}")))
        .collect();
        if let Some(x) = self.ex1 {
            m.insert("EX1".into(), format!("{x:08X}"));
        }
        m
    }
}

fn bit(on: bool, n: u32) -> u32 {
    if on {
        1 << n
    } else {
        0
    }
}

fn volts(on: bool) -> Res {
    Ok(Answer::Text(if on { "5.00" } else { "0.00" }.into()))
}

impl Printer {
    /// Whether feeder `i` (0-based) reads empty (a raised condition empties them all).
    fn feeder_empty(&self, i: usize) -> bool {
        self.has(Condition::FeederEmpty)
            || self.has(Condition::FeederDoorOpen)
            || self.feeders[i].count == 0
    }

    fn feeder_near_empty(&self, i: usize) -> bool {
        self.feeder_empty(i) || self.feeders[i].count <= self.cfg.near_empty
    }

    /// No card can be inserted: every feeder is empty, or the chosen one is.
    fn no_cards(&self) -> bool {
        match self.selected_feeder {
            0 => (0..self.feeders.len()).all(|i| self.feeder_empty(i)),
            n => match self.feeders.iter().position(|f| f.number == n) {
                Some(i) => self.feeder_empty(i),
                None => true,
            },
        }
    }

    fn ribbon_ended(&self) -> bool {
        self.has(Condition::RibbonEnded)
            || (!self.has(Condition::RibbonMissing) && self.ribbon.panels_left == 0)
    }

    pub fn status_words(&self, now: u64) -> StatusWords {
        let o = self.available();
        let p = &self.cfg.profile;
        let place = self.path_index().map(|i| self.cards[i].record.place);
        let at = |pl: Place| place == Some(pl);
        let hopper_full = self.has(Condition::HopperFull) || (!o.bezel && self.hopper.full());
        let reject_full = self.has(Condition::RejectFull) || self.reject.full();
        let ribbon_low = !self.has(Condition::RibbonMissing)
            && self.ribbon.panels_left > 0
            && self.ribbon.cards_left() < (self.cfg.ribbon_cards / 20).max(1);

        let cfg = bit(o.smart, 0)
            | bit(o.contactless, 1)
            | bit(o.mag, 2)
            | bit(o.bezel, 4)
            | bit(p.lock, 5)
            | bit(o.reject, 6)
            | bit(p.bezel, 8)
            | bit(o.emboss, 16);

        let mut inf = bit(at(Place::FeederJammed), 0)
            | bit(at(Place::Inside), 1)
            | bit(at(Place::SmartStation), 2)
            | bit(at(Place::ContactlessStation), 3)
            | bit(self.bezel_index().is_some(), 4)
            | bit(at(Place::HopperJammed), 5)
            | bit(now < self.busy_until, 6)
            | bit(ribbon_low, 7)
            | bit(self.cleaning_recommended(), 8)
            | bit(self.cleaning_required(), 9)
            | bit(
                (0..self.feeders.len()).any(|i| self.feeder_near_empty(i)),
                10,
            )
            | bit(self.latched.just_rebooted, 11);
        for i in 0..self.feeders.len().min(4) {
            inf |= bit(self.feeder_empty(i), 12 + i as u32)
                | bit(self.feeder_near_empty(i), 16 + i as u32);
        }

        let war = bit(self.no_cards(), 0)
            | bit(reject_full, 1)
            | bit(hopper_full, 2)
            | bit(self.has(Condition::Locked), 4)
            | bit(self.has(Condition::RibbonMissing), 6)
            | bit(self.has(Condition::Paused), 11);

        let err = bit(self.has(Condition::RibbonError), 1)
            | bit(self.has(Condition::CoverOpen), 2)
            | bit(place.is_some_and(Place::jammed), 3)
            | bit(reject_full, 4)
            | bit(self.ribbon_ended(), 5)
            | bit(hopper_full, 6)
            | bit(self.latched.mag_write_error, 11)
            | bit(self.latched.option_not_available, 17)
            | bit(self.has(Condition::HopperDoorOpen), 19);

        let ex1 = p
            .emboss
            .then(|| bit(self.latched.emboss_fault, 0) | bit(self.has(Condition::EmbossRibbon), 1));
        StatusWords {
            cfg,
            inf,
            war,
            err,
            ex1,
        }
    }

    /// `Rst`: the status words, on a firmware that has them.
    pub(super) fn read_status(&self, now: u64) -> Res {
        if !self.cfg.profile.commands.status_words {
            return Err(ERROR_CDE);
        }
        Ok(Answer::Text(self.status_words(now).render()))
    }

    /// `Rse;x`: a sensor's voltage, 5 V when it sees what it detects. A
    /// sensor letter this firmware does not answer is an unknown command;
    /// a letter no sensor has is a bad parameter.
    pub(super) fn read_sensor(&self, s: &str) -> Res {
        if Sensor::from_letter(s).is_some_and(|x| !self.cfg.profile.commands.has_sensor(x)) {
            return Err(ERROR_CDE);
        }
        let feeder = match self.selected_feeder {
            0 => (0..self.feeders.len()).find(|&i| !self.feeder_empty(i)),
            n => self.feeders.iter().position(|f| f.number == n),
        };
        let path = self.path_index().is_some();
        match s {
            // Cover switch closed.
            "o" => volts(!self.has(Condition::CoverOpen)),
            // Cards in the feeder in use; above its near-empty level.
            "f" => volts(feeder.is_some_and(|i| !self.feeder_empty(i))),
            "n" => volts(feeder.is_some_and(|i| !self.feeder_near_empty(i))),
            "b" => volts(self.bezel_index().is_some()),
            "p" => volts(path),
            "m" => volts(path),
            "c" | "r" => volts(!self.has(Condition::RibbonMissing)),
            _ => Err(ERROR_PARAMETRES),
        }
    }

    /// `Rlr;p` card position, `Rlr;r` cleaning, `Rlr;h` reject box.
    pub(super) fn read_lr(&self, what: &str) -> Res {
        let text = match what {
            // The older firmware: a card anywhere in the printer (path,
            // station, jammed, or waiting in the bezel) is `ERR CARD`.
            "p" if self.cfg.profile.commands.card_position == PositionWords::Older => {
                if self.path_index().is_some() || self.bezel_index().is_some() {
                    "ERR CARD"
                } else {
                    "NO CARD"
                }
            }
            "p" => {
                let place = self.path_index().map(|i| self.cards[i].record.place);
                match place {
                    Some(Place::SmartStation) => "SMART CARD",
                    Some(Place::ContactlessStation) => "CONTACTLESS CARD",
                    Some(_) => "CARD",
                    // The printer still holds a presented card and can retract it.
                    None if self.bezel_index().is_some() => "CARD",
                    None => "OK",
                }
            }
            "r" if self.cleaning_required() => "ERR NEED CLEANING",
            "r" => "OK",
            "h" if self.has(Condition::RejectFull) || self.reject.full() => "CARD",
            "h" => "OK",
            _ => return Err(ERROR_PARAMETRES),
        };
        Ok(Answer::Text(text.into()))
    }

    /// `Rco;p|c|a|m|n|l`.
    pub(super) fn read_counter(&self, what: &str) -> Res {
        let v: u64 = match what {
            "p" => self.counters.printed_panels,
            "c" => self.counters.inserted,
            "a" | "m" => self.cfg.cleaning_interval as u64,
            "n" => self.counters.cleanings,
            // Our extension (profiles say `reject_counter = true`).
            "r" => self.counters.rejected,
            "l" if self.has(Condition::RibbonMissing) => 0,
            "l" => self.ribbon.cards_left() as u64,
            _ => return Err(ERROR_PARAMETRES),
        };
        Ok(Answer::Text(v.to_string()))
    }

    /// `Rr`: the ribbon type; no ribbon is an error about ribbon detection.
    pub(super) fn read_ribbon(&self) -> Res {
        if self.has(Condition::RibbonMissing) {
            return Err(ERROR_RIBBON);
        }
        Ok(Answer::Text(self.ribbon.ribbon_type.clone()))
    }

    /// `Rcr`: OK unless the ribbon is at its end.
    pub(super) fn read_colour_ribbon(&self) -> Res {
        if self.has(Condition::RibbonMissing) || self.ribbon_ended() {
            return Err(ERROR_RIBBON);
        }
        Ok(Answer::Ok)
    }

    /// `Sk;f` empty, `Sk;w` near empty: `0`..`3` with two feeders (1 or 2 one
    /// feeder, 3 all), `M` + hex mask with more than two.
    pub(super) fn read_feeders(&self, p: &[String]) -> Res {
        let test: fn(&Printer, usize) -> bool = match p[0].as_str() {
            "f" => Printer::feeder_empty,
            "w" => Printer::feeder_near_empty,
            // Is the feeder there to answer? It always is in the simulation.
            "s" if p.len() == 1 => return Ok(Answer::Ok),
            _ => return Err(ERROR_PARAMETRES),
        };
        if p.len() == 2 && p[1] != "1" {
            return Err(ERROR_PARAMETRES);
        }
        let n = self.feeders.len();
        let mask: u32 = (0..n).map(|i| bit(test(self, i), i as u32)).sum();
        let text = if n > 2 {
            format!("M{mask:X}")
        } else if mask == (1 << n) - 1 && n == 2 {
            "3".to_string()
        } else {
            // One feeder: 1 when empty; two: 1 or 2 names the empty one.
            match mask {
                0 => "0".to_string(),
                1 => "1".to_string(),
                _ => "2".to_string(),
            }
        };
        Ok(Answer::Text(text))
    }
}
