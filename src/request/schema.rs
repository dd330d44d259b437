//! The production request as JSON: the types, and the parser that turns a body
//! into a [`ProductionRequest`] with a precise [`RequestError`] for each way a
//! body can be wrong at the JSON level.
//!
//! `docs/REQUEST.md` is the reference for the schema. In short (camelCase keys,
//! unknown keys refused):
//!
//! ```json
//! { "cardToken": "...", "profileId": 123456, "kioskId": "WIS00001",
//!   "cardType": "debit-chip-mag", "issuerRequestId": "...", "cardId": "...",
//!   "pan": "4000001234567899", "expiry": "2812", "cardholderName": "JANE DOE",
//!   "printedLines": [{ "text": "4000 0012 3456 7899", "slot": "pan" }],
//!   "embossLines": ["4000 0012 3456 7899"],
//!   "tracks": { "track1": "B4000001234567899^DOE/JANE^2812201...", "track2": "..." },
//!   "chipScript": [{ "apdu": "00A4040007A0000000031010", "expectSw": ["9000"] }],
//!   "pinBlock": "26123456FFFFFFFF", "frontImage": "<base64 PNG>" }
//! ```
//!
//! What this parser decides (everything else is [`super::validate`]'s):
//! the body is JSON (`DATA_PREPARATION_FAILED`), complete
//! (`PARTIAL_DATA_RECEIVED`), an object whose keys are all known
//! (`INVALID_FIELD_VALUE`) and given once (`DATA_PREPARATION_FAILED`), each
//! value of the JSON type its field needs (`DATA_PREPARATION_FAILED`), and every
//! required field present and not null (`EMPTY_OR_NULL_FIELD_VALUE`).

use super::json::{Json, Num};
use super::validate::RequestError;
use crate::codes::ErrorCode;
use dialect::redact::{mask_digits, show_bytes};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::Zeroize;

/// The largest body [`parse`] reads (a front image of the card's size as a
/// base64 PNG, a chip script of a few hundred kilobytes, and the rest).
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// The status word a chip step accepts when its `expectSw` is absent.
pub const DEFAULT_EXPECT_SW: &str = "9000";

/// A production request, as the issuer sends it (JSON, camelCase).
///
/// Holding card data, it wipes it when dropped, and its `Debug` shows the PAN
/// masked and everything else sensitive as lengths.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductionRequest {
    /// The card's unique token (the key of the production-status API).
    pub card_token: String,
    /// The profile (personal or business) that owns the card.
    pub profile_id: i64,
    /// The kiosk that is to produce the card: this one.
    pub kiosk_id: String,
    /// A card type of this kiosk's configuration (`[[card_type]]`).
    pub card_type: String,
    /// The issuer's id of this request (correlation).
    pub issuer_request_id: String,
    /// The issuer's id of the card (correlation with D1).
    pub card_id: String,
    /// Primary account number: 12 to 19 digits, Luhn-valid.
    pub pan: String,
    /// Expiry date, `YYMM`.
    pub expiry: String,
    /// The cardholder's name of record (2 to 26 characters, track 1's set).
    pub cardholder_name: String,
    /// Text printed on the K panel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub printed_lines: Vec<PrintedLine>,
    /// Emboss lines, line 1 first (an empty string leaves a line blank).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emboss_lines: Vec<String>,
    /// Magnetic tracks, without sentinels or LRC.
    #[serde(default, skip_serializing_if = "Tracks::is_empty")]
    pub tracks: Tracks,
    /// Chip personalisation script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chip_script: Vec<ScriptStep>,
    /// ISO 9564 PIN block, format 0 or 2: 16 hex digits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin_block: Option<String>,
    /// The front image: a base64 PNG of the card's size, landscape.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front_image: Option<String>,
    /// The card data is not in the request: the agent fetches it from the
    /// central base when the card's turn comes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deferred_card_data: bool,
}

/// One line of text on the K panel.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrintedLine {
    pub text: String,
    /// A named position of the card type's layout (`pan`, `name`, `expiry`,
    /// or one the card type defines); absent: the next free line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
}

/// The magnetic tracks, each without sentinels or LRC (the printer adds them).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tracks {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track1: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track2: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track3: Option<String>,
}

impl Tracks {
    pub fn is_empty(&self) -> bool {
        self.track1.is_none() && self.track2.is_none() && self.track3.is_none()
    }

    /// The tracks given, as (number, content), in track order.
    pub fn given(&self) -> impl Iterator<Item = (u8, &String)> {
        [(1u8, &self.track1), (2, &self.track2), (3, &self.track3)]
            .into_iter()
            .filter_map(|(n, t)| t.as_ref().map(|t| (n, t)))
    }
}

/// One step of the chip script: a command APDU in hex and the status words it
/// may answer (hex, `9000` when absent).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScriptStep {
    pub apdu: String,
    #[serde(default = "default_expect_sw")]
    pub expect_sw: Vec<String>,
}

fn default_expect_sw() -> Vec<String> {
    vec![DEFAULT_EXPECT_SW.to_string()]
}

impl Drop for ProductionRequest {
    fn drop(&mut self) {
        self.pan.zeroize();
        self.expiry.zeroize();
        self.cardholder_name.zeroize();
        self.emboss_lines.zeroize();
        self.pin_block.zeroize();
        self.front_image.zeroize();
        // printed_lines, tracks and chip_script wipe themselves.
    }
}

impl Drop for PrintedLine {
    fn drop(&mut self) {
        self.text.zeroize();
    }
}

impl Drop for Tracks {
    fn drop(&mut self) {
        self.track1.zeroize();
        self.track2.zeroize();
        self.track3.zeroize();
    }
}

impl Drop for ScriptStep {
    fn drop(&mut self) {
        self.apdu.zeroize();
    }
}

/// A PAN for display: first six and last four digits, or only its length
/// when it is not a run of digits (then it is not a PAN, but may hold one).
pub(crate) fn masked_pan(pan: &str) -> String {
    if pan.bytes().all(|b| b.is_ascii_digit()) && (12..=19).contains(&pan.len()) {
        mask_digits(pan)
    } else {
        format!("<{} characters>", pan.chars().count())
    }
}

impl fmt::Debug for ProductionRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProductionRequest")
            .field("card_token", &self.card_token)
            .field("profile_id", &self.profile_id)
            .field("kiosk_id", &self.kiosk_id)
            .field("card_type", &self.card_type)
            .field("issuer_request_id", &self.issuer_request_id)
            .field("card_id", &self.card_id)
            .field("pan", &masked_pan(&self.pan))
            .field("expiry", &format_args!("<{} chars>", self.expiry.len()))
            .field(
                "cardholder_name",
                &format_args!("<{} chars>", self.cardholder_name.chars().count()),
            )
            .field(
                "printed_lines",
                &format_args!("<{} lines>", self.printed_lines.len()),
            )
            .field(
                "emboss_lines",
                &format_args!("<{} lines>", self.emboss_lines.len()),
            )
            .field("tracks", &self.tracks)
            .field(
                "chip_script",
                &format_args!(
                    "<{} steps, {} hex chars>",
                    self.chip_script.len(),
                    self.chip_script.iter().map(|s| s.apdu.len()).sum::<usize>()
                ),
            )
            .field(
                "pin_block",
                &self
                    .pin_block
                    .as_ref()
                    .map(|p| format!("<{} chars>", p.len())),
            )
            .field(
                "front_image",
                &self
                    .front_image
                    .as_ref()
                    .map(|p| format!("<{} base64 chars>", p.len())),
            )
            .finish()
    }
}

impl fmt::Debug for PrintedLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PrintedLine({:?}, {} chars)",
            self.slot,
            self.text.chars().count()
        )
    }
}

impl fmt::Debug for Tracks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let given: Vec<String> = self
            .given()
            .map(|(n, t)| format!("track{n}: {} chars", t.len()))
            .collect();
        write!(f, "Tracks({})", given.join(", "))
    }
}

impl fmt::Debug for ScriptStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ScriptStep({} hex chars, expect {:?})",
            self.apdu.len(),
            self.expect_sw
        )
    }
}

// ---------------------------------------------------------------------------
// Parsing.

const TOP_FIELDS: &[&str] = &[
    "cardToken",
    "profileId",
    "kioskId",
    "cardType",
    "issuerRequestId",
    "cardId",
    "pan",
    "expiry",
    "cardholderName",
    "printedLines",
    "embossLines",
    "tracks",
    "chipScript",
    "pinBlock",
    "frontImage",
    "deferredCardData",
];

/// What a request with `deferredCardData` leaves out: the central base
/// gives it when the card's turn comes.
pub const CARD_DATA_FIELDS: &[&str] = &[
    "pan",
    "expiry",
    "cardholderName",
    "printedLines",
    "embossLines",
    "tracks",
    "chipScript",
    "pinBlock",
    "frontImage",
];
const LINE_FIELDS: &[&str] = &["text", "slot"];
const TRACK_FIELDS: &[&str] = &["track1", "track2", "track3"];
const STEP_FIELDS: &[&str] = &["apdu", "expectSw"];

fn err(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> RequestError {
    RequestError {
        code,
        field: Some(field.into()),
        message: message.into(),
    }
}

/// A key from the body, fit for a message: control bytes escaped, card
/// numbers masked, at most 64 bytes shown.
fn shown_key(key: &str) -> String {
    show_bytes(key.as_bytes(), 64)
}

/// Parses a request body (UTF-8 JSON). See the module documentation for what
/// is decided here.
pub fn parse(body: &[u8]) -> Result<ProductionRequest, RequestError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(RequestError {
            code: ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            field: None,
            message: format!(
                "the request body is {} bytes, at most {MAX_BODY_BYTES} are accepted",
                body.len()
            ),
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(RequestError {
            code: ErrorCode::DATA_PREPARATION_FAILED,
            field: None,
            message: "the request body is empty: a JSON object is expected".into(),
        });
    }
    let tree: Json = serde_json::from_slice(body).map_err(body_error)?;
    let Json::Object(members) = tree else {
        return Err(RequestError {
            code: ErrorCode::DATA_PREPARATION_FAILED,
            field: None,
            message: format!("the request body is {}, not a JSON object", tree.kind()),
        });
    };
    let mut top = Obj::new(String::new(), members, TOP_FIELDS)?;
    let mut req = ProductionRequest::default();
    req.card_token = top.string("cardToken")?;
    req.profile_id = top.integer("profileId")?;
    req.kiosk_id = top.string("kioskId")?;
    req.card_type = top.string("cardType")?;
    req.issuer_request_id = top.string("issuerRequestId")?;
    req.card_id = top.string("cardId")?;
    req.deferred_card_data = top.boolean("deferredCardData")?;
    if req.deferred_card_data {
        if let Some(k) = CARD_DATA_FIELDS.iter().find(|k| top.has(k)) {
            return Err(err(
                ErrorCode::INVALID_FIELD_VALUE,
                *k,
                format!(
                    "{k} is given with deferredCardData: a deferred request carries no card \
                     data (the agent fetches it from the central base before the card starts)"
                ),
            ));
        }
        return Ok(req);
    }
    req.pan = top.string("pan")?;
    req.expiry = top.string("expiry")?;
    req.cardholder_name = top.string("cardholderName")?;
    for (i, item) in top.array("printedLines")?.into_iter().enumerate() {
        let path = format!("printedLines[{i}]");
        let mut line = Obj::from_json(path, item, LINE_FIELDS)?;
        req.printed_lines.push(PrintedLine {
            text: line.string("text")?,
            slot: line.opt_string("slot")?,
        });
    }
    for (i, item) in top.array("embossLines")?.into_iter().enumerate() {
        req.emboss_lines
            .push(as_string(&format!("embossLines[{i}]"), item)?);
    }
    if let Some(tracks) = top.take("tracks") {
        if !matches!(tracks, Json::Null) {
            let mut t = Obj::from_json("tracks".into(), tracks, TRACK_FIELDS)?;
            req.tracks = Tracks {
                track1: t.opt_string("track1")?,
                track2: t.opt_string("track2")?,
                track3: t.opt_string("track3")?,
            };
        }
    }
    for (i, item) in top.array("chipScript")?.into_iter().enumerate() {
        let path = format!("chipScript[{i}]");
        let mut step = Obj::from_json(path.clone(), item, STEP_FIELDS)?;
        let apdu = step.string("apdu")?;
        let expect_sw = match step.take("expectSw") {
            None | Some(Json::Null) => default_expect_sw(),
            Some(Json::Array(items)) => items
                .into_iter()
                .enumerate()
                .map(|(j, sw)| as_string(&format!("{path}.expectSw[{j}]"), sw))
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(wrong_type(
                    &format!("{path}.expectSw"),
                    "an array of strings",
                    &other,
                ))
            }
        };
        req.chip_script.push(ScriptStep { apdu, expect_sw });
    }
    req.pin_block = top.opt_string("pinBlock")?;
    req.front_image = top.opt_string("frontImage")?;
    Ok(req)
}

/// The `cardToken` of a body, when it has a usable one, even if the body is
/// refused: the engine records a `REQUEST_ERROR` under it. The body must be
/// JSON; the other members are skipped without being copied.
pub fn token_of(body: &[u8]) -> Option<String> {
    if body.len() > MAX_BODY_BYTES {
        return None;
    }
    let TokenOnly(tokens) = serde_json::from_slice(body).ok()?;
    match <[Json; 1]>::try_from(tokens) {
        Ok([Json::String(s)]) if super::validate::card_token_problem(&s).is_none() => {
            Some(s.as_str().to_owned())
        }
        _ => None,
    }
}

/// Every `cardToken` member of a top-level object (none when it is not one).
struct TokenOnly(Vec<Json>);

impl<'de> Deserialize<'de> for TokenOnly {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = TokenOnly;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<TokenOnly, A::Error> {
                let mut tokens = Vec::new();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "cardToken" {
                        tokens.push(map.next_value::<Json>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(TokenOnly(tokens))
            }
        }
        d.deserialize_map(V)
    }
}

/// serde_json's verdict on the body as a whole.
fn body_error(e: serde_json::Error) -> RequestError {
    use serde_json::error::Category;
    let (code, message) = match e.classify() {
        Category::Eof => (
            ErrorCode::PARTIAL_DATA_RECEIVED,
            format!(
                "the request body ends in the middle of its JSON (line {}, column {}): only part of it was received",
                e.line(),
                e.column()
            ),
        ),
        _ => (
            ErrorCode::DATA_PREPARATION_FAILED,
            // serde_json's messages name positions and expectations, never
            // the text around them; strings in a body are not repeated.
            format!("the request body is not valid JSON: {e}"),
        ),
    };
    RequestError {
        code,
        field: None,
        message,
    }
}

fn wrong_type(path: &str, want: &str, found: &Json) -> RequestError {
    err(
        ErrorCode::DATA_PREPARATION_FAILED,
        path,
        format!("{path} must be {want}, found {}", found.kind()),
    )
}

fn missing(path: &str) -> RequestError {
    err(
        ErrorCode::EMPTY_OR_NULL_FIELD_VALUE,
        path,
        format!("{path} is required and is missing or null"),
    )
}

fn as_string(path: &str, value: Json) -> Result<String, RequestError> {
    match value {
        Json::String(mut s) => Ok(std::mem::take(&mut *s)),
        Json::Null => Err(missing(path)),
        other => Err(wrong_type(path, "a string", &other)),
    }
}

/// The members of one JSON object, checked for unknown and repeated keys.
struct Obj {
    /// `""` for the top level, `tracks`, `printedLines[2]`...
    path: String,
    members: Vec<(String, Json)>,
}

impl Obj {
    fn new(
        path: String,
        members: Vec<(String, Json)>,
        known: &[&str],
    ) -> Result<Obj, RequestError> {
        let obj = Obj { path, members };
        for (i, (key, _)) in obj.members.iter().enumerate() {
            if !known.contains(&key.as_str()) {
                let field = obj.path_of(&shown_key(key));
                return Err(err(
                    ErrorCode::INVALID_FIELD_VALUE,
                    field.clone(),
                    format!(
                        "{field} is not a field of {}: the known fields are {}",
                        if obj.path.is_empty() {
                            "a production request"
                        } else {
                            obj.path.as_str()
                        },
                        known.join(", ")
                    ),
                ));
            }
            if obj.members[..i].iter().any(|(k, _)| k == key) {
                let field = obj.path_of(key);
                return Err(err(
                    ErrorCode::DATA_PREPARATION_FAILED,
                    field.clone(),
                    format!("{field} is given more than once"),
                ));
            }
        }
        Ok(obj)
    }

    fn from_json(path: String, value: Json, known: &[&str]) -> Result<Obj, RequestError> {
        match value {
            Json::Object(members) => Obj::new(path, members, known),
            Json::Null => Err(missing(&path)),
            other => Err(wrong_type(&path, "an object", &other)),
        }
    }

    fn path_of(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn take(&mut self, key: &str) -> Option<Json> {
        let i = self.members.iter().position(|(k, _)| k == key)?;
        Some(self.members.swap_remove(i).1)
    }

    /// A required string.
    fn string(&mut self, key: &str) -> Result<String, RequestError> {
        let path = self.path_of(key);
        match self.take(key) {
            None => Err(missing(&path)),
            Some(v) => as_string(&path, v),
        }
    }

    /// An optional string: absent and null are the same.
    fn opt_string(&mut self, key: &str) -> Result<Option<String>, RequestError> {
        let path = self.path_of(key);
        match self.take(key) {
            None | Some(Json::Null) => Ok(None),
            Some(v) => as_string(&path, v).map(Some),
        }
    }

    fn has(&self, key: &str) -> bool {
        self.members.iter().any(|(k, _)| k == key)
    }

    /// An optional boolean: absent and null are false.
    fn boolean(&mut self, key: &str) -> Result<bool, RequestError> {
        let path = self.path_of(key);
        match self.take(key) {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(b),
            Some(other) => Err(wrong_type(&path, "true or false", &other)),
        }
    }

    /// A required integer.
    fn integer(&mut self, key: &str) -> Result<i64, RequestError> {
        let path = self.path_of(key);
        match self.take(key) {
            None | Some(Json::Null) => Err(missing(&path)),
            Some(Json::Number(Num::I(n))) => Ok(n),
            Some(Json::Number(Num::U(n))) => i64::try_from(n).map_err(|_| {
                err(
                    ErrorCode::INVALID_FIELD_VALUE,
                    path.clone(),
                    format!("{path} is out of range (at most {})", i64::MAX),
                )
            }),
            Some(other @ Json::Number(Num::F(_))) => Err(err(
                ErrorCode::DATA_PREPARATION_FAILED,
                path.clone(),
                format!(
                    "{path} must be an integer, found {} with a fraction or exponent",
                    other.kind()
                ),
            )),
            Some(other) => Err(wrong_type(&path, "an integer", &other)),
        }
    }

    /// An optional array: absent and null are an empty one.
    fn array(&mut self, key: &str) -> Result<Vec<Json>, RequestError> {
        let path = self.path_of(key);
        match self.take(key) {
            None | Some(Json::Null) => Ok(Vec::new()),
            Some(Json::Array(items)) => Ok(items),
            Some(other) => Err(wrong_type(&path, "an array", &other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> serde_json::Value {
        json!({
            "cardToken": "t1", "profileId": 7, "kioskId": "K1", "cardType": "plain",
            "issuerRequestId": "r1", "cardId": "c1", "pan": "4000001234567899",
            "expiry": "2812", "cardholderName": "JANE DOE"
        })
    }

    fn parse_value(v: &serde_json::Value) -> Result<ProductionRequest, RequestError> {
        parse(&serde_json::to_vec(v).unwrap())
    }

    fn fails(v: serde_json::Value) -> (ErrorCode, Option<String>) {
        let e = parse_value(&v).unwrap_err();
        (e.code, e.field)
    }

    fn with(f: impl FnOnce(&mut serde_json::Value)) -> serde_json::Value {
        let mut v = minimal();
        f(&mut v);
        v
    }

    #[test]
    fn optional_fields_default_to_empty() {
        let r = parse_value(&minimal()).unwrap();
        assert_eq!(r.card_token, "t1");
        assert_eq!(r.profile_id, 7);
        assert!(r.printed_lines.is_empty() && r.emboss_lines.is_empty());
        assert!(r.tracks.is_empty() && r.chip_script.is_empty());
        assert_eq!((&r.pin_block, &r.front_image), (&None, &None));
        let nulls = with(|v| {
            for k in [
                "printedLines",
                "embossLines",
                "tracks",
                "chipScript",
                "pinBlock",
                "frontImage",
            ] {
                v[k] = serde_json::Value::Null;
            }
        });
        assert_eq!(
            parse_value(&nulls).unwrap(),
            parse_value(&minimal()).unwrap()
        );
    }

    #[test]
    fn nested_values_are_read() {
        let r = parse_value(&with(|v| {
            v["printedLines"] = json!([{ "text": "A", "slot": "name" }, { "text": "B", "slot": null }]);
            v["embossLines"] = json!(["X", ""]);
            v["tracks"] = json!({ "track2": "1=2", "track3": null });
            v["chipScript"] = json!([{ "apdu": "00B00000" }, { "apdu": "00", "expectSw": ["6283", "9000"] }, { "apdu": "01", "expectSw": null }]);
            v["pinBlock"] = json!("26123456FFFFFFFF");
        }))
        .unwrap();
        assert_eq!(r.printed_lines[0].slot.as_deref(), Some("name"));
        assert_eq!(r.printed_lines[1].slot, None);
        assert_eq!(r.emboss_lines, ["X", ""]);
        assert_eq!(r.tracks.track2.as_deref(), Some("1=2"));
        assert_eq!(r.tracks.track3, None);
        assert_eq!(r.chip_script[0].expect_sw, [DEFAULT_EXPECT_SW]);
        assert_eq!(r.chip_script[1].expect_sw, ["6283", "9000"]);
        assert_eq!(r.chip_script[2].expect_sw, [DEFAULT_EXPECT_SW]);
        assert_eq!(r.pin_block.as_deref(), Some("26123456FFFFFFFF"));
    }

    #[test]
    fn body_level_errors() {
        let e = |b: &[u8]| {
            let e = parse(b).unwrap_err();
            assert_eq!(e.field, None, "{e}");
            e.code
        };
        assert_eq!(e(b""), ErrorCode::DATA_PREPARATION_FAILED);
        assert_eq!(e(b" \n"), ErrorCode::DATA_PREPARATION_FAILED);
        assert_eq!(e(b"null"), ErrorCode::DATA_PREPARATION_FAILED);
        assert_eq!(e(b"\"x\""), ErrorCode::DATA_PREPARATION_FAILED);
        assert_eq!(e(b"{} {}"), ErrorCode::DATA_PREPARATION_FAILED);
        assert_eq!(e(b"{\"a\" 1}"), ErrorCode::DATA_PREPARATION_FAILED);
        assert_eq!(
            e(b"{\"pan\": \"\xff\"}"),
            ErrorCode::DATA_PREPARATION_FAILED
        );
        assert_eq!(e(b"{"), ErrorCode::PARTIAL_DATA_RECEIVED);
        assert_eq!(e(b"{\"pan\": \"4000"), ErrorCode::PARTIAL_DATA_RECEIVED);
        assert_eq!(e(b"[{\"a\": [1, "), ErrorCode::PARTIAL_DATA_RECEIVED);
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        assert_eq!(e(&big), ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE);
    }

    #[test]
    fn eof_messages_do_not_echo_the_body() {
        let e = parse(b"{\"pan\": \"4000001234567899").unwrap_err();
        assert!(!e.message.contains("4000001234567899"), "{e}");
    }

    #[test]
    fn unknown_keys_are_named_at_their_path() {
        use ErrorCode::*;
        assert_eq!(
            fails(with(|v| v["cvv2"] = json!("1"))),
            (INVALID_FIELD_VALUE, Some("cvv2".into()))
        );
        assert_eq!(
            fails(with(
                |v| v["printedLines"] = json!([{ "text": "A", "colour": "red" }])
            )),
            (INVALID_FIELD_VALUE, Some("printedLines[0].colour".into()))
        );
        assert_eq!(
            fails(with(
                |v| v["chipScript"] = json!([{ "apdu": "00", "sw": [] }])
            )),
            (INVALID_FIELD_VALUE, Some("chipScript[0].sw".into()))
        );
        // A key that looks like a card number is masked in the field and the message.
        let e = parse_value(&with(|v| v["4000001234567899"] = json!(1))).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("400000******7899"));
        assert!(!e.message.contains("4000001234567899"));
        // Unknown keys are reported before missing ones (a misspelt key).
        let mut v = minimal();
        v.as_object_mut().unwrap().remove("cardholderName");
        v["cardHolderName"] = json!("JANE DOE");
        assert_eq!(
            fails(v),
            (INVALID_FIELD_VALUE, Some("cardHolderName".into()))
        );
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        let mut body = serde_json::to_vec(&minimal()).unwrap();
        body.pop();
        body.extend_from_slice(br#", "tracks": {"track1": "A", "track1": "B"}}"#);
        let e = parse(&body).unwrap_err();
        assert_eq!(e.code, ErrorCode::DATA_PREPARATION_FAILED);
        assert_eq!(e.field.as_deref(), Some("tracks.track1"));
    }

    #[test]
    fn types_and_presence() {
        use ErrorCode::*;
        let f = |k: &str, val: serde_json::Value| fails(with(|v| v[k] = val));
        assert_eq!(
            f("pan", json!(4000001234567899u64)),
            (DATA_PREPARATION_FAILED, Some("pan".into()))
        );
        assert_eq!(
            f("profileId", json!("7")),
            (DATA_PREPARATION_FAILED, Some("profileId".into()))
        );
        assert_eq!(
            f("profileId", json!(7.5)),
            (DATA_PREPARATION_FAILED, Some("profileId".into()))
        );
        assert_eq!(
            f("profileId", json!(u64::MAX)),
            (INVALID_FIELD_VALUE, Some("profileId".into()))
        );
        assert_eq!(
            f("profileId", json!(null)),
            (EMPTY_OR_NULL_FIELD_VALUE, Some("profileId".into()))
        );
        assert_eq!(
            f("expiry", json!(null)),
            (EMPTY_OR_NULL_FIELD_VALUE, Some("expiry".into()))
        );
        assert_eq!(
            f("embossLines", json!("X")),
            (DATA_PREPARATION_FAILED, Some("embossLines".into()))
        );
        assert_eq!(
            f("embossLines", json!([1])),
            (DATA_PREPARATION_FAILED, Some("embossLines[0]".into()))
        );
        assert_eq!(
            f("embossLines", json!([null])),
            (EMPTY_OR_NULL_FIELD_VALUE, Some("embossLines[0]".into()))
        );
        assert_eq!(
            f("printedLines", json!(["A"])),
            (DATA_PREPARATION_FAILED, Some("printedLines[0]".into()))
        );
        assert_eq!(
            f("printedLines", json!([{}])),
            (
                EMPTY_OR_NULL_FIELD_VALUE,
                Some("printedLines[0].text".into())
            )
        );
        assert_eq!(
            f("tracks", json!([])),
            (DATA_PREPARATION_FAILED, Some("tracks".into()))
        );
        assert_eq!(
            f("tracks", json!({ "track1": 1 })),
            (DATA_PREPARATION_FAILED, Some("tracks.track1".into()))
        );
        assert_eq!(
            f("chipScript", json!([{ "apdu": "00", "expectSw": "9000" }])),
            (
                DATA_PREPARATION_FAILED,
                Some("chipScript[0].expectSw".into())
            )
        );
        assert_eq!(
            f("chipScript", json!([{ "apdu": "00", "expectSw": [9000] }])),
            (
                DATA_PREPARATION_FAILED,
                Some("chipScript[0].expectSw[0]".into())
            )
        );
        assert_eq!(
            f("chipScript", json!([{ "expectSw": [] }])),
            (EMPTY_OR_NULL_FIELD_VALUE, Some("chipScript[0].apdu".into()))
        );
        assert_eq!(
            f("pinBlock", json!(26123456)),
            (DATA_PREPARATION_FAILED, Some("pinBlock".into()))
        );
        assert_eq!(
            f("frontImage", json!({})),
            (DATA_PREPARATION_FAILED, Some("frontImage".into()))
        );
    }

    #[test]
    fn token_of_reads_refused_bodies() {
        let b = serde_json::to_vec(&with(|v| v["pan"] = json!(1))).unwrap();
        assert_eq!(token_of(&b).as_deref(), Some("t1"));
        assert_eq!(token_of(br#"{"cardToken": "a b"}"#), None);
        assert_eq!(token_of(br#"{"cardToken": "a", "cardToken": "b"}"#), None);
        assert_eq!(token_of(br#"{"cardToken": 5}"#), None);
        assert_eq!(token_of(b"[1]"), None);
        assert_eq!(
            token_of(br#"{"x": [1, {"y": "\u0041"}], "cardToken": "ok", "z": null}"#).as_deref(),
            Some("ok")
        );
        assert_eq!(token_of(br#"{"cardToken": "ok""#), None);
    }

    #[test]
    fn debug_shows_no_card_data() {
        let r = parse_value(&with(|v| {
            v["tracks"] = json!({ "track2": "4000001234567899=2812201" });
            v["pinBlock"] = json!("26123456FFFFFFFF");
            v["chipScript"] = json!([{ "apdu": "00DA9F1B0812345678ABCDEF99" }]);
            v["printedLines"] = json!([{ "text": "4000 0012 3456 7899", "slot": "pan" }]);
        }))
        .unwrap();
        let d = format!("{r:?}");
        for secret in [
            "4000001234567899",
            "0012 3456",
            "JANE",
            "2812",
            "26123456",
            "12345678AB",
        ] {
            assert!(!d.contains(secret), "{secret} in {d}");
        }
        assert!(d.contains("400000******7899"), "{d}");
        assert_eq!(masked_pan("40000012345678é9"), "<16 characters>");
    }
}
