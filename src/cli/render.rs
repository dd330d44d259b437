//! How the printer commands print, from one JSON shape whether the answer
//! came through the agent or straight from the device (`--direct`): text
//! for people, the same JSON with `--json` (docs/CLI.md).

use super::output::{self, bad, dim, good, warn};
use crate::codes::Fault;
use crate::printer::snapshot::Snapshot;
use crate::printer::{Endpoint, Identity, Profile};
use serde_json::{json, Value};

/// The printer's identity, profile and options, as `printer info` shows them.
pub fn info_json(id: Option<&Identity>, p: &Profile, endpoint: &Endpoint) -> Value {
    let c = &p.capabilities;
    json!({
        "identity": id,
        "endpoint": endpoint.to_string(),
        "profile": { "id": p.model.id, "name": p.model.name, "source": p.source },
        "capabilities": {
            "feeders": c.feeders, "magnetic": c.magnetic, "smart_station": c.smart_station,
            "contactless": c.contactless, "emboss": c.emboss, "bezel": c.bezel,
            "reject_box": c.reject_box, "lock": c.lock, "ribbons": c.ribbons,
        },
        "panel": { "width": p.geometry.width, "height": p.geometry.height },
        "commands": {
            "status_words": p.commands.status_words,
            "sensors": p.commands.sensors.iter().map(|s| s.letter()).collect::<Vec<_>>(),
            "card_position": p.commands.card_position.name(),
        },
    })
}

/// A reading as `printer status` shows it: the snapshot, whether a card
/// could be produced, and where the printer is.
pub fn snapshot_json(s: &Snapshot, endpoint: &Endpoint) -> Value {
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["ready"] = Value::Bool(s.ready());
    v["endpoint"] = Value::String(endpoint.to_string());
    v
}

pub fn fault_out(f: &Fault, json_out: bool) {
    if json_out {
        output::json(
            &json!({ "error": { "code": f.code, "reason": f.reason, "description": f.description } }),
        );
        return;
    }
    output::problem(
        &format!(
            "{} ({}): {}\n  {}",
            f.code,
            f.reason,
            f.code.description(),
            f.description
        ),
        hint(f).unwrap_or(""),
    );
}

/// A next step for the technician, by code.
fn hint(f: &Fault) -> Option<&'static str> {
    use crate::codes::ErrorCode::*;
    if f.reason == "cleaning-required" {
        return Some("clean the printer: `satellite printer clean` with a cleaning card loaded");
    }
    Some(match f.code {
        PRT_NOT_REACHABLE => "check the cable and power, the device path (--device), and that no other program holds the port",
        PRT_TIMEOUT => "check the serial speed (--baud) against the printer's Pcom setting, and that the printer is not busy",
        PRT_SETUP_ERROR => "check --model against the printer, and the printer's options",
        PRD_UNEXPECTED_DATA => "noise on the line or a wrong serial speed: check --baud and the cable",
        PRT_COVER_OPEN => "close the printer cover",
        PRD_FEEDER_EMPTY => "load cards into the feeder, then `satellite inventory set`",
        PRT_RIBBON | PRT_RIBBON_MISSING | PRT_RIBBON_ENDED => "check and replace the ribbon",
        _ => return None,
    })
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("")
}

pub fn info(v: &Value) {
    let id = &v["identity"];
    if id.is_object() {
        output::line(format!(
            "Printer    {}  serial {}  firmware {}",
            s(id, "model"),
            s(id, "serial"),
            s(id, "firmware")
        ));
    } else {
        output::line(format!("Printer    {}", warn("not connected")));
    }
    output::line(format!("Link       {}", s(v, "endpoint")));
    let p = &v["profile"];
    output::line(format!(
        "Profile    {} ({})  from {}",
        s(p, "id"),
        s(p, "name"),
        s(p, "source")
    ));
    let c = &v["capabilities"];
    let yes = |k: &str| if c[k] == true { "yes" } else { "no" };
    output::line(format!(
        "Options    feeders {}, magnetic {}, smart station {}, contactless {}, emboss {}, bezel {}, reject box {}, lock {}",
        c["feeders"],
        yes("magnetic"),
        yes("smart_station"),
        yes("contactless"),
        yes("emboss"),
        yes("bezel"),
        yes("reject_box"),
        yes("lock")
    ));
    let ribbons: Vec<&str> = c["ribbons"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    output::line(format!("Ribbons    {}", ribbons.join(", ")));
    let cmds = &v["commands"];
    let sensors: Vec<&str> = cmds["sensors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    output::line(format!(
        "Commands   status words (Rst) {}, sensors Rse;{}, card position words {}",
        if cmds["status_words"] == true {
            "yes"
        } else {
            "no"
        },
        sensors.join("|"),
        s(cmds, "card_position")
    ));
    output::line(format!(
        "Panel      {} x {} pixels",
        v["panel"]["width"], v["panel"]["height"]
    ));
}

/// A snapshot (with `ready` and `endpoint`) as text.
pub fn snapshot(v: &Value) {
    let id = &v["identity"];
    if id.is_object() {
        output::line(format!(
            "Printer    {}  serial {}  ({})",
            s(id, "model"),
            s(id, "serial"),
            s(v, "endpoint")
        ));
    }
    if v["ready"] == true && v["status_words"].is_null() {
        // Readiness comes from the status words: without them nothing is
        // known to be wrong, which is not the same as all being well.
        output::line(format!(
            "Ready      {}",
            warn("no fault known (no status words: a fault shows at the step that meets it)")
        ));
    } else if v["ready"] == true {
        output::line(format!("Ready      {}", good("yes")));
    } else {
        output::line(format!("Ready      {}", bad("NO")));
        for f in v["faults"].as_array().into_iter().flatten() {
            let code = s(f, "code");
            let described = code
                .parse::<crate::codes::ErrorCode>()
                .map(|c| c.description())
                .unwrap_or("");
            output::line(format!(
                "  {:<32} {} ({})",
                bad(code),
                described,
                s(f, "reason")
            ));
        }
    }
    let warnings: Vec<String> = v["flags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| s(f, "severity") == "warning")
        .map(|f| format!("{} ({})", s(f, "name"), s(f, "reason")))
        .collect();
    if !warnings.is_empty() {
        output::line(format!("Warnings   {}", warn(&warnings.join(", "))));
    }
    let feeders: Vec<String> = v["feeders"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            format!(
                "{}: {}",
                f["feeder"],
                if f["empty"] == true {
                    bad("empty")
                } else if f["near_empty"] == true {
                    warn("near empty")
                } else {
                    good("ok")
                }
            )
        })
        .collect();
    output::line(format!("Feeders    {}", feeders.join(", ")));
    output::line(format!(
        "Card       {}",
        describe_position(v["card_position"].as_str())
    ));
    output::line(format!(
        "Ribbon     {}{}",
        v["ribbon"].as_str().unwrap_or("unknown"),
        v["ribbon_cards_left"]
            .as_u64()
            .map(|n| format!(", about {n} cards left"))
            .unwrap_or_default()
    ));
    output::line(format!(
        "Cleaning   {}",
        match v["cleaning_due"].as_bool() {
            Some(true) => warn("due"),
            Some(false) => good("not due"),
            None => dim("unknown"),
        }
    ));
    output::line(format!(
        "Reject box {}",
        match v["reject_box_full"].as_bool() {
            Some(true) => bad("FULL"),
            Some(false) => good("ok"),
            None => dim("unknown"),
        }
    ));
    if let Some(w) = v["status_words"].as_str() {
        output::line(format!("Status     {w}"));
    }
    let unknown: Vec<&str> = v["unknown_bits"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !unknown.is_empty() {
        output::line(format!(
            "Unknown    {} (not in the profile)",
            unknown.join(", ")
        ));
    }
    let sensors: Vec<String> = v["sensors"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, x)| format!("{k} {:.2} V", x.as_f64().unwrap_or(0.0)))
        .collect();
    output::line(format!("Sensors    {}", sensors.join(", ")));
    let counters: Vec<String> = v["counters"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, x)| format!("{k} {x}"))
        .collect();
    output::line(format!("Counters   {}", counters.join(", ")));
    for (k, why) in v["unavailable"].as_object().into_iter().flatten() {
        output::line(dim(&format!(
            "  ({k} unavailable: {})",
            why.as_str().unwrap_or("")
        )));
    }
}

fn describe_position(p: Option<&str>) -> &'static str {
    match p {
        Some("OK" | "NO CARD") => "none inside",
        Some("CARD") => "inside",
        // The older firmware's word: a card is there, its position not given.
        Some("ERR CARD") => "inside (the firmware does not say where)",
        Some("SMART CARD") => "at the smart-card station",
        Some("CONTACTLESS CARD") => "at the contactless station",
        _ => "unknown",
    }
}

/// A raw command's exchange.
pub fn raw_json(sent: &str, reply: &str, fault: Option<&Fault>) -> Value {
    json!({ "sent": sent, "reply": dialect::redact::mask_text(reply), "fault": fault })
}

pub fn raw(v: &Value) {
    output::line(format!("> {}", s(v, "sent")));
    output::line(format!("< {}", s(v, "reply")));
    let f = &v["fault"];
    if f.is_object() {
        output::line(format!(
            "  = {} ({}): {}",
            bad(s(f, "code")),
            s(f, "reason"),
            s(f, "description")
        ));
    }
}
