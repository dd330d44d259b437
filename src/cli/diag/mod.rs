//! `satellite diag bundle`: one archive a technician sends to support, with
//! what support asks first: the configuration less its secrets, recent
//! logs, status, doctor, store statistics, the printer's identity, counters
//! and reading, the outbox summary, recent cards (masked) and the wire trace.
//! Every file passes through [`redact::scrub`] before it is written.

mod redact;

use super::agent::{Agent, CliError};
use super::output::{self, exit};
use clap::Subcommand;
use serde_json::{json, Value};
use std::io::Write as _;
use std::path::{Path, PathBuf};

#[derive(Debug, Subcommand)]
pub enum DiagCommand {
    /// Write the support bundle (a .tar.gz readable by its owner only).
    Bundle {
        /// Where to write it (default: satellite-bundle-KIOSK-TIME.tar.gz here).
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
        /// Hours of logs to include (from the journal, under systemd).
        #[arg(long, default_value_t = 24)]
        log_hours: u32,
    },
}

pub async fn run(
    agent: &Agent,
    config: &Path,
    cmd: DiagCommand,
    json_out: bool,
) -> Result<u8, CliError> {
    let DiagCommand::Bundle { out, log_hours } = cmd;
    let pb = output::spinner("collecting", json_out);
    let mut files: Vec<(String, String)> = Vec::new();
    let mut notes: Vec<String> = Vec::new();

    match std::fs::read_to_string(config) {
        Ok(text) => files.push(("config.toml".into(), redact::config(&text))),
        Err(e) => notes.push(format!("configuration {}: {e}", config.display())),
    }
    let mut kiosk = "kiosk".to_string();
    let reads: [(&str, &str); 8] = [
        ("status.json", "/v1/status"),
        ("store.json", "/v1/store"),
        ("printer.json", "/v1/printer"),
        ("printer-info.json", "/v1/printer/info"),
        ("outbox.json", "/v1/outbox"),
        ("inventory.json", "/v1/inventory"),
        ("cards.json", "/v1/cards?limit=200"),
        ("trace.json", "/v1/printer/trace?last=500"),
    ];
    for (name, path) in reads {
        pb.set_message(format!("collecting {name}"));
        match agent.get(path).await {
            Ok(v) => {
                if name == "status.json" {
                    if let Some(k) = v["kioskId"].as_str() {
                        kiosk = k.to_string();
                    }
                }
                files.push((name.into(), pretty(&v)));
            }
            Err(e) => notes.push(format!("{name}: {}", e.message)),
        }
    }
    pb.set_message("running doctor");
    let checks = super::doctor::all(agent, config).await;
    files.push((
        "doctor.json".into(),
        pretty(&super::doctor::to_json(&checks)),
    ));
    pb.set_message("reading the journal");
    files.push(("logs.txt".into(), logs(log_hours, &mut notes)));
    files.push((
        "manifest.json".into(),
        pretty(&json!({
            "createdAt": crate::time::now_rfc3339(),
            "tool": format!("satellite {}", env!("CARGO_PKG_VERSION")),
            "kioskId": kiosk,
            "files": files.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
            "redaction": "card numbers keep at most their first six and last four digits; track data, tokens, webhook secrets, credentials and long hexadecimal strings are replaced",
            "missing": notes,
        })),
    ));

    let stamp = crate::time::now_rfc3339().replace([':', '.'], "-");
    let out = out.unwrap_or_else(|| {
        PathBuf::from(format!("satellite-bundle-{}-{stamp}.tar.gz", safe(&kiosk)))
    });
    pb.set_message(format!("writing {}", out.display()));
    let written = write_archive(&out, &files, &stamp);
    pb.finish_and_clear();
    written.map_err(|e| {
        CliError::new(
            exit::FAIL,
            format!("cannot write {}: {e}", out.display()),
            "choose a writable place with --out",
        )
    })?;
    if json_out {
        output::json(&json!({ "bundle": out, "files": files.len(), "missing": notes }));
    } else {
        output::line(format!("wrote {} ({} files)", out.display(), files.len()));
        for n in &notes {
            output::line(output::dim(&format!("  not included: {n}")));
        }
    }
    Ok(exit::OK)
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The kiosk id as a file-name part.
fn safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The agent's journal when it runs under systemd; a note otherwise.
fn logs(hours: u32, notes: &mut Vec<String>) -> String {
    let run = std::process::Command::new("journalctl")
        .args([
            "--unit",
            "satellite.service",
            "--no-pager",
            "--output",
            "short-iso",
            "--since",
        ])
        .arg(format!("-{hours}h"))
        .output();
    match run {
        Ok(o) if o.status.success() && !o.stdout.is_empty() => {
            String::from_utf8_lossy(&o.stdout).into_owned()
        }
        Ok(o) => {
            let why = String::from_utf8_lossy(&o.stderr).trim().to_string();
            notes.push(format!(
                "logs: the journal has nothing for satellite.service{}",
                if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({why})")
                }
            ));
            "(no journal entries: the agent does not run under systemd here; its logs went to its standard error)\n".into()
        }
        Err(e) => {
            notes.push(format!("logs: journalctl cannot run ({e})"));
            "(no journal: journalctl is not available)\n".into()
        }
    }
}

/// One gzip'd tar under a directory named after the bundle, owner-only.
fn write_archive(out: &Path, files: &[(String, String)], stamp: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)?;
    let gz = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    let dir = format!("satellite-bundle-{stamp}");
    for (name, text) in files {
        let data = redact::scrub(text);
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        );
        header.set_cksum();
        tar.append_data(&mut header, format!("{dir}/{name}"), data.as_bytes())?;
    }
    let gz = tar.into_inner()?;
    let mut file = gz.finish()?;
    file.flush()?;
    file.sync_all()
}
