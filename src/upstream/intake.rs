//! Production requests from the central base: a long poll, each request
//! through the same validation and queue as the local API's, and its
//! outcome acknowledged. A request whose outcome the agent cannot give yet
//! (the store is being checked) is not acknowledged: it comes again, and,
//! like any request delivered twice, gets its first answer. A refusal for
//! now (`UNABLE_TO_ACCEPT_REQUEST`: a full queue, a store that cannot take
//! it; a printer not ready) is acknowledged REFUSED with its code, and is
//! not recorded: the same request delivered again is considered afresh.

use super::central::{Ack, CentralBase, Delivery};
use super::policy::Backoff;
use crate::engine::{Engine, SubmitError};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The least time between the starts of two polls when the central base
/// answers early with nothing (a server that does not hold the poll, or a
/// proxy that cuts it): one poll a second at most, instead of a loop as
/// fast as the link allows. A request still comes within a second.
pub const MIN_EMPTY_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How long to wait before the next poll after one that started
/// `elapsed` ago and brought `requests` requests: none when it brought
/// some (more may be waiting) or when it was held long enough.
pub fn pace(elapsed: Duration, requests: usize) -> Option<Duration> {
    (requests == 0 && elapsed < MIN_EMPTY_POLL_INTERVAL).then(|| MIN_EMPTY_POLL_INTERVAL - elapsed)
}

/// Runs until `stop`.
pub async fn run(cb: Arc<CentralBase>, engine: Engine, backoff: Backoff, stop: CancellationToken) {
    // The poll backs off on its own scale: a central base that is down is
    // asked again within half a minute at most.
    let backoff = Backoff {
        cap: backoff.cap.min(Duration::from_secs(30)),
        ..backoff
    };
    let mut failures = 0u32;
    // Requests not answered yet (the store is being checked): told once,
    // then at a slowing rate, and when they are answered again.
    let mut unanswered = crate::outage::Outage::default();
    loop {
        let started = Instant::now();
        let polled = tokio::select! {
            _ = stop.cancelled() => return,
            p = cb.poll() => p,
        };
        let pause = match polled {
            Ok(deliveries) => {
                failures = 0;
                let early = pace(started.elapsed(), deliveries.len());
                let mut all_acked = true;
                for d in deliveries {
                    if stop.is_cancelled() {
                        return;
                    }
                    all_acked &= handle(&cb, &engine, d, &mut unanswered).await;
                }
                // An acknowledgement that did not go through brings the
                // request back at once: do not spin on it.
                if all_acked {
                    early
                } else {
                    Some(backoff.delay(1, 0.5, None))
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                // A `Retry-After` is honoured here as on every endpoint.
                let d = backoff.delay(failures, super::relay::draw(), e.retry_after);
                tracing::debug!(error = %e, retry_in_ms = d.as_millis() as u64, "central base poll failed");
                Some(d)
            }
        };
        if let Some(p) = pause {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(p) => {}
            }
        }
    }
}

/// Submits one request and acknowledges its outcome; false when the
/// acknowledgement did not go through (or was not sent).
async fn handle(
    cb: &CentralBase,
    engine: &Engine,
    d: Delivery,
    unanswered: &mut crate::outage::Outage,
) -> bool {
    let body = d.request.get().as_bytes();
    let token = crate::request::token_of(body);
    let submitted = engine.submit(body).await;
    if !matches!(submitted, Err(SubmitError::Unavailable(_))) {
        if let Some(end) = unanswered.recovered(std::time::Instant::now()) {
            tracing::info!(
                lasted_ms = end.lasted.as_millis() as u64,
                "central base requests are answered again"
            );
        }
    }
    let ack = match submitted {
        Ok(s) => Ack {
            card_token: token.clone(),
            outcome: "ACCEPTED",
            status: "READY",
            occurred_at: s.production.occurred_at,
            error_code: s.production.error_code,
            field: None,
            reason: s.production.description,
        },
        Err(SubmitError::Refused(r)) => Ack {
            card_token: token.clone(),
            outcome: "REFUSED",
            status: "REQUEST_ERROR",
            occurred_at: r.occurred_at,
            error_code: Some(r.error.code),
            field: r.error.field,
            reason: Some(r.error.message),
        },
        Err(SubmitError::Unavailable(why)) => {
            match unanswered.failed(std::time::Instant::now()) {
                Some(n) => {
                    tracing::warn!(card_token = token.as_deref().unwrap_or(""), delivery = %d.delivery_id, reason = %why, down_s = n.since.as_secs(), "central base request not answered yet: it will come again")
                }
                None => {
                    tracing::debug!(card_token = token.as_deref().unwrap_or(""), delivery = %d.delivery_id, reason = %why, "central base request not answered yet")
                }
            }
            return false;
        }
    };
    tracing::info!(card_token = token.as_deref().unwrap_or(""), delivery = %d.delivery_id, outcome = ack.outcome, error_code = ack.error_code.map(|c| c.as_str()).unwrap_or(""), "central base request");
    match cb.ack(&d.delivery_id, &ack).await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(card_token = token.as_deref().unwrap_or(""), delivery = %d.delivery_id, error = %e, "acknowledgement not delivered: the request comes again (a refusal for now is considered afresh, any other answer is the same)");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_early_empty_answer_waits_out_the_interval() {
        let ms = Duration::from_millis;
        assert_eq!(pace(ms(0), 0), Some(MIN_EMPTY_POLL_INTERVAL));
        assert_eq!(pace(ms(300), 0), Some(ms(700)));
        // Held for its wait, or brought requests: poll again at once.
        assert_eq!(pace(ms(1000), 0), None);
        assert_eq!(pace(Duration::from_secs(25), 0), None);
        assert_eq!(pace(ms(5), 3), None);
    }
}
