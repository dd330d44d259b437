//! Transports: one byte link to the printer, whatever carries it.
//!
//! * serial (`serial:///dev/ttyS0`, or a bare device path): the `serialport` crate
//!   sets the line up (baud, parity, stop bits, flow control) and opens it
//!   exclusively; the descriptor is then driven non-blocking through tokio.
//! * USB printer class (`usb:///dev/usb/lp0`, or a path under `/dev/usb/`): a byte
//!   stream, with the field quirk of reopening the node between a write and the
//!   read of its reply as a profile option.
//! * TCP (`tcp://host:port`) for networked printers.
//! * in-process: any `AsyncRead + AsyncWrite` (the simulator's duplex stream) for tests.
//!
//! The codec sits above this: a link only moves bytes. Besides waiting for
//! bytes, a link can say what its descriptor holds right now without asking
//! the reactor ([`Link::read_now`]): after a freeze (SIGSTOP, a VM pause)
//! `epoll_wait` returns EINTR without events, so the time-out's timer can
//! fire before tokio learns that the answer came meanwhile.

use super::profile::{FlowControl, LinkDefaults, Parity};
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};

/// Where the printer is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Serial(PathBuf),
    Usb(PathBuf),
    Tcp(String),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Serial(p) => write!(f, "serial://{}", p.display()),
            Endpoint::Usb(p) => write!(f, "usb://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "tcp://{a}"),
        }
    }
}

impl std::str::FromStr for Endpoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            let ok = rest
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(format!("{s:?}: a TCP printer is tcp://host:port"));
            }
            return Ok(Endpoint::Tcp(rest.to_string()));
        }
        if let Some(rest) = s.strip_prefix("serial://") {
            return path_of(rest, s).map(Endpoint::Serial);
        }
        if let Some(rest) = s.strip_prefix("usb://") {
            return path_of(rest, s).map(Endpoint::Usb);
        }
        if s.contains("://") {
            return Err(format!(
                "{s:?}: the printer is serial://PATH, usb://PATH or tcp://HOST:PORT"
            ));
        }
        let path = path_of(s, s)?;
        if path.starts_with("/dev/usb/") {
            Ok(Endpoint::Usb(path))
        } else {
            Ok(Endpoint::Serial(path))
        }
    }
}

fn path_of(p: &str, whole: &str) -> Result<PathBuf, String> {
    if p.starts_with('/') {
        Ok(PathBuf::from(p))
    } else {
        Err(format!(
            "{whole:?}: a device is an absolute path such as /dev/ttyS0 or /dev/usb/lp0"
        ))
    }
}

/// Serial settings: the profile's defaults, each overridable by configuration.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct SerialSettings {
    pub baud: u32,
    pub parity: Parity,
    pub stop_bits: u8,
    pub data_bits: u8,
    pub flow_control: FlowControl,
}

impl SerialSettings {
    pub fn from_profile(l: &LinkDefaults) -> Self {
        SerialSettings {
            baud: l.baud,
            parity: l.parity,
            stop_bits: l.stop_bits,
            data_bits: l.data_bits,
            flow_control: l.flow_control,
        }
    }
}

/// Anything that moves bytes both ways.
pub trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// A stream on a descriptor of its own (a serial line, a TCP socket), which
/// can be read without waiting and without the reactor.
pub trait FdBacked: Stream + AsRawFd {}
impl<T: Stream + AsRawFd> FdBacked for T {}

/// An open link.
pub enum Link {
    /// A serial line or a TCP socket.
    Fd(Box<dyn FdBacked>),
    /// In-process (tests): no descriptor.
    Stream(Box<dyn Stream>),
    Usb(UsbLink),
}

impl fmt::Debug for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Fd(s) => write!(f, "Link::Fd({})", s.as_raw_fd()),
            Link::Stream(_) => f.write_str("Link::Stream"),
            Link::Usb(u) => write!(f, "Link::Usb({})", u.path.display()),
        }
    }
}

impl Link {
    pub async fn open(
        endpoint: &Endpoint,
        serial: &SerialSettings,
        usb_reopen: bool,
    ) -> io::Result<Link> {
        match endpoint {
            Endpoint::Tcp(addr) => {
                let s = tokio::net::TcpStream::connect(addr).await?;
                s.set_nodelay(true)?;
                Ok(Link::Fd(Box::new(s)))
            }
            Endpoint::Serial(path) => Ok(Link::Fd(Box::new(open_serial(path, serial)?))),
            Endpoint::Usb(path) => Ok(Link::Usb(UsbLink::open(path.clone(), usb_reopen)?)),
        }
    }

    /// Wraps an in-process stream (the simulator's, in tests).
    pub fn from_stream(s: impl Stream + 'static) -> Link {
        Link::Stream(Box::new(s))
    }

    /// Wraps a stream on a descriptor of its own (in-process tests of
    /// what only a descriptor shows).
    pub fn from_descriptor(s: impl FdBacked + 'static) -> Link {
        Link::Fd(Box::new(s))
    }

    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Link::Fd(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Link::Stream(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Link::Usb(u) => u.send(bytes).await,
        }
    }

    /// Reads what is there (at least one byte); `Ok(0)` is the end of the link.
    pub async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Link::Fd(s) => s.read(buf).await,
            Link::Stream(s) => s.read(buf).await,
            Link::Usb(u) => u.recv(buf).await,
        }
    }

    /// Reads what the line holds right now, without waiting: `None` when
    /// nothing is there, `Some(0)` at the end of the link. A descriptor is
    /// read directly: the reactor may not know yet that bytes came (after a
    /// freeze, see the module's documentation). An in-process stream is
    /// polled once.
    pub fn read_now(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self {
            Link::Fd(s) => read_descriptor_now(s.as_raw_fd(), buf),
            Link::Usb(u) => match &u.node {
                Some(n) => read_descriptor_now(n.as_raw_fd(), buf),
                // Reopened for the next read: nothing read on it yet.
                None => Ok(None),
            },
            Link::Stream(s) => futures::FutureExt::now_or_never(s.read(buf)).transpose(),
        }
    }
}

/// One non-blocking `read(2)` on a descriptor the link owns (set
/// non-blocking by tokio or [`FdStream::new`]). Reading behind the
/// reactor's back is harmless: a readiness it reports later for these bytes
/// ends in `EAGAIN`, which clears it.
fn read_descriptor_now(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    use nix::errno::Errno;
    loop {
        match nix::unistd::read(fd, buf) {
            Ok(n) => return Ok(Some(n)),
            Err(Errno::EAGAIN) => return Ok(None),
            Err(Errno::EINTR) => continue,
            // A tty whose other end went away: the end of the link.
            Err(Errno::EIO) => return Ok(Some(0)),
            Err(e) => return Err(e.into()),
        }
    }
}

fn open_serial(path: &std::path::Path, s: &SerialSettings) -> io::Result<FdStream> {
    use serialport::{DataBits, FlowControl as F, Parity as P, StopBits};
    let data_bits = match s.data_bits {
        5 => DataBits::Five,
        6 => DataBits::Six,
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    };
    let port = serialport::new(path.to_string_lossy(), s.baud)
        .data_bits(data_bits)
        .parity(match s.parity {
            Parity::None => P::None,
            Parity::Odd => P::Odd,
            Parity::Even => P::Even,
        })
        .stop_bits(if s.stop_bits == 2 {
            StopBits::Two
        } else {
            StopBits::One
        })
        .flow_control(match s.flow_control {
            FlowControl::None => F::None,
            FlowControl::Software => F::Software,
            FlowControl::Hardware => F::Hardware,
        })
        .open_native()
        .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
    // `open_native` has set TIOCEXCL: nobody else may open the line while we
    // hold it. The line is set up; from here on it is a plain descriptor. A
    // duplicate is taken and the port dropped (which only closes its own
    // descriptor): `TTYPort::into_raw_fd` would leak the port's name on every
    // open, and a silent printer means an open every reconnection attempt.
    // Exclusive mode belongs to the terminal, not to a descriptor, so it stays
    // while the duplicate keeps the line open.
    use nix::fcntl::{fcntl, FcntlArg};
    let fd = fcntl(port.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(0)).map_err(io::Error::from)?;
    drop(port);
    // SAFETY: `F_DUPFD_CLOEXEC` returned a new descriptor that nothing else owns or will
    // close, so the `OwnedFd` becomes its only owner.
    FdStream::new(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A non-blocking descriptor driven by tokio's reactor.
///
/// Sound as a safe API because it only takes an [`OwnedFd`]: the descriptor
/// is open (an `OwnedFd` invariant), owned by this stream alone, never handed
/// out (no accessor gives the `OwnedFd` or a `&mut` to it back) and closed
/// only when the stream is dropped, after tokio has deregistered it. So it is
/// the same open file description for the whole life of the `AsyncFd`, which
/// is what `AsyncFd::register` requires; no borrowed or raw descriptor (whose
/// number could be closed and reused behind the reactor's back) can get in.
///
/// The descriptor is registered for reading only. A terminal reports
/// "writable" again each time its output drains, which woke the idle agent
/// once more per command for nothing (`satellite bench --idle`). Writes go
/// straight to the descriptor; only one that would block registers a
/// duplicate for write readiness, kept until a write goes through without
/// waiting.
pub struct FdStream {
    inner: AsyncFd<OwnedFd>,
    /// A duplicate registered for write readiness while writes block.
    writer: Option<AsyncFd<OwnedFd>>,
}

impl FdStream {
    /// Sets `fd` non-blocking and registers it with tokio's reactor (must run
    /// inside a tokio runtime). The flag is on the open file description:
    /// pass a descriptor this program opened for the purpose, not a duplicate
    /// of one that others use blocking.
    pub fn new(fd: OwnedFd) -> io::Result<Self> {
        set_nonblocking(fd.as_raw_fd())?;
        // SAFETY: an `OwnedFd` is open and stays open, with the same number
        // and file description, until it is dropped; the `AsyncFd` owns it
        // from here and drops it last (see the type's documentation).
        let inner = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(FdStream {
            inner,
            writer: None,
        })
    }

    /// A duplicate of the descriptor (same open file description, so the
    /// same readiness), registered for write readiness.
    fn register_writer(&self) -> io::Result<AsyncFd<OwnedFd>> {
        use nix::fcntl::{fcntl, FcntlArg};
        let fd =
            fcntl(self.inner.as_raw_fd(), FcntlArg::F_DUPFD_CLOEXEC(0)).map_err(io::Error::from)?;
        // SAFETY: `F_DUPFD_CLOEXEC` returned a new descriptor that nothing
        // else owns; the `OwnedFd` is its only owner and the `AsyncFd` holds
        // it until dropped (as for `inner`).
        let dup = unsafe { OwnedFd::from_raw_fd(fd) };
        unsafe { AsyncFd::register_with_interest(dup, Interest::WRITABLE) }
            .map_err(|e| e.into_parts().1)
    }
}

impl AsRawFd for FdStream {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = fcntl(fd, FcntlArg::F_GETFL).map_err(io::Error::from)?;
    fcntl(
        fd,
        FcntlArg::F_SETFL(OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK),
    )
    .map_err(io::Error::from)?;
    Ok(())
}

impl AsyncRead for FdStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.inner.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| nix::unistd::read(fd.as_raw_fd(), unfilled).map_err(io::Error::from))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                // A tty whose other end went away reads EIO: that is the end of the link.
                Ok(Err(e)) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    return Poll::Ready(Ok(()))
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for FdStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        loop {
            let Some(writer) = &this.writer else {
                match nix::unistd::write(this.inner.get_ref(), data) {
                    Err(nix::errno::Errno::EAGAIN) => {
                        this.writer = Some(this.register_writer()?);
                        continue;
                    }
                    Err(nix::errno::Errno::EINTR) => continue,
                    r => return Poll::Ready(r.map_err(io::Error::from)),
                }
            };
            let mut guard = ready!(writer.poll_write_ready(cx))?;
            match guard.try_io(|fd| nix::unistd::write(fd, data).map_err(io::Error::from)) {
                Ok(r) => {
                    // It went through: the line drains again. Writes go
                    // straight to the descriptor until one blocks.
                    this.writer = None;
                    return Poll::Ready(r);
                }
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The USB printer-class node: a plain character device.
pub struct UsbLink {
    path: PathBuf,
    reopen: bool,
    node: Option<FdStream>,
}

impl UsbLink {
    fn open(path: PathBuf, reopen: bool) -> io::Result<UsbLink> {
        let mut l = UsbLink {
            path,
            reopen,
            node: None,
        };
        l.node = Some(l.open_node()?);
        Ok(l)
    }

    fn open_node(&self) -> io::Result<FdStream> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)?;
        FdStream::new(OwnedFd::from(file))
    }

    async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let node = match self.node.as_mut() {
            Some(n) => n,
            None => self.node.insert(self.open_node()?),
        };
        node.write_all(bytes).await?;
        if self.reopen {
            // The field quirk: the reply only comes on a fresh open of the node.
            self.node = None;
        }
        Ok(())
    }

    async fn recv(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let node = match self.node.as_mut() {
            Some(n) => n,
            None => self.node.insert(self.open_node()?),
        };
        node.read(buf).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            "tcp://10.0.0.5:9100".parse::<Endpoint>().unwrap(),
            Endpoint::Tcp("10.0.0.5:9100".into())
        );
        assert_eq!(
            "/dev/ttyS0".parse::<Endpoint>().unwrap(),
            Endpoint::Serial("/dev/ttyS0".into())
        );
        assert_eq!(
            "/dev/usb/lp0".parse::<Endpoint>().unwrap(),
            Endpoint::Usb("/dev/usb/lp0".into())
        );
        assert_eq!(
            "usb:///tmp/x".parse::<Endpoint>().unwrap(),
            Endpoint::Usb("/tmp/x".into())
        );
        assert_eq!(
            "serial:///dev/pts/3".parse::<Endpoint>().unwrap(),
            Endpoint::Serial("/dev/pts/3".into())
        );
        for bad in [
            "tcp://nohost",
            "tcp://:12",
            "ttyS0",
            "ftp://x",
            "tcp://h:99999",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
