//! The printer's firmware, sans I/O: one decoded frame in, one reply (plus
//! the time the mechanism takes and the side effects for the shell) out.
//!
//! Nothing here sleeps, opens a socket or calls the chip: [`Outcome`] tells
//! the async shell how long to wait and what to do (`Effect`), so every rule
//! of the dialect is testable with plain function calls and a fake clock.
//!
//! Order of decisions for a frame, as the brief fixes it:
//! a printer switched off (`silent`, or booting after `power-cycle`) swallows
//! the frame before anything else; then scenario triggers for the card step
//! (one may switch the printer off for this very frame), unreachable (no
//! reply at all), silent again, slow (reply delayed), garbage (reply
//! replaced), then for job commands cover-open > locked > paused, then the
//! command's own checks and faults.

mod cards;
mod conditions;
mod emboss;
mod magnetic;
mod operator;
mod power;
mod printing;
mod sequence;
#[cfg(test)]
mod sequence_tests;
mod status;
#[cfg(test)]
mod tests;
pub mod words;

use crate::chip::ChipFault;
use crate::condition::Condition;
use crate::config::{Customer, SimConfig, DEFAULT_CARD_TYPE, DEFAULT_FEEDER_COUNT};
use crate::model::{BoxState, Card, Counters, EmbossLine, Feeder, Place, Ribbon, Stripe, TextLine};
use crate::profile::Profile;
use crate::scenario::{Entry, Trigger};
use crate::state::{Options, PrinterEvent};
use dialect::panel::{Bitmap, Panel};
use dialect::reply::Malformed;
use dialect::{Command, Inbound, Reply};
use std::collections::BTreeMap;
use words::*;

/// Cards whose printed images are kept for `dump`; older cards keep their record only.
const KEEP_IMAGES_FOR_CARDS: u64 = 50;

/// What the shell must do besides sending the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// The card reached the contacts: `chip.insert()`.
    ChipInsert {
        card: u64,
    },
    /// The card left the station: `chip.remove()`, then store its stats.
    ChipRemove {
        card: u64,
    },
    ChipFault(ChipFault),
    /// Drop every link; bring them back after `ms` unless cleared before.
    LinkDown {
        ms: u64,
    },
    LinkUp,
    /// A card is waiting in the bezel; the customer takes it after `take_after` ms (None: never).
    Presented {
        card: u64,
        take_after: Option<u64>,
    },
    /// Call [`Printer::alarm`] with `alarm` after `after_ms` (the firmware
    /// has already applied `speed` where it applies).
    Wake {
        after_ms: u64,
        alarm: Alarm,
    },
}

/// A timer the firmware asked for. The number tells one raise from the
/// next, so an old timer cannot end a newer silence or boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alarm {
    /// The end of a `silent:ms`.
    SilenceEnds(u64),
    /// The end of a `power-cycle`'s boot.
    Booted(u64),
}

/// The firmware's answer to one frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// `None` when the link is down: nothing goes back.
    pub reply: Option<Reply>,
    /// Time the mechanism works before replying (already scaled by `speed`).
    pub work_ms: u64,
    /// Extra delay of the `slow` condition (not scaled: it is a fault, not a mechanism).
    pub slow_ms: u64,
    pub effects: Vec<Effect>,
    /// The power epoch the reply belongs to: if the printer went off since
    /// (see [`Printer::reply_stands`]), the reply is lost and never sent.
    pub power_epoch: u64,
}

/// A successful answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// `OK`, or ACK in ACK/NACK mode.
    Ok,
    Text(String),
}

pub(crate) type Res = Result<Answer, &'static str>;

/// Per-frame scratch: the clock, the mechanism time (unscaled) and the effects.
pub(crate) struct Cx {
    now: u64,
    work: u64,
    effects: Vec<Effect>,
}

/// Status bits that record an event rather than a state: set when a fault
/// happens, cleared by `Scs`, `Srs` or the next insertion; `just_rebooted`,
/// set by `Srs` and at the end of a boot, is read-to-clear instead: the first
/// `Rst` answer reports it (`Scs` clears it too, an insertion does not).
#[derive(Debug, Clone, Copy, Default)]
struct Latched {
    mag_write_error: bool,
    option_not_available: bool,
    emboss_fault: bool,
    just_rebooted: bool,
}

/// A bitmap loaded for a panel, waiting for `Sp`.
#[derive(Clone)]
struct Loaded {
    bitmap: Bitmap,
    /// `Wt` lines drawn into it (masked), recorded on the card when printed.
    texts: Vec<TextLine>,
}

struct CardTrigger {
    entry: Entry,
    fired: bool,
}

pub struct Printer {
    cfg: SimConfig,
    conditions: Vec<Condition>,
    /// Runtime switches; an option is available when the profile has it and it is on.
    enabled: Options,
    feeders: Vec<Feeder>,
    /// `Piem` choice: 0 automatic, else the feeder number.
    selected_feeder: u8,
    ribbon: Ribbon,
    hopper: BoxState,
    reject: BoxState,
    counters: Counters,
    cards_since_cleaning: u32,
    cards: Vec<Card>,
    /// `Dm` data waiting for `Smw`: the encoder's memory, never shown.
    pending_tracks: Stripe,
    loaded: BTreeMap<Panel, Loaded>,
    /// Between `Ss` and `Se`: downloads print at once, a card is taken
    /// without `Si` (see `sequence.rs`).
    sequence: bool,
    back_side: bool,
    emboss_loaded: BTreeMap<u8, EmbossLine>,
    error_mode: u32,
    /// `Pem;mode;s`: the mode a power cycle falls back to.
    saved_error_mode: u32,
    /// `Pem;4` received: replies are ACK / NACK+code.
    ack_nack: bool,
    saved_ack_nack: bool,
    latched: Latched,
    busy_until: u64,
    customer: Customer,
    verdict: Option<String>,
    /// The card whose chip the reader currently sees.
    chip_card: Option<u64>,
    triggers: Vec<CardTrigger>,
    garbage_seq: usize,
    /// Bumped each time the printer goes off (silent or power cycle).
    power_epoch: u64,
    /// Tells each raise of `silent`/`power-cycle` from the next, for [`Alarm`].
    alarm_seq: u64,
    silence_alarm: u64,
    boot_alarm: u64,
    /// The customer wanted to take this card while the printer was off.
    deferred_take: Option<u64>,
    /// The printer's own log (bounded), for the state.
    events: Vec<PrinterEvent>,
}

impl Printer {
    pub fn new(cfg: &SimConfig) -> Printer {
        let p = &cfg.profile;
        let feeders = (0..p.feeders)
            .map(|i| {
                let f = cfg.feeders.get(i as usize);
                Feeder {
                    number: i + 1,
                    card_type: f.map_or(DEFAULT_CARD_TYPE.to_string(), |f| f.card_type.clone()),
                    count: f.map_or(DEFAULT_FEEDER_COUNT, |f| f.count),
                }
            })
            .collect();
        let ribbon = Ribbon {
            ribbon_type: cfg.ribbon_type.to_lowercase(),
            panels_left: 0,
        };
        let ribbon = Ribbon {
            panels_left: cfg.ribbon_cards.saturating_mul(ribbon.panels_per_card()),
            ..ribbon
        };
        let triggers = cfg
            .scenario
            .iter()
            .flat_map(|s| s.entries.iter())
            .filter(|e| matches!(e.trigger, Trigger::Card { .. }))
            .map(|e| CardTrigger {
                entry: e.clone(),
                fired: false,
            })
            .collect();
        Printer {
            enabled: Options {
                mag: true,
                smart: true,
                contactless: true,
                emboss: true,
                bezel: true,
                reject: true,
            },
            feeders,
            selected_feeder: 0,
            ribbon,
            hopper: BoxState {
                count: 0,
                capacity: cfg.hopper_capacity,
            },
            reject: BoxState {
                count: 0,
                capacity: cfg.reject_capacity,
            },
            counters: Counters::default(),
            cards_since_cleaning: 0,
            cards: Vec::new(),
            pending_tracks: Stripe::default(),
            loaded: BTreeMap::new(),
            sequence: false,
            back_side: false,
            emboss_loaded: BTreeMap::new(),
            error_mode: 0,
            saved_error_mode: 0,
            ack_nack: false,
            saved_ack_nack: false,
            latched: Latched::default(),
            busy_until: 0,
            customer: cfg.customer,
            verdict: None,
            chip_card: None,
            triggers,
            garbage_seq: 0,
            power_epoch: 0,
            alarm_seq: 0,
            silence_alarm: 0,
            boot_alarm: 0,
            deferred_take: None,
            events: Vec::new(),
            conditions: Vec::new(),
            cfg: SimConfig {
                scenario: None,
                ..cfg.clone()
            },
        }
    }

    pub fn profile(&self) -> &Profile {
        &self.cfg.profile
    }

    /// Handles one decoded frame at `now` (ms since the simulator started).
    pub fn handle(&mut self, inbound: &Inbound, now: u64) -> Outcome {
        let mut cx = Cx {
            now,
            work: 0,
            effects: Vec::new(),
        };
        // A printer that is off sees nothing: no trigger, no command, no reply.
        if !self.answers() {
            return self.no_reply(cx);
        }
        // The reply to `Pem` itself follows the mode it arrived in.
        let ack = self.ack_nack();
        // Step triggers first: one may drop the link or switch the printer
        // off for this very command.
        if let Inbound::Command(cmd) = inbound {
            self.fire_step_triggers(cmd, &mut cx);
        }
        // A dropped link or a printer switched off answers nothing at all.
        if self.has(Condition::Unreachable(None)) || !self.answers() {
            return self.no_reply(cx);
        }
        let (result, read) = match inbound {
            Inbound::Command(cmd) => (self.execute(cmd, &mut cx), is_read(&cmd.mnemonic)),
            Inbound::Malformed { raw, .. } => (Err(malformed_word(raw)), false),
        };
        let status_read =
            matches!(inbound, Inbound::Command(c) if c.mnemonic == "Rst") && result.is_ok();
        let mut reply = shape(result, read, ack);
        if let Some(raw) = self.next_garbage() {
            reply = Reply::Malformed {
                raw,
                why: Malformed::BadByte(0xff),
            };
        } else if status_read {
            // Read-to-clear: this answer told the host about the restart.
            self.latched.just_rebooted = false;
        }
        let work_ms = self.cfg.scaled(cx.work);
        self.busy_until = self.busy_until.max(now.saturating_add(work_ms));
        Outcome {
            reply: Some(reply),
            work_ms,
            slow_ms: self.slow_ms(),
            effects: cx.effects,
            power_epoch: self.power_epoch,
        }
    }

    fn no_reply(&self, cx: Cx) -> Outcome {
        Outcome {
            reply: None,
            work_ms: 0,
            slow_ms: 0,
            effects: cx.effects,
            power_epoch: self.power_epoch,
        }
    }

    fn execute(&mut self, cmd: &Command, cx: &mut Cx) -> Res {
        let m = cmd.mnemonic.as_str();
        let Some((min, max)) = arity(m) else {
            return Err(ERROR_CDE);
        };
        if is_job(m) {
            if self.has(Condition::CoverOpen) {
                return Err(COVER_OPEN);
            }
            if self.has(Condition::Locked) {
                return Err(PRINTER_LOCKED);
            }
            if self.has(Condition::Paused) {
                return Err(PRINTER_PAUSED);
            }
        }
        if cmd.params.len() < min
            || cmd.params.len() > max
            || cmd.payload.is_some() != matches!(m, "Db" | "Dbc")
        {
            return Err(ERROR_PARAMETRES);
        }
        let p = &cmd.params;
        match m {
            "Rtp" => Ok(Answer::Text(self.cfg.profile.model_reply.clone())),
            "Rsn" => Ok(Answer::Text(self.cfg.serial.clone())),
            "Rfv" => Ok(Answer::Text(self.cfg.firmware.clone())),
            "Rst" => self.read_status(cx.now),
            "Rse" => self.read_sensor(&p[0]),
            "Rlr" => self.read_lr(&p[0]),
            "Rco" => self.read_counter(&p[0]),
            "Rr" => self.read_ribbon(),
            "Rcr" => self.read_colour_ribbon(),
            // The current mode and the saved one.
            "Rem" => Ok(Answer::Text(format!(
                "{};{}",
                self.error_mode, self.saved_error_mode
            ))),
            "Pem" => {
                let mode = number(&p[0], 255)? as u32;
                let save = match p.get(1).map(String::as_str) {
                    None => false,
                    Some("s") => true,
                    Some(_) => return Err(ERROR_PARAMETRES),
                };
                // The guide's list of values (not its bit table).
                match mode {
                    // A mode replaces the current one, back on the standard
                    // protocol (`Pem;4` adds ACK/NACK on top of it again).
                    0..=3 | 16 | 18 => {
                        self.error_mode = mode;
                        self.ack_nack = false;
                        if save {
                            // Survives a power cycle; without `s` the mode
                            // lasts until one.
                            self.saved_error_mode = mode;
                            self.saved_ack_nack = false;
                        }
                    }
                    // Keeps the mode and adds the ACK/NACK protocol.
                    m if m == self.cfg.profile.ack_nack_mode => {
                        self.ack_nack = true;
                        if save {
                            self.saved_ack_nack = true;
                        }
                    }
                    // Keeps the mode; a magnetic error does not stop the job.
                    5 => {}
                    _ => return Err(ERROR_PARAMETRES),
                }
                Ok(Answer::Ok)
            }
            "Pmi" => self.insertion_mode(p),
            "Piem" => {
                let n = number(&p[0], u64::from(self.cfg.profile.feeders))? as u8;
                if p.len() == 2 && !matches!(p[1].as_str(), "0" | "1" | "2" | "3") {
                    return Err(ERROR_PARAMETRES);
                }
                self.selected_feeder = n;
                Ok(Answer::Ok)
            }
            "Pr" => {
                let t = p[0].to_lowercase();
                if !self.cfg.profile.ribbons.contains(&t) {
                    return Err(ERROR_PARAMETRES);
                }
                self.ribbon.ribbon_type = t;
                Ok(Answer::Ok)
            }
            "Pc" | "Pl" | "Ps" => self.print_setting(p),
            "Pdt" | "Mr" | "Ppws" => self.driver_setting(p),
            // Encoding settings: accepted, no effect on the simulation.
            "Pmc" | "Pmt" | "Pmd" | "Pmtc" | "Pos" => Ok(Answer::Ok),
            "Rkn" => self.read_kit_number(),
            "Rck" => self.read_checksum(),
            "Sie" => self.insert_eject(cx),
            "Ssd" => self.print_without_download(&p[0], cx),
            "Sk" => self.read_feeders(p),
            "Si" => self.insert(cx),
            "Sis" => self.move_to_smart_station(cx),
            "Sic" => self.move_to_contactless_station(cx),
            "Dm" => self.load_track(&p[0], &p[1]),
            "Smw" => self.write_magnetic(cx),
            "Smr" => self.read_track(&p[0], cx),
            "Ss" => self.start_sequence(),
            "Sr" => {
                self.back_side = false;
                Ok(Answer::Ok)
            }
            "Sv" => {
                self.back_side = true;
                Ok(Answer::Ok)
            }
            "Wcb" => self.clear_bitmap(&p[0]),
            "Wt" => self.write_text(p),
            "Db" | "Dbc" => self.download(cmd, cx),
            "Sp" => self.print_panel(&p[0], cx),
            "Se" => self.end_sequence(p, cx),
            "Ser" => self.reject_card(cx),
            "Scp" => {
                self.counters.cleanings += 1;
                self.cards_since_cleaning = 0;
                cx.work += 20_000;
                Ok(Answer::Ok)
            }
            "St" => self.test_card(cx),
            "Srs" => {
                self.pending_tracks = Stripe::default();
                self.loaded.clear();
                self.emboss_loaded.clear();
                self.sequence = false;
                self.back_side = false;
                self.selected_feeder = 0;
                self.latched = Latched {
                    just_rebooted: true,
                    ..Latched::default()
                };
                cx.work += 3_000;
                Ok(Answer::Ok)
            }
            "Scs" => {
                self.latched = Latched::default();
                Ok(Answer::Ok)
            }
            "Sdm" => {
                cx.work += number(&p[0], 600_000)?;
                Ok(Answer::Ok)
            }
            "Xel" => self.emboss_load(p),
            "Xec" => self.emboss_clear(),
            "Xee" => self.emboss(cx),
            _ => Err(ERROR_CDE),
        }
    }

    // ---- cards ------------------------------------------------------------

    fn path_index(&self) -> Option<usize> {
        self.cards.iter().rposition(|c| c.record.place.in_path())
    }

    fn path_seq(&self) -> Option<u64> {
        self.path_index().map(|i| self.cards[i].record.seq)
    }

    fn bezel_index(&self) -> Option<usize> {
        self.cards
            .iter()
            .rposition(|c| c.record.place == Place::Bezel)
    }

    /// The card a mechanical command works on: `ERROR TIME OUT` when there is
    /// none (the printer waits for a card that never comes), `CARD JAM` when
    /// it is jammed.
    fn working_card(&self) -> Result<usize, &'static str> {
        match self.path_index() {
            Some(i) if self.cards[i].record.place.jammed() => Err(CARD_JAM),
            Some(i) => Ok(i),
            None => Err(ERROR_TIME_OUT),
        }
    }

    /// Moves a card, telling the chip when it leaves the contacts.
    fn move_card(&mut self, i: usize, to: Place, cx: &mut Cx) {
        let card = &mut self.cards[i];
        let from = card.record.place;
        if from == to {
            return;
        }
        let seq = card.record.seq;
        if from == Place::SmartStation && self.chip_card == Some(seq) {
            self.chip_card = None;
            cx.effects.push(Effect::ChipRemove { card: seq });
        }
        card.record.place = to;
        card.event(cx.now, format!("moved to {}", place_name(to)));
        // The cleaning counter counts a card once it has left the path: the
        // `cleaning_required` flag then rises between cards, exactly when the
        // next card's print would be refused, never under a card in progress.
        if from.in_path() && !to.in_path() {
            self.cards_since_cleaning = self.cards_since_cleaning.saturating_add(1);
        }
    }

    fn prune_images(&mut self) {
        let newest = self.cards.len() as u64;
        for c in self
            .cards
            .iter_mut()
            .filter(|c| c.record.seq + KEEP_IMAGES_FOR_CARDS <= newest)
        {
            c.images.clear();
        }
    }

    /// ACK/NACK is on once `Pem;4` (the profile's `ack_nack_mode`) was
    /// received, until a power cycle (unless saved).
    fn ack_nack(&self) -> bool {
        self.ack_nack
    }
}

pub(crate) fn place_name(p: Place) -> &'static str {
    match p {
        Place::FeederJammed => "feeder (jammed)",
        Place::Inside => "print position",
        Place::SmartStation => "smart station",
        Place::ContactlessStation => "contactless station",
        Place::Bezel => "bezel",
        Place::HopperJammed => "output (jammed)",
        Place::Hopper => "output hopper",
        Place::RejectBox => "reject box",
        Place::Taken => "customer",
        Place::Removed => "technician",
    }
}

/// Job commands stop on cover, lock and pause; reads and settings answer.
/// `Sk` reads the feeder sensors, so it is a read despite its letter.
fn is_job(m: &str) -> bool {
    m != "Sk" && matches!(m.as_bytes().first(), Some(b'S' | b'D' | b'W' | b'X'))
}

/// Reads answer text in both modes (ACK/NACK only replaces `OK`).
fn is_read(m: &str) -> bool {
    m.starts_with('R') || m == "Sk" || m == "Smr"
}

/// Known mnemonics and their parameter counts (min, max).
fn arity(m: &str) -> Option<(usize, usize)> {
    Some(match m {
        "Rtp" | "Rsn" | "Rfv" | "Rkn" | "Rck" | "Rst" | "Rr" | "Rcr" | "Rem" => (0, 0),
        "Rse" | "Rlr" | "Rco" => (1, 1),
        "Pem" | "Piem" | "Pmt" | "Pmd" | "Pos" | "Pmi" => (1, 2),
        "Pr" | "Pmc" | "Pdt" | "Mr" | "Ppws" => (1, 1),
        "Pc" | "Pl" | "Ps" => (1, 3),
        "Pmtc" => (1, 4),
        "Si" | "Sie" | "Sis" | "Sic" | "Smw" | "Ss" | "Sr" | "Sv" | "Ser" | "Scp" | "Srs"
        | "Scs" | "Xec" | "Xee" => (0, 0),
        "St" | "Se" => (0, 1),
        "Sk" | "Wcb" => (1, 2),
        "Smr" | "Sp" | "Ssd" | "Sdm" => (1, 1),
        "Dm" | "Db" => (2, 2),
        "Dbc" | "Xel" => (3, 3),
        "Wt" => (5, 5),
        _ => return None,
    })
}

/// A frame the decoder could not read: a known mnemonic with broken
/// parameters is a parameter error, anything else an unknown command.
fn malformed_word(raw: &[u8]) -> &'static str {
    let body = raw.strip_prefix(&[dialect::ESC]).unwrap_or(raw);
    let n = body.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    match std::str::from_utf8(&body[..n]) {
        Ok(m) if arity(m).is_some() => ERROR_PARAMETRES,
        _ => ERROR_CDE,
    }
}

/// A number parameter as a strict printer reads it (no sign, no space, no
/// leading zero, at most `max`: `dialect::inbound::strict_number`).
pub(crate) fn number(text: &str, max: u64) -> Result<u64, &'static str> {
    dialect::inbound::strict_number(text, max).ok_or(ERROR_PARAMETRES)
}

fn shape(result: Res, read: bool, ack: bool) -> Reply {
    match result {
        Ok(Answer::Ok) if ack && !read => Reply::Ack,
        Ok(Answer::Ok) => Reply::Text(OK.into()),
        Ok(Answer::Text(t)) => Reply::Text(t),
        Err(word) => match nack_char(word) {
            Some(c) if ack && !read => Reply::Nack(c),
            _ => Reply::Text(word.into()),
        },
    }
}
