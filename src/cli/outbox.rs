//! `satellite outbox ...`: what waits to go upstream, and the dead letters,
//! through the running agent's local API.

use super::agent::{Agent, CliError};
use super::jobs::encode;
use super::output::{self, bad, dim, exit};
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Each sink's backlog (pending, held, dead, parked, oldest, current
    /// error) and its dead and parked deliveries.
    List,
    /// Send a sink's pending deliveries now, past its pause and their
    /// back-off (after the receiver was fixed).
    Retry {
        /// The sink: central-base, d1, or a webhook's name.
        sink: String,
    },
    /// Let a sink that answered 410 Gone (and was disabled) send again,
    /// after its URL was corrected or the receiver restored.
    Enable {
        /// The sink: central-base, d1, or a webhook's name.
        sink: String,
    },
    /// Send a sink's dead and parked deliveries again, each card's later
    /// status changes after them, in order (after the receiver was fixed).
    Replay {
        /// The sink: central-base, d1, or a webhook's name.
        sink: String,
        /// Only this dead letter (its `ord`, as `list` shows it).
        #[arg(long)]
        ord: Option<i64>,
    },
}

pub async fn run(agent: &Agent, cmd: OutboxCommand, json_out: bool) -> Result<u8, CliError> {
    match cmd {
        OutboxCommand::List => {
            let body = agent.get("/v1/outbox").await?;
            if json_out {
                output::json(&body);
                return Ok(exit::OK);
            }
            let rows = body["sinks"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let dead = s["dead"].as_u64().unwrap_or(0) + s["parked"].as_u64().unwrap_or(0);
                    let error = match (s["disabled"].as_str(), s["lastError"].as_str()) {
                        (Some(why), _) => bad(&format!("DISABLED: {why}")),
                        (None, Some(e)) => {
                            format!("{e} (since {})", s["errorSince"].as_str().unwrap_or("?"))
                        }
                        (None, None) => "-".into(),
                    };
                    vec![
                        format!(
                            "{}{}",
                            s["sink"].as_str().unwrap_or("?"),
                            if s["active"] == false {
                                dim(" (no longer configured)")
                            } else {
                                String::new()
                            }
                        ),
                        s["pending"].to_string(),
                        s["held"].to_string(),
                        if dead > 0 {
                            bad(&dead.to_string())
                        } else {
                            "0".into()
                        },
                        s["oldestPendingAt"].as_str().unwrap_or("-").to_string(),
                        error,
                    ]
                })
                .collect();
            output::line(output::table(
                &[
                    "SINK",
                    "PENDING",
                    "HELD",
                    "DEAD",
                    "OLDEST PENDING",
                    "ERROR NOW",
                ],
                rows,
            ));
            let dead = body["deadLetters"].as_array().cloned().unwrap_or_default();
            if !dead.is_empty() {
                output::line("");
                output::line(
                    "Dead and parked (send again, with the card's later changes after them: \
                     satellite outbox replay SINK [--ord N])",
                );
                let rows = dead
                    .iter()
                    .map(|d| {
                        vec![
                            d["sink"].as_str().unwrap_or("?").to_string(),
                            d["ord"].to_string(),
                            d["event"]["cardToken"].as_str().unwrap_or("?").to_string(),
                            d["event"]["status"].as_str().unwrap_or("?").to_string(),
                            d["state"].as_str().unwrap_or("?").to_string(),
                            d["attempts"].to_string(),
                            d["error"].as_str().unwrap_or("-").to_string(),
                        ]
                    })
                    .collect();
                output::line(output::table(
                    &[
                        "SINK", "ORD", "CARD", "STATUS", "STATE", "ATTEMPTS", "ERROR",
                    ],
                    rows,
                ));
            }
            Ok(exit::OK)
        }
        OutboxCommand::Retry { sink } => {
            let r = agent
                .post(&format!("/v1/outbox/{}/retry", encode(&sink)), &json!({}))
                .await?;
            if json_out {
                output::json(&r);
            } else {
                output::line(format!(
                    "{sink}: sending now ({} pending delivery(ies))",
                    r["retried"]
                ));
            }
            Ok(exit::OK)
        }
        OutboxCommand::Enable { sink } => {
            let r = agent
                .post(&format!("/v1/outbox/{}/enable", encode(&sink)), &json!({}))
                .await?;
            if json_out {
                output::json(&r);
            } else if r["wasDisabled"] == true {
                output::line(format!("{sink}: enabled; sending what is pending"));
            } else {
                output::line(format!("{sink}: was not disabled; nothing changed"));
            }
            Ok(exit::OK)
        }
        OutboxCommand::Replay { sink, ord } => {
            let r = agent
                .post(
                    &format!("/v1/outbox/{}/replay", encode(&sink)),
                    &json!({ "ord": ord }),
                )
                .await?;
            if json_out {
                output::json(&r);
            } else {
                output::line(format!(
                    "{sink}: {} dead or parked delivery(ies) queued again",
                    r["replayed"]
                ));
            }
            Ok(exit::OK)
        }
    }
}
