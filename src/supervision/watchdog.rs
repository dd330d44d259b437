//! `WATCHDOG=1`, sent only while the production loop keeps its word.
//!
//! A timer that pinged regardless would say only that the process is
//! alive; systemd already knows that. The point is the loop: every half
//! watchdog interval this task asks [`Progress::overdue`]
//! (`src/engine/progress.rs`) and pings only if the loop's latest promise
//! (a step within its time-outs, an idle wait within its length) still
//! holds. A loop stuck past its promise stops the pings, and systemd
//! restarts the agent (`Restart=`), whose recovery settles the card.
//!
//! [`Progress::overdue`]: crate::engine::progress::Progress::overdue

use super::{notify, NotifyState};
use crate::engine::Engine;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The watchdog interval systemd asked for (`WATCHDOG_USEC`, for this
/// process when `WATCHDOG_PID` is set), if any.
pub fn interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// Pings every half `every` while the loop keeps its word, until `stop`.
pub async fn run(engine: Engine, every: Duration, stop: CancellationToken) {
    let tick = every / 2;
    // One wake-up per ping (`crate::tick`).
    let timer = crate::tick::Tick::new(tick);
    let mut late = false;
    loop {
        match engine.progress().overdue(Instant::now()) {
            None => {
                notify(&[NotifyState::Watchdog]);
                if late {
                    tracing::warn!("the production loop moves again: watchdog pings resume");
                    late = false;
                }
            }
            Some(o) if !late => {
                late = true;
                tracing::error!(
                    doing = %o.what,
                    for_ms = o.for_.as_millis() as u64,
                    budget_ms = o.budget.as_millis() as u64,
                    "the production loop has not moved within its budget: the watchdog is no longer pinged, so systemd restarts the agent"
                );
            }
            Some(_) => {}
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = timer.next() => {}
        }
    }
}
