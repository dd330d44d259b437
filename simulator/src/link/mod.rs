//! Links: how frames reach the printer. Every link runs the same session
//! loop over a byte stream, with its own decoder state, and drops the
//! connection as soon as the `unreachable` condition takes the links down.

pub mod pty;
pub mod tcp;

use crate::sim::Simulator;
use bytes::BytesMut;
use dialect::CommandCodec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;

/// Serves one connection until it closes, fails, or the links go down.
pub(crate) async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    sim: Simulator,
    mut stream: S,
    peer: String,
) {
    let mut codec = CommandCodec::new(sim.geometry());
    let mut buf = BytesMut::with_capacity(4096);
    let mut gate = sim.gate();
    if !*gate.borrow() {
        return;
    }
    tracing::info!(%peer, "link open");
    'session: loop {
        // The decoder never fails on content: bad frames come out as Malformed.
        while let Ok(Some(item)) = codec.decode(&mut buf) {
            let reply = tokio::select! {
                r = sim.exec(item) => r,
                _ = gate.wait_for(|up| !*up) => break 'session,
            };
            if let Some(bytes) = reply {
                let sent = tokio::select! {
                    r = async { stream.write_all(&bytes).await?; stream.flush().await } => r.is_ok(),
                    _ = gate.wait_for(|up| !*up) => false,
                };
                if !sent {
                    break 'session;
                }
            }
        }
        let read = tokio::select! {
            r = stream.read_buf(&mut buf) => r,
            _ = gate.wait_for(|up| !*up) => break,
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(%peer, error = %e, "link read failed");
                break;
            }
        }
    }
    tracing::info!(%peer, "link closed");
}
