//! satellite: the agent of a card-issuing kiosk.
//!
//! * [`printer`]: the printer link (transports, dialect, fault mapping, profiles).
//! * [`chip`]: chip personalisation through the PC/SC reader.
//! * [`codes`]: the standard error codes and the fault value.
//! * [`request`]: production requests: schema, parsing, validation.
//! * [`store`]: the durable job store (SQLite), journal, event outbox, sealed card data.
//! * [`engine`]: the production engine; [`api`]: its local HTTP API; [`daemon`]: `satellite run`.
//! * [`upstream`]: what is reported upstream (the forms of a status change).
//! * [`metrics`]: `GET /metrics` (Prometheus text), from published state and
//!   counters kept where things happen.
//! * [`supervision`]: the agent as a systemd service: readiness, status,
//!   the watchdog, configuration reloads.
//! * [`outage`]: how a loop that retries logs (once, then slowing reminders, then
//!   how long it lasted).
//! * [`bundled_sim`]: the bundled printer simulator (cargo feature `simulator`,
//!   on by default), which `demo` and `bench` need.

pub mod api;
#[cfg(feature = "simulator")]
pub mod bench;
#[cfg(feature = "simulator")]
pub mod bench_d1_kills;
#[cfg(feature = "simulator")]
pub mod bench_idle;
#[cfg(feature = "simulator")]
pub mod bench_link;
#[cfg(feature = "simulator")]
pub mod bench_startup;
#[cfg(feature = "simulator")]
pub mod bench_supplies;
#[cfg(feature = "simulator")]
pub mod bench_upstream;
#[cfg(feature = "simulator")]
pub mod bench_upstream_parts;
pub mod bundled_sim;
pub mod chip;
pub mod cli;
pub mod codes;
pub mod config;
pub mod daemon;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod engine;
pub mod job;
pub mod logging;
pub mod metrics;
pub mod outage;
pub mod printer;
pub mod request;
pub mod store;
pub mod supervision;
pub mod tick;
pub mod time;
pub mod upstream;
