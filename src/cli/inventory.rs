//! `satellite inventory ...`: what each feeder holds, as the technician
//! loaded it, next to what its sensors say.

use super::agent::{Agent, CliError};
use super::output::{self, bad, dim, exit, good, warn};
use clap::Subcommand;
use serde_json::json;

#[derive(Debug, Subcommand)]
pub enum InventoryCommand {
    /// Each feeder: card type, count, and its sensors.
    Show,
    /// After loading cards: what a feeder now holds.
    Set {
        /// The feeder number (1 to the model's feeders).
        feeder: u8,
        /// The card type loaded (one of the configuration's card types).
        card_type: String,
        /// How many cards it holds now.
        count: u32,
    },
    /// After emptying the reject box: the supplies forecast counts its
    /// free slots again from the printer's reject counter.
    RejectBox {
        /// The box was emptied (it holds no card now).
        #[arg(long, conflicts_with = "cards", required_unless_present = "cards")]
        emptied: bool,
        /// Or: how many cards it holds now.
        #[arg(long)]
        cards: Option<u64>,
    },
}

pub async fn run(agent: &Agent, cmd: InventoryCommand, json_out: bool) -> Result<u8, CliError> {
    match cmd {
        InventoryCommand::Show => {
            let body = agent.get("/v1/inventory").await?;
            if json_out {
                output::json(&body);
                return Ok(exit::OK);
            }
            let feeders = body
                .as_array()
                .or_else(|| body["feeders"].as_array())
                .cloned()
                .unwrap_or_default();
            let rows = feeders
                .iter()
                .map(|f| {
                    vec![
                        f["feeder"].to_string(),
                        f["cardType"]
                            .as_str()
                            .map_or_else(|| warn("not set"), str::to_string),
                        f["count"]
                            .as_u64()
                            .map_or_else(|| "-".into(), |n| n.to_string()),
                        match (f["empty"].as_bool(), f["nearEmpty"].as_bool()) {
                            (Some(true), _) => bad("empty"),
                            (_, Some(true)) => warn("near empty"),
                            (Some(false), _) => good("cards present"),
                            _ => dim("unknown"),
                        },
                        f["setAt"].as_str().unwrap_or("-").to_string(),
                    ]
                })
                .collect();
            output::line(output::table(
                &["FEEDER", "CARD TYPE", "COUNT", "SENSOR", "SET AT"],
                rows,
            ));
            Ok(exit::OK)
        }
        InventoryCommand::RejectBox { emptied, cards } => {
            let cards = if emptied { 0 } else { cards.unwrap_or(0) };
            let body = json!({ "cards": cards }).to_string();
            agent
                .call("PUT", "/v1/inventory/reject-box", Some(body.as_bytes()))
                .await?;
            if json_out {
                output::json(&json!({ "rejectBox": { "cards": cards } }));
            } else {
                output::line(format!("reject box: {cards} cards in it"));
            }
            Ok(exit::OK)
        }
        InventoryCommand::Set {
            feeder,
            card_type,
            count,
        } => {
            let body = json!({ "cardType": card_type, "count": count }).to_string();
            agent
                .call(
                    "PUT",
                    &format!("/v1/inventory/{feeder}"),
                    Some(body.as_bytes()),
                )
                .await?;
            if json_out {
                output::json(&json!({ "feeder": feeder, "cardType": card_type, "count": count }));
            } else {
                output::line(format!("feeder {feeder}: {count} x {card_type}"));
            }
            Ok(exit::OK)
        }
    }
}
