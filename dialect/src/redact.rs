//! Masking of card numbers in text a person, a log or a snapshot will see.
//!
//! Any run of 12 to 19 digits (a PAN's length, ISO/IEC 7812) keeps at most its
//! first six and last four digits, as PCI DSS allows for display. Shorter runs
//! (expiry dates, counters) are left alone. Runs longer than 19 digits are
//! masked whole: they are not a PAN but may embed one.

/// Masks every PAN-length run of digits in `text`. A run may be written in
/// groups joined by single spaces or dashes (`4000 0012 3456 7899`), as card
/// numbers are printed and embossed; the separators are kept.
pub fn mask_text(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            let ch = text[i..]
                .chars()
                .next()
                .expect("index is on a char boundary");
            out.push(ch);
            i += ch.len_utf8();
            continue;
        }
        let start = i;
        let mut digits = 0;
        while i < bytes.len() {
            if bytes[i].is_ascii_digit() {
                digits += 1;
                i += 1;
            } else if matches!(bytes[i], b' ' | b'-')
                && bytes.get(i + 1).is_some_and(u8::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        let run = &text[start..i];
        if digits < 12 {
            out.push_str(run);
            continue;
        }
        let mut seen = 0;
        for b in run.bytes() {
            if b.is_ascii_digit() {
                let keep = digits <= 19 && (seen < 6 || seen >= digits - 4);
                out.push(if keep { b as char } else { '*' });
                seen += 1;
            } else {
                out.push(b as char);
            }
        }
    }
    out
}

/// Masks one run of digits: first six and last four kept for 12 to 19 digits.
pub fn mask_digits(digits: &str) -> String {
    let n = digits.len();
    match n {
        0..=11 => digits.to_string(),
        12..=19 => format!("{}{}{}", &digits[..6], "*".repeat(n - 10), &digits[n - 4..]),
        _ => "*".repeat(n),
    }
}

/// Masks raw bytes for display: printable ASCII is kept (with card numbers
/// masked), anything else is shown as `\xNN`. At most `limit` input bytes are shown.
pub fn show_bytes(raw: &[u8], limit: usize) -> String {
    let mut s = String::new();
    for &b in raw.iter().take(limit) {
        if (0x20..0x7F).contains(&b) && b != b'\\' {
            s.push(b as char);
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    let mut shown = mask_text(&s);
    if raw.len() > limit {
        shown.push_str(&format!("... ({} bytes in all)", raw.len()));
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_pan_length_runs_only() {
        assert_eq!(
            mask_text("B4000001234567899^DOE/J^2812"),
            "B400000******7899^DOE/J^2812"
        );
        assert_eq!(mask_text("4000 0012"), "4000 0012");
        assert_eq!(mask_text("123456789012"), "123456**9012");
        assert_eq!(
            mask_text("12345678901234567890123"),
            "***********************"
        );
    }

    #[test]
    fn masks_numbers_printed_in_groups() {
        assert_eq!(mask_text("4000 0012 3456 7899"), "4000 00** **** 7899");
        assert_eq!(
            mask_text("PAN 4000-0012-3456-7899 EXP 12/28"),
            "PAN 4000-00**-****-7899 EXP 12/28"
        );
        // Short groups stay: dates, amounts, counters.
        assert_eq!(mask_text("12 28 2026"), "12 28 2026");
        assert_eq!(
            mask_text("CFG=00000175 INF=00000000"),
            "CFG=00000175 INF=00000000"
        );
    }

    #[test]
    fn shows_binary_as_escapes_and_caps_length() {
        assert_eq!(show_bytes(b"OK\x00\xff", 10), "OK\\x00\\xff");
        assert_eq!(show_bytes(b"abcdef", 3), "abc... (6 bytes in all)");
    }
}
