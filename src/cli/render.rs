//! How the field tools print: text for people, `--json` for scripts.

use crate::codes::Fault;

/// `println!` that does not panic when the reader has gone (`satellite ... | head`).
macro_rules! say_err {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}
use crate::printer::snapshot::Snapshot;
use crate::printer::{Endpoint, Identity, Profile};

pub fn fault_out(f: &Fault, json: bool) {
    if json {
        say!(
            "{}",
            serde_json::json!({ "error": { "code": f.code, "reason": f.reason, "description": f.description } })
        );
    } else {
        say_err!(
            "error: {} ({})\n  {}\n  {}",
            f.code,
            f.reason,
            f.code.description(),
            f.description
        );
        if let Some(hint) = hint(f) {
            say_err!("  hint: {hint}");
        }
    }
}

/// A next step for the technician, by code.
fn hint(f: &Fault) -> Option<&'static str> {
    use crate::codes::ErrorCode::*;
    Some(match f.code {
        PRT_NOT_REACHABLE => "check the cable and power, the device path (--device), and that no other program holds the port",
        PRT_TIMEOUT => "check the serial speed (--baud) against the printer's Pcom setting, and that the printer is not busy",
        PRT_SETUP_ERROR => "check --model against the printer, and the printer's options",
        PRD_UNEXPECTED_DATA => "noise on the line or a wrong serial speed: check --baud and the cable",
        PRT_COVER_OPEN => "close the printer cover",
        PRD_FEEDER_EMPTY => "load cards into the feeder",
        _ => return None,
    })
}

pub fn info(id: &Identity, p: &Profile, endpoint: &Endpoint, json: bool) {
    let c = &p.capabilities;
    if json {
        let v = serde_json::json!({
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
        });
        say!("{v:#}");
        return;
    }
    say!(
        "Printer    {}  serial {}  firmware {}",
        id.model,
        id.serial,
        id.firmware
    );
    say!("Link       {endpoint}");
    say!(
        "Profile    {} ({})  from {}",
        p.model.id,
        p.model.name,
        p.source
    );
    let yes = |b: bool| if b { "yes" } else { "no" };
    say!(
        "Options    feeders {}, magnetic {}, smart station {}, contactless {}, emboss {}, bezel {}, reject box {}, lock {}",
        c.feeders,
        yes(c.magnetic),
        yes(c.smart_station),
        yes(c.contactless),
        yes(c.emboss),
        yes(c.bezel),
        yes(c.reject_box),
        yes(c.lock)
    );
    say!("Ribbons    {}", c.ribbons.join(", "));
    let sensors: Vec<_> = p.commands.sensors.iter().map(|s| s.letter()).collect();
    say!(
        "Commands   status words (Rst) {}, sensors Rse;{}, card position words {}",
        yes(p.commands.status_words),
        sensors.join("|"),
        p.commands.card_position.name()
    );
    say!(
        "Panel      {} x {} pixels",
        p.geometry.width,
        p.geometry.height
    );
}

pub fn snapshot(s: &Snapshot, endpoint: &Endpoint, json: bool) {
    if json {
        let mut v = serde_json::to_value(s).unwrap_or_default();
        v["ready"] = serde_json::Value::Bool(s.ready());
        v["endpoint"] = serde_json::Value::String(endpoint.to_string());
        say!("{v:#}");
        return;
    }
    if let Some(id) = &s.identity {
        say!(
            "Printer    {}  serial {}  ({})",
            id.model,
            id.serial,
            endpoint
        );
    }
    if s.ready() && s.status_words.is_none() {
        // Readiness comes from the status words: without them nothing is
        // known to be wrong, which is not the same as all being well.
        say!(
            "Ready      no fault known (no status words: a fault shows at the step that meets it)"
        );
    } else if s.ready() {
        say!("Ready      yes");
    } else {
        say!("Ready      NO");
        for f in &s.faults {
            say!(
                "  {:<32} {} ({})",
                f.code.as_str(),
                f.code.description(),
                f.reason
            );
        }
    }
    let warnings: Vec<_> = s
        .flags
        .iter()
        .filter(|f| f.severity == crate::codes::Severity::Warning)
        .map(|f| format!("{} ({})", f.name, f.reason))
        .collect();
    if !warnings.is_empty() {
        say!("Warnings   {}", warnings.join(", "));
    }
    let feeders: Vec<_> = s
        .feeders
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                f.feeder,
                if f.empty {
                    "empty"
                } else if f.near_empty {
                    "near empty"
                } else {
                    "ok"
                }
            )
        })
        .collect();
    say!("Feeders    {}", feeders.join(", "));
    say!(
        "Card       {}",
        s.card_position
            .as_deref()
            .map(describe_position)
            .unwrap_or("unknown")
    );
    say!(
        "Ribbon     {}{}",
        s.ribbon.as_deref().unwrap_or("unknown"),
        s.ribbon_cards_left
            .map(|n| format!(", about {n} cards left"))
            .unwrap_or_default()
    );
    say!(
        "Cleaning   {}",
        match s.cleaning_due {
            Some(true) => "due",
            Some(false) => "not due",
            None => "unknown",
        }
    );
    say!(
        "Reject box {}",
        match s.reject_box_full {
            Some(true) => "FULL",
            Some(false) => "ok",
            None => "unknown",
        }
    );
    if let Some(w) = &s.status_words {
        say!("Status     {w}");
    }
    if !s.unknown_bits.is_empty() {
        say!(
            "Unknown    {} (not in the profile)",
            s.unknown_bits.join(", ")
        );
    }
    let sensors: Vec<_> = s
        .sensors
        .iter()
        .map(|(k, v)| format!("{k} {v:.2} V"))
        .collect();
    say!("Sensors    {}", sensors.join(", "));
    let counters: Vec<_> = s.counters.iter().map(|(k, v)| format!("{k} {v}")).collect();
    say!("Counters   {}", counters.join(", "));
    for (k, why) in &s.unavailable {
        say!("  ({k} unavailable: {why})");
    }
}

fn describe_position(p: &str) -> &'static str {
    match p {
        "OK" | "NO CARD" => "none inside",
        "CARD" => "inside",
        // The older firmware's word: a card is there, its position not given.
        "ERR CARD" => "inside (the firmware does not say where)",
        "SMART CARD" => "at the smart-card station",
        "CONTACTLESS CARD" => "at the contactless station",
        _ => "unknown",
    }
}

pub fn raw(sent: &str, reply: &str, fault: Option<&Fault>, json: bool) {
    if json {
        say!(
            "{}",
            serde_json::json!({ "sent": sent, "reply": dialect::redact::mask_text(reply), "fault": fault })
        );
        return;
    }
    say!("> {sent}");
    say!("< {}", dialect::redact::mask_text(reply));
    if let Some(f) = fault {
        say!("  = {} ({}): {}", f.code, f.reason, f.code.description());
    }
}
