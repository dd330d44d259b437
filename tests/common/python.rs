//! The Python checkers of the tests, from PyPI: the venv `target/pyvenv`
//! that scripts/pyenv.sh makes from scripts/python-requirements.txt. When it
//! is missing and cannot be made, tests that need it fail; they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's `bin/` directory, made by scripts/pyenv.sh when missing or
/// stale (it returns at once when up to date). Panics when it cannot be made.
pub fn venv_bin() -> PathBuf {
    static READY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    READY
        .get_or_init(|| {
            let out = Command::new("bash")
                .arg(repo().join("scripts/pyenv.sh"))
                .current_dir(repo())
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run bash scripts/pyenv.sh: {e}"))?;
            let bin = repo().join("target/pyvenv/bin");
            if !out.status.success() || !bin.join("python").exists() {
                return Err(format!(
                    "scripts/pyenv.sh failed ({}): {}{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(bin)
        })
        .clone()
        .unwrap_or_else(|e| {
            panic!(
                "the Python venv target/pyvenv of the external checkers is missing or stale and \
                 could not be made: {e}\nRun `bash scripts/pyenv.sh` (needs python3 with its venv \
                 module, Debian's python3-venv, and PyPI); scripts/test.sh and CI run it first."
            )
        })
}

/// What a tool said.
pub struct Ran {
    pub ok: bool,
    /// Its exit status, stdout and stderr, for messages.
    pub out: String,
    pub stdout: String,
}

/// Runs tests/tools/`script` with `args`, `input` on its stdin.
pub fn tool(script: &str, args: &[&str], input: &str) -> Ran {
    let script = repo().join("tests/tools").join(script);
    let mut child = Command::new(venv_bin().join("python"))
        .arg(&script)
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    // Written from another thread: a tool that answers while it reads
    // cannot block on a full pipe.
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    Ran {
        ok: out.status.success(),
        out: format!(
            "{} ({}): {}{}",
            script.display(),
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        ),
        stdout,
    }
}
