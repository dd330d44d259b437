//! Pseudo-terminal link: the agent opens the slave path (or a symlink to it)
//! as it would a serial port.
//!
//! The pty is raw (cfmakeraw) so CR is never turned into LF and nothing is
//! echoed. We keep a slave descriptor open ourselves: without one, reads on
//! the master fail with EIO whenever the agent has the port closed, and a
//! master whose slave was never opened reports hang-up. Should EIO happen all
//! the same, it means "no peer": we wait a little and read again, never exit.

use crate::sim::Simulator;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

const NO_PEER_RETRY: Duration = Duration::from_millis(50);

/// The master end of a raw pty, as an async byte stream.
pub struct Pty {
    master: AsyncFd<OwnedFd>,
    _slave: OwnedFd,
    path: PathBuf,
    no_peer: Option<Pin<Box<Sleep>>>,
}

impl Pty {
    /// Opens a raw pty pair; the master is non-blocking.
    pub fn open() -> io::Result<Pty> {
        let pair = nix::pty::openpty(None, None)?;
        let mut t = tcgetattr(&pair.slave)?;
        cfmakeraw(&mut t);
        tcsetattr(&pair.slave, SetArg::TCSANOW, &t)?;
        let path = nix::unistd::ttyname(&pair.slave)?;
        let fd = pair.master.as_raw_fd();
        let flags = OFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFL)?);
        fcntl(fd, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
        // SAFETY: an OwnedFd is a valid open descriptor; the AsyncFd owns it
        // and it stays open, the same description, until the AsyncFd drops it.
        let master = unsafe { AsyncFd::register(pair.master) }.map_err(|e| e.into_parts().1)?;
        Ok(Pty {
            master,
            _slave: pair.slave,
            path,
            no_peer: None,
        })
    }

    /// The slave's path (`/dev/pts/N`).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn is_no_peer(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::EIO)
}

impl AsyncRead for Pty {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if let Some(wait) = this.no_peer.as_mut() {
                ready!(wait.as_mut().poll(cx));
                this.no_peer = None;
            }
            let mut guard = ready!(this.master.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) if n > 0 => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // EOF or EIO on a master: nobody has the slave open. Not an end.
                Ok(Ok(_)) => {
                    guard.clear_ready();
                    this.no_peer = Some(Box::pin(tokio::time::sleep(NO_PEER_RETRY)));
                }
                Ok(Err(e)) if is_no_peer(&e) => {
                    guard.clear_ready();
                    this.no_peer = Some(Box::pin(tokio::time::sleep(NO_PEER_RETRY)));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for Pty {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let mut guard = ready!(this.master.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd.get_ref(), data).map_err(io::Error::from))
            {
                Ok(Ok(n)) => return Poll::Ready(Ok(n)),
                // Nobody to read it: the bytes are lost, as on a serial line.
                Ok(Err(e)) if is_no_peer(&e) => return Poll::Ready(Ok(data.len())),
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Points `link` at `target`, replacing an existing symlink atomically.
/// Anything else already at `link` is left alone and is an error.
pub fn point_link(link: &Path, target: &Path) -> io::Result<()> {
    if let Ok(m) = std::fs::symlink_metadata(link) {
        if !m.file_type().is_symlink() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a symlink", link.display()),
            ));
        }
    }
    let name = link
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "link".into());
    let tmp = link.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)?;
    std::fs::rename(&tmp, link).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Opens a pty (and points the symlink), records its path in the state.
fn open_published(sim: &Simulator, link: Option<&Path>) -> io::Result<(Pty, PathBuf)> {
    let pty = Pty::open()?;
    let shown = match link {
        Some(l) => {
            point_link(l, pty.path())?;
            l.to_path_buf()
        }
        None => pty.path().to_path_buf(),
    };
    tracing::info!(path = %pty.path().display(), link = ?link, "pty ready");
    sim.set_link_path(Some(pty.path().display().to_string()), None);
    Ok((pty, shown))
}

/// Serves the pty until the end of the runtime; after an outage a new pty
/// takes its place behind the same symlink.
pub(crate) async fn serve(sim: Simulator, link: Option<PathBuf>) -> io::Result<PathBuf> {
    let (first, shown) = open_published(&sim, link.as_deref())?;
    tokio::spawn(async move {
        let mut pty = Some(first);
        loop {
            if let Some(p) = pty.take() {
                let name = p.path().display().to_string();
                let target = p.path().to_path_buf();
                crate::link::serve_stream(sim.clone(), p, name).await;
                // The pty is gone: its number may go to another program's
                // pty at once. Take the symlink down with it, so that nobody
                // reaches someone else's device through it (a real adapter
                // that is unplugged disappears from /dev too).
                if let Some(l) = link.as_deref() {
                    if std::fs::read_link(l).is_ok_and(|t| t == target) {
                        let _ = std::fs::remove_file(l);
                    }
                }
                if *sim.gate().borrow() {
                    // Ended without an outage (an I/O error): replace it, but not in a hot loop.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            // Dropped: the master is closed. Wait for the links to come back.
            let mut gate = sim.gate();
            if gate.wait_for(|up| *up).await.is_err() {
                return;
            }
            match open_published(&sim, link.as_deref()) {
                Ok((p, _)) => pty = Some(p),
                Err(e) => {
                    tracing::error!(error = %e, "cannot open a new pty; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(shown)
}
