//! What happens, counted where it happens: cards reaching a final status,
//! step durations, upstream deliveries. Each is recorded by the one place
//! that does it (the engine finishing, refusing or cancelling a card; the
//! engine timing a step; the relay recording a delivery's outcome) through
//! this handle. Counters live in memory and start at 0 with the process,
//! as Prometheus expects (`rate` and `increase` handle the reset).
//!
//! Label values come from fixed vocabularies (statuses, error codes, step
//! names, delivery outcomes) or from the configuration (sink names): never
//! from a request, so never a card token.

use crate::codes::ErrorCode;
use crate::engine::plan::Step;
use crate::store::Status;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::time::Duration;

/// Step durations: from a few milliseconds (a status check at simulator
/// speed) to minutes (a customer slow to take the card).
const STEP_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// From a status change to its delivery: milliseconds on a good day, hours
/// after an outage (the outbox keeps everything until it is delivered).
const DELIVERY_BUCKETS: [f64; 16] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    21600.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CardLabels {
    status: &'static str,
    /// The error code; empty for a card produced or cancelled.
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StepLabels {
    step: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    sink: String,
    outcome: &'static str,
}

/// What a delivery attempt came to, as the relay records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver took it (2xx).
    Delivered,
    /// It will be sent again (time-out, 408, 429, 5xx, the way there failed).
    Retry,
    /// Refused for good: a dead letter.
    Dead,
}

impl Delivery {
    fn name(self) -> &'static str {
        match self {
            Delivery::Delivered => "delivered",
            Delivery::Retry => "retry",
            Delivery::Dead => "dead",
        }
    }
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

/// The handle the engine and the relays record through; cheap to clone
/// (every clone shares the same counters).
#[derive(Clone, Debug)]
pub struct Metrics {
    cards: Family<CardLabels, Counter>,
    steps: Histograms<StepLabels>,
    deliveries: Family<OutcomeLabels, Counter>,
    latency: Histograms<SinkLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        let cards = Family::<CardLabels, Counter>::default();
        // Present from the start at 0, so that the first card produced
        // shows as an increase rather than as a new series.
        drop(cards.get_or_create(&CardLabels {
            status: Status::Produced.as_str(),
            code: "",
        }));
        Metrics {
            cards,
            steps: Family::new_with_constructor(step_histogram),
            deliveries: Family::default(),
            latency: Family::new_with_constructor(delivery_histogram),
        }
    }
}

fn step_histogram() -> Histogram {
    Histogram::new(STEP_BUCKETS)
}

fn delivery_histogram() -> Histogram {
    Histogram::new(DELIVERY_BUCKETS)
}

impl Metrics {
    /// A card reached a final status (recorded in the store).
    pub fn card_final(&self, status: Status, code: Option<ErrorCode>) {
        self.cards
            .get_or_create(&CardLabels {
                status: status.as_str(),
                code: code.map_or("", ErrorCode::as_str),
            })
            .inc();
    }

    /// A physical step took `took` (journaling excluded), whatever its outcome.
    pub fn step(&self, step: Step, took: Duration) {
        self.steps
            .get_or_create(&StepLabels { step: step.name() })
            .observe(took.as_secs_f64());
    }

    /// A delivery to `sink` came to `outcome`; `latency` is the time from
    /// the status change to its delivery (delivered ones only).
    pub fn delivery(&self, sink: &str, outcome: Delivery, latency: Option<Duration>) {
        self.deliveries
            .get_or_create(&OutcomeLabels {
                sink: sink.to_string(),
                outcome: outcome.name(),
            })
            .inc();
        if let Some(l) = latency {
            self.latency
                .get_or_create(&SinkLabels {
                    sink: sink.to_string(),
                })
                .observe(l.as_secs_f64());
        }
    }

    /// Writes the event families (names without the `_total` that the
    /// encoder adds to counters).
    pub(super) fn encode(&self, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.cards.encode(encoder.encode_descriptor(
            "satellite_cards_finished",
            "Cards that reached a final status since the agent started, by status (PRODUCED, PRODUCTION_ERROR, REQUEST_ERROR, CANCELLED) and error code (empty when none)",
            None,
            self.cards.metric_type(),
        )?)?;
        self.steps.encode(encoder.encode_descriptor(
            "satellite_step_duration_seconds",
            "How long each physical step of a card took, journaling excluded, whatever its outcome",
            None,
            self.steps.metric_type(),
        )?)?;
        self.deliveries.encode(encoder.encode_descriptor(
            "satellite_upstream_deliveries",
            "Status changes sent to each sink since the agent started, by outcome: delivered, retry (sent again later), dead (refused for good)",
            None,
            self.deliveries.metric_type(),
        )?)?;
        self.latency.encode(encoder.encode_descriptor(
            "satellite_upstream_delivery_latency_seconds",
            "From a status change being written to its delivery to each sink, retries and outages included",
            None,
            self.latency.metric_type(),
        )?)?;
        Ok(())
    }
}
