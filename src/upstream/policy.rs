//! What an answer means for a delivery, and when to try again: plain
//! functions of the answer, the attempt count and a random draw, tested
//! without a network or a clock.
//!
//! The rules are those of the most careful webhook senders: only 2xx is
//! delivered; 3xx is not followed; time-outs, connection failures, 408, 429
//! and 5xx are tried again after an exponential, jittered delay that a
//! `Retry-After` lengthens; any other 4xx is a permanent refusal: a dead
//! letter for an operator to see and replay. A sink may reclassify (D1's
//! tables say its 500 is not worth retrying).

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

/// What to do with the delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again; `not_before` is the receiver's `Retry-After`, if any.
    Retry {
        why: String,
        not_before: Option<Duration>,
    },
    /// Never again on its own: a dead letter.
    Dead {
        why: String,
    },
}

/// The standard reading of an answer.
pub fn classify(answer: &Answer) -> Verdict {
    match answer {
        Answer::Status { code, .. } if (200..300).contains(code) => Verdict::Delivered,
        Answer::Status {
            code,
            retry_after,
            detail,
        } => {
            let why = describe(*code, detail);
            if matches!(code, 408 | 429) || (500..600).contains(code) {
                Verdict::Retry {
                    why,
                    not_before: *retry_after,
                }
            } else {
                Verdict::Dead { why }
            }
        }
        Answer::Timeout => Verdict::Retry {
            why: "no answer within the time-out".into(),
            not_before: None,
        },
        Answer::Link(e) => Verdict::Retry {
            why: format!("cannot reach the receiver: {e}"),
            not_before: None,
        },
    }
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

    #[test]
    fn only_2xx_is_delivered() {
        for code in [200, 201, 202, 204, 299] {
            assert_eq!(classify(&status(code)), Verdict::Delivered, "{code}");
        }
        for code in [100, 301, 302, 304, 307] {
            assert!(
                !matches!(classify(&status(code)), Verdict::Delivered),
                "{code}"
            );
        }
    }

    #[test]
    fn transient_failures_are_retried_and_the_rest_dead_lettered() {
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert!(
                matches!(classify(&status(code)), Verdict::Retry { .. }),
                "{code}"
            );
        }
        for code in [301, 400, 401, 403, 404, 409, 410, 413, 422] {
            assert!(
                matches!(classify(&status(code)), Verdict::Dead { .. }),
                "{code}"
            );
        }
        assert!(matches!(classify(&Answer::Timeout), Verdict::Retry { .. }));
        assert!(matches!(
            classify(&Answer::Link("refused".into())),
            Verdict::Retry { .. }
        ));
    }

    #[test]
    fn retry_after_is_carried_and_honoured() {
        let a = Answer::Status {
            code: 503,
            retry_after: Some(Duration::from_secs(7)),
            detail: "busy".into(),
        };
        let Verdict::Retry { not_before, why } = classify(&a) else {
            panic!("503 is retried")
        };
        assert_eq!(not_before, Some(Duration::from_secs(7)));
        assert_eq!(why, "HTTP 503 (busy)");
        let b = Backoff::default();
        assert!(b.delay(1, 0.0, not_before) >= Duration::from_secs(7));
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
