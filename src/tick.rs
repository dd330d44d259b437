//! A steady period on a `timerfd`: one wake-up per period.
//!
//! tokio's timer wheel wakes a thread twice for a one-second sleep (at the
//! start of the wheel's 64 ms slot that holds the deadline, then at the
//! deadline itself), so the idle probe's `sleep` cost two wake-ups a second
//! where one does. The kernel's interval timer fires once per period, on a
//! fixed grid that does not drift with the time each probe takes
//! (`satellite bench --idle`, BENCHMARKS.md). The idle probe and the
//! watchdog ping use it.

use nix::sys::time::TimeSpec;
use nix::sys::timerfd::{ClockId, Expiration, TimerFd, TimerFlags, TimerSetTimeFlags};
use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// `AsyncFd` asks for `AsRawFd`; nix's timer gives `AsFd`.
struct Fd(TimerFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// A periodic tick. Ticks missed while the owner was busy are folded into
/// the next one (the count is not needed: the probe reads the printer's
/// state now, not once per missed period). Where no `timerfd` can be had,
/// or it fails, it falls back to tokio's sleep (two wake-ups a period).
pub struct Tick {
    fd: Option<AsyncFd<Fd>>,
    period: Duration,
}

impl Tick {
    /// Starts ticking every `period`, the first tick one period from now.
    pub fn new(period: Duration) -> Tick {
        let fd = match timerfd(period) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!(error = %e, "no timerfd: using tokio's timer");
                None
            }
        };
        Tick { fd, period }
    }

    /// Until the next tick (at once if one passed since the last call).
    pub async fn next(&self) {
        let Some(fd) = &self.fd else {
            return tokio::time::sleep(self.period).await;
        };
        loop {
            let mut ready = match fd.readable().await {
                Ok(r) => r,
                Err(e) => return self.failed(e).await,
            };
            let mut count = [0u8; 8];
            match ready.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), &mut count).map_err(io::Error::from)
            }) {
                Ok(Ok(_)) => return,
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return self.failed(e).await,
                // Spurious readiness: `try_io` cleared it; wait again.
                Err(_would_block) => continue,
            }
        }
    }

    async fn failed(&self, e: io::Error) {
        tracing::debug!(error = %e, "timerfd failed: waiting one period with tokio's timer");
        tokio::time::sleep(self.period).await;
    }
}

fn timerfd(period: Duration) -> io::Result<AsyncFd<Fd>> {
    let timer = TimerFd::new(
        ClockId::CLOCK_MONOTONIC,
        TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
    )?;
    timer.set(
        Expiration::Interval(TimeSpec::from_duration(period)),
        TimerSetTimeFlags::empty(),
    )?;
    // SAFETY: `Fd` owns the timer's descriptor (an `OwnedFd` inside
    // `TimerFd`) for as long as the `AsyncFd` holds it, and always returns
    // that same descriptor.
    unsafe { AsyncFd::register_with_interest(Fd(timer), Interest::READABLE) }
        .map_err(|e| e.into_parts().1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn first_tick_after_one_period_and_missed_ticks_fold() {
        let period = Duration::from_millis(500);
        let start = Instant::now();
        let t = Tick::new(period);
        assert!(t.fd.is_some(), "a timerfd on this machine");
        t.next().await;
        assert!(start.elapsed() >= Duration::from_millis(490));
        // Busy until half way between two grid points, past the ticks at
        // 1000 and 1500 ms: the first call returns at once, the second
        // waits for the next grid point (2000 ms), so the two take about
        // 250 ms. Were missed ticks kept one by one, both would return at
        // once.
        std::thread::sleep(Duration::from_millis(1750).saturating_sub(start.elapsed()));
        let before = Instant::now();
        t.next().await;
        t.next().await;
        assert!(before.elapsed() >= Duration::from_millis(150));
    }
}
