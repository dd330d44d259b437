//! Replay: plays the device side of a transcript. Each incoming frame is
//! compared, in redacted form, with the next recorded `in` entry; on a match
//! the recorded replies go back, on a mismatch the difference is logged,
//! `ERROR CDE` goes back and a divergence is counted.
//!
//! The core ([`Replayer::answer`]) is sans-I/O; [`Replayer::serve`] runs it
//! over any byte stream, and the binary over a pty or TCP.

use crate::transcript::{show_frame, Dir, Entry, Transcript};
use bytes::BytesMut;
use dialect::panel::Geometry;
use dialect::{CommandCodec, Inbound, Terminator};
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

/// How a replay went.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReplayReport {
    /// Frames received.
    pub frames: u64,
    /// Frames that matched the transcript.
    pub matched: u64,
    /// One line per divergence.
    pub divergences: Vec<String>,
    /// Recorded frames never received.
    pub unplayed: usize,
}

impl ReplayReport {
    pub fn ok(&self) -> bool {
        self.divergences.is_empty() && self.unplayed == 0
    }

    pub fn summary(&self) -> String {
        format!(
            "replay: {} frame(s) received, {} matched, {} divergence(s), {} recorded frame(s) not played",
            self.frames,
            self.matched,
            self.divergences.len(),
            self.unplayed
        )
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    pub terminator: Terminator,
    pub geometry: Geometry,
    /// Give up when nothing arrives for this long.
    pub idle: Duration,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            terminator: Terminator::Cr,
            geometry: Geometry::default(),
            idle: Duration::from_secs(30),
        }
    }
}

pub struct Replayer {
    /// Track data written in this session (`Dm`), by track.
    written: std::collections::HashMap<String, String>,
    entries: Vec<Entry>,
    pos: usize,
    opts: ReplayOptions,
    report: ReplayReport,
}

impl Replayer {
    pub fn new(t: &Transcript, opts: ReplayOptions) -> Replayer {
        Replayer {
            written: std::collections::HashMap::new(),
            entries: t.entries.clone(),
            pos: 0,
            opts,
            report: ReplayReport::default(),
        }
    }

    /// Every recorded frame has been received.
    pub fn done(&self) -> bool {
        !self.entries[self.pos..].iter().any(|e| e.dir == Dir::In)
    }

    pub fn report(&self) -> ReplayReport {
        let mut r = self.report.clone();
        r.unplayed = self.entries[self.pos..]
            .iter()
            .filter(|e| e.dir == Dir::In)
            .count();
        r
    }

    /// The bytes to send for one incoming frame.
    pub fn answer(&mut self, inbound: &Inbound) -> Vec<u8> {
        let (got, malformed) = show_frame(inbound);
        self.report.frames += 1;
        let n = self.report.frames;
        // Replies recorded before any frame (a transcript cut mid-session) are skipped.
        while self.pos < self.entries.len() && self.entries[self.pos].dir == Dir::Out {
            self.pos += 1;
        }
        let Some(expected) = self.entries.get(self.pos).cloned() else {
            let d = format!("frame {n}: {got:?} arrived after the end of the transcript");
            tracing::warn!("{d}");
            self.report.divergences.push(d);
            return self.error_cde();
        };
        self.pos += 1;
        let mut replies = Vec::new();
        while let Some(e) = self.entries.get(self.pos).filter(|e| e.dir == Dir::Out) {
            replies.extend(e.reply_bytes(self.opts.terminator));
            self.pos += 1;
        }
        let want = expected.frame.clone().unwrap_or_default();
        // The device side of magnetic data: what this session wrote is what a
        // read-back returns (the transcript kept only its length).
        if let Inbound::Command(c) = inbound {
            if c.mnemonic == "Dm" && c.params.len() == 2 {
                self.written
                    .insert(c.params[0].clone(), c.params[1].clone());
            }
        }
        if want == got && expected.malformed == malformed {
            self.report.matched += 1;
            if let Some(data) = self.read_back(inbound, &replies) {
                return data;
            }
            replies
        } else {
            let d = format!("frame {n}: expected {want:?}, got {got:?}");
            tracing::warn!("{d}");
            self.report.divergences.push(d);
            self.error_cde()
        }
    }

    /// For a read-back recorded as withheld, the data this session wrote to
    /// that track, when its length is the recorded one.
    fn read_back(&mut self, inbound: &Inbound, recorded: &[u8]) -> Option<Vec<u8>> {
        let Inbound::Command(c) = inbound else {
            return None;
        };
        if c.mnemonic != "Smr" {
            return None;
        }
        let shown = String::from_utf8_lossy(recorded);
        let len = crate::transcript::withheld_len(shown.trim_end_matches(['\r', '\0']))?;
        match c.params.first().and_then(|t| self.written.get(t)) {
            Some(data) if data.len() == len => {
                let mut b = data.clone().into_bytes();
                b.push(self.opts.terminator.byte());
                Some(b)
            }
            _ => {
                let d = format!(
                    "Smr: no track of {len} characters was written in this session to read back"
                );
                tracing::warn!("{d}");
                self.report.divergences.push(d);
                Some(self.error_cde())
            }
        }
    }

    fn error_cde(&self) -> Vec<u8> {
        let mut b = b"ERROR CDE".to_vec();
        b.push(self.opts.terminator.byte());
        b
    }

    /// Serves one connection until it closes, the transcript is played out,
    /// or nothing arrives for `idle`.
    pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mut stream: S,
    ) -> io::Result<()> {
        let mut codec = CommandCodec::new(self.opts.geometry);
        let mut buf = BytesMut::with_capacity(4096);
        if self.done() {
            return Ok(());
        }
        loop {
            while let Some(item) = codec.decode(&mut buf)? {
                let out = self.answer(&item);
                if !out.is_empty() {
                    stream.write_all(&out).await?;
                    stream.flush().await?;
                }
                if self.done() {
                    return Ok(());
                }
            }
            match tokio::time::timeout(self.opts.idle, stream.read_buf(&mut buf)).await {
                Err(_) => return Ok(()),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }
}

/// Replays a transcript over one stream and reports.
pub async fn replay<S: AsyncRead + AsyncWrite + Unpin>(
    transcript: &Transcript,
    stream: S,
    opts: ReplayOptions,
) -> io::Result<ReplayReport> {
    let mut r = Replayer::new(transcript, opts);
    r.serve(stream).await?;
    Ok(r.report())
}
