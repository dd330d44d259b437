//! Start-up refuses a configuration that would fail later on a customer's
//! card, with a message that names what to fix; and starts, with a warning,
//! with no card type at all.

use satellite::config::Config;
use satellite::daemon::Daemon;
use satellite::printer::Endpoint;
use satellite::request::TextPosition;
use satellite::store::Keys;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// A configuration in `dir` (the key generated); the printer is a path
/// nobody serves: every refusal tested comes before the printer is opened.
fn setup(dir: &Path) -> Config {
    Keys::generate(&dir.join("card.key")).unwrap();
    Config::local(dir, "KIOSK01")
}

async fn refusal(config: Config) -> String {
    match Daemon::start(
        config,
        Some(Endpoint::Serial(PathBuf::from("/nonexistent/tty"))),
    )
    .await
    {
        Ok(d) => {
            d.stop().await;
            panic!("the daemon started");
        }
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_type_layout_off_the_card_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = setup(dir.path());
    let mut wide = c.card_types[0].clone();
    wide.id = "wide-logo".into();
    wide.layout.slots.insert(
        "logo".into(),
        TextPosition {
            x: 40,
            y: 630,
            height: 30,
            font: 0,
        },
    );
    c.card_types.push(wide);
    let e = refusal(c).await;
    eprintln!("{e}");
    for needle in ["wide-logo", "logo", "does not fit", "evolis-km500b"] {
        assert!(e.contains(needle), "{needle}: {e}");
    }
    assert!(!dir.path().join("satellite.db").exists(), "nothing opened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_store_directory_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = setup(dir.path());
    let missing = dir.path().join("state").join("satellite");
    c.store.path = missing.join("satellite.db");
    let e = refusal(c).await;
    assert!(e.contains(&missing.display().to_string()), "{e}");
    assert!(e.contains("does not exist"), "{e}");
    assert!(!missing.exists(), "the agent created {}", missing.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_path_that_is_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = setup(dir.path());
    std::fs::write(dir.path().join("plain"), b"").unwrap();
    c.store.path = dir.path().join("plain").join("satellite.db");
    let e = refusal(c).await;
    assert!(e.contains("not a directory"), "{e}");
}

/// `satellite run` with `config` (a TOML text): its exit status and stderr,
/// once it exits by itself or, when it opens `socket`, after SIGTERM.
async fn run(dir: &Path, config: &str, socket: &Path) -> (bool, Option<i32>, String) {
    let file = dir.join("satellite.toml");
    std::fs::write(&file, config).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_satellite"))
        .args(["run", "--config"])
        .arg(&file)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut started = false;
    for _ in 0..1000 {
        if tokio::net::UnixStream::connect(socket).await.is_ok() {
            started = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    if started {
        let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }
    let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("satellite run ends")
        .unwrap();
    (
        started,
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn config_text(dir: &Path, store: &str, card_types: &str) -> String {
    format!(
        r#"
kiosk_id = "KIOSK01"
[printer]
device = "sim"
model = "evolis-km500b"
[chip]
enabled = false
[store]
path = "{db}"
key_file = "{key}"
{store}
[api]
socket = "{sock}"
{card_types}
"#,
        db = dir.join("s.db").display(),
        key = dir.join("card.key").display(),
        sock = dir.join("api.sock").display(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satellite_run_refuses_both_key_sources_and_names_them() {
    let dir = tempfile::tempdir().unwrap();
    Keys::generate(&dir.path().join("card.key")).unwrap();
    let text = config_text(
        dir.path(),
        "key_credential = \"satellite-card-key\"",
        "[[card_type]]\nid = \"debit\"\nmagnetic = true\n",
    );
    let (started, code, stderr) = run(dir.path(), &text, &dir.path().join("api.sock")).await;
    assert!(!started, "{stderr}");
    assert_ne!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("set one of key_file or key_credential, not both"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn satellite_run_without_card_types_warns_and_starts() {
    let dir = tempfile::tempdir().unwrap();
    Keys::generate(&dir.path().join("card.key")).unwrap();
    let text = config_text(dir.path(), "", "");
    let (started, code, stderr) = run(dir.path(), &text, &dir.path().join("api.sock")).await;
    assert!(started, "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
    let warning = stderr
        .lines()
        .find(|l| l.contains("no [[card_type]]"))
        .unwrap_or_else(|| panic!("no warning: {stderr}"));
    assert!(warning.contains("WARN"), "{warning}");
}
