//! Structured logs on stderr, readable in journald.
//!
//! Under systemd (`JOURNAL_STREAM` set) lines carry no timestamp or colour:
//! journald adds its own. `RUST_LOG` overrides the level.

use tracing_subscriber::EnvFilter;

/// How much to log when neither `-v` nor `RUST_LOG` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quiet {
    /// The daemon: its own information.
    No,
    /// Field tools print their own results: warnings only.
    Warnings,
    /// The demo narrates itself: errors only.
    Errors,
}

pub fn init(verbose: u8, quiet: Quiet) {
    let default = match verbose {
        0 if quiet == Quiet::Errors => "error",
        0 if quiet == Quiet::Warnings => "warn",
        0 => "warn,satellite=info",
        1 => "info,satellite=debug",
        _ => "debug,satellite=trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let journald = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if journald {
        let _ = builder.without_time().with_ansi(false).try_init();
    } else {
        let _ = builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init();
    }
}
