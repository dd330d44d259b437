//! An in-memory station for tests of the layers above: same script checks,
//! same step runner and same faults as the PC/SC station, with a card that
//! misbehaves on demand.

use super::faults::{self, LinkError};
use super::run::{run_script, CardChannel};
use super::{ChipReport, ChipScript, PcscConfig};
use crate::codes::Fault;
use std::sync::{Arc, Mutex, MutexGuard};

/// How the in-memory station or its card misbehaves. Steps are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MemoryFault {
    #[default]
    None,
    /// pcscd is not running.
    ServiceMissing,
    /// No reader is connected.
    ReaderMissing,
    /// No card reaches the contacts.
    NoCard,
    /// The chip does not answer to reset.
    Mute,
    /// Every APDU answers this status word.
    Status(u16),
    /// The APDU of this step answers this status word, the others `9000`.
    StatusAt { step: usize, sw: u16 },
    /// The card leaves the reader at this step.
    RemovedAt { step: usize },
    /// The chip stops answering at this step.
    UnresponsiveAt { step: usize },
}

/// What the in-memory card has seen (no APDU content).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryStats {
    /// Personalisations that reached the card.
    pub sessions: u64,
    /// APDUs received, T=0 follow-ups included.
    pub apdus: u64,
    pub last_sw: Option<u16>,
}

#[derive(Debug, Default)]
struct Inner {
    fault: MemoryFault,
    stats: MemoryStats,
}

/// A station and card in memory. Clones share the card.
#[derive(Debug, Clone, Default)]
pub struct MemoryStation {
    inner: Arc<Mutex<Inner>>,
}

impl MemoryStation {
    /// The reader name faults mention.
    pub const READER: &'static str = "Memory Reader 00 00";

    /// A station with a cooperative card (every APDU answers `9000`).
    pub fn new() -> Self {
        MemoryStation::default()
    }

    pub fn with_fault(fault: MemoryFault) -> Self {
        let station = MemoryStation::default();
        station.set_fault(fault);
        station
    }

    pub fn set_fault(&self, fault: MemoryFault) {
        self.lock().fault = fault;
    }

    pub fn stats(&self) -> MemoryStats {
        self.lock().stats.clone()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs the script as `PcscStation::personalise` would.
    pub async fn personalise(&self, script: &ChipScript) -> Result<ChipReport, Fault> {
        let total = script.steps.len();
        script
            .validate()
            .map_err(|(n, e)| faults::bad_script(n, total, e))?;
        if total == 0 {
            return Ok(ChipReport { steps_run: 0 });
        }
        let fault = {
            let mut inner = self.lock();
            match inner.fault {
                MemoryFault::ServiceMissing => {
                    return Err(faults::service_missing(
                        "the smart-card service (pcscd) is not running",
                    ))
                }
                MemoryFault::ReaderMissing => return Err(faults::reader_missing(None, &[])),
                MemoryFault::NoCard => {
                    return Err(faults::card_missing(
                        Self::READER,
                        PcscConfig::default().card_wait_ms,
                    ))
                }
                MemoryFault::Mute => return Err(faults::chip_mute("unresponsive card")),
                _ => {}
            }
            inner.stats.sessions += 1;
            inner.fault
        };
        let mut channel = MemoryChannel {
            station: self,
            fault,
            step: 0,
        };
        run_script(&mut channel, script, Self::READER)
    }
}

struct MemoryChannel<'a> {
    station: &'a MemoryStation,
    fault: MemoryFault,
    step: usize,
}

impl CardChannel for MemoryChannel<'_> {
    fn begin_step(&mut self, step: usize, _total: usize) -> bool {
        self.step = step;
        true
    }

    fn exchange(&mut self, _command: &[u8]) -> Result<u16, LinkError> {
        let mut inner = self.station.lock();
        inner.stats.apdus += 1;
        let sw = match self.fault {
            MemoryFault::Status(sw) => sw,
            MemoryFault::StatusAt { step, sw } if step == self.step => sw,
            MemoryFault::RemovedAt { step } if step == self.step => return Err(LinkError::Removed),
            MemoryFault::UnresponsiveAt { step } if step == self.step => {
                return Err(LinkError::Unresponsive)
            }
            _ => 0x9000,
        };
        inner.stats.last_sw = Some(sw);
        Ok(sw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chip::{ApduStep, ChipStation};
    use crate::codes::ErrorCode;

    fn script(n: usize) -> ChipScript {
        let steps = (0..n)
            .map(|i| ApduStep::expecting_9000(vec![0x80, 0xDA, 0x9F, i as u8, 0x02, 0x12, 0x34]))
            .collect();
        ChipScript { steps }
    }

    #[tokio::test]
    async fn a_cooperative_card_runs_every_step() {
        let station = MemoryStation::new();
        assert_eq!(station.personalise(&script(5)).await.unwrap().steps_run, 5);
        assert_eq!(
            station.stats(),
            MemoryStats {
                sessions: 1,
                apdus: 5,
                last_sw: Some(0x9000)
            }
        );
        assert_eq!(
            station
                .personalise(&ChipScript::default())
                .await
                .unwrap()
                .steps_run,
            0
        );
        assert_eq!(station.stats().sessions, 1);
    }

    #[tokio::test]
    async fn each_fault_gives_its_standard_code() {
        let cases = [
            (
                MemoryFault::ServiceMissing,
                ErrorCode::PRT_SETUP_ERROR,
                "smart-card-service-missing",
                None,
            ),
            (
                MemoryFault::ReaderMissing,
                ErrorCode::PRT_SETUP_ERROR,
                "smart-card-reader-missing",
                None,
            ),
            (
                MemoryFault::NoCard,
                ErrorCode::PRD_SMARTCARD_CARD_NOT_IN_READER,
                "media-missing",
                None,
            ),
            (
                MemoryFault::Mute,
                ErrorCode::PRD_SMARTCARD,
                "chip-error",
                Some("chip did not answer to reset (unresponsive card)"),
            ),
            (
                MemoryFault::Status(0x6A80),
                ErrorCode::PRD_SMARTCARD,
                "chip-error",
                Some("step 1 of 12 answered 6A80, expected 9000"),
            ),
            (
                MemoryFault::StatusAt {
                    step: 4,
                    sw: 0x6A80,
                },
                ErrorCode::PRD_SMARTCARD,
                "chip-error",
                Some("step 4 of 12 answered 6A80, expected 9000"),
            ),
            (
                MemoryFault::UnresponsiveAt { step: 3 },
                ErrorCode::PRD_SMARTCARD,
                "chip-error",
                Some("chip did not answer (unresponsive card) at step 3 of 12"),
            ),
            (
                MemoryFault::RemovedAt { step: 7 },
                ErrorCode::PRD_SMARTCARD,
                "chip-error",
                Some("card left the reader at step 7 of 12"),
            ),
        ];
        for (fault, code, reason, description) in cases {
            let station = MemoryStation::with_fault(fault);
            let f = station.personalise(&script(12)).await.unwrap_err();
            assert_eq!(
                (f.code, f.reason.as_str()),
                (code, reason),
                "{fault:?}: {f}"
            );
            if let Some(d) = description {
                assert_eq!(f.description, d, "{fault:?}");
            }
            // Never the script's bytes.
            assert!(
                !f.description.contains("1234") && !f.description.contains("80DA"),
                "{f}"
            );
        }
    }

    #[tokio::test]
    async fn it_serves_as_a_chip_station() {
        let station: Box<dyn ChipStation> =
            Box::new(MemoryStation::with_fault(MemoryFault::StatusAt {
                step: 2,
                sw: 0x6283,
            }));
        let mut s = script(3);
        s.steps[1].expect_sw = vec![0x9000, 0x6283];
        assert_eq!(station.personalise(&s).await.unwrap().steps_run, 3);
    }
}
