//! The recent exchanges on the printer link, for technicians
//! (`satellite printer trace`) and the support bundle: what went out (the
//! operation's safe name: never card data), what came back (masked; the
//! answer of an operation that carries card data is withheld), how long it
//! took and how it ended. A bounded ring shared by every connection of one
//! printer handle, so a reconnection keeps the history that led to it.

use dialect::Reply;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Exchanges kept.
pub const KEPT: usize = 500;

#[derive(Debug, Clone, Serialize)]
pub struct Exchange {
    /// RFC 3339, when the command went out.
    pub at: String,
    pub sent: String,
    pub reply: String,
    pub ms: u64,
    /// `answered`, `timeout`, `unreadable` or `link` (the write failed or the line closed).
    pub outcome: &'static str,
}

#[derive(Debug, Clone, Default)]
pub struct Trace(Arc<Mutex<VecDeque<Exchange>>>);

impl Trace {
    pub fn record(&self, e: Exchange) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == KEPT {
            q.pop_front();
        }
        q.push_back(e);
    }

    /// The last `n` exchanges, oldest first.
    pub fn last(&self, n: usize) -> Vec<Exchange> {
        let q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.iter().skip(q.len().saturating_sub(n)).cloned().collect()
    }
}

/// A reply as the trace shows it.
pub fn shown(reply: &Reply, sensitive: bool) -> String {
    match reply {
        Reply::Text(t) if sensitive => format!("<{} characters withheld>", t.len()),
        Reply::Text(t) => dialect::redact::mask_text(t),
        Reply::Ack => "<ACK>".into(),
        Reply::Nack(c) => format!("<NACK {}>", *c as char),
        Reply::Malformed { raw, .. } if sensitive => format!("<{} bytes withheld>", raw.len()),
        Reply::Malformed { raw, .. } => dialect::redact::show_bytes(raw, 48),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_and_never_card_data() {
        let t = Trace::default();
        for i in 0..(KEPT + 10) {
            t.record(Exchange {
                at: String::new(),
                sent: format!("Rsn {i}"),
                reply: String::new(),
                ms: 0,
                outcome: "answered",
            });
        }
        let last = t.last(3);
        assert_eq!(last.len(), 3);
        assert_eq!(last[2].sent, format!("Rsn {}", KEPT + 9));
        assert_eq!(t.last(10_000).len(), KEPT);
        let track = Reply::Text("4000001234567899=2812101".into());
        assert_eq!(shown(&track, true), "<24 characters withheld>");
        assert!(!shown(&track, false).contains("4000001234567899"));
    }
}
