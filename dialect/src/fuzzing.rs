//! Invariants the decoders keep on any input, shared by the libFuzzer targets
//! (`fuzz/`) and a deterministic smoke test that runs in every CI build.

use crate::frame::Command;
use crate::inbound::{strict_number, CommandCodec, Inbound, MAX_TEXT_FRAME};
use crate::panel::{self, Geometry, Levels};
use crate::reply::{Reply, ReplyCodec, Terminator};
use bytes::BytesMut;
use tokio_util::codec::Decoder;

/// Feeds `data` to a reply decoder in chunks cut where `data` says, and checks
/// that nothing panics, every text reply is printable ASCII within the bound,
/// and the decoder never holds more than the bound plus one chunk.
pub fn reply_decoder(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let terminator = if mode & 1 == 0 {
        Terminator::Cr
    } else {
        Terminator::Nul
    };
    let max = 16 + usize::from(mode >> 2);
    let mut codec = ReplyCodec::new(terminator, mode & 2 != 0, max);
    let mut buf = BytesMut::new();
    let mut items = 0usize;
    for piece in rest.chunks(1 + usize::from(mode % 7)) {
        buf.extend_from_slice(piece);
        while let Some(r) = codec
            .decode(&mut buf)
            .expect("the reply decoder never fails")
        {
            check_reply(&r, max);
            items += 1;
            assert!(items <= rest.len() + 1, "more replies than bytes");
        }
        assert!(
            buf.len() <= max + piece.len() + 1,
            "decoder buffered {} bytes past its bound {max}",
            buf.len()
        );
    }
    while let Some(r) = codec
        .decode_eof(&mut buf)
        .expect("the reply decoder never fails")
    {
        check_reply(&r, max);
        items += 1;
        assert!(items <= rest.len() + 2, "decode_eof does not terminate");
    }
}

fn check_reply(r: &Reply, max: usize) {
    match r {
        Reply::Text(t) => {
            assert!(
                t.len() <= max,
                "reply of {} bytes past the bound {max}",
                t.len()
            );
            assert!(
                t.bytes().all(|b| (0x20..0x7F).contains(&b)),
                "non-printable text reply"
            );
        }
        Reply::Malformed { raw, .. } => assert!(
            raw.len() <= max.max(2) + 1,
            "malformed raw of {} bytes",
            raw.len()
        ),
        Reply::Ack | Reply::Nack(_) => {}
    }
}

/// The device-side decoder on a small panel geometry: nothing panics, payloads
/// have the announced sizes, text frames stay within the bound, and every
/// command decoded re-encodes to a frame that decodes to the same command
/// (numbers are read strictly, so `Dbc;c;2;02;..` is malformed, never `2`).
pub fn command_decoder(data: &[u8]) {
    let g = Geometry {
        width: 24,
        height: 4,
    };
    let mut codec = CommandCodec::new(g);
    let mut buf = BytesMut::new();
    let cut = 1 + data.first().map_or(0, |b| usize::from(b % 13));
    for piece in data.chunks(cut) {
        buf.extend_from_slice(piece);
        while let Some(item) = codec
            .decode(&mut buf)
            .expect("the command decoder never fails")
        {
            match item {
                Inbound::Command(c) => {
                    assert!(!c.mnemonic.is_empty() && c.mnemonic.len() <= 8);
                    if let Some(p) = &c.payload {
                        let levels = strict_number(&c.params[1], 128)
                            .and_then(|n| Levels::from_number(n as u32))
                            .expect("checked by the decoder");
                        assert_eq!(levels.number().to_string(), c.params[1]);
                        if c.mnemonic == "Db" {
                            assert_eq!(p.len(), g.raw_len(levels));
                        } else {
                            assert_eq!(p.len().to_string(), c.params[2]);
                        }
                    } else {
                        let text: usize = c.params.iter().map(|p| p.len() + 1).sum();
                        assert!(text <= MAX_TEXT_FRAME);
                    }
                    round_trip(&c, g);
                }
                Inbound::Malformed { raw, .. } => assert!(raw.len() <= 64),
            }
        }
    }
}

/// A decoded command encodes, and its frame decodes to the same command, whole.
fn round_trip(c: &Command, g: Geometry) {
    let frame = c.to_bytes().expect("a decoded command encodes");
    let mut codec = CommandCodec::new(g);
    let mut again = BytesMut::from(&frame[..]);
    let item = codec
        .decode(&mut again)
        .expect("the command decoder never fails");
    assert_eq!(item.as_ref(), Some(&Inbound::Command(c.clone())));
    assert!(again.is_empty(), "the frame is read whole");
}

/// Panel decompression on any payload: an error or a bitmap of the right
/// size with values within the level count; a bitmap compresses back to data
/// that decompresses to the same bitmap.
pub fn panel_decompress(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let levels = [Levels::Two, Levels::L32, Levels::L64, Levels::L128][usize::from(mode % 4)];
    let g = Geometry {
        width: 8 + usize::from(mode >> 4) * 3,
        height: 1 + usize::from((mode >> 2) % 4),
    };
    if let Ok(bm) = panel::decompress(rest, g, levels) {
        assert_eq!(bm.pixels.len(), g.pixels());
        assert!(bm.pixels.iter().all(|&p| p <= levels.max_value()));
        let again = panel::decompress(&panel::compress(&bm), g, levels)
            .expect("our own compression decodes");
        assert_eq!(again, bm);
    }
}

#[cfg(test)]
mod tests {
    /// Every input kept in the repository's fuzz corpora (`fuzz/seeds/`) holds
    /// in every build, not only in the coverage-guided runs.
    #[test]
    fn harnesses_hold_on_the_seed_corpora() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds");
        type Harness = fn(&[u8]);
        let targets: [(&str, Harness); 3] = [
            ("reply_decoder", super::reply_decoder),
            ("command_decoder", super::command_decoder),
            ("panel_decompress", super::panel_decompress),
        ];
        for (target, harness) in targets {
            let dir = seeds.join(target);
            let mut n = 0;
            for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir:?}: {e}")) {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                harness(&data);
                n += 1;
            }
            assert!(n > 0, "{target}: the seed corpus is empty");
        }
    }

    /// The fuzzer's find: a byte count with a leading zero is malformed, and the
    /// command after it (past NUL padding) is read.
    #[test]
    fn leading_zero_count_is_malformed_not_rewritten() {
        use crate::inbound::{CommandCodec, Inbound};
        use crate::panel::Geometry;
        use bytes::BytesMut;
        use tokio_util::codec::Decoder;
        let input = b"\x1bDbc;c;2;02;\x01\x02\r\x00\x00\x1bRsn\r";
        super::command_decoder(input);
        let mut codec = CommandCodec::new(Geometry::default());
        let mut buf = BytesMut::from(&input[..]);
        let first = codec.decode(&mut buf).unwrap().unwrap();
        assert!(matches!(first, Inbound::Malformed { .. }), "{first:?}");
        let Some(Inbound::Command(c)) = codec.decode(&mut buf).unwrap() else {
            panic!("Rsn is lost")
        };
        assert_eq!(c.mnemonic, "Rsn");
    }

    /// A deterministic run of the fuzz harnesses, so every build exercises them
    /// (the coverage-guided runs live in `fuzz/`).
    #[test]
    fn harnesses_hold_on_pseudo_random_input() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        // Bytes that matter to the dialect, so that random input hits them often.
        let alphabet = [
            0x1B, 0x0D, 0x0A, 0x00, 0x06, 0x15, b';', b'O', b'K', b'D', b'b', b'c', b'k', b'2',
            b'3', b'0', 0xFF, 0x80, 0x81,
        ];
        for _ in 0..20_000 {
            let len = (next() % 96) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    }
                })
                .collect();
            super::reply_decoder(&data);
            super::command_decoder(&data);
            super::panel_decompress(&data);
        }
    }
}
