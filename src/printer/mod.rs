//! The printer link: transports, connection, fault mapping, profiles, steps.

pub mod conn;
pub mod driver;
pub mod faults;
pub mod gating;
pub mod monitor;
pub mod profile;
pub mod raw;
pub mod snapshot;
pub mod steps;
pub mod trace;
pub mod transport;

pub use conn::{Connection, Identity, LinkError, LinkSettings, Outcome};
pub use driver::{Backoff, LinkState, LinkStatus, Printer};
pub use monitor::PrinterView;
pub use profile::Profile;
pub use transport::Endpoint;
