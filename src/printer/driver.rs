//! The printer handle the rest of the agent uses.
//!
//! It owns at most one [`Connection`] and serialises commands on it. When the
//! link fails, the handle drops the connection and a supervisor task reconnects
//! on its own with exponential backoff, re-applies the settings (the handshake)
//! and checks the identity: a serial number different from the one last seen is
//! reported as an identity change, never ignored. While the link is down,
//! commands fail at once with `PRT_NOT_REACHABLE` instead of waiting.

use super::conn::{Connection, Identity, LinkError, LinkSettings, Outcome};
use super::monitor::PrinterView;
use super::profile::Profile;
use crate::codes::{ErrorCode, Fault};
use dialect::ops::Op;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};
use tokio::sync::{watch, Mutex, Notify};
use tokio::time::Instant;

/// The link as the rest of the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// Not tried yet.
    Idle,
    Connected {
        identity: Identity,
    },
    /// Down; the supervisor retries. `last_error` says why it is down.
    Reconnecting {
        attempt: u32,
        last_error: Fault,
        next_try_in_ms: u64,
    },
}

/// A serial number that differs from the one last seen.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IdentityChange {
    pub previous: Identity,
    pub current: Identity,
    pub at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LinkStatus {
    #[serde(flatten)]
    pub state: LinkState,
    /// Set when the printer behind the link changed; stays until acknowledged.
    pub identity_change: Option<IdentityChange>,
}

/// Reconnection backoff.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// A printer is a local device, cheap to probe: a short cap brings it
    /// back in service within about a second of its return, whatever the
    /// outage's length. Attempts are logged at debug level only.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(800),
        }
    }
}

impl Backoff {
    /// Delay before attempt `n` (1-based): doubling from `initial`, capped, with
    /// up to a quarter of jitter so that many kiosks do not retry in step.
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max);
        let jitter_range = base.as_millis() as u64 / 4;
        let jitter = if jitter_range == 0 {
            0
        } else {
            pseudo_random() % jitter_range
        };
        base + Duration::from_millis(jitter)
    }
}

fn pseudo_random() -> u64 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (t.subsec_nanos() as u64)
        .wrapping_mul(6364136223846793005)
        .rotate_left(17)
}

pub(super) struct Inner {
    pub(super) settings: LinkSettings,
    pub(super) profile: Arc<Profile>,
    backoff: Backoff,
    supervised: bool,
    conn: Mutex<Slot>,
    /// One connection attempt at a time; held while opening and during the
    /// handshake, never together with `conn`, so that nothing waits for a
    /// handshake on the link's lock.
    connecting: Mutex<()>,
    status: watch::Sender<LinkStatus>,
    pub(super) view: watch::Sender<PrinterView>,
    /// Wakes the supervisor: the link went down, or the handle is gone.
    wake: Arc<Notify>,
    /// Asks the monitor for a full reading soon.
    pub(super) refresh: Notify,
    /// When a command last ran: the monitor probes only a link left idle.
    pub(super) last_used: std::sync::Mutex<Instant>,
    /// Handshakes completed (metrics count reconnections from it).
    connections: std::sync::atomic::AtomicU64,
    /// Restarts the printer showed (see [`Printer::restarts`]).
    restarts: std::sync::atomic::AtomicU64,
    /// Replaced by a new handle (a reloaded configuration): the connection
    /// is closed and never opened again, so that the new handle can open
    /// the same device.
    retired: std::sync::atomic::AtomicBool,
    /// The serial number of the printer holding the card in production
    /// ([`Printer::hold_card`]): while set, no command goes to another one.
    holder: std::sync::Mutex<Option<String>>,
}

struct Slot {
    conn: Option<Connection>,
    attempt: u32,
    next_try: Instant,
    last_error: Option<Fault>,
    last_identity: Option<Identity>,
}

/// Cheap to clone; all clones share one link.
#[derive(Clone)]
pub struct Printer {
    pub(super) inner: Arc<Inner>,
}

impl Printer {
    /// A handle that connects on first use and, when `supervise` is set,
    /// reconnects on its own in the background. Field tools pass `false`: one attempt
    /// per command, nothing in the background.
    pub fn new(
        settings: LinkSettings,
        profile: Arc<Profile>,
        backoff: Backoff,
        expected_serial: Option<Identity>,
        supervise: bool,
    ) -> Printer {
        let initial = LinkStatus {
            state: LinkState::Idle,
            identity_change: None,
        };
        let (status, _) = watch::channel(initial.clone());
        let (view, _) = watch::channel(PrinterView::new(initial));
        let inner = Arc::new(Inner {
            settings,
            profile,
            backoff,
            supervised: supervise,
            conn: Mutex::new(Slot {
                conn: None,
                attempt: 0,
                next_try: Instant::now(),
                last_error: None,
                last_identity: expected_serial,
            }),
            connecting: Mutex::new(()),
            status,
            view,
            wake: Arc::new(Notify::new()),
            refresh: Notify::new(),
            last_used: std::sync::Mutex::new(Instant::now()),
            connections: std::sync::atomic::AtomicU64::new(0),
            restarts: std::sync::atomic::AtomicU64::new(0),
            retired: std::sync::atomic::AtomicBool::new(false),
            holder: std::sync::Mutex::new(None),
        });
        if supervise {
            tokio::spawn(supervisor(Arc::downgrade(&inner)));
        }
        Printer { inner }
    }

    /// Starts keeping the published view fresh (the daemon): idle probes,
    /// full readings, restart detection. Without it the view holds only
    /// what commands read on their way.
    pub fn start_monitor(&self) {
        tokio::spawn(super::monitor::monitor(Arc::downgrade(&self.inner)));
    }

    pub(super) fn from_inner(inner: Arc<Inner>) -> Printer {
        Printer { inner }
    }

    pub fn profile(&self) -> &Arc<Profile> {
        &self.inner.profile
    }

    /// The operations' time-outs in force on this link (the profile's, with
    /// the configuration's overrides).
    pub fn timeouts(&self) -> &super::profile::Timeouts {
        &self.inner.settings.timeouts
    }

    /// Closes the link for good: this handle is being replaced (a reloaded
    /// configuration). Waits for a command in progress to end; later
    /// commands fail with `PRT_NOT_REACHABLE`, and nothing reconnects.
    pub async fn retire(&self) {
        self.inner
            .retired
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Taken after any handshake under way, so none installs a
        // connection after this.
        let _one_at_a_time = self.inner.connecting.lock().await;
        let mut slot = self.inner.conn.lock().await;
        slot.conn = None;
        self.inner.wake.notify_one();
    }

    /// The recent exchanges on the link (redacted).
    pub fn trace(&self) -> &super::trace::Trace {
        &self.inner.settings.trace
    }

    /// Where the printer is (the configuration's device).
    pub fn endpoint(&self) -> &super::Endpoint {
        &self.inner.settings.endpoint
    }

    /// Handshakes completed since this handle was made (the first
    /// connection and every reconnection).
    pub fn connections(&self) -> u64 {
        self.inner
            .connections
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Restarts the printer has shown since this handle was made: its
    /// status words' `just_rebooted` flag, or its error-management mode
    /// fallen back, read by any command. The engine compares counts to tell
    /// a command a power cycle swallowed from one the printer never answered.
    pub fn restarts(&self) -> u64 {
        self.inner
            .restarts
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn status(&self) -> watch::Receiver<LinkStatus> {
        self.inner.status.subscribe()
    }

    /// The published view of the printer: link, last readings and their
    /// age. Reading it never sends a command.
    pub fn view(&self) -> watch::Receiver<PrinterView> {
        self.inner.view.subscribe()
    }

    /// Forgets a reported identity change (a technician saw it).
    pub fn acknowledge_identity_change(&self) {
        self.inner.status.send_modify(|s| s.identity_change = None);
        self.inner
            .view
            .send_modify(|v| v.link.identity_change = None);
    }

    /// The serial number of the printer answering now; `None` while the
    /// link is down.
    pub fn serial(&self) -> Option<String> {
        match &self.inner.status.borrow().state {
            LinkState::Connected { identity } => Some(identity.serial.clone()),
            _ => None,
        }
    }

    /// Binds the link to the printer holding a card (its serial number)
    /// until the guard is dropped: a command that would reach another
    /// printer (replaced, or another one answering on the port) is refused
    /// unsent, as a link failure whose outcome is unknown, so that no step
    /// of the card is ever sent to a printer that does not hold it and the
    /// card goes into doubt. `None` binds nothing.
    pub fn hold_card(&self, serial: Option<String>) -> CardHold {
        *self.inner.holder.lock().expect("holder lock") = serial;
        CardHold {
            inner: self.inner.clone(),
        }
    }

    /// Waits until the link is up (the supervisor reconnects on its own).
    pub async fn wait_connected(&self) {
        let mut rx = self.status();
        let _ = rx
            .wait_for(|s| matches!(s.state, LinkState::Connected { .. }))
            .await;
    }

    /// Connects now if not connected (ignoring the backoff) and returns the identity.
    pub async fn connect(&self) -> Result<Identity, Fault> {
        {
            let slot = self.inner.conn.lock().await;
            if let Some(id) = slot.conn.as_ref().and_then(|c| c.identity()) {
                return Ok(id.clone());
            }
        }
        self.inner.try_connect().await
    }

    /// Runs a closure with the connection, connecting first when due. Link
    /// failures drop the connection and wake the supervisor.
    pub async fn with_conn<T, F>(&self, f: F) -> Result<T, Fault>
    where
        F: for<'c> FnOnce(&'c mut Connection) -> futures::future::BoxFuture<'c, Outcome<T>>,
    {
        let mut slot = self.inner.conn.lock().await;
        if slot.conn.is_none() {
            if Instant::now() < slot.next_try && slot.attempt > 0 {
                return Err(offline(&slot));
            }
            // Connect outside the link's lock.
            drop(slot);
            self.inner.try_connect().await?;
            slot = self.inner.conn.lock().await;
            if slot.conn.is_none() {
                return Err(offline(&slot));
            }
        }
        let conn = slot.conn.as_mut().expect("connected above");
        if let Some(fault) = self.inner.foreign(conn) {
            return Err(fault);
        }
        let result = f(conn).await;
        if let Some(words) = conn.take_status() {
            super::monitor::publish_status(&self.inner, &words);
        }
        if conn.take_restart() {
            self.inner
                .restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        *self.inner.last_used.lock().expect("last_used lock") = Instant::now();
        match result {
            Ok(r) => r,
            Err(e) => {
                let fault = e.to_fault();
                if matches!(e, LinkError::NotReachable(_)) {
                    tracing::warn!(error_code = %fault.code, error = %fault.description, "printer link lost");
                    slot.conn = None;
                    slot.attempt = 0;
                    self.inner.mark_down(&mut slot, fault.clone());
                }
                Err(fault)
            }
        }
    }

    /// Runs one operation.
    pub async fn run(&self, op: Op) -> Result<String, Fault> {
        self.with_conn(move |c| Box::pin(async move { c.run(&op).await }))
            .await
    }
}

fn offline(slot: &Slot) -> Fault {
    let last = slot
        .last_error
        .clone()
        .map(|f| f.description)
        .unwrap_or_default();
    Fault::new(
        ErrorCode::PRT_NOT_REACHABLE,
        "offline",
        format!(
            "the printer link is down ({last}); reconnect attempt {} in {} ms",
            slot.attempt + 1,
            slot.next_try
                .saturating_duration_since(Instant::now())
                .as_millis()
        ),
    )
    .uncertain()
}

/// See [`Printer::hold_card`]; releases the binding when dropped.
#[must_use = "the binding ends when the guard is dropped"]
pub struct CardHold {
    inner: Arc<Inner>,
}

impl Drop for CardHold {
    fn drop(&mut self) {
        *self.inner.holder.lock().expect("holder lock") = None;
    }
}

impl Inner {
    /// Why a command may not go out on `conn`: a card is bound to another
    /// printer than the one answering.
    fn foreign(&self, conn: &Connection) -> Option<Fault> {
        let holder = self.holder.lock().expect("holder lock");
        let holder = holder.as_deref()?;
        let answering = conn.identity().map(|i| i.serial.as_str());
        if answering == Some(holder) {
            return None;
        }
        Some(
            Fault::new(
                ErrorCode::PRT_NOT_REACHABLE,
                "replaced",
                format!(
                    "the printer holding the card (serial {holder}) no longer answers: printer {} does",
                    answering.unwrap_or("(unidentified)")
                ),
            )
            .uncertain(),
        )
    }

    /// One connection attempt: open and handshake without the link's lock,
    /// then install the connection (or record the failure).
    async fn try_connect(&self) -> Result<Identity, Fault> {
        let _one_at_a_time = self.connecting.lock().await;
        if self.retired.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Fault::new(
                ErrorCode::PRT_NOT_REACHABLE,
                "offline",
                "this printer link was replaced by a reloaded configuration",
            ));
        }
        {
            let slot = self.conn.lock().await;
            if let Some(id) = slot.conn.as_ref().and_then(|c| c.identity()) {
                return Ok(id.clone());
            }
        }
        let result = Connection::open(&self.settings, self.profile.clone()).await;
        let mut slot = self.conn.lock().await;
        let fault = match result {
            Ok(Ok((conn, id))) => {
                if let Some(prev) = slot
                    .last_identity
                    .as_ref()
                    .filter(|p| p.serial != id.serial)
                {
                    tracing::warn!(previous = %prev.serial, current = %id.serial, model = %id.model, "the printer's serial number changed: printer {} was replaced by printer {}", prev.serial, id.serial);
                    let change = IdentityChange {
                        previous: prev.clone(),
                        current: id.clone(),
                        at: crate::time::now_rfc3339(),
                    };
                    self.status
                        .send_modify(|s| s.identity_change = Some(change));
                }
                tracing::info!(endpoint = %self.settings.endpoint, model = %id.model, serial = %id.serial, firmware = %id.firmware, "printer connected");
                slot.conn = Some(conn);
                self.connections
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                slot.attempt = 0;
                slot.last_error = None;
                slot.last_identity = Some(id.clone());
                let identity = id.clone();
                self.status
                    .send_modify(|s| s.state = LinkState::Connected { identity });
                self.publish_link();
                // A new connection may be another printer, or one that
                // restarted: read everything again.
                self.refresh.notify_one();
                return Ok(id);
            }
            Ok(Err(f)) => f,
            Err(e) => e.to_fault(),
        };
        self.mark_down(&mut slot, fault.clone());
        Err(fault)
    }

    fn mark_down(&self, slot: &mut Slot, fault: Fault) {
        slot.attempt = slot.attempt.saturating_add(1);
        let delay = self.backoff.delay(slot.attempt);
        slot.next_try = Instant::now() + delay;
        slot.last_error = Some(fault.clone());
        tracing::debug!(attempt = slot.attempt, delay_ms = delay.as_millis() as u64, error_code = %fault.code, "printer link down");
        let state = LinkState::Reconnecting {
            attempt: slot.attempt,
            last_error: fault,
            next_try_in_ms: delay.as_millis() as u64,
        };
        self.status.send_modify(|s| s.state = state);
        self.publish_link();
        self.wake.notify_one();
    }

    fn publish_link(&self) {
        let link = self.status.borrow().clone();
        self.view.send_modify(|v| v.set_link(link));
    }
}

impl Drop for Inner {
    /// The supervisor waits on `wake` without a timer: tell it to end.
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// Reconnects in the background while the link is down; ends with the handle.
async fn supervisor(inner: Weak<Inner>) {
    let Some(wake) = inner.upgrade().map(|i| i.wake.clone()) else {
        return;
    };
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        if strong.retired.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let wait = {
            let slot = strong.conn.lock().await;
            if slot.conn.is_some() {
                None
            } else {
                Some(slot.next_try.saturating_duration_since(Instant::now()))
            }
        };
        match wait {
            // Connected: sleep until told the link went down or the handle
            // was dropped, without holding it. No timer: it woke an idle
            // agent every 5 s for nothing (`satellite bench --idle`).
            None => {
                drop(strong);
                wake.notified().await;
            }
            Some(d) if d.is_zero() => {
                if strong.supervised {
                    let _ = strong.try_connect().await;
                }
            }
            Some(d) => {
                drop(strong);
                tokio::time::sleep(d.max(Duration::from_millis(10))).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        let d1 = b.delay(1);
        let d3 = b.delay(3);
        let d20 = b.delay(20);
        assert!(
            d1 >= Duration::from_millis(100) && d1 < Duration::from_millis(126),
            "{d1:?}"
        );
        assert!(
            d3 >= Duration::from_millis(400) && d3 < Duration::from_millis(501),
            "{d3:?}"
        );
        assert!(
            d20 >= Duration::from_secs(2) && d20 <= Duration::from_millis(2500),
            "{d20:?}"
        );
    }
}
