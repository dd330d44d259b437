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
/// state now, not once per missed period).
pub struct Tick {
    fd: AsyncFd<Fd>,
}

impl Tick {
    /// Starts ticking every `period`, the first tick one period from now.
    pub fn new(period: Duration) -> io::Result<Tick> {
        let timer = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )?;
        timer.set(
            Expiration::Interval(TimeSpec::from_duration(period)),
            TimerSetTimeFlags::empty(),
        )?;
        // SAFETY: `Fd` owns the timer's descriptor (an `OwnedFd` inside
        // `TimerFd`) for as long as the `AsyncFd` holds it, and always
        // returns that same descriptor.
        let fd = unsafe { AsyncFd::register_with_interest(Fd(timer), Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(Tick { fd })
    }

    /// Until the next tick (at once if one passed since the last call).
    pub async fn next(&self) -> io::Result<()> {
        loop {
            let mut ready = self.fd.readable().await?;
            let mut count = [0u8; 8];
            match ready.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), &mut count).map_err(io::Error::from)
            }) {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => continue,
                Ok(Err(e)) => return Err(e),
                // Spurious readiness: `try_io` cleared it; wait again.
                Err(_would_block) => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[tokio::test]
    async fn first_tick_after_one_period_and_missed_ticks_fold() {
        let period = Duration::from_millis(500);
        let start = Instant::now();
        let t = Tick::new(period).expect("timerfd");
        t.next().await.expect("tick");
        assert!(start.elapsed() >= Duration::from_millis(490));
        // Busy until half way between two grid points, past the ticks at
        // 1000 and 1500 ms: the first call returns at once, the second
        // waits for the next grid point (2000 ms), so the two take about
        // 250 ms. Were missed ticks kept one by one, both would return at
        // once.
        std::thread::sleep(Duration::from_millis(1750).saturating_sub(start.elapsed()));
        let before = Instant::now();
        t.next().await.expect("tick");
        t.next().await.expect("tick");
        assert!(before.elapsed() >= Duration::from_millis(150));
    }
}
