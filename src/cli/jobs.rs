//! `satellite jobs ...`: cards through the running agent's local API.

use super::agent::{Agent, CliError};
use super::output::{self, bad, dim, exit, good, warn};
use clap::{Subcommand, ValueEnum};
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// The most recent cards, newest first.
    List {
        /// Only cards in this status.
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        /// How many (1 to 1000).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=1000))]
        limit: u16,
    },
    /// One card: its status, step and every status change.
    Show { token: String },
    /// Cancel a card that has not started.
    Cancel { token: String },
    /// Settle a card in doubt that the agent cannot settle alone (its
    /// reject failed). First check the printer: open it, take the card out
    /// (or empty the reject box / clear the jam), close it; then resolve.
    Resolve {
        /// The card's token.
        token: String,
        /// `removed`: you took the card out (it ends in PRODUCTION_ERROR);
        /// `retry`: you fixed the cause, the agent rejects the card again.
        #[arg(value_enum)]
        resolution: Resolution,
    },
    /// What the agent is doing now (the health document, as JSON).
    #[command(hide = true)]
    Status,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Resolution {
    Removed,
    Retry,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StatusFilter {
    Ready,
    InProgress,
    Produced,
    ProductionError,
    RequestError,
    Cancelled,
}

impl StatusFilter {
    fn as_str(self) -> &'static str {
        match self {
            StatusFilter::Ready => "READY",
            StatusFilter::InProgress => "IN_PROGRESS",
            StatusFilter::Produced => "PRODUCED",
            StatusFilter::ProductionError => "PRODUCTION_ERROR",
            StatusFilter::RequestError => "REQUEST_ERROR",
            StatusFilter::Cancelled => "CANCELLED",
        }
    }
}

pub async fn run(agent: &Agent, cmd: JobsCommand, json_out: bool) -> Result<u8, CliError> {
    match cmd {
        JobsCommand::List { status, limit } => {
            let mut path = format!("/v1/cards?limit={limit}");
            if let Some(s) = status {
                path.push_str(&format!("&status={}", s.as_str()));
            }
            let body = agent.get(&path).await?;
            if json_out {
                output::json(&body);
                return Ok(exit::OK);
            }
            let rows: Vec<Vec<String>> = body["cards"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let p = &c["production"];
                    vec![
                        c["cardToken"].as_str().unwrap_or("").to_string(),
                        paint_status(p["status"].as_str().unwrap_or("")),
                        c["step"].as_str().unwrap_or("").to_string(),
                        p["errorCode"].as_str().unwrap_or("").to_string(),
                        c["cardType"].as_str().unwrap_or("").to_string(),
                        c["pan"].as_str().unwrap_or("").to_string(),
                        p["occurredAt"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            if rows.is_empty() {
                output::line(dim("no cards"));
            } else {
                output::line(output::table(
                    &["TOKEN", "STATUS", "STEP", "CODE", "TYPE", "PAN", "SINCE"],
                    rows,
                ));
            }
            Ok(exit::OK)
        }
        JobsCommand::Show { token } => {
            let c = agent.get(&format!("/v1/cards/{}", encode(&token))).await?;
            if json_out {
                output::json(&c);
                return Ok(exit::OK);
            }
            let p = &c["production"];
            output::line(format!(
                "Card       {}  {}  type {}  pan {}",
                c["cardToken"].as_str().unwrap_or(""),
                paint_status(p["status"].as_str().unwrap_or("")),
                c["cardType"].as_str().unwrap_or(""),
                c["pan"].as_str().unwrap_or("")
            ));
            if let Some(step) = c["step"].as_str() {
                output::line(format!("Step       {step}"));
            }
            if let Some(code) = p["errorCode"].as_str() {
                output::line(format!(
                    "Error      {} {}",
                    bad(code),
                    p["description"].as_str().unwrap_or("")
                ));
            }
            let rows = c["events"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| {
                    vec![
                        e["seq"].to_string(),
                        e["occurredAt"].as_str().unwrap_or("").to_string(),
                        paint_status(e["status"].as_str().unwrap_or("")),
                        e["step"].as_str().unwrap_or("").to_string(),
                        e["errorCode"].as_str().unwrap_or("").to_string(),
                        e["description"].as_str().unwrap_or("").to_string(),
                    ]
                })
                .collect();
            output::line(output::table(
                &["#", "AT", "STATUS", "STEP", "CODE", "DESCRIPTION"],
                rows,
            ));
            Ok(exit::OK)
        }
        JobsCommand::Cancel { token } => {
            let p = agent
                .post(&format!("/v1/cards/{}/cancel", encode(&token)), &json!({}))
                .await?;
            if json_out {
                output::json(&p);
            } else {
                output::line(format!(
                    "card {token}: cancelled ({})",
                    p["description"].as_str().unwrap_or("")
                ));
            }
            Ok(exit::OK)
        }
        JobsCommand::Resolve { token, resolution } => {
            let word = match resolution {
                Resolution::Removed => "removed",
                Resolution::Retry => "retry",
            };
            let r = agent
                .post(
                    &format!("/v1/cards/{}/resolve", encode(&token)),
                    &json!({ "resolution": word }),
                )
                .await;
            match r {
                Ok(_) => {
                    if json_out {
                        output::json(&json!({ "cardToken": token, "resolution": word }));
                    } else {
                        output::line(format!("card {token}: resolved ({word})"));
                    }
                    Ok(exit::OK)
                }
                // Refused: the card is not in doubt, or the agent needs the
                // technician to act first (the message says what).
                Err(e) if e.exit == exit::BUSY => Err(CliError {
                    exit: exit::FAIL,
                    next: String::new(),
                    ..e
                }),
                Err(e) => Err(e),
            }
        }
        JobsCommand::Status => {
            output::json(&agent.get("/v1/status").await?);
            Ok(exit::OK)
        }
    }
}

pub fn paint_status(s: &str) -> String {
    match s {
        "PRODUCED" => good(s),
        "PRODUCTION_ERROR" | "REQUEST_ERROR" => bad(s),
        "IN_PROGRESS" => warn(s),
        _ => s.to_string(),
    }
}

/// A token in a URL path: the characters a token may hold pass as they are,
/// anything else is percent-encoded.
pub fn encode(token: &str) -> String {
    token
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
