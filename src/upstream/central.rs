//! The central base's client: the long poll that brings production
//! requests, their acknowledgements, deferred card data, and the heartbeat.
//! `docs/central-base.openapi.yaml` is the protocol.

use super::auth::{self, Called, TokenSource};
use super::config::CentralBaseConfig;
use super::health::{self, Health};
use super::http;
use super::policy::Answer;
use crate::codes::ErrorCode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// The health map's name for the central base's API as the agent calls it
/// (requests, acknowledgements, deferred data, heartbeat); its events
/// endpoint is the `central-base` sink.
pub const API_LINK: &str = "central-base-api";

/// The most read of a poll's answer, and the most requests taken from one
/// (the protocol gives at most 50; what is not taken is not acknowledged,
/// so it comes again on the next poll).
pub const POLL_BODY_LIMIT: usize = 16 * 1024 * 1024;
pub const POLL_MAX_REQUESTS: usize = 100;

/// One production request as the long poll hands it over.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivery_id: String,
    /// The request, as the local API's `POST /v1/cards` body.
    pub request: Box<serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct Poll {
    requests: Vec<Delivery>,
}

/// The outcome of one request, told to the central base.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Ack {
    pub card_token: Option<String>,
    /// `ACCEPTED` or `REFUSED`.
    pub outcome: &'static str,
    /// `READY` or `REQUEST_ERROR`.
    pub status: &'static str,
    pub occurred_at: String,
    pub error_code: Option<ErrorCode>,
    pub field: Option<String>,
    pub reason: Option<String>,
}

/// Why deferred card data did not come: the code the card fails with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataError {
    pub code: ErrorCode,
    pub description: String,
    /// Worth another try shortly (the link, a busy server).
    pub transient: bool,
    /// The central base's `Retry-After`, if it gave one.
    pub retry_after: Option<Duration>,
}

/// The central base, as the agent calls it.
pub struct CentralBase {
    pub http: reqwest::Client,
    pub tokens: Arc<TokenSource>,
    base: String,
    kiosk: String,
    cfg: CentralBaseConfig,
    health: Health,
}

impl CentralBase {
    pub fn new(
        cfg: &CentralBaseConfig,
        kiosk: &str,
        health: &Health,
    ) -> Result<CentralBase, String> {
        let at = "upstream.central_base";
        let http = http::client(at, &cfg.tls, Duration::from_millis(cfg.timeout_ms))?;
        let tokens = Arc::new(TokenSource::new(at, http.clone(), cfg.auth.as_ref())?);
        health.register(API_LINK);
        // Every answer of the central base (token, API, events) tells its
        // time, not only the heartbeat's.
        let h = health.clone();
        tokens.observe_clock(move |skew| h.clock_skew(API_LINK, skew));
        Ok(CentralBase {
            http,
            tokens,
            base: format!("{}/kiosks/{}", cfg.url.trim_end_matches('/'), kiosk),
            kiosk: kiosk.to_string(),
            cfg: cfg.clone(),
            health: health.clone(),
        })
    }

    pub fn config(&self) -> &CentralBaseConfig {
        &self.cfg
    }

    pub fn kiosk(&self) -> &str {
        &self.kiosk
    }

    /// One long poll: the requests waiting for this kiosk (none after the
    /// wait). `Err` is why the call failed, already reported to health.
    pub async fn poll(&self) -> Result<Vec<Delivery>, CallError> {
        let wait = self.cfg.poll_wait_s;
        let url = format!("{}/requests?wait={wait}", self.base);
        // The server holds the call up to `wait`: the time-out is on top.
        let timeout = Duration::from_secs(wait) + Duration::from_millis(self.cfg.timeout_ms);
        let called = auth::call_within(&self.tokens, POLL_BODY_LIMIT, || {
            self.http.get(&url).timeout(timeout)
        })
        .await;
        let mut requests = match self.expect_ok(API_LINK, called)? {
            Some(body) => serde_json::from_slice::<Poll>(&body)
                .map(|p| p.requests)
                .map_err(|e| {
                    CallError::from(format!(
                        "the central base's requests answer is malformed: {e}"
                    ))
                })?,
            None => Vec::new(),
        };
        if requests.len() > POLL_MAX_REQUESTS {
            tracing::warn!(
                received = requests.len(),
                taken = POLL_MAX_REQUESTS,
                "the central base sent more requests than one poll takes: the rest come on the next poll"
            );
            requests.truncate(POLL_MAX_REQUESTS);
        }
        Ok(requests)
    }

    /// Tells the central base what became of a request.
    pub async fn ack(&self, delivery_id: &str, ack: &Ack) -> Result<(), CallError> {
        let url = format!("{}/requests/{}/ack", self.base, encode(delivery_id));
        let called = auth::call(&self.tokens, || self.http.post(&url).json(ack)).await;
        self.expect_ok(API_LINK, called).map(|_| ())
    }

    /// The heartbeat; answers the server's time, if it gave it.
    pub async fn heartbeat(&self, body: &serde_json::Value) -> Result<Option<String>, CallError> {
        let url = format!("{}/heartbeat", self.base);
        let called = auth::call(&self.tokens, || self.http.put(&url).json(body)).await;
        let body = self.expect_ok(API_LINK, called)?;
        Ok(body
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("serverTime")?.as_str().map(str::to_string)))
    }

    /// Deferred card data for `card_token`: the JSON object of its card
    /// data fields, in a buffer wiped when dropped.
    pub async fn card_data(&self, card_token: &str) -> Result<Zeroizing<Vec<u8>>, DataError> {
        let url = format!("{}/cards/{}/data", self.base, encode(card_token));
        let called = auth::call(&self.tokens, || self.http.get(&url)).await;
        match called {
            Called::NoToken(e) => {
                let code = health::auth_code(&e);
                self.health.down(API_LINK, code, &e.to_string());
                Err(DataError {
                    code,
                    description: format!("no access to the central base for the card data: {e}"),
                    transient: code != ErrorCode::SAT_AUTHENTICATION_FAILED,
                    retry_after: None,
                })
            }
            Called::Answered(Answer::Status { code: 200, .. }, Some(body)) => {
                self.health.up(API_LINK);
                // Into the wiped buffer without a copy when the body's
                // buffer is not shared.
                Ok(Zeroizing::new(Vec::from(body)))
            }
            Called::Answered(answer, _) => {
                self.health.observe(API_LINK, &answer);
                Err(data_error(&answer))
            }
        }
    }

    /// A 2xx gives its body; anything else is an error, told to health,
    /// with the server's `Retry-After`.
    fn expect_ok(&self, link: &str, called: Called) -> Result<Option<bytes::Bytes>, CallError> {
        match called {
            Called::NoToken(e) => {
                self.health.no_token(link, &e);
                Err(e.to_string().into())
            }
            Called::Answered(answer, body) => {
                self.health.observe(link, &answer);
                match answer {
                    Answer::Status { code, .. } if (200..300).contains(&code) => Ok(body),
                    Answer::Status {
                        code,
                        detail,
                        retry_after,
                    } => Err(CallError {
                        why: super::policy::describe(code, &detail),
                        retry_after,
                    }),
                    Answer::Timeout => Err("no answer within the time-out".to_string().into()),
                    Answer::Link(e) => Err(format!("cannot reach the central base: {e}").into()),
                }
            }
        }
    }
}

/// Why a call to the central base failed, and when it asks to be called
/// again (`Retry-After`, on any endpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub why: String,
    pub retry_after: Option<Duration>,
}

impl From<String> for CallError {
    fn from(why: String) -> CallError {
        CallError {
            why,
            retry_after: None,
        }
    }
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.why)
    }
}

/// What a failed card-data call means for the card. The central base's own
/// codes (CB_*, DP_*) are taken as it reports them; failures on the way
/// there are the satellite's (SAT_*).
pub fn data_error(answer: &Answer) -> DataError {
    let reported = |detail: &str| -> Option<ErrorCode> {
        let code: ErrorCode = detail.parse().ok()?;
        let s = code.as_str();
        (s.starts_with("CB_") || s.starts_with("DP_")).then_some(code)
    };
    match answer {
        Answer::Status {
            code,
            detail,
            retry_after,
        } => {
            // Busy or slow (408, 429, 5xx): worth another try, whatever the
            // code given.
            let busy = matches!(code, 408 | 429 | 500..=599);
            if let Some(c) = reported(detail) {
                return DataError {
                    code: c,
                    description: format!("the central base reports {c}: {}", c.description()),
                    transient: busy,
                    retry_after: *retry_after,
                };
            }
            if let Some(c) = health::sat_code(answer) {
                return DataError {
                    code: c,
                    description: format!("the central base did not answer usably: {answer}"),
                    transient: c != ErrorCode::SAT_AUTHENTICATION_FAILED,
                    retry_after: *retry_after,
                };
            }
            let (c, transient) = match code {
                403 => (ErrorCode::CB_SERVICE_NOT_ALLOWED, false),
                404 => (ErrorCode::DP_NOT_AVAILABLE, false),
                408 => (ErrorCode::CB_TIME, true),
                429 | 500..=599 => (ErrorCode::CB_NOT_AVAILABLE, true),
                _ => (ErrorCode::UNKNOWN_ERROR, false),
            };
            DataError {
                code: c,
                description: format!(
                    "the central base answered {} for the card data",
                    super::policy::describe(*code, detail)
                ),
                transient,
                retry_after: *retry_after,
            }
        }
        other => {
            let c = health::sat_code(other).unwrap_or(ErrorCode::SAT_SERVER_NOT_REACHABLE);
            DataError {
                code: c,
                description: match other {
                    Answer::Timeout => "the central base did not answer in time".into(),
                    Answer::Link(e) => format!("cannot reach the central base: {e}"),
                    Answer::Status { .. } => unreachable!("handled above"),
                },
                transient: true,
                retry_after: None,
            }
        }
    }
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, detail: &str) -> Answer {
        Answer::Status {
            code,
            retry_after: None,
            detail: detail.into(),
        }
    }

    #[test]
    fn the_central_bases_codes_are_taken_as_reported() {
        for (http, code) in [
            (503, ErrorCode::DP_NOT_AVAILABLE),
            (502, ErrorCode::DP_IO_ERROR),
            (504, ErrorCode::DP_TIMEOUT),
            (503, ErrorCode::CB_NOT_AVAILABLE),
            (503, ErrorCode::CB_DB_NOT_AVAILABLE),
            (503, ErrorCode::CB_NETWORK_NOT_AVAILABLE),
            (401, ErrorCode::CB_AUTHENTICATION_FAILED),
            (403, ErrorCode::CB_SERVICE_NOT_ALLOWED),
            (504, ErrorCode::CB_TIME),
        ] {
            let e = data_error(&status(http, code.as_str()));
            assert_eq!(e.code, code);
            assert!(
                e.description.contains(code.description()),
                "{}",
                e.description
            );
        }
        // A printer or request code in the body is not the central base's to give.
        assert_eq!(
            data_error(&status(500, "PRT_COVER_OPEN")).code,
            ErrorCode::CB_NOT_AVAILABLE
        );
    }

    #[test]
    fn failures_on_the_way_are_the_satellites() {
        assert_eq!(
            data_error(&Answer::Timeout).code,
            ErrorCode::SAT_SERVER_NOT_REACHABLE
        );
        assert_eq!(
            data_error(&Answer::Link("Connection refused".into())).code,
            ErrorCode::SAT_SERVER_NOT_REACHABLE
        );
        assert_eq!(
            data_error(&Answer::Link("dns error: failed to lookup address".into())).code,
            ErrorCode::SAT_NETWORK_NOT_AVAILABLE
        );
        let e = data_error(&status(401, ""));
        assert_eq!(e.code, ErrorCode::SAT_AUTHENTICATION_FAILED);
        assert!(!e.transient);
        assert_eq!(
            data_error(&status(502, "")).code,
            ErrorCode::SAT_SERVER_NOT_REACHABLE
        );
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn a_busy_or_slow_central_base_is_worth_another_try_and_a_refusal_is_not() {
        let busy = Answer::Status {
            code: 429,
            retry_after: Some(Duration::from_secs(7)),
            detail: String::new(),
        };
        let e = data_error(&busy);
        assert_eq!(e.code, ErrorCode::CB_NOT_AVAILABLE);
        assert!(e.transient);
        assert_eq!(e.retry_after, Some(Duration::from_secs(7)));
        let e = data_error(&status(408, ""));
        assert_eq!((e.code, e.transient), (ErrorCode::CB_TIME, true));
        for (http, code) in [(503, "DP_NOT_AVAILABLE"), (429, "CB_NOT_AVAILABLE")] {
            assert!(data_error(&status(http, code)).transient, "{http} {code}");
        }
        for (http, code) in [
            (403, "CB_SERVICE_NOT_ALLOWED"),
            (401, "CB_AUTHENTICATION_FAILED"),
            (404, "DP_NOT_AVAILABLE"),
            (404, ""),
            (400, ""),
        ] {
            assert!(!data_error(&status(http, code)).transient, "{http} {code}");
        }
        assert!(data_error(&Answer::Link("Connection refused".into())).transient);
        assert!(data_error(&Answer::Timeout).transient);
    }
}
