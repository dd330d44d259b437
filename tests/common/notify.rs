//! A service manager's notification socket, as the test's own: the daemon
//! (a child process) gets `NOTIFY_SOCKET` pointing here, and every line it
//! sends is kept with the moment it arrived.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct NotifySocket {
    pub path: PathBuf,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl NotifySocket {
    /// Binds `dir/notify.sock` and starts receiving.
    pub fn bind(dir: &Path) -> NotifySocket {
        let path = dir.join("notify.sock");
        let socket = tokio::net::UnixDatagram::bind(&path).unwrap();
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let kept = lines.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = socket.recv(&mut buf).await {
                let at = Instant::now();
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let mut k = kept.lock().unwrap();
                for line in text.lines().filter(|l| !l.is_empty()) {
                    k.push((at, line.to_string()));
                }
            }
        });
        NotifySocket { path, lines }
    }

    /// Every line so far.
    pub fn lines(&self) -> Vec<(Instant, String)> {
        self.lines.lock().unwrap().clone()
    }

    /// The moments `WATCHDOG=1` arrived.
    pub fn pings(&self) -> Vec<Instant> {
        self.lines()
            .into_iter()
            .filter(|(_, l)| l == "WATCHDOG=1")
            .map(|(t, _)| t)
            .collect()
    }

    /// Waits until a line after `after` matches; its moment and text.
    pub async fn wait_for(
        &self,
        after: Instant,
        within: Duration,
        what: impl Fn(&str) -> bool,
    ) -> (Instant, String) {
        let end = Instant::now() + within;
        loop {
            if let Some(hit) = self
                .lines()
                .into_iter()
                .find(|(t, l)| *t >= after && what(l))
            {
                return hit;
            }
            assert!(
                Instant::now() < end,
                "no matching notification within {within:?}; got: {:#?}",
                self.lines().iter().map(|(_, l)| l).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The longest time without a ping between `from` and `to` (the ends
/// count as pings: a window with none is one long gap).
pub fn longest_gap(pings: &[Instant], from: Instant, to: Instant) -> Duration {
    let mut last = from;
    let mut gap = Duration::ZERO;
    for &p in pings.iter().filter(|&&p| p > from && p < to) {
        gap = gap.max(p - last);
        last = p;
    }
    gap.max(to.saturating_duration_since(last))
}
