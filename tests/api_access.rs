//! Who may use the local API. The Unix socket: mode 0660 and the configured
//! group (`[api] socket_group`), 0600 without one; a group that does not
//! exist stops the agent at start-up. The TCP listener: loopback only (a
//! configuration naming another address is refused when it is read), and
//! every request with the bearer token of a 0600 file: missing or wrong is
//! 401 with `WWW-Authenticate: Bearer`, right is served; the Unix socket
//! needs no token. The daemon runs with its real store and the simulator
//! over a pseudo-terminal.

mod common;

use common::http::{send, Over};
use common::kiosk;
use satellite::config::Config;
use satellite::daemon::Daemon;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

const TOKEN: &str = "YWNjZXNzLXRlc3QtdG9rZW4tb2YtYXQtbGVhc3QtMzItY2hhcnM";

/// The name of this process's primary group: a group the agent's user is
/// in, as `socket_group` must be.
fn own_group() -> (String, u32) {
    let gid = nix::unistd::getegid();
    let g = nix::unistd::Group::from_gid(gid)
        .unwrap()
        .expect("the test's group has a name");
    (g.name, gid.as_raw())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_socket_is_the_groups_when_one_is_named_and_the_users_otherwise() {
    let (name, gid) = own_group();
    let k = kiosk::start(|_| {}, |_, c| c.api.socket_group = Some(name.clone())).await;
    let meta = std::fs::metadata(&k.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o660, "mode {:o}", meta.mode());
    assert_eq!(meta.gid(), gid);
    // Served there without any token.
    let a = k.client.get("/v1/status").await.unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
    k.daemon.stop().await;

    let k = kiosk::start(|_| {}, |_, _| {}).await;
    let meta = std::fs::metadata(&k.socket).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o600, "mode {:o}", meta.mode());
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_does_not_exist_stops_the_agent_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    satellite::store::Keys::generate(&dir.path().join("card.key")).unwrap();
    let mut c = Config::local(dir.path(), "KIOSK01");
    c.api.socket_group = Some("satellite-test-no-such-group".into());
    let e = Daemon::start(c, None).await.err().expect("refused");
    assert!(
        e.contains("api.socket_group") && e.contains("no group \"satellite-test-no-such-group\""),
        "{e}"
    );
    assert!(!dir.path().join("api.sock").exists());
}

/// A kiosk on the bundled simulator (over a pseudo-terminal) with the TCP
/// listener, its token in a file of `token_mode`.
struct TcpKiosk {
    daemon: Daemon,
    client: satellite::api::client::Client,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

async fn tcp_kiosk(token_mode: u32, token: &str) -> Result<TcpKiosk, String> {
    let secrets = tempfile::tempdir().unwrap();
    let file = secrets.path().join("api.token");
    std::fs::write(&file, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(token_mode)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    satellite::store::Keys::generate(&dir.path().join("card.key")).unwrap();
    let mut c = Config::local(dir.path(), "KIOSK01");
    c.api.tcp_listen = Some("127.0.0.1:0".into());
    c.api.token_file = Some(file);
    let daemon = Daemon::start(c, None).await?;
    Ok(TcpKiosk {
        daemon,
        client: satellite::api::client::Client::new(&dir.path().join("api.sock")),
        _dirs: (secrets, dir),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_only_the_bearer_token_is_served() {
    let k = tcp_kiosk(0o600, TOKEN).await.unwrap();
    let tcp = Over::Tcp(k.daemon.tcp_addr().expect("a TCP listener"));
    assert!(k.daemon.tcp_addr().unwrap().ip().is_loopback());
    for (auth, why) in [
        (None, "no header"),
        (Some("Bearer wrong-token".to_string()), "a wrong token"),
        (Some(format!("Bearer {TOKEN}x")), "the token and more"),
        (Some(format!("Bearer {}", &TOKEN[1..])), "part of the token"),
        (Some(format!("Basic {TOKEN}")), "another scheme"),
        (Some(TOKEN.to_string()), "no scheme"),
    ] {
        for (method, path) in [
            ("GET", "/v1/status"),
            ("GET", "/v1/openapi.yaml"),
            ("POST", "/v1/cards"),
            ("GET", "/v1/nothing"),
        ] {
            let headers: Vec<(&str, &str)> =
                auth.iter().map(|a| ("authorization", a.as_str())).collect();
            let x = send(&tcp, method, path, &headers, b"{}").await;
            assert_eq!(x.status, 401, "{why}: {method} {path}");
            let challenge = x.header("www-authenticate").unwrap_or("");
            assert!(challenge.starts_with("Bearer"), "{why}: {challenge:?}");
            let e = x.json();
            assert_eq!(e["error"]["code"], "UNAUTHORIZED", "{why}: {e}");
            assert!(!String::from_utf8_lossy(&x.body).contains(TOKEN), "{why}");
        }
    }
    // The right token, the scheme in any case.
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let auth = format!("{scheme} {TOKEN}");
        let x = send(&tcp, "GET", "/v1/status", &[("authorization", &auth)], b"").await;
        assert_eq!(x.status, 200, "{scheme}");
        assert_eq!(x.json()["kioskId"], "KIOSK01");
    }
    // Nothing submitted without the token was recorded.
    let a = k.client.get("/v1/inventory").await.unwrap();
    assert_eq!(a.status, 200, "the Unix socket needs no token: {}", a.body);
    k.daemon.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_or_weak_token_stops_the_agent_without_showing_it() {
    let e = tcp_kiosk(0o644, TOKEN)
        .await
        .err()
        .expect("an open file is refused");
    assert!(e.contains("api token") && e.contains("chmod 600"), "{e}");
    assert!(!e.contains(TOKEN), "{e}");
    let weak = "short-token";
    let e = tcp_kiosk(0o600, weak)
        .await
        .err()
        .expect("a short token is refused");
    assert!(e.contains("at least 32"), "{e}");
    assert!(!e.contains(weak), "{e}");
}

#[test]
fn a_tcp_listener_off_loopback_is_refused_when_the_configuration_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("satellite.toml");
    let text = format!(
        r#"
kiosk_id = "KIOSK01"
[printer]
device = "/dev/null"
model = "evolis-km500b"
[store]
path = "{db}"
key_file = "{key}"
[api]
socket = "{socket}"
tcp_listen = "0.0.0.0:7070"
token_file = "{token}"
"#,
        db = dir.path().join("satellite.db").display(),
        key = dir.path().join("card.key").display(),
        socket = dir.path().join("api.sock").display(),
        token = dir.path().join("api.token").display(),
    );
    std::fs::write(&config, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_satellite"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("api.tcp_listen") && err.contains("0.0.0.0 is not a loopback address"),
        "{err}"
    );
    assert!(!dir.path().join("api.sock").exists());
}
