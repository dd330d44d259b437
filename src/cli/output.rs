//! How the technicians' commands speak: text for people (colour only on a
//! terminal, `NO_COLOR` honoured, through `anstream`), tables through
//! `comfy-table`, `--json` for scripts, and exit statuses that mean the same
//! thing in every command (docs/CLI.md).

use anstyle::{AnsiColor, Style};
use std::io::Write as _;
use std::process::ExitCode;

/// Exit statuses, the same in every command.
pub mod exit {
    /// Done; ready; every check passed.
    pub const OK: u8 = 0;
    /// A check warned, or the printer refused an operation.
    pub const WARN: u8 = 1;
    /// A check failed, or production is stopped.
    pub const FAIL: u8 = 2;
    /// The command line itself is wrong (EX_USAGE).
    pub const USAGE: u8 = 64;
    /// The agent (or, with --direct, the printer) cannot be reached (EX_UNAVAILABLE).
    pub const UNAVAILABLE: u8 = 69;
    /// The agent is busy with a card: try again (EX_TEMPFAIL).
    pub const BUSY: u8 = 75;
}

pub fn code(n: u8) -> ExitCode {
    ExitCode::from(n)
}

/// A line on stdout; nothing happens when the reader has gone (`| head`).
pub fn line(text: impl AsRef<str>) {
    let _ = writeln!(anstream::stdout(), "{}", text.as_ref());
}

/// A line on stderr.
pub fn err_line(text: impl AsRef<str>) {
    let _ = writeln!(anstream::stderr(), "{}", text.as_ref());
}

/// Pretty JSON on stdout.
pub fn json(v: &serde_json::Value) {
    line(serde_json::to_string_pretty(v).unwrap_or_default());
}

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

pub fn good(text: &str) -> String {
    paint(AnsiColor::Green.on_default().bold(), text)
}

pub fn warn(text: &str) -> String {
    paint(AnsiColor::Yellow.on_default().bold(), text)
}

pub fn bad(text: &str) -> String {
    paint(AnsiColor::Red.on_default().bold(), text)
}

pub fn dim(text: &str) -> String {
    paint(Style::new().dimmed(), text)
}

pub fn bold(text: &str) -> String {
    paint(Style::new().bold(), text)
}

/// A table without borders, header first: readable on a serial console.
pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| bold(h)));
    for r in rows {
        t.add_row(r);
    }
    t.to_string()
}

/// An error the technician can act on: what is wrong, then what to do.
pub fn problem(what: &str, next: &str) {
    err_line(format!("{} {what}", bad("error:")));
    if !next.is_empty() {
        err_line(format!("  {} {next}", bold("next:")));
    }
}

/// A spinner on stderr for an operation that takes a while; hidden when
/// stderr is not a terminal (or with --json).
pub fn spinner(message: &str, quiet: bool) -> indicatif::ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(message.to_string());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}
