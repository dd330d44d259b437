//! Starting and stopping a stub in process.

use super::config::StubConfig;
use super::control::Control;
use super::jwt::AssertionKey;
use super::record::Log;
use super::routes::prefix;
use super::state::Shared;
use super::{control_http, listener, routes, tls};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The reference central base (plus the issuer's webhook receiver and D1).
pub struct Stub;

/// A running stub. Dropping it stops it too; [`StubHandle::shutdown`] also
/// waits for its tasks.
pub struct StubHandle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    control_addr: Option<SocketAddr>,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Stub {
    /// Binds the listeners (port 0 picks free ones) and serves them.
    pub async fn start(cfg: StubConfig) -> io::Result<StubHandle> {
        let jwt_key = match &cfg.client_jwt_key_pem {
            Some(pem) => Some(
                AssertionKey::from_pem(pem)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        let acceptor = match &cfg.tls {
            Some(t) => Some(tokio_rustls::TlsAcceptor::from(tls::server_config(t)?)),
            None => None,
        };
        let log = Log::open(cfg.record.as_deref())?;
        let upstream = listener::bind(cfg.listen)?;
        let addr = upstream.local_addr()?;
        let control_listener = match cfg.control_listen {
            Some(a) => Some(tokio::net::TcpListener::bind(a).await?),
            None => None,
        };
        let shared = Arc::new(Shared::new(cfg, jwt_key, log));
        let _ = shared.addr.set(addr);
        shared.bound.send_replace(true);
        let stop = CancellationToken::new();
        let mut tasks = vec![tokio::spawn(listener::run(
            shared.clone(),
            upstream,
            routes::upstream(shared.clone()),
            acceptor,
            stop.clone(),
        ))];
        let control = Control {
            shared: shared.clone(),
        };
        let mut control_addr = None;
        if let Some(l) = control_listener {
            control_addr = Some(l.local_addr()?);
            let app = control_http::router(control);
            let stop = stop.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(l, app)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await;
            }));
        }
        Ok(StubHandle {
            shared,
            addr,
            control_addr,
            stop,
            tasks,
        })
    }
}

impl StubHandle {
    /// The upstream listener's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The control listener's address, when one was asked for.
    pub fn control_addr(&self) -> Option<SocketAddr> {
        self.control_addr
    }

    /// `http(s)://IP:PORT` of the upstream listener (loopback when it
    /// listens on every address).
    pub fn origin(&self) -> String {
        let ip = match self.addr.ip() {
            IpAddr::V4(v) if v.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(v) if v.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!(
            "{}://{}",
            self.shared.scheme(),
            SocketAddr::new(ip, self.addr.port())
        )
    }

    /// The central base's base URL, e.g. `http://127.0.0.1:PORT/cb/v1`.
    pub fn base_url(&self) -> String {
        format!("{}{}", self.origin(), prefix(&self.shared.cfg.base_path))
    }

    /// The central base's token endpoint, `{origin}/oauth/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth/token", self.origin())
    }

    /// The issuer webhook receiver, `{origin}/webhook`.
    pub fn webhook_url(&self) -> String {
        format!("{}/webhook", self.origin())
    }

    /// D1's root, `{origin}/d1` (token at `/oauth2/token`, API under
    /// `/banking/v1`).
    pub fn d1_url(&self) -> String {
        format!("{}{}", self.origin(), prefix(&self.shared.cfg.d1_prefix))
    }

    pub fn control(&self) -> Control {
        Control {
            shared: self.shared.clone(),
        }
    }

    /// Stops the listeners and waits for their tasks.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for StubHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
