//! A pseudo-terminal between the daemon and the simulator that the test can
//! freeze: it stops reading what the daemon writes, as a printer that holds
//! its flow control (or a wedged USB adapter) would. A frame larger than
//! the terminal's buffer then blocks the daemon's write: the one way to
//! hold a step past every time-out of the link, which the watchdog exists
//! to catch.

use printer_sim::link::pty::Pty;
use printer_sim::Simulator;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

pub struct Relay {
    pub path: PathBuf,
    /// Freeze right after these bytes pass (once).
    trigger: Arc<Mutex<Option<Vec<u8>>>>,
    frozen: watch::Sender<bool>,
}

impl Relay {
    pub fn start(sim: &Simulator) -> Relay {
        let pty = Pty::open().unwrap();
        let path = pty.path().to_path_buf();
        let (mut from_daemon, mut to_daemon) = tokio::io::split(pty);
        let (mut from_sim, mut to_sim) = tokio::io::split(sim.connect());
        let trigger: Arc<Mutex<Option<Vec<u8>>>> = Arc::default();
        let (frozen, _) = watch::channel(false);
        let mut thawed = frozen.subscribe();
        let (t, f) = (trigger.clone(), frozen.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                if thawed.wait_for(|frozen| !*frozen).await.is_err() {
                    return;
                }
                let Ok(n) = from_daemon.read(&mut buf).await else {
                    return;
                };
                let chunk = &buf[..n];
                let cut = {
                    let mut armed = t.lock().unwrap();
                    let at = armed.as_ref().and_then(|p| {
                        chunk
                            .windows(p.len())
                            .position(|w| w == p.as_slice())
                            .map(|i| i + p.len())
                    });
                    if at.is_some() {
                        *armed = None;
                    }
                    at
                };
                match cut {
                    Some(i) => {
                        let _ = to_sim.write_all(&chunk[..i]).await;
                        f.send_replace(true);
                        if thawed.wait_for(|frozen| !*frozen).await.is_err() {
                            return;
                        }
                        let _ = to_sim.write_all(&chunk[i..]).await;
                    }
                    None => {
                        if to_sim.write_all(chunk).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut from_sim, &mut to_daemon).await;
        });
        Relay {
            path,
            trigger,
            frozen,
        }
    }

    /// Freezes once `pattern` has passed from the daemon to the printer.
    pub fn freeze_after(&self, pattern: &[u8]) {
        *self.trigger.lock().unwrap() = Some(pattern.to_vec());
    }

    pub fn is_frozen(&self) -> bool {
        *self.frozen.borrow()
    }

    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }
}
