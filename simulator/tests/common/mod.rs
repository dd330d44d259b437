//! Helpers shared by the integration tests: a host-side client that speaks
//! the dialect over any stream, and waiting on conditions without timing
//! assertions.
#![allow(dead_code)]

use bytes::BytesMut;
use dialect::{Command, Reply, ReplyCodec, Terminator};
use printer_sim::{SimConfig, Simulator, State};
use std::io::{Read, Write};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

pub const PAN: &str = "4000001234567899";

/// Generous bound for anything that should happen "soon".
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn fast_config(model: &str) -> SimConfig {
    let mut c = SimConfig::for_model(model).unwrap();
    c.speed = 0.0;
    c
}

pub fn cmd(frame: &str) -> Command {
    let mut parts = frame.split(';');
    let mut c = Command::new(parts.next().unwrap());
    for p in parts {
        c = c.param(p);
    }
    c
}

/// An async client over a tokio stream.
pub struct Client<S> {
    pub stream: S,
    buf: BytesMut,
    codec: ReplyCodec,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Self::with_terminator(stream, Terminator::Cr)
    }

    pub fn with_terminator(stream: S, t: Terminator) -> Self {
        Client {
            stream,
            buf: BytesMut::new(),
            codec: ReplyCodec::new(t, true, 512),
        }
    }

    /// Sends a frame; a closed link shows in the next `reply` (None).
    pub async fn send(&mut self, c: &Command) {
        let _ = self.stream.write_all(&c.to_bytes().unwrap()).await;
        let _ = self.stream.flush().await;
    }

    /// The next reply, or None when the link closed.
    pub async fn reply(&mut self) -> Option<Reply> {
        tokio::time::timeout(PATIENCE, async {
            loop {
                if let Some(r) = self.codec.decode(&mut self.buf).unwrap() {
                    return Some(r);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("no reply within the patience bound")
    }

    pub async fn ask(&mut self, frame: &str) -> Reply {
        self.send(&cmd(frame)).await;
        self.reply().await.expect("the link closed")
    }

    /// The reply as text (panics on ACK/NACK/malformed).
    pub async fn text(&mut self, frame: &str) -> String {
        match self.ask(frame).await {
            Reply::Text(t) => t,
            other => panic!("{frame}: {other:?}"),
        }
    }
}

/// A blocking client over a std stream (a pty opened as a file, a TCP socket).
pub struct SyncClient<S> {
    pub stream: S,
    buf: BytesMut,
    codec: ReplyCodec,
}

impl<S: Read + Write> SyncClient<S> {
    pub fn new(stream: S) -> Self {
        SyncClient {
            stream,
            buf: BytesMut::new(),
            codec: ReplyCodec::new(Terminator::Cr, false, 512),
        }
    }

    /// A client that also reads ACK and NACK bytes as such.
    pub fn with_ack_nack(stream: S) -> Self {
        SyncClient {
            stream,
            buf: BytesMut::new(),
            codec: ReplyCodec::new(Terminator::Cr, true, 512),
        }
    }

    pub fn write_raw(&mut self, b: &[u8]) {
        self.stream.write_all(b).unwrap();
        self.stream.flush().unwrap();
    }

    /// Reads one reply, with its raw bytes (to check the terminator).
    pub fn read_reply(&mut self) -> (Reply, Vec<u8>) {
        let mut raw = Vec::new();
        let mut chunk = [0u8; 512];
        loop {
            let before = self.buf.clone();
            if let Some(r) = self.codec.decode(&mut self.buf).unwrap() {
                let used = before.len() - self.buf.len();
                raw.extend_from_slice(&before[..used]);
                return (r, raw);
            }
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "the link closed");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Sends a frame and reads one reply.
    pub fn ask_raw(&mut self, frame: &str) -> (Reply, Vec<u8>) {
        self.write_raw(&cmd(frame).to_bytes().unwrap());
        self.read_reply()
    }

    pub fn text(&mut self, frame: &str) -> String {
        match self.ask_raw(frame).0 {
            Reply::Text(t) => t,
            other => panic!("{frame}: {other:?}"),
        }
    }
}

/// Polls the state until `pred` holds; panics after the patience bound.
pub async fn wait_state(sim: &Simulator, what: &str, pred: impl Fn(&State) -> bool) -> State {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let s = sim.state();
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}: {}",
            s.summary()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs one card through the usual agent sequence; returns the reply of each step.
pub async fn run_card<S: AsyncRead + AsyncWrite + Unpin>(
    c: &mut Client<S>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for f in [
        "Pem;2",
        "Pmi;F",
        "Piem;0;0",
        "Si",
        "Sis",
        &format!("Dm;2;{PAN}=2812101"),
        "Smw",
        "Smr;2",
        "Wcb;k",
        &format!("Wt;40;40;0;12;{PAN}"),
        "Sp;k",
        "Se",
    ] {
        let r = c.text(f).await;
        out.push((f.to_string(), r));
    }
    out
}
