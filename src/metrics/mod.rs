//! Metrics: `GET /metrics` on the local API, in the Prometheus text format.
//!
//! * [`events`]: what happens (cards reaching a final status, step
//!   durations, upstream deliveries and their latency), counted by the one
//!   place that does it through the [`Metrics`] handle the engine owns.
//! * [`published`]: what is, read at scrape time from what the agent
//!   publishes (the engine's state, the printer's view, the upstream links'
//!   health) and from the store (queue, outbox, size).
//! * `encode`: both, as one prometheus-client collector.
//!
//! The rule: a scrape never talks to the printer. It reads the printer's
//! published view (kept fresh by the monitor's own probes), so it answers
//! at once whatever the printer is doing, and adds no traffic to the link
//! (`tests/metrics.rs` proves it against the simulator's transcript).
//!
//! Label values are bounded: fixed vocabularies (states, statuses, error
//! codes, steps, reason words of the printer's profile) or names from the
//! configuration (sinks, card types). Never a card token, never card data.
//! Every family is listed in README.md ("Metrics").

pub mod events;
pub mod published;

mod encode;

pub use events::{Delivery, Metrics};

use crate::engine::Engine;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;

/// The Prometheus text format, version 0.0.4: what Prometheus scrapes by
/// default and what `promtool check metrics` reads (the OpenMetrics text
/// names a counter's family without its `_total`, which promtool then
/// reports as a metric without help).
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every family, as the text a scrape answers.
pub async fn render(engine: &Engine) -> Result<String, std::fmt::Error> {
    let published = published::Published::read(engine).await;
    let mut registry = Registry::default();
    registry.register_collector(Box::new(encode::Scrape {
        events: engine.metrics().clone(),
        published,
        at: std::time::SystemTime::now(),
    }));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry)?;
    Ok(text)
}

/// `GET /metrics`.
pub async fn serve(State(engine): State<Engine>) -> Response {
    match render(&engine).await {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "metrics could not be encoded");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "metrics could not be encoded\n",
            )
                .into_response()
        }
    }
}
