//! The HTTPS client of one upstream: rustls, the built-in roots plus the
//! configured CAs, an optional client certificate, no redirects (a 3xx is an
//! answer, not an instruction), a time-out per call.

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

/// An answer as the policy reads it: status, `Retry-After`, and the
/// receiver's error code from a JSON body (`errorCode`, `error`), if any.
pub async fn answer(
    result: Result<reqwest::Response, reqwest::Error>,
) -> (Answer, Option<bytes::Bytes>) {
    match result {
        Ok(resp) => {
            let code = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| policy::retry_after(v, unix_now()));
            let body = resp.bytes().await.ok();
            // Only an error body is read for its code: a 2xx may carry card
            // data (deferred data), which must not be copied around.
            let detail = if (200..300).contains(&code) {
                String::new()
            } else {
                body.as_deref().map(error_code_of).unwrap_or_default()
            };
            (
                Answer::Status {
                    code,
                    retry_after,
                    detail,
                },
                body,
            )
        }
        Err(e) => (failure(&e), None),
    }
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
