//! `satellite jobs ...`: cards through the running daemon's local API.

use crate::api::client::Client;
use clap::{Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
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
        /// The local API's socket.
        #[arg(long, default_value = "/run/satellite/api.sock")]
        socket: PathBuf,
    },
    /// What the agent is doing now (engine state, printer readiness).
    Status {
        #[arg(long, default_value = "/run/satellite/api.sock")]
        socket: PathBuf,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Resolution {
    Removed,
    Retry,
}

pub async fn run(cmd: JobsCommand) -> ExitCode {
    match cmd {
        JobsCommand::Resolve {
            token,
            resolution,
            socket,
        } => {
            let word = match resolution {
                Resolution::Removed => "removed",
                Resolution::Retry => "retry",
            };
            let body = serde_json::json!({ "resolution": word }).to_string();
            let path = format!("/v1/cards/{token}/resolve");
            match Client::new(&socket).post(&path, body.as_bytes()).await {
                Ok(a) if a.status == 204 => {
                    println!("card {token}: resolved ({word})");
                    ExitCode::SUCCESS
                }
                Ok(a) => {
                    let message = a.body["error"]["message"]
                        .as_str()
                        .unwrap_or("unexpected answer")
                        .to_string();
                    eprintln!("card {token}: not resolved: {message}");
                    ExitCode::from(2)
                }
                Err(e) => {
                    eprintln!("{e}: is the agent running (systemctl status satellite)?");
                    ExitCode::FAILURE
                }
            }
        }
        JobsCommand::Status { socket } => match Client::new(&socket).get("/v1/status").await {
            Ok(a) => {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&a.body).unwrap_or_default()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}: is the agent running (systemctl status satellite)?");
                ExitCode::FAILURE
            }
        },
    }
}
