//! satellite: the agent of a card-issuing kiosk.
//!
//! * [`printer`]: the printer link (transports, dialect, fault mapping, profiles).
//! * [`chip`]: chip personalisation through the PC/SC reader.
//! * [`codes`]: the standard error codes and the fault value.

pub mod chip;
pub mod cli;
pub mod codes;
pub mod logging;
pub mod printer;
pub mod time;
