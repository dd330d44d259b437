//! The man pages and the shell completions, generated from the command line's
//! own clap definition so that they never drift from it. Hidden commands: the
//! package build (`scripts/build-deb.sh`) runs them on the binary it packages.

use clap::CommandFactory;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

/// `satellite man DIR`: satellite.1 and one page per visible subcommand
/// (satellite-printer-status.1...) written into DIR, which must exist.
/// Hidden commands (these two; `demo` and `bench` in a build without the
/// simulator) get no page.
pub fn man(dir: &Path) -> ExitCode {
    match clap_mangen::generate_to(super::Cli::command(), dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("satellite man: {}: {e}", dir.display());
            ExitCode::from(1)
        }
    }
}

/// `satellite completions SHELL`: the completion script on stdout.
pub fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut super::Cli::command(), "satellite", &mut out);
    match std::io::stdout().lock().write_all(&out) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("satellite completions: {e}");
            ExitCode::from(1)
        }
    }
}
