//! `printer-sim`: a software card printer speaking the escape-command
//! dialect of `hardware/DIALECT.md`, for the satellite agent's tests, demos
//! and CI.
//!
//! * The printer itself is sans-I/O: [`firmware::Printer`] takes a decoded
//!   frame and a clock reading and returns the reply, the time the mechanism
//!   takes and the effects (chip, links, customer). Its parts are plain data
//!   in [`model`].
//! * [`Simulator`] is the async shell: one shared printer behind a pty, TCP,
//!   in-process links and a JSON-lines control socket, with a speed factor for
//!   physical timings, scenario files and redacted transcripts.
//!
//! Card data never leaves the magnetic encoder's memory in clear: records,
//! state, logs, transcripts and image dumps mask card numbers.

pub mod chip;
pub mod condition;
pub mod config;
pub mod control;
pub mod dump;
pub mod firmware;
pub mod font;
pub mod link;
pub mod model;
pub mod profile;
pub mod replay;
pub mod scenario;
pub mod sim;
pub mod state;
pub mod transcript;
pub mod upstream;

pub use condition::Condition;
pub use config::{Customer, FeederConfig, SimConfig};
pub use model::{CardRecord, Counters, Place};
pub use profile::Profile;
pub use replay::{replay, ReplayOptions, ReplayReport, Replayer};
pub use scenario::Scenario;
pub use sim::Simulator;
pub use state::State;
