//! Every upstream task runs under a supervisor: a relay, the intake, the
//! heartbeat or the upkeep that panics or returns before it is told to stop
//! would otherwise leave its work silently undone (events piling up in the
//! outbox, no requests taken). The supervisor reads the task's `JoinHandle`,
//! logs the end as an error with the task's name, shows it in health
//! ([`Health::task_failed`], code `SAT_TASK_FAILED`) and starts the task
//! again after a growing pause; once the new one has run [`STEADY`], the
//! alarm goes and the pause starts again from its first step.
//!
//! [`Restarts`] is the policy, plain code tested alone; [`supervise`] is the
//! thin shell around tokio.

use super::health::Health;
use futures::future::BoxFuture;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The first pause before a restart, and the longest.
pub const FIRST_PAUSE: Duration = Duration::from_secs(1);
pub const LONGEST_PAUSE: Duration = Duration::from_secs(60);
/// A task that ran this long before it ended is a new failure, not the same
/// one again: its pause starts from [`FIRST_PAUSE`]; a restarted task that
/// runs this long clears its alarm.
pub const STEADY: Duration = Duration::from_secs(60);

/// How a task ended without being told to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It returned.
    Returned,
    /// It panicked, with the panic's message when it was a string.
    Panicked(String),
    /// It could not be started (its client or secret could not be made).
    NotStarted(String),
}

impl std::fmt::Display for Ended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ended::Returned => write!(f, "returned on its own"),
            Ended::Panicked(m) => write!(f, "panicked: {m}"),
            Ended::NotStarted(e) => write!(f, "could not start: {e}"),
        }
    }
}

impl Ended {
    /// What a `JoinHandle` gave: `None` when the task was cancelled (the
    /// runtime shutting down), which is not a failure.
    pub fn of(joined: Result<(), tokio::task::JoinError>) -> Option<Ended> {
        match joined {
            Ok(()) => Some(Ended::Returned),
            Err(e) if e.is_panic() => {
                let p = e.into_panic();
                let msg = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(not a message)".into());
                Some(Ended::Panicked(msg))
            }
            Err(_) => None,
        }
    }
}

/// The restart policy's figures (the constants above; tests shrink them).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub first: Duration,
    pub longest: Duration,
    pub steady: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            first: FIRST_PAUSE,
            longest: LONGEST_PAUSE,
            steady: STEADY,
        }
    }
}

/// The restart policy of one task: the pause after each end, doubling
/// from [`FIRST_PAUSE`] to [`LONGEST_PAUSE`], reset by a run of
/// [`STEADY`] or more.
#[derive(Debug, Default, Clone)]
pub struct Restarts {
    timing: Timing,
    failures: u32,
}

impl Restarts {
    pub fn new(timing: Timing) -> Restarts {
        Restarts {
            timing,
            failures: 0,
        }
    }

    /// The task ended after running `ran`: how long to wait before the
    /// next start.
    pub fn ended(&mut self, ran: Duration) -> Duration {
        if ran >= self.timing.steady {
            self.failures = 0;
        }
        self.failures = self.failures.saturating_add(1);
        let doublings = (self.failures - 1).min(16);
        (self.timing.first * 2u32.pow(doublings)).min(self.timing.longest)
    }

    /// Ends in a row, each within [`STEADY`] of its start.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// Makes one run of a task, or says why it cannot.
pub type Start = Box<dyn FnMut() -> Result<BoxFuture<'static, ()>, String> + Send>;

/// Runs `start`'s task until `stop`, restarting it when it ends on its
/// own. `name` names it in the log, `link` is where health shows it.
pub async fn supervise(
    name: String,
    link: String,
    health: Health,
    stop: CancellationToken,
    start: Start,
) {
    supervise_with(Timing::default(), name, link, health, stop, start).await
}

/// [`supervise`] with its figures given.
pub async fn supervise_with(
    timing: Timing,
    name: String,
    link: String,
    health: Health,
    stop: CancellationToken,
    mut start: Start,
) {
    let mut restarts = Restarts::new(timing);
    loop {
        if stop.is_cancelled() {
            return;
        }
        let began = tokio::time::Instant::now();
        let ended = match start() {
            Ok(task) => {
                let mut handle = tokio::spawn(task);
                let steady = tokio::time::sleep(timing.steady);
                tokio::pin!(steady);
                let mut told_steady = restarts.failures() == 0;
                let joined = loop {
                    tokio::select! {
                        j = &mut handle => break j,
                        _ = &mut steady, if !told_steady => {
                            told_steady = true;
                            health.task_steady(&link);
                            tracing::info!(task = %name, "the restarted upstream task runs steadily again");
                        }
                    }
                };
                if stop.is_cancelled() {
                    return;
                }
                match Ended::of(joined) {
                    Some(e) => e,
                    None => return,
                }
            }
            Err(e) => Ended::NotStarted(e),
        };
        let pause = restarts.ended(began.elapsed());
        let why = format!(
            "the upstream task {name} {ended}; restarted in {:.1} s (failure {} in a row)",
            pause.as_secs_f64(),
            restarts.failures()
        );
        tracing::error!(task = %name, upstream = %link, error_code = super::health::SAT_TASK_FAILED, restart_in_ms = pause.as_millis() as u64, error = %ended, "{why}");
        health.task_failed(&link, &why);
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[test]
    fn the_pause_doubles_to_its_cap_and_a_steady_run_resets_it() {
        let mut r = Restarts::default();
        let quick = Duration::from_millis(10);
        let pauses: Vec<u64> = (0..8).map(|_| r.ended(quick).as_secs()).collect();
        assert_eq!(pauses, [1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(r.failures(), 8);
        // A run of STEADY is a new failure, not the same one.
        assert_eq!(r.ended(STEADY), FIRST_PAUSE);
        assert_eq!(r.failures(), 1);
        // Thousands of failures never overflow.
        for _ in 0..10_000 {
            r.ended(quick);
        }
        assert_eq!(r.ended(quick), LONGEST_PAUSE);
    }

    #[tokio::test]
    async fn a_panic_is_read_from_the_join_handle() {
        let h = tokio::spawn(async { panic!("boom") });
        assert_eq!(Ended::of(h.await), Some(Ended::Panicked("boom".into())));
        let h = tokio::spawn(async {});
        assert_eq!(Ended::of(h.await), Some(Ended::Returned));
        let h = tokio::spawn(std::future::pending::<()>());
        h.abort();
        assert_eq!(Ended::of(h.await), None);
    }

    /// A task that panics on its first run and returns on its second is
    /// restarted each time, shown in health, and its third run (which
    /// keeps running) is left alone until stop.
    /// The figures in milliseconds instead of seconds: 100 ms, 200 ms...
    const FAST: Timing = Timing {
        first: Duration::from_millis(100),
        longest: Duration::from_millis(6_000),
        steady: Duration::from_millis(600),
    };

    #[tokio::test]
    async fn a_task_that_panics_or_returns_is_restarted_and_shown() {
        let runs = Arc::new(AtomicU32::new(0));
        let health = Health::default();
        health.register("sink");
        let stop = CancellationToken::new();
        let start: Start = {
            let (runs, stop) = (runs.clone(), stop.clone());
            Box::new(move || {
                let n = runs.fetch_add(1, Ordering::SeqCst);
                let stop = stop.clone();
                Ok(Box::pin(async move {
                    match n {
                        0 => panic!("relay bug"),
                        1 => {}
                        _ => stop.cancelled().await,
                    }
                }))
            })
        };
        let sup = tokio::spawn(supervise_with(
            FAST,
            "relay sink".into(),
            "sink".into(),
            health.clone(),
            stop.clone(),
            start,
        ));
        let ms = Duration::from_millis;
        // First run panics at once: shown, restarted after 100 ms.
        tokio::time::sleep(ms(50)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let a = &health.snapshot()["sink"].alarms;
        assert_eq!(a[0].code, super::super::health::SAT_TASK_FAILED);
        assert!(a[0].message.contains("panicked: relay bug"), "{a:?}");
        // Second run (at 100 ms) returns: restarted 200 ms later.
        tokio::time::sleep(ms(100)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert!(health.snapshot()["sink"].alarms[0]
            .message
            .contains("returned on its own"));
        tokio::time::sleep(ms(250)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        assert!(!health.snapshot()["sink"].alarms.is_empty());
        // Steady for `steady`: the alarm goes.
        tokio::time::sleep(FAST.steady + ms(200)).await;
        assert!(health.snapshot()["sink"].alarms.is_empty());
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        stop.cancel();
        sup.await.unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 3, "not restarted after stop");
    }

    #[tokio::test]
    async fn a_task_that_cannot_start_is_tried_again() {
        let tries = Arc::new(AtomicU32::new(0));
        let health = Health::default();
        let stop = CancellationToken::new();
        let start: Start = {
            let tries = tries.clone();
            Box::new(move || {
                tries.fetch_add(1, Ordering::SeqCst);
                Err("secret file unreadable".into())
            })
        };
        let sup = tokio::spawn(supervise_with(
            FAST,
            "relay d1".into(),
            "d1".into(),
            health.clone(),
            stop.clone(),
            start,
        ));
        tokio::time::sleep(Duration::from_millis(350)).await;
        // At 0, 100 and 300 ms.
        assert_eq!(tries.load(Ordering::SeqCst), 3);
        assert!(health.snapshot()["d1"].alarms[0]
            .message
            .contains("could not start: secret file unreadable"));
        stop.cancel();
        sup.await.unwrap();
    }
}
