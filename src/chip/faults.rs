//! The faults of chip personalisation. Descriptions name readers, step numbers,
//! counts and status words only: never command bytes, response data or
//! anything else of the script.

use super::script::{sw_list, StepError, Sw};
use crate::codes::{ErrorCode, Fault};

pub(crate) const SERVICE_MISSING: &str = "smart-card-service-missing";
pub(crate) const READER_MISSING: &str = "smart-card-reader-missing";
pub(crate) const READER_BUSY: &str = "smart-card-reader-busy";
pub(crate) const MEDIA_MISSING: &str = "media-missing";
pub(crate) const CHIP_ERROR: &str = "chip-error";

const SERVICE_HINT: &str = "start it (systemctl start pcscd.socket, or pcscd) and check with pcsc_scan that it lists the reader";

/// pcscd cannot be reached (or refuses us).
pub(crate) fn service_missing(what: &str) -> Fault {
    Fault::new(
        ErrorCode::PRT_SETUP_ERROR,
        SERVICE_MISSING,
        format!("{what}: {SERVICE_HINT}"),
    )
}

/// The PC/SC client library cannot be loaded (see `pcsclite.rs`): nothing
/// of pcscd is reachable.
pub(crate) fn library_missing() -> Fault {
    Fault::new(
        ErrorCode::PRT_SETUP_ERROR,
        SERVICE_MISSING,
        format!(
            "PC/SC library {} not found: install pcscd and libpcsclite1",
            super::pcsclite::LIBRARY
        ),
    )
}

/// No reader, or none matching the configured name.
pub(crate) fn reader_missing(wanted: Option<&str>, seen: &[String]) -> Fault {
    let description = match (wanted, seen.is_empty()) {
        (_, true) => "the smart-card service sees no reader: check the contact reader's cable and driver (pcsc_scan lists the readers)".to_string(),
        (Some(w), false) => format!(
            "no smart-card reader matches \"{w}\" (readers seen: {}): fix the chip reader setting or the reader's cable",
            seen.join(", ")
        ),
        (None, false) => format!("no usable smart-card reader (readers seen: {})", seen.join(", ")),
    };
    Fault::new(ErrorCode::PRT_SETUP_ERROR, READER_MISSING, description)
}

/// The chosen reader vanished while we used it.
pub(crate) fn reader_gone(reader: &str, when: &str) -> Fault {
    Fault::new(
        ErrorCode::PRT_SETUP_ERROR,
        READER_MISSING,
        format!("smart-card reader \"{reader}\" disappeared {when}: check its cable and driver (pcsc_scan lists the readers)"),
    )
}

/// Another program keeps the reader.
pub(crate) fn reader_busy(reader: &str, waited_ms: u64) -> Fault {
    Fault::new(
        ErrorCode::PRT_SETUP_ERROR,
        READER_BUSY,
        format!("smart-card reader \"{reader}\" stayed in use by another program for {waited_ms} ms: close the other smart-card program"),
    )
}

/// No card reached the contacts in time.
pub(crate) fn card_missing(reader: &str, waited_ms: u64) -> Fault {
    Fault::new(
        ErrorCode::PRD_SMARTCARD_CARD_NOT_IN_READER,
        MEDIA_MISSING,
        format!("no card in smart-card reader \"{reader}\" after {waited_ms} ms: the card did not reach the contacts"),
    )
}

/// The card did not answer to reset: a mute chip, or no chip at all.
pub(crate) fn chip_mute(detail: &str) -> Fault {
    Fault::new(
        ErrorCode::PRD_SMARTCARD,
        CHIP_ERROR,
        format!("chip did not answer to reset ({detail})"),
    )
}

/// Any other chip or reader failure.
pub(crate) fn chip_error(description: String) -> Fault {
    Fault::new(ErrorCode::PRD_SMARTCARD, CHIP_ERROR, description)
}

/// A step answered a status word it does not accept.
pub(crate) fn unexpected_sw(step: usize, total: usize, sw: u16, expected: &[u16]) -> Fault {
    chip_error(format!(
        "step {step} of {total} answered {}, expected {}",
        Sw(sw),
        sw_list(expected)
    ))
}

/// The script is unusable: nothing was sent to the card.
pub(crate) fn bad_script(step: usize, total: usize, error: StepError) -> Fault {
    Fault::new(
        ErrorCode::PRD_UNEXPECTED_DATA,
        "other",
        format!("chip script step {step} of {total}: {error}; nothing was sent to the card"),
    )
}

/// How one exchange with the card failed (no data: only the kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LinkError {
    /// The card left the reader.
    Removed,
    /// Another program reset the card.
    Reset,
    /// The chip does not answer.
    Unresponsive,
    /// An answer without status word.
    NoStatus,
    /// The chip answered more than the reader can hold.
    Overflow,
    /// The reader reported a communication failure; the label names it.
    Comm(&'static str),
    /// pcscd went away.
    ServiceGone,
    /// The reader went away.
    ReaderGone,
}

impl LinkError {
    /// The fault of this failure at `step` of `total`.
    pub(crate) fn at_step(self, reader: &str, step: usize, total: usize) -> Fault {
        let at = format!("at step {step} of {total}");
        match self {
            LinkError::Removed => chip_error(format!("card left the reader {at}")),
            LinkError::Reset => chip_error(format!("card was reset by another program {at}")),
            LinkError::Unresponsive => {
                chip_error(format!("chip did not answer (unresponsive card) {at}"))
            }
            LinkError::NoStatus => chip_error(format!("chip did not answer (no status word) {at}")),
            LinkError::Overflow => chip_error(format!(
                "chip answered more data than the reader accepts {at}"
            )),
            LinkError::Comm(what) => chip_error(format!("chip communication failed ({what}) {at}")),
            LinkError::ServiceGone => {
                service_missing(&format!("the smart-card service (pcscd) stopped {at}"))
            }
            LinkError::ReaderGone => reader_gone(reader, &at),
        }
    }
}
