//! The agent as a systemd service (`Type=notify`): readiness, status lines,
//! the watchdog, and configuration reloads. Every message goes through
//! [`notify`]; without `NOTIFY_SOCKET` (a terminal, a test that does not
//! ask) each is a no-op.
//!
//! * [`status`]: `STATUS=` lines from the engine's published state.
//! * [`watchdog`]: `WATCHDOG=1` only while the production loop keeps its
//!   word (`src/engine/progress.rs`).
//! * [`reload`]: what a new configuration file changes, checked before
//!   anything is applied (SIGHUP; `daemon.rs` applies it).
//!
//! `READY=1`, `STOPPING=1` and the `RELOADING=1` / `READY=1` pair of a
//! reload are sent by `daemon.rs`, where those moments are.

pub mod reload;
pub mod status;
pub mod watchdog;

pub use sd_notify::NotifyState;

/// Tells the service manager; a failure is logged, never fatal (the agent
/// works without a service manager).
pub fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::debug!(error = %e, "cannot notify the service manager");
    }
}

/// `RELOADING=1` with the monotonic time, as `Type=notify-reload` requires.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}
