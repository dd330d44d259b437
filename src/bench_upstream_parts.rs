//! What `satellite bench --upstream` and `bench --d1-kills` share: the
//! reference central base (`printer_sim::upstream::Stub`, which serves the
//! webhook receiver and D1 too) and the agent's `[upstream]` pointing at
//! it, a poison card (one payload the receivers fail), and the stub's
//! receipts read back as figures.

use printer_sim::upstream::{Control, Fault, Group, Stub, StubConfig, StubHandle};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::SystemTime;

pub(crate) const KIOSK: &str = "BENCH01";
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const WEBHOOK: &str = "issuer";

/// The sinks a run configures, and how they are named in figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SinkKind {
    CentralBase,
    Webhook,
    D1,
}

impl SinkKind {
    pub(crate) const ALL: [SinkKind; 3] = [SinkKind::CentralBase, SinkKind::Webhook, SinkKind::D1];

    /// The name in figures and JSON.
    pub(crate) fn label(self) -> &'static str {
        match self {
            SinkKind::CentralBase => "central_base",
            SinkKind::Webhook => "webhook",
            SinkKind::D1 => "d1",
        }
    }

    /// The sink's name in the agent's outbox.
    pub(crate) fn sink(self) -> &'static str {
        match self {
            SinkKind::CentralBase => crate::upstream::config::CENTRAL_BASE_SINK,
            SinkKind::Webhook => WEBHOOK,
            SinkKind::D1 => crate::upstream::config::D1_SINK,
        }
    }

    /// Deliveries per status change written: D1 is told of PRODUCED only.
    pub(crate) fn deliveries(self, status_changes: usize) -> usize {
        match self {
            SinkKind::D1 => status_changes / 3,
            _ => status_changes,
        }
    }

    /// Deliveries per produced card (READY, IN_PROGRESS, PRODUCED).
    pub(crate) fn per_card(self) -> usize {
        match self {
            SinkKind::D1 => 1,
            _ => 3,
        }
    }
}

pub(crate) async fn stub() -> Result<StubHandle, String> {
    Stub::start(StubConfig {
        kiosk_id: KIOSK.into(),
        webhook_secrets: vec![WEBHOOK_SECRET.into()],
        ..StubConfig::default()
    })
    .await
    .map_err(|e| format!("the reference central base: {e}"))
}

fn secret(dir: &Path, name: &str, text: &str) -> Result<std::path::PathBuf, String> {
    let p = dir.join(name);
    std::fs::write(&p, text).map_err(|e| e.to_string())?;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| e.to_string())?;
    Ok(p)
}

/// The `[upstream]` table's text for `sinks`, all on `stub`: the central
/// base's events sink (no intake), one issuer webhook, D1; otherwise the
/// defaults but the back-off caps (`cap_ms` for a sink's pause and for a
/// delivery backed off on its own, so that a poison delivery is parked
/// within seconds rather than the default quarter of an hour).
/// `prefix`: "" for the table's own text, "upstream." inside a whole
/// configuration file.
pub(crate) fn upstream_toml(
    dir: &Path,
    stub: &StubHandle,
    sinks: &[SinkKind],
    cap_ms: u64,
    prefix: &str,
) -> Result<String, String> {
    let cb_secret = secret(dir, "cb.secret", "stub-secret\n")?;
    let mut text = String::new();
    if !prefix.is_empty() {
        text.push_str(&format!("[{}]\n", prefix.trim_end_matches('.')));
    }
    text.push_str(&format!(
        "backoff_first_ms = 100\nbackoff_cap_ms = {cap_ms}\nevent_backoff_cap_ms = {cap_ms}\n"
    ));
    if sinks.contains(&SinkKind::CentralBase) {
        text.push_str(&format!(
            r#"
[{prefix}central_base]
url = "{base}"
intake = false
events = true
[{prefix}central_base.auth]
token_url = "{token}"
client_id = "satellite"
client_secret_file = "{cb_secret}"
"#,
            base = stub.base_url(),
            token = stub.token_url(),
            cb_secret = cb_secret.display(),
        ));
    }
    if sinks.contains(&SinkKind::Webhook) {
        let wh_secret = secret(dir, "webhook.secret", &format!("{WEBHOOK_SECRET}\n"))?;
        text.push_str(&format!(
            r#"
[[{prefix}webhook]]
name = "{WEBHOOK}"
url = "{webhook}"
secret_file = "{wh_secret}"
"#,
            webhook = stub.webhook_url(),
            wh_secret = wh_secret.display(),
        ));
    }
    if sinks.contains(&SinkKind::D1) {
        text.push_str(&format!(
            r#"
[{prefix}d1]
url = "{url}/banking/v1"
issuer_id = "ISSUER1"
[{prefix}d1.auth]
token_url = "{origin}/d1/oauth2/token"
client_id = "satellite"
client_secret_file = "{cb_secret}"
"#,
            url = stub.d1_url(),
            origin = stub.origin(),
            cb_secret = cb_secret.display(),
        ));
    }
    Ok(text)
}

/// `[upstream]` as the agent reads it (see [`upstream_toml`]).
pub(crate) fn upstream_config(
    dir: &Path,
    stub: &StubHandle,
    sinks: &[SinkKind],
    cap_ms: u64,
) -> Result<crate::upstream::UpstreamConfig, String> {
    let text = upstream_toml(dir, stub, sinks, cap_ms, "")?;
    let c: crate::upstream::UpstreamConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
    c.check()?;
    Ok(c)
}

/// One card whose every payload the receivers fail with a 502 (a receiver
/// bug triggered by that payload alone; the stub's `poison` fault), on
/// every sink: its token in a central-base batch or a webhook body, its
/// card id in D1's path.
#[derive(Debug, Clone)]
pub(crate) struct Poison {
    pub token: String,
    pub card_id: String,
}

/// The status the poison card's payloads are answered with: a 5xx every
/// sink reads as "this payload or the whole receiver" (D1's 500
/// `INTERNAL_ERROR` is "retry possible: no" in its tables, a dead letter at
/// once; its 502 is retried like the others').
pub(crate) const POISON_STATUS: u16 = 502;

impl Poison {
    pub(crate) async fn apply(&self, control: &Control) {
        // Quoted: "bench-10" must not poison "bench-100" too. D1's path
        // comes first in what the fault reads, then a space.
        let quoted = format!("\"{}\"", self.token);
        for (group, text) in [
            (Group::Events, quoted.clone()),
            (Group::Webhook, quoted),
            (Group::D1track, format!("{} ", self.card_id)),
        ] {
            control
                .set_fault(group, Fault::Poison(POISON_STATUS, text), None)
                .await;
        }
    }

    pub(crate) fn json(&self) -> Value {
        json!({ "card_token": self.token, "status": POISON_STATUS })
    }
}

/// One delivery as the stub received it.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    /// The de-duplication key: the event id (D1: the card id, told once).
    pub key: String,
    pub card: String,
    /// The status and `occurredAt`, when the payload carries them.
    pub status: Option<String>,
    pub occurred: Option<SystemTime>,
    pub at: SystemTime,
}

/// Every delivery `sink` received, in arrival order, repeats included.
pub(crate) fn receipts(control: &Control, sink: SinkKind) -> Result<Vec<Receipt>, String> {
    match sink {
        SinkKind::CentralBase => control
            .events()
            .into_iter()
            .map(|e| status_change(&e.envelope["production"], e.at))
            .collect(),
        SinkKind::Webhook => control
            .webhooks()
            .into_iter()
            .map(|w| {
                let body: Value = serde_json::from_str(&w.body).unwrap_or(Value::Null);
                status_change(&body["data"], w.at)
            })
            .collect(),
        SinkKind::D1 => control
            .d1_tracks()
            .into_iter()
            .map(|d| {
                let at = humantime::parse_rfc3339(&d.received_at)
                    .map_err(|e| format!("D1 receipt time: {e}"))?;
                Ok(Receipt {
                    key: d.card_id.clone(),
                    card: d.card_id,
                    status: Some("PRODUCED".into()),
                    occurred: None,
                    at,
                })
            })
            .collect(),
    }
}

fn status_change(p: &Value, at: SystemTime) -> Result<Receipt, String> {
    let s = |k: &str| {
        p[k].as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("a received status change has no {k}"))
    };
    let occurred =
        humantime::parse_rfc3339(&s("occurredAt")?).map_err(|e| format!("occurredAt: {e}"))?;
    Ok(Receipt {
        key: s("eventId")?,
        card: s("cardToken")?,
        status: Some(s("status")?),
        occurred: Some(occurred),
        at,
    })
}

/// The first receipt of each key, in arrival order, and how many times
/// each was received again.
pub(crate) fn first_receipts(all: Vec<Receipt>) -> (Vec<Receipt>, usize) {
    let mut out = Vec::new();
    let mut seen: HashMap<String, ()> = HashMap::new();
    let mut again = 0;
    for r in all {
        if seen.insert(r.key.clone(), ()).is_some() {
            again += 1;
        } else {
            out.push(r);
        }
    }
    (out, again)
}

/// `a - b` in ms, negative when `a` is earlier.
pub(crate) fn signed_ms(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64() * 1000.0,
        Err(e) => -e.duration().as_secs_f64() * 1000.0,
    }
}

/// n, p50, p99 and max of `v`.
pub(crate) fn summary(v: &[f64]) -> Value {
    if v.is_empty() {
        return json!({ "n": 0 });
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let pct = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    json!({ "n": s.len(), "p50": pct(0.5), "p99": pct(0.99), "max": s[s.len() - 1] })
}

/// A summary as one line: p50, p99, max and n.
pub(crate) fn row(v: &Value) -> String {
    let f = |k: &str| {
        v[k].as_f64()
            .map_or("       -".into(), |x| format!("{x:>8.2}"))
    };
    format!("{} {} {}   (n={})", f("p50"), f("p99"), f("max"), v["n"])
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn r(key: &str, ms: u64) -> Receipt {
        Receipt {
            key: key.into(),
            card: "c".into(),
            status: None,
            occurred: None,
            at: SystemTime::UNIX_EPOCH + Duration::from_millis(ms),
        }
    }

    #[test]
    fn first_receipts_keep_the_first_and_count_repeats() {
        let (first, again) = first_receipts(vec![r("a", 1), r("b", 2), r("a", 3), r("a", 4)]);
        let keys: Vec<_> = first.iter().map(|x| (x.key.as_str(), x.at)).collect();
        assert_eq!(
            keys,
            vec![
                ("a", SystemTime::UNIX_EPOCH + Duration::from_millis(1)),
                ("b", SystemTime::UNIX_EPOCH + Duration::from_millis(2))
            ]
        );
        assert_eq!(again, 2);
    }

    #[test]
    fn summary_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summary(&v);
        assert_eq!(s["n"], 100);
        assert_eq!(s["p50"], 51.0);
        assert_eq!(s["p99"], 99.0);
        assert_eq!(s["max"], 100.0);
        assert_eq!(summary(&[])["n"], 0);
    }

    #[test]
    fn d1_gets_produced_only() {
        assert_eq!(SinkKind::D1.deliveries(10_000), 3_333);
        assert_eq!(SinkKind::Webhook.deliveries(10_000), 10_000);
    }
}
