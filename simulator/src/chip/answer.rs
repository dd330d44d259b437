//! What the virtual card answers to each vpcd message (no I/O here).
//!
//! vpcd frames every message with a 2-byte big-endian length. One-byte
//! messages are reader controls: power off (0), power on (1), reset (3) and
//! get ATR (4, the only one answered). Longer messages are command APDUs,
//! answered with response data and SW1 SW2.

use super::ChipFault;

pub const CTRL_POWER_OFF: u8 = 0;
pub const CTRL_POWER_ON: u8 = 1;
pub const CTRL_RESET: u8 = 3;
pub const CTRL_GET_ATR: u8 = 4;

/// A contact EMV-style card answer to reset: direct convention, T=0 and T=1
/// offered, 14 historical bytes, and the check byte TCK (required when T=1 is
/// offered) computed here.
pub const ATR: [u8; 19] = with_tck([
    0x3B, 0x8E, 0x80, 0x01, 0x80, 0x31, 0x80, 0x66, 0xB0, 0x84, 0x12, 0x01, 0x6E, 0x01, 0x83, 0x00,
    0x90, 0x00, 0x00,
]);

/// pcsc-lite keeps at most 33 ATR bytes (MAX_ATR_SIZE).
pub const PCSC_MAX_ATR: usize = 33;

/// The mute card's "answer to reset": noise longer than any ATR. vpcd still
/// reports the card present (it only checks that something came back), but
/// refuses the power-up ("Not enough memory for ATR"), so pcscd marks the card
/// mute (SCARD_STATE_MUTE) and SCardConnect fails with
/// SCARD_W_UNPOWERED_CARD, at once. An empty ATR would make vpcd drop the
/// connection and pcscd see no card; no answer at all would block pcscd's
/// reader thread for as long as the card stays connected (vpcd reads without
/// a time-out): neither looks like a mute chip.
pub const MUTE_ATR: [u8; 40] = [0xFF; 40];

const fn with_tck<const N: usize>(mut atr: [u8; N]) -> [u8; N] {
    let mut tck = 0u8;
    let mut i = 1;
    while i < N - 1 {
        tck ^= atr[i];
        i += 1;
    }
    atr[N - 1] = tck;
    atr
}

/// The card's reaction to one message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reaction {
    /// Bytes to send back (framed by the caller); `None` sends nothing.
    pub reply: Option<Vec<u8>>,
    /// The message was an APDU.
    pub apdu: bool,
    /// The status word answered, if any.
    pub sw: Option<u16>,
    /// The card drops the connection (after sending `reply`, if any).
    pub hang_up: bool,
}

/// How the card reacts to `message` while it misbehaves as `fault` says.
pub fn react(fault: ChipFault, message: &[u8]) -> Reaction {
    match message {
        [] => Reaction::default(),
        [CTRL_GET_ATR] => {
            let atr = if fault == ChipFault::Mute {
                MUTE_ATR.to_vec()
            } else {
                ATR.to_vec()
            };
            Reaction {
                reply: Some(atr),
                ..Reaction::default()
            }
        }
        // Power off, power on, reset, and anything else of one byte: nothing to send.
        [_] => Reaction::default(),
        apdu => match fault {
            // The chip falls silent: the card hangs up. vpcd then hands PC/SC
            // an empty answer (no status word) at once and sees the card go;
            // the card, still under the contacts, connects again (mute). An
            // empty framed answer would not do: vpcd reads it with a
            // zero-length recv, which on Linux waits for more bytes and so
            // blocks the reader; no answer at all blocks it the same way.
            ChipFault::Mute => Reaction {
                reply: None,
                apdu: true,
                sw: None,
                hang_up: true,
            },
            ChipFault::Status(sw) => Reaction {
                reply: Some(sw.to_be_bytes().to_vec()),
                apdu: true,
                sw: Some(sw),
                hang_up: false,
            },
            ChipFault::None => {
                let mut reply = select_fci(apdu).unwrap_or_default();
                reply.extend_from_slice(&[0x90, 0x00]);
                Reaction {
                    reply: Some(reply),
                    apdu: true,
                    sw: Some(0x9000),
                    hang_up: false,
                }
            }
        },
    }
}

/// SELECT by name (`00 A4 04 xx Lc AID`): a minimal FCI template naming the AID.
fn select_fci(apdu: &[u8]) -> Option<Vec<u8>> {
    if apdu.len() < 5 || apdu[1] != 0xA4 || apdu[2] != 0x04 {
        return None;
    }
    let lc = usize::from(apdu[4]);
    if !(5..=16).contains(&lc) || apdu.len() < 5 + lc {
        return None;
    }
    let aid = &apdu[5..5 + lc];
    // 84: DF name; A5: proprietary template with 88 (SFI of the directory) = 1.
    let proprietary = [0xA5, 0x03, 0x88, 0x01, 0x01];
    let mut fci = vec![0x6F, (2 + lc + proprietary.len()) as u8, 0x84, lc as u8];
    fci.extend_from_slice(aid);
    fci.extend_from_slice(&proprietary);
    Some(fci)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_atr_is_well_formed() {
        assert_eq!(ATR[0], 0x3B, "direct convention");
        let historical = usize::from(ATR[1] & 0x0F);
        // T0, TD1, TD2, historical bytes, TCK.
        assert_eq!(ATR.len(), 2 + 2 + historical + 1);
        assert_eq!(
            ATR[1..].iter().fold(0u8, |x, b| x ^ b),
            0,
            "TCK makes the XOR of T0..TCK zero"
        );
        assert_eq!(ATR[18], 0x03);
        assert!(ATR.len() <= PCSC_MAX_ATR);
        assert!(MUTE_ATR.len() > PCSC_MAX_ATR);
    }

    #[test]
    fn controls_are_silent_but_the_atr_request() {
        for c in [CTRL_POWER_OFF, CTRL_POWER_ON, CTRL_RESET, 9] {
            assert_eq!(react(ChipFault::None, &[c]), Reaction::default());
        }
        assert_eq!(react(ChipFault::None, &[]), Reaction::default());
        assert_eq!(
            react(ChipFault::None, &[CTRL_GET_ATR]).reply.unwrap(),
            ATR.to_vec()
        );
        assert_eq!(
            react(ChipFault::Status(0x6A80), &[CTRL_GET_ATR])
                .reply
                .unwrap(),
            ATR.to_vec()
        );
        assert_eq!(
            react(ChipFault::Mute, &[CTRL_GET_ATR]).reply.unwrap().len(),
            40
        );
    }

    #[test]
    fn apdus_answer_by_fault() {
        let put = [0x80, 0xDA, 0x9F, 0x36, 0x02, 0x00, 0x01];
        assert_eq!(
            react(ChipFault::None, &put),
            Reaction {
                reply: Some(vec![0x90, 0x00]),
                apdu: true,
                sw: Some(0x9000),
                hang_up: false
            }
        );
        assert_eq!(
            react(ChipFault::Status(0x6A80), &put),
            Reaction {
                reply: Some(vec![0x6A, 0x80]),
                apdu: true,
                sw: Some(0x6A80),
                hang_up: false
            }
        );
        assert_eq!(
            react(ChipFault::Mute, &put),
            Reaction {
                reply: None,
                apdu: true,
                sw: None,
                hang_up: true
            }
        );
        // Even a 2-byte message is an APDU for vpcd.
        assert!(react(ChipFault::None, &[0x00, 0xA4]).apdu);
    }

    #[test]
    fn select_by_name_answers_an_fci() {
        let select = [
            0x00, 0xA4, 0x04, 0x00, 0x07, 0xA0, 0x00, 0x00, 0x00, 0x03, 0x10, 0x10, 0x00,
        ];
        let r = react(ChipFault::None, &select).reply.unwrap();
        assert_eq!(r[0], 0x6F);
        assert_eq!(usize::from(r[1]), r.len() - 2 - 2);
        assert_eq!(&r[2..4], &[0x84, 0x07]);
        assert_eq!(&r[4..11], &select[5..12]);
        assert_eq!(&r[r.len() - 2..], &[0x90, 0x00]);
        // Truncated or odd selects just answer 9000.
        assert_eq!(
            react(ChipFault::None, &select[..8]).reply.unwrap(),
            vec![0x90, 0x00]
        );
        assert_eq!(
            react(ChipFault::None, &[0x00, 0xA4, 0x04, 0x00, 0x02, 1, 2])
                .reply
                .unwrap(),
            vec![0x90, 0x00]
        );
    }
}
