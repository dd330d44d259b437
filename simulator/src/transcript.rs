//! Session transcripts: JSON lines, one per decoded frame or reply, always in
//! redacted form (card numbers masked, binary payloads summarised by size and
//! hash), so a transcript can be attached to an issue as it is.
//!
//! ```text
//! {"t_ms":12,"dir":"in","frame":"Pmi;F"}
//! {"t_ms":12,"dir":"out","reply":"OK"}
//! {"t_ms":40,"dir":"in","frame":"Dbc;k;2;1016;<1016 bytes #9f3a61c2>"}
//! {"t_ms":41,"dir":"out","reply":"\\x06","raw":true}
//! ```
//!
//! A reply is shown with `redact::show_bytes` without its terminator: bytes
//! outside printable ASCII (and the backslash) appear as `\xNN`, so replay
//! can send the same bytes back. `raw` marks replies sent without a
//! terminator (ACK, NACK, malformed bytes). Masked digits stay masked on
//! replay: a transcript never holds a full card number.

use dialect::redact::{mask_text, show_bytes};
use dialect::{Inbound, Reply};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dir {
    In,
    Out,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    #[serde(default)]
    pub t_ms: u64,
    pub dir: Dir,
    /// Incoming frame, redacted (`dir: in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<String>,
    /// Reply, escaped and redacted, without terminator (`dir: out`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    /// The reply goes out as these bytes alone, with no terminator.
    #[serde(default, skip_serializing_if = "is_false")]
    pub raw: bool,
    /// The incoming bytes were not a valid frame.
    #[serde(default, skip_serializing_if = "is_false")]
    pub malformed: bool,
}

impl Entry {
    pub fn incoming(t_ms: u64, inbound: &Inbound) -> Entry {
        let (frame, malformed) = show_frame(inbound);
        Entry {
            t_ms,
            dir: Dir::In,
            frame: Some(frame),
            reply: None,
            raw: false,
            malformed,
        }
    }

    pub fn outgoing(t_ms: u64, reply: &Reply, card_data: bool) -> Entry {
        let (text, raw) = show_reply_of(reply, card_data);
        Entry {
            t_ms,
            dir: Dir::Out,
            frame: None,
            reply: Some(text),
            raw,
            malformed: false,
        }
    }

    /// The bytes a replayed reply sends.
    pub fn reply_bytes(&self, terminator: dialect::Terminator) -> Vec<u8> {
        let mut b = unescape(self.reply.as_deref().unwrap_or(""));
        if !self.raw {
            b.push(terminator.byte());
        }
        b
    }
}

/// A whole transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    pub entries: Vec<Entry>,
}

impl Transcript {
    pub fn load(path: &Path) -> io::Result<Transcript> {
        let file = std::fs::File::open(path)?;
        Transcript::read(io::BufReader::new(file))
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    pub fn read<R: BufRead>(r: R) -> io::Result<Transcript> {
        let mut entries = Vec::new();
        for (n, line) in r.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            let e: Entry = serde_json::from_str(&line).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("line {}: {e}", n + 1))
            })?;
            let ok = match e.dir {
                Dir::In => e.frame.is_some(),
                Dir::Out => e.reply.is_some(),
            };
            if !ok {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "line {}: an `in` entry needs `frame`, an `out` entry `reply`",
                        n + 1
                    ),
                ));
            }
            entries.push(e);
        }
        Ok(Transcript { entries })
    }

    pub fn save(&self, path: &Path) -> io::Result<()> {
        let mut w = io::BufWriter::new(std::fs::File::create(path)?);
        for e in &self.entries {
            serde_json::to_writer(&mut w, e)?;
            w.write_all(b"\n")?;
        }
        w.flush()
    }
}

/// Writes entries as they happen, one flushed line each, so a crash or a
/// kill leaves a usable transcript.
pub struct Recorder {
    out: Mutex<io::BufWriter<std::fs::File>>,
}

impl Recorder {
    pub fn create(path: &Path) -> io::Result<Recorder> {
        Ok(Recorder {
            out: Mutex::new(io::BufWriter::new(std::fs::File::create(path)?)),
        })
    }

    pub fn write(&self, e: &Entry) {
        let mut w = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let r = serde_json::to_writer(&mut *w, e)
            .map_err(io::Error::from)
            .and_then(|_| w.write_all(b"\n"))
            .and_then(|_| w.flush());
        if let Err(err) = r {
            tracing::warn!(error = %err, "cannot write the transcript");
        }
    }
}

/// A frame as a transcript and the logs show it: parameters masked, a binary
/// payload as its size and a short hash (equal images compare equal).
pub fn show_frame(inbound: &Inbound) -> (String, bool) {
    match inbound {
        // Magnetic data is card data: its length only. Not even a hash: with
        // the masked number printed elsewhere, a hash of the track would give
        // the hidden digits away to a brute force.
        Inbound::Command(c) if c.mnemonic == "Dm" && c.params.len() == 2 => (
            format!(
                "Dm;{};{}",
                mask_text(&c.params[0]),
                withheld(c.params[1].len())
            ),
            false,
        ),
        Inbound::Command(c) => {
            let mut s = c.mnemonic.clone();
            for p in &c.params {
                s.push(';');
                s.push_str(&mask_text(p));
            }
            if let Some(p) = &c.payload {
                s.push_str(&format!(";<{} bytes #{:08x}>", p.len(), fnv1a(p)));
            }
            (s, false)
        }
        Inbound::Malformed { raw, .. } => (show_bytes(raw, 64), true),
    }
}

/// How card data a transcript leaves out is written: its length.
pub fn withheld(chars: usize) -> String {
    format!("<{chars} chars withheld>")
}

/// The length a [`withheld`] text stands for.
pub fn withheld_len(shown: &str) -> Option<usize> {
    shown
        .strip_prefix('<')?
        .strip_suffix(" chars withheld>")?
        .parse()
        .ok()
}

/// Does the reply to this frame carry card data (a magnetic read-back)?
pub fn reply_is_card_data(inbound: &Inbound) -> bool {
    matches!(inbound, Inbound::Command(c) if c.mnemonic == "Smr")
}

/// A reply as a transcript shows it (card data withheld when `card_data`), and
/// whether it is sent without terminator.
pub fn show_reply_of(reply: &Reply, card_data: bool) -> (String, bool) {
    match reply {
        Reply::Text(t) if card_data && !t.starts_with("ERR") => (withheld(t.len()), false),
        other => show_reply(other),
    }
}

/// A reply as a transcript shows it, and whether it is sent without terminator.
pub fn show_reply(reply: &Reply) -> (String, bool) {
    match reply {
        Reply::Text(t) => (show_bytes(t.as_bytes(), 1024), false),
        Reply::Ack => (show_bytes(&[dialect::ACK], 8), true),
        Reply::Nack(c) => (show_bytes(&[dialect::NACK, *c], 8), true),
        Reply::Malformed { raw, .. } => (show_bytes(raw, 1024), true),
    }
}

/// Reverses the `\xNN` escapes of `show_bytes`.
pub fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() && b[i + 1] == b'x' {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 2]), hex(b[i + 3])) {
                out.push((h * 16 + l) as u8);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// 32-bit FNV-1a: short, stable, enough to tell two images apart in a transcript.
pub fn fnv1a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in data {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use dialect::Command;

    #[test]
    fn frames_are_redacted_and_payloads_hashed() {
        let c = Command::new("Dm").param(2).param("4000001234567899=2812");
        let (s, bad) = show_frame(&Inbound::Command(c));
        assert_eq!(s, "Dm;2;<21 chars withheld>");
        assert!(!bad);
        let c = Command::new("Dbc")
            .param("k")
            .param(2)
            .param(3)
            .with_payload(Bytes::from_static(b"\x00\x0d\xff"));
        let (s, _) = show_frame(&Inbound::Command(c));
        assert!(
            s.starts_with("Dbc;k;2;3;<3 bytes #") && s.ends_with('>'),
            "{s}"
        );
    }

    #[test]
    fn replies_round_trip_through_the_escapes() {
        for (reply, bytes) in [
            (Reply::Text("OK".into()), b"OK\r".to_vec()),
            (Reply::Ack, vec![0x06]),
            (Reply::Nack(b'C'), vec![0x15, b'C']),
            (
                Reply::Malformed {
                    raw: b"\xff\xfeO\x00K\r".to_vec(),
                    why: dialect::Malformed::BadByte(0xff),
                },
                b"\xff\xfeO\x00K\r".to_vec(),
            ),
            (Reply::Text("A\\B".into()), b"A\\B\r".to_vec()),
        ] {
            let e = Entry::outgoing(1, &reply, false);
            let line = serde_json::to_string(&e).unwrap();
            let back: Entry = serde_json::from_str(&line).unwrap();
            assert_eq!(back.reply_bytes(dialect::Terminator::Cr), bytes, "{line}");
        }
        let e = Entry::outgoing(1, &Reply::Text("4000001234567899".into()), false);
        assert_eq!(e.reply.as_deref(), Some("400000******7899"));
    }

    #[test]
    fn magnetic_data_is_withheld_down_to_its_length() {
        let dm = Inbound::Command(
            dialect::Command::new("Dm")
                .param(2)
                .param("4000001234567899=28122011234"),
        );
        let (shown, _) = show_frame(&dm);
        assert_eq!(shown, "Dm;2;<28 chars withheld>");
        let smr = Inbound::Command(dialect::Command::new("Smr").param(2));
        assert!(reply_is_card_data(&smr));
        let e = Entry::outgoing(1, &Reply::Text("4000001234567899=28122011234".into()), true);
        assert_eq!(e.reply.as_deref(), Some("<28 chars withheld>"));
        assert_eq!(withheld_len("<27 chars withheld>"), Some(27));
        // An error answer is not card data and stays readable.
        let e = Entry::outgoing(1, &Reply::Text("ERROR MAG".into()), true);
        assert_eq!(e.reply.as_deref(), Some("ERROR MAG"));
    }

    #[test]
    fn reads_the_documented_shape() {
        let t = Transcript::read(&b"{\"t_ms\":12,\"dir\":\"in\",\"frame\":\"Pmi;F\"}\n{\"dir\":\"out\",\"reply\":\"OK\"}\n"[..]).unwrap();
        assert_eq!(t.entries.len(), 2);
        assert!(Transcript::read(&b"{\"dir\":\"in\"}\n"[..])
            .unwrap_err()
            .to_string()
            .contains("line 1"));
        assert!(Transcript::read(&b"nonsense\n"[..]).is_err());
    }
}
