//! Command line: one binary, subcommands. The daemon joins in a later issue;
//! today the field tools talk straight to a printer.

mod printer;
mod render;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "satellite",
    version,
    about = "Card-issuing kiosk agent: drives the card printer and reports production status"
)]
pub struct Cli {
    /// More log output (-v, -vv); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Talk to a printer directly (technicians).
    #[command(subcommand)]
    Printer(printer::PrinterCommand),
}

pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Printer(p) => printer::run(p).await,
    }
}
