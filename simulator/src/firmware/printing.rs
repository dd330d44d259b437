//! Bitmaps and printing. Loading (`Db`, `Dbc`, `Wt`) only fills a panel's
//! bitmap; `Sp;panel` prints it onto the card and uses one ribbon panel.
//! (DIALECT.md: printing is explicit, never implied by the next download.)
//!
//! `Wt` text is masked before it is drawn, so a card number never reaches a
//! bitmap, an image dump or a record in clear.

use super::words::*;
use super::{number, Answer, Cx, Loaded, Printer, Res};
use crate::condition::Condition;
use crate::font;
use crate::model::{PanelImage, PanelPrint, Place, TextLine};
use dialect::panel::{self, Bitmap, Levels, Panel};
use dialect::redact::mask_text;
use dialect::Command;

pub(super) const PRINT_COLOUR_MS: u64 = 2_500;
pub(super) const PRINT_MONO_MS: u64 = 1_500;

fn panel_param(s: &str) -> Result<Panel, &'static str> {
    Panel::from_letter(s).ok_or(ERROR_PARAMETRES)
}

impl Printer {
    /// `Wcb;panel[;value]`.
    pub(super) fn clear_bitmap(&mut self, p: &str) -> Res {
        let panel = panel_param(p)?;
        self.loaded.remove(&panel);
        Ok(Answer::Ok)
    }

    /// `Wt;x;y;font;height;text` into the K bitmap.
    pub(super) fn write_text(&mut self, p: &[String]) -> Res {
        let g = self.cfg.profile.geometry;
        // Card coordinates: x along the long edge, y along the short one.
        let x = number(&p[0], g.height as u64 - 1)? as u32;
        let y = number(&p[1], g.width as u64 - 1)? as u32;
        // Resident fonts 0 (Arial) and 1 (Arial bold).
        let font_no = number(&p[2], 1)? as u32;
        // A height in dots: at most the card's short edge.
        let height = number(&p[3], g.width as u64)? as u32;
        if height == 0 {
            return Err(ERROR_PARAMETRES);
        }
        let text = mask_text(&p[4]);
        let loaded = self.loaded.entry(Panel::K).or_insert_with(|| Loaded {
            bitmap: Bitmap::blank(g, Levels::Two),
            texts: Vec::new(),
        });
        font::draw_text(
            &mut loaded.bitmap,
            x as usize,
            y as usize,
            font::scale_for_height(height),
            &text,
        );
        loaded.texts.push(TextLine {
            x,
            y,
            font: font_no,
            height,
            text,
        });
        Ok(Answer::Ok)
    }

    /// `Db;panel;levels;data` and `Dbc;panel;levels;count;data`; in a
    /// sequence (`Ss`) the panel prints at once.
    pub(super) fn download(&mut self, cmd: &Command, cx: &mut Cx) -> Res {
        let panel = panel_param(&cmd.params[0])?;
        let levels = number(&cmd.params[1], 128)
            .ok()
            .and_then(|n| Levels::from_number(n as u32))
            .ok_or(ERROR_PARAMETRES)?;
        // K and O are one bit a pixel; Y, M, C carry levels.
        if panel.is_mono() != (levels == Levels::Two) {
            return Err(ERROR_PARAMETRES);
        }
        let data = cmd.payload.as_deref().ok_or(ERROR_PARAMETRES)?;
        let g = self.cfg.profile.geometry;
        let bitmap = if cmd.mnemonic == "Dbc" {
            if number(&cmd.params[2], u64::MAX) != Ok(data.len() as u64) {
                return Err(ERROR_PARAMETRES);
            }
            panel::decompress(data, g, levels)
        } else {
            panel::unpack(data, g, levels)
        }
        .map_err(|e| {
            tracing::debug!(error = %e, "panel data refused");
            ERROR_PARAMETRES
        })?;
        self.loaded.insert(
            panel,
            Loaded {
                bitmap,
                texts: Vec::new(),
            },
        );
        if self.sequence {
            let i = self.card_for_print(panel, cx)?;
            return self.print_on(i, panel, cx);
        }
        Ok(Answer::Ok)
    }

    /// Whether a panel can be printed with the ribbon as it is.
    pub(super) fn ribbon_ready(&self, panel: Panel) -> Result<(), &'static str> {
        if self.has(Condition::RibbonMissing)
            || self.has(Condition::RibbonError)
            || self.has(Condition::RibbonEnded)
            || self.ribbon.panels_left == 0
        {
            return Err(ERROR_RIBBON);
        }
        if !self.ribbon.has_panel(panel) {
            return Err(ERROR_PARAMETRES);
        }
        if self.cleaning_required() {
            return Err(NEED_CLEANING);
        }
        Ok(())
    }

    /// `Sp;panel`.
    pub(super) fn print_panel(&mut self, p: &str, cx: &mut Cx) -> Res {
        let panel = panel_param(p)?;
        let i = self.card_for_print(panel, cx)?;
        self.print_on(i, panel, cx)
    }

    /// Prints the loaded bitmap of `panel` on card `i` (checked by
    /// [`Printer::card_for_print`]) and uses one ribbon panel.
    fn print_on(&mut self, i: usize, panel: Panel, cx: &mut Cx) -> Res {
        self.move_card(i, Place::Inside, cx);
        let side = if self.back_side { "back" } else { "front" };
        let (inked, image, texts) = match self.loaded.get(&panel) {
            Some(l) => (
                l.bitmap.inked() as u64,
                Some(PanelImage {
                    panel,
                    side,
                    levels: l.bitmap.levels,
                    data: panel::compress(&l.bitmap),
                }),
                l.texts.clone(),
            ),
            None => (0, None, Vec::new()),
        };
        let card = &mut self.cards[i];
        card.record.panels.push(PanelPrint {
            panel: panel.letter().into(),
            side: side.into(),
            inked,
        });
        card.record.text_lines.extend(texts);
        card.images.extend(image);
        card.event(
            cx.now,
            format!(
                "panel {} printed on the {side} ({inked} pixels inked)",
                panel.letter()
            ),
        );
        self.ribbon.panels_left -= 1;
        self.counters.printed_panels += 1;
        cx.work += if panel.is_mono() {
            PRINT_MONO_MS
        } else {
            PRINT_COLOUR_MS
        };
        self.prune_images();
        Ok(Answer::Ok)
    }
}
