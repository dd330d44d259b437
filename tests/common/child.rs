//! The daemon binary (`satellite run`) as a child process of the test, on a
//! configuration file of the test's own, against the simulator and the
//! upstream stub running in the test process. Tests that kill it, restart it
//! on the same store or change its environment (its clock) use this; what
//! the stub and the simulator record outlives every child.

use super::upstream as up;
use printer_sim::upstream::StubHandle;
use satellite::store::{Status, Store};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};

/// How long a start may take before the API socket answers (a busy machine,
/// a store to recover).
const START_WITHIN: Duration = Duration::from_secs(20);

/// Writes `dir/satellite.toml`: the daemon's base ([`super::daemon_toml`]:
/// the simulator's pseudo-terminal `link`, the store and the API socket in
/// `dir`) followed by `upstream` (the `[upstream]` tables).
pub fn write_config(dir: &Path, link: &Path, upstream: &str) -> PathBuf {
    let config = dir.join("satellite.toml");
    std::fs::write(&config, super::daemon_toml(up::KIOSK, link, dir) + upstream).unwrap();
    config
}

/// One `[[upstream.webhook]]` table: the stub's webhook receiver under
/// `name`, with the secret the stub checks (written to a file in `dir`).
pub fn webhook_sink(dir: &Path, stub: &StubHandle, name: &str) -> String {
    let secret = up::secret(dir, &format!("{name}.secret"), up::WEBHOOK_SECRET);
    format!(
        r#"
[[upstream.webhook]]
name = "{name}"
url = "{url}"
secret_file = "{secret}"
timeout_ms = 5000
"#,
        url = stub.webhook_url(),
        secret = secret.display(),
    )
}

/// `satellite run --config config`, returned once its API socket (`socket`,
/// removed first: a killed daemon leaves it) accepts a connection. The
/// child is killed when dropped.
pub async fn start(config: &Path, socket: &Path) -> Child {
    start_with(config, socket, |_| {}).await
}

/// [`start`], with the command adjusted first by `adjust` (its environment,
/// where its stderr goes).
pub async fn start_with(config: &Path, socket: &Path, adjust: impl FnOnce(&mut Command)) -> Child {
    let _ = std::fs::remove_file(socket);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_satellite"));
    cmd.args(["run", "--config"]).arg(config).kill_on_drop(true);
    adjust(&mut cmd);
    let mut child = cmd.spawn().unwrap();
    let began = std::time::Instant::now();
    while began.elapsed() < START_WITHIN {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            return child;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the daemon exited before opening its socket: {status}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the daemon did not open its socket within {START_WITHIN:?}");
}

/// A card's status changes as the store has them: (event id, sequence,
/// status), each event whose status differs from the one before it (what
/// every sink must receive, in this order).
pub fn status_changes(store: &Store, token: &str) -> Vec<(String, i64, String)> {
    let mut out = Vec::new();
    let mut previous: Option<Status> = None;
    for e in store.events(token).unwrap() {
        if previous != Some(e.status) {
            out.push((e.id.clone(), e.seq, e.status.as_str().to_string()));
        }
        previous = Some(e.status);
    }
    out
}
