//! The card's chip, played for the kiosk's PC/SC reader.
//!
//! INTERFACE STUB: the signatures below are the contract with the rest of the
//! simulator; the bodies are filled in by the chip work.

use std::net::SocketAddr;

/// How the chip misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ChipFault {
    #[default]
    None,
    /// No answer to reset, no answer to APDUs.
    Mute,
    /// Every APDU answers this status word.
    Status(u16),
}

/// What the chip has seen (no APDU content: it is card data).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChipStats {
    pub inserted: bool,
    pub sessions: u64,
    pub apdus: u64,
    pub last_sw: Option<u16>,
}

/// A virtual card behind pcscd's vpcd driver: connected while the card sits
/// under the contacts of the smart station.
#[derive(Clone)]
pub struct VpcdCard {
    _addr: SocketAddr,
}

impl VpcdCard {
    pub fn new(addr: SocketAddr) -> Self {
        VpcdCard { _addr: addr }
    }
    /// The card arrived under the contacts: connect to vpcd and answer the reader.
    pub fn insert(&self) {}
    /// The card left the station: disconnect.
    pub fn remove(&self) {}
    pub fn set_fault(&self, _fault: ChipFault) {}
    pub fn stats(&self) -> ChipStats {
        ChipStats::default()
    }
}
