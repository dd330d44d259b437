//! Reaching the running agent: its local API socket (the one the
//! configuration names, unless given), and errors that say what to do.

use super::output::exit;
use crate::api::client::{Answer, Client};
use std::path::{Path, PathBuf};

pub const DEFAULT_SOCKET: &str = "/run/satellite/api.sock";
pub const DEFAULT_CONFIG: &str = "/etc/satellite/satellite.toml";

/// A failure of a technician's command: what went wrong, the next step, and
/// the exit status.
#[derive(Debug, Clone)]
pub struct CliError {
    pub message: String,
    pub next: String,
    pub exit: u8,
}

impl CliError {
    pub fn new(exit: u8, message: impl Into<String>, next: impl Into<String>) -> CliError {
        CliError {
            message: message.into(),
            next: next.into(),
            exit,
        }
    }
}

/// The socket: `--socket`, else the configuration's `[api] socket`, else
/// the packaged default.
pub fn socket(given: Option<&Path>, config: &Path) -> PathBuf {
    if let Some(s) = given {
        return s.to_path_buf();
    }
    std::fs::read_to_string(config)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("api")?.get("socket")?.as_str().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// The agent's API at `socket`.
pub struct Agent {
    pub socket: PathBuf,
    client: Client,
}

impl Agent {
    pub fn new(socket: PathBuf) -> Agent {
        Agent {
            client: Client::new(&socket),
            socket,
        }
    }

    /// Calls the API; a JSON error answer becomes a [`CliError`] naming its
    /// code and message.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
    ) -> Result<Answer, CliError> {
        let a = self
            .client
            .call(method, path, body)
            .await
            .map_err(|e| unreachable(&self.socket, &e))?;
        if (200..300).contains(&a.status) {
            return Ok(a);
        }
        let code = a.body["error"]["code"].as_str().unwrap_or("UNKNOWN_ERROR");
        let message = a.body["error"]["message"]
            .as_str()
            .unwrap_or("the agent refused without saying why");
        let (status, next) = match a.status {
            404 => (
                exit::FAIL,
                "check the name or token (`satellite jobs list`, `satellite outbox list`)",
            ),
            409 => (
                exit::BUSY,
                "wait until the agent is idle (`satellite status`), then try again",
            ),
            503 => (
                exit::UNAVAILABLE,
                "check the printer link (`satellite status`, `satellite doctor`)",
            ),
            _ => (exit::FAIL, ""),
        };
        Err(CliError::new(status, format!("{code}: {message}"), next))
    }

    pub async fn get(&self, path: &str) -> Result<serde_json::Value, CliError> {
        Ok(self.call("GET", path, None).await?.body)
    }

    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, CliError> {
        let bytes = body.to_string();
        Ok(self.call("POST", path, Some(bytes.as_bytes())).await?.body)
    }
}

fn unreachable(socket: &Path, e: &str) -> CliError {
    CliError::new(
        exit::UNAVAILABLE,
        format!("the agent does not answer at {}: {e}", socket.display()),
        "is it running? `systemctl status satellite`; with another socket use --socket; \
         to talk to the printer without the agent, stop it and use --direct",
    )
}
