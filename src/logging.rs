//! Structured logs: to journald's native protocol under systemd, otherwise
//! as text on stderr.
//!
//! Under systemd (`JOURNAL_STREAM` set, and journald's socket answers) each
//! event goes to the journal with its fields as journal fields, upper-cased
//! and without prefix: `journalctl CARD_TOKEN=...`, `ERROR_CODE=...` (the
//! names are in README, Operations). Elsewhere, or when journald cannot be
//! reached, lines go to stderr (without timestamp or colour under systemd:
//! journald adds its own).
//!
//! The level: `RUST_LOG` if set; otherwise the configuration's `log_level`
//! once it is read ([`set_level`], again at each reload); otherwise the
//! default of the command (`-v` raises it).

use std::sync::OnceLock;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

/// How much to log when neither `-v` nor `RUST_LOG` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// The daemon: its own information.
    No,
    /// Field tools print their own results: warnings only.
    Warnings,
    /// The demo narrates itself: errors only.
    Errors,
}

/// Changes the filter of the installed subscriber (a reload).
static LEVEL: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

pub fn init(verbose: u8, quiet: Quiet) {
    let default = match verbose {
        0 if quiet == Quiet::Errors => "error",
        0 if quiet == Quiet::Warnings => "warn",
        0 => "warn,satellite=info",
        1 => "info,satellite=debug",
        _ => "debug,satellite=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let (filter, handle) = reload::Layer::new(filter);
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    let journald = under_systemd
        .then(|| {
            tracing_journald::layer()
                // `CARD_TOKEN`, not `F_CARD_TOKEN`: the names operators type.
                .map(|l| l.with_field_prefix(None))
                .ok()
        })
        .flatten();
    let installed = if let Some(journald) = journald {
        tracing_subscriber::registry()
            .with(filter)
            .with(journald)
            .try_init()
    } else {
        let text = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false);
        if under_systemd {
            tracing_subscriber::registry()
                .with(filter)
                .with(text.without_time().with_ansi(false))
                .try_init()
        } else {
            tracing_subscriber::registry()
                .with(filter)
                .with(text.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())))
                .try_init()
        }
    };
    if installed.is_ok() {
        let _ = LEVEL.set(handle);
    }
}

/// Checks a `log_level` (an `EnvFilter` directive such as `info` or
/// `warn,satellite=debug`).
pub fn parse_level(level: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(level).map_err(|e| format!("log_level = {level:?}: {e}"))
}

/// Puts the configuration's `log_level` in force (`None`: leave the level
/// as it is). `RUST_LOG`, when set, wins: it is what an operator set by
/// hand for this run.
pub fn set_level(level: Option<&str>) -> Result<(), String> {
    let Some(level) = level else {
        return Ok(());
    };
    if std::env::var_os("RUST_LOG").is_some() {
        tracing::info!(log_level = %level, "RUST_LOG is set: it overrides log_level");
        return Ok(());
    }
    let filter = parse_level(level)?;
    match LEVEL.get() {
        Some(handle) => handle.reload(filter).map_err(|e| e.to_string()),
        // No subscriber of ours (a library user, a test): nothing to change.
        None => Ok(()),
    }
}
