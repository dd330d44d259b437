//! What identifies a job: one type from validation to the store, the
//! engine, the local API and the upstream forms.

use serde::{Deserialize, Serialize};

/// A job's identity and correlation ids, kept in clear by the store and
/// shown to people. Never card data: the PAN only masked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobMeta {
    /// The card's unique token (the key of the production-status API).
    pub card_token: String,
    /// The profile (personal or business) that owns the card.
    pub profile_id: i64,
    /// This kiosk.
    pub kiosk_id: String,
    pub card_type: String,
    /// The issuer's id of this request.
    pub issuer_request_id: String,
    /// The issuer's id of the card (D1's `cardId`).
    pub card_id: String,
    /// First six and last four digits at most (empty until deferred card
    /// data has arrived).
    pub pan_masked: String,
}
