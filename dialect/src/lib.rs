//! Sans-I/O implementation of the card printer escape-command dialect.
//!
//! Nothing here touches a device, a clock or an executor: the types turn typed
//! operations into bytes and bytes into replies, so the same code serves the
//! agent's driver, the simulator (which plays the device side) and the fuzzer.
//!
//! * [`frame`]: a command frame (`ESC mnemonic;params[;payload] CR`) and its encoder.
//! * [`reply`]: the host-side decoder of replies (text, ACK/NACK, malformed input).
//! * [`inbound`]: the device-side decoder of command frames, binary payloads included.
//! * [`panel`]: panel geometry, bit packing and the `Dbc` compression.
//! * [`ops`]: the typed operations the agent sends, so command strings live in one place.
//! * [`commands`]: a profile's `[commands]` table: what a firmware answers beyond the guide.
//! * [`status`]: parsers for structured read replies (status words, card position, feeders).
//! * [`redact`]: masking of card numbers for anything a person or a log will read.

pub mod commands;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
pub mod inbound;
pub mod ops;
pub mod panel;
pub mod profiles;
pub mod redact;
pub mod reply;
pub mod status;

pub use frame::{Command, EncodeError, CR, ESC};
pub use inbound::{CommandCodec, Inbound};
pub use reply::{Malformed, Reply, ReplyCodec, Terminator, ACK, NACK};
