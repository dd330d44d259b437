//! RFC 3339 time stamps: formatting for what the stub answers and records,
//! and a small strict parser so the stub can order events by their own time
//! (offsets included) without trusting a lenient third-party reading.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2024-01-01T12:24:56.121345Z`: receipt times carry microseconds because
/// tests measure delivery latency from them.
pub fn micros(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

/// `2024-01-01T12:24:56.121Z`, the precision of the protocol's own stamps.
pub fn millis(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// The protocol's `occurredAt` form: milliseconds and `Z`, nothing else.
pub fn is_millis_z(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[19] == b'.'
        && b[23] == b'Z'
        && parse(s).is_some()
        && b[20..23].iter().all(u8::is_ascii_digit)
}

/// Nanoseconds since the Unix epoch of an RFC 3339 date-time
/// (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`), or `None` when it is not one.
pub fn parse(s: &str) -> Option<i128> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(r)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(part).ok()?.parse().ok()
    };
    if b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos: i128 = 0;
    if b[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = &b[start..i];
        if digits.is_empty() {
            return None;
        }
        for (k, d) in digits.iter().take(9).enumerate() {
            nanos += i128::from(d - b'0') * 10i128.pow(8 - k as u32);
        }
    }
    let offset_s: i64 = match b.get(i)? {
        b'Z' | b'z' if i + 1 == b.len() => 0,
        sign @ (b'+' | b'-') if i + 6 == b.len() && b[i + 3] == b':' => {
            let (h, m) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if h > 23 || m > 59 {
                return None;
            }
            let o = h * 3600 + m * 60;
            if *sign == b'+' {
                o
            } else {
                -o
            }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_s;
    Some(i128::from(secs) * 1_000_000_000 + nanos)
}

/// A `SystemTime` as nanoseconds since the epoch, to compare with [`parse`].
pub fn nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// Whole seconds since the epoch (JWT `exp`, webhook timestamps).
pub fn unix_secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs() as i64
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// well-known civil-from-days inverse).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets_to_the_same_instant() {
        let z = parse("2025-01-17T06:28:02.492Z").unwrap();
        assert_eq!(parse("2025-01-17T07:28:02.492+01:00"), Some(z));
        assert_eq!(z, 1_737_095_282_492_000_000);
        assert_eq!(parse("1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "2025-01-17 06:28:02Z",
            "2025-02-30T00:00:00Z",
            "2025-01-17T06:28:02",
            "2025-01-17T06:28:02.Z",
            "2025-01-17T06:28:02+0100",
            "yesterday",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn millis_z_is_the_strict_form() {
        assert!(is_millis_z("2024-01-01T12:24:56.121Z"));
        assert!(!is_millis_z("2024-01-01T12:24:56Z"));
        assert!(!is_millis_z("2024-01-01T12:24:56.121+00:00"));
        assert!(!is_millis_z("2024-01-01T12:24:56.1211Z"));
    }

    #[test]
    fn formats_round_trip() {
        let t = UNIX_EPOCH + Duration::from_micros(1_737_095_282_492_123);
        assert_eq!(micros(t), "2025-01-17T06:28:02.492123Z");
        assert_eq!(parse(&micros(t)), Some(nanos(t)));
        assert!(is_millis_z(&millis(t)));
    }
}
