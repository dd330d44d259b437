//! `satellite outbox ...`: what waits to go upstream, and the dead letters,
//! through the running daemon's local API.

use crate::api::client::Client;
use clap::Subcommand;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// Each sink's backlog (pending, oldest, last error) and its dead letters.
    List {
        /// Print the API's JSON.
        #[arg(long)]
        json: bool,
        #[arg(long, default_value = "/run/satellite/api.sock")]
        socket: PathBuf,
    },
    /// Send a sink's dead letters again (after the receiver was fixed).
    Replay {
        /// The sink: central-base, d1, or a webhook's name.
        sink: String,
        /// Only this dead letter (its `ord`, as `list` shows it).
        #[arg(long)]
        ord: Option<i64>,
        #[arg(long, default_value = "/run/satellite/api.sock")]
        socket: PathBuf,
    },
}

pub async fn run(cmd: OutboxCommand) -> ExitCode {
    match cmd {
        OutboxCommand::List { json, socket } => {
            let a = match Client::new(&socket).get("/v1/outbox").await {
                Ok(a) if a.status == 200 => a,
                Ok(a) => return failed(&a.body),
                Err(e) => return unreachable(&socket, &e),
            };
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&a.body).unwrap_or_default()
                );
                return ExitCode::SUCCESS;
            }
            println!(
                "{:<16} {:>8} {:>6} {:<26} LAST ERROR",
                "SINK", "PENDING", "DEAD", "OLDEST PENDING"
            );
            for s in a.body["sinks"].as_array().into_iter().flatten() {
                println!(
                    "{:<16} {:>8} {:>6} {:<26} {}{}",
                    s["sink"].as_str().unwrap_or("?"),
                    s["pending"],
                    s["dead"],
                    s["oldestPendingAt"].as_str().unwrap_or("-"),
                    s["lastError"].as_str().unwrap_or("-"),
                    if s["active"] == false {
                        " (no longer configured)"
                    } else {
                        ""
                    },
                );
            }
            let dead = a.body["deadLetters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !dead.is_empty() {
                println!("\ndead letters (replay with: satellite outbox replay SINK [--ord N]):");
                for d in dead {
                    println!(
                        "  {} ord {} card {} {} ({} attempts): {}",
                        d["sink"].as_str().unwrap_or("?"),
                        d["ord"],
                        d["event"]["cardToken"].as_str().unwrap_or("?"),
                        d["event"]["status"].as_str().unwrap_or("?"),
                        d["attempts"],
                        d["error"].as_str().unwrap_or("-"),
                    );
                }
            }
            ExitCode::SUCCESS
        }
        OutboxCommand::Replay { sink, ord, socket } => {
            let body = serde_json::json!({ "ord": ord }).to_string();
            let path = format!("/v1/outbox/{sink}/replay");
            match Client::new(&socket).post(&path, body.as_bytes()).await {
                Ok(a) if a.status == 200 => {
                    println!("{sink}: {} dead letter(s) queued again", a.body["replayed"]);
                    ExitCode::SUCCESS
                }
                Ok(a) => failed(&a.body),
                Err(e) => unreachable(&socket, &e),
            }
        }
    }
}

fn failed(body: &serde_json::Value) -> ExitCode {
    eprintln!(
        "satellite outbox: {}",
        body["error"]["message"]
            .as_str()
            .unwrap_or("unexpected answer")
    );
    ExitCode::FAILURE
}

fn unreachable(socket: &std::path::Path, e: &str) -> ExitCode {
    eprintln!(
        "satellite outbox: the agent does not answer on {} ({e}); is it running?",
        socket.display()
    );
    ExitCode::from(69)
}
