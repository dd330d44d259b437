//! What an answer means for a delivery, and when to try again: plain
//! functions of the answer, the attempt count and a random draw, tested
//! without a network or a clock.
//!
//! An answer is read as one of four things ([`Judged`]). Only 2xx is
//! delivered. A failure of the endpoint (the way there, our credentials, an
//! endpoint that moved, is gone or not registered, throttling, a receiver
//! that refuses our clock) concerns every delivery alike: the sink pauses.
//! A refusal of the payload (any other 4xx) concerns that event. A 5xx or
//! a time-out may be either: the scheduler tells them apart by whether
//! other deliveries go through. 3xx is never followed. A receiver may
//! read its codes otherwise (D1's tables: [`Receiver::D1`]).

use crate::codes::ErrorCode;
use std::time::Duration;

/// What one attempt at a sink came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The receiver answered with this status.
    Status {
        code: u16,
        /// `Retry-After`, as a delay.
        retry_after: Option<Duration>,
        /// A short, printable summary of the body (the receiver's error code).
        detail: String,
    },
    /// No answer within the time-out.
    Timeout,
    /// The connection could not be made or broke (refused, reset, TLS).
    Link(String),
}

impl std::fmt::Display for Answer {
    /// `HTTP 503 (CB_NOT_AVAILABLE)`, `no answer within the time-out`,
    /// `connection failed: ...`: what a technician reads.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status { code, detail, .. } => f.write_str(&describe(*code, detail)),
            Answer::Timeout => f.write_str("no answer within the time-out"),
            Answer::Link(e) => write!(f, "connection failed: {e}"),
        }
    }
}

/// What one request's answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged {
    /// Taken (a 2xx); D1 answers an operation id.
    Delivered { operation: Option<String> },
    /// The receiver refused this payload.
    Refused { why: String },
    /// A 5xx or no answer in time: this payload or the whole receiver.
    Unsure {
        why: String,
        retry_after: Option<Duration>,
    },
    /// The endpoint fails, whatever is sent: the sink pauses (`gone`: until
    /// an operator re-enables it). `code` is what health shows.
    Endpoint {
        why: String,
        code: ErrorCode,
        retry_after: Option<Duration>,
        gone: bool,
    },
}

impl Judged {
    /// A failure of the whole endpoint, from the health code it shows.
    pub fn endpoint(code: ErrorCode, why: String) -> Judged {
        Judged::Endpoint {
            why,
            code,
            retry_after: None,
            gone: false,
        }
    }
}

/// Whose codes an answer is read by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    CentralBase,
    /// A Standard Webhooks receiver: its 401 refuses our signature, its 400
    /// naming the timestamp refuses our clock.
    Webhook,
    /// D1's Track Card API: a card it does not know (404), a body it
    /// refuses (400) and its 500 `INTERNAL_ERROR` are "Retry Possible: no"
    /// for that card.
    D1,
}

/// The reading of one answer.
pub fn judge(answer: &Answer, receiver: Receiver) -> Judged {
    let (code, retry_after, detail) = match answer {
        Answer::Timeout => {
            return Judged::Unsure {
                why: answer.to_string(),
                retry_after: None,
            }
        }
        Answer::Link(e) => {
            return Judged::endpoint(
                super::health::link_code(e),
                format!("cannot reach the receiver: {e}"),
            )
        }
        Answer::Status {
            code,
            retry_after,
            detail,
        } => (*code, *retry_after, detail),
    };
    let why = describe(code, detail);
    let endpoint = |code: ErrorCode, why: String| Judged::Endpoint {
        why,
        code,
        retry_after,
        gone: false,
    };
    match code {
        200..=299 => Judged::Delivered { operation: None },
        300..=399 => endpoint(
            ErrorCode::SAT_SERVER_NOT_REACHABLE,
            format!("{why}: the endpoint redirects (not followed): update its URL"),
        ),
        401 => endpoint(
            ErrorCode::SAT_AUTHENTICATION_FAILED,
            match receiver {
                Receiver::Webhook => {
                    format!("{why}: the receiver refuses the signature (check the webhook secret)")
                }
                _ => format!("{why}: the access token is refused even renewed"),
            },
        ),
        403 => endpoint(
            ErrorCode::SAT_AUTHENTICATION_FAILED,
            format!("{why}: the endpoint forbids this kiosk (not registered or not allowed)"),
        ),
        404 if receiver != Receiver::D1 => endpoint(
            ErrorCode::SAT_SERVER_NOT_REACHABLE,
            format!("{why}: no such endpoint (moved, or not registered yet)"),
        ),
        410 => Judged::Endpoint {
            why: format!("{why}: the endpoint is gone; the sink is disabled until re-enabled"),
            code: ErrorCode::SAT_SERVER_NOT_REACHABLE,
            retry_after,
            gone: true,
        },
        429 => endpoint(
            ErrorCode::SAT_SERVER_NOT_REACHABLE,
            format!("{why}: the receiver throttles"),
        ),
        400 if receiver == Receiver::Webhook && names_the_clock(detail) => endpoint(
            ErrorCode::SAT_AUTHENTICATION_FAILED,
            format!("{why}: the receiver refuses our timestamp (check the kiosk's clock)"),
        ),
        500 if receiver == Receiver::D1 => Judged::Refused { why },
        // Busy, and says until when: the receiver as a whole.
        503 if retry_after.is_some() => endpoint(ErrorCode::SAT_SERVER_NOT_REACHABLE, why),
        408 | 500..=599 => Judged::Unsure { why, retry_after },
        _ => Judged::Refused { why },
    }
}

/// Whether a refusal's summary is about the message's time stamp (Standard
/// Webhooks receivers refuse one outside their tolerance, commonly five
/// minutes): the kiosk's clock, not the event.
fn names_the_clock(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    ["timestamp", "tolerance", "too old", "too new", "expired"]
        .iter()
        .any(|w| d.contains(w))
}

/// `HTTP 503 (CB_NOT_AVAILABLE)`.
pub fn describe(code: u16, detail: &str) -> String {
    if detail.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code} ({detail})")
    }
}

/// Exponential backoff with full jitter between a floor and a cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub first: Duration,
    pub cap: Duration,
}

impl Default for Backoff {
    /// From half a second to a minute: a kiosk's link to its platform
    /// comes back within minutes, and once it does, what waited should go
    /// within a minute (a `Retry-After` may ask for longer).
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(500),
            cap: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// The delay before attempt `failures + 1`, after `failures` failures in
    /// a row: uniformly drawn (with `draw` in [0, 1)) from the upper half of
    /// `first * 2^(failures-1)`, capped, and never shorter than the
    /// receiver's `Retry-After`.
    pub fn delay(&self, failures: u32, draw: f64, retry_after: Option<Duration>) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let ceiling = self
            .first
            .saturating_mul(1u32 << exp.min(20))
            .min(self.cap)
            .max(self.first);
        let draw = if draw.is_finite() {
            draw.clamp(0.0, 1.0)
        } else {
            0.5
        };
        // Half fixed, half jitter: spread out, yet never near zero.
        let d = ceiling.mul_f64(0.5 + 0.5 * draw);
        match retry_after {
            // A receiver's Retry-After is honoured, within reason (a day).
            Some(ra) => d.max(ra.min(Duration::from_secs(86_400))),
            None => d,
        }
    }
}

/// `Retry-After` as delta-seconds or an HTTP date, relative to `now`
/// (Unix seconds). Anything else is ignored.
pub fn retry_after(value: &str, now_unix: u64) -> Option<Duration> {
    let v = value.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    let at = httpdate_to_unix(v)?;
    Some(Duration::from_secs(at.saturating_sub(now_unix)))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form HTTP servers send.
fn httpdate_to_unix(v: &str) -> Option<u64> {
    let t = humantime::parse_rfc3339(&{
        let parts: Vec<&str> = v.split_whitespace().collect();
        if parts.len() != 6 || parts[5] != "GMT" {
            return None;
        }
        let month = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ]
        .iter()
        .position(|m| *m == parts[2])?
            + 1;
        format!("{}-{month:02}-{:0>2}T{}Z", parts[3], parts[1], parts[4])
    })
    .ok()?;
    t.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Answer {
        Answer::Status {
            code,
            retry_after: None,
            detail: String::new(),
        }
    }

    fn kind(j: &Judged) -> &'static str {
        match j {
            Judged::Delivered { .. } => "delivered",
            Judged::Refused { .. } => "refused",
            Judged::Unsure { .. } => "unsure",
            Judged::Endpoint { gone: true, .. } => "gone",
            Judged::Endpoint { .. } => "endpoint",
        }
    }

    #[test]
    fn only_2xx_is_delivered_and_3xx_is_the_endpoints() {
        for r in [Receiver::CentralBase, Receiver::Webhook, Receiver::D1] {
            for code in [200, 201, 202, 204, 299] {
                assert_eq!(kind(&judge(&status(code), r)), "delivered", "{code}");
            }
            for code in [301, 302, 304, 307] {
                assert_eq!(kind(&judge(&status(code), r)), "endpoint", "{code}");
            }
        }
    }

    #[test]
    fn errors_of_the_endpoint_are_told_from_refusals_of_the_payload() {
        let cb = Receiver::CentralBase;
        for code in [401, 403, 404, 429] {
            assert_eq!(kind(&judge(&status(code), cb)), "endpoint", "{code}");
        }
        assert_eq!(kind(&judge(&status(410), cb)), "gone");
        for code in [400, 409, 413, 422] {
            assert_eq!(kind(&judge(&status(code), cb)), "refused", "{code}");
        }
        for code in [408, 500, 502, 503, 504, 599] {
            assert_eq!(kind(&judge(&status(code), cb)), "unsure", "{code}");
        }
        assert_eq!(kind(&judge(&Answer::Timeout, cb)), "unsure");
        assert_eq!(
            kind(&judge(&Answer::Link("refused".into()), cb)),
            "endpoint"
        );
        // Busy with a Retry-After: the whole receiver says when.
        let busy = Answer::Status {
            code: 503,
            retry_after: Some(Duration::from_secs(9)),
            detail: String::new(),
        };
        assert_eq!(kind(&judge(&busy, cb)), "endpoint");
        // A webhook's stale-timestamp 400 is the kiosk's clock.
        let stale = Answer::Status {
            code: 400,
            retry_after: None,
            detail: "message timestamp too old".into(),
        };
        assert_eq!(kind(&judge(&stale, Receiver::Webhook)), "endpoint");
        assert_eq!(kind(&judge(&status(400), Receiver::Webhook)), "refused");
        // D1: its 404 (card unknown) and 500 are about the card.
        assert_eq!(kind(&judge(&status(404), Receiver::D1)), "refused");
        assert_eq!(kind(&judge(&status(500), Receiver::D1)), "refused");
        assert_eq!(kind(&judge(&status(503), Receiver::D1)), "unsure");
        assert_eq!(kind(&judge(&status(403), Receiver::D1)), "endpoint");
    }

    #[test]
    fn retry_after_is_carried_and_honoured() {
        let a = Answer::Status {
            code: 503,
            retry_after: Some(Duration::from_secs(7)),
            detail: "busy".into(),
        };
        let Judged::Endpoint {
            retry_after: after,
            why,
            ..
        } = judge(&a, Receiver::Webhook)
        else {
            panic!("a 503 with Retry-After pauses the receiver")
        };
        assert_eq!(after, Some(Duration::from_secs(7)));
        assert_eq!(why, "HTTP 503 (busy)");
        let b = Backoff::default();
        assert!(b.delay(1, 0.0, after) >= Duration::from_secs(7));
        assert_eq!(retry_after("12", 0), Some(Duration::from_secs(12)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784_111_770),
            Some(Duration::from_secs(7))
        );
        assert_eq!(retry_after("soon", 0), None);
        assert_eq!(retry_after("-3", 0), None);
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let b = Backoff {
            first: Duration::from_millis(100),
            cap: Duration::from_secs(10),
        };
        assert_eq!(b.delay(1, 0.0, None), Duration::from_millis(50));
        assert_eq!(b.delay(1, 1.0, None), Duration::from_millis(100));
        assert_eq!(b.delay(4, 1.0, None), Duration::from_millis(800));
        assert!(b.delay(4, 0.3, None) >= Duration::from_millis(400));
        assert_eq!(b.delay(60, 1.0, None), Duration::from_secs(10));
        assert_eq!(
            b.delay(u32::MAX, f64::NAN, None),
            Duration::from_millis(7500)
        );
        // Draws spread the delays (no thundering herd after an outage).
        let spread: std::collections::BTreeSet<_> =
            (0..10).map(|i| b.delay(5, i as f64 / 10.0, None)).collect();
        assert_eq!(spread.len(), 10);
    }
}
