//! Power: a printer switched off on a line that stays open (`silent`) and a
//! restart without the line dropping (`power-cycle`).
//!
//! The firmware decides everything here: what a restart loses, when the
//! printer answers again, what it reports. The shell only runs the timers
//! it asks for ([`Effect::Wake`]) and drops a reply whose power epoch is
//! over ([`Printer::reply_stands`]).
//!
//! What a power cycle loses is what lives in the printer's RAM: the
//! error-management mode not saved with `Pem;mode;s`, the loaded magnetic
//! tracks, bitmaps and emboss lines, the side and feeder choices, the event
//! status bits and the mechanism's work in progress. What is physical or
//! kept in its memory stays: cards where they are (on the path, in the
//! bezel), feeders, ribbon, boxes, counters, the saved mode, and the other
//! raised conditions.

use super::{place_name, Alarm, Effect, Latched, Printer};
use crate::condition::{Condition, DEFAULT_BOOT_MS, MIN_BOOT_MS};
use crate::model::{Place, Stripe};
use crate::state::{Power, PrinterEvent};

/// Entries the printer's log keeps (the oldest go first).
const EVENTS_KEPT: usize = 200;

impl Printer {
    /// Whether the printer answers, and if not, why.
    pub fn power(&self) -> Power {
        if self.has(Condition::Silent(None)) {
            Power::Silent
        } else if self.has(Condition::PowerCycle(None)) {
            Power::Booting
        } else {
            Power::On
        }
    }

    pub(super) fn answers(&self) -> bool {
        self.power() == Power::On
    }

    /// Whether a reply computed in `epoch` (see [`super::Outcome`]) may
    /// still go out: not if the printer went off since, even briefly.
    pub fn reply_stands(&self, epoch: u64) -> bool {
        epoch == self.power_epoch && self.answers()
    }

    /// The printer's log, oldest first.
    pub fn events(&self) -> &[PrinterEvent] {
        &self.events
    }

    pub(super) fn log(&mut self, now: u64, what: impl Into<String>) {
        if self.events.len() >= EVENTS_KEPT {
            self.events.remove(0);
        }
        self.events.push(PrinterEvent {
            t_ms: now,
            what: what.into(),
        });
    }

    /// A power cycle's boot time: the argument as given, else the default
    /// scaled by `speed` and never below [`MIN_BOOT_MS`].
    pub fn boot_ms(&self, ms: Option<u64>) -> u64 {
        ms.unwrap_or_else(|| self.cfg.scaled(DEFAULT_BOOT_MS).max(MIN_BOOT_MS))
    }

    /// `silent` raised: nothing answers from now on; nothing is lost.
    pub(super) fn silence_starts(&mut self, ms: Option<u64>, now: u64) -> Vec<Effect> {
        self.power_epoch += 1;
        self.alarm_seq += 1;
        self.silence_alarm = self.alarm_seq;
        let until = ms.map_or("until cleared".to_string(), |ms| format!("for {ms} ms"));
        self.log(
            now,
            format!("power off: silent {until}, the line stays open"),
        );
        ms.map(|ms| Effect::Wake {
            after_ms: ms,
            alarm: Alarm::SilenceEnds(self.silence_alarm),
        })
        .into_iter()
        .collect()
    }

    /// `power-cycle` raised: the power goes off now (RAM lost) and the
    /// printer boots for [`Printer::boot_ms`], silent meanwhile.
    pub(super) fn power_cycle_starts(&mut self, ms: Option<u64>, now: u64) -> Vec<Effect> {
        let boot = self.boot_ms(ms);
        self.power_epoch += 1;
        self.alarm_seq += 1;
        self.boot_alarm = self.alarm_seq;
        self.error_mode = self.saved_error_mode;
        self.ack_nack = self.saved_ack_nack;
        self.pending_tracks = Stripe::default();
        self.loaded.clear();
        self.emboss_loaded.clear();
        self.sequence = false;
        self.back_side = false;
        self.selected_feeder = 0;
        self.latched = Latched::default();
        self.busy_until = self.busy_until.min(now);
        for c in self
            .cards
            .iter_mut()
            .filter(|c| c.record.place.in_path() || c.record.place == Place::Bezel)
        {
            let at = place_name(c.record.place);
            c.event(now, format!("power cycle: stays at {at}"));
        }
        tracing::warn!(boot_ms = boot, "power cycle: the printer restarts");
        self.log(
            now,
            format!(
                "power cycle: power off, booting for {boot} ms; error mode back to {} (saved)",
                self.saved_error_mode
            ),
        );
        vec![Effect::Wake {
            after_ms: boot,
            alarm: Alarm::Booted(self.boot_alarm),
        }]
    }

    /// The boot is over: the next `Rst` answer reports the restart.
    pub(super) fn booted(&mut self, now: u64) {
        self.latched.just_rebooted = true;
        tracing::info!("power cycle: booted");
        self.log(
            now,
            "booted: INF just_rebooted set until the next Rst answer",
        );
    }

    /// A timer the firmware asked for has run out. An old timer (the
    /// condition was cleared or raised again since) does nothing.
    pub fn alarm(&mut self, alarm: Alarm, now: u64) -> Vec<Effect> {
        let was_off = !self.answers();
        match alarm {
            Alarm::SilenceEnds(n)
                if n == self.silence_alarm && self.has(Condition::Silent(None)) =>
            {
                self.conditions.retain(|c| c.name() != "silent");
                tracing::info!("silence over");
                self.log(now, "silence over");
            }
            Alarm::Booted(n) if n == self.boot_alarm && self.has(Condition::PowerCycle(None)) => {
                self.conditions.retain(|c| c.name() != "power-cycle");
                self.booted(now);
            }
            _ => return Vec::new(),
        }
        if was_off {
            self.maybe_resume(now)
        } else {
            Vec::new()
        }
    }

    /// After a silence or a boot ended: if the printer answers again, the
    /// customer who wanted the presented card meanwhile takes it now.
    pub(super) fn maybe_resume(&mut self, now: u64) -> Vec<Effect> {
        if !self.answers() {
            return Vec::new();
        }
        self.log(now, "power on: answering");
        let waiting = self.bezel_index().map(|i| self.cards[i].record.seq);
        match self.deferred_take.take() {
            Some(card) if waiting == Some(card) && self.take_after().is_some() => {
                vec![Effect::Presented {
                    card,
                    take_after: Some(0),
                }]
            }
            _ => Vec::new(),
        }
    }
}
