//! Chip personalisation through the kiosk's PC/SC reader.
//!
//! INTERFACE STUB: the signatures below are the contract with the rest of the
//! agent; the bodies are filled in by the chip work.

use crate::codes::{ErrorCode, Fault};
use std::fmt;

/// One command of a personalisation script and the status words it may answer.
#[derive(Clone, PartialEq, Eq)]
pub struct ApduStep {
    pub command: Vec<u8>,
    /// Accepted status words (usually `[0x9000]`).
    pub expect_sw: Vec<u16>,
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
        PcscConfig { reader: None, card_wait_ms: 3000, apdu_timeout_ms: 5000 }
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
    pub async fn personalise(&self, _script: &ChipScript) -> Result<ChipReport, Fault> {
        Err(Fault::new(ErrorCode::PRT_SETUP_ERROR, "other", "chip personalisation is not implemented yet"))
    }
}
