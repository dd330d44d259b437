//! `satellite status`: one screen of what the agent does and what it needs,
//! from the health document the agent publishes (`GET /v1/status`: never
//! asks the printer). `--watch` redraws it in place.

use super::agent::{Agent, CliError};
use super::output::{self, bad, dim, exit, good, warn};
use serde_json::Value;
use std::time::Duration;

pub async fn run(agent: &Agent, watch: bool, every: Duration, json: bool) -> Result<u8, CliError> {
    loop {
        let doc = agent.get("/v1/status").await?;
        let status = exit_status(&doc);
        if json {
            // One document per line while watching (JSON lines).
            if watch {
                output::line(doc.to_string());
            } else {
                output::json(&doc);
            }
        } else {
            let screen = render(&doc);
            if watch && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
                // Clear and home: the screen is redrawn in place.
                output::line(format!("\x1b[2J\x1b[H{screen}"));
            } else {
                output::line(screen);
            }
        }
        if !watch {
            return Ok(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(status),
        }
    }
}

/// 0 when a card could be produced now, 2 when production is stopped.
pub fn exit_status(doc: &Value) -> u8 {
    if doc["printer"]["ready"].as_bool() == Some(true) {
        exit::OK
    } else {
        exit::FAIL
    }
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The screen, as lines of text.
pub fn render(doc: &Value) -> String {
    let mut out = Vec::new();
    let engine = &doc["engine"];
    let state = s(engine, "state");
    let painted = match state {
        "idle" | "producing" => good(state),
        "starting" | "maintenance" | "stopping" | "waiting_for_printer" => warn(state),
        _ => bad(state),
    };
    let mut what = String::new();
    if let Some(card) = engine["card"].as_str() {
        what.push_str(&format!(" card {card}"));
    }
    if let Some(step) = engine["step"].as_str() {
        what.push_str(&format!(" step {step}"));
    }
    if let Some(op) = engine["operation"].as_str() {
        what.push_str(&format!(" {op}"));
    }
    if let Some(code) = engine["code"].as_str() {
        what.push_str(&format!(" {code}: {}", s(engine, "reason")));
    }
    out.push(format!(
        "Agent      {painted}{what}  {}",
        dim(&format!(
            "since {}  (kiosk {}, version {})",
            s(engine, "since"),
            s(doc, "kioskId"),
            s(doc, "agentVersion")
        ))
    ));
    if engine["technician"].as_bool() == Some(true) {
        out.push(format!(
            "           {} check the printer, then `satellite jobs resolve {} removed|retry`",
            bad("a technician must act:"),
            engine["card"].as_str().unwrap_or("TOKEN")
        ));
    }

    let printer = &doc["printer"];
    let link = &printer["link"];
    let ready = printer["ready"].as_bool() == Some(true);
    out.push(format!(
        "Printer    {}  {}",
        if ready {
            good("READY")
        } else {
            bad("NOT READY")
        },
        match s(link, "state") {
            "connected" => format!(
                "{} serial {} firmware {}",
                s(&link["identity"], "model"),
                s(&link["identity"], "serial"),
                s(&link["identity"], "firmware")
            ),
            "reconnecting" => warn(&format!(
                "link down, retry {} ({})",
                link["attempt"],
                s(&link["last_error"], "description")
            )),
            other => other.to_string(),
        }
    ));
    // Another printer answers than before (replaced, or another one on the
    // port): said until acknowledged, so that a swap is never silent.
    if let Some(change) = link["identity_change"].as_object() {
        let serial = |k: &str| {
            change
                .get(k)
                .and_then(|i| i.get("serial"))
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string()
        };
        out.push(format!(
            "           {} printer {} was replaced by printer {} (at {})",
            warn("replaced:"),
            serial("previous"),
            serial("current"),
            change.get("at").and_then(Value::as_str).unwrap_or("?")
        ));
    }
    if let Some(nr) = printer["notReady"].as_object() {
        out.push(format!(
            "           {} {}",
            bad(nr.get("code").and_then(Value::as_str).unwrap_or("")),
            nr.get("description").and_then(Value::as_str).unwrap_or("")
        ));
    }
    if let Some(why) = printer["engine"].as_str() {
        out.push(format!("           {}", warn(why)));
    }
    let snap = &printer["snapshot"];
    for f in snap["flags"].as_array().into_iter().flatten() {
        if s(f, "severity") == "warning" {
            out.push(format!(
                "           {} {} ({})",
                warn("warning"),
                s(f, "name"),
                s(f, "reason")
            ));
        }
    }
    if let Some(age) = printer["ageMs"].as_u64() {
        out.push(format!(
            "           {}",
            dim(&format!("read {:.1} s ago", age as f64 / 1000.0))
        ));
    }

    // Supplies: ribbon, feeders (stock and sensors), reject box.
    let ribbon = match (snap["ribbon"].as_str(), snap["ribbon_cards_left"].as_u64()) {
        (Some(r), Some(n)) => format!("{r}, about {n} cards left"),
        (Some(r), None) => r.to_string(),
        _ => "unknown".into(),
    };
    out.push(format!("Ribbon     {ribbon}"));
    let mut feeders = Vec::new();
    for f in doc["supplies"]["feeders"].as_array().into_iter().flatten() {
        let stock = match (f["cardType"].as_str(), f["count"].as_u64()) {
            (Some(t), Some(n)) => format!("{t} x{n}"),
            _ => warn("stock not set"),
        };
        let sensor = match (f["empty"].as_bool(), f["nearEmpty"].as_bool()) {
            (Some(true), _) => bad("empty"),
            (_, Some(true)) => warn("near empty"),
            (Some(false), _) => good("ok"),
            _ => dim("sensor unknown"),
        };
        feeders.push(format!("{}: {stock} ({sensor})", f["feeder"]));
    }
    out.push(format!("Feeders    {}", feeders.join("   ")));
    out.push(format!(
        "Reject box {}   Cleaning {}",
        match snap["reject_box_full"].as_bool() {
            Some(true) => bad("FULL"),
            Some(false) => good("ok"),
            None => dim("unknown"),
        },
        match snap["cleaning_due"].as_bool() {
            Some(true) => bad("REQUIRED (no card starts until `satellite printer clean`)"),
            Some(false)
                if snap["flags"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| f["name"] == "cleaning_recommended") =>
            {
                warn("recommended")
            }
            Some(false) => good("not due"),
            None => dim("unknown"),
        }
    ));

    out.extend(forecast_lines(&doc["supplies"]));

    let in_doubt = if state == "card_in_doubt" { 1 } else { 0 };
    out.push(format!(
        "Queue      {} waiting, {} in production, {} in doubt",
        doc["queueDepth"].as_u64().unwrap_or(0),
        doc["inProduction"].as_u64().unwrap_or(0),
        if in_doubt > 0 {
            bad(&in_doubt.to_string())
        } else {
            in_doubt.to_string()
        }
    ));

    // Upstream: each sink's link, backlog and dead letters.
    let links = doc["upstream"].as_object();
    let sinks = doc["outbox"].as_object();
    if links.is_none_or(|l| l.is_empty()) && sinks.is_none_or(|o| o.is_empty()) {
        out.push(format!("Upstream   {}", dim("none configured")));
    } else {
        let mut rows = Vec::new();
        for (name, l) in links.into_iter().flatten() {
            let st = s(l, "state");
            rows.push(vec![
                name.clone(),
                match st {
                    "up" => good(st),
                    "down" => bad(st),
                    _ => dim(st),
                },
                l["code"].as_str().unwrap_or("").to_string(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        for (name, o) in sinks.into_iter().flatten() {
            let dead = o["deadLetters"].as_u64().unwrap_or(0);
            rows.push(vec![
                name.clone(),
                if o["active"].as_bool() == Some(false) {
                    dim("retired")
                } else {
                    "outbox".into()
                },
                String::new(),
                o["depth"].as_u64().unwrap_or(0).to_string(),
                o["oldestAgeSeconds"]
                    .as_u64()
                    .map(|a| format!("{a} s"))
                    .unwrap_or_else(|| "-".into()),
                if dead > 0 {
                    bad(&dead.to_string())
                } else {
                    "0".into()
                },
            ]);
        }
        out.push("Upstream".into());
        for l in output::table(
            &["  SINK", "STATE", "CODE", "DEPTH", "OLDEST", "DEAD"],
            rows,
        )
        .lines()
        {
            out.push(format!("  {l}"));
        }
    }
    if let Some(st) = doc["store"].as_object() {
        let used = st.get("usedBytes").and_then(Value::as_u64).unwrap_or(0);
        let limit = st.get("limitBytes").and_then(Value::as_u64).unwrap_or(0);
        let text = if limit > 0 {
            format!("{:.1} MB of {:.0} MB", mb(used), mb(limit))
        } else {
            format!("{:.1} MB", mb(used))
        };
        out.push(format!(
            "Store      {}",
            if st.get("alarm").and_then(Value::as_bool) == Some(true) {
                bad(&format!("{text} (over 80 %)"))
            } else {
                text
            }
        ));
    }
    out.join("\n")
}

/// The supplies forecast: one line per supply, painted by its level, with
/// the next step on a warning (the agent wrote each line).
fn forecast_lines(supplies: &Value) -> Vec<String> {
    let Some(list) = supplies["forecast"].as_array() else {
        return vec![];
    };
    let rate = &supplies["rate"];
    let head = match rate["cardsPerHour"].as_f64() {
        Some(r) => format!(
            "{r:.1} cards/h over the last {} h",
            rate["windowHours"].as_u64().unwrap_or(0)
        ),
        None => format!(
            "no card in the last {} h: no estimate in hours",
            rate["windowHours"].as_u64().unwrap_or(0)
        ),
    };
    let mut out = vec![format!("Forecast   {}", dim(&head))];
    for f in list {
        let line = s(f, "summary");
        let painted = if f["exhausted"].as_bool() == Some(true) {
            bad(line)
        } else if f["warning"].as_bool() == Some(true) {
            warn(line)
        } else if f["left"].is_null() {
            dim(line)
        } else {
            line.to_string()
        };
        out.push(format!("           {painted}"));
    }
    out
}

fn mb(b: u64) -> f64 {
    b as f64 / 1_000_000.0
}
