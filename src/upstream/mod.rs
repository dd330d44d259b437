//! Everything that leaves the kiosk, and the requests that come from the
//! central base. The kiosk accepts no inbound connection: the agent calls.
//!
//! * [`forms`]: the two forms of a status change (the kiosk production
//!   status, the D1 operation) (pure).
//! * [`policy`]: what an answer means and when to retry (pure).
//! * [`signing`]: Standard Webhooks signatures (pure).
//! * [`config`], [`secret`]: `[upstream]`, and secrets from files or systemd
//!   credentials.
//! * [`http`], [`auth`]: rustls clients; OAuth 2.0 client credentials.
//! * [`scheduler`]: one sink's delivery policy as a state machine: whose
//!   fault a failure is, back-off per sink and per delivery, parking (pure).
//! * [`sink`], [`relay`]: the receivers, and one task per receiver carrying
//!   out its scheduler's decisions on the store's outbox.
//! * [`health`]: each link's state with its SAT_ code, published.
//! * [`service`], [`supervisor`]: the tasks started for a configuration,
//!   each restarted (and shown in health) when it panics or returns.

pub mod auth;
pub mod bounds;
pub mod central;
pub mod config;
pub mod forms;
pub mod health;
pub mod http;
pub mod intake;
pub mod policy;
pub mod relay;
pub mod scheduler;
pub mod secret;
pub mod service;
pub mod signing;
pub mod sink;
pub mod supervisor;

pub use config::UpstreamConfig;
pub use health::Health;
