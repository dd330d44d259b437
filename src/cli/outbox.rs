//! `satellite outbox ...`: what waits to go upstream, and the dead letters,
//! through the running agent's local API.

use super::agent::{Agent, CliError};
use super::jobs::encode;
use super::output::{self, bad, dim, exit};
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Each sink's backlog (pending, oldest, last error) and its dead letters.
    List,
    /// Send a sink's pending deliveries now, without waiting for their
    /// back-off (after the receiver was fixed).
    Retry {
        /// The sink: central-base, d1, or a webhook's name.
        sink: String,
    },
    /// Send a sink's dead letters again (after the receiver was fixed).
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
                    let dead = s["dead"].as_u64().unwrap_or(0);
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
                        if dead > 0 {
                            bad(&dead.to_string())
                        } else {
                            "0".into()
                        },
                        s["oldestPendingAt"].as_str().unwrap_or("-").to_string(),
                        s["lastError"].as_str().unwrap_or("-").to_string(),
                    ]
                })
                .collect();
            output::line(output::table(
                &["SINK", "PENDING", "DEAD", "OLDEST PENDING", "LAST ERROR"],
                rows,
            ));
            let dead = body["deadLetters"].as_array().cloned().unwrap_or_default();
            if !dead.is_empty() {
                output::line("");
                output::line(
                    "Dead letters (send again with: satellite outbox replay SINK [--ord N])",
                );
                let rows = dead
                    .iter()
                    .map(|d| {
                        vec![
                            d["sink"].as_str().unwrap_or("?").to_string(),
                            d["ord"].to_string(),
                            d["event"]["cardToken"].as_str().unwrap_or("?").to_string(),
                            d["event"]["status"].as_str().unwrap_or("?").to_string(),
                            d["attempts"].to_string(),
                            d["error"].as_str().unwrap_or("-").to_string(),
                        ]
                    })
                    .collect();
                output::line(output::table(
                    &["SINK", "ORD", "CARD", "STATUS", "ATTEMPTS", "ERROR"],
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
                    "{sink}: {} pending delivery(ies) due now",
                    r["retried"]
                ));
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
                    "{sink}: {} dead letter(s) queued again",
                    r["replayed"]
                ));
            }
            Ok(exit::OK)
        }
    }
}
