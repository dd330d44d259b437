//! Bitmaps and printing. Loading (`Db`, `Dbc`, `Wt`) only fills a panel's
//! bitmap; `Sp;panel` prints it onto the card and uses one ribbon panel.
//! (DIALECT.md: printing is explicit, never implied by the next download.)
//!
//! `Wt` text is masked before it is drawn, so a card number never reaches a
//! bitmap, an image dump or a record in clear.

use super::words::*;
use super::{Answer, Cx, Loaded, Printer, Res};
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
        let num = |s: &String| s.parse::<u32>().map_err(|_| ERROR_PARAMETRES);
        let (x, y, font_no, height) = (num(&p[0])?, num(&p[1])?, num(&p[2])?, num(&p[3])?);
        if font_no > 9 || height == 0 || height > 200 {
            return Err(ERROR_PARAMETRES);
        }
        let text = mask_text(&p[4]);
        let g = self.cfg.profile.geometry;
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

    /// `Db;panel;levels;data` and `Dbc;panel;levels;count;data`.
    pub(super) fn download(&mut self, cmd: &Command) -> Res {
        let panel = panel_param(&cmd.params[0])?;
        let levels = cmd.params[1]
            .parse::<u32>()
            .ok()
            .and_then(Levels::from_number)
            .ok_or(ERROR_PARAMETRES)?;
        // K and O are one bit a pixel; Y, M, C carry levels.
        if panel.is_mono() != (levels == Levels::Two) {
            return Err(ERROR_PARAMETRES);
        }
        let data = cmd.payload.as_deref().ok_or(ERROR_PARAMETRES)?;
        let g = self.cfg.profile.geometry;
        let bitmap = if cmd.mnemonic == "Dbc" {
            if cmd.params[2].parse::<usize>() != Ok(data.len()) {
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
        let i = self.working_card()?;
        self.ribbon_ready(panel)?;
        self.move_card(i, Place::Inside, cx);
        let side = if self.back_side { "back" } else { "front" };
        let (inked, image, texts) = match self.loaded.get(&panel) {
            Some(l) => (
                l.bitmap.inked() as u64,
                Some(PanelImage {
                    panel,
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
