//! What a reloaded configuration file changes (SIGHUP, `systemctl
//! reload`), checked whole before anything is applied: a file that does
//! not parse, fails a check, or changes what only a restart can change is
//! refused, and the configuration in force stays, unchanged.
//!
//! | section | applied |
//! |---|---|
//! | `[[card_type]]`, `[production]`, `printer.timeouts.take`, `log_level` | at once (the next request, the next card) |
//! | `[supplies]` | at once (the next forecast: status, metrics, heartbeat, the log) |
//! | `[upstream]` | at once: the upstream tasks restart with it (secret files are read again; a store that refuses the new sinks leaves the running tasks in place) |
//! | `[printer]`, `[chip]` | before the next card: the link is closed and opened with the new settings |
//! | `kiosk_id`, `[store]`, `[api]` | refused: restart the agent |
//!
//! The bundled simulator (`device = "sim"`) is started once: changing to or
//! from it, or its model or speed, is refused too.

use crate::config::Config;
use crate::engine::reload::LinkChange;
use crate::engine::Engine;
use crate::printer::{Endpoint, Profile};
use crate::upstream::service::{Prepared, Upstream};
use std::sync::Arc;

/// A checked configuration, and what applying it takes.
pub struct Plan {
    pub config: Config,
    /// A new printer link, when `[printer]` or `[chip]` changed.
    pub link: Option<LinkChange>,
    /// The upstream clients, built.
    pub upstream: Prepared,
    /// What differs from the configuration in force, by section.
    pub changed: Vec<&'static str>,
}

/// Checks `new` against the configuration in force.
pub fn plan(engine: &Engine, new: Config) -> Result<Plan, String> {
    let old = engine.config();
    restart_only(&old, &new)?;
    let mut changed = Vec::new();
    let link = if new.printer != old.printer || new.chip != old.chip {
        changed.push(if new.printer != old.printer {
            "[printer] (before the next card)"
        } else {
            "[chip] (before the next card)"
        });
        let endpoint = endpoint(&old, &new, engine)?;
        let profile = Arc::new(
            Profile::load(&new.printer.model, new.printer.hardware_dir.as_deref())
                .map_err(|e| format!("printer.model: {e}"))?,
        );
        new.check_card_types(&profile)?;
        crate::daemon::warn_card_types(&new, &profile);
        Some(LinkChange {
            settings: crate::daemon::link_settings(&new, endpoint, &profile),
            profile,
            chip: new.chip.enabled.then(|| new.chip.pcsc()),
        })
    } else {
        let profile = engine.printer().profile().clone();
        new.check_card_types(&profile)?;
        None
    };
    if format!("{:?}", new.card_types) != format!("{:?}", old.card_types) {
        changed.push("[[card_type]]");
    }
    if format!("{:?}", new.production) != format!("{:?}", old.production) {
        changed.push("[production]");
    }
    if new.supplies != old.supplies {
        changed.push("[supplies]");
    }
    if new.log_level != old.log_level {
        changed.push("log_level");
    }
    if format!("{:?}", new.upstream) != format!("{:?}", old.upstream) {
        changed.push("[upstream]");
    }
    let upstream = Upstream::prepare(engine, &new)?;
    Ok(Plan {
        config: new,
        link,
        upstream,
        changed,
    })
}

/// What the running agent cannot take without a restart.
fn restart_only(old: &Config, new: &Config) -> Result<(), String> {
    let why = if new.kiosk_id != old.kiosk_id {
        "kiosk_id"
    } else if new.store != old.store {
        "[store] (the open database and its key)"
    } else if new.api != old.api {
        "[api] (the listening sockets and who may connect)"
    } else {
        return Ok(());
    };
    Err(format!(
        "{why} changed: only a restart applies it (systemctl restart satellite)"
    ))
}

/// Where the new link goes: the device in force when `device` is
/// unchanged (the bundled simulator's terminal, or the endpoint a caller
/// gave), else the new device.
fn endpoint(old: &Config, new: &Config, engine: &Engine) -> Result<Endpoint, String> {
    let (o, n) = (&old.printer, &new.printer);
    let sim = o.device == "sim" || n.device == "sim";
    if sim && (o.device != n.device || o.model != n.model || o.sim_speed != n.sim_speed) {
        return Err("printer.device = \"sim\": the bundled simulator is started once; changing to or from it, its model or its speed needs a restart".into());
    }
    if n.device == o.device {
        return Ok(engine.printer().endpoint().clone());
    }
    n.device
        .parse::<Endpoint>()
        .map_err(|e| format!("printer.device: {e}"))
}
