//! `satellite`: the kiosk agent and its field tools, one binary.

use clap::Parser;
use satellite::cli::{Cli, Command};
use satellite::logging::Quiet;
use std::process::ExitCode;

fn main() -> ExitCode {
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
    // The daemon runs its tasks on one thread: it waits on the printer, the
    // API socket and timers, and sends its store and PC/SC calls to tokio's
    // blocking pool, so a second worker only added hand-offs between
    // threads while idle (wake-ups, and a malloc arena per thread: `satellite
    // bench --idle`, BENCHMARKS.md). The field tools, demo and benches
    // keep the multi-threaded runtime.
    let mut runtime = match cli.command {
        Command::Run => tokio::runtime::Builder::new_current_thread(),
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    match runtime.enable_all().build() {
        Ok(rt) => rt.block_on(satellite::cli::run(cli)),
        Err(e) => {
            eprintln!("satellite: cannot start the async runtime: {e}");
            ExitCode::from(71)
        }
    }
}
