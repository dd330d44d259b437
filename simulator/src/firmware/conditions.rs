//! Conditions on the firmware side: raising and clearing them, the reply
//! faults that act on every frame (`slow`, `garbage`), and the scenario
//! entries that fire at a card's step.

use super::{Cx, Effect, Printer};
use crate::chip::ChipFault;
use crate::condition::{check_name, Condition, DEFAULT_SLOW_MS, DEFAULT_UNREACHABLE_MS};
use crate::model::Place;
use crate::scenario::{Action, Step, Trigger};
use dialect::Command;

impl Printer {
    /// Whether a condition of this kind is raised (its argument ignored).
    pub fn has(&self, c: Condition) -> bool {
        self.conditions.iter().any(|x| x.name() == c.name())
    }

    pub fn conditions(&self) -> &[Condition] {
        &self.conditions
    }

    pub(super) fn slow_ms(&self) -> u64 {
        self.conditions
            .iter()
            .find_map(|c| match c {
                Condition::Slow(ms) => Some(ms.unwrap_or(DEFAULT_SLOW_MS)),
                _ => None,
            })
            .unwrap_or(0)
    }

    /// Malformed bytes in place of the next reply, while `garbage` lasts.
    pub(super) fn next_garbage(&mut self) -> Option<Vec<u8>> {
        let pos = self
            .conditions
            .iter()
            .position(|c| matches!(c, Condition::Garbage(_)))?;
        if let Condition::Garbage(Some(n)) = self.conditions[pos] {
            if n <= 1 {
                self.conditions.remove(pos);
            } else {
                self.conditions[pos] = Condition::Garbage(Some(n - 1));
            }
        }
        // A real mix: non-ASCII, NUL, a truncated word; each ends like a reply.
        const PATTERNS: &[&[u8]] = &[
            b"\xff\xfeO\x00K",
            b"OK\x00\x00",
            b"\x80\xc3(\x1b",
            b"FEEDER E\xff",
        ];
        let mut raw = PATTERNS[self.garbage_seq % PATTERNS.len()].to_vec();
        self.garbage_seq += 1;
        raw.push(self.cfg.reply_terminator.byte());
        Some(raw)
    }

    /// Raises a condition at `now` (replacing one of the same kind).
    pub fn raise(&mut self, c: Condition, now: u64) -> Vec<Effect> {
        self.conditions.retain(|x| x.name() != c.name());
        self.conditions.push(c);
        tracing::info!(condition = %c, "condition raised");
        self.log(now, format!("raised {c}"));
        match c {
            Condition::ChipMute => vec![Effect::ChipFault(ChipFault::Mute)],
            Condition::Unreachable(ms) => vec![Effect::LinkDown {
                ms: ms.unwrap_or(DEFAULT_UNREACHABLE_MS),
            }],
            Condition::Silent(ms) => self.silence_starts(ms, now),
            Condition::PowerCycle(ms) => self.power_cycle_starts(ms, now),
            _ => Vec::new(),
        }
    }

    /// Clears one condition by name, or all of them. Clearing a jam takes the
    /// card out (a technician's hands); clearing `hopper-full` or
    /// `reject-full` empties that box.
    pub fn clear(&mut self, name: Option<&str>, now: u64) -> Result<Vec<Effect>, String> {
        let names: Vec<&'static str> = match name {
            Some(n) => vec![check_name(n)?],
            None => self.conditions.iter().map(|c| c.name()).collect(),
        };
        let mut effects = Vec::new();
        let was_off = !self.answers();
        for name in names {
            let raised = self.conditions.iter().any(|c| c.name() == name);
            self.conditions.retain(|c| c.name() != name);
            tracing::info!(condition = name, "condition cleared");
            if raised {
                self.log(now, format!("cleared {name}"));
            }
            match name {
                "chip-mute" => effects.push(Effect::ChipFault(ChipFault::None)),
                "unreachable" => effects.push(Effect::LinkUp),
                "feeder-jam" => self.remove_jammed(Place::FeederJammed, now),
                "hopper-jam" => self.remove_jammed(Place::HopperJammed, now),
                "hopper-full" => self.hopper.count = 0,
                "reject-full" => self.reject.count = 0,
                // Clearing a boot finishes it now.
                "power-cycle" if raised => self.booted(now),
                _ => {}
            }
        }
        if was_off {
            effects.extend(self.maybe_resume(now));
        }
        Ok(effects)
    }

    pub(super) fn remove_jammed(&mut self, place: Place, now: u64) {
        for c in self.cards.iter_mut().filter(|c| c.record.place == place) {
            c.record.place = Place::Removed;
            c.event(now, "jam cleared: card taken out");
        }
    }

    /// Fires the scenario entries waiting for this command's card step.
    pub(super) fn fire_step_triggers(&mut self, cmd: &Command, cx: &mut Cx) {
        let step = match cmd.mnemonic.as_str() {
            "Si" => Some((Step::Insert, self.cards.len() as u64 + 1)),
            "Sis" | "Sic" => self.path_seq().map(|s| (Step::Smart, s)),
            "Smw" => self.path_seq().map(|s| (Step::Magnetic, s)),
            "Sp" => self.path_seq().map(|s| (Step::Print, s)),
            "Xee" => self.path_seq().map(|s| (Step::Emboss, s)),
            "Se" => self.path_seq().map(|s| (Step::Eject, s)),
            _ => None,
        };
        if let Some((step, card)) = step {
            self.fire(step, card, cx);
        }
    }

    pub(super) fn fire(&mut self, step: Step, card: u64, cx: &mut Cx) {
        let due: Vec<Action> = self
            .triggers
            .iter_mut()
            .filter(|t| !t.fired && t.entry.trigger == Trigger::Card { card, step })
            .map(|t| {
                t.fired = true;
                tracing::info!(entry = t.entry.index, card, ?step, "scenario entry fires");
                t.entry.action.clone()
            })
            .collect();
        for action in due {
            match action {
                Action::Raise(c) => {
                    let e = self.raise(c, cx.now);
                    cx.effects.extend(e);
                }
                Action::Clear(name) => {
                    // Names were checked when the scenario was read.
                    if let Ok(e) = self.clear(name.as_deref(), cx.now) {
                        cx.effects.extend(e);
                    }
                }
            }
        }
    }
}
