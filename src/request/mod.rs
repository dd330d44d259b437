//! Production requests: the JSON schema, parsing and validation.
//!
//! Pure: no I/O, no clock. A body goes through [`parse`] (JSON-level checks,
//! giving a [`ProductionRequest`]) and [`validate`] (card data, this kiosk, its
//! card types and printer), giving an [`Accepted`] job: its [`JobMeta`], the
//! PAN (for the store's fingerprint) and the [`CardData`] in printer terms
//! (tracks, positioned text, emboss lines, chip script, PIN block, colour
//! panels). A refusal is a [`RequestError`] with the seed's request error code
//! and the field at fault. `docs/REQUEST.md` is the reference.
//!
//! Decided elsewhere (the store and the engine): a duplicate `cardToken`
//! (`REQUEST_ALREADY_EXISTS`), a PAN already in production
//! (`PAN_ALREADY_EXISTS`), a full queue (`UNABLE_TO_ACCEPT_REQUEST`), and the
//! printer's readiness.
//!
//! Card data never reaches an error message or a `Debug` output: the PAN is
//! masked to its first six and last four digits, everything else is shown as
//! lengths; every buffer holding card data is wiped when dropped.

pub mod card_type;
mod checks;
pub mod image;
mod json;
pub mod schema;
pub mod validate;

pub use card_type::{check_card_types, CardType, FreeLines, Layout, TextPosition};
pub use checks::{luhn_ok, with_luhn_digit, TRACK_MAX};
pub use image::{FrontPanels, IMAGE_LEVELS, MAX_IMAGE_BYTES};
pub use schema::{token_of, PrintedLine, ProductionRequest, ScriptStep, Tracks, MAX_BODY_BYTES};
pub use validate::{
    accept, complete, parse, validate, validate_deferred, Accepted, CardData, ChipStep, Context,
    JobMeta, RequestError, MAX_ID_CHARS, MAX_PRINTED_CHARS,
};
