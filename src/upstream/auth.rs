//! OAuth 2.0 client credentials: one access token per upstream, cached and
//! renewed before it expires; a 401 from the API renews it once and the
//! call is tried once more, never in a loop.
//!
//! The client proves itself with a secret (`client_secret_post`) or with a
//! JWT assertion (RFC 7523) signed by its private key: `iss` = `sub` = the
//! client id, `aud` = the token endpoint, one minute of life and a fresh
//! `jti`, so that a captured assertion cannot be used twice.

use super::config::{AuthConfig, ClientAuth};
use super::http;
use super::policy::Answer;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

/// Why no token could be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The token endpoint refused the client (400/401 `invalid_client`...).
    #[error("the token endpoint refused this client: {0}")]
    Refused(String),
    /// The token endpoint could not be reached or failed.
    #[error("the token endpoint did not answer usably: {0}")]
    Unreachable(Answer),
    /// The local secret or key cannot be read or used.
    #[error("{0}")]
    Local(String),
}

struct Cached {
    token: Zeroizing<String>,
    renew_at: Instant,
}

/// The token of one upstream: OAuth 2.0 client credentials, or none at all
/// when mutual TLS identifies the kiosk (no `Authorization` is sent).
pub struct TokenSource {
    at: String,
    http: reqwest::Client,
    oauth: Option<OAuth>,
    cache: Mutex<Option<Cached>>,
    /// Told the clock skew of each answer (the token endpoint's and the
    /// API's), when someone listens.
    clock: std::sync::OnceLock<Box<dyn Fn(i64) + Send + Sync>>,
}

struct OAuth {
    token_url: String,
    client_id: String,
    scope: Option<String>,
    auth: ClientAuth,
}

/// The most read of a token endpoint's answer: a token and a few fields.
pub const TOKEN_BODY_LIMIT: usize = 64 * 1024;

#[derive(serde::Deserialize)]
struct TokenAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
    jti: String,
}

impl TokenSource {
    /// `cfg` `None`: no token (mutual TLS identifies the kiosk).
    pub fn new(
        at: &str,
        http: reqwest::Client,
        cfg: Option<&AuthConfig>,
    ) -> Result<TokenSource, String> {
        let oauth = match cfg {
            Some(cfg) => Some(OAuth {
                token_url: cfg.token_url.clone(),
                client_id: cfg.client_id.clone(),
                scope: cfg.scope.clone(),
                auth: cfg.client_auth(at)?,
            }),
            None => None,
        };
        Ok(TokenSource {
            at: at.to_string(),
            http,
            oauth,
            cache: Mutex::new(None),
            clock: std::sync::OnceLock::new(),
        })
    }

    /// Calls `f` with this clock minus the upstream's (ms) from the `Date`
    /// of every answer this source's calls get. Set once.
    pub fn observe_clock(&self, f: impl Fn(i64) + Send + Sync + 'static) {
        let _ = self.clock.set(Box::new(f));
    }

    fn saw(&self, skew_ms: Option<i64>) {
        if let (Some(s), Some(f)) = (skew_ms, self.clock.get()) {
            f(s);
        }
    }

    /// A valid token: the cached one, or a new one; empty when the kiosk
    /// goes without (mutual TLS).
    pub async fn token(&self) -> Result<Zeroizing<String>, AuthError> {
        let Some(oauth) = &self.oauth else {
            return Ok(Zeroizing::new(String::new()));
        };
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref().filter(|c| Instant::now() < c.renew_at) {
            return Ok(c.token.clone());
        }
        let fresh = self.fetch(oauth).await?;
        let token = fresh.token.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// Forgets `token` after the API refused it (unless it was renewed
    /// meanwhile by another call).
    pub async fn invalidate(&self, token: &str) {
        let mut cache = self.cache.lock().await;
        if cache.as_ref().is_some_and(|c| c.token.as_str() == token) {
            *cache = None;
        }
    }

    async fn fetch(&self, oauth: &OAuth) -> Result<Cached, AuthError> {
        let mut form: Vec<(&str, Zeroizing<String>)> = vec![
            ("grant_type", Zeroizing::new("client_credentials".into())),
            ("client_id", Zeroizing::new(oauth.client_id.clone())),
        ];
        if let Some(s) = &oauth.scope {
            form.push(("scope", Zeroizing::new(s.clone())));
        }
        match &oauth.auth {
            ClientAuth::Secret(src) => {
                form.push(("client_secret", src.read().map_err(AuthError::Local)?));
            }
            ClientAuth::Assertion(src) => {
                form.push((
                    "client_assertion_type",
                    Zeroizing::new("urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()),
                ));
                form.push(("client_assertion", self.assertion(oauth, src)?));
            }
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let sent = Instant::now();
        let result = self.http.post(&oauth.token_url).form(&pairs).send().await;
        let got = http::read(result, TOKEN_BODY_LIMIT).await;
        self.saw(got.skew_ms);
        let (answer, body) = (got.answer, got.body);
        match &answer {
            Answer::Status { code: 200, .. } => {}
            Answer::Status { code, detail, .. } if matches!(code, 400 | 401 | 403) => {
                tracing::warn!(upstream = %self.at, status = code, error = %detail, "the token endpoint refused this client");
                return Err(AuthError::Refused(super::policy::describe(*code, detail)));
            }
            _ => return Err(AuthError::Unreachable(answer)),
        }
        let parsed: TokenAnswer = body
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .filter(|t: &TokenAnswer| !t.access_token.is_empty())
            .ok_or_else(|| {
                AuthError::Unreachable(Answer::Status {
                    code: 200,
                    retry_after: None,
                    detail: "token answer without access_token".into(),
                })
            })?;
        // Renewed at 80 % of its life (at least 10 s before it ends), so a
        // call never goes out with a token about to expire.
        let life = Duration::from_secs(parsed.expires_in.unwrap_or(300).max(1));
        let margin = (life / 5).max(Duration::from_secs(10)).min(life / 2);
        tracing::debug!(upstream = %self.at, expires_in_s = life.as_secs(), "new access token");
        Ok(Cached {
            token: Zeroizing::new(parsed.access_token),
            renew_at: sent + life - margin,
        })
    }

    fn assertion(
        &self,
        oauth: &OAuth,
        key: &super::secret::SecretSource,
    ) -> Result<Zeroizing<String>, AuthError> {
        let pem = key.read().map_err(AuthError::Local)?;
        let (alg, enc) = if let Ok(k) = jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()) {
            (jsonwebtoken::Algorithm::ES256, k)
        } else if let Ok(k) = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()) {
            (jsonwebtoken::Algorithm::RS256, k)
        } else {
            return Err(AuthError::Local(format!(
                "{}: the assertion key is neither an EC P-256 nor an RSA private key in PEM",
                self.at
            )));
        };
        let now = http::unix_now();
        let claims = Claims {
            iss: &oauth.client_id,
            sub: &oauth.client_id,
            aud: &oauth.token_url,
            iat: now,
            exp: now + 60,
            jti: uuid::Uuid::new_v4().to_string(),
        };
        jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &enc)
            .map(Zeroizing::new)
            .map_err(|e| AuthError::Local(format!("{}: cannot sign the assertion: {e}", self.at)))
    }
}

/// What an authenticated call came to.
pub enum Called {
    /// An HTTP answer (any status) or a transport failure, as the policy reads it.
    Answered(Answer, Option<bytes::Bytes>),
    /// No token could be had.
    NoToken(AuthError),
}

/// Sends `build()` with the bearer token (none under mutual TLS alone); a
/// 401 renews the token once and sends once more. The answer's body is read
/// up to [`http::BODY_LIMIT`].
pub async fn call(tokens: &TokenSource, build: impl Fn() -> reqwest::RequestBuilder) -> Called {
    call_within(tokens, http::BODY_LIMIT, build).await
}

/// [`call`] reading a 2xx's body up to `limit` bytes.
pub async fn call_within(
    tokens: &TokenSource,
    limit: usize,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Called {
    // Without OAuth there is nothing to renew.
    let mut renewed = tokens.oauth.is_none();
    loop {
        let token = match tokens.token().await {
            Ok(t) => t,
            Err(e) => return Called::NoToken(e),
        };
        let request = if token.is_empty() {
            build()
        } else {
            build().bearer_auth(token.as_str())
        };
        let got = http::read(request.send().await, limit).await;
        tokens.saw(got.skew_ms);
        let (answer, body) = (got.answer, got.body);
        if matches!(answer, Answer::Status { code: 401, .. }) && !renewed {
            tracing::info!(upstream = %tokens.at, "the access token was refused: renewing it once");
            tokens.invalidate(&token).await;
            renewed = true;
            continue;
        }
        return Called::Answered(answer, body);
    }
}
