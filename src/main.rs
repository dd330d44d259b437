//! `satellite`: the kiosk agent and its field tools, one binary.

use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = satellite::cli::Cli::parse();
    let field_tool = matches!(cli.command, satellite::cli::Command::Printer(_));
    satellite::logging::init(cli.verbose, field_tool);
    satellite::cli::run(cli).await
}
