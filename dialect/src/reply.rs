//! Host side of the link: decoding what the printer answers.
//!
//! Replies are ASCII text ended by a terminator (CR on serial and TCP links, NUL
//! on the USB printer-class node), or, in ACK/NACK mode, a lone ACK byte or a NACK
//! byte followed by one code character. The decoder never fails: input it cannot
//! make sense of becomes [`Reply::Malformed`] with the bytes kept, and decoding
//! resumes at the next terminator. A `Decoder` error would end a `FramedRead`
//! stream, and a noisy line must not take the link down with it.

use crate::frame::{Command, EncodeError, CR};
use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

pub const ACK: u8 = 0x06;
pub const NACK: u8 = 0x15;
const LF: u8 = 0x0A;
const NUL: u8 = 0x00;

/// What ends a text reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminator {
    /// Carriage return (serial, TCP). A line feed right after it is tolerated.
    Cr,
    /// NUL byte (USB printer-class node). A CR right before it is tolerated.
    Nul,
}

impl Terminator {
    pub fn byte(self) -> u8 {
        match self {
            Terminator::Cr => CR,
            Terminator::Nul => NUL,
        }
    }
}

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Malformed {
    /// A byte outside printable ASCII inside a text reply.
    BadByte(u8),
    /// No terminator within the maximum reply size.
    Oversized(usize),
    /// The link closed in the middle of a reply.
    Truncated,
    /// ACK or NACK while ACK/NACK mode is off, or a NACK without its code.
    UnexpectedControl(u8),
}

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Malformed::BadByte(b) => write!(f, "byte 0x{b:02x} is not printable ASCII"),
            Malformed::Oversized(n) => write!(f, "no end of reply within {n} bytes"),
            Malformed::Truncated => write!(f, "the link closed in the middle of a reply"),
            Malformed::UnexpectedControl(b) => write!(f, "unexpected control byte 0x{b:02x}"),
        }
    }
}

/// One reply from the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Text(String),
    Ack,
    /// NACK with its code character (`1`, `2`, `T`, `C`, ...).
    Nack(u8),
    Malformed {
        raw: Vec<u8>,
        why: Malformed,
    },
}

/// Codec for the host end: encodes [`Command`]s, decodes [`Reply`]s.
#[derive(Debug, Clone)]
pub struct ReplyCodec {
    terminator: Terminator,
    ack_nack: bool,
    max_reply: usize,
    /// Skipping the rest of an oversized or broken reply up to its terminator.
    discarding: bool,
    /// The last reply was ACK or NACK: a terminator that follows belongs to it.
    after_control: bool,
}

impl ReplyCodec {
    /// `max_reply` bounds a text reply; nothing the printer says legitimately
    /// comes near it (track 3 read-back, the longest, is 107 characters).
    pub fn new(terminator: Terminator, ack_nack: bool, max_reply: usize) -> Self {
        ReplyCodec {
            terminator,
            ack_nack,
            max_reply: max_reply.max(8),
            discarding: false,
            after_control: false,
        }
    }

    pub fn set_ack_nack(&mut self, on: bool) {
        self.ack_nack = on;
    }

    pub fn terminator(&self) -> Terminator {
        self.terminator
    }

    fn is_term(&self, b: u8) -> bool {
        b == self.terminator.byte()
    }

    /// Consumes the terminator after an ACK or NACK if it is already here,
    /// so that it is not left over as stale bytes for the next command.
    fn skip_control_tail(&mut self, src: &mut BytesMut) {
        if src.first() == Some(&CR) {
            src.advance(1);
        }
        if src.first() == Some(&NUL) {
            src.advance(1);
            self.after_control = false;
        }
    }

    /// Skip bytes up to and including the next terminator.
    fn skip_to_terminator(&mut self, src: &mut BytesMut) -> bool {
        match src.iter().position(|&b| self.is_term(b)) {
            Some(i) => {
                src.advance(i + 1);
                self.discarding = false;
                true
            }
            None => {
                src.clear();
                false
            }
        }
    }
}

impl Decoder for ReplyCodec {
    type Item = Reply;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, std::io::Error> {
        if self.discarding && !self.skip_to_terminator(src) {
            return Ok(None);
        }
        // Tolerate the second half of a CR LF or CR NUL pair between replies,
        // and the terminator some links send after ACK or NACK: none, a CR, a
        // NUL or CR NUL (hardware/DIALECT.md, "ACK and NACK on the USB node").
        // A terminator arriving later than its ACK is still recognised, as long
        // as nothing else came first: a reply never starts with CR or NUL.
        while let Some(&b) = src.first() {
            let tolerated = match self.terminator {
                Terminator::Cr => b == LF,
                Terminator::Nul => false,
            } || (self.after_control && (b == CR || b == NUL));
            if tolerated {
                src.advance(1);
                if b == NUL {
                    self.after_control = false;
                }
            } else {
                break;
            }
        }
        let Some(&first) = src.first() else {
            return Ok(None);
        };
        self.after_control = false;
        if first == ACK || first == NACK {
            if !self.ack_nack {
                src.advance(1);
                return Ok(Some(Reply::Malformed {
                    raw: vec![first],
                    why: Malformed::UnexpectedControl(first),
                }));
            }
            if first == ACK {
                src.advance(1);
                self.after_control = true;
                self.skip_control_tail(src);
                return Ok(Some(Reply::Ack));
            }
            if src.len() < 2 {
                return Ok(None);
            }
            let code = src[1];
            src.advance(2);
            if code.is_ascii_graphic() {
                self.after_control = true;
                self.skip_control_tail(src);
                return Ok(Some(Reply::Nack(code)));
            }
            return Ok(Some(Reply::Malformed {
                raw: vec![NACK, code],
                why: Malformed::UnexpectedControl(NACK),
            }));
        }
        let Some(end) = src.iter().position(|&b| self.is_term(b)) else {
            if src.len() > self.max_reply {
                let raw = src[..self.max_reply].to_vec();
                src.clear();
                self.discarding = true;
                return Ok(Some(Reply::Malformed {
                    raw,
                    why: Malformed::Oversized(self.max_reply),
                }));
            }
            // A bad byte is reported at once rather than after the terminator:
            // a line that only carries noise may never send one.
            if let Some(bad) = src.iter().position(|&b| !is_text(b, self.terminator)) {
                let raw = src[..=bad].to_vec();
                let b = src[bad];
                src.advance(bad + 1);
                self.discarding = true;
                return Ok(Some(Reply::Malformed {
                    raw,
                    why: Malformed::BadByte(b),
                }));
            }
            return Ok(None);
        };
        if end > self.max_reply {
            let raw = src[..self.max_reply].to_vec();
            src.advance(end + 1);
            return Ok(Some(Reply::Malformed {
                raw,
                why: Malformed::Oversized(self.max_reply),
            }));
        }
        let mut line = src.split_to(end + 1);
        line.truncate(end);
        if self.terminator == Terminator::Nul && line.last() == Some(&CR) {
            line.truncate(line.len() - 1);
        }
        if let Some(&b) = line.iter().find(|&&b| !(0x20..0x7F).contains(&b)) {
            return Ok(Some(Reply::Malformed {
                raw: line.to_vec(),
                why: Malformed::BadByte(b),
            }));
        }
        let text = String::from_utf8(line.to_vec()).expect("checked printable ASCII");
        Ok(Some(Reply::Text(text)))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Reply>, std::io::Error> {
        if let Some(r) = self.decode(src)? {
            return Ok(Some(r));
        }
        if src.is_empty() || self.discarding {
            src.clear();
            return Ok(None);
        }
        let raw = src.split().to_vec();
        Ok(Some(Reply::Malformed {
            raw,
            why: Malformed::Truncated,
        }))
    }
}

fn is_text(b: u8, t: Terminator) -> bool {
    (0x20..0x7F).contains(&b) || (t == Terminator::Nul && b == CR)
}

impl Encoder<&Command> for ReplyCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: &Command, dst: &mut BytesMut) -> Result<(), std::io::Error> {
        item.encode(dst)
            .map_err(|e: EncodeError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }
}

/// Device side: the bytes of a reply as the printer sends it.
pub fn encode_reply(reply: &Reply, terminator: Terminator) -> Vec<u8> {
    match reply {
        Reply::Text(t) => {
            let mut v = t.as_bytes().to_vec();
            v.push(terminator.byte());
            v
        }
        Reply::Ack => vec![ACK],
        Reply::Nack(c) => vec![NACK, *c],
        Reply::Malformed { raw, .. } => raw.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(codec: &mut ReplyCodec, input: &[u8]) -> Vec<Reply> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(r) = codec.decode(&mut buf).unwrap() {
            out.push(r);
        }
        if let Some(r) = codec.decode_eof(&mut buf).unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn text_replies_split_on_cr_and_tolerate_crlf() {
        let mut c = ReplyCodec::new(Terminator::Cr, false, 64);
        assert_eq!(
            decode_all(&mut c, b"OK\rCOVER OPEN\r\nKM500B\r"),
            vec![
                Reply::Text("OK".into()),
                Reply::Text("COVER OPEN".into()),
                Reply::Text("KM500B".into())
            ]
        );
    }

    #[test]
    fn usb_replies_end_with_nul() {
        let mut c = ReplyCodec::new(Terminator::Nul, false, 64);
        assert_eq!(
            decode_all(&mut c, b"OK\0SN123\r\0"),
            vec![Reply::Text("OK".into()), Reply::Text("SN123".into())]
        );
    }

    #[test]
    fn partial_reply_waits_for_more() {
        let mut c = ReplyCodec::new(Terminator::Cr, false, 64);
        let mut buf = BytesMut::from(&b"FEEDER EM"[..]);
        assert_eq!(c.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"PTY\r");
        assert_eq!(
            c.decode(&mut buf).unwrap(),
            Some(Reply::Text("FEEDER EMPTY".into()))
        );
    }

    #[test]
    fn ack_nack_mode() {
        let mut c = ReplyCodec::new(Terminator::Cr, true, 64);
        assert_eq!(
            decode_all(&mut c, b"\x06\x15C\x06OK\r"),
            vec![
                Reply::Ack,
                Reply::Nack(b'C'),
                Reply::Ack,
                Reply::Text("OK".into())
            ]
        );
        let mut off = ReplyCodec::new(Terminator::Cr, false, 64);
        assert!(matches!(
            decode_all(&mut off, b"\x06")[0],
            Reply::Malformed {
                why: Malformed::UnexpectedControl(0x06),
                ..
            }
        ));
    }

    /// After ACK or NACK a link may send nothing, a CR, a NUL or CR NUL:
    /// each is part of that reply, whether it comes with it or later, and
    /// the next reply decodes as itself (never as an empty text).
    #[test]
    fn a_terminator_after_ack_or_nack_belongs_to_it() {
        for t in [Terminator::Nul, Terminator::Cr] {
            let text = |s: &str| {
                let mut v = s.as_bytes().to_vec();
                v.push(t.byte());
                v
            };
            for tail in [&b""[..], b"\0", b"\r", b"\r\0"] {
                // All in one chunk.
                let mut c = ReplyCodec::new(t, true, 64);
                let input = [&[ACK][..], tail, &[NACK, b'F'], tail, &text("CARD")].concat();
                assert_eq!(
                    decode_all(&mut c, &input),
                    vec![Reply::Ack, Reply::Nack(b'F'), Reply::Text("CARD".into())],
                    "{t:?} tail {tail:?}"
                );
                // The ACK, then its tail and the next reply in later chunks:
                // nothing is left over after the ACK's own chunk.
                let mut c = ReplyCodec::new(t, true, 64);
                let mut buf = BytesMut::from(&[ACK][..]);
                assert_eq!(c.decode(&mut buf).unwrap(), Some(Reply::Ack));
                assert!(buf.is_empty());
                buf.extend_from_slice(tail);
                assert_eq!(c.decode(&mut buf).unwrap(), None, "{t:?} tail {tail:?}");
                buf.extend_from_slice(&text("OK"));
                assert_eq!(c.decode(&mut buf).unwrap(), Some(Reply::Text("OK".into())));
                assert!(buf.is_empty());
            }
        }
        // Without an ACK before it, a lone terminator is still an empty reply.
        let mut c = ReplyCodec::new(Terminator::Nul, true, 64);
        assert_eq!(decode_all(&mut c, b"\0"), vec![Reply::Text(String::new())]);
    }

    #[test]
    fn noise_becomes_malformed_then_decoding_resumes() {
        let mut c = ReplyCodec::new(Terminator::Cr, false, 64);
        let out = decode_all(&mut c, b"O\xffK\rOK\r");
        assert!(
            matches!(
                &out[0],
                Reply::Malformed {
                    why: Malformed::BadByte(0xff),
                    ..
                }
            ),
            "{out:?}"
        );
        assert_eq!(out[1], Reply::Text("OK".into()));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn noise_without_terminator_is_reported_at_once() {
        let mut c = ReplyCodec::new(Terminator::Cr, false, 64);
        let mut buf = BytesMut::from(&b"\x00\x00\x00"[..]);
        assert!(matches!(
            c.decode(&mut buf).unwrap(),
            Some(Reply::Malformed {
                why: Malformed::BadByte(0),
                ..
            })
        ));
    }

    #[test]
    fn oversized_reply_is_bounded() {
        let mut c = ReplyCodec::new(Terminator::Cr, false, 16);
        let mut input = vec![b'A'; 1000];
        input.push(CR);
        input.extend_from_slice(b"OK\r");
        let out = decode_all(&mut c, &input);
        assert!(
            matches!(&out[0], Reply::Malformed { raw, why: Malformed::Oversized(16) } if raw.len() == 16)
        );
        assert_eq!(out.last(), Some(&Reply::Text("OK".into())));
    }

    #[test]
    fn truncated_reply_at_eof() {
        let mut c = ReplyCodec::new(Terminator::Cr, false, 16);
        assert_eq!(
            decode_all(&mut c, b"OK\rERR"),
            vec![
                Reply::Text("OK".into()),
                Reply::Malformed {
                    raw: b"ERR".to_vec(),
                    why: Malformed::Truncated
                }
            ]
        );
    }
}
