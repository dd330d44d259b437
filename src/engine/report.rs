//! What the kiosk reports of itself: the local API's status and the
//! central base's heartbeat are the same document, built from what is
//! published (the engine's state, the printer's view, the upstream links)
//! and from the store. Never asks the printer.

use super::Engine;
use serde_json::{json, Value};

/// The printer as last read, and whether a card could be produced now.
pub fn printer(engine: &Engine, refresh_error: Option<crate::codes::Fault>) -> Value {
    let view = engine.printer().view().borrow().clone();
    let engine_blocks = engine.state().borrow().blocks_production();
    let not_ready = view.not_ready();
    let ready = not_ready.is_none() && engine_blocks.is_none();
    json!({
        "ready": ready,
        "notReady": not_ready,
        "engine": engine_blocks,
        "ageMs": view.age().map(|a| a.as_millis() as u64),
        "readAt": view.read_at,
        "fullReadAt": view.full_read_at,
        "link": view.link,
        "snapshot": view.reading,
        "refreshError": refresh_error,
    })
}

/// The whole picture: engine, printer, supplies, queue, outbox per sink,
/// upstream links, store size.
pub async fn health(engine: &Engine) -> Value {
    let state = engine.state().borrow().clone();
    let store = engine.store();
    let read = tokio::task::spawn_blocking(move || {
        let queue = store.queued().map(|q| q.len()).ok();
        let in_production = store.in_progress().map(|q| q.len()).ok();
        let outbox = store.outbox_depths().ok();
        let usage = store.usage().ok();
        (queue, in_production, outbox, usage)
    })
    .await
    .unwrap_or_default();
    let (queue, in_production, outbox, usage) = read;
    let now = std::time::SystemTime::now();
    let outbox: Option<Value> = outbox.map(|sinks| {
        sinks
            .into_iter()
            .map(|s| {
                let oldest_age_s = s
                    .oldest_pending_at
                    .as_deref()
                    .and_then(|t| humantime::parse_rfc3339(t).ok())
                    .and_then(|t| now.duration_since(t).ok())
                    .map(|d| d.as_secs());
                (
                    s.sink.clone(),
                    json!({
                        "kind": s.kind,
                        "active": s.active,
                        "depth": s.pending,
                        "deadLetters": s.dead,
                        "oldestAgeSeconds": oldest_age_s,
                        "lastError": s.last_error,
                    }),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    });
    let inventory = engine.inventory().await.ok();
    let forecast = engine.forecast().await;
    let store_json = usage.map(|(used, limit)| {
        json!({
            "usedBytes": used,
            "limitBytes": limit,
            "alarm": limit > 0 && used.saturating_mul(10) >= limit.saturating_mul(8),
        })
    });
    let engine_json = serde_json::to_value(&state).unwrap_or_default();
    json!({
        "agentVersion": env!("CARGO_PKG_VERSION"),
        "kioskId": engine.config().kiosk_id,
        // The engine's state in one word (idle, producing, card_in_doubt...).
        "state": engine_json["state"].clone(),
        "engine": engine_json,
        "printer": printer(engine, None),
        // The feeders as set and sensed, and every supply's forecast
        // (cards left, threshold, warning, hours at the recent rate).
        "supplies": {
            "feeders": inventory,
            "rate": forecast.rate,
            "forecast": forecast.supplies,
            "warning": forecast.any_warning(),
        },
        "queueDepth": queue,
        "inProduction": in_production,
        "outbox": outbox,
        "upstream": engine.upstream().snapshot(),
        "store": store_json,
        "service": service(),
    })
}

/// How the agent runs: under systemd's notification protocol or not, and
/// with which watchdog period (what `doctor` checks).
fn service() -> Value {
    let watchdog_s = std::env::var("WATCHDOG_USEC")
        .ok()
        .and_then(|u| u.parse::<u64>().ok())
        .map(|us| us as f64 / 1e6);
    json!({
        "pid": std::process::id(),
        "systemdNotify": std::env::var_os("NOTIFY_SOCKET").is_some(),
        "watchdogSeconds": watchdog_s,
    })
}
