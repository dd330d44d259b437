//! The magnetic encoder: `Dm` loads a track, `Smw` writes the loaded tracks
//! onto the card, `Smr` reads one back.
//!
//! Tracks travel without sentinels or LRC (the printer adds them), so the
//! read-back is the written content, byte for byte. The clear data exists in
//! two places only: the encoder's pending buffer and the card's stripe, both
//! [`Stripe`]s that are never serialized; the card record gets masked text.

use super::words::*;
use super::{Answer, Cx, Printer, Res};
use crate::condition::Condition;
use crate::model::{Place, Stripe};

pub(super) const WRITE_MS: u64 = 1_500;
pub(super) const READ_MS: u64 = 700;

/// Longest content a track holds (ISO/IEC 7811 capacities, sentinels included
/// for good measure: the encoder refuses anything longer).
const MAX_LEN: [usize; 3] = [79, 40, 107];

fn track_number(s: &str) -> Result<usize, &'static str> {
    match s {
        "1" => Ok(0),
        "2" => Ok(1),
        "3" => Ok(2),
        _ => Err(ERROR_PARAMETRES),
    }
}

/// Track 1 is 6-bit alphanumeric (0x20..=0x5F), tracks 2 and 3 are 4-bit
/// numeric (0x30..=0x3F).
fn valid_track(t: usize, data: &str) -> bool {
    let ok = |b: u8| {
        if t == 0 {
            (0x20..=0x5F).contains(&b)
        } else {
            (0x30..=0x3F).contains(&b)
        }
    };
    data.len() <= MAX_LEN[t] && data.bytes().all(ok)
}

/// The same track with one character changed (the `mag-read-mismatch` fault),
/// staying inside the track's character set.
fn corrupt(data: &str) -> String {
    let mut b = data.as_bytes().to_vec();
    if b.is_empty() {
        return "0".into();
    }
    let i = b.len() / 2;
    b[i] = match b[i] {
        d @ b'0'..=b'8' => d + 1,
        b'9' => b'0',
        c @ b'A'..=b'Y' => c + 1,
        b'Z' => b'A',
        _ => b'0',
    };
    String::from_utf8(b).unwrap_or_default()
}

impl Printer {
    /// `Dm;track;data`.
    pub(super) fn load_track(&mut self, track: &str, data: &str) -> Res {
        let mag = self.available().mag;
        self.need(mag)?;
        let t = track_number(track)?;
        if !valid_track(t, data) {
            return Err(ERROR_PARAMETRES);
        }
        self.pending_tracks.0[t] = Some(data.to_string());
        Ok(Answer::Ok)
    }

    /// `Smw`: writes every loaded track, then forgets them.
    pub(super) fn write_magnetic(&mut self, cx: &mut Cx) -> Res {
        let mag = self.available().mag;
        self.need(mag)?;
        let i = self.working_card()?;
        self.move_card(i, Place::Inside, cx);
        cx.work += WRITE_MS;
        if self.has(Condition::MagWriteFail) {
            self.latched.mag_write_error = true;
            self.cards[i].event(cx.now, "magnetic write failed");
            return Err(ERROR_MAG);
        }
        let pending = std::mem::take(&mut self.pending_tracks);
        let card = &mut self.cards[i];
        for (t, data) in pending.0.into_iter().enumerate() {
            if let Some(data) = data {
                let n = t as u8 + 1;
                card.record
                    .tracks
                    .insert(n, crate::transcript::withheld(data.len()));
                card.event(
                    cx.now,
                    format!("track {n} written ({} characters)", data.len()),
                );
                card.stripe.0[t] = Some(data);
            }
        }
        Ok(Answer::Ok)
    }

    /// `Smr;track`.
    pub(super) fn read_track(&mut self, track: &str, cx: &mut Cx) -> Res {
        let mag = self.available().mag;
        self.need(mag)?;
        let t = track_number(track)?;
        let i = self.working_card()?;
        self.move_card(i, Place::Inside, cx);
        cx.work += READ_MS;
        let Some(data) = self.cards[i].stripe.0[t].clone() else {
            // A blank track reads as a data error.
            return Err(ERROR_MAG_DATA);
        };
        if self.has(Condition::MagReadMismatch) {
            return Ok(Answer::Text(corrupt(&data)));
        }
        Ok(Answer::Text(data))
    }
}

impl Stripe {
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corruption_changes_exactly_one_character_within_the_set() {
        for (t, data) in [
            (1, "4000001234567899=28121010000"),
            (0, "B4000001234567899^DOE/JOHN^2812"),
            (1, "="),
        ] {
            let c = corrupt(data);
            assert_eq!(c.len(), data.len());
            assert_eq!(
                c.bytes().zip(data.bytes()).filter(|(a, b)| a != b).count(),
                1,
                "{c}"
            );
            assert!(valid_track(t, &c), "{c}");
        }
    }

    #[test]
    fn track_character_sets() {
        assert!(valid_track(0, "B1234^DOE/J^"));
        assert!(!valid_track(0, "lower"));
        assert!(valid_track(1, "1234=5678"));
        assert!(!valid_track(1, "12A"));
        assert!(!valid_track(1, &"1".repeat(41)));
    }
}
