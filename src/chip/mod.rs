//! Chip personalisation through the kiosk's PC/SC reader.
//!
//! [`PcscStation`] replays a [`ChipScript`] on the card under the contacts of
//! the smart-card station, through pcsc-lite (`pcscd`): it waits for the card
//! (`card_wait_ms`), connects exclusively (T=0 or T=1), sends each step, and
//! stops at the first status word the step does not accept. `61xx` and `6Cxx`
//! answers the step does not list are followed up as T=0 requires (GET
//! RESPONSE; the command again with the right Le).
//!
//! Faults (standard codes; descriptions hold step numbers, counts, status
//! words and reader names, never bytes of the script or of the answers):
//! - pcscd unreachable, or the PC/SC library (`libpcsclite.so.1`, loaded at run
//!   time) missing: `PRT_SETUP_ERROR` / `smart-card-service-missing`;
//! - no (matching) reader: `PRT_SETUP_ERROR` / `smart-card-reader-missing`;
//! - another program keeps the reader: `PRT_SETUP_ERROR` / `smart-card-reader-busy`;
//! - no card within `card_wait_ms`: `PRD_SMARTCARD_CARD_NOT_IN_READER` / `media-missing`;
//! - mute chip, failed exchange, card removed, no answer within
//!   `apdu_timeout_ms`, unexpected status word: `PRD_SMARTCARD` / `chip-error`;
//! - a step that is not a well-formed command APDU: `PRD_UNEXPECTED_DATA`
//!   (checked before anything reaches the card).
//!
//! [`MemoryStation`] behaves the same in memory; [`ChipStation`] covers both.
//! [`script`] parses scripts from text.

use crate::codes::Fault;
use futures::future::BoxFuture;
use std::fmt;

mod faults;
mod memory;
mod pcsc_station;
mod pcsclite;
mod run;
pub mod script;

pub use memory::{MemoryFault, MemoryStation, MemoryStats};
pub use script::{ApduCase, ScriptError, StepError};

/// One command of a personalisation script and the status words it may answer.
#[derive(Clone, PartialEq, Eq)]
pub struct ApduStep {
    pub command: Vec<u8>,
    /// Accepted status words (usually `[0x9000]`).
    pub expect_sw: Vec<u16>,
}

impl Drop for ApduStep {
    // Scripts are card data: every copy is wiped when it goes, the copies made
    // for the blocking PC/SC task included.
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.command);
    }
}

impl fmt::Debug for ApduStep {
    // Scripts are card data: never print their bytes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApduStep({} bytes)", self.command.len())
    }
}

#[derive(Clone, Default, PartialEq, Eq, Debug)]
pub struct ChipScript {
    pub steps: Vec<ApduStep>,
}

/// What a successful personalisation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipReport {
    pub steps_run: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct PcscConfig {
    /// Reader name, or a part of it; the first reader when absent.
    pub reader: Option<String>,
    /// How long to wait for the card to reach the contacts after `Sis`.
    pub card_wait_ms: u64,
    /// Time-out of one APDU exchange.
    pub apdu_timeout_ms: u64,
}

impl Default for PcscConfig {
    fn default() -> Self {
        PcscConfig {
            reader: None,
            card_wait_ms: 3000,
            apdu_timeout_ms: 5000,
        }
    }
}

/// The smart-card station reached through pcsc-lite.
#[derive(Debug, Clone)]
pub struct PcscStation {
    pub config: PcscConfig,
}

impl PcscStation {
    pub fn new(config: PcscConfig) -> Self {
        PcscStation { config }
    }

    /// Runs the script against the card under the contacts.
    ///
    /// An empty script succeeds with 0 steps without touching the reader. A
    /// script with a malformed step fails before touching it.
    pub async fn personalise(&self, script: &ChipScript) -> Result<ChipReport, Fault> {
        pcsc_station::personalise(&self.config, script).await
    }

    /// The names of the readers pcscd sees (technician diagnostics).
    pub async fn readers() -> Result<Vec<String>, Fault> {
        readers().await
    }
}

/// Whether pcsc-lite's client library (`libpcsclite.so.1`, loaded at run
/// time) is there: without it every chip operation fails with
/// `PRT_SETUP_ERROR`.
pub fn pcsc_library_available() -> bool {
    pcsclite::available()
}

/// The names of the readers pcscd sees, in its order (technician diagnostics).
pub async fn readers() -> Result<Vec<String>, Fault> {
    pcsc_station::readers().await
}

/// What pcscd says of each reader right now (technician diagnostics).
pub async fn reader_statuses() -> Result<Vec<ReaderStatus>, Fault> {
    pcsc_station::reader_statuses().await
}

/// One reader as pcscd sees it (no ATR, no card data).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReaderStatus {
    pub name: String,
    pub card_present: bool,
    /// A card is there but did not answer to reset.
    pub card_mute: bool,
    /// A program is connected to the card.
    pub in_use: bool,
    /// A program holds the card exclusively.
    pub exclusive: bool,
    /// pcscd cannot tell the reader's state.
    pub unavailable: bool,
}

/// A station that runs personalisation scripts: [`PcscStation`] in the kiosk,
/// [`MemoryStation`] in tests.
pub trait ChipStation: Send + Sync {
    fn personalise<'a>(
        &'a self,
        script: &'a ChipScript,
    ) -> BoxFuture<'a, Result<ChipReport, Fault>>;
}

impl ChipStation for PcscStation {
    fn personalise<'a>(
        &'a self,
        script: &'a ChipScript,
    ) -> BoxFuture<'a, Result<ChipReport, Fault>> {
        Box::pin(PcscStation::personalise(self, script))
    }
}

impl ChipStation for MemoryStation {
    fn personalise<'a>(
        &'a self,
        script: &'a ChipScript,
    ) -> BoxFuture<'a, Result<ChipReport, Fault>> {
        Box::pin(MemoryStation::personalise(self, script))
    }
}
