//! `upstream-stub`: the reference central base as a process, for demos and
//! tests in other languages. A thin shell over `printer_sim::upstream`; the
//! control listener (`--control`) exposes its control API as JSON.

use clap::Parser;
use printer_sim::upstream::{Stub, StubConfig, TlsConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Parser)]
#[command(
    version,
    about = "Reference central base for the satellite agent (test double)"
)]
struct Args {
    /// Upstream listener (central base, /webhook, D1); port 0 picks one.
    #[arg(long, default_value = "127.0.0.1:8443")]
    listen: SocketAddr,
    /// Control listener (plain HTTP, JSON, /_stub/...).
    #[arg(long)]
    control: Option<SocketAddr>,
    /// Server certificate chain (PEM); with --tls-key, serves TLS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require client certificates issued by this CA (mutual TLS).
    #[arg(long, requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// OAuth client id the agent authenticates as.
    #[arg(long, default_value = "satellite")]
    client_id: String,
    /// File holding the client secret (trailing newline ignored). Without
    /// it and without --client-jwt-key the secret is `stub-secret`.
    #[arg(long)]
    client_secret_file: Option<PathBuf>,
    /// PEM public key (EC P-256 or RSA) checking JWT client assertions.
    #[arg(long)]
    client_jwt_key: Option<PathBuf>,
    /// Lifetime of access tokens, seconds.
    #[arg(long, default_value_t = 300)]
    token_ttl_s: u64,
    /// The kiosk this central base serves.
    #[arg(long, default_value = "WIS00001")]
    kiosk_id: String,
    /// Append every received call to this file as JSON lines.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Standard Webhooks secret `whsec_...`; repeat for a rotation.
    #[arg(long = "webhook-secret")]
    webhook_secrets: Vec<String>,
    /// D1 issuer id accepted in track-card paths.
    #[arg(long, default_value = "ISSUER1")]
    d1_issuer_id: String,
    /// Central-base path prefix.
    #[arg(long, default_value = "/cb/v1")]
    base_path: String,
    /// D1 path prefix.
    #[arg(long, default_value = "/d1")]
    d1_prefix: String,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

fn config(a: Args) -> Result<StubConfig, String> {
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some(TlsConfig {
            cert_chain_pem: read(c)?,
            key_pem: read(k)?,
            client_ca_pem: a.client_ca.as_deref().map(read).transpose()?,
        }),
        _ => None,
    };
    let client_jwt_key_pem = a.client_jwt_key.as_deref().map(read).transpose()?;
    let client_secret = match &a.client_secret_file {
        Some(p) => Some(read(p)?.trim_end_matches(['\r', '\n']).to_owned()),
        None if client_jwt_key_pem.is_some() => None,
        None => Some(StubConfig::default().client_secret.unwrap_or_default()),
    };
    for s in &a.webhook_secrets {
        if !s.starts_with("whsec_") {
            return Err(format!(
                "--webhook-secret must start with whsec_: {s:.6}..."
            ));
        }
    }
    Ok(StubConfig {
        listen: a.listen,
        control_listen: a.control,
        base_path: a.base_path,
        d1_prefix: a.d1_prefix,
        kiosk_id: a.kiosk_id,
        client_id: a.client_id,
        client_secret,
        client_jwt_key_pem,
        token_ttl: Duration::from_secs(a.token_ttl_s),
        tls,
        record: a.record,
        webhook_secrets: a.webhook_secrets,
        d1_issuer_id: a.d1_issuer_id,
        ..StubConfig::default()
    })
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cfg = match config(Args::parse()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("upstream-stub: {e}");
            std::process::exit(2);
        }
    };
    let stub = match Stub::start(cfg).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("upstream-stub: {e}");
            std::process::exit(1);
        }
    };
    // One line a wrapper script can read for the bound ports.
    println!(
        "{}",
        serde_json::json!({
            "upstream": stub.origin(),
            "baseUrl": stub.base_url(),
            "tokenUrl": stub.token_url(),
            "webhookUrl": stub.webhook_url(),
            "d1Url": stub.d1_url(),
            "control": stub.control_addr().map(|a| format!("http://{a}")),
        })
    );
    // Stop on Ctrl-C or SIGTERM (a wrapper script's `kill`).
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    stub.shutdown().await;
}
