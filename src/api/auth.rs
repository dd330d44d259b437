//! The bearer token of the API's TCP listener. The Unix socket needs none:
//! its file permissions decide who may connect. Over TCP any local process
//! can connect, so every request there carries `Authorization: Bearer
//! <token>`, the token read at start-up from a 0600 file or a systemd
//! credential ([`crate::upstream::secret`]). It is compared in constant time
//! and never logged.

use super::error::{error, ApiCode};
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Shorter tokens are refused at start-up: a guessable token would make the
/// TCP listener as open as a socket with mode 0666.
pub const MIN_TOKEN_LEN: usize = 32;

/// The token the TCP listener expects, kept as its SHA-256 digest: digests
/// compare in constant time whatever the length of what a client sends.
#[derive(Clone)]
pub struct Token(Arc<Zeroizing<[u8; 32]>>);

impl Token {
    /// Checks a token read from its source. The error names what is wrong,
    /// never the token.
    pub fn new(token: &str) -> Result<Token, String> {
        if token.len() < MIN_TOKEN_LEN {
            return Err(format!(
                "the token is {} characters long: at least {MIN_TOKEN_LEN} (e.g. `head -c 32 /dev/urandom | base64`)",
                token.len()
            ));
        }
        // It goes in an HTTP header as it is: visible ASCII, no space.
        if let Some(i) = token.bytes().position(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "the token has a space, control or non-ASCII character at byte {i}: use visible ASCII only (base64 does)"
            ));
        }
        Ok(Token(Arc::new(Zeroizing::new(digest(token.as_bytes())))))
    }

    fn admits(&self, presented: &[u8]) -> bool {
        bool::from(digest(presented).ct_eq(&self.0[..]))
    }
}

fn digest(b: &[u8]) -> [u8; 32] {
    Sha256::digest(b).into()
}

/// The token of an `Authorization: Bearer <token>` header (the scheme in
/// any case, RFC 9110), or `None` when there is no such header.
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|b| *b == b' ')?);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
}

/// Lets a request through only with the right bearer token; 401 in the
/// error shape with `WWW-Authenticate: Bearer` otherwise.
pub async fn require(token: Token, req: Request, next: Next) -> Response {
    let (message, challenge) = match presented(req.headers()) {
        Some(t) if token.admits(t) => return next.run(req).await,
        Some(_) => (
            "the bearer token is not this agent's",
            r#"Bearer realm="satellite", error="invalid_token""#,
        ),
        None => (
            "the TCP listener needs Authorization: Bearer <token> (the token of [api] token_file); the Unix socket needs none",
            r#"Bearer realm="satellite""#,
        ),
    };
    tracing::info!(method = %req.method(), path = %req.uri().path(), "local API over TCP: refused without a valid bearer token");
    let mut r = error(
        StatusCode::UNAUTHORIZED,
        ApiCode::UNAUTHORIZED,
        Some("Authorization"),
        message,
    );
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "c2F0ZWxsaXRlLWxvY2FsLWFwaS10ZXN0LXRva2VuLTAx";

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn only_the_right_token_is_admitted() {
        let t = Token::new(GOOD).unwrap();
        assert!(t.admits(GOOD.as_bytes()));
        assert!(!t.admits(&GOOD.as_bytes()[1..]));
        assert!(!t.admits(b""));
        assert!(!t.admits(format!("{GOOD}x").as_bytes()));
    }

    #[test]
    fn the_header_is_read_as_rfc_9110_says() {
        assert_eq!(
            presented(&headers(&format!("Bearer {GOOD}"))),
            Some(GOOD.as_bytes())
        );
        assert_eq!(
            presented(&headers(&format!("bearer  {GOOD} "))),
            Some(GOOD.as_bytes())
        );
        assert_eq!(presented(&headers(&format!("Basic {GOOD}"))), None);
        assert_eq!(presented(&headers(GOOD)), None);
        assert_eq!(presented(&HeaderMap::new()), None);
    }

    #[test]
    fn weak_or_unsendable_tokens_are_refused_without_being_shown() {
        let e = Token::new("short").err().unwrap();
        assert!(e.contains("at least 32") && !e.contains("short"), "{e}");
        let spaced = format!("{GOOD} {GOOD}");
        let e = Token::new(&spaced).err().unwrap();
        assert!(e.contains("byte 44") && !e.contains(GOOD), "{e}");
    }
}
