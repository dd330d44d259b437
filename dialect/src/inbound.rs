//! Device side of the link: decoding command frames as the printer reads them.
//!
//! Text commands run from the mnemonic to CR. Panel downloads carry binary data
//! that may hold any byte, CR included, so their length is known before the data
//! is read: `Db;panel;levels;` is followed by exactly the uncompressed size of the
//! panel, `Dbc;panel;levels;count;` by `count` bytes. The leading ESC is optional
//! right after a CR, as the printers accept. NUL bytes outside a frame are
//! padding (real drivers send runs of them after a download and at the end of a
//! job) and are skipped. Numbers in the frame (level count, byte count) are read
//! strictly, see [`strict_number`]. Like the reply decoder, this one never
//! fails: what it cannot read becomes [`Inbound::Malformed`].

use crate::frame::{Command, CR, ESC, SEP};
use crate::panel::{Geometry, Levels, Panel};
use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::Decoder;

/// Upper bound of a text command (everything but panel downloads).
pub const MAX_TEXT_FRAME: usize = 1024;

/// Padding between frames, skipped by the decoder.
pub const NUL: u8 = 0x00;

/// A number as a strict printer reads it: one or more ASCII decimal digits,
/// no sign, no space, no leading zero (except `0` itself), and at most `max`.
/// Anything else is `None`. So a number read from a frame is always written
/// back the same way (`n.to_string()` gives the text it came from).
pub fn strict_number(text: &str, max: u64) -> Option<u64> {
    let b = text.as_bytes();
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) || (b[0] == b'0' && b.len() > 1) {
        return None;
    }
    b.iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .filter(|&n| n <= max)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Command(Command),
    Malformed { raw: Vec<u8>, why: String },
}

#[derive(Debug, Clone)]
pub struct CommandCodec {
    geometry: Geometry,
    discarding: bool,
}

impl CommandCodec {
    pub fn new(geometry: Geometry) -> Self {
        CommandCodec {
            geometry,
            discarding: false,
        }
    }

    /// Largest payload a `Dbc` may announce: compressed data never needs more
    /// than twice the raw size (worst case of the colour run encoding).
    fn max_payload(&self) -> usize {
        self.geometry.raw_len(Levels::L128) * 2 + 16
    }
}

enum Parse {
    Need,
    Done(Inbound, usize),
    /// Malformed: skip to the next CR.
    Bad(String),
}

impl CommandCodec {
    fn parse(&self, buf: &[u8]) -> Parse {
        let start = usize::from(buf.first() == Some(&ESC));
        let body = &buf[start..];
        let name_len = body.iter().take_while(|b| b.is_ascii_alphabetic()).count();
        if name_len == body.len() {
            if name_len > 8 {
                return Parse::Bad(format!("mnemonic longer than 8 letters ({name_len})"));
            }
            return Parse::Need;
        }
        if name_len == 0 {
            return Parse::Bad(format!(
                "frame does not start with a mnemonic (byte 0x{:02x})",
                body[0]
            ));
        }
        if name_len > 8 {
            return Parse::Bad(format!("mnemonic longer than 8 letters ({name_len})"));
        }
        let mnemonic = String::from_utf8(body[..name_len].to_vec()).expect("ASCII letters");
        let fixed = match mnemonic.as_str() {
            "Db" => Some(2),
            "Dbc" => Some(3),
            _ => None,
        };
        let mut params: Vec<String> = Vec::new();
        let mut i = name_len;
        loop {
            let Some(&b) = body.get(i) else {
                return self.need_or_too_long(i);
            };
            if b == CR {
                if fixed.is_some() {
                    return Parse::Bad(format!("{mnemonic} without its panel data"));
                }
                return Parse::Done(
                    Inbound::Command(Command {
                        mnemonic,
                        params,
                        payload: None,
                    }),
                    start + i + 1,
                );
            }
            if b != SEP {
                return Parse::Bad(format!("0x{b:02x} where a ';' or CR was expected"));
            }
            i += 1;
            if let Some(n) = fixed {
                if params.len() == n {
                    return self.payload(mnemonic, params, &body[i..], start + i);
                }
            }
            let len = body[i..]
                .iter()
                .take_while(|&&b| b != SEP && b != CR)
                .count();
            if i + len >= body.len() {
                return self.need_or_too_long(i + len);
            }
            let field = &body[i..i + len];
            if let Some(&bad) = field.iter().find(|&&b| !(0x20..0x7F).contains(&b)) {
                return Parse::Bad(format!("byte 0x{bad:02x} in a parameter of {mnemonic}"));
            }
            params.push(String::from_utf8(field.to_vec()).expect("printable ASCII"));
            i += len;
        }
    }

    fn need_or_too_long(&self, len: usize) -> Parse {
        if len > MAX_TEXT_FRAME {
            Parse::Bad(format!("no CR within {MAX_TEXT_FRAME} bytes"))
        } else {
            Parse::Need
        }
    }

    fn payload(&self, mnemonic: String, params: Vec<String>, rest: &[u8], offset: usize) -> Parse {
        let panel_ok = Panel::from_letter(&params[0]).is_some();
        let levels = strict_number(&params[1], 128).and_then(|n| Levels::from_number(n as u32));
        let (Some(levels), true) = (levels, panel_ok) else {
            return Parse::Bad(format!(
                "{mnemonic}: bad panel or level count {:?};{:?}",
                params[0], params[1]
            ));
        };
        let len = if mnemonic == "Db" {
            self.geometry.raw_len(levels)
        } else {
            match strict_number(&params[2], self.max_payload() as u64) {
                Some(n) => n as usize,
                None => {
                    return Parse::Bad(format!(
                        "Dbc: byte count {:?} is not a plain decimal number up to {}",
                        params[2],
                        self.max_payload()
                    ))
                }
            }
        };
        if rest.len() < len + 1 {
            return Parse::Need;
        }
        if rest[len] != CR {
            return Parse::Bad(format!(
                "{mnemonic}: panel data is not followed by CR after {len} bytes"
            ));
        }
        let payload = Bytes::copy_from_slice(&rest[..len]);
        Parse::Done(
            Inbound::Command(Command {
                mnemonic,
                params,
                payload: Some(payload),
            }),
            offset + len + 1,
        )
    }
}

impl Decoder for CommandCodec {
    type Item = Inbound;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Inbound>, std::io::Error> {
        if self.discarding {
            let Some(i) = src.iter().position(|&b| b == CR) else {
                src.clear();
                return Ok(None);
            };
            src.advance(i + 1);
            self.discarding = false;
        }
        // Blank separators and NUL padding between frames are harmless.
        while matches!(src.first(), Some(&CR) | Some(&b'\n') | Some(&NUL)) {
            src.advance(1);
        }
        if src.is_empty() {
            return Ok(None);
        }
        match self.parse(src) {
            Parse::Need => Ok(None),
            Parse::Done(item, used) => {
                src.advance(used);
                Ok(Some(item))
            }
            Parse::Bad(why) => {
                let end = src.iter().position(|&b| b == CR);
                let raw = src[..end.unwrap_or(src.len()).min(64)].to_vec();
                match end {
                    Some(i) => src.advance(i + 1),
                    None => {
                        src.clear();
                        self.discarding = true;
                    }
                }
                Ok(Some(Inbound::Malformed { raw, why }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel;

    fn decode_all(input: &[u8], g: Geometry) -> Vec<Inbound> {
        let mut c = CommandCodec::new(g);
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(x) = c.decode(&mut buf).unwrap() {
            out.push(x);
        }
        out
    }

    fn cmd(m: &str, p: &[&str]) -> Inbound {
        Inbound::Command(Command {
            mnemonic: m.into(),
            params: p.iter().map(|s| s.to_string()).collect(),
            payload: None,
        })
    }

    #[test]
    fn text_commands_with_optional_esc_after_cr() {
        assert_eq!(
            decode_all(b"\x1bPmi;F\rSi\r\x1bRse;o\r", Geometry::default()),
            vec![cmd("Pmi", &["F"]), cmd("Si", &[]), cmd("Rse", &["o"])]
        );
    }

    #[test]
    fn binary_panel_with_cr_bytes_inside() {
        let g = Geometry {
            width: 16,
            height: 2,
        };
        let data = [0x0D, 0x1B, 0x3B, 0x0D];
        let mut input = b"\x1bDb;k;2;".to_vec();
        input.extend_from_slice(&data);
        input.push(CR);
        input.extend_from_slice(b"\x1bSe\r");
        let out = decode_all(&input, g);
        assert_eq!(out.len(), 2);
        let Inbound::Command(c) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(c.payload.as_deref(), Some(&data[..]));
        assert_eq!(out[1], cmd("Se", &[]));
    }

    #[test]
    fn compressed_panel_round_trips_through_the_frame() {
        let g = Geometry {
            width: 648,
            height: 30,
        };
        let mut bm = panel::Bitmap::blank(g, Levels::Two);
        bm.set(10, 10, 1);
        let data = panel::compress(&bm);
        let frame = Command::new("Dbc")
            .param("k")
            .param(2)
            .param(data.len())
            .with_payload(Bytes::from(data))
            .to_bytes()
            .unwrap();
        let out = decode_all(&frame, g);
        let Inbound::Command(c) = &out[0] else {
            panic!("{out:?}")
        };
        assert_eq!(
            panel::decompress(c.payload.as_ref().unwrap(), g, Levels::Two).unwrap(),
            bm
        );
    }

    #[test]
    fn split_input_waits_for_the_rest() {
        let mut c = CommandCodec::new(Geometry::default());
        let mut buf = BytesMut::from(&b"\x1bRs"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"n\r");
        assert_eq!(c.decode(&mut buf).unwrap(), Some(cmd("Rsn", &[])));
    }

    #[test]
    fn garbage_is_reported_and_skipped() {
        let out = decode_all(b"\x1b\xff\xfe\r\x1bRsn\r", Geometry::default());
        assert!(matches!(out[0], Inbound::Malformed { .. }));
        assert_eq!(out[1], cmd("Rsn", &[]));
        let out = decode_all(
            b"\x1bDbc;k;2;99999999999;xx\r\x1bRsn\r",
            Geometry::default(),
        );
        assert!(matches!(out[0], Inbound::Malformed { .. }), "{out:?}");
        assert_eq!(out[1], cmd("Rsn", &[]));
    }

    #[test]
    fn nul_padding_outside_frames_is_skipped() {
        let g = Geometry {
            width: 16,
            height: 2,
        };
        let pad = |n: usize| vec![NUL; n];
        let mut input = pad(16);
        input.extend_from_slice(b"\x1bSs\r");
        input.extend(pad(64));
        input.extend_from_slice(b"\x1bDb;k;2;\x00\x0d\x00\x1b\r");
        // After a download, as the vendor's driver sends it; then a frame
        // without its optional ESC.
        input.extend(pad(33));
        input.extend_from_slice(b"Sr\r");
        input.extend(pad(1));
        input.extend_from_slice(b"\x1bSe;1\r");
        input.extend(pad(64));
        // Whole, and byte by byte: the same commands, nothing malformed.
        for cut in [input.len(), 1, 7] {
            let mut c = CommandCodec::new(g);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for piece in input.chunks(cut) {
                buf.extend_from_slice(piece);
                while let Some(x) = c.decode(&mut buf).unwrap() {
                    out.push(x);
                }
            }
            assert!(buf.is_empty(), "trailing padding is consumed");
            assert_eq!(out.len(), 4, "{out:?}");
            assert_eq!(out[0], cmd("Ss", &[]));
            let Inbound::Command(db) = &out[1] else {
                panic!("{out:?}")
            };
            assert_eq!(db.payload.as_deref(), Some(&[0, 0x0D, 0, 0x1B][..]));
            assert_eq!(out[2], cmd("Sr", &[]));
            assert_eq!(out[3], cmd("Se", &["1"]));
        }
    }

    #[test]
    fn nul_inside_a_frame_is_not_padding() {
        let out = decode_all(b"\x1bR\x00sn\r\x00\x00\x1bRsn\r", Geometry::default());
        assert!(matches!(out[0], Inbound::Malformed { .. }), "{out:?}");
        assert_eq!(out[1], cmd("Rsn", &[]));
        let out = decode_all(b"\x1bRse;\x00o\r\x1bRsn\r", Geometry::default());
        assert!(matches!(out[0], Inbound::Malformed { .. }), "{out:?}");
        assert_eq!(out[1], cmd("Rsn", &[]));
    }

    #[test]
    fn strict_numbers() {
        assert_eq!(strict_number("0", 10), Some(0));
        assert_eq!(strict_number("2", 10), Some(2));
        assert_eq!(strict_number("10", 10), Some(10));
        assert_eq!(strict_number("11", 10), None, "over the bound");
        assert_eq!(
            strict_number("18446744073709551615", u64::MAX),
            Some(u64::MAX)
        );
        for bad in [
            "",
            "02",
            "00",
            "007",
            "+2",
            "-2",
            "-0",
            " 2",
            "2 ",
            "2 0",
            "2a",
            "0x10",
            "1e3",
            "2.0",
            "\u{0662}",
            "18446744073709551616",
            "99999999999999999999999999",
        ] {
            assert_eq!(strict_number(bad, u64::MAX), None, "{bad:?}");
        }
    }

    /// Every number the decoder reads: the level count of `Db` and `Dbc`,
    /// and the byte count of `Dbc`.
    #[test]
    fn numbers_in_downloads_are_read_strictly() {
        let g = Geometry {
            width: 16,
            height: 2,
        };
        let ok = |input: &[u8]| {
            let out = decode_all(input, g);
            assert!(
                matches!(&out[..], [Inbound::Command(_), ..]),
                "{:?}: {out:?}",
                String::from_utf8_lossy(input)
            );
            out
        };
        let bad = |input: &[u8]| {
            let mut whole = input.to_vec();
            whole.extend_from_slice(b"\x1bRsn\r");
            let out = decode_all(&whole, g);
            assert!(
                matches!(out[0], Inbound::Malformed { .. }),
                "{:?}: {out:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(out.last(), Some(&cmd("Rsn", &[])), "{out:?}");
        };
        // The byte count of Dbc.
        ok(b"\x1bDbc;c;32;2;ab\r");
        let out = ok(b"\x1bDbc;k;2;0;\r");
        let Inbound::Command(c) = &out[0] else {
            unreachable!()
        };
        assert_eq!(c.payload.as_deref(), Some(&[][..]));
        bad(b"\x1bDbc;c;32;02;ab\r"); // leading zero: the fuzzer's find
        bad(b"\x1bDbc;c;32;00;\r");
        bad(b"\x1bDbc;c;32;+2;ab\r");
        bad(b"\x1bDbc;c;32;-2;ab\r");
        bad(b"\x1bDbc;c;32; 2;ab\r");
        bad(b"\x1bDbc;c;32;2 ;ab\r");
        bad(b"\x1bDbc;c;32;;ab\r");
        bad(b"\x1bDbc;c;32;2x;ab\r");
        bad(b"\x1bDbc;c;32;18446744073709551617;ab\r");
        bad(b"\x1bDbc;c;32;99999999999999999999999;ab\r");
        // The level count of Db and Dbc.
        ok(b"\x1bDb;k;2;abcd\r");
        for levels in [
            "02",
            "+2",
            "-2",
            " 2",
            "2 ",
            "",
            "0",
            "4294967298",
            "99999999999999999999",
        ] {
            for frame in [
                format!("\x1bDb;k;{levels};abcd\r"),
                format!("\x1bDbc;k;{levels};2;ab\r"),
            ] {
                bad(frame.as_bytes());
            }
        }
        ok(b"\x1bDbc;c;128;1;a\r");
        bad(b"\x1bDbc;c;0128;1;a\r");
    }

    #[test]
    fn endless_text_is_bounded() {
        let input = vec![b'A'; MAX_TEXT_FRAME + 10];
        let out = decode_all(&input, Geometry::default());
        assert!(matches!(out[0], Inbound::Malformed { .. }));
    }
}
