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
    entries: Vec<Entry>,
    pos: usize,
    opts: ReplayOptions,
    report: ReplayReport,
}

impl Replayer {
    pub fn new(t: &Transcript, opts: ReplayOptions) -> Replayer {
        Replayer {
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
        if want == got && expected.malformed == malformed {
            self.report.matched += 1;
            replies
        } else {
            let d = format!("frame {n}: expected {want:?}, got {got:?}");
            tracing::warn!("{d}");
            self.report.divergences.push(d);
            self.error_cde()
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
