//! A kiosk with its upstream: the daemon (real store, simulator over a pty)
//! configured with the reference central base, an issuer webhook and D1,
//! all served by the stub over real HTTP on loopback.

use super::kiosk;
use printer_sim::upstream::{Stub, StubConfig, StubHandle};
use satellite::config::Config;
use satellite::upstream::UpstreamConfig;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const KIOSK: &str = "KIOSK01";
/// Two webhook secrets: the stub accepts either (a rotation in progress).
pub const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub struct Upstreamed {
    pub kiosk: kiosk::Parts,
    pub stub: StubHandle,
}

/// A stub for kiosk KIOSK01 with the webhook secret, on a free port.
pub async fn stub() -> StubHandle {
    stub_with(|_| {}).await
}

/// The same stub, adjusted by `f` (TLS, client authentication...).
pub async fn stub_with(f: impl FnOnce(&mut StubConfig)) -> StubHandle {
    let mut c = StubConfig {
        kiosk_id: KIOSK.into(),
        webhook_secrets: vec![WEBHOOK_SECRET.into()],
        ..StubConfig::default()
    };
    f(&mut c);
    Stub::start(c).await.expect("the stub starts")
}

/// How the kiosk reaches the central base, besides its URL: the CA it
/// trusts, its client certificate, and how it authenticates for tokens.
/// The default: system roots only, no client certificate, the secret.
#[derive(Clone, Debug, Default)]
pub struct Link {
    /// `tls.ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `tls.client_cert_file` and `tls.client_key_file`.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `auth.assertion_key_file` instead of `auth.client_secret_file`.
    pub assertion_key: Option<PathBuf>,
    /// No `[central_base.auth]` at all: mutual TLS alone identifies the
    /// kiosk.
    pub no_oauth: bool,
}

/// Writes a secret file readable by its owner only.
pub fn secret(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// `[upstream]` pointing at `stub`: `sinks` picks among "cb", "webhook",
/// "d1"; `intake` takes requests from the central base.
pub fn config(dir: &Path, stub: &StubHandle, sinks: &[&str], intake: bool) -> UpstreamConfig {
    config_with(dir, stub, sinks, intake, &Link::default())
}

/// `config`, with the central base reached as `link` says.
pub fn config_with(
    dir: &Path,
    stub: &StubHandle,
    sinks: &[&str],
    intake: bool,
    link: &Link,
) -> UpstreamConfig {
    let cb_secret = secret(dir, "cb.secret", "stub-secret\n");
    let wh_secret = secret(dir, "webhook.secret", &format!("{WEBHOOK_SECRET}\n"));
    let client_auth = match &link.assertion_key {
        Some(k) => format!("assertion_key_file = \"{}\"", k.display()),
        None => format!("client_secret_file = \"{}\"", cb_secret.display()),
    };
    let mut tls = String::new();
    if let Some(ca) = &link.ca_file {
        tls.push_str(&format!("ca_file = \"{}\"\n", ca.display()));
    }
    if let Some((cert, key)) = &link.client_cert {
        tls.push_str(&format!(
            "client_cert_file = \"{}\"\nclient_key_file = \"{}\"\n",
            cert.display(),
            key.display()
        ));
    }
    let mut text = format!(
        r#"
        backoff_first_ms = 100
        backoff_cap_ms = 1000
        [central_base]
        url = "{base}"
        intake = {intake}
        events = {events}
        poll_wait_s = 2
        heartbeat_s = 1
        {auth}
        [central_base.tls]
        {tls}
        "#,
        base = stub.base_url(),
        auth = if link.no_oauth {
            String::new()
        } else {
            format!(
                "[central_base.auth]\ntoken_url = \"{}\"\nclient_id = \"satellite\"\n{client_auth}",
                stub.token_url()
            )
        },
        events = sinks.contains(&"cb"),
    );
    if sinks.contains(&"webhook") {
        text.push_str(&format!(
            r#"
            [[webhook]]
            name = "issuer"
            url = "{url}"
            secret_file = "{s}"
            "#,
            url = stub.webhook_url(),
            s = wh_secret.display()
        ));
    }
    if sinks.contains(&"d1") {
        text.push_str(&format!(
            r#"
            [d1]
            url = "{url}/banking/v1"
            issuer_id = "ISSUER1"
            [d1.auth]
            token_url = "{origin}/d1/oauth2/token"
            client_id = "satellite"
            client_secret_file = "{s}"
            "#,
            url = stub.d1_url(),
            origin = stub.origin(),
            s = cb_secret.display()
        ));
    }
    let c: UpstreamConfig = toml::from_str(&text).unwrap();
    c.check().unwrap();
    c
}

/// The kiosk (customer takes each card after 50 ms) with every sink and the
/// intake, adjusted by `cfg`.
pub async fn start(sinks: &[&str], intake: bool, cfg: impl FnOnce(&mut Config)) -> Upstreamed {
    start_with(stub().await, &Link::default(), sinks, intake, cfg).await
}

/// `start`, with a stub of the test's own and the central base reached as
/// `link` says.
pub async fn start_with(
    stub: StubHandle,
    link: &Link,
    sinks: &[&str],
    intake: bool,
    cfg: impl FnOnce(&mut Config),
) -> Upstreamed {
    let kiosk = kiosk::start(
        |_| {},
        |dir, c| {
            c.printer.timeouts.take = Some(1500);
            c.upstream = config_with(dir, &stub, sinks, intake, link);
            cfg(c);
        },
    )
    .await;
    kiosk::stock(&kiosk.client).await;
    Upstreamed { kiosk, stub }
}

/// A production request for this kiosk.
pub fn request(token: &str, pan: &str) -> Value {
    json!({
        "cardToken": token,
        "profileId": 42,
        "kioskId": KIOSK,
        "cardType": "debit",
        "issuerRequestId": format!("req-{token}"),
        "cardId": format!("card-{token}"),
        "pan": pan,
        "expiry": "2812",
        "cardholderName": "ADA LOVELACE",
        "tracks": { "track2": format!("{pan}=2812101") }
    })
}

/// A request whose card data the central base gives later (deferred).
pub fn deferred(token: &str) -> Value {
    json!({
        "cardToken": token,
        "profileId": 42,
        "kioskId": KIOSK,
        "cardType": "debit",
        "issuerRequestId": format!("req-{token}"),
        "cardId": format!("card-{token}"),
        "deferredCardData": true
    })
}

/// The card data of a deferred request, as the central base answers it.
pub fn card_data(pan: &str) -> Value {
    json!({
        "pan": pan,
        "expiry": "2812",
        "cardholderName": "ADA LOVELACE",
        "tracks": { "track2": format!("{pan}=2812101") }
    })
}

/// Waits for the card's final state on the local API.
pub async fn final_state(client: &satellite::api::client::Client, token: &str) -> Value {
    for _ in 0..1500 {
        let a = client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap();
        if matches!(
            a.body["status"].as_str(),
            Some("PRODUCED" | "PRODUCTION_ERROR" | "REQUEST_ERROR")
        ) {
            return a.body;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("card {token} never reached a final state");
}

/// A Luhn-valid PAN, different for each `i`.
pub fn pan(i: u32) -> String {
    satellite::request::with_luhn_digit(&format!("400000{i:09}")).unwrap()
}

/// Waits (bounded, `secs`) until `f` holds.
pub async fn until(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out after {secs} s waiting for: {what}");
}

/// The production statuses the central base received for `card`, in
/// arrival order, duplicates included: (eventId, sequence, status).
pub fn cb_events(stub: &StubHandle, card: &str) -> Vec<(String, i64, String)> {
    stub.control()
        .events()
        .into_iter()
        .filter(|e| e.envelope["production"]["cardToken"] == card)
        .map(|e| {
            let p = &e.envelope["production"];
            (
                p["eventId"].as_str().unwrap().to_string(),
                p["sequence"].as_i64().unwrap(),
                p["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The statuses of `events` with duplicates (same id) dropped, in order.
pub fn distinct(events: &[(String, i64, String)]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    events
        .iter()
        .filter(|(id, _, _)| seen.insert(id.clone()))
        .map(|(_, _, s)| s.clone())
        .collect()
}
