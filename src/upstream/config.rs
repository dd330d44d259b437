//! `[upstream]`: the central base, the issuer's webhooks and D1, in any
//! combination. Secrets are named by file or systemd credential, never
//! written here. Checked when the configuration is read.

use super::forms::Form;
use super::secret::SecretSource;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    pub central_base: Option<CentralBaseConfig>,
    #[serde(rename = "webhook", default)]
    pub webhooks: Vec<WebhookConfig>,
    pub d1: Option<D1Config>,
    /// Delivered events older than this are pruned (each card keeps its
    /// final status).
    #[serde(default = "retention_days")]
    pub retention_days: u32,
    /// The store's size at which new requests are refused (MiB; 0: none).
    /// An alarm is raised at 80 %.
    #[serde(default = "store_limit_mb")]
    pub store_limit_mb: u64,
    /// The first retry delay and the longest (milliseconds).
    #[serde(default = "backoff_first_ms")]
    pub backoff_first_ms: u64,
    #[serde(default = "backoff_cap_ms")]
    pub backoff_cap_ms: u64,
    /// A delivery that fails on its own (the receiver takes others) is
    /// backed off alone, up to this delay (milliseconds)...
    #[serde(default = "event_backoff_cap_ms")]
    pub event_backoff_cap_ms: u64,
    /// ... and parked (kept for an operator to replay) after this many
    /// failed attempts, or when it fails and its status change is older
    /// than `park_after_hours`.
    #[serde(default = "park_after_attempts")]
    pub park_after_attempts: u32,
    #[serde(default = "park_after_hours")]
    pub park_after_hours: u32,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            central_base: None,
            webhooks: Vec::new(),
            d1: None,
            retention_days: retention_days(),
            store_limit_mb: store_limit_mb(),
            backoff_first_ms: backoff_first_ms(),
            backoff_cap_ms: backoff_cap_ms(),
            event_backoff_cap_ms: event_backoff_cap_ms(),
            park_after_attempts: park_after_attempts(),
            park_after_hours: park_after_hours(),
        }
    }
}

fn retention_days() -> u32 {
    30
}
fn store_limit_mb() -> u64 {
    1024
}
fn backoff_first_ms() -> u64 {
    500
}
fn backoff_cap_ms() -> u64 {
    60_000
}
/// Ten minutes: ten attempts then span about a quarter of an hour, long
/// enough for a receiver's fix to be deployed, short enough that an
/// operator sees a parked delivery the same day.
fn event_backoff_cap_ms() -> u64 {
    600_000
}
fn park_after_attempts() -> u32 {
    10
}
fn park_after_hours() -> u32 {
    24
}

/// OAuth 2.0 client credentials: a client secret, or a JWT assertion signed
/// with a private key (PEM, EC P-256 or RSA).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    pub token_url: String,
    pub client_id: String,
    pub client_secret_file: Option<PathBuf>,
    pub client_secret_credential: Option<String>,
    pub assertion_key_file: Option<PathBuf>,
    pub assertion_key_credential: Option<String>,
    pub scope: Option<String>,
}

/// How the client authenticates at the token endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientAuth {
    Secret(SecretSource),
    Assertion(SecretSource),
}

impl AuthConfig {
    pub fn client_auth(&self, at: &str) -> Result<ClientAuth, String> {
        let secret = SecretSource::from_keys(
            "client_secret",
            self.client_secret_file.as_ref(),
            self.client_secret_credential.as_ref(),
        )
        .map_err(|e| format!("{at}.auth: {e}"))?;
        let key = SecretSource::from_keys(
            "assertion_key",
            self.assertion_key_file.as_ref(),
            self.assertion_key_credential.as_ref(),
        )
        .map_err(|e| format!("{at}.auth: {e}"))?;
        match (secret, key) {
            (Some(s), None) => Ok(ClientAuth::Secret(s)),
            (None, Some(k)) => Ok(ClientAuth::Assertion(k)),
            (None, None) => Err(format!(
                "{at}.auth: give client_secret_file/_credential or assertion_key_file/_credential"
            )),
            (Some(_), Some(_)) => Err(format!(
                "{at}.auth: a client secret or an assertion key, not both"
            )),
        }
    }
}

/// Extra trust anchors and a client certificate (mutual TLS). The system's
/// roots are trusted too; certificates are always checked.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM bundle of CA certificates to trust besides the built-in roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate chain (PEM), for mutual TLS.
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
    pub client_key_credential: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentralBaseConfig {
    /// The protocol's base, e.g. `https://cb.example.com/cb/v1`.
    pub url: String,
    /// OAuth 2.0 client credentials; optional when mutual TLS identifies
    /// the kiosk (`tls.client_cert_file`): then no bearer token is sent.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    #[serde(default)]
    pub tls: TlsConfig,
    /// Take production requests from the central base (long poll).
    #[serde(default = "yes")]
    pub intake: bool,
    /// Send status changes to its events endpoint.
    #[serde(default = "yes")]
    pub events: bool,
    #[serde(default = "poll_wait_s")]
    pub poll_wait_s: u64,
    #[serde(default = "heartbeat_s")]
    pub heartbeat_s: u64,
    /// One call's time-out (a long poll gets its wait on top).
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Status changes per events call.
    #[serde(default = "batch")]
    pub batch: usize,
    /// How long a card whose data is deferred waits for it (seconds, from
    /// the first call): the central base failing for now (no connection,
    /// 408, 429, 5xx) is asked again with back-off meanwhile, the card
    /// READY; after this the card ends PRODUCTION_ERROR with the last
    /// failure's code, no blank card taken.
    #[serde(default = "data_patience_s")]
    pub data_patience_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Unique among sinks: names the outbox queue.
    pub name: String,
    pub url: String,
    /// One `whsec_...` secret per line; two during a rotation (every
    /// message is signed with each).
    pub secret_file: Option<PathBuf>,
    pub secret_credential: Option<String>,
    #[serde(default)]
    pub form: Form,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Deliveries in flight at once (of different cards).
    #[serde(default = "concurrency")]
    pub concurrency: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct D1Config {
    /// D1's API base, e.g. `https://api.d1.thalescloud.io/banking/v1`.
    pub url: String,
    pub issuer_id: String,
    /// The production site told to D1; this kiosk's id by default. At most
    /// [`D1_SITE_MAX_CHARS`] characters (D1's `productionSite`).
    pub production_site: Option<String>,
    pub auth: AuthConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default = "timeout_ms")]
    pub timeout_ms: u64,
    /// Calls in flight at once. One by default: D1 has no idempotency key,
    /// so each call in flight when the agent dies may be made again after
    /// the restart; with one, a crash costs at most one duplicate call.
    #[serde(default = "d1_concurrency")]
    pub concurrency: usize,
}

fn d1_concurrency() -> usize {
    1
}

fn yes() -> bool {
    true
}
fn poll_wait_s() -> u64 {
    25
}
fn heartbeat_s() -> u64 {
    30
}
fn timeout_ms() -> u64 {
    10_000
}
fn batch() -> usize {
    200
}
fn data_patience_s() -> u64 {
    300
}
/// The longest `data_patience_s`: a day.
pub const DATA_PATIENCE_MAX_S: u64 = 86_400;
fn concurrency() -> usize {
    8
}

/// Sink names: fixed for the central base and D1, configured for webhooks.
pub const CENTRAL_BASE_SINK: &str = "central-base";
pub const D1_SINK: &str = "d1";

/// D1's Track Card `productionSite` is at most 50 characters (`maxLength`
/// in the vendor's OpenAPI document): a longer one is refused for every
/// card, so it is refused at start-up instead.
pub const D1_SITE_MAX_CHARS: usize = 50;

/// The production site told to D1 fits `productionSite`; `key` names where
/// it comes from.
pub fn check_d1_site(key: &str, site: &str) -> Result<(), String> {
    let n = site.chars().count();
    if n > D1_SITE_MAX_CHARS {
        return Err(format!(
            "{key}: {n} characters; D1's productionSite takes at most {D1_SITE_MAX_CHARS}"
        ));
    }
    Ok(())
}

impl UpstreamConfig {
    /// Every rule a TOML type cannot say; each error names the key.
    pub fn check(&self) -> Result<(), String> {
        if let Some(cb) = &self.central_base {
            check_url("upstream.central_base.url", &cb.url)?;
            match &cb.auth {
                Some(auth) => {
                    check_url("upstream.central_base.auth.token_url", &auth.token_url)?;
                    auth.client_auth("upstream.central_base")?;
                }
                None if cb.tls.client_cert_file.is_none() => {
                    return Err(
                        "upstream.central_base.auth: needed unless mutual TLS identifies \
                                the kiosk (tls.client_cert_file and its key)"
                            .into(),
                    )
                }
                None => {}
            }
            check_tls("upstream.central_base.tls", &cb.tls)?;
            // 0 would be a poll without a wait: a request loop, not a long poll.
            if !(1..=60).contains(&cb.poll_wait_s) {
                return Err(format!(
                    "upstream.central_base.poll_wait_s: {} is not a long poll's wait; 1 to 60 seconds",
                    cb.poll_wait_s
                ));
            }
            if cb.heartbeat_s == 0 {
                return Err("upstream.central_base.heartbeat_s: at least 1".into());
            }
            if !(1..=500).contains(&cb.batch) {
                return Err("upstream.central_base.batch: 1 to 500".into());
            }
            if !(1..=DATA_PATIENCE_MAX_S).contains(&cb.data_patience_s) {
                return Err(format!(
                    "upstream.central_base.data_patience_s: 1 to {DATA_PATIENCE_MAX_S}"
                ));
            }
        }
        let mut names = vec![CENTRAL_BASE_SINK.to_string(), D1_SINK.to_string()];
        for (i, w) in self.webhooks.iter().enumerate() {
            let at = format!("upstream.webhook[{i}]");
            if w.name.trim().is_empty() || names.contains(&w.name) {
                return Err(format!(
                    "{at}.name: {:?} is empty or already used (names are unique; \
                     {CENTRAL_BASE_SINK:?} and {D1_SINK:?} are reserved)",
                    w.name
                ));
            }
            names.push(w.name.clone());
            check_url(&format!("{at}.url"), &w.url)?;
            if SecretSource::from_keys(
                "secret",
                w.secret_file.as_ref(),
                w.secret_credential.as_ref(),
            )
            .map_err(|e| format!("{at}: {e}"))?
            .is_none()
            {
                return Err(format!("{at}: give secret_file or secret_credential"));
            }
            check_tls(&format!("{at}.tls"), &w.tls)?;
            if !(1..=64).contains(&w.concurrency) {
                return Err(format!("{at}.concurrency: 1 to 64"));
            }
        }
        if let Some(d1) = &self.d1 {
            check_url("upstream.d1.url", &d1.url)?;
            check_url("upstream.d1.auth.token_url", &d1.auth.token_url)?;
            d1.auth.client_auth("upstream.d1")?;
            check_tls("upstream.d1.tls", &d1.tls)?;
            if d1.issuer_id.is_empty()
                || !d1
                    .issuer_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err("upstream.d1.issuer_id: letters, digits, - and _ only".into());
            }
            if !(1..=64).contains(&d1.concurrency) {
                return Err("upstream.d1.concurrency: 1 to 64".into());
            }
            if let Some(site) = &d1.production_site {
                check_d1_site("upstream.d1.production_site", site)?;
            }
        }
        if self.backoff_first_ms == 0 || self.backoff_cap_ms < self.backoff_first_ms {
            return Err(
                "upstream: backoff_first_ms must be at least 1 and backoff_cap_ms at least that"
                    .into(),
            );
        }
        if self.event_backoff_cap_ms < self.backoff_first_ms {
            return Err("upstream.event_backoff_cap_ms: at least backoff_first_ms".into());
        }
        if !(1..=1000).contains(&self.park_after_attempts) {
            return Err("upstream.park_after_attempts: 1 to 1000".into());
        }
        if !(1..=720).contains(&self.park_after_hours) {
            return Err("upstream.park_after_hours: 1 to 720 (30 days)".into());
        }
        Ok(())
    }

    /// A sink's scheduling limits.
    pub fn limits(&self, batch: usize, batched: bool) -> super::scheduler::Limits {
        let first = Duration::from_millis(self.backoff_first_ms);
        super::scheduler::Limits {
            sink: self.backoff(),
            event: super::policy::Backoff {
                first,
                cap: Duration::from_millis(self.event_backoff_cap_ms),
            },
            store: super::policy::Backoff {
                first: Duration::from_secs(1),
                cap: Duration::from_secs(30),
            },
            max_attempts: self.park_after_attempts,
            max_age: Duration::from_secs(u64::from(self.park_after_hours) * 3600),
            batch: batch.max(1),
            batched,
        }
    }

    pub fn backoff(&self) -> super::policy::Backoff {
        super::policy::Backoff {
            first: Duration::from_millis(self.backoff_first_ms),
            cap: Duration::from_millis(self.backoff_cap_ms),
        }
    }

    /// True when anything upstream is configured.
    pub fn any(&self) -> bool {
        self.central_base.is_some() || !self.webhooks.is_empty() || self.d1.is_some()
    }
}

/// `https://` always; `http://` only to this machine (tests, a local relay).
fn check_url(key: &str, url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("{key}: {url:?}: {e}"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "{key}: {url:?}: plain http is allowed to this machine only; use https"
        )),
        other => Err(format!("{key}: {url:?}: scheme {other:?} is not http(s)")),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(a)) => a.is_loopback(),
        Some(url::Host::Ipv6(a)) => a.is_loopback(),
        None => false,
    }
}

fn check_tls(key: &str, tls: &TlsConfig) -> Result<(), String> {
    let key_src = SecretSource::from_keys(
        "client_key",
        tls.client_key_file.as_ref(),
        tls.client_key_credential.as_ref(),
    )
    .map_err(|e| format!("{key}: {e}"))?;
    if tls.client_cert_file.is_some() != key_src.is_some() {
        return Err(format!(
            "{key}: mutual TLS needs both client_cert_file and client_key_file/_credential"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<UpstreamConfig, String> {
        let c: UpstreamConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.check()?;
        Ok(c)
    }

    #[test]
    fn a_full_configuration_reads() {
        let c = parse(
            r#"
            [central_base]
            url = "https://cb.example.com/cb/v1"
            [central_base.auth]
            token_url = "https://cb.example.com/oauth/token"
            client_id = "kiosk-1"
            client_secret_credential = "cb-secret"
            [[webhook]]
            name = "issuer"
            url = "https://issuer.example.com/hooks"
            secret_file = "/etc/satellite/webhook.secret"
            form = "d1_operation"
            [d1]
            url = "https://api.d1.example.com/banking/v1"
            issuer_id = "BANK1"
            [d1.auth]
            token_url = "https://api.d1.example.com/oauth2/token"
            client_id = "x"
            assertion_key_file = "/etc/satellite/d1.pem"
            "#,
        )
        .unwrap();
        assert!(c.any());
        assert_eq!(c.webhooks[0].form, Form::D1Operation);
        assert_eq!(c.central_base.unwrap().data_patience_s, 300);
    }

    #[test]
    fn the_patience_for_deferred_data_is_bounded() {
        let cb = |patience: &str| {
            parse(&format!(
                r#"
                [central_base]
                url = "https://cb.example.com/cb/v1"
                data_patience_s = {patience}
                [central_base.auth]
                token_url = "https://cb.example.com/oauth/token"
                client_id = "k"
                client_secret_file = "/s"
                "#
            ))
        };
        assert_eq!(cb("5").unwrap().central_base.unwrap().data_patience_s, 5);
        for bad in ["0", "86401"] {
            let e = cb(bad).unwrap_err();
            assert!(e.contains("data_patience_s: 1 to 86400"), "{e}");
        }
    }

    #[test]
    fn a_poll_without_a_wait_is_refused_with_its_bound() {
        let cb = |wait: u64| {
            parse(&format!(
                r#"
                [central_base]
                url = "https://cb.example.com/cb/v1"
                poll_wait_s = {wait}
                [central_base.auth]
                token_url = "https://cb.example.com/oauth/token"
                client_id = "k"
                client_secret_file = "/s"
                "#
            ))
        };
        let e = cb(0).unwrap_err();
        assert!(
            e.contains("upstream.central_base.poll_wait_s: 0") && e.contains("1 to 60"),
            "{e}"
        );
        assert!(cb(61).is_err());
        assert!(cb(1).is_ok() && cb(60).is_ok());
    }

    #[test]
    fn mistakes_are_named() {
        let e = parse(
            r#"
            [central_base]
            url = "http://cb.example.com/cb/v1"
            [central_base.auth]
            token_url = "https://cb.example.com/oauth/token"
            client_id = "k"
            client_secret_file = "/s"
            "#,
        )
        .unwrap_err();
        assert!(e.contains("plain http"), "{e}");
        // No OAuth: only when mutual TLS identifies the kiosk.
        let e = parse(
            r#"
            [central_base]
            url = "https://cb.example.com/cb/v1"
            "#,
        )
        .unwrap_err();
        assert!(
            e.contains("central_base.auth: needed unless mutual TLS"),
            "{e}"
        );
        parse(
            r#"
            [central_base]
            url = "https://cb.example.com/cb/v1"
            [central_base.tls]
            client_cert_file = "/c.pem"
            client_key_file = "/c.key"
            "#,
        )
        .unwrap();
        let e = parse(
            r#"
            [[webhook]]
            name = "d1"
            url = "https://x.example.com/"
            secret_file = "/s"
            "#,
        )
        .unwrap_err();
        assert!(e.contains("reserved"), "{e}");
        let e = parse(
            r#"
            [[webhook]]
            name = "w"
            url = "https://x.example.com/"
            "#,
        )
        .unwrap_err();
        assert!(e.contains("secret_file"), "{e}");
        let e = parse(
            r#"
            [d1]
            url = "https://d1.example.com/"
            issuer_id = "B"
            [d1.auth]
            token_url = "https://d1.example.com/t"
            client_id = "x"
            client_secret = "inline"
            "#,
        )
        .unwrap_err();
        assert!(e.contains("client_secret"), "{e}");
        let d1 = |site: &str| {
            parse(&format!(
                r#"
                [d1]
                url = "https://d1.example.com/"
                issuer_id = "B"
                production_site = "{site}"
                [d1.auth]
                token_url = "https://d1.example.com/t"
                client_id = "x"
                client_secret_file = "/s"
                "#
            ))
        };
        assert!(d1(&"é".repeat(50)).is_ok());
        let e = d1(&"K".repeat(51)).unwrap_err();
        assert!(e.contains("upstream.d1.production_site: 51"), "{e}");
        assert!(parse(
            "[[webhook]]\nname = \"w\"\nurl = \"http://127.0.0.1:9/\"\nsecret_file = \"/s\"\n"
        )
        .is_ok());
    }
}
