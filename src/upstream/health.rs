//! How each upstream link is doing, published on one `watch` channel: the
//! local API, the log, the heartbeat and metrics read it. A failure
//! carries the satellite's own code (SAT_*) when the agent cannot reach or
//! is refused by the upstream, so that a technician reads the same
//! vocabulary as the platform.

use super::auth::AuthError;
use super::policy::Answer;
use crate::codes::ErrorCode;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio::sync::watch;

/// One link: a sink, or the central base's intake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkHealth {
    /// `up` after a success, `down` after a failure, `unknown` before any call.
    pub state: &'static str,
    /// The SAT_ code of the last failure while down.
    pub code: Option<ErrorCode>,
    pub error: Option<String>,
    /// RFC 3339 of the last success and of the last change of state.
    pub last_ok_at: Option<String>,
    pub since: String,
    /// This kiosk's clock minus the upstream's, in milliseconds, from the
    /// last answer that carried the server's time (the central base's
    /// heartbeat), corrected by half the round trip.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_skew_ms: Option<i64>,
    /// What is wrong beside the link's state, each with its code
    /// ([`SAT_CLOCK_SKEW`], [`SAT_TASK_FAILED`]); absent when nothing is.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alarms: Vec<Alarm>,
}

/// A condition a technician must see, apart from whether the link works.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Alarm {
    pub code: &'static str,
    pub message: String,
    pub since: String,
}

/// Health-only codes (never a card's `errorCode`: the production-status
/// API's list is the platform's), documented in `docs/ERROR-CODES.md`.
///
/// This kiosk's clock is more than [`SKEW_BOUND_MS`] away from the upstream's.
pub const SAT_CLOCK_SKEW: &str = "SAT_CLOCK_SKEW";
/// An upstream task (a relay, the intake, the heartbeat, the upkeep)
/// panicked or returned on its own; it is restarted with back-off.
pub const SAT_TASK_FAILED: &str = "SAT_TASK_FAILED";

/// Clock skew beyond which [`SAT_CLOCK_SKEW`] is raised: 2 minutes. Webhook
/// receivers commonly refuse a `webhook-timestamp` more than 5 minutes off
/// (Standard Webhooks' default tolerance) and token endpoints check an
/// assertion's `iat`/`exp` within a minute or two: the alarm comes well
/// before either refuses, while NTP-kept clocks (milliseconds) and the
/// `Date` header's one-second resolution stay far below it.
pub const SKEW_BOUND_MS: i64 = 120_000;

impl LinkHealth {
    fn unknown() -> LinkHealth {
        LinkHealth {
            state: "unknown",
            code: None,
            error: None,
            last_ok_at: None,
            since: crate::time::now_rfc3339(),
            clock_skew_ms: None,
            alarms: Vec::new(),
        }
    }
}

/// Every upstream link, by name.
pub type Upstream = BTreeMap<String, LinkHealth>;

/// The publisher; cheap to clone.
#[derive(Clone)]
pub struct Health {
    tx: watch::Sender<Upstream>,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            tx: watch::channel(Upstream::new()).0,
        }
    }
}

impl Health {
    pub fn subscribe(&self) -> watch::Receiver<Upstream> {
        self.tx.subscribe()
    }

    pub fn snapshot(&self) -> Upstream {
        self.tx.borrow().clone()
    }

    /// Records how far this kiosk's clock is from the upstream's; raises
    /// [`SAT_CLOCK_SKEW`] beyond [`SKEW_BOUND_MS`], clears it within.
    pub fn clock_skew(&self, link: &str, skew_ms: i64) {
        self.tx.send_if_modified(|m| {
            let h = m
                .entry(link.to_string())
                .or_insert_with(LinkHealth::unknown);
            let mut changed = h.clock_skew_ms != Some(skew_ms);
            h.clock_skew_ms = Some(skew_ms);
            if skew_ms.unsigned_abs() > SKEW_BOUND_MS as u64 {
                let message = format!(
                    "this kiosk's clock is {:.0} s {} {link}'s (more than {} s): receivers may refuse time-stamped calls; check NTP",
                    skew_ms.unsigned_abs() as f64 / 1000.0,
                    if skew_ms > 0 { "ahead of" } else { "behind" },
                    SKEW_BOUND_MS / 1000
                );
                if !h.alarms.iter().any(|a| a.code == SAT_CLOCK_SKEW) {
                    tracing::warn!(upstream = %link, error_code = SAT_CLOCK_SKEW, clock_skew_ms = skew_ms, "{message}");
                }
                changed |= raise(h, SAT_CLOCK_SKEW, message);
            } else if clear(h, SAT_CLOCK_SKEW) {
                tracing::info!(upstream = %link, clock_skew_ms = skew_ms, "the clock agrees with the upstream's again");
                changed = true;
            }
            changed
        });
    }

    /// An upstream task serving `link` stopped on its own (`why`); it is
    /// restarted. Shown with [`SAT_TASK_FAILED`] until [`Health::task_steady`].
    pub fn task_failed(&self, link: &str, why: &str) {
        self.tx.send_if_modified(|m| {
            let h = m
                .entry(link.to_string())
                .or_insert_with(LinkHealth::unknown);
            raise(h, SAT_TASK_FAILED, why.to_string())
        });
    }

    /// The restarted task of `link` has run long enough: the alarm goes.
    pub fn task_steady(&self, link: &str) {
        self.tx
            .send_if_modified(|m| m.get_mut(link).is_some_and(|h| clear(h, SAT_TASK_FAILED)));
    }

    /// Names a link before its first call.
    pub fn register(&self, link: &str) {
        self.tx.send_modify(|m| {
            m.entry(link.to_string())
                .or_insert_with(LinkHealth::unknown);
        });
    }

    /// A call went through (any answer from the upstream's application
    /// counts: the link and the credentials work).
    pub fn up(&self, link: &str) {
        let now = crate::time::now_rfc3339();
        self.tx.send_if_modified(|m| {
            let h = m
                .entry(link.to_string())
                .or_insert_with(LinkHealth::unknown);
            let changed = h.state != "up";
            if changed {
                tracing::info!(upstream = %link, "upstream reachable");
                h.state = "up";
                h.code = None;
                h.error = None;
                h.since = now.clone();
            }
            h.last_ok_at = Some(now);
            changed
        });
    }

    /// A call failed for a reason of the link or of our credentials.
    pub fn down(&self, link: &str, code: ErrorCode, error: &str) {
        let now = crate::time::now_rfc3339();
        self.tx.send_if_modified(|m| {
            let h = m.entry(link.to_string()).or_insert_with(LinkHealth::unknown);
            let changed = h.state != "down" || h.code != Some(code);
            if changed {
                tracing::warn!(upstream = %link, error_code = %code, error = %error, "upstream unavailable");
                h.state = "down";
                h.since = now;
            }
            h.code = Some(code);
            h.error = Some(error.to_string());
            changed
        });
    }
}

impl Health {
    /// Records what a call came to: down with its SAT_ code when the fault
    /// is on the way there, up when the upstream's application answered.
    pub fn observe(&self, link: &str, answer: &Answer) {
        match sat_code(answer) {
            Some(code) => self.down(link, code, &answer.to_string()),
            None => self.up(link),
        }
    }

    /// Records a call that got no token.
    pub fn no_token(&self, link: &str, e: &AuthError) {
        self.down(link, auth_code(e), &e.to_string());
    }
}

/// The longest alarm message kept (`maxLength` 1000 in the documents).
const ALARM_MESSAGE_MAX_CHARS: usize = 500;

/// Sets alarm `code` (its message updated, its `since` kept); true when
/// anything changed.
fn raise(h: &mut LinkHealth, code: &'static str, message: String) -> bool {
    // A panic's message can be anything: the health document stays small.
    let message: String = message.chars().take(ALARM_MESSAGE_MAX_CHARS).collect();
    match h.alarms.iter_mut().find(|a| a.code == code) {
        Some(a) if a.message == message => false,
        Some(a) => {
            a.message = message;
            true
        }
        None => {
            h.alarms.push(Alarm {
                code,
                message,
                since: crate::time::now_rfc3339(),
            });
            true
        }
    }
}

fn clear(h: &mut LinkHealth, code: &str) -> bool {
    let before = h.alarms.len();
    h.alarms.retain(|a| a.code != code);
    h.alarms.len() != before
}

/// The satellite's code for a call that did not get through, if the fault
/// is on the way to the upstream (not an answer of its application).
pub fn sat_code(answer: &Answer) -> Option<ErrorCode> {
    match answer {
        Answer::Timeout => Some(ErrorCode::SAT_SERVER_NOT_REACHABLE),
        Answer::Link(e) => Some(link_code(e)),
        Answer::Status { code: 401, .. } => Some(ErrorCode::SAT_AUTHENTICATION_FAILED),
        // A gateway that cannot reach the upstream answers for it.
        Answer::Status {
            code: 502 | 504,
            detail,
            ..
        } if detail.is_empty() => Some(ErrorCode::SAT_SERVER_NOT_REACHABLE),
        Answer::Status { .. } => None,
    }
}

/// No route, no address, no name: the network; anything else (refused,
/// reset, TLS): the server.
pub fn link_code(cause: &str) -> ErrorCode {
    let c = cause.to_ascii_lowercase();
    let network = [
        "network is unreachable",
        "no route to host",
        "dns error",
        "failed to lookup address",
        "name or service not known",
        "temporary failure in name resolution",
        "cannot assign requested address",
    ];
    if network.iter().any(|n| c.contains(n)) {
        ErrorCode::SAT_NETWORK_NOT_AVAILABLE
    } else {
        ErrorCode::SAT_SERVER_NOT_REACHABLE
    }
}

/// The code for a token that could not be had.
pub fn auth_code(e: &AuthError) -> ErrorCode {
    match e {
        AuthError::Refused(_) | AuthError::Local(_) => ErrorCode::SAT_AUTHENTICATION_FAILED,
        AuthError::Unreachable(a) => sat_code(a).unwrap_or(ErrorCode::SAT_SERVER_NOT_REACHABLE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_get_the_satellite_codes() {
        assert_eq!(
            link_code("tcp connect error: Connection refused (os error 111)"),
            ErrorCode::SAT_SERVER_NOT_REACHABLE
        );
        assert_eq!(
            link_code("Network is unreachable (os error 101)"),
            ErrorCode::SAT_NETWORK_NOT_AVAILABLE
        );
        assert_eq!(
            link_code("dns error: failed to lookup address information"),
            ErrorCode::SAT_NETWORK_NOT_AVAILABLE
        );
        assert_eq!(
            sat_code(&Answer::Timeout),
            Some(ErrorCode::SAT_SERVER_NOT_REACHABLE)
        );
        let refused = AuthError::Refused("HTTP 401 (invalid_client)".into());
        assert_eq!(auth_code(&refused), ErrorCode::SAT_AUTHENTICATION_FAILED);
        let app = Answer::Status {
            code: 503,
            retry_after: None,
            detail: "CB_NOT_AVAILABLE".into(),
        };
        assert_eq!(sat_code(&app), None);
    }

    #[test]
    fn state_changes_are_published_once() {
        let h = Health::default();
        let mut rx = h.subscribe();
        h.register("cb");
        assert_eq!(h.snapshot()["cb"].state, "unknown");
        h.down("cb", ErrorCode::SAT_SERVER_NOT_REACHABLE, "refused");
        assert!(rx.has_changed().unwrap());
        rx.borrow_and_update();
        h.down("cb", ErrorCode::SAT_SERVER_NOT_REACHABLE, "refused again");
        assert!(!rx.has_changed().unwrap());
        h.up("cb");
        let s = h.snapshot();
        assert_eq!(s["cb"].state, "up");
        assert_eq!(s["cb"].code, None);
        assert!(s["cb"].last_ok_at.is_some());
    }

    #[test]
    fn a_clock_beyond_the_bound_raises_its_code_and_a_good_one_clears_it() {
        let h = Health::default();
        h.clock_skew("cb", 119_000);
        assert!(h.snapshot()["cb"].alarms.is_empty());
        h.clock_skew("cb", -121_000);
        let s = h.snapshot();
        assert_eq!(s["cb"].alarms.len(), 1);
        assert_eq!(s["cb"].alarms[0].code, SAT_CLOCK_SKEW);
        assert!(
            s["cb"].alarms[0].message.contains("121 s behind"),
            "{:?}",
            s["cb"].alarms
        );
        h.clock_skew("cb", 500);
        assert!(h.snapshot()["cb"].alarms.is_empty());
        assert_eq!(h.snapshot()["cb"].clock_skew_ms, Some(500));
    }

    #[test]
    fn a_failed_task_shows_until_steady() {
        let h = Health::default();
        h.register("d1");
        h.task_failed("d1", "the relay panicked");
        assert_eq!(h.snapshot()["d1"].alarms[0].code, SAT_TASK_FAILED);
        // The link's own state is not the task's.
        assert_eq!(h.snapshot()["d1"].state, "unknown");
        h.task_steady("d1");
        assert!(h.snapshot()["d1"].alarms.is_empty());
    }
}
