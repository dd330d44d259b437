//! Where the local API listens: its Unix socket, with the permissions that
//! decide who may use it, and the optional TCP listener on loopback; and the
//! loop that serves one router on either.

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

/// A listener [`serve`] takes connections from.
pub trait Accept: Send + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn accept(&mut self) -> impl std::future::Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Accept for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        tokio::net::UnixListener::accept(self).await.map(|(s, _)| s)
    }
}

impl Accept for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&mut self) -> std::io::Result<Self::Io> {
        tokio::net::TcpListener::accept(self).await.map(|(s, _)| s)
    }
}

/// Serves `app` on `listener` until `shutdown`, then stops accepting,
/// lets the requests in flight finish, and returns.
///
/// HTTP/1.1 through hyper's connection builder rather than `axum::serve`, for
/// two settings it does not expose: half-closed connections are answered (a
/// client may shut its sending side down once its request is out), and a
/// request head must arrive within `header_read` (`[api] header_read_timeout_ms`).
pub async fn serve<L: Accept>(
    mut listener: L,
    app: Router,
    header_read: Duration,
    shutdown: CancellationToken,
) {
    let app = TowerToHyperService::new(app);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(stream) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: do not spin.
                    tracing::warn!(error = %e, "the local API cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .half_close(true)
            .header_read_timeout(header_read)
            .serve_connection(TokioIo::new(stream), app.clone());
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "local API connection ended");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The group `[api] socket_group` names, looked up at start-up so that a
/// group that does not exist stops the agent there, not the kiosk
/// application at its first request.
pub fn socket_group(name: &str) -> Result<nix::unistd::Gid, String> {
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(g.gid),
        Ok(None) => Err(format!(
            "api.socket_group: there is no group {name:?} on this machine (create it: groupadd {name}, and add the kiosk application's and technicians' users to it)"
        )),
        Err(e) => Err(format!("api.socket_group: cannot look up group {name:?}: {e}")),
    }
}

/// Creates the API's Unix socket at `path`: mode 0660 and owned by `group`
/// when one is given (the kiosk application and technicians are in it),
/// 0600 otherwise (only the agent's user, and root).
///
/// The socket is bound inside a fresh directory only the agent can enter,
/// given its mode and group there, and only then moved to `path`: bound
/// at `path` directly, it would take connections with the umask's mode
/// until changed, and a connection made then would outlive the change.
pub fn bind_unix(
    path: &Path,
    group: Option<nix::unistd::Gid>,
) -> Result<tokio::net::UnixListener, String> {
    let shown = path.display();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("API socket directory {}: {e}", dir.display()))?;
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!(
                "API socket {shown}: another process answers on it (is the agent already running?)"
            ));
        }
        // Left by a run that crashed: nobody listens on it.
        let _ = std::fs::remove_file(path);
    }
    let private = tempfile::Builder::new()
        .prefix(".api-sock-")
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(dir)
        .map_err(|e| {
            format!("API socket {shown}: cannot make a private directory beside it: {e}")
        })?;
    let staged = private.path().join("s");
    let listener = std::os::unix::net::UnixListener::bind(&staged)
        .map_err(|e| format!("API socket {shown}: {e}"))?;
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("API socket {shown}: cannot set its mode: {e}"))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(&staged, None, Some(gid.as_raw())).map_err(|e| {
            format!(
                "api.socket_group: cannot give the socket {shown} to group {gid}: {e} (the agent's user must be a member of the group)"
            )
        })?;
    }
    std::fs::rename(&staged, path).map_err(|e| format!("API socket {shown}: {e}"))?;
    listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::UnixListener::from_std(listener))
        .map_err(|e| format!("API socket {shown}: {e}"))
}

/// The TCP listener (`[api] tcp_listen`, a loopback address checked when
/// the configuration was read). Port 0 takes a free port; the daemon says
/// which.
pub async fn bind_tcp(addr: SocketAddr) -> Result<tokio::net::TcpListener, String> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("api.tcp_listen {addr}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[tokio::test]
    async fn the_socket_gets_its_mode_and_group_before_it_is_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let gid = nix::unistd::getegid();
        let l = bind_unix(&path, Some(gid)).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o660);
        assert_eq!(meta.gid(), gid.as_raw());
        // Reachable at its final path; the staging directory is gone.
        let accept = tokio::spawn(async move { l.accept().await.map(|_| ()) });
        tokio::net::UnixStream::connect(&path).await.unwrap();
        accept.await.unwrap().unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("api.sock")]);
    }

    #[tokio::test]
    async fn without_a_group_only_the_agents_user_may_connect() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("api.sock");
        let _l = bind_unix(&path, None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        // A second agent on the same socket is refused, not given it.
        let e = bind_unix(&path, None).unwrap_err();
        assert!(e.contains("already running"), "{e}");
    }

    #[test]
    fn a_group_that_does_not_exist_is_named() {
        let e = socket_group("satellite-no-such-group").unwrap_err();
        assert!(
            e.contains("api.socket_group") && e.contains("satellite-no-such-group"),
            "{e}"
        );
    }
}
