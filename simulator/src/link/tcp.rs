//! TCP link: one connection served at a time (the next waits in the backlog),
//! each with its own decoder. During an outage the listener is closed too, so
//! a connect is refused; afterwards it listens again on the same port.

use crate::sim::Simulator;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};

fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // The same port must be reusable right after an outage closed it.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(16)
}

/// Accepts and serves connections one by one until the links go down.
async fn accept_loop(sim: &Simulator, listener: TcpListener) {
    let mut gate = sim.gate();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = gate.wait_for(|up| !*up) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                crate::link::serve_stream(sim.clone(), stream, peer.to_string()).await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

pub(crate) async fn serve(sim: Simulator, addr: SocketAddr) -> io::Result<SocketAddr> {
    let listener = bind(addr)?;
    let local = listener.local_addr()?;
    sim.set_link_path(None, Some(local.to_string()));
    tracing::info!(addr = %local, "tcp listening");
    tokio::spawn(async move {
        let mut listener = Some(listener);
        loop {
            if let Some(l) = listener.take() {
                accept_loop(&sim, l).await;
            }
            let mut gate = sim.gate();
            if gate.wait_for(|up| *up).await.is_err() {
                return;
            }
            match bind(local) {
                Ok(l) => {
                    tracing::info!(addr = %local, "tcp listening again");
                    listener = Some(l);
                }
                Err(e) => {
                    tracing::warn!(error = %e, addr = %local, "cannot listen again yet; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(local)
}
