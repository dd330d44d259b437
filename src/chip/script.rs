//! Personalisation scripts as text, and the checks a command APDU must pass
//! before it goes to a card.
//!
//! Text form, one step a line: the command in hex, then optionally `/` and the
//! accepted status words separated by commas (`9000` when absent):
//!
//! ```text
//! # select the payment application
//! 00A4040007A0000000031010/9000
//! 80E2 0000 05 0102030405 / 9000,6283
//! ```
//!
//! Blank lines and `#` comments are skipped; spaces and tabs inside the hex are
//! ignored. Errors name lines, positions and lengths, never the bytes: a script
//! is card data.

use super::{ApduStep, ChipScript};
use std::fmt;
use std::str::FromStr;

/// The status word a step accepts when its line names none.
pub const DEFAULT_SW: u16 = 0x9000;

/// The longest command APDU (extended case 4: header, 3-byte Lc, 65535 data
/// bytes, 2-byte Le).
pub const MAX_APDU_LEN: usize = 4 + 3 + 65535 + 2;

/// Why one step (one line, or one `ApduStep`) is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    #[error("the command is empty")]
    EmptyCommand,
    #[error("character {position} of the command is not a hex digit")]
    BadHexDigit { position: usize },
    #[error("the command has an odd number of hex digits ({digits})")]
    OddHexDigits { digits: usize },
    #[error("the command is {len} bytes long, a command APDU has at least 4 (CLA INS P1 P2)")]
    TooShort { len: usize },
    #[error("the command is {len} bytes long, a command APDU has at most {MAX_APDU_LEN}")]
    TooLong { len: usize },
    #[error("the command's length byte(s) do not match its {len} bytes (ISO 7816-4 cases 1 to 4)")]
    BadLengthFields { len: usize },
    #[error("the step accepts no status word")]
    NoStatusWord,
    #[error("status word {index} is not 4 hex digits")]
    BadStatusWord { index: usize },
    #[error("status word {index} is not an ISO 7816 status (SW1 must be 61 to 6F or 90 to 9F)")]
    InvalidStatusWord { index: usize },
    #[error("the line has more than one '/'")]
    ExtraSlash,
}

/// A script text that does not parse: the line (1-based) and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("chip script line {line}: {error}")]
pub struct ScriptError {
    pub line: usize,
    pub error: StepError,
}

/// The ISO 7816-4 shape of a command APDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApduCase {
    /// Header only.
    Case1,
    /// Header and Le (short, or extended when `extended`).
    Case2 { extended: bool },
    /// Header, Lc and data.
    Case3 { extended: bool, lc: usize },
    /// Header, Lc, data and Le.
    Case4 { extended: bool, lc: usize },
}

/// Checks the command's length fields and tells its case.
pub fn apdu_case(command: &[u8]) -> Result<ApduCase, StepError> {
    let len = command.len();
    if len == 0 {
        return Err(StepError::EmptyCommand);
    }
    if len < 4 {
        return Err(StepError::TooShort { len });
    }
    if len > MAX_APDU_LEN {
        return Err(StepError::TooLong { len });
    }
    let body = &command[4..];
    let bad = StepError::BadLengthFields { len };
    match body.len() {
        0 => Ok(ApduCase::Case1),
        1 => Ok(ApduCase::Case2 { extended: false }),
        n if body[0] != 0 => {
            let lc = usize::from(body[0]);
            if n == 1 + lc {
                Ok(ApduCase::Case3 {
                    extended: false,
                    lc,
                })
            } else if n == 2 + lc {
                Ok(ApduCase::Case4 {
                    extended: false,
                    lc,
                })
            } else {
                Err(bad)
            }
        }
        // Extended forms start with a 00 byte.
        2 => Err(bad),
        3 => Ok(ApduCase::Case2 { extended: true }),
        n => {
            let lc = usize::from(u16::from_be_bytes([body[1], body[2]]));
            if lc == 0 {
                Err(bad)
            } else if n == 3 + lc {
                Ok(ApduCase::Case3 { extended: true, lc })
            } else if n == 5 + lc {
                Ok(ApduCase::Case4 { extended: true, lc })
            } else {
                Err(bad)
            }
        }
    }
}

/// Whether a status word is one a card can answer (SW1 `61..=6F` or `90..=9F`).
pub fn is_valid_sw(sw: u16) -> bool {
    matches!(sw >> 8, 0x61..=0x6F | 0x90..=0x9F)
}

/// Hex digits to bytes; spaces and tabs are ignored. Errors give the position
/// (1-based, counting every character) of a bad digit, never the digit.
pub fn parse_hex(text: &str) -> Result<Vec<u8>, StepError> {
    let mut out = Vec::with_capacity(text.len() / 2);
    let mut high: Option<u8> = None;
    let mut digits = 0usize;
    for (i, c) in text.chars().enumerate() {
        if c == ' ' || c == '\t' {
            continue;
        }
        let v = c
            .to_digit(16)
            .ok_or(StepError::BadHexDigit { position: i + 1 })? as u8;
        digits += 1;
        match high.take() {
            None => high = Some(v),
            Some(h) => out.push(h << 4 | v),
        }
    }
    if high.is_some() {
        return Err(StepError::OddHexDigits { digits });
    }
    Ok(out)
}

fn parse_sw(text: &str, index: usize) -> Result<u16, StepError> {
    let t = text.trim();
    if t.len() != 4 || !t.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(StepError::BadStatusWord { index });
    }
    let sw = u16::from_str_radix(t, 16).map_err(|_| StepError::BadStatusWord { index })?;
    if !is_valid_sw(sw) {
        return Err(StepError::InvalidStatusWord { index });
    }
    Ok(sw)
}

impl ApduStep {
    pub fn new(command: Vec<u8>, expect_sw: Vec<u16>) -> Self {
        ApduStep { command, expect_sw }
    }

    /// A step accepting only `9000`.
    pub fn expecting_9000(command: Vec<u8>) -> Self {
        ApduStep {
            command,
            expect_sw: vec![DEFAULT_SW],
        }
    }

    /// Parses `COMMAND[/SW[,SW...]]` (see the module documentation).
    pub fn parse(line: &str) -> Result<ApduStep, StepError> {
        let mut parts = line.split('/');
        let command_text = parts.next().unwrap_or("");
        let sw_text = parts.next();
        if parts.next().is_some() {
            return Err(StepError::ExtraSlash);
        }
        let command = parse_hex(command_text)?;
        let expect_sw = match sw_text {
            None => vec![DEFAULT_SW],
            Some(t) if t.trim().is_empty() => return Err(StepError::NoStatusWord),
            Some(t) => t
                .split(',')
                .enumerate()
                .map(|(i, sw)| parse_sw(sw, i + 1))
                .collect::<Result<Vec<_>, _>>()?,
        };
        let step = ApduStep { command, expect_sw };
        step.validate()?;
        Ok(step)
    }

    /// Checks the command's shape and the accepted status words.
    pub fn validate(&self) -> Result<ApduCase, StepError> {
        let case = apdu_case(&self.command)?;
        if self.expect_sw.is_empty() {
            return Err(StepError::NoStatusWord);
        }
        if let Some(i) = self.expect_sw.iter().position(|&sw| !is_valid_sw(sw)) {
            return Err(StepError::InvalidStatusWord { index: i + 1 });
        }
        Ok(case)
    }
}

impl FromStr for ApduStep {
    type Err = StepError;
    fn from_str(s: &str) -> Result<Self, StepError> {
        ApduStep::parse(s)
    }
}

impl ChipScript {
    pub fn new(steps: Vec<ApduStep>) -> Self {
        ChipScript { steps }
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Parses a script text (see the module documentation).
    pub fn parse(text: &str) -> Result<ChipScript, ScriptError> {
        let mut steps = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let step = ApduStep::parse(line).map_err(|error| ScriptError { line: i + 1, error })?;
            steps.push(step);
        }
        Ok(ChipScript { steps })
    }

    /// Checks every step; the error names the first bad step (1-based).
    pub fn validate(&self) -> Result<(), (usize, StepError)> {
        for (i, step) in self.steps.iter().enumerate() {
            step.validate().map_err(|e| (i + 1, e))?;
        }
        Ok(())
    }
}

impl FromStr for ChipScript {
    type Err = ScriptError;
    fn from_str(s: &str) -> Result<Self, ScriptError> {
        ChipScript::parse(s)
    }
}

/// A status word as cards print it: `6A80`.
pub(crate) struct Sw(pub u16);

impl fmt::Display for Sw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04X}", self.0)
    }
}

/// `9000`, `9000 or 6283`, `9000, 6283 or 6A82`.
pub(crate) fn sw_list(sws: &[u16]) -> String {
    let words: Vec<String> = sws.iter().map(|&s| Sw(s).to_string()).collect();
    match words.split_last() {
        None => "nothing".to_string(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SELECT: &str = "00A4040007A0000000031010";

    #[test]
    fn parses_the_example_line() {
        let step = ApduStep::parse(&format!("{SELECT}/9000")).unwrap();
        assert_eq!(step.command, parse_hex(SELECT).unwrap());
        assert_eq!(step.command.len(), 12);
        assert_eq!(step.expect_sw, vec![0x9000]);
        assert_eq!(
            step.validate(),
            Ok(ApduCase::Case3 {
                extended: false,
                lc: 7
            })
        );
    }

    #[test]
    fn status_words_default_to_9000_and_may_be_several() {
        assert_eq!(ApduStep::parse(SELECT).unwrap().expect_sw, vec![0x9000]);
        let step: ApduStep = format!("{SELECT} / 9000, 6283,6a82").parse().unwrap();
        assert_eq!(step.expect_sw, vec![0x9000, 0x6283, 0x6A82]);
    }

    #[test]
    fn spaces_and_lower_case_are_accepted() {
        let a = ApduStep::parse("00 a4 04 00\t07 a0000000031010").unwrap();
        assert_eq!(a.command, parse_hex(SELECT).unwrap());
    }

    #[test]
    fn bad_hex_names_the_position_not_the_character() {
        let err = ApduStep::parse("00A4G4").unwrap_err();
        assert_eq!(err, StepError::BadHexDigit { position: 5 });
        assert_eq!(
            err.to_string(),
            "character 5 of the command is not a hex digit"
        );
        assert_eq!(
            parse_hex("00 Z0"),
            Err(StepError::BadHexDigit { position: 4 })
        );
        assert!(matches!(
            parse_hex("é0"),
            Err(StepError::BadHexDigit { position: 1 })
        ));
    }

    #[test]
    fn odd_length_is_refused() {
        assert_eq!(
            ApduStep::parse("00A4040"),
            Err(StepError::OddHexDigits { digits: 7 })
        );
        assert_eq!(
            parse_hex("0 0 0"),
            Err(StepError::OddHexDigits { digits: 3 })
        );
    }

    #[test]
    fn short_and_empty_commands_are_refused() {
        assert_eq!(ApduStep::parse(""), Err(StepError::EmptyCommand));
        assert_eq!(ApduStep::parse("/9000"), Err(StepError::EmptyCommand));
        assert_eq!(
            ApduStep::parse("00A404"),
            Err(StepError::TooShort { len: 3 })
        );
        let e = ApduStep::parse("00A4/9000").unwrap_err();
        assert_eq!(e, StepError::TooShort { len: 2 });
        assert!(e.to_string().contains("at least 4"), "{e}");
    }

    #[test]
    fn bad_status_words_are_refused() {
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/900")),
            Err(StepError::BadStatusWord { index: 1 })
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/9000,90000")),
            Err(StepError::BadStatusWord { index: 2 })
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/9X00")),
            Err(StepError::BadStatusWord { index: 1 })
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/+900")),
            Err(StepError::BadStatusWord { index: 1 })
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/9000,")),
            Err(StepError::BadStatusWord { index: 2 })
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/")),
            Err(StepError::NoStatusWord)
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/ ")),
            Err(StepError::NoStatusWord)
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/0000")),
            Err(StepError::InvalidStatusWord { index: 1 })
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/6000")),
            Err(StepError::InvalidStatusWord { index: 1 })
        );
        assert_eq!(
            ApduStep::parse(&format!("{SELECT}/9000/9000")),
            Err(StepError::ExtraSlash)
        );
    }

    #[test]
    fn validate_checks_hand_built_steps() {
        assert_eq!(
            ApduStep::new(vec![0, 0xA4, 4], vec![0x9000]).validate(),
            Err(StepError::TooShort { len: 3 })
        );
        assert_eq!(
            ApduStep::new(vec![0, 0xA4, 4, 0], vec![]).validate(),
            Err(StepError::NoStatusWord)
        );
        assert_eq!(
            ApduStep::new(vec![0, 0xA4, 4, 0], vec![0x9000, 0x1234]).validate(),
            Err(StepError::InvalidStatusWord { index: 2 })
        );
        assert_eq!(
            ApduStep::expecting_9000(vec![0, 0xB0, 0, 0]).validate(),
            Ok(ApduCase::Case1)
        );
    }

    #[test]
    fn apdu_cases_follow_iso_7816_4() {
        let h = [0x00u8, 0xB0, 0x00, 0x00];
        let with = |body: &[u8]| [&h[..], body].concat();
        assert_eq!(apdu_case(&h), Ok(ApduCase::Case1));
        assert_eq!(
            apdu_case(&with(&[0x00])),
            Ok(ApduCase::Case2 { extended: false })
        );
        assert_eq!(
            apdu_case(&with(&[0x10])),
            Ok(ApduCase::Case2 { extended: false })
        );
        assert_eq!(
            apdu_case(&with(&[0x02, 1, 2])),
            Ok(ApduCase::Case3 {
                extended: false,
                lc: 2
            })
        );
        assert_eq!(
            apdu_case(&with(&[0x02, 1, 2, 0])),
            Ok(ApduCase::Case4 {
                extended: false,
                lc: 2
            })
        );
        assert_eq!(
            apdu_case(&with(&[0x00, 0x01, 0x00])),
            Ok(ApduCase::Case2 { extended: true })
        );
        let mut ext3 = with(&[0x00, 0x01, 0x00]);
        ext3.extend([7u8; 256]);
        assert_eq!(
            apdu_case(&ext3),
            Ok(ApduCase::Case3 {
                extended: true,
                lc: 256
            })
        );
        ext3.extend([0x00, 0x00]);
        assert_eq!(
            apdu_case(&ext3),
            Ok(ApduCase::Case4 {
                extended: true,
                lc: 256
            })
        );
        // A truncated data field, a stray trailing byte, a zero extended Lc.
        assert_eq!(
            apdu_case(&with(&[0x05, 1, 2])),
            Err(StepError::BadLengthFields { len: 7 })
        );
        assert_eq!(
            apdu_case(&with(&[0x02, 1, 2, 0, 0])),
            Err(StepError::BadLengthFields { len: 9 })
        );
        assert_eq!(
            apdu_case(&with(&[0x00, 0x01])),
            Err(StepError::BadLengthFields { len: 6 })
        );
        assert_eq!(
            apdu_case(&with(&[0x00, 0x00, 0x00, 0x01])),
            Err(StepError::BadLengthFields { len: 8 })
        );
        assert_eq!(
            apdu_case(&vec![0u8; MAX_APDU_LEN + 1]),
            Err(StepError::TooLong {
                len: MAX_APDU_LEN + 1
            })
        );
    }

    #[test]
    fn scripts_skip_blanks_and_comments_and_name_the_bad_line() {
        let text = format!("# personalisation\n\n{SELECT}/9000  # select\n  80CA9F1700 \n");
        let script = ChipScript::parse(&text).unwrap();
        assert_eq!(script.len(), 2);
        assert_eq!(script.steps[1].expect_sw, vec![0x9000]);
        let err = ChipScript::parse(&format!("{SELECT}\n\n00A4\n")).unwrap_err();
        assert_eq!(
            err,
            ScriptError {
                line: 3,
                error: StepError::TooShort { len: 2 }
            }
        );
        assert_eq!(err.to_string(), "chip script line 3: the command is 2 bytes long, a command APDU has at least 4 (CLA INS P1 P2)");
        assert!(ChipScript::parse("").unwrap().is_empty());
        assert!("\n# nothing\n".parse::<ChipScript>().unwrap().is_empty());
    }

    #[test]
    fn errors_and_debug_never_show_the_bytes() {
        let secret = "00DA9F1B0812345678ABCDEF99";
        let script = ChipScript::parse(&format!("{secret}/9000")).unwrap();
        let dbg = format!("{script:?}");
        assert!(!dbg.to_uppercase().contains("12345678"), "{dbg}");
        assert!(!dbg.contains("18, 52"), "{dbg}");
        for bad in [
            format!("{secret}Z"),
            format!("{secret}0"),
            format!("{secret}/12"),
        ] {
            let e = ChipScript::parse(&bad).unwrap_err().to_string();
            assert!(!e.to_uppercase().contains("12345678"), "{e}");
        }
        assert_eq!(script.validate(), Ok(()));
    }

    #[test]
    fn status_word_lists_read_naturally() {
        assert_eq!(sw_list(&[0x9000]), "9000");
        assert_eq!(sw_list(&[0x9000, 0x6283]), "9000 or 6283");
        assert_eq!(sw_list(&[0x9000, 0x6283, 0x6A82]), "9000, 6283 or 6A82");
        assert_eq!(Sw(0x6A80).to_string(), "6A80");
    }
}
