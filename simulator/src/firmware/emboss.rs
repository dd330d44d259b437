//! The emboss extension (`Xel`, `Xec`, `Xee`), as DIALECT.md defines it.
//! Lines are stored masked from the start: the simulator never needs the
//! clear number, and the emboss buffer is not the magnetic encoder.

use super::words::*;
use super::{number, Answer, Cx, Printer, Res};
use crate::condition::Condition;
use crate::model::{EmbossLine, Place};
use dialect::redact::mask_text;

pub(super) const EMBOSS_LINE_MS: u64 = 1_000;

/// Upper-case letters, digits, space and `/ - . ,`.
fn valid_emboss_text(t: &str) -> bool {
    t.bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b" /-.,".contains(&b))
}

impl Printer {
    /// `Xel;line;font;text`.
    pub(super) fn emboss_load(&mut self, p: &[String]) -> Res {
        let emboss = self.available().emboss;
        self.need(emboss)?;
        let line = number(&p[0], 255)? as u8;
        let font = number(&p[1], 255)? as u8;
        let prof = &self.cfg.profile;
        if line == 0 || line > prof.emboss_lines || font > 1 {
            return Err(ERROR_PARAMETRES);
        }
        let text = &p[2];
        if !valid_emboss_text(text) || text.len() > prof.emboss_line_chars[line as usize - 1] {
            return Err(ERROR_PARAMETRES);
        }
        self.emboss_loaded.insert(
            line,
            EmbossLine {
                line,
                font,
                text: mask_text(text),
            },
        );
        Ok(Answer::Ok)
    }

    /// `Xec`.
    pub(super) fn emboss_clear(&mut self) -> Res {
        let emboss = self.available().emboss;
        self.need(emboss)?;
        self.emboss_loaded.clear();
        Ok(Answer::Ok)
    }

    /// `Xee`: embosses (and tips) the loaded lines onto the card inside. The
    /// lines are used up: the next card never gets the previous customer's.
    pub(super) fn emboss(&mut self, cx: &mut Cx) -> Res {
        let emboss = self.available().emboss;
        self.need(emboss)?;
        let i = self.working_card()?;
        self.move_card(i, Place::Inside, cx);
        if self.has(Condition::EmbossFail) {
            self.latched.emboss_fault = true;
            self.cards[i].event(cx.now, "emboss module fault");
            return Err(ERROR_EMBOSS);
        }
        if self.has(Condition::EmbossRibbon) {
            self.latched.emboss_fault = true;
            self.cards[i].event(cx.now, "tipping foil ended");
            return Err(EMBOSS_RIBBON);
        }
        let lines: Vec<EmbossLine> = std::mem::take(&mut self.emboss_loaded)
            .into_values()
            .collect();
        cx.work += EMBOSS_LINE_MS * lines.len() as u64;
        let card = &mut self.cards[i];
        card.event(cx.now, format!("{} emboss line(s)", lines.len()));
        card.record.emboss_lines.extend(lines);
        Ok(Answer::Ok)
    }
}
