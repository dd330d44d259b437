//! The relay: one task per sink reads what is due from the store's outbox,
//! sends it, and records each outcome, so that a sink that is down never
//! holds back another. It wakes when the store commits (a new status change
//! goes out at once) or when the next retry falls due.
//!
//! A failure of the way there pauses the whole sink (every delivery would
//! fail alike) for a jittered, growing delay that a `Retry-After` lengthens;
//! the deliveries concerned are due again at the same time.

use super::policy::{Backoff, Verdict};
use super::sink::Sink;
use crate::metrics::{Delivery, Metrics};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long the relay sleeps at most with nothing due (a clock jump or a
/// missed wake-up costs no more than this).
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// After the store failed (it cannot be read or written now), the first
/// pause; each next one twice the last, up to [`STORE_PAUSE_MAX`]: what
/// could not be recorded as delivered is sent again after it.
const STORE_PAUSE: Duration = Duration::from_secs(1);
const STORE_PAUSE_MAX: Duration = Duration::from_secs(30);

/// A sink's failures in a row, in memory (the store keeps each delivery's).
#[derive(Debug, Default)]
struct Streak {
    failures: u32,
}

/// Runs one sink until `stop`, counting each recorded outcome in `metrics`.
pub async fn run(
    sink: Sink,
    store: Arc<Store>,
    backoff: Backoff,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let sink = Arc::new(sink);
    let mut written = store.written();
    let mut streak = Streak::default();
    // The store's trouble, told once and then at a slowing rate.
    let mut trouble = crate::outage::Outage::default();
    let mut store_pause = STORE_PAUSE;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let now = super::http::unix_ms();
        let (name, limit) = (sink.name.clone(), sink.batch);
        let due = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.due(&name, now, limit)).await
        };
        let due = match due {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                if let Some(n) = trouble.failed(std::time::Instant::now()) {
                    tracing::error!(sink = %sink.name, error = %e, down_s = n.since.as_secs(), failed_attempts = n.failures, "cannot read the outbox; retrying");
                }
                sleep_or_stop(store_pause, &stop).await;
                store_pause = (store_pause * 2).min(STORE_PAUSE_MAX);
                continue;
            }
            Err(e) => {
                tracing::error!(sink = %sink.name, error = %e, "outbox task failed");
                return;
            }
        };
        if due.is_empty() {
            written.borrow_and_update();
            let wait = next_wait(&store, &sink.name).await;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = written.changed() => {}
                _ = tokio::time::sleep(wait) => {}
            }
            continue;
        }
        let outcomes = tokio::select! {
            _ = stop.cancelled() => return,
            o = sink.send(&due) => o,
        };
        let mut delivered = Vec::new();
        // How long each delivered status change took to get there.
        let mut latencies = Vec::new();
        let mut dead: Vec<(i64, String)> = Vec::new();
        let mut retry = Vec::new();
        let mut why_retry = String::new();
        let mut not_before = None;
        let mut operations = Vec::new();
        // `None`: not attempted this round; it stays as it was.
        for (d, o) in due.iter().zip(outcomes) {
            let Some(o) = o else { continue };
            match o.verdict {
                Verdict::Delivered => {
                    delivered.push(d.ord);
                    latencies.push(since(&d.event.occurred_at));
                    if let Some(op) = o.d1_operation {
                        operations.push((d.job.meta.card_token.clone(), op));
                    }
                }
                Verdict::Dead { why } => {
                    tracing::warn!(sink = %sink.name, card_token = %d.job.meta.card_token, event = %d.event.id, error = %why, "delivery refused for good: dead letter");
                    dead.push((d.ord, why));
                }
                Verdict::Retry {
                    why,
                    not_before: nb,
                } => {
                    retry.push(d.ord);
                    why_retry = why;
                    not_before = not_before.max(nb);
                }
            }
        }
        let pause = if retry.is_empty() {
            streak.failures = 0;
            None
        } else {
            streak.failures = streak.failures.saturating_add(1);
            let delay = backoff.delay(streak.failures, draw(), not_before);
            tracing::info!(sink = %sink.name, failures = streak.failures, retry_in_ms = delay.as_millis() as u64, error = %why_retry, "delivery failed; will retry");
            Some(delay)
        };
        let (dead_n, retry_n) = (dead.len(), retry.len());
        let (name, store2) = (sink.name.clone(), store.clone());
        let due_ms = now + pause.map_or(0, |d| d.as_millis() as i64);
        let recorded =
            tokio::task::spawn_blocking(move || -> Result<(), crate::store::StoreError> {
                store2.delivered(&name, &delivered)?;
                for (ord, why) in &dead {
                    store2.dead(&name, &[*ord], why)?;
                }
                store2.retry_at(&name, &retry, due_ms, &why_retry)?;
                for (token, op) in &operations {
                    store2.set_d1_operation(token, op)?;
                }
                Ok(())
            })
            .await;
        match recorded {
            // Counted once recorded: what is not goes out again, and is
            // counted then.
            Ok(Ok(())) => {
                store_pause = STORE_PAUSE;
                if let Some(end) = trouble.recovered(std::time::Instant::now()) {
                    tracing::info!(sink = %sink.name, lasted_ms = end.lasted.as_millis() as u64, failed_attempts = end.failures, "delivery outcomes are recorded again");
                }
                for latency in latencies {
                    metrics.delivery(&sink.name, Delivery::Delivered, Some(latency));
                }
                for _ in 0..dead_n {
                    metrics.delivery(&sink.name, Delivery::Dead, None);
                }
                for _ in 0..retry_n {
                    metrics.delivery(&sink.name, Delivery::Retry, None);
                }
            }
            // Not recorded: the deliveries stay pending and go out again
            // (at least once; the receivers de-duplicate by event id).
            Ok(Err(e)) => {
                if let Some(n) = trouble.failed(std::time::Instant::now()) {
                    tracing::error!(sink = %sink.name, error = %e, down_s = n.since.as_secs(), failed_attempts = n.failures, "cannot record delivery outcomes; they will be sent again");
                }
                sleep_or_stop(store_pause, &stop).await;
                store_pause = (store_pause * 2).min(STORE_PAUSE_MAX);
            }
            Err(e) => {
                tracing::error!(sink = %sink.name, error = %e, "outbox task failed");
                return;
            }
        }
        if let Some(p) = pause {
            sleep_or_stop(p, &stop).await;
        }
    }
}

/// Time since `at` (RFC 3339); zero when it cannot be read or lies ahead
/// (a clock set back).
fn since(at: &str) -> Duration {
    humantime::parse_rfc3339(at)
        .ok()
        .and_then(|t| std::time::SystemTime::now().duration_since(t).ok())
        .unwrap_or_default()
}

/// Until the next delivery falls due, at most [`IDLE_RECHECK`].
async fn next_wait(store: &Arc<Store>, sink: &str) -> Duration {
    let (store, sink) = (store.clone(), sink.to_string());
    let next = tokio::task::spawn_blocking(move || store.next_due_ms(&sink))
        .await
        .ok()
        .and_then(Result::ok)
        .flatten();
    match next {
        Some(at) => {
            let ms = (at - super::http::unix_ms()).clamp(0, IDLE_RECHECK.as_millis() as i64);
            Duration::from_millis(ms as u64)
        }
        None => IDLE_RECHECK,
    }
}

async fn sleep_or_stop(d: Duration, stop: &CancellationToken) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// A uniform draw in [0, 1) for the jitter.
pub(crate) fn draw() -> f64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(b) >> 11) as f64 / (1u64 << 53) as f64
}
