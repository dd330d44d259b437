//! A kiosk with its upstream: the daemon (real store, simulator over a pty)
//! configured with the reference central base, an issuer webhook and D1,
//! all served by the stub over real HTTP on loopback.

use super::kiosk;
use printer_sim::upstream::{Stub, StubConfig, StubHandle};
use satellite::config::Config;
use satellite::upstream::UpstreamConfig;
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
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
    Stub::start(StubConfig {
        kiosk_id: KIOSK.into(),
        webhook_secrets: vec![WEBHOOK_SECRET.into()],
        ..StubConfig::default()
    })
    .await
    .expect("the stub starts")
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
    let cb_secret = secret(dir, "cb.secret", "stub-secret\n");
    let wh_secret = secret(dir, "webhook.secret", &format!("{WEBHOOK_SECRET}\n"));
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
        [central_base.auth]
        token_url = "{token}"
        client_id = "satellite"
        client_secret_file = "{cb_secret}"
        "#,
        base = stub.base_url(),
        token = stub.token_url(),
        cb_secret = cb_secret.display(),
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
    let stub = stub().await;
    let kiosk = kiosk::start(
        |_| {},
        |dir, c| {
            c.printer.timeouts.take = Some(1500);
            c.upstream = config(dir, &stub, sinks, intake);
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
