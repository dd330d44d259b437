//! The checks themselves: each reads what it needs from the configuration,
//! the agent's health document and store statistics, or this machine.

use super::Check;
use crate::cli::agent::Agent;
use crate::config::Config;
use serde_json::Value;
use std::path::Path;

/// Below this much free space at the store, a warning; below the second, a failure.
const DISK_WARN_BYTES: u64 = 500_000_000;
const DISK_FAIL_BYTES: u64 = 50_000_000;
/// Ribbon cards left below which a warning is given.
const RIBBON_LOW: u64 = 25;
/// Clock skew against the central base: warn, fail (seconds).
const SKEW_WARN_S: f64 = 5.0;
const SKEW_FAIL_S: f64 = 60.0;
/// Outbox backlog: warn past this depth or this age (seconds).
const BACKLOG_DEPTH: u64 = 100;
const BACKLOG_AGE_S: u64 = 600;

pub async fn run(agent: &Agent, config_path: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let config = match Config::load(config_path) {
        Ok(c) => {
            out.push(Check::pass(
                "config",
                "Configuration",
                format!("{} is valid", config_path.display()),
            ));
            Some(c)
        }
        Err(e) => {
            out.push(Check::fail(
                "config",
                "Configuration",
                e,
                "fix the file (README.md, Configuration), then `systemctl restart satellite`",
            ));
            None
        }
    };
    let health = agent.get("/v1/status").await;
    let stats = agent.get("/v1/store").await.ok();
    match &health {
        Ok(h) => out.push(Check::pass(
            "agent",
            "Agent",
            format!(
                "answers at {} (version {}, {})",
                agent.socket.display(),
                h["agentVersion"].as_str().unwrap_or("?"),
                h["state"].as_str().unwrap_or("?")
            ),
        )),
        Err(e) => out.push(Check::fail(
            "agent",
            "Agent",
            e.message.clone(),
            "start it (`systemctl start satellite`) and read why it stopped (`journalctl -u satellite`)",
        )),
    }
    let h = health.as_ref().ok();
    out.extend(printer_checks(h));
    out.extend(forecast_checks(h));
    out.extend(pcsc_checks(config.as_ref()).await);
    out.extend(upstream_checks(h));
    out.push(disk_check(config.as_ref()));
    out.push(store_check(stats.as_ref(), h.is_some()));
    out.extend(outbox_checks(h));
    out.push(watchdog_check(h));
    out
}

/// A check that needs the agent when it does not answer.
fn no_agent(id: &'static str, title: &'static str) -> Check {
    Check::fail(
        id,
        title,
        "not known: the agent does not answer",
        "start the agent first (see the Agent check)",
    )
}

fn printer_checks(h: Option<&Value>) -> Vec<Check> {
    let ids = [
        ("printer-link", "Printer link"),
        ("printer-identity", "Printer identity"),
        ("sensors", "Sensors"),
        ("cleaning", "Cleaning"),
        ("ribbon", "Ribbon"),
        ("feeders", "Feeders and inventory"),
        ("reject-box", "Reject box"),
    ];
    let Some(h) = h else {
        return ids.iter().map(|(i, t)| no_agent(i, t)).collect();
    };
    let p = &h["printer"];
    let link = &p["link"];
    let snap = &p["snapshot"];
    let mut out = Vec::new();
    match link["state"].as_str() {
        Some("connected") => out.push(Check::pass(
            "printer-link",
            "Printer link",
            "connected".to_string(),
        )),
        Some("reconnecting") => out.push(Check::fail(
            "printer-link",
            "Printer link",
            format!(
                "down: {} {}",
                link["last_error"]["code"].as_str().unwrap_or(""),
                link["last_error"]["description"].as_str().unwrap_or("")
            ),
            "check the printer's power and cable, and the configured device; `satellite printer trace` shows the last exchanges",
        )),
        other => out.push(Check::warn(
            "printer-link",
            "Printer link",
            other.unwrap_or("unknown").to_string(),
            "wait a few seconds for the first connection, then check again",
        )),
    }
    let id = &link["identity"];
    if let Some(change) = link["identity_change"].as_object() {
        out.push(Check::warn(
            "printer-identity",
            "Printer identity",
            {
                let serial = |k: &str| {
                    change
                        .get(k)
                        .and_then(|i| i.get("serial"))
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string()
                };
                format!(
                    "printer {} was replaced by printer {} (at {})",
                    serial("previous"),
                    serial("current"),
                    change.get("at").and_then(Value::as_str).unwrap_or("?")
                )
            },
            "if the printer was replaced on purpose, nothing to do; otherwise check which printer is cabled",
        ));
    } else if id.is_object() {
        out.push(Check::pass(
            "printer-identity",
            "Printer identity",
            format!(
                "{} serial {} firmware {}",
                id["model"].as_str().unwrap_or("?"),
                id["serial"].as_str().unwrap_or("?"),
                id["firmware"].as_str().unwrap_or("?")
            ),
        ));
    } else {
        out.push(Check::warn(
            "printer-identity",
            "Printer identity",
            "not read yet (the printer is not connected)",
            "see the Printer link check",
        ));
    }
    // Sensors: readings that failed (not those the profile says the
    // firmware lacks) and warning flags.
    let failed: Vec<String> = snap["unavailable"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, why)| !why.as_str().unwrap_or("").contains("commands."))
        .map(|(k, why)| format!("{k}: {}", why.as_str().unwrap_or("")))
        .collect();
    let warnings: Vec<String> = snap["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["severity"] == "warning")
        .map(|f| f["name"].as_str().unwrap_or("?").to_string())
        .collect();
    if !snap.is_object() {
        out.push(Check::warn(
            "sensors",
            "Sensors",
            "no reading yet",
            "wait for the first reading, then check again",
        ));
    } else if !failed.is_empty() {
        out.push(Check::warn(
            "sensors",
            "Sensors",
            format!("unreadable: {}", failed.join("; ")),
            "check the printer model in the configuration against the printer",
        ));
    } else if !warnings.is_empty() {
        out.push(Check::warn(
            "sensors",
            "Sensors",
            format!("warnings: {}", warnings.join(", ")),
            "see `satellite printer status`",
        ));
    } else {
        out.push(Check::pass("sensors", "Sensors", "read, no warning"));
    }
    let recommended = snap["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|f| f["name"] == "cleaning_recommended");
    out.push(match snap["cleaning_due"].as_bool() {
        // The printer refuses to print: no card starts until it is cleaned.
        Some(true) => Check::fail(
            "cleaning",
            "Cleaning",
            "cleaning required: production is stopped until the printer is cleaned",
            "load a cleaning card and run `satellite printer clean`",
        ),
        Some(false) if recommended => Check::warn(
            "cleaning",
            "Cleaning",
            "cleaning recommended (production goes on until it is required)",
            "clean at the next visit: `satellite printer clean` with a cleaning card loaded",
        ),
        Some(false) => Check::pass("cleaning", "Cleaning", "not due"),
        None => Check::warn("cleaning", "Cleaning", "unknown", "see the Sensors check"),
    });
    let ribbon_fault = snap["faults"].as_array().into_iter().flatten().find(|f| {
        f["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("PRT_RIBBON"))
    });
    out.push(match (ribbon_fault, snap["ribbon_cards_left"].as_u64()) {
        (Some(f), _) => Check::fail(
            "ribbon",
            "Ribbon",
            format!(
                "{} {}",
                f["code"].as_str().unwrap_or(""),
                f["description"].as_str().unwrap_or("")
            ),
            "replace the ribbon",
        ),
        (None, Some(n)) if n < RIBBON_LOW => Check::warn(
            "ribbon",
            "Ribbon",
            format!("about {n} cards left"),
            "have a new ribbon ready",
        ),
        (None, Some(n)) => Check::pass(
            "ribbon",
            "Ribbon",
            format!(
                "{}, about {n} cards left",
                snap["ribbon"].as_str().unwrap_or("?")
            ),
        ),
        (None, None) => Check::warn(
            "ribbon",
            "Ribbon",
            "cards left unknown",
            "see `satellite printer status`",
        ),
    });
    out.push(feeders_check(h));
    out.push(match snap["reject_box_full"].as_bool() {
        Some(true) => Check::fail(
            "reject-box",
            "Reject box",
            "full",
            "empty the reject box (the cards in it are spoiled: destroy them by the bank's procedure)",
        ),
        Some(false) => Check::pass("reject-box", "Reject box", "room left"),
        None => Check::warn("reject-box", "Reject box", "unknown", "see the Sensors check"),
    });
    out
}

/// The supplies forecast, one check per supply: WARN at or below its
/// threshold (with the next step), FAIL when exhausted; an unknown figure
/// passes, saying why (the Sensors check reports unreadable counters).
fn forecast_checks(h: Option<&Value>) -> Vec<Check> {
    let Some(h) = h else {
        return vec![no_agent("forecast", "Supplies forecast")];
    };
    let Some(list) = h["supplies"]["forecast"].as_array() else {
        return vec![];
    };
    list.iter()
        .filter_map(|f| {
            let (id, title) = forecast_id(f["supply"].as_str()?, f["feeder"].as_u64())?;
            let summary = f["summary"].as_str().unwrap_or("").to_string();
            let next = f["nextStep"].as_str().unwrap_or("").to_string();
            Some(if f["exhausted"].as_bool() == Some(true) {
                Check::fail(id, title, summary, next)
            } else if f["warning"].as_bool() == Some(true) {
                Check::warn(id, title, summary, next)
            } else {
                Check::pass(id, title, summary)
            })
        })
        .collect()
}

/// A stable id and title per supply (check ids are fixed strings).
fn forecast_id(supply: &str, feeder: Option<u64>) -> Option<(&'static str, &'static str)> {
    Some(match (supply, feeder) {
        ("ribbon", _) => ("forecast-ribbon", "Forecast: ribbon"),
        ("feeder", Some(1)) => ("forecast-feeder-1", "Forecast: feeder 1"),
        ("feeder", Some(2)) => ("forecast-feeder-2", "Forecast: feeder 2"),
        ("feeder", Some(3)) => ("forecast-feeder-3", "Forecast: feeder 3"),
        ("feeder", Some(4)) => ("forecast-feeder-4", "Forecast: feeder 4"),
        ("reject_box", _) => ("forecast-reject-box", "Forecast: reject box"),
        ("cleaning", _) => ("forecast-cleaning", "Forecast: cleaning"),
        _ => return None,
    })
}

fn feeders_check(h: &Value) -> Check {
    let feeders = h["supplies"]["feeders"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut problems = Vec::new();
    let mut usable = 0;
    let mut parts = Vec::new();
    for f in &feeders {
        let n = f["feeder"].as_u64().unwrap_or(0);
        let count = f["count"].as_u64();
        let empty = f["empty"].as_bool();
        match (f["cardType"].as_str(), count) {
            (Some(t), Some(c)) => parts.push(format!("{n}: {t} x{c}")),
            _ => {
                parts.push(format!("{n}: not set"));
                problems.push(format!("feeder {n}'s stock is not set"));
            }
        }
        if empty == Some(true) && count.unwrap_or(0) > 0 {
            problems.push(format!(
                "feeder {n} reads empty but its stock says {}",
                count.unwrap_or(0)
            ));
        }
        if empty != Some(true) && count.unwrap_or(0) > 0 {
            usable += 1;
        }
    }
    let detail = parts.join(", ");
    if usable == 0 {
        Check::fail(
            "feeders",
            "Feeders and inventory",
            if detail.is_empty() {
                "no feeder".into()
            } else {
                detail
            },
            "load cards, then `satellite inventory set FEEDER CARD_TYPE COUNT`",
        )
    } else if !problems.is_empty() {
        Check::warn(
            "feeders",
            "Feeders and inventory",
            format!("{detail} ({})", problems.join("; ")),
            "count the cards in each feeder and `satellite inventory set` it",
        )
    } else {
        Check::pass("feeders", "Feeders and inventory", detail)
    }
}

async fn pcsc_checks(config: Option<&Config>) -> Vec<Check> {
    let chip_on = config.is_some_and(|c| c.chip.enabled);
    if !chip_on {
        return vec![
            Check::pass(
                "pcsc-library",
                "PC/SC library",
                "not needed: chip personalisation is off",
            ),
            Check::pass(
                "pcsc-reader",
                "pcscd and reader",
                "not needed: chip personalisation is off",
            ),
        ];
    }
    let mut out = Vec::new();
    if !crate::chip::pcsc_library_available() {
        out.push(Check::fail(
            "pcsc-library",
            "PC/SC library",
            "libpcsclite.so.1 cannot be loaded",
            "install it: `apt install libpcsclite1`",
        ));
        out.push(Check::fail(
            "pcsc-reader",
            "pcscd and reader",
            "not checked without the library",
            "see the PC/SC library check",
        ));
        return out;
    }
    out.push(Check::pass(
        "pcsc-library",
        "PC/SC library",
        "libpcsclite.so.1 loads",
    ));
    let wanted = config.and_then(|c| c.chip.reader.clone());
    out.push(match crate::chip::readers().await {
        Ok(readers) if readers.is_empty() => Check::fail(
            "pcsc-reader",
            "pcscd and reader",
            "pcscd answers but lists no reader",
            "check the reader's cable (`pcsc_scan` lists readers)",
        ),
        Ok(readers) => match &wanted {
            Some(w) if !readers.iter().any(|r| r.contains(w.as_str())) => Check::fail(
                "pcsc-reader",
                "pcscd and reader",
                format!("no reader matches {w:?}; readers: {}", readers.join(", ")),
                "fix [chip] reader in the configuration, or cable the right reader",
            ),
            _ => Check::pass("pcsc-reader", "pcscd and reader", readers.join(", ")),
        },
        Err(f) => Check::fail(
            "pcsc-reader",
            "pcscd and reader",
            format!("{} {}", f.code, f.description),
            "start pcscd (`systemctl start pcscd.socket`) and check with `pcsc_scan`",
        ),
    });
    out
}

fn upstream_checks(h: Option<&Value>) -> Vec<Check> {
    let Some(h) = h else {
        return vec![no_agent("upstream", "Upstream"), no_agent("clock", "Clock")];
    };
    let links = h["upstream"].as_object().cloned().unwrap_or_default();
    let mut out = Vec::new();
    if links.is_empty() {
        out.push(Check::pass("upstream", "Upstream", "none configured"));
    } else {
        let down: Vec<String> = links
            .iter()
            .filter(|(_, l)| l["state"] == "down")
            .map(|(n, l)| {
                format!(
                    "{n}: {} {}",
                    l["code"].as_str().unwrap_or(""),
                    l["error"].as_str().unwrap_or("")
                )
            })
            .collect();
        let unknown: Vec<&String> = links
            .iter()
            .filter(|(_, l)| l["state"] == "unknown")
            .map(|(n, _)| n)
            .collect();
        let names: Vec<String> = links
            .iter()
            .map(|(n, l)| format!("{n} {}", l["state"].as_str().unwrap_or("?")))
            .collect();
        out.push(if !down.is_empty() {
            Check::fail(
                "upstream",
                "Upstream",
                down.join("; "),
                "SAT_SERVER_NOT_REACHABLE: check the network and the URL; SAT_AUTHENTICATION_FAILED or a 401: check the credentials (README.md, Upstream)",
            )
        } else if !unknown.is_empty() {
            Check::warn(
                "upstream",
                "Upstream",
                names.join(", "),
                "not called yet: check again in a minute",
            )
        } else {
            Check::pass("upstream", "Upstream", names.join(", "))
        });
    }
    let skew = links
        .values()
        .filter_map(|l| l["clockSkewMs"].as_i64())
        .max_by_key(|s| s.abs());
    out.push(match skew {
        None => Check::pass(
            "clock",
            "Clock",
            "no server time to compare with (no central base answer yet)",
        ),
        Some(ms) => {
            let s = ms as f64 / 1000.0;
            let detail = format!("{s:+.1} s against the central base");
            if s.abs() >= SKEW_FAIL_S {
                Check::fail(
                    "clock",
                    "Clock",
                    detail,
                    "set the clock right: enable NTP (`timedatectl set-ntp true`)",
                )
            } else if s.abs() >= SKEW_WARN_S {
                Check::warn(
                    "clock",
                    "Clock",
                    detail,
                    "check time synchronisation (`timedatectl status`)",
                )
            } else {
                Check::pass("clock", "Clock", detail)
            }
        }
    });
    out
}

fn disk_check(config: Option<&Config>) -> Check {
    let Some(c) = config else {
        return Check::fail(
            "disk",
            "Disk space",
            "not known: the configuration does not say where the store is",
            "see the Configuration check",
        );
    };
    let dir = c
        .store
        .path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    match nix::sys::statvfs::statvfs(dir) {
        Ok(st) => {
            let free = st.blocks_available().saturating_mul(st.fragment_size());
            let detail = format!("{:.0} MB free at {}", free as f64 / 1e6, dir.display());
            if free < DISK_FAIL_BYTES {
                Check::fail(
                    "disk",
                    "Disk space",
                    detail,
                    "free space now: the agent refuses new cards when it cannot write",
                )
            } else if free < DISK_WARN_BYTES {
                Check::warn(
                    "disk",
                    "Disk space",
                    detail,
                    "free some space (old logs, `journalctl --vacuum-size`)",
                )
            } else {
                Check::pass("disk", "Disk space", detail)
            }
        }
        Err(e) => Check::fail(
            "disk",
            "Disk space",
            format!("cannot read {}: {e}", dir.display()),
            "check that the store's directory exists",
        ),
    }
}

fn store_check(stats: Option<&Value>, agent: bool) -> Check {
    let Some(s) = stats else {
        return if agent {
            Check::fail(
                "store",
                "Store",
                "the agent could not read its store statistics",
                "read the agent's log (`journalctl -u satellite`)",
            )
        } else {
            no_agent("store", "Store")
        };
    };
    let integrity = s["integrity"].as_str().unwrap_or("?");
    let used = s["usedBytes"].as_u64().unwrap_or(0);
    let limit = s["limitBytes"].as_u64().unwrap_or(0);
    let detail = format!(
        "integrity {integrity}, {:.1} MB{}",
        used as f64 / 1e6,
        if limit > 0 {
            format!(" of {:.0} MB", limit as f64 / 1e6)
        } else {
            String::new()
        }
    );
    if integrity != "ok" {
        Check::fail(
            "store",
            "Store",
            detail,
            "stop the agent, copy the store aside and call support with a `satellite diag bundle`",
        )
    } else if limit > 0 && used.saturating_mul(10) >= limit.saturating_mul(8) {
        Check::warn(
            "store",
            "Store",
            detail,
            "the store is over 80 % of its limit: check the outbox backlog, or raise [upstream] store_limit_mb",
        )
    } else {
        Check::pass("store", "Store", detail)
    }
}

fn outbox_checks(h: Option<&Value>) -> Vec<Check> {
    let Some(h) = h else {
        return vec![
            no_agent("outbox-backlog", "Outbox backlog"),
            no_agent("dead-letters", "Dead letters"),
        ];
    };
    let sinks = h["outbox"].as_object().cloned().unwrap_or_default();
    let mut behind = Vec::new();
    let mut dead = Vec::new();
    for (name, o) in &sinks {
        let depth = o["depth"].as_u64().unwrap_or(0);
        let age = o["oldestAgeSeconds"].as_u64().unwrap_or(0);
        if depth > BACKLOG_DEPTH || age > BACKLOG_AGE_S {
            behind.push(format!("{name}: {depth} waiting, oldest {age} s"));
        }
        let d = o["deadLetters"].as_u64().unwrap_or(0);
        if d > 0 {
            dead.push(format!("{name}: {d}"));
        }
    }
    vec![
        if behind.is_empty() {
            Check::pass(
                "outbox-backlog",
                "Outbox backlog",
                if sinks.is_empty() {
                    "no sink configured".to_string()
                } else {
                    "up to date".to_string()
                },
            )
        } else {
            Check::warn(
                "outbox-backlog",
                "Outbox backlog",
                behind.join("; "),
                "see the Upstream check; once the receiver is back, `satellite outbox retry SINK` sends at once",
            )
        },
        if dead.is_empty() {
            Check::pass("dead-letters", "Dead letters", "none")
        } else {
            Check::warn(
                "dead-letters",
                "Dead letters",
                dead.join(", "),
                "the receiver refused them: `satellite outbox list`, fix the receiver, then `satellite outbox replay SINK`",
            )
        },
    ]
}

fn watchdog_check(h: Option<&Value>) -> Check {
    let Some(h) = h else {
        return no_agent("watchdog", "systemd watchdog");
    };
    let s = &h["service"];
    match s["watchdogSeconds"].as_f64() {
        Some(w) => Check::pass("watchdog", "systemd watchdog", format!("every {w:.0} s")),
        None if s["systemdNotify"] == true => Check::warn(
            "watchdog",
            "systemd watchdog",
            "runs under systemd without a watchdog",
            "use the packaged unit (WatchdogSec=), `systemctl cat satellite`",
        ),
        None => Check::warn(
            "watchdog",
            "systemd watchdog",
            "the agent does not run under systemd",
            "install and run it as the packaged service (README.md, Install)",
        ),
    }
}
