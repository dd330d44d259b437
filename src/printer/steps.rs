//! The physical steps of a card, as typed operations on the [`Printer`].
//!
//! Each step is one unit the production engine journals (intent before,
//! outcome after). A step either succeeds or returns the fault with its
//! standard code; none retries a physical movement on its own.

use super::conn::Connection;
use super::driver::Printer;
use crate::codes::{ErrorCode, Fault};
use dialect::ops::Op;
use dialect::panel::{Bitmap, Panel};
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// A magnetic track to write: content without sentinels or LRC.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Track {
    pub number: u8,
    pub data: String,
}

impl std::fmt::Debug for Track {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Track({}, {} chars)", self.number, self.data.len())
    }
}

/// A line of resident-font text on the K panel.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TextLine {
    pub x: u32,
    pub y: u32,
    pub font: u8,
    pub height: u32,
    pub text: String,
}

impl std::fmt::Debug for TextLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TextLine({},{} {})",
            self.x,
            self.y,
            dialect::redact::mask_text(&self.text)
        )
    }
}

/// A line for the emboss module.
#[derive(Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EmbossLine {
    pub line: u8,
    pub font: u8,
    pub text: String,
}

impl std::fmt::Debug for EmbossLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "EmbossLine({} {})",
            self.line,
            dialect::redact::mask_text(&self.text)
        )
    }
}

/// How a presented card ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The kiosk application (or the customer at its prompt) accepts the card.
    Accept,
    /// Refused: the card goes to the reject box.
    Refuse,
}

/// How waiting for the customer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeEnd {
    Taken,
    NotTaken,
    Refused,
}

impl TakeEnd {
    /// The fault of a card that was not taken.
    pub fn fault(self, take: Duration) -> Fault {
        match self {
            TakeEnd::Taken => Fault::new(ErrorCode::UNKNOWN_ERROR, "other", "the card was taken"),
            TakeEnd::NotTaken => Fault::new(
                ErrorCode::PRD_TIMEOUT,
                "timed-out",
                format!("the card was not taken within {} s", take.as_secs_f32()),
            ),
            TakeEnd::Refused => Fault::new(
                ErrorCode::PRD_FINAL_VALIDATION_NOK,
                "refused",
                "the card was refused at final validation",
            ),
        }
    }
}

/// Where the agent believes the card is, for recovery after a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardWhere {
    None,
    Inside,
    Presented,
    Unknown,
}

/// Polling of the bezel: quick at first (a customer often takes the card at
/// once), backing off to a slow pace for one who takes their time.
const POLL_FIRST: Duration = Duration::from_millis(2);
const POLL_MAX: Duration = Duration::from_millis(50);

impl Printer {
    /// Can the card in progress go on? Reads the status words: the first
    /// error flag set (cover open, jam, ...) is the fault, except flags the
    /// profile marks `between_cards` (the ribbon's last panel or the
    /// cleaning counter's last card used by this very card). Before a card
    /// starts, the engine checks every flag (`Printer::refresh_supplies`).
    /// Firmware without status words passes: its faults surface as reply
    /// words at the step that meets them.
    pub async fn check_ready(&self) -> Result<(), Fault> {
        let profile = self.profile().clone();
        self.with_conn(move |c| {
            Box::pin(async move {
                let Ok(words) = c.read_status().await? else {
                    return Ok(Ok(()));
                };
                // A supply this card's own printing used up (`between_cards`
                // flags) stops the next card, not this one.
                match super::faults::first_error_flag_where(&profile, &words, |f| !f.between_cards)
                {
                    Some(f) => Ok(Err(Fault::new(
                        f.code.expect("error flags have codes"),
                        f.reason.clone(),
                        format!("the printer is not ready: status flag {} is set", f.name),
                    ))),
                    None => Ok(Ok(())),
                }
            })
        })
        .await
    }

    /// Chooses the feeder (1-based) on multi-feeder models and sets feeder insertion.
    pub async fn select_feeder(&self, feeder: u8) -> Result<(), Fault> {
        let feeders = self.profile().capabilities.feeders;
        if feeder == 0 || feeder > feeders {
            return Err(Fault::new(
                ErrorCode::PRT_SETUP_ERROR,
                "setup",
                format!(
                    "feeder {feeder} does not exist: the {} has {feeders}",
                    self.profile().model.name
                ),
            ));
        }
        self.run(Op::InsertFromFeeder).await?;
        if feeders > 1 {
            self.run(Op::SelectFeeder(feeder)).await?;
        }
        Ok(())
    }

    /// Takes a card from the chosen feeder into the printer.
    pub async fn insert(&self) -> Result<(), Fault> {
        self.run(Op::Insert).await.map(drop)
    }

    /// Parks the card under the contacts of the smart station (the chip is then
    /// reached through PC/SC).
    pub async fn to_smart_station(&self) -> Result<(), Fault> {
        self.require(
            self.profile().capabilities.smart_station,
            "a contact smart-card station",
        )?;
        self.run(Op::ToSmartStation).await.map(drop)
    }

    /// Writes the tracks and reads each one back: a read-back that differs from
    /// what was written is `PRD_MAGSTRIPE`. Card data never appears in the fault.
    pub async fn encode_magnetic(&self, tracks: &[Track]) -> Result<(), Fault> {
        self.require(self.profile().capabilities.magnetic, "a magnetic encoder")?;
        if tracks.is_empty() {
            return Ok(());
        }
        let tracks = tracks.to_vec();
        self.with_conn(move |c| {
            Box::pin(async move {
                let mut ops: Vec<Op> = tracks.iter().map(|t| Op::LoadTrack { track: t.number, data: t.data.clone() }).collect();
                ops.push(Op::WriteMagnetic);
                if let Err(f) = c.run_all(ops).await? {
                    return Ok(Err(f));
                }
                for t in &tracks {
                    let back = match c.run(&Op::ReadTrack(t.number)).await? {
                        Ok(b) => b,
                        Err(f) => return Ok(Err(f)),
                    };
                    if back != t.data {
                        return Ok(Err(Fault::new(
                            ErrorCode::PRD_MAGSTRIPE,
                            "encoder-error",
                            format!(
                                "track {} read back differs from what was written ({} characters written, {} read, first difference at character {})",
                                t.number,
                                t.data.len(),
                                back.len(),
                                first_difference(&t.data, &back) + 1
                            ),
                        )));
                    }
                }
                Ok(Ok(()))
            })
        })
        .await
    }

    /// Prints resident-font text on the K panel.
    pub async fn print_text(&self, lines: &[TextLine]) -> Result<(), Fault> {
        let lines = lines.to_vec();
        let texts = lines.into_iter().map(|l| Op::WriteText {
            x: l.x,
            y: l.y,
            font: l.font,
            height: l.height,
            text: l.text,
        });
        let ops: Vec<Op> = std::iter::once(Op::ClearBitmap(Panel::K))
            .chain(texts)
            .chain([Op::PrintPanel(Panel::K)])
            .collect();
        self.with_conn(move |c| Box::pin(c.run_all(ops))).await
    }

    /// Downloads whole panels (compressed unless `raw`) and prints each one.
    pub async fn print_panels(&self, panels: Vec<(Panel, Bitmap)>, raw: bool) -> Result<(), Fault> {
        let geometry = self.profile().geometry;
        if let Some((p, b)) = panels.iter().find(|(_, b)| b.geometry != geometry) {
            return Err(Fault::new(
                ErrorCode::PRD_UNEXPECTED_DATA,
                "other",
                format!(
                    "panel {} is {}x{}, the printer's panels are {}x{}",
                    p.letter(),
                    b.geometry.width,
                    b.geometry.height,
                    geometry.width,
                    geometry.height
                ),
            ));
        }
        let ops: Vec<Op> = panels
            .into_iter()
            .flat_map(|(panel, bitmap)| {
                [
                    Op::Download {
                        panel,
                        bitmap,
                        compressed: !raw,
                    },
                    Op::PrintPanel(panel),
                ]
            })
            .collect();
        self.with_conn(move |c| Box::pin(c.run_all(ops))).await
    }

    /// Embosses the lines (emboss extension).
    pub async fn emboss(&self, lines: &[EmbossLine]) -> Result<(), Fault> {
        let caps = &self.profile().capabilities;
        self.require(caps.emboss, "an emboss module")?;
        for l in lines {
            let max = caps
                .emboss_line_chars
                .get(usize::from(l.line).wrapping_sub(1))
                .copied();
            match max {
                None => {
                    return Err(Fault::new(
                        ErrorCode::PRD_UNEXPECTED_DATA,
                        "other",
                        format!(
                            "emboss line {} does not exist (the module has {})",
                            l.line, caps.emboss_lines
                        ),
                    ))
                }
                Some(max) if l.text.len() > max => {
                    return Err(Fault::new(
                        ErrorCode::PRD_UNEXPECTED_DATA,
                        "other",
                        format!(
                            "emboss line {} holds {} characters, at most {max} fit",
                            l.line,
                            l.text.len()
                        ),
                    ))
                }
                _ => {}
            }
        }
        let loads = lines.iter().map(|l| Op::EmbossLoadLine {
            line: l.line,
            font: l.font,
            text: l.text.clone(),
        });
        let ops: Vec<Op> = std::iter::once(Op::EmbossClear)
            .chain(loads)
            .chain([Op::Emboss])
            .collect();
        self.with_conn(move |c| Box::pin(c.run_all(ops))).await
    }

    /// Sends the card to the bezel for the customer.
    pub async fn present(&self) -> Result<(), Fault> {
        self.run(Op::EjectToCustomer).await.map(drop)
    }

    /// Sends the card inside (or waiting in the bezel) to the reject box.
    pub async fn reject(&self) -> Result<(), Fault> {
        self.run(Op::Reject).await.map(drop)
    }

    /// Cards the printer has put in its reject box (`Rco;r`, where the
    /// profile says the firmware counts them).
    pub async fn rejected_count(&self) -> Result<u64, Fault> {
        let t = self
            .run(Op::ReadCounter(dialect::ops::Counter::Rejected))
            .await?;
        dialect::status::parse_count(&t).map_err(|why| {
            Fault::new(
                ErrorCode::PRD_UNEXPECTED_DATA,
                "other",
                format!("Rco;r: {why}"),
            )
        })
    }

    /// Is a presented card still waiting in the bezel? Asked after `Se`
    /// only: the card it presented is then the only one the printer holds.
    pub async fn card_waiting_in_bezel(&self) -> Result<bool, Fault> {
        let profile = self.profile().clone();
        self.with_conn(move |c| {
            Box::pin(async move {
                // The status words' flag, where the firmware has them (a
                // profile without them is never sent `Rst`).
                if let Some(flag) = profile.flag("card_eject") {
                    if let Ok(s) = c.read_status().await? {
                        return Ok(Ok(s.bit(&flag.word, flag.bit)));
                    }
                }
                // Then the bezel sensor's voltage, where the firmware has it.
                if profile.commands.has_sensor(dialect::ops::Sensor::Bezel) {
                    let v = match c.run(&Op::ReadSensor(dialect::ops::Sensor::Bezel)).await? {
                        Ok(v) => v,
                        Err(f) => return Ok(Err(f)),
                    };
                    return Ok(dialect::status::parse_voltage(&v).map(|v| v > 2.5).map_err(
                        |why| {
                            Fault::new(
                                ErrorCode::PRD_UNEXPECTED_DATA,
                                "other",
                                format!("Rse;b: {why}"),
                            )
                        },
                    ));
                }
                // The guide's commands alone: the card position. A card
                // waiting in the bezel is still held by the printer (`CARD`,
                // or the older `ERR CARD`), and after `Se` no other card is.
                let t = match c.read_text(&Op::ReadCardPosition).await? {
                    Ok(t) => t,
                    Err(f) => return Ok(Err(f)),
                };
                Ok(
                    match dialect::status::parse_card_position(&t, profile.commands.card_position) {
                        Ok(dialect::status::CardPosition::None) => Ok(false),
                        Ok(_) => Ok(true),
                        Err(why) => Err(Fault::new(
                            ErrorCode::PRD_UNEXPECTED_DATA,
                            "other",
                            format!("Rlr;p: {}", dialect::redact::mask_text(&why)),
                        )),
                    },
                )
            })
        })
        .await
    }

    /// Waits until the presented card leaves the bezel, the kiosk's final
    /// validation refuses it, or `take` runs out. It moves nothing: the caller
    /// journals a retraction before asking for one.
    pub async fn wait_take<V>(&self, take: Duration, verdict: V) -> Result<TakeEnd, Fault>
    where
        V: Future<Output = Verdict>,
    {
        let deadline = Instant::now() + take;
        tokio::pin!(verdict);
        let mut verdict_done = false;
        let mut poll = POLL_FIRST;
        loop {
            if !self.card_waiting_in_bezel().await? {
                return Ok(TakeEnd::Taken);
            }
            if Instant::now() >= deadline {
                return Ok(TakeEnd::NotTaken);
            }
            let pause = poll.min(deadline.saturating_duration_since(Instant::now()));
            poll = (poll * 2).min(POLL_MAX);
            if verdict_done {
                tokio::time::sleep(pause).await;
                continue;
            }
            tokio::select! {
                v = &mut verdict => {
                    verdict_done = true;
                    if v == Verdict::Refuse {
                        return Ok(TakeEnd::Refused);
                    }
                }
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// [`Printer::wait_take`], then the retraction of a card not taken or
    /// refused: `PRD_TIMEOUT` or `PRD_FINAL_VALIDATION_NOK`. For callers that
    /// journal nothing (field tools, tests of the link).
    pub async fn await_take<V>(&self, take: Duration, verdict: V) -> Result<(), Fault>
    where
        V: Future<Output = Verdict>,
    {
        match self.wait_take(take, verdict).await? {
            TakeEnd::Taken => Ok(()),
            end => Err(self.retract(end.fault(take)).await),
        }
    }

    async fn retract(&self, fault: Fault) -> Fault {
        match self.reject().await {
            Ok(()) => Fault {
                description: format!("{}; it was retracted to the reject box", fault.description),
                ..fault
            },
            Err(f) => Fault {
                description: format!(
                    "{}; retracting it failed: {} {}",
                    fault.description, f.code, f.description
                ),
                ..fault
            },
        }
    }

    /// Asks the printer where the card is (for recovery after a restart).
    pub async fn locate_card(&self) -> Result<CardWhere, Fault> {
        let profile = self.profile().clone();
        self.with_conn(move |c: &mut Connection| {
            Box::pin(async move {
                if let Ok(s) = c.read_status().await? {
                    let set = |n: &str| profile.flag(n).is_some_and(|f| s.bit(&f.word, f.bit));
                    if set("card_eject") {
                        return Ok(Ok(CardWhere::Presented));
                    }
                    if [
                        "card_feeder",
                        "card_print",
                        "card_smart",
                        "card_contactless",
                        "card_jam",
                    ]
                    .iter()
                    .any(|n| set(n))
                    {
                        return Ok(Ok(CardWhere::Inside));
                    }
                    return Ok(Ok(CardWhere::None));
                }
                // Without status words, the card position in the firmware's
                // words. It cannot tell a card in the bezel from one inside,
                // and the older `ERR CARD` gives no position at all: either
                // is a card the printer holds, to be rejected.
                match c.read_text(&Op::ReadCardPosition).await? {
                    Ok(t) => Ok(Ok(
                        match dialect::status::parse_card_position(&t, profile.commands.card_position) {
                            Ok(dialect::status::CardPosition::None) => CardWhere::None,
                            Ok(_) => CardWhere::Inside,
                            Err(why) => {
                                tracing::warn!(why = %dialect::redact::mask_text(&why), "the printer's card position is unreadable");
                                CardWhere::Unknown
                            }
                        },
                    )),
                    Err(f) => Ok(Err(f)),
                }
            })
        })
        .await
    }

    fn require(&self, has: bool, what: &str) -> Result<(), Fault> {
        if has {
            Ok(())
        } else {
            Err(Fault::new(
                ErrorCode::PRT_SETUP_ERROR,
                "option-missing",
                format!("the {} profile has no {what}", self.profile().model.id),
            ))
        }
    }
}

fn first_difference(a: &str, b: &str) -> usize {
    a.bytes()
        .zip(b.bytes())
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}
