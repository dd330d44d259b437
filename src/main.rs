//! `satellite`: the kiosk agent and its field tools, one binary.

use clap::Parser;
use satellite::cli::{Cli, Command};
use satellite::logging::Quiet;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let quiet = match cli.command {
        Command::Status { .. }
        | Command::Doctor
        | Command::Printer(_)
        | Command::Jobs(_)
        | Command::Outbox(_)
        | Command::Inventory(_)
        | Command::Diag(_)
        | Command::Keygen { .. }
        | Command::Man { .. }
        | Command::Completions { .. } => Quiet::Warnings,
        Command::Demo | Command::Bench { .. } => Quiet::Errors,
        Command::Run => Quiet::No,
    };
    satellite::logging::init(cli.verbose, quiet);
    satellite::cli::run(cli).await
}
