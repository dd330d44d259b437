//! The card-data rules, one function each: PAN and Luhn, expiry, the character
//! sets of the printer, the emboss module and the tracks, the ISO/IEC 7813
//! form of tracks 1 and 2, and ISO 9564 PIN blocks (formats 0 and 2).
//!
//! Each returns a [`Problem`]: the code and a message that names positions and
//! lengths, never the data.

use crate::codes::ErrorCode;
use zeroize::Zeroize;

/// A rule broken: the code and why, without card data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub code: ErrorCode,
    pub message: String,
}

pub(crate) fn problem(code: ErrorCode, message: impl Into<String>) -> Problem {
    Problem {
        code,
        message: message.into(),
    }
}

/// Track content limits: ISO/IEC 7813's 79, 40 and 107 characters count the
/// start sentinel, the end sentinel and the LRC, which the printer adds; the
/// content sent is 3 characters shorter.
pub const TRACK_MAX: [usize; 3] = [79 - 3, 40 - 3, 107 - 3];

/// The service code's first digit (ISO/IEC 7813): 1, 2, 5, 6, 7 or 9.
const SERVICE_CODE_FIRST: &[u8] = b"125679";

// ---------------------------------------------------------------------------
// Character sets.

/// A named character set and the description messages give of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// `Wt` text: printable ASCII without `;` (the dialect's separator).
    Printer,
    /// The emboss module: `A`-`Z`, digits, space and `/ - . ,`.
    Emboss,
    /// Track 1 (6-bit, 0x20 to 0x5F) less the sentinels `%` `?` and `;`,
    /// which the dialect cannot carry; `^` is allowed as a separator.
    Track1,
    /// A name on track 1: the track 1 set without `^`.
    Name,
    /// Tracks 2 and 3: digits and the separator `=`.
    Numeric,
}

impl Charset {
    pub(crate) fn allows(self, c: char) -> bool {
        match self {
            Charset::Printer => (' '..='~').contains(&c) && c != ';',
            Charset::Emboss => c.is_ascii_uppercase() || c.is_ascii_digit() || " /-.,".contains(c),
            Charset::Track1 => (' '..='_').contains(&c) && !"%?;".contains(c),
            Charset::Name => (' '..='_').contains(&c) && !"%?;^".contains(c),
            Charset::Numeric => c.is_ascii_digit() || c == '=',
        }
    }

    fn described(self) -> &'static str {
        match self {
            Charset::Printer => "printable ASCII except ';'",
            Charset::Emboss => "upper-case A-Z, digits, space and / - . ,",
            Charset::Track1 => {
                "track 1's set: upper-case letters, digits, space and punctuation from ASCII 0x20 to 0x5F, except % ? ;"
            }
            Charset::Name => {
                "track 1's name set: upper-case letters, digits, space and punctuation from ASCII 0x20 to 0x5F, except % ? ; ^"
            }
            Charset::Numeric => "digits and '='",
        }
    }

    /// The first character outside the set, by position (1-based).
    pub(crate) fn check(self, what: &str, text: &str) -> Result<(), Problem> {
        match text.chars().position(|c| !self.allows(c)) {
            None => Ok(()),
            Some(i) => Err(problem(
                ErrorCode::CHARSET_NOT_SUPPORTED,
                format!(
                    "{what}: character {} is outside {}",
                    i + 1,
                    self.described()
                ),
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// PAN and expiry.

/// The Luhn check (ISO/IEC 7812) over a run of ASCII digits.
pub fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0u32;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b.wrapping_sub(b'0'));
        if d > 9 {
            return false;
        }
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    !digits.is_empty() && sum.is_multiple_of(10)
}

/// `body` completed with its Luhn check digit (test and demo card numbers);
/// `None` when `body` holds anything but digits.
pub fn with_luhn_digit(body: &str) -> Option<String> {
    (0..=9)
        .map(|d| format!("{body}{d}"))
        .find(|pan| luhn_ok(pan))
}

/// `pan`: digits only, 12 to 19 of them, Luhn-valid.
pub(crate) fn check_pan(pan: &str) -> Result<(), Problem> {
    if let Some(i) = pan.chars().position(|c| !c.is_ascii_digit()) {
        return Err(problem(
            ErrorCode::INVALID_FIELD_FORMAT,
            format!(
                "pan: character {} is not a digit (digits only, no spaces)",
                i + 1
            ),
        ));
    }
    if !(12..=19).contains(&pan.len()) {
        return Err(problem(
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            format!("pan has {} digits, a PAN has 12 to 19", pan.len()),
        ));
    }
    if !luhn_ok(pan) {
        return Err(problem(
            ErrorCode::INVALID_FIELD_VALUE,
            "pan fails the Luhn check (its last digit is not the check digit of the others)",
        ));
    }
    Ok(())
}

/// `expiry`: `YYMM`, month 01 to 12.
pub(crate) fn check_expiry(expiry: &str) -> Result<(), Problem> {
    if expiry.chars().count() != 4 {
        return Err(problem(
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            format!(
                "expiry has {} characters, it is 4 digits YYMM",
                expiry.chars().count()
            ),
        ));
    }
    if !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return Err(problem(
            ErrorCode::INVALID_FIELD_FORMAT,
            "expiry must be 4 digits YYMM",
        ));
    }
    let month = &expiry[2..];
    if !("01"..="12").contains(&month) {
        return Err(problem(
            ErrorCode::INVALID_FIELD_VALUE,
            "expiry's month (its last two digits) is not 01 to 12",
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Tracks.

/// What a track 1 or 2 says, for comparing the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrackFacts {
    pub service_code: [u8; 3],
}

/// A track's content: no sentinels, within its length, in its character set,
/// and for tracks 1 and 2 in ISO/IEC 7813 form with the request's PAN and
/// expiry. `number` is 1, 2 or 3.
pub(crate) fn check_track(
    number: u8,
    data: &str,
    pan: &str,
    expiry: &str,
) -> Result<Option<TrackFacts>, Problem> {
    let what = format!("track {number}");
    let (start, set) = match number {
        1 => ('%', Charset::Track1),
        _ => (';', Charset::Numeric),
    };
    if data.starts_with(start) || data.ends_with('?') {
        return Err(problem(
            ErrorCode::INVALID_FIELD_FORMAT,
            format!(
                "{what} must be sent without its start sentinel '{start}', end sentinel '?' and LRC: the printer adds them"
            ),
        ));
    }
    let max = TRACK_MAX[usize::from(number.clamp(1, 3)) - 1];
    let len = data.chars().count();
    if len > max {
        return Err(problem(
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            format!(
                "{what} has {len} characters, at most {max} fit (ISO/IEC 7813's {} less the sentinels and LRC the printer adds)",
                max + 3
            ),
        ));
    }
    set.check(&what, data)?;
    match number {
        1 => check_track1(data, pan, expiry).map(Some),
        2 => check_track2(data, pan, expiry).map(Some),
        _ => Ok(None),
    }
}

fn format_error(what: &str, why: impl std::fmt::Display) -> Problem {
    problem(ErrorCode::INVALID_FIELD_FORMAT, format!("{what} {why}"))
}

/// The part common to both tracks after the PAN's separator: `YYMM`, the
/// 3-digit service code, then discretionary data.
fn check_after_separator(
    what: &str,
    rest: &str,
    expiry: &str,
) -> Result<(TrackFacts, usize), Problem> {
    let b = rest.as_bytes();
    if b.len() < 7 || !b[..7].iter().all(u8::is_ascii_digit) {
        return Err(format_error(
            what,
            "needs the expiry YYMM and a 3-digit service code after the PAN's separator",
        ));
    }
    if &rest[..4] != expiry {
        return Err(format_error(
            what,
            "carries an expiry other than the request's expiry",
        ));
    }
    let service_code = [b[4], b[5], b[6]];
    if !SERVICE_CODE_FIRST.contains(&service_code[0]) {
        return Err(format_error(
            what,
            "has a service code whose first digit is not 1, 2, 5, 6, 7 or 9 (ISO/IEC 7813)",
        ));
    }
    Ok((TrackFacts { service_code }, 7))
}

fn check_track_pan(what: &str, field: &str, pan: &str) -> Result<(), Problem> {
    if !field.bytes().all(|b| b.is_ascii_digit()) || !(12..=19).contains(&field.len()) {
        return Err(format_error(
            what,
            "must hold a PAN of 12 to 19 digits where it starts",
        ));
    }
    if field != pan {
        return Err(format_error(
            what,
            "carries a PAN other than the request's pan",
        ));
    }
    Ok(())
}

/// Track 1, format B: `B` PAN `^` NAME `^` YYMM service-code discretionary.
fn check_track1(data: &str, pan: &str, expiry: &str) -> Result<TrackFacts, Problem> {
    let what = "track 1";
    let Some(body) = data.strip_prefix('B') else {
        return Err(format_error(what, "must start with format code B"));
    };
    let mut parts = body.split('^');
    let (Some(track_pan), Some(name), Some(rest)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(format_error(
            what,
            "must read B, PAN, ^, name, ^, expiry and service code",
        ));
    };
    if parts.next().is_some() {
        return Err(format_error(what, "has more than two ^ separators"));
    }
    check_track_pan(what, track_pan, pan)?;
    let n = name.chars().count();
    if !(2..=26).contains(&n) {
        return Err(format_error(
            what,
            format_args!("has a {n}-character name field, ISO/IEC 7813 allows 2 to 26"),
        ));
    }
    let (facts, _) = check_after_separator(what, rest, expiry)?;
    Ok(facts)
}

/// Track 2: PAN `=` YYMM service-code discretionary digits.
fn check_track2(data: &str, pan: &str, expiry: &str) -> Result<TrackFacts, Problem> {
    let what = "track 2";
    let Some((track_pan, rest)) = data.split_once('=') else {
        return Err(format_error(
            what,
            "must read PAN, =, expiry and service code",
        ));
    };
    check_track_pan(what, track_pan, pan)?;
    let (facts, used) = check_after_separator(what, rest, expiry)?;
    if rest[used..].contains('=') {
        return Err(format_error(what, "has more than one = separator"));
    }
    Ok(facts)
}

// ---------------------------------------------------------------------------
// PIN blocks.

/// The 12 PAN digits a format 0 block is XORed with: the rightmost 12
/// excluding the check digit, zero-padded on the left (ISO 9564-1).
fn pan_field(pan: &str) -> [u8; 12] {
    let digits = &pan.as_bytes()[..pan.len().saturating_sub(1)];
    let take = digits.len().min(12);
    let mut out = [0u8; 12];
    for (o, &d) in out[12 - take..]
        .iter_mut()
        .zip(&digits[digits.len() - take..])
    {
        *o = d.wrapping_sub(b'0') & 0x0F;
    }
    out
}

/// A PIN block: 16 hex digits, ISO 9564 format 0 (checked against the PAN)
/// or 2, PIN length 4 to 12, PIN digits decimal, fill `F`. Returns the PIN as
/// a format 2 block (8 bytes): the form the chip takes for its offline PIN.
pub(crate) fn check_pin_block(block: &str, pan: &str) -> Result<Vec<u8>, Problem> {
    let len = block.chars().count();
    if len != 16 {
        return Err(problem(
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            format!("pinBlock has {len} characters, a PIN block is 16 hex digits"),
        ));
    }
    if let Some(i) = block.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(problem(
            ErrorCode::INVALID_FIELD_ENCODING,
            format!("pinBlock: character {} is not a hex digit", i + 1),
        ));
    }
    let mut nibbles = [0u8; 16];
    for (n, b) in nibbles.iter_mut().zip(block.bytes()) {
        *n = (b as char).to_digit(16).unwrap_or(0) as u8;
    }
    let result = check_nibbles(&mut nibbles, pan);
    let bytes = match result {
        Ok(()) => {
            // Cleared of the PAN (format 0) or as it came (format 2): the
            // plain PIN field; its first nibble says format 2.
            nibbles[0] = 2;
            Ok(nibbles.chunks(2).map(|p| p[0] << 4 | p[1]).collect())
        }
        Err(p) => Err(p),
    };
    nibbles.zeroize();
    bytes
}

/// Checks (and, for format 0, clears in place) the nibbles of a block.
fn check_nibbles(n: &mut [u8; 16], pan: &str) -> Result<(), Problem> {
    let format = n[0];
    if format != 0 && format != 2 {
        return Err(problem(
            ErrorCode::INVALID_PIN_FORMAT,
            format!(
                "pinBlock is ISO 9564 format {format:X} (its first digit), only formats 0 and 2 are accepted"
            ),
        ));
    }
    let pin_len = usize::from(n[1]);
    if !(4..=12).contains(&pin_len) {
        return Err(problem(
            ErrorCode::PIN_LENGTH_ERROR,
            "pinBlock's PIN length (its second digit) is outside 4 to 12",
        ));
    }
    let against = if format == 0 {
        let mut field = pan_field(pan);
        for (x, p) in n[4..].iter_mut().zip(field.iter()) {
            *x ^= p;
        }
        field.zeroize();
        " once decoded with the request's pan (format 0)"
    } else {
        ""
    };
    if n[2..2 + pin_len].iter().any(|&d| d > 9) {
        return Err(problem(
            ErrorCode::INVALID_PIN_FORMAT,
            format!("pinBlock's PIN digits are not all decimal{against}"),
        ));
    }
    if n[2 + pin_len..].iter().any(|&f| f != 0xF) {
        return Err(problem(
            ErrorCode::INVALID_PIN_FORMAT,
            format!("pinBlock's fill after the PIN is not all F{against}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {

    #[test]
    fn check_digits_complete_test_numbers() {
        assert_eq!(
            with_luhn_digit("400000123456789").as_deref(),
            Some("4000001234567899")
        );
        for body in ["400000000000000", "40000012345678", "5555555555554"] {
            let pan = with_luhn_digit(body).unwrap();
            assert!(
                luhn_ok(&pan) && pan.starts_with(body) && pan.len() == body.len() + 1,
                "{pan}"
            );
        }
        assert_eq!(with_luhn_digit("12a4"), None);
    }

    use super::*;

    const PAN: &str = "4000001234567899";

    fn code<T: std::fmt::Debug>(r: Result<T, Problem>) -> ErrorCode {
        r.unwrap_err().code
    }

    /// Builds a format 0 block for `pin` and `pan` (the test's own encoder).
    fn iso0(pin: &str, pan: &str) -> String {
        let mut clear = format!("0{:X}{pin}", pin.len());
        while clear.len() < 16 {
            clear.push('F');
        }
        let field = pan_field(pan);
        clear
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let v = c.to_digit(16).unwrap() as u8;
                let x = if i >= 4 { v ^ field[i - 4] } else { v };
                format!("{x:X}")
            })
            .collect()
    }

    #[test]
    fn luhn() {
        for ok in [PAN, "4111111111111111", "5555555555554444", "400000123457"] {
            assert!(luhn_ok(ok), "{ok}");
        }
        for bad in ["4000001234567890", "", "12a4", "4111111111111112"] {
            assert!(!luhn_ok(bad), "{bad}");
        }
    }

    #[test]
    fn pan_rules() {
        assert_eq!(check_pan(PAN), Ok(()));
        assert_eq!(check_pan("4000001234567890124"), Ok(()));
        assert_eq!(check_pan("400000123457"), Ok(()));
        assert_eq!(
            code(check_pan("40000012345")),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        assert_eq!(
            code(check_pan("40000012345678990123")),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        assert_eq!(
            code(check_pan("4000 0012 3456 7899")),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            code(check_pan("4000001234567890")),
            ErrorCode::INVALID_FIELD_VALUE
        );
        let e = check_pan("4000001234567890").unwrap_err().message;
        assert!(!e.contains("4000001234567890"), "{e}");
    }

    #[test]
    fn expiry_rules() {
        assert_eq!(check_expiry("2812"), Ok(()));
        assert_eq!(check_expiry("2801"), Ok(()));
        assert_eq!(
            code(check_expiry("28121")),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        assert_eq!(
            code(check_expiry("12/28")),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        assert_eq!(code(check_expiry("28-1")), ErrorCode::INVALID_FIELD_FORMAT);
        assert_eq!(code(check_expiry("2813")), ErrorCode::INVALID_FIELD_VALUE);
        assert_eq!(code(check_expiry("2800")), ErrorCode::INVALID_FIELD_VALUE);
        // Multi-byte characters are counted, not sliced.
        assert_eq!(
            code(check_expiry("28é")),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        assert_eq!(code(check_expiry("2é12")), ErrorCode::INVALID_FIELD_FORMAT);
    }

    #[test]
    fn charsets() {
        assert!(Charset::Printer.check("x", "Valid thru 12/28 #1").is_ok());
        assert_eq!(
            code(Charset::Printer.check("x", "a;b")),
            ErrorCode::CHARSET_NOT_SUPPORTED
        );
        assert_eq!(
            code(Charset::Printer.check("x", "JOSÉ")),
            ErrorCode::CHARSET_NOT_SUPPORTED
        );
        assert!(Charset::Emboss.check("x", "4000 0012 3456 7899").is_ok());
        assert!(Charset::Emboss.check("x", "DOE/JANE M.").is_ok());
        assert!(Charset::Emboss.check("x", "Doe").is_err());
        assert!(Charset::Emboss.check("x", "DOE'S").is_err());
        assert!(Charset::Name.check("x", "O'NEIL/J.-P.").is_ok());
        assert!(Charset::Name.check("x", "DOE^JANE").is_err());
        assert!(Charset::Name.check("x", "Doe").is_err());
        assert!(Charset::Track1.check("x", "B1^A B^").is_ok());
        assert!(Charset::Numeric.check("x", "123=456").is_ok());
        assert!(Charset::Numeric.check("x", "123D456").is_err());
        let e = Charset::Printer
            .check("name", "AB\u{7}")
            .unwrap_err()
            .message;
        assert_eq!(e, "name: character 3 is outside printable ASCII except ';'");
    }

    fn t1(body: &str) -> String {
        format!("B{PAN}^{body}")
    }

    #[test]
    fn track1_form() {
        let good = t1("DOE/JANE^28122010000000000000");
        assert_eq!(
            check_track(1, &good, PAN, "2812").unwrap(),
            Some(TrackFacts {
                service_code: *b"201"
            })
        );
        assert!(check_track(1, &t1("DOE/JANE^2812201"), PAN, "2812").is_ok());
        let fmt = |t: &str| code(check_track(1, t, PAN, "2812"));
        assert_eq!(fmt(&format!("%{good}")), ErrorCode::INVALID_FIELD_FORMAT);
        assert_eq!(fmt(&format!("{good}?")), ErrorCode::INVALID_FIELD_FORMAT);
        assert_eq!(fmt(&good[1..]), ErrorCode::INVALID_FIELD_FORMAT);
        assert_eq!(fmt(&format!("B{PAN}DOE")), ErrorCode::INVALID_FIELD_FORMAT);
        assert_eq!(fmt(&t1("D^2812201")), ErrorCode::INVALID_FIELD_FORMAT);
        assert_eq!(
            fmt(&t1(&format!("{}^2812201", "A".repeat(27)))),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt(&t1("DOE/JANE^2901201")),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(fmt(&t1("DOE/JANE^2812")), ErrorCode::INVALID_FIELD_FORMAT);
        assert_eq!(
            fmt(&t1("DOE/JANE^2812301")),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt(&t1("DOE/JANE^2812201^X")),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt("B4111111111111111^DOE/JANE^2812201"),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt(&t1("Doe/Jane^2812201")),
            ErrorCode::CHARSET_NOT_SUPPORTED
        );
        assert_eq!(
            fmt(&t1("DOE;JANE^2812201")),
            ErrorCode::CHARSET_NOT_SUPPORTED
        );
        let long = t1(&format!("DOE/JANE^2812201{}", "0".repeat(76)));
        assert_eq!(
            fmt(&long),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        // 76 characters of content is the most that fits.
        let body = "DOE/JANE^2812201";
        let pad = 76 - t1(body).len();
        assert!(check_track(1, &t1(&format!("{body}{}", "0".repeat(pad))), PAN, "2812").is_ok());
        for bad in [
            "B4111111111111111^DOE/JANE^2812201",
            &t1("DOE/JANE^2901201"),
        ] {
            let m = check_track(1, bad, PAN, "2812").unwrap_err().message;
            assert!(!m.contains(PAN) && !m.contains("4111111111111111"), "{m}");
        }
    }

    #[test]
    fn track2_form() {
        let good = format!("{PAN}=28122010000000000");
        assert_eq!(
            check_track(2, &good, PAN, "2812").unwrap(),
            Some(TrackFacts {
                service_code: *b"201"
            })
        );
        let fmt = |t: &str| code(check_track(2, t, PAN, "2812"));
        assert_eq!(fmt(&format!(";{good}")), ErrorCode::INVALID_FIELD_FORMAT);
        assert_eq!(
            fmt(&format!("{PAN}D2812201")),
            ErrorCode::CHARSET_NOT_SUPPORTED
        );
        assert_eq!(
            fmt(&format!("{PAN}2812201")),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt("4111111111111111=2812201"),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt(&format!("{PAN}=2811201")),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt(&format!("{PAN}=281220")),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt(&format!("{PAN}=2812201=1")),
            ErrorCode::INVALID_FIELD_FORMAT
        );
        assert_eq!(
            fmt(&format!("{PAN}=2812201{}", "0".repeat(20))),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        // Track 3: set and length only.
        assert_eq!(check_track(3, "0112345=678", PAN, "2812"), Ok(None));
        assert_eq!(
            code(check_track(3, &"1".repeat(105), PAN, "2812")),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        assert!(check_track(3, &"1".repeat(104), PAN, "2812").is_ok());
    }

    #[test]
    fn pin_block_format_2() {
        // The fact sheet's example: PIN 123456.
        assert_eq!(
            check_pin_block("26123456FFFFFFFF", PAN).unwrap(),
            vec![0x26, 0x12, 0x34, 0x56, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert!(check_pin_block("2C123456789012FF", PAN).is_ok());
        assert!(check_pin_block("26123456ffffffff", PAN).is_ok());
        let c = |b: &str| code(check_pin_block(b, PAN));
        assert_eq!(c("36123456FFFFFFFF"), ErrorCode::INVALID_PIN_FORMAT);
        assert_eq!(c("16123456FFFFFFFF"), ErrorCode::INVALID_PIN_FORMAT);
        assert_eq!(c("23123FFFFFFFFFFF"), ErrorCode::PIN_LENGTH_ERROR);
        assert_eq!(c("2D123456789012FF"), ErrorCode::PIN_LENGTH_ERROR);
        assert_eq!(c("2612345AFFFFFFFF"), ErrorCode::INVALID_PIN_FORMAT);
        assert_eq!(c("26123456FFFFFFFE"), ErrorCode::INVALID_PIN_FORMAT);
        assert_eq!(
            c("26123456FFFFFFF"),
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
        );
        assert_eq!(c("26123456FFFFFFFG"), ErrorCode::INVALID_FIELD_ENCODING);
    }

    #[test]
    fn a_format_0_block_reaches_the_chip_as_format_2() {
        let block = iso0("1234", PAN);
        assert_eq!(
            check_pin_block(&block, PAN).unwrap(),
            vec![0x24, 0x12, 0x34, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn pin_block_format_0_needs_the_pan() {
        let block = iso0("1234", PAN);
        // PAN field: 000123456789 (rightmost 12 before the check digit 9).
        assert_eq!(block, "041234FEDCBA9876");
        assert!(check_pin_block(&block, PAN).is_ok());
        // Another PAN does not decode the fill back to F.
        let e = check_pin_block(&block, "4111111111111111").unwrap_err();
        assert_eq!(e.code, ErrorCode::INVALID_PIN_FORMAT);
        assert!(
            e.message.contains("decoded with the request's pan"),
            "{}",
            e.message
        );
        // A 12-digit PAN pads its 11 digits with a zero on the left.
        assert!(check_pin_block(&iso0("987654321", "400000123457"), "400000123457").is_ok());
        assert!(check_pin_block(&iso0("123456789012", PAN), PAN).is_ok());
        // The length nibble is not XORed: a bad length is a length error.
        let mut bad = iso0("1234", PAN).into_bytes();
        bad[1] = b'3';
        assert_eq!(
            code(check_pin_block(std::str::from_utf8(&bad).unwrap(), PAN)),
            ErrorCode::PIN_LENGTH_ERROR
        );
    }

    #[test]
    fn pan_field_is_the_rightmost_twelve_before_the_check_digit() {
        assert_eq!(pan_field(PAN), [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(
            pan_field("400000123457"),
            [0, 4, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5]
        );
    }
}
