//! Typed operations: every command the agent sends, in one place.
//!
//! An [`Op`] knows its frame, what a success looks like, which time-out class
//! governs it, whether it moves the card (a physical step), and whether its
//! parameters or reply carry card data that must never be logged.

use crate::frame::Command;
use crate::panel::{self, Bitmap, Panel};
use bytes::Bytes;

/// The sensors of `Rse` named in public material. The guide lists c, m, o,
/// p and r; f, n and b come from other sources and a real firmware may
/// refuse them (`ERROR CDE`): profiles say which a firmware answers
/// (`[commands] sensors`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sensor {
    Cover,
    Feeder,
    FeederNearEmpty,
    Bezel,
    CardPresent,
    MagFeederStop,
    Colour,
    CodedDisc,
}

impl Sensor {
    pub const ALL: [Sensor; 8] = [
        Sensor::Cover,
        Sensor::Feeder,
        Sensor::FeederNearEmpty,
        Sensor::Bezel,
        Sensor::CardPresent,
        Sensor::MagFeederStop,
        Sensor::Colour,
        Sensor::CodedDisc,
    ];
    /// The letters the programming guide lists.
    pub const GUIDE: [Sensor; 5] = [
        Sensor::Colour,
        Sensor::MagFeederStop,
        Sensor::Cover,
        Sensor::CardPresent,
        Sensor::CodedDisc,
    ];

    pub fn from_letter(letter: &str) -> Option<Sensor> {
        Sensor::ALL.into_iter().find(|s| s.letter() == letter)
    }

    pub fn letter(self) -> &'static str {
        match self {
            Sensor::Cover => "o",
            Sensor::Feeder => "f",
            Sensor::FeederNearEmpty => "n",
            Sensor::Bezel => "b",
            Sensor::CardPresent => "p",
            Sensor::MagFeederStop => "m",
            Sensor::Colour => "c",
            Sensor::CodedDisc => "r",
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Sensor::Cover => "cover",
            Sensor::Feeder => "feeder",
            Sensor::FeederNearEmpty => "feeder_near_empty",
            Sensor::Bezel => "bezel",
            Sensor::CardPresent => "card_present",
            Sensor::MagFeederStop => "mag_feeder_stop",
            Sensor::Colour => "colour",
            Sensor::CodedDisc => "coded_disc",
        }
    }
}

/// Counters of `Rco`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    PrintedPanels,
    InsertedCards,
    CleaningsDone,
    RibbonCardsLeft,
    /// Cards put in the reject box (`Rco;r`): not in the public guide; used
    /// only where the profile says the model has it (`reject_counter`).
    Rejected,
    /// The cleaning interval in cards (`Rco;m`): read only where the
    /// profile's `[cleaning]` table says the firmware answers it.
    CleaningInterval,
}

impl Counter {
    pub fn letter(self) -> &'static str {
        match self {
            Counter::PrintedPanels => "p",
            Counter::InsertedCards => "c",
            Counter::CleaningsDone => "n",
            Counter::RibbonCardsLeft => "l",
            Counter::Rejected => "r",
            Counter::CleaningInterval => "m",
        }
    }
}

/// What a success reply looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `OK` (or ACK in ACK/NACK mode).
    Ok,
    /// Any text that is not an error word.
    Text,
}

/// Which profile time-out governs an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeoutClass {
    /// Reads and parameter settings.
    Command,
    /// Card movements inside the printer (insert, station, eject).
    Move,
    /// Magnetic write and read.
    Magnetic,
    /// Printing one panel.
    Print,
    /// Panel download: scales with the payload size.
    Download { bytes: usize },
    /// Embossing.
    Emboss,
    /// Cleaning cycle, test card, reset.
    Maintenance,
}

/// Every operation the agent performs.
#[derive(Clone)]
pub enum Op {
    ReadModel,
    ReadSerial,
    ReadFirmware,
    /// Status words (`Rst`): this project's status command, see `hardware/DIALECT.md`.
    ReadStatus,
    ReadSensor(Sensor),
    ReadCardPosition,
    ReadCleaning,
    ReadRejectBox,
    ReadFeeders,
    ReadFeederWarnings,
    ReadRibbonType,
    ReadCounter(Counter),
    ReadErrorMode,
    SetErrorMode(u32),
    /// `Pmi;F`: insert from the feeders.
    InsertFromFeeder,
    /// `Piem;feeder;0`: feeder 1..=4, 0 for automatic.
    SelectFeeder(u8),
    Insert,
    ToSmartStation,
    ToContactlessStation,
    /// `Dm;track;data`: track content without sentinels or LRC (the printer adds them).
    LoadTrack {
        track: u8,
        data: String,
    },
    WriteMagnetic,
    ReadTrack(u8),
    SetRibbon(String),
    StartSequence,
    FrontSide,
    ClearBitmap(Panel),
    /// `Wt;x;y;font;height;text` into the K bitmap with a resident font.
    WriteText {
        x: u32,
        y: u32,
        font: u8,
        height: u32,
        text: String,
    },
    /// A whole panel, compressed (`Dbc`) or raw (`Db`).
    Download {
        panel: Panel,
        bitmap: Bitmap,
        compressed: bool,
    },
    PrintPanel(Panel),
    /// `Se`: end of sequence, card to the bezel for the customer.
    EjectToCustomer,
    /// `Ser`: into the reject box (also retracts a card waiting in the bezel).
    Reject,
    Clean,
    TestCard,
    SoftReset,
    ClearStatus,
    /// Emboss extension (`Xel`, `Xec`, `Xee`): see `hardware/DIALECT.md`.
    EmbossLoadLine {
        line: u8,
        font: u8,
        text: String,
    },
    EmbossClear,
    Emboss,
    /// A technician's command, sent as it is.
    Raw(Command),
}

impl Op {
    pub fn command(&self) -> Command {
        use Op::*;
        match self {
            ReadModel => Command::new("Rtp"),
            ReadSerial => Command::new("Rsn"),
            ReadFirmware => Command::new("Rfv"),
            ReadStatus => Command::new("Rst"),
            ReadSensor(s) => Command::new("Rse").param(s.letter()),
            ReadCardPosition => Command::new("Rlr").param("p"),
            ReadCleaning => Command::new("Rlr").param("r"),
            ReadRejectBox => Command::new("Rlr").param("h"),
            ReadFeeders => Command::new("Sk").param("f"),
            ReadFeederWarnings => Command::new("Sk").param("w"),
            ReadRibbonType => Command::new("Rr"),
            ReadCounter(c) => Command::new("Rco").param(c.letter()),
            ReadErrorMode => Command::new("Rem"),
            SetErrorMode(m) => Command::new("Pem").param(m),
            InsertFromFeeder => Command::new("Pmi").param("F"),
            SelectFeeder(n) => Command::new("Piem").param(n).param(0),
            Insert => Command::new("Si"),
            ToSmartStation => Command::new("Sis"),
            ToContactlessStation => Command::new("Sic"),
            LoadTrack { track, data } => Command::new("Dm").param(track).param(data),
            WriteMagnetic => Command::new("Smw"),
            ReadTrack(t) => Command::new("Smr").param(t),
            SetRibbon(r) => Command::new("Pr").param(r),
            StartSequence => Command::new("Ss"),
            FrontSide => Command::new("Sr"),
            ClearBitmap(p) => Command::new("Wcb").param(p.letter()),
            WriteText {
                x,
                y,
                font,
                height,
                text,
            } => Command::new("Wt")
                .param(x)
                .param(y)
                .param(font)
                .param(height)
                .param(text),
            Download {
                panel,
                bitmap,
                compressed,
            } => {
                if *compressed {
                    let data = panel::compress(bitmap);
                    Command::new("Dbc")
                        .param(panel.letter())
                        .param(bitmap.levels.number())
                        .param(data.len())
                        .with_payload(Bytes::from(data))
                } else {
                    Command::new("Db")
                        .param(panel.letter())
                        .param(bitmap.levels.number())
                        .with_payload(Bytes::from(panel::pack(bitmap)))
                }
            }
            PrintPanel(p) => Command::new("Sp").param(p.letter()),
            EjectToCustomer => Command::new("Se"),
            Reject => Command::new("Ser"),
            Clean => Command::new("Scp"),
            TestCard => Command::new("St"),
            SoftReset => Command::new("Srs"),
            ClearStatus => Command::new("Scs"),
            EmbossLoadLine { line, font, text } => {
                Command::new("Xel").param(line).param(font).param(text)
            }
            EmbossClear => Command::new("Xec"),
            Emboss => Command::new("Xee"),
            Raw(c) => c.clone(),
        }
    }

    pub fn expects(&self) -> Expect {
        use Op::*;
        match self {
            ReadModel | ReadSerial | ReadFirmware | ReadStatus | ReadSensor(_)
            | ReadCardPosition | ReadCleaning | ReadRejectBox | ReadFeeders
            | ReadFeederWarnings | ReadRibbonType | ReadCounter(_) | ReadErrorMode
            | ReadTrack(_) | Raw(_) => Expect::Text,
            _ => Expect::Ok,
        }
    }

    pub fn timeout_class(&self) -> TimeoutClass {
        use Op::*;
        match self {
            Insert | ToSmartStation | ToContactlessStation | EjectToCustomer | Reject => {
                TimeoutClass::Move
            }
            WriteMagnetic | ReadTrack(_) => TimeoutClass::Magnetic,
            PrintPanel(_) => TimeoutClass::Print,
            Download { .. } => TimeoutClass::Download {
                bytes: self.command().payload.map_or(0, |p| p.len()),
            },
            Emboss => TimeoutClass::Emboss,
            Clean | TestCard | SoftReset => TimeoutClass::Maintenance,
            Raw(c) => match c.payload.as_ref() {
                Some(p) => TimeoutClass::Download { bytes: p.len() },
                None => TimeoutClass::Maintenance,
            },
            _ => TimeoutClass::Command,
        }
    }

    /// Moves the card or consumes supplies: after a crash it is in doubt and is
    /// never repeated on its own.
    pub fn is_physical(&self) -> bool {
        use Op::*;
        matches!(
            self,
            Insert
                | ToSmartStation
                | ToContactlessStation
                | WriteMagnetic
                | PrintPanel(_)
                | EjectToCustomer
                | Reject
                | Clean
                | TestCard
                | Emboss
                | Raw(_)
        )
    }

    /// Parameters or reply carry card data: logs and errors show neither.
    pub fn is_sensitive(&self) -> bool {
        matches!(
            self,
            Op::LoadTrack { .. }
                | Op::ReadTrack(_)
                | Op::WriteText { .. }
                | Op::EmbossLoadLine { .. }
                | Op::Download { .. }
        )
    }

    /// A short name for logs and journals (never the parameters of sensitive ops).
    pub fn name(&self) -> String {
        let c = self.command();
        if self.is_sensitive() {
            match self {
                Op::LoadTrack { track, .. } => format!("Dm;{track}"),
                Op::ReadTrack(t) => format!("Smr;{t}"),
                Op::Download { panel, .. } => format!("{};{}", c.mnemonic, panel.letter()),
                _ => c.mnemonic,
            }
        } else {
            c.display_redacted()
        }
    }
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Op({})", self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensitive_ops_never_show_their_data() {
        let op = Op::LoadTrack {
            track: 1,
            data: "B4000001234567899^DOE/JOHN^28121010000".into(),
        };
        assert_eq!(op.name(), "Dm;1");
        assert!(!format!("{op:?}").contains("4000001234567899"));
    }

    #[test]
    fn downloads_scale_their_timeout_with_the_payload() {
        let bm = Bitmap::blank(panel::Geometry::default(), panel::Levels::Two);
        let raw = Op::Download {
            panel: Panel::K,
            bitmap: bm.clone(),
            compressed: false,
        };
        assert_eq!(
            raw.timeout_class(),
            TimeoutClass::Download { bytes: 82_296 }
        );
        assert_eq!(raw.command().payload.unwrap().len(), 82_296);
        let dbc = Op::Download {
            panel: Panel::K,
            bitmap: bm,
            compressed: true,
        };
        // A white panel is one byte a line.
        assert_eq!(dbc.timeout_class(), TimeoutClass::Download { bytes: 1016 });
    }
}
