//! The reference central base ("stub central base"): the upstream the
//! satellite agent talks to, played in tests and demos. It serves, on one
//! listener (HTTP or TLS, optionally mutual), the central-base protocol of
//! `docs/central-base.openapi.yaml` (OAuth 2.0 client credentials, the
//! request long poll and its acks, deferred card data, production-status
//! events, heartbeats), the issuer's Standard Webhooks receiver
//! (`docs/issuer-webhook.openapi.yaml`) and D1's token and track-card calls. It records everything received with its
//! arrival time, reconciles events per card as the issuer's receiver would,
//! and injects faults on demand, through [`Control`] in process or the
//! control HTTP listener of the `upstream-stub` binary.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use printer_sim::upstream::{Fault, Group, Stub, StubConfig};
//! let stub = Stub::start(StubConfig::default()).await?;
//! let control = stub.control();
//! control.enqueue(&serde_json::json!({"cardToken": "tok-1", "profileId": 1}));
//! control.set_fault(Group::Events, Fault::Status(503), Some(2)).await;
//! // ... point the agent at stub.base_url() and stub.token_url() ...
//! stub.shutdown().await;
//! # Ok(()) }
//! ```

mod answer;
pub mod config;
pub mod control;
mod control_http;
pub mod d1;
pub mod data;
pub mod events;
pub mod faults;
mod gate;
pub mod heartbeat;
pub mod intake;
pub mod jwt;
mod listener;
mod oauth;
pub mod reconcile;
pub mod record;
mod routes;
pub mod schema;
pub mod signature;
mod state;
mod stub;
pub mod time;
mod tls;
pub mod tokens;
pub mod webhook;

pub use config::{StubConfig, TlsConfig};
pub use control::Control;
pub use control_http::router as control_router;
pub use d1::D1Track;
pub use data::DataFetch;
pub use events::EventRecord;
pub use faults::{Active, Fault, Group};
pub use heartbeat::Heartbeats;
pub use intake::AckRecord;
pub use oauth::JWT_BEARER;
pub use reconcile::CardState;
pub use record::Received;
pub use stub::{Stub, StubHandle};
pub use webhook::WebhookRecord;
