//! The engine's side of a configuration reload (SIGHUP; the checks and the
//! orchestration are `src/supervision/reload.rs`).
//!
//! What the engine reads per request or per card (card types, production
//! settings, the customer's time) changes at once: the new configuration
//! replaces the old one whole. The printer link and the chip station are
//! built from the configuration once; a new `[printer]` or `[chip]` is
//! kept here and applied by the production loop before its next card,
//! never under one.

use super::Engine;
use crate::chip::{PcscConfig, PcscStation};
use crate::config::Config;
use crate::printer::{Backoff, LinkSettings, Printer, Profile};
use std::sync::Arc;

/// A new printer link (and chip station) to open between cards.
pub struct LinkChange {
    pub settings: LinkSettings,
    pub profile: Arc<Profile>,
    /// `None`: chip personalisation is off.
    pub chip: Option<PcscConfig>,
}

impl Engine {
    /// Puts a reloaded configuration in force. With `link`, the printer
    /// link is replaced before the next card (the current one, if any,
    /// finishes on the old link).
    pub fn reload(&self, config: Config, link: Option<LinkChange>) {
        if let Some(change) = link {
            *self.inner.pending_link.lock().expect("pending link lock") = Some(change);
        }
        self.inner.config.send_replace(Arc::new(config));
        // The idle loop picks up a new link now rather than in 5 s.
        self.inner.wake.notify_one();
    }

    /// Whether a reloaded link waits for the next card.
    pub fn link_pending(&self) -> bool {
        self.inner
            .pending_link
            .lock()
            .expect("pending link lock")
            .is_some()
    }

    /// Replaces the printer link with the pending one. Called by the
    /// production loop between cards, holding the printer's turn: the old
    /// link is closed first (a serial device is opened exclusively).
    pub(super) async fn apply_link(&self) {
        let Some(change) = self
            .inner
            .pending_link
            .lock()
            .expect("pending link lock")
            .take()
        else {
            return;
        };
        self.printer().retire().await;
        let serial = self.db(|s| s.meta("printer_serial")).await.ok().flatten();
        let expected = serial.map(|serial| crate::printer::Identity {
            model: change.profile.model.model_reply.clone(),
            serial,
            firmware: String::new(),
        });
        let endpoint = change.settings.endpoint.to_string();
        let model = change.profile.model.id.clone();
        let printer = Printer::new(
            change.settings,
            change.profile,
            Backoff::default(),
            expected,
            true,
        );
        printer.start_monitor();
        *self.inner.chip.write().expect("chip lock") = change.chip.map(PcscStation::new);
        self.inner.printer.send_replace(printer);
        tracing::info!(endpoint = %endpoint, model = %model, "printer link reopened with the reloaded configuration");
    }

    /// The configuration's time-outs for the printer link in force.
    pub(super) fn link_timeouts(&self) -> crate::printer::profile::Timeouts {
        self.printer().timeouts().clone()
    }
}
