//! The published view of the printer, and the task that keeps it fresh.
//!
//! The API, readiness checks on submission, metrics and the health report
//! read [`PrinterView`] from a `watch` channel: none of them sends a command,
//! so none waits behind a physical step. The view is refreshed from every
//! status reading the production engine makes anyway (between its commands),
//! and, while the link is idle, by a probe every [`IDLE_PROBE`] (or
//! `[printer] idle_probe_ms`): the status
//! words (where the firmware has them) and the error mode, whose loss shows
//! a printer that restarted without the line dropping (read every
//! [`FULL_EVERY_WITH_WORDS`] only, where the status words' `just_rebooted` flag shows
//! it). A full reading (sensors, feeders, ribbon, counters) follows every
//! [`FULL_EVERY_WITH_WORDS`] where the status words carry the faults (every
//! [`FULL_EVERY`] where they do not), after each connection, and when asked.
//!
//! A silent printer is found by the probes too: unanswered probes count
//! towards the connection's limit, and the link is then declared down.

use super::conn::LinkError;
use super::driver::{Inner, LinkState, LinkStatus, Printer};
use super::snapshot::Snapshot;
use crate::codes::{ErrorCode, Fault};
use dialect::status::StatusWords;
use serde::Serialize;
use std::sync::Weak;
use std::time::Duration;
use tokio::time::Instant;

/// How often an idle link is probed unless `[printer] idle_probe_ms` says
/// otherwise; also the longest delay before a fault raised while idle shows
/// in the view.
pub const IDLE_PROBE: Duration = Duration::from_secs(1);
/// How often a full reading is taken while idle.
pub const FULL_EVERY: Duration = Duration::from_secs(15);
/// The same where the firmware has status words: they carry every fault the
/// probe must see, so the full reading only refreshes supplies and sensors,
/// which change when a card is made (a reading follows each card) or a
/// technician acts (who asks for one). About sixteen exchanges, a wake-up
/// each: every 15 s they were the idle agent's largest cost after the probe
/// (`satellite bench --idle`).
pub const FULL_EVERY_WITH_WORDS: Duration = Duration::from_secs(60);

/// Why the link is taken down when the error mode fell back.
const MODE_FELL_BACK: &str = "the printer restarted (its error-management mode fell back to the saved one): setting it up again";

/// What is known of the printer without asking it.
#[derive(Debug, Clone, Serialize)]
pub struct PrinterView {
    pub link: LinkStatus,
    /// The last full reading, its status part refreshed by every later
    /// reading of the status words.
    pub reading: Option<Snapshot>,
    /// When the status was last read (RFC 3339).
    pub read_at: Option<String>,
    /// When the last full reading was taken (RFC 3339).
    pub full_read_at: Option<String>,
    #[serde(skip)]
    read_instant: Option<Instant>,
    #[serde(skip)]
    full_instant: Option<Instant>,
}

impl PrinterView {
    pub(super) fn new(link: LinkStatus) -> PrinterView {
        PrinterView {
            link,
            reading: None,
            read_at: None,
            full_read_at: None,
            read_instant: None,
            full_instant: None,
        }
    }

    pub(super) fn set_link(&mut self, link: LinkStatus) {
        self.link = link;
    }

    /// How old the last status reading is.
    pub fn age(&self) -> Option<Duration> {
        self.read_instant.map(|t| t.elapsed())
    }

    /// Why the printer cannot take a card, from what is known: the link
    /// down, not yet connected, or the first error flag of the last reading.
    pub fn not_ready(&self) -> Option<Fault> {
        match &self.link.state {
            LinkState::Idle => Some(Fault::new(
                ErrorCode::PRT_NOT_REACHABLE,
                "offline",
                "the printer is not connected yet",
            )),
            LinkState::Reconnecting { last_error, .. } => Some(last_error.clone()),
            LinkState::Connected { .. } => self
                .reading
                .as_ref()
                .and_then(|r| r.stopping_fault())
                .map(|f| Fault {
                    description: format!("the printer is not ready: {}", f.description),
                    ..f
                }),
        }
    }

    /// Each feeder's sensors (empty, near empty) from the last full reading.
    pub fn feeder_sensors(&self) -> Option<Vec<(bool, bool)>> {
        let r = self.reading.as_ref()?;
        if r.feeders.is_empty() || r.unavailable.contains_key("feeders") {
            return None;
        }
        Some(r.feeders.iter().map(|f| (f.empty, f.near_empty)).collect())
    }
}

/// Takes in status words read on the link, by whoever read them.
pub(super) fn publish_status(inner: &Inner, words: &StatusWords) {
    let profile = inner.profile.clone();
    inner.view.send_modify(|v| {
        let identity = match &v.link.state {
            LinkState::Connected { identity } => Some(identity.clone()),
            _ => None,
        };
        v.reading
            .get_or_insert_with(|| Snapshot::empty(identity, &profile))
            .apply_status(&profile, words);
        v.read_at = Some(crate::time::now_rfc3339());
        v.read_instant = Some(Instant::now());
    });
}

impl Printer {
    /// Reads the printer now, waiting its turn on the link, and publishes
    /// the reading: a full one, or the status words only.
    pub async fn refresh(&self, full: bool) -> Result<(), Fault> {
        if full {
            let s = self.snapshot().await?;
            self.publish_reading(s, true);
            return Ok(());
        }
        self.probe(true).await
    }

    /// Publishes a reading taken on the link: a full one, or the status
    /// words and supplies only (`full` false: the full reading's age stays).
    pub(super) fn publish_reading(&self, s: Snapshot, full: bool) {
        self.inner.view.send_modify(|v| {
            let now = (crate::time::now_rfc3339(), Instant::now());
            v.read_at = Some(now.0.clone());
            v.read_instant = Some(now.1);
            if full {
                v.full_read_at = Some(now.0);
                v.full_instant = Some(now.1);
            }
            v.reading = Some(s);
        });
    }

    /// The idle probe: the status words, and the error mode (`Rem`) when
    /// `check_mode` says so or the status words cannot show a restart.
    async fn probe(&self, check_mode: bool) -> Result<(), Fault> {
        let read_words = self
            .with_conn(move |c| {
                Box::pin(async move {
                    // Never `Rst` to a firmware without it (the connection
                    // knows from the profile, or from an earlier answer).
                    let read = if c.status_supported() != Some(false) {
                        // Published by the driver once the call returns.
                        c.read_status().await?.is_ok()
                    } else {
                        false
                    };
                    // The read-to-clear `just_rebooted` flag shows a restart
                    // in the status words (`read_status` takes the link down
                    // on it), so `Rem` is then only a second check, every
                    // FULL_EVERY_WITH_WORDS: one exchange and one wake-up
                    // less a second while idle (`satellite bench --idle`).
                    let words_tell = read && c.profile().flag("just_rebooted").is_some();
                    if (check_mode || !words_tell) && c.restarted().await? {
                        return Err(LinkError::NotReachable(MODE_FELL_BACK.into()));
                    }
                    Ok(Ok(read))
                })
            })
            .await?;
        if !read_words {
            // Firmware without status words: the probe's answers are its age.
            self.inner.view.send_modify(|v| {
                v.read_at = Some(crate::time::now_rfc3339());
                v.read_instant = Some(Instant::now());
            });
        }
        Ok(())
    }

    /// Asks whether the printer restarted, where its status words cannot say
    /// so (no `just_rebooted` flag, or no `Rst`): by its error mode. A
    /// restart takes the link down (the handshake sets the printer up again)
    /// and counts in [`Printer::restarts`]. Where the words can say, the next
    /// reading of them shows it, and nothing is sent here.
    pub async fn check_restart(&self) -> Result<(), Fault> {
        self.with_conn(move |c| {
            Box::pin(async move {
                let words_tell = c.status_supported() != Some(false)
                    && c.profile().flag("just_rebooted").is_some();
                if !words_tell && c.restarted().await? {
                    return Err(LinkError::NotReachable(MODE_FELL_BACK.into()));
                }
                Ok(Ok(()))
            })
        })
        .await
    }

    /// Asks the monitor for a full reading soon (after a card, an inventory change).
    pub fn refresh_soon(&self) {
        self.inner.refresh.notify_one();
    }
}

/// Keeps the view fresh while the handle lives.
pub(super) async fn monitor(inner: Weak<Inner>) {
    let mut asked = false;
    // When the idle probe last read the error mode (`Rem`).
    let mut mode_checked: Option<Instant> = None;
    // When the link was last used, as this task's own probe left it.
    let mut probed: Option<Instant> = None;
    let Some(period) = inner.upgrade().map(|i| i.settings.idle_probe) else {
        return;
    };
    // One wake-up per probe (`crate::tick`).
    let tick = crate::tick::Tick::new(period);
    loop {
        if !asked {
            let Some(strong) = inner.upgrade() else {
                return;
            };
            // Holds the handle for at most one probe interval after it is dropped.
            asked = tokio::select! {
                _ = strong.refresh.notified() => true,
                _ = tick.next() => false,
            };
            drop(strong);
        }
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let printer = Printer::from_inner(strong);
        if !matches!(printer.status().borrow().state, LinkState::Connected { .. }) {
            // The supervisor reconnects; a new connection asks for a full reading.
            asked = false;
            continue;
        }
        let last_used = *printer.inner.last_used.lock().expect("last_used lock");
        let due_full = {
            let view = printer.view();
            let v = view.borrow();
            let every = if v.reading.as_ref().is_some_and(|r| r.status_words.is_some()) {
                FULL_EVERY_WITH_WORDS
            } else {
                FULL_EVERY
            };
            v.full_instant.is_none_or(|t| t.elapsed() >= every)
        };
        if !asked && probed != Some(last_used) && last_used.elapsed() < period {
            // Someone else uses the link: their readings keep the view fresh.
            continue;
        }
        let full = asked || due_full;
        asked = false;
        let result = if full {
            printer.refresh(true).await
        } else {
            let check_mode = mode_checked.is_none_or(|t| t.elapsed() >= FULL_EVERY_WITH_WORDS);
            if check_mode {
                mode_checked = Some(Instant::now());
            }
            printer.probe(check_mode).await
        };
        // Our own use of the link does not count as someone else's at the
        // next tick (which comes a little less than a period after it).
        probed = Some(*printer.inner.last_used.lock().expect("last_used lock"));
        if let Err(f) = result {
            // A link failure has already marked the link down; a refusal
            // stays in the last reading's `unavailable`.
            tracing::debug!(error_code = %f.code, error = %f.description, full, "printer reading failed");
        }
        drop(printer);
    }
}
