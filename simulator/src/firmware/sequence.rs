//! A print job as the vendor's drivers send it, and the guide's commands a
//! field tool asks.
//!
//! Between `Ss` and `Se` the printer runs a sequence: it takes a card from
//! the feeder by itself (no `Si`) when the first panel needs one, prints each
//! panel as it is downloaded (on the front after `Sr`, on the back after
//! `Sv`), and `Se` ejects the card. Outside a sequence a download only loads
//! the bitmap and `Sp` prints it, which is how this project's agent drives
//! the printer (one command per physical step). Source: the reference fact
//! sheet, "What drivers that print on real printers send".
//!
//! The settings the vendor's driver sends without the guide explaining them
//! (`Pdt`, `Mr`, `Ppws`) are accepted and change nothing in the simulation.

use super::words::*;
use super::{number, Answer, Cx, Printer, Res};
use dialect::panel::Panel;

impl Printer {
    /// `Ss`: a sequence starts, on the front.
    pub(super) fn start_sequence(&mut self) -> Res {
        self.sequence = true;
        self.back_side = false;
        Ok(Answer::Ok)
    }

    /// `Se[;1]`: ends the sequence (if one runs) and ejects the card. The
    /// `;1` the vendor's driver adds is not explained in public material; the
    /// simulator treats it as `Se`.
    pub(super) fn end_sequence(&mut self, p: &[String], cx: &mut Cx) -> Res {
        if p.first().is_some_and(|v| v != "1") {
            return Err(ERROR_PARAMETRES);
        }
        self.sequence = false;
        self.eject(cx)
    }

    /// The card a panel prints on: the one on the path, or in a sequence
    /// with none there yet, a new one from the feeder. The ribbon is checked
    /// before a card is taken, so a missing ribbon leaves the feeder alone.
    pub(super) fn card_for_print(
        &mut self,
        panel: Panel,
        cx: &mut Cx,
    ) -> Result<usize, &'static str> {
        if self.sequence && self.path_index().is_none() {
            self.ribbon_ready(panel)?;
            let i = self.take_card(cx)?;
            self.cards[i].event(cx.now, "taken by the print sequence");
            return Ok(i);
        }
        let i = self.working_card()?;
        self.ribbon_ready(panel)?;
        Ok(i)
    }

    /// `Pmi;F|M|B[;s]`: `s` saves the choice (the simulator keeps no
    /// difference: the feeder choice is `Piem`'s).
    pub(super) fn insertion_mode(&mut self, p: &[String]) -> Res {
        if p.get(1).is_some_and(|s| s != "s") {
            return Err(ERROR_PARAMETRES);
        }
        match p[0].as_str() {
            "F" | "B" => Ok(Answer::Ok),
            // Kiosk printers have no manual slot.
            "M" => self.need(false).map(|_| Answer::Ok),
            _ => Err(ERROR_PARAMETRES),
        }
    }

    /// `Pc;panel;+|-|=;value` contrast (and `Pl`, `Ps` in the same shape):
    /// checked, then without effect on the simulation.
    pub(super) fn print_setting(&self, p: &[String]) -> Res {
        if p.len() != 3 || Panel::from_letter(&p[0]).is_none() {
            return Err(ERROR_PARAMETRES);
        }
        if !matches!(p[1].as_str(), "+" | "-" | "=") {
            return Err(ERROR_PARAMETRES);
        }
        number(&p[2], 255)?;
        Ok(Answer::Ok)
    }

    /// `Pdt`, `Mr`, `Ppws`: one word of letters or digits.
    pub(super) fn driver_setting(&self, p: &[String]) -> Res {
        let v = &p[0];
        if v.is_empty() || v.len() > 8 || !v.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ERROR_PARAMETRES);
        }
        Ok(Answer::Ok)
    }

    /// `Sie`: a card from the feeder straight out (a movement test).
    pub(super) fn insert_eject(&mut self, cx: &mut Cx) -> Res {
        self.insert(cx)?;
        self.eject(cx)
    }

    /// `Ssd;panel`: prints the panel from the bitmap already in memory,
    /// without a download (blank when nothing was loaded).
    pub(super) fn print_without_download(&mut self, p: &str, cx: &mut Cx) -> Res {
        self.print_panel(p, cx)
    }

    /// `Rkn`, the print head's kit number.
    pub(super) fn read_kit_number(&self) -> Res {
        Ok(Answer::Text(self.cfg.kit_number.clone()))
    }

    /// `Rck`, the firmware checksum.
    pub(super) fn read_checksum(&self) -> Res {
        Ok(Answer::Text(self.cfg.firmware_checksum.clone()))
    }
}
