//! The HTTPS client of one upstream: rustls, the built-in roots or, when
//! `ca_file` is set, that file's CAs alone (a bank trusts its private CA, not
//! every public one), an optional client certificate, no redirects (a 3xx is
//! an answer, not an instruction), no proxy (one from the environment would
//! silently route card events elsewhere), a time-out per call.
//!
//! Every answer's body is read as a stream up to a bound (an upstream that
//! sends without end cannot exhaust memory), and its `Date` header tells
//! how far this kiosk's clock is from the upstream's.

use super::config::TlsConfig;
use super::policy::{self, Answer};
use super::secret::SecretSource;
use std::time::Duration;

/// Builds the client for one upstream.
pub fn client(at: &str, tls: &TlsConfig, timeout: Duration) -> Result<reqwest::Client, String> {
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .https_only(false)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout.min(Duration::from_secs(10)))
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(50))
        .no_proxy()
        .user_agent(concat!("satellite/", env!("CARGO_PKG_VERSION")));
    if let Some(ca) = &tls.ca_file {
        let pem =
            std::fs::read(ca).map_err(|e| format!("{at}.tls.ca_file {}: {e}", ca.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
            format!(
                "{at}.tls.ca_file {}: not PEM certificates: {e}",
                ca.display()
            )
        })?;
        if certs.is_empty() {
            return Err(format!(
                "{at}.tls.ca_file {}: no certificate in it",
                ca.display()
            ));
        }
        // This file alone: the built-in public roots would let any public
        // CA vouch for the bank's central base.
        b = b.tls_built_in_root_certs(false);
        for c in certs {
            b = b.add_root_certificate(c);
        }
    }
    if let Some(cert) = &tls.client_cert_file {
        let key = SecretSource::from_keys(
            "client_key",
            tls.client_key_file.as_ref(),
            tls.client_key_credential.as_ref(),
        )?
        .ok_or_else(|| format!("{at}.tls: client_cert_file without its key"))?;
        let mut pem = zeroize::Zeroizing::new(
            std::fs::read(cert)
                .map_err(|e| format!("{at}.tls.client_cert_file {}: {e}", cert.display()))?,
        );
        pem.push(b'\n');
        pem.extend_from_slice(key.read().map_err(|e| format!("{at}.tls: {e}"))?.as_bytes());
        let id = reqwest::Identity::from_pem(&pem)
            .map_err(|e| format!("{at}.tls: the client certificate and key do not load: {e}"))?;
        b = b.identity(id);
    }
    b.build()
        .map_err(|e| format!("{at}: cannot build the HTTPS client: {e}"))
}

/// The most read of a 2xx's body unless a call says otherwise (event,
/// acknowledgement and D1 answers are a few hundred bytes; a deferred
/// card's data a few KiB, with room for a chip script).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// The most read of an error's body: only its code is wanted.
pub const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// What one call came to: the answer as the policy reads it, the body (a
/// 2xx's, or an error's, read up to the bound), and this kiosk's clock
/// minus the upstream's from its `Date` header.
#[derive(Debug)]
pub struct Answered {
    pub answer: Answer,
    pub body: Option<bytes::Bytes>,
    pub skew_ms: Option<i64>,
}

/// An answer as the policy reads it: status, `Retry-After`, and the
/// receiver's error code from a JSON body (`errorCode`, `error`), if any;
/// the body read up to [`BODY_LIMIT`].
pub async fn answer(
    result: Result<reqwest::Response, reqwest::Error>,
) -> (Answer, Option<bytes::Bytes>) {
    let a = read(result, BODY_LIMIT).await;
    (a.answer, a.body)
}

/// [`answer`] with a bound of `limit` bytes for a 2xx's body. A 2xx whose
/// body is larger is refused (`Answer::Link`, retried like a link failure,
/// told to health); an error's body is read up to [`ERROR_BODY_LIMIT`]
/// only for its code, the rest ignored.
pub async fn read(result: Result<reqwest::Response, reqwest::Error>, limit: usize) -> Answered {
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => {
            return Answered {
                answer: failure(&e),
                body: None,
                skew_ms: None,
            }
        }
    };
    let code = resp.status().as_u16();
    let received = std::time::SystemTime::now();
    let skew_ms = resp
        .headers()
        .get(reqwest::header::DATE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| skew_of_date(received, v));
    let retry_after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| policy::retry_after(v, unix_now()));
    let ok = (200..300).contains(&code);
    let bound = if ok {
        limit
    } else {
        ERROR_BODY_LIMIT.min(limit)
    };
    let body = match bounded_body(&mut resp, bound).await {
        Ok(b) => Some(b),
        Err(Body::TooLarge) if ok => {
            tracing::warn!(
                url = %resp.url(),
                status = code,
                limit_bytes = bound,
                "an upstream answer's body exceeds its bound: refused"
            );
            return Answered {
                answer: Answer::Link(too_large(bound)),
                body: None,
                skew_ms,
            };
        }
        // An error's code is in its first bytes, if anywhere.
        Err(Body::TooLarge) => None,
        Err(Body::Failed(e)) if ok => {
            return Answered {
                answer: failure(&e),
                body: None,
                skew_ms,
            }
        }
        Err(Body::Failed(_)) => None,
    };
    // Only an error body is read for its code: a 2xx may carry card data
    // (deferred data), which must not be copied around.
    let detail = if ok {
        String::new()
    } else {
        body.as_deref().map(error_code_of).unwrap_or_default()
    };
    Answered {
        answer: Answer::Status {
            code,
            retry_after,
            detail,
        },
        body,
        skew_ms,
    }
}

/// The cause given for a body over its bound.
pub fn too_large(limit: usize) -> String {
    format!(
        "the answer's body exceeds {} KiB: refused unread",
        limit / 1024
    )
}

enum Body {
    TooLarge,
    Failed(reqwest::Error),
}

/// The body, chunk by chunk, stopping at `limit` bytes (a `Content-Length`
/// over it is refused before any is read).
async fn bounded_body(resp: &mut reqwest::Response, limit: usize) -> Result<bytes::Bytes, Body> {
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(Body::TooLarge);
    }
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(Body::Failed)? {
        if buf.len() + chunk.len() > limit {
            return Err(Body::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// This clock minus the server's from an HTTP `Date` (whole seconds,
/// truncated: the server's time is taken half a second on). `None` when
/// it does not parse.
pub fn skew_of_date(received: std::time::SystemTime, date: &str) -> Option<i64> {
    let server = httpdate::parse_http_date(date).ok()? + Duration::from_millis(500);
    Some(match received.duration_since(server) {
        Ok(ahead) => ahead.as_millis().min(i64::MAX as u128) as i64,
        Err(behind) => -(behind.duration().as_millis().min(i64::MAX as u128) as i64),
    })
}

/// A failed call: a time-out, or a link failure with its innermost cause.
pub fn failure(e: &reqwest::Error) -> Answer {
    if e.is_timeout() {
        return Answer::Timeout;
    }
    Answer::Link(cause(e))
}

/// The innermost cause of an error: "connection refused", "invalid peer
/// certificate: UnknownIssuer"...
pub fn cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        last = s.to_string();
        src = s.source();
    }
    last
}

/// The `errorCode` (or OAuth `error`) of a JSON error body, printable and short.
pub fn error_code_of(body: &[u8]) -> String {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return String::new();
    };
    let code = v
        .get("errorCode")
        .or_else(|| v.get("error"))
        .and_then(|c| c.as_str())
        .unwrap_or("");
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(64)
        .collect()
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn skew_is_read_from_the_date_header() {
        let t = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        // 1994-11-06T08:49:37Z is 784111777 s.
        let date = "Sun, 06 Nov 1994 08:49:37 GMT";
        assert_eq!(skew_of_date(t(784_111_777_500), date), Some(0));
        assert_eq!(skew_of_date(t(784_111_907_500), date), Some(130_000));
        assert_eq!(skew_of_date(t(784_111_647_500), date), Some(-130_000));
        assert_eq!(skew_of_date(t(784_111_777_500), "yesterday"), None);
    }
}
