//! What the agent reports upstream: the central base's events endpoint and the
//! issuer's webhook.
//!
//! * [`forms`]: the two forms of a status change (the kiosk production-status
//!   object and the D1 `PRODUCE` operation), pure code, no I/O.

pub mod forms;
