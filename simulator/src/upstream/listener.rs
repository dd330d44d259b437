//! The upstream listener's accept loop. It is hand-written rather than
//! `axum::serve` for two reasons: TLS (optionally mutual) in front of each
//! connection, and the `down` fault, which must close the listening socket
//! (clients see "connection refused"), cut open connections, and later
//! re-bind the very same port.

use super::state::Shared;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

/// Binds with `SO_REUSEADDR`, so a re-bind after "down" is not refused by
/// connections of the previous life lingering in TIME_WAIT.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

async fn rebind(addr: SocketAddr, shutdown: &CancellationToken) -> Option<TcpListener> {
    loop {
        match bind(addr) {
            Ok(l) => return Some(l),
            Err(e) => {
                tracing::warn!("upstream stub: re-binding {addr}: {e}; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

pub async fn run(
    shared: Arc<Shared>,
    mut listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    let mut down = shared.down.subscribe();
    loop {
        // Up: accept until told down or shut down.
        let life = shutdown.child_token();
        shared.bound.send_replace(true);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = down.wait_for(|d| *d) => break,
                accepted = listener.accept() => {
                    if let Ok((sock, _)) = accepted {
                        let _ = sock.set_nodelay(true);
                        tokio::spawn(connection(sock, router.clone(), tls.clone(), life.clone()));
                    }
                }
            }
        }
        // Down: no listening socket, no open connection.
        life.cancel();
        drop(listener);
        shared.bound.send_replace(false);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = down.wait_for(|d| !*d) => {}
        }
        listener = match rebind(addr, &shutdown).await {
            Some(l) => l,
            None => return,
        };
    }
}

async fn connection(
    sock: tokio::net::TcpStream,
    router: Router,
    tls: Option<TlsAcceptor>,
    life: CancellationToken,
) {
    let serve = async move {
        match tls {
            // A failed handshake (no or bad client certificate under mutual
            // TLS) just closes the connection.
            Some(acceptor) => {
                if let Ok(stream) = acceptor.accept(sock).await {
                    serve(stream, router).await;
                }
            }
            None => serve(sock, router).await,
        }
    };
    tokio::select! {
        _ = serve => {}
        _ = life.cancelled() => {}
    }
}

async fn serve<S>(stream: S, router: Router)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
