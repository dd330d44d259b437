//! Reply words, exactly as `hardware/DIALECT.md` lists them, and the NACK
//! character each failure becomes in ACK/NACK mode.

pub const OK: &str = "OK";
pub const FEEDER_EMPTY: &str = "FEEDER EMPTY";
pub const CARD_JAM: &str = "CARD JAM";
pub const COVER_OPEN: &str = "COVER OPEN";
pub const ERROR_RIBBON: &str = "ERROR RIBBON";
pub const HOPPER_FULL: &str = "HOPPER FULL";
pub const HOPPER_DOOR: &str = "HOPPER DOOR";
pub const REJECT_BOX_FULL: &str = "REJECT BOX FULL";
pub const ERROR_MAG: &str = "ERROR MAG";
pub const ERROR_MAG_DATA: &str = "ERROR MAG DATA";
pub const ERROR_TIME_OUT: &str = "ERROR TIME OUT";
pub const OPT_NOT_AVAILABLE: &str = "OPT NOT AVAILABLE";
pub const ERROR_CDE: &str = "ERROR CDE";
pub const ERROR_PARAMETRES: &str = "ERROR PARAMETRES";
pub const NEED_CLEANING: &str = "NEED CLEANING";
pub const PRINTER_LOCKED: &str = "PRINTER LOCKED";
pub const PRINTER_PAUSED: &str = "PRINTER PAUSED";
pub const NO_CARD_IN_STATION: &str = "NO CARD IN STATION";
pub const ERROR_EMBOSS: &str = "ERROR EMBOSS";
pub const EMBOSS_RIBBON: &str = "EMBOSS RIBBON";

/// The NACK code character of a failure word. Words the dialect gives no
/// character keep their text reply in ACK/NACK mode, so nothing is lost.
pub fn nack_char(word: &str) -> Option<u8> {
    Some(match word {
        ERROR_CDE => b'1',
        ERROR_PARAMETRES => b'2',
        ERROR_TIME_OUT | CARD_JAM => b'T',
        COVER_OPEN => b'C',
        FEEDER_EMPTY => b'F',
        ERROR_RIBBON => b'R',
        "ERROR MAG CHECKSUM" => b'K',
        ERROR_MAG_DATA => b'D',
        ERROR_MAG => b'W',
        ERROR_EMBOSS | EMBOSS_RIBBON => b'E',
        _ => return None,
    })
}
