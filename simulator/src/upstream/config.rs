//! What a stub is started with: the library's [`StubConfig`], which the
//! `upstream-stub` binary fills from its command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Server certificate and key (PEM), and the CA whose certificates clients
/// must present when mutual TLS is wanted.
#[derive(Clone, Debug)]
pub struct TlsConfig {
    /// The server's certificate chain, leaf first (PEM).
    pub cert_chain_pem: String,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_pem: String,
    /// When set, a client must present a certificate issued by this CA
    /// (mutual TLS); a client without one fails the handshake.
    pub client_ca_pem: Option<String>,
}

/// Everything a [`super::Stub`] needs. `Default` gives a plain-HTTP stub on
/// an ephemeral loopback port for kiosk `WIS00001`, client `satellite` with
/// secret `stub-secret`.
#[derive(Clone, Debug)]
pub struct StubConfig {
    /// The upstream listener (central base, webhook receiver, D1). Port 0
    /// picks a free port; "down" faults re-bind the port first bound.
    pub listen: SocketAddr,
    /// The plain-HTTP control listener (`/_stub/...`), if any. The library
    /// API ([`super::Control`]) works without it.
    pub control_listen: Option<SocketAddr>,
    /// Prefix of the central-base paths, `/cb/v1` by default.
    pub base_path: String,
    /// Prefix of the D1 paths, `/d1` by default.
    pub d1_prefix: String,
    /// The one kiosk this central base knows.
    pub kiosk_id: String,
    /// OAuth 2.0 client id the agent authenticates as.
    pub client_id: String,
    /// Shared secret (form or HTTP Basic); `None` refuses secret auth.
    pub client_secret: Option<String>,
    /// PEM public key (SPKI) checking RFC 7523 assertions (ES256 or RS256);
    /// `None` refuses assertion auth.
    pub client_jwt_key_pem: Option<String>,
    /// Lifetime of issued access tokens.
    pub token_ttl: Duration,
    /// TLS on the upstream listener; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Append every received call as a JSON line to this file.
    pub record: Option<PathBuf>,
    /// Standard Webhooks secrets (`whsec_...`); several are valid at once
    /// during a rotation.
    pub webhook_secrets: Vec<String>,
    /// How far a webhook's timestamp may be from now.
    pub webhook_tolerance: Duration,
    /// The D1 issuer id accepted in track paths.
    pub d1_issuer_id: String,
}

impl Default for StubConfig {
    fn default() -> Self {
        StubConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            control_listen: None,
            base_path: "/cb/v1".into(),
            d1_prefix: "/d1".into(),
            kiosk_id: "WIS00001".into(),
            client_id: "satellite".into(),
            client_secret: Some("stub-secret".into()),
            client_jwt_key_pem: None,
            token_ttl: Duration::from_secs(300),
            tls: None,
            record: None,
            webhook_secrets: Vec::new(),
            webhook_tolerance: Duration::from_secs(300),
            d1_issuer_id: "ISSUER1".into(),
        }
    }
}
