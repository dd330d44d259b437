//! Validation: a parsed [`ProductionRequest`] checked against this kiosk (its
//! id, card types, printer capabilities and panel geometry) and turned into
//! what production needs, already in printer terms ([`Accepted`]).
//!
//! Checks run in this order and the first broken rule is the answer:
//! identifiers (`cardToken`, `profileId`, `kioskId`, `cardType`,
//! `issuerRequestId`, `cardId`), the kiosk, the card type and the printer's
//! means for it, `pan`, `expiry`, `cardholderName`, `printedLines`,
//! `embossLines`, `tracks`, `chipScript`, `pinBlock`, `frontImage`. Within a
//! field: empty, then size, then character set or encoding, then form, then
//! value; except that a PAN with other characters than digits and a track sent
//! with its sentinels are told as such first (their length would mislead).
//! `docs/REQUEST.md` lists every code with its reasons.

use super::card_type::CardType;
use super::checks::{self, Charset, Problem};
use super::image::{self, FrontPanels, ImageProblem, MAX_IMAGE_BYTES};
use super::schema::{self, masked_pan, ProductionRequest};
use crate::chip::script::{is_valid_sw, parse_hex};
use crate::chip::{ApduStep, ChipScript, StepError};
use crate::codes::ErrorCode;
use crate::printer::profile::Capabilities;
use crate::printer::steps::{EmbossLine, TextLine, Track};
use dialect::panel::Geometry;
use dialect::redact::{mask_digits, show_bytes};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::mem::take;
use zeroize::{Zeroize, Zeroizing};

/// Longest identifier (`cardToken`, `kioskId`, `cardType`, `issuerRequestId`,
/// `cardId`), in characters.
pub const MAX_ID_CHARS: usize = 64;

/// Longest printed line, in characters (a bound, not font metrics: the card
/// is 1016 dots long).
pub const MAX_PRINTED_CHARS: usize = 48;

/// What a request is checked against: this kiosk and its printer.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub kiosk_id: &'a str,
    pub card_types: &'a [CardType],
    pub capabilities: &'a Capabilities,
    pub geometry: Geometry,
}

/// A refused request: the seed's request error code, the field at fault (as
/// the JSON spells it: `tracks.track1`, `chipScript[2].apdu`; none for the
/// body as a whole) and a specific message that never holds card data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestError {
    pub code: ErrorCode,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for RequestError {}

impl RequestError {
    fn at(code: ErrorCode, field: impl Into<String>, message: impl Into<String>) -> Self {
        RequestError {
            code,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    fn from_problem(field: impl Into<String>, p: Problem) -> Self {
        RequestError::at(p.code, field, p.message)
    }
}

pub use crate::job::JobMeta;

/// An accepted request: its identity, the PAN (for the store's keyed
/// fingerprint; wiped when dropped) and the card data in printer terms.
pub struct Accepted {
    pub meta: JobMeta,
    pub pan: Zeroizing<String>,
    pub card: CardData,
}

impl fmt::Debug for Accepted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Accepted")
            .field("meta", &self.meta)
            .field("pan", &masked_pan(&self.pan))
            .field("card", &self.card)
            .finish()
    }
}

/// One chip step: the command APDU and the status words it may answer.
pub type ChipStep = (Vec<u8>, Vec<u16>);

/// Everything production needs, in printer terms. Card data: wiped when
/// dropped, never shown by `Debug`, to be encrypted at rest by the store.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardData {
    /// The card stock to take: the card type's id, as feeders are loaded.
    pub feeder_card_type: String,
    /// Tracks to write, without sentinels or LRC.
    pub tracks: Vec<Track>,
    /// K-panel text, positioned by the card type's layout.
    pub text: Vec<TextLine>,
    /// Emboss lines (blank lines left out).
    pub emboss: Vec<EmbossLine>,
    /// The chip script: each step's command APDU and the status words it may
    /// answer (see [`CardData::chip_script`]).
    pub chip: Vec<ChipStep>,
    /// The PIN as an ISO 9564 format 2 block (8 bytes), whichever format
    /// came: the chip's offline PIN, set by the last step of the chip script.
    pub pin_block: Option<Vec<u8>>,
    /// The front image as Y, M and C panels of the printer's geometry.
    pub panels: Option<FrontPanels>,
}

impl Drop for CardData {
    fn drop(&mut self) {
        for t in &mut self.tracks {
            t.data.zeroize();
        }
        for l in &mut self.text {
            l.text.zeroize();
        }
        for l in &mut self.emboss {
            l.text.zeroize();
        }
        for (command, _) in &mut self.chip {
            command.zeroize();
        }
        self.pin_block.zeroize();
        // panels wipe themselves.
    }
}

impl fmt::Debug for CardData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardData")
            .field("feeder_card_type", &self.feeder_card_type)
            .field("tracks", &self.tracks)
            .field("text", &format_args!("<{} lines>", self.text.len()))
            .field("emboss", &format_args!("<{} lines>", self.emboss.len()))
            .field(
                "chip",
                &format_args!(
                    "<{} steps, {} bytes>",
                    self.chip.len(),
                    self.chip.iter().map(|(c, _)| c.len()).sum::<usize>()
                ),
            )
            .field(
                "pin_block",
                &self
                    .pin_block
                    .as_ref()
                    .map(|p| format!("<{} bytes>", p.len())),
            )
            .field("panels", &self.panels)
            .finish()
    }
}

impl CardData {
    /// The chip script for `ChipStation::personalise`: the request's steps,
    /// then, when a PIN block came, CHANGE REFERENCE DATA (ISO 7816-4,
    /// `00 24 01 80 08` + the format 2 block) setting the offline PIN.
    pub fn chip_script(&self) -> ChipScript {
        let mut steps: Vec<ApduStep> = self
            .chip
            .iter()
            .map(|(command, sw)| ApduStep::new(command.clone(), sw.clone()))
            .collect();
        if let Some(block) = &self.pin_block {
            let mut command = vec![0x00, 0x24, 0x01, 0x80, block.len() as u8];
            command.extend_from_slice(block);
            steps.push(ApduStep::new(command, vec![0x9000]));
        }
        ChipScript::new(steps)
    }
}

/// Parses a request body: see [`schema`] for what it decides.
pub fn parse(body: &[u8]) -> Result<ProductionRequest, RequestError> {
    schema::parse(body)
}

/// Parses and validates a body in one go.
pub fn accept(body: &[u8], ctx: &Context) -> Result<Accepted, RequestError> {
    validate(parse(body)?, ctx)
}

/// The identifiers, this kiosk, the card type and what it needs of the
/// printer: everything but the card data.
fn identity<'c>(req: &ProductionRequest, ctx: &Context<'c>) -> Result<&'c CardType, RequestError> {
    // Identifiers.
    if let Some(e) = card_token_problem(&req.card_token) {
        return Err(e);
    }
    if req.profile_id <= 0 {
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            "profileId",
            "profileId must be a positive integer",
        ));
    }
    check_id("kioskId", &req.kiosk_id)?;
    check_id("cardType", &req.card_type)?;
    check_id("issuerRequestId", &req.issuer_request_id)?;
    check_id("cardId", &req.card_id)?;

    // This kiosk, this card type, this printer.
    if req.kiosk_id != ctx.kiosk_id {
        return Err(RequestError::at(
            ErrorCode::KIOSK_ID_NOT_FOUND,
            "kioskId",
            format!(
                "kioskId {} is not this kiosk ({})",
                show_bytes(req.kiosk_id.as_bytes(), MAX_ID_CHARS),
                ctx.kiosk_id
            ),
        ));
    }
    let Some(ct) = ctx.card_types.iter().find(|t| t.id == req.card_type) else {
        let known: Vec<&str> = ctx.card_types.iter().map(|t| t.id.as_str()).collect();
        return Err(RequestError::at(
            ErrorCode::CARD_TYPE_NOT_FOUND,
            "cardType",
            format!(
                "cardType {} is not a card type of this kiosk (it has: {})",
                show_bytes(req.card_type.as_bytes(), MAX_ID_CHARS),
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let missing = ct.missing_capabilities(ctx.capabilities);
    if !missing.is_empty() {
        return Err(RequestError::at(
            ErrorCode::CARD_TYPE_NOT_FOUND,
            "cardType",
            format!(
                "card type {} needs {}, which this kiosk's printer lacks: the card type cannot be produced here",
                ct.id,
                missing.join(" and ")
            ),
        ));
    }
    Ok(ct)
}

/// Checks a request whose card data is deferred (`deferredCardData`): its
/// identity now; the data when it arrives ([`complete`]).
pub fn validate_deferred(
    mut req: ProductionRequest,
    ctx: &Context,
) -> Result<JobMeta, RequestError> {
    if !req.deferred_card_data {
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            "deferredCardData",
            "this request carries its card data",
        ));
    }
    identity(&req, ctx)?;
    Ok(JobMeta {
        card_token: take(&mut req.card_token),
        profile_id: req.profile_id,
        kiosk_id: take(&mut req.kiosk_id),
        card_type: take(&mut req.card_type),
        issuer_request_id: take(&mut req.issuer_request_id),
        card_id: take(&mut req.card_id),
        pan_masked: String::new(),
    })
}

/// Validates deferred card data as it arrived (a JSON object of the card
/// data fields only) together with the job it belongs to, exactly as a
/// request carrying it would have been. The buffers are wiped when dropped.
pub fn complete(meta: &JobMeta, data: &[u8], ctx: &Context) -> Result<Accepted, RequestError> {
    let inner = std::str::from_utf8(data)
        .ok()
        .map(str::trim)
        .and_then(|d| d.strip_prefix('{'))
        .and_then(|d| d.strip_suffix('}'))
        .ok_or_else(|| {
            RequestError::at(
                ErrorCode::DATA_PREPARATION_FAILED,
                "cardData",
                "the deferred card data is not a JSON object",
            )
        })?;
    let head = serde_json::json!({
        "cardToken": meta.card_token,
        "profileId": meta.profile_id,
        "kioskId": meta.kiosk_id,
        "cardType": meta.card_type,
        "issuerRequestId": meta.issuer_request_id,
        "cardId": meta.card_id,
    })
    .to_string();
    let mut body = Zeroizing::new(String::with_capacity(head.len() + inner.len() + 2));
    body.push_str(&head[..head.len() - 1]);
    if !inner.trim().is_empty() {
        body.push(',');
        body.push_str(inner);
    }
    body.push('}');
    // A field of the job given again in the data is seen as a duplicate.
    accept(body.as_bytes(), ctx)
}

/// Checks a request against this kiosk and builds what production needs.
pub fn validate(mut req: ProductionRequest, ctx: &Context) -> Result<Accepted, RequestError> {
    if req.deferred_card_data {
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            "deferredCardData",
            "this request's card data is deferred: it is validated when it arrives",
        ));
    }
    let ct = identity(&req, ctx)?;

    // PAN, expiry, name.
    if req.pan.is_empty() {
        return Err(empty("pan"));
    }
    checks::check_pan(&req.pan).map_err(|p| RequestError::from_problem("pan", p))?;
    if req.expiry.is_empty() {
        return Err(empty("expiry"));
    }
    checks::check_expiry(&req.expiry).map_err(|p| RequestError::from_problem("expiry", p))?;
    check_name(&req.cardholder_name)?;

    let text = printed_lines(&mut req, ct, ctx.geometry)?;
    let emboss = emboss_lines(&mut req, ct, ctx.capabilities)?;
    let tracks = tracks(&mut req, ct)?;
    let chip = chip_script(&mut req, ct)?;
    let pin_block = pin_block(&req, ct)?;
    let panels = front_image(&mut req, ct, ctx.geometry)?;

    let meta = JobMeta {
        card_token: take(&mut req.card_token),
        profile_id: req.profile_id,
        kiosk_id: take(&mut req.kiosk_id),
        card_type: take(&mut req.card_type),
        issuer_request_id: take(&mut req.issuer_request_id),
        card_id: take(&mut req.card_id),
        pan_masked: mask_digits(&req.pan),
    };
    let card = CardData {
        feeder_card_type: ct.id.clone(),
        tracks,
        text,
        emboss,
        chip,
        pin_block,
        panels,
    };
    Ok(Accepted {
        meta,
        pan: Zeroizing::new(take(&mut req.pan)),
        card,
    })
}

fn empty(field: &str) -> RequestError {
    RequestError::at(
        ErrorCode::EMPTY_OR_NULL_FIELD_VALUE,
        field,
        format!("{field} is empty"),
    )
}

fn too_long(field: &str, chars: usize, max: usize) -> RequestError {
    RequestError::at(
        ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
        field,
        format!("{field} has {chars} characters, at most {max} are allowed"),
    )
}

/// Why a `cardToken` is not acceptable, if it is not: 1 to 64 characters of
/// URL-safe ASCII (letters, digits, `-`, `.`, `_`, `~`), since it names the
/// card in the local API's paths.
pub(crate) fn card_token_problem(token: &str) -> Option<RequestError> {
    let field = "cardToken";
    if token.trim().is_empty() {
        return Some(empty(field));
    }
    let n = token.chars().count();
    if n > MAX_ID_CHARS {
        return Some(too_long(field, n, MAX_ID_CHARS));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
    token.chars().position(|c| !ok(c)).map(|i| {
        RequestError::at(
            ErrorCode::CHARSET_NOT_SUPPORTED,
            field,
            format!(
                "cardToken: character {} is not a letter, digit, '-', '.', '_' or '~'",
                i + 1
            ),
        )
    })
}

/// An identifier: 1 to 64 printable ASCII characters.
fn check_id(field: &str, value: &str) -> Result<(), RequestError> {
    if value.trim().is_empty() {
        return Err(empty(field));
    }
    let n = value.chars().count();
    if n > MAX_ID_CHARS {
        return Err(too_long(field, n, MAX_ID_CHARS));
    }
    if let Some(i) = value.chars().position(|c| !(' '..='~').contains(&c)) {
        return Err(RequestError::at(
            ErrorCode::CHARSET_NOT_SUPPORTED,
            field,
            format!("{field}: character {} is not printable ASCII", i + 1),
        ));
    }
    Ok(())
}

/// The name of record: 2 to 26 characters (ISO/IEC 7813's name field) in the
/// set both track 1 and the printer carry.
fn check_name(name: &str) -> Result<(), RequestError> {
    let field = "cardholderName";
    if name.trim().is_empty() {
        return Err(empty(field));
    }
    let n = name.chars().count();
    if !(2..=26).contains(&n) {
        return Err(RequestError::at(
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            field,
            format!("{field} has {n} characters, a card name has 2 to 26"),
        ));
    }
    Charset::Name
        .check(field, name)
        .map_err(|p| RequestError::from_problem(field, p))
}

fn printed_lines(
    req: &mut ProductionRequest,
    ct: &CardType,
    geometry: Geometry,
) -> Result<Vec<TextLine>, RequestError> {
    let mut out = Vec::with_capacity(req.printed_lines.len());
    let mut used = BTreeSet::new();
    let mut free = 0usize;
    let pan = req.pan.as_str();
    for (i, line) in req.printed_lines.iter_mut().enumerate() {
        let field = format!("printedLines[{i}].text");
        if line.text.trim().is_empty() {
            return Err(empty(&field));
        }
        let n = line.text.chars().count();
        if n > MAX_PRINTED_CHARS {
            return Err(too_long(&field, n, MAX_PRINTED_CHARS));
        }
        Charset::Printer
            .check(&field, &line.text)
            .map_err(|p| RequestError::from_problem(&field, p))?;
        let pos = match &line.slot {
            Some(slot) => {
                let sf = format!("printedLines[{i}].slot");
                if slot.is_empty() {
                    return Err(empty(&sf));
                }
                let Some(pos) = ct.layout.slots.get(slot) else {
                    let known: Vec<&str> = ct.layout.slots.keys().map(String::as_str).collect();
                    return Err(RequestError::at(
                        ErrorCode::INVALID_FIELD_VALUE,
                        sf,
                        format!(
                            "slot {} is not in card type {}'s layout (its slots: {})",
                            show_bytes(slot.as_bytes(), MAX_ID_CHARS),
                            ct.id,
                            known.join(", ")
                        ),
                    ));
                };
                if !used.insert(slot.clone()) {
                    return Err(RequestError::at(
                        ErrorCode::INVALID_FIELD_VALUE,
                        sf,
                        format!("slot {slot} is given to more than one printed line"),
                    ));
                }
                if slot == "pan" {
                    let digits: Zeroizing<String> =
                        Zeroizing::new(line.text.chars().filter(char::is_ascii_digit).collect());
                    if digits.len() >= 12 && digits.as_str() != pan {
                        return Err(RequestError::at(
                            ErrorCode::INVALID_FIELD_VALUE,
                            field,
                            "the card number printed in the pan slot is not the request's pan",
                        ));
                    }
                }
                *pos
            }
            None => {
                let Some(pos) = ct.layout.free_line(free, geometry) else {
                    return Err(RequestError::at(
                        ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
                        format!("printedLines[{i}]"),
                        format!(
                            "too many printed lines without a slot: card type {}'s layout has room for {}",
                            ct.id,
                            ct.layout.free_line_capacity(geometry)
                        ),
                    ));
                };
                free += 1;
                pos
            }
        };
        out.push(TextLine {
            x: pos.x,
            y: pos.y,
            font: pos.font,
            height: pos.height,
            text: take(&mut line.text),
        });
    }
    Ok(out)
}

fn emboss_lines(
    req: &mut ProductionRequest,
    ct: &CardType,
    caps: &Capabilities,
) -> Result<Vec<EmbossLine>, RequestError> {
    let field = "embossLines";
    let blank = |l: &String| l.trim().is_empty();
    if !ct.emboss {
        if req.emboss_lines.is_empty() {
            return Ok(Vec::new());
        }
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            field,
            format!(
                "card type {} is not embossed: embossLines must be absent or empty",
                ct.id
            ),
        ));
    }
    if req.emboss_lines.iter().all(blank) {
        return Err(RequestError::at(
            ErrorCode::EMPTY_OR_NULL_FIELD_VALUE,
            field,
            format!("card type {} is embossed: embossLines is required", ct.id),
        ));
    }
    let lines = usize::from(caps.emboss_lines);
    if req.emboss_lines.len() > lines {
        return Err(RequestError::at(
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            field,
            format!(
                "embossLines has {} lines, the emboss module has {lines}",
                req.emboss_lines.len()
            ),
        ));
    }
    let mut out = Vec::new();
    for (i, text) in req.emboss_lines.iter_mut().enumerate() {
        if blank(text) {
            continue;
        }
        let f = format!("embossLines[{i}]");
        let n = text.chars().count();
        let max = caps.emboss_line_chars.get(i).copied().unwrap_or(0);
        if n > max {
            return Err(RequestError::at(
                ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
                f,
                format!(
                    "emboss line {} has {n} characters, the module's line {} holds {max}",
                    i + 1,
                    i + 1
                ),
            ));
        }
        Charset::Emboss
            .check(&f, text)
            .map_err(|p| RequestError::from_problem(&f, p))?;
        out.push(EmbossLine {
            line: (i + 1) as u8,
            font: ct.layout.emboss_font(i + 1),
            text: take(text),
        });
    }
    Ok(out)
}

fn tracks(req: &mut ProductionRequest, ct: &CardType) -> Result<Vec<Track>, RequestError> {
    let t = &req.tracks;
    if !ct.magnetic {
        if t.is_empty() {
            return Ok(Vec::new());
        }
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            "tracks",
            format!(
                "card type {} has no magnetic stripe: tracks must be absent",
                ct.id
            ),
        ));
    }
    if t.track1.is_none() && t.track2.is_none() {
        return Err(RequestError::at(
            ErrorCode::EMPTY_OR_NULL_FIELD_VALUE,
            "tracks",
            format!(
                "card type {} has a magnetic stripe: tracks needs track1 or track2",
                ct.id
            ),
        ));
    }
    let mut facts = Vec::new();
    for (n, data) in t.given() {
        let field = format!("tracks.track{n}");
        if data.is_empty() {
            return Err(empty(&field));
        }
        if let Some(f) = checks::check_track(n, data, &req.pan, &req.expiry)
            .map_err(|p| RequestError::from_problem(&field, p))?
        {
            facts.push(f);
        }
    }
    if let [a, b] = facts[..] {
        if a.service_code != b.service_code {
            return Err(RequestError::at(
                ErrorCode::INVALID_FIELD_FORMAT,
                "tracks.track2",
                "track 2's service code differs from track 1's",
            ));
        }
    }
    let t = &mut req.tracks;
    Ok(
        [(1u8, &mut t.track1), (2, &mut t.track2), (3, &mut t.track3)]
            .into_iter()
            .filter_map(|(number, data)| {
                data.as_mut().map(|d| Track {
                    number,
                    data: take(d),
                })
            })
            .collect(),
    )
}

fn chip_script(req: &mut ProductionRequest, ct: &CardType) -> Result<Vec<ChipStep>, RequestError> {
    if !ct.chip {
        if req.chip_script.is_empty() {
            return Ok(Vec::new());
        }
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            "chipScript",
            format!(
                "card type {} has no chip: chipScript must be absent or empty",
                ct.id
            ),
        ));
    }
    if req.chip_script.is_empty() {
        return Err(RequestError::at(
            ErrorCode::EMPTY_OR_NULL_FIELD_VALUE,
            "chipScript",
            format!("card type {} has a chip: chipScript is required", ct.id),
        ));
    }
    let mut out = Vec::with_capacity(req.chip_script.len());
    for (i, step) in req.chip_script.iter().enumerate() {
        let af = format!("chipScript[{i}].apdu");
        if step.apdu.trim().is_empty() {
            return Err(empty(&af));
        }
        let command = parse_hex(&step.apdu).map_err(|e| {
            let why = match e {
                StepError::BadHexDigit { position } => {
                    format!("character {position} is not a hex digit")
                }
                StepError::OddHexDigits { digits } => {
                    format!("has an odd number of hex digits ({digits})")
                }
                other => other.to_string(),
            };
            RequestError::at(
                ErrorCode::INVALID_FIELD_ENCODING,
                &af,
                format!("{af}: {why}"),
            )
        })?;
        // Wiped if a status word below is refused.
        let command = Zeroizing::new(command);
        if step.expect_sw.is_empty() {
            return Err(RequestError::at(
                ErrorCode::EMPTY_OR_NULL_FIELD_VALUE,
                format!("chipScript[{i}].expectSw"),
                format!("chipScript[{i}].expectSw is empty: the step would accept no answer"),
            ));
        }
        let mut sws = Vec::with_capacity(step.expect_sw.len());
        for (j, sw) in step.expect_sw.iter().enumerate() {
            sws.push(status_word(&format!("chipScript[{i}].expectSw[{j}]"), sw)?);
        }
        let apdu = ApduStep::new(command.to_vec(), sws);
        apdu.validate().map_err(|e| {
            let code = match e {
                StepError::EmptyCommand => ErrorCode::EMPTY_OR_NULL_FIELD_VALUE,
                StepError::TooShort { .. } | StepError::TooLong { .. } => {
                    ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE
                }
                StepError::BadLengthFields { .. } => ErrorCode::INVALID_FIELD_FORMAT,
                _ => ErrorCode::INVALID_FIELD_VALUE,
            };
            RequestError::at(code, &af, format!("{af}: {e}"))
        })?;
        out.push((apdu.command.clone(), apdu.expect_sw.clone()));
    }
    Ok(out)
}

/// A status word: 4 hex digits, one a card can answer.
fn status_word(field: &str, sw: &str) -> Result<u16, RequestError> {
    if let Some(i) = sw.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_ENCODING,
            field,
            format!("{field}: character {} is not a hex digit", i + 1),
        ));
    }
    if sw.len() != 4 {
        return Err(RequestError::at(
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            field,
            format!("{field} has {} hex digits, a status word has 4", sw.len()),
        ));
    }
    let v = u16::from_str_radix(sw, 16).unwrap_or(0);
    if !is_valid_sw(v) {
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            field,
            format!(
                "{field} ({v:04X}) is not a status word a card answers (SW1 61 to 6F or 90 to 9F)"
            ),
        ));
    }
    Ok(v)
}

fn pin_block(req: &ProductionRequest, ct: &CardType) -> Result<Option<Vec<u8>>, RequestError> {
    let field = "pinBlock";
    let Some(block) = &req.pin_block else {
        return Ok(None);
    };
    if !ct.chip {
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            field,
            format!(
                "card type {} has no chip: a PIN block has nowhere to go",
                ct.id
            ),
        ));
    }
    if block.is_empty() {
        return Err(empty(field));
    }
    checks::check_pin_block(block, &req.pan)
        .map(Some)
        .map_err(|p| RequestError::from_problem(field, p))
}

/// Standard base64, padding optional; whitespace (line breaks) is removed first.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn front_image(
    req: &mut ProductionRequest,
    ct: &CardType,
    geometry: Geometry,
) -> Result<Option<FrontPanels>, RequestError> {
    use base64::Engine;
    let field = "frontImage";
    let Some(text) = req.front_image.take() else {
        return Ok(None);
    };
    let mut text = Zeroizing::new(text);
    if !ct.colour {
        return Err(RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            field,
            format!(
                "card type {} is not printed in colour: frontImage must be absent",
                ct.id
            ),
        ));
    }
    // Line breaks (MIME-style wrapping) carry nothing: removed in place.
    text.retain(|c| !c.is_ascii_whitespace());
    if text.is_empty() {
        return Err(empty(field));
    }
    let max_text = MAX_IMAGE_BYTES.div_ceil(3) * 4;
    if text.len() > max_text {
        return Err(RequestError::at(
            ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            field,
            format!(
                "frontImage has {} base64 characters, at most {max_text} ({MAX_IMAGE_BYTES} bytes of PNG)",
                text.len()
            ),
        ));
    }
    let png = Zeroizing::new(BASE64.decode(text.as_bytes()).map_err(|e| {
        let why = match e {
            base64::DecodeError::InvalidByte(at, _) => {
                format!(
                    "character {} (not counting line breaks) is not base64",
                    at + 1
                )
            }
            base64::DecodeError::InvalidLength(_) => "its length is not a base64 length".into(),
            base64::DecodeError::InvalidLastSymbol(at, _) => {
                format!(
                    "character {} (the last) has bits set that base64 leaves clear",
                    at + 1
                )
            }
            base64::DecodeError::InvalidPadding => "its padding is wrong".into(),
        };
        RequestError::at(
            ErrorCode::INVALID_FIELD_ENCODING,
            field,
            format!("frontImage does not decode as base64: {why}"),
        )
    })?);
    // The text is wiped before the image is decoded: one copy at a time.
    drop(text);
    image::png_to_panels(&png, geometry)
        .map(Some)
        .map_err(|p| match p {
            ImageProblem::Undecodable(why) => RequestError::at(
                ErrorCode::IMAGE_SERVER_ERROR,
                field,
                format!("frontImage is not a PNG the kiosk can process: {why}"),
            ),
            ImageProblem::WrongSize {
                width,
                height,
                want_width,
                want_height,
            } => RequestError::at(
                ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
                field,
                format!(
                    "frontImage is {width}x{height} pixels, the card front is {want_width}x{want_height} (landscape, one pixel a printer dot)"
                ),
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::card_type::TextPosition;
    use crate::request::schema::{PrintedLine, ScriptStep, Tracks};

    const PAN: &str = "4000001234567899";

    fn caps(emboss: bool, ribbons: &str) -> Capabilities {
        let emboss = if emboss {
            "emboss = true\nemboss_lines = 3\nemboss_line_chars = [19, 27, 27]"
        } else {
            "emboss = false"
        };
        toml::from_str(&format!(
            "feeders = 1\nmagnetic = true\nsmart_station = true\ncontactless = false\n{emboss}\n\
             bezel = true\nreject_box = true\nlock = false\nribbons = [{ribbons}]\n"
        ))
        .unwrap()
    }

    fn types() -> Vec<CardType> {
        let mut full = CardType {
            id: "full".into(),
            magnetic: true,
            chip: true,
            emboss: true,
            colour: true,
            panels: None,
            layout: Default::default(),
        };
        full.layout.slots.insert(
            "bank".into(),
            TextPosition {
                x: 700,
                y: 40,
                height: 36,
                font: 2,
            },
        );
        full.layout.emboss_fonts = vec![0, 1, 0];
        let plain = CardType {
            id: "plain".into(),
            magnetic: false,
            chip: false,
            emboss: false,
            colour: false,
            panels: None,
            layout: Default::default(),
        };
        vec![full, plain]
    }

    fn request(card_type: &str) -> ProductionRequest {
        let mut r = ProductionRequest::default();
        r.card_token = "tok".into();
        r.profile_id = 1;
        r.kiosk_id = "K1".into();
        r.card_type = card_type.into();
        r.issuer_request_id = "r".into();
        r.card_id = "c".into();
        r.pan = PAN.into();
        r.expiry = "2812".into();
        r.cardholder_name = "JANE DOE".into();
        if card_type == "full" {
            r.tracks = Tracks {
                track1: Some(format!("B{PAN}^DOE/JANE^2812201")),
                track2: Some(format!("{PAN}=2812201")),
                track3: None,
            };
            r.chip_script = vec![ScriptStep {
                apdu: "00A40400 07 A0000000031010".into(),
                expect_sw: vec!["9000".into()],
            }];
            r.emboss_lines = vec![
                "4000 0012 3456 7899".into(),
                "12/28".into(),
                "JANE DOE".into(),
            ];
        }
        r
    }

    fn run(req: ProductionRequest, caps: &Capabilities) -> Result<Accepted, RequestError> {
        let types = types();
        let ctx = Context {
            kiosk_id: "K1",
            card_types: &types,
            capabilities: caps,
            geometry: Geometry::default(),
        };
        validate(req, &ctx)
    }

    fn code_field(r: Result<Accepted, RequestError>) -> (ErrorCode, String) {
        let e = r.unwrap_err();
        (e.code, e.field.unwrap_or_default())
    }

    fn line(text: &str, slot: Option<&str>) -> PrintedLine {
        PrintedLine {
            text: text.into(),
            slot: slot.map(Into::into),
        }
    }

    #[test]
    fn text_goes_where_the_layout_says() {
        let mut r = request("full");
        r.printed_lines = vec![
            line("FIRST FREE", None),
            line("MY BANK", Some("bank")),
            line("**** **** **** 7899", Some("pan")),
            line("SECOND FREE", None),
        ];
        let a = run(r, &caps(true, "\"ymcko\"")).unwrap();
        let at: Vec<(u32, u32, u8, u32)> = a
            .card
            .text
            .iter()
            .map(|t| (t.x, t.y, t.font, t.height))
            .collect();
        assert_eq!(
            at,
            [
                (80, 545, 0, 30),
                (700, 40, 2, 36),
                (80, 370, 1, 42),
                (80, 590, 0, 30)
            ]
        );
        assert_eq!(a.card.text[2].text, "**** **** **** 7899");
    }

    #[test]
    fn a_slot_takes_one_line() {
        let mut r = request("plain");
        r.printed_lines = vec![line("A", Some("name")), line("B", Some("name"))];
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (
                ErrorCode::INVALID_FIELD_VALUE,
                "printedLines[1].slot".into()
            )
        );
        let mut r = request("plain");
        r.printed_lines = vec![line("A", Some(""))];
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (
                ErrorCode::EMPTY_OR_NULL_FIELD_VALUE,
                "printedLines[0].slot".into()
            )
        );
        let mut r = request("plain");
        r.printed_lines = vec![line(&"A".repeat(49), None)];
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (
                ErrorCode::EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
                "printedLines[0].text".into()
            )
        );
    }

    #[test]
    fn emboss_lines_get_their_line_and_font_and_blanks_are_skipped() {
        let mut r = request("full");
        r.emboss_lines = vec!["4000 0012 3456 7899".into(), " ".into(), "JANE DOE".into()];
        let a = run(r, &caps(true, "\"ymcko\"")).unwrap();
        let got: Vec<(u8, u8, &str)> = a
            .card
            .emboss
            .iter()
            .map(|l| (l.line, l.font, l.text.as_str()))
            .collect();
        assert_eq!(got, [(1, 0, "4000 0012 3456 7899"), (3, 0, "JANE DOE")]);
    }

    #[test]
    fn the_printer_must_have_the_means_of_the_card_type() {
        let no_colour = caps(true, "\"ko\", \"kb\"");
        let (code, field) = code_field(run(request("full"), &no_colour));
        assert_eq!(
            (code, field.as_str()),
            (ErrorCode::CARD_TYPE_NOT_FOUND, "cardType")
        );
        let mut no_chip = caps(true, "\"ymcko\"");
        no_chip.smart_station = false;
        let e = run(request("full"), &no_chip).unwrap_err();
        assert_eq!(e.code, ErrorCode::CARD_TYPE_NOT_FOUND);
        assert!(e.message.contains("contact smart-card station"), "{e}");
        // The plain card type needs nothing.
        assert!(run(request("plain"), &caps(false, "\"kb\"")).is_ok());
    }

    #[test]
    fn service_codes_must_agree() {
        let mut r = request("full");
        r.tracks.track2 = Some(format!("{PAN}=2812101"));
        assert_eq!(
            code_field(run(r, &caps(true, "\"ymcko\""))),
            (ErrorCode::INVALID_FIELD_FORMAT, "tracks.track2".into())
        );
        // Track 1 alone is enough for a magnetic card type; an empty track is not.
        let mut r = request("full");
        r.tracks.track2 = None;
        assert!(run(r, &caps(true, "\"ymcko\"")).is_ok());
        let mut r = request("full");
        r.tracks.track3 = Some(String::new());
        assert_eq!(
            code_field(run(r, &caps(true, "\"ymcko\""))),
            (ErrorCode::EMPTY_OR_NULL_FIELD_VALUE, "tracks.track3".into())
        );
        let mut r = request("full");
        r.tracks.track1 = None;
        r.tracks.track2 = None;
        r.tracks.track3 = Some("123".into());
        assert_eq!(
            code_field(run(r, &caps(true, "\"ymcko\""))),
            (ErrorCode::EMPTY_OR_NULL_FIELD_VALUE, "tracks".into())
        );
    }

    #[test]
    fn chip_steps_become_bytes() {
        let mut r = request("full");
        r.chip_script.push(ScriptStep {
            apdu: "80CA9F1700".into(),
            expect_sw: vec!["9000".into(), "6a88".into()],
        });
        let a = run(r, &caps(true, "\"ymcko\"")).unwrap();
        assert_eq!(a.card.chip.len(), 2);
        assert_eq!(
            a.card.chip[0].0,
            parse_hex("00A4040007A0000000031010").unwrap()
        );
        assert_eq!(
            a.card.chip[1],
            (vec![0x80, 0xCA, 0x9F, 0x17, 0x00], vec![0x9000, 0x6A88])
        );
        let script = a.card.chip_script();
        assert_eq!(script.len(), 2);
        assert_eq!(script.validate(), Ok(()));
    }

    #[test]
    fn chip_step_rules() {
        let step = |apdu: &str, sws: &[&str]| {
            let mut r = request("full");
            r.chip_script = vec![ScriptStep {
                apdu: apdu.into(),
                expect_sw: sws.iter().map(|s| s.to_string()).collect(),
            }];
            code_field(run(r, &caps(true, "\"ymcko\"")))
        };
        use ErrorCode::*;
        assert_eq!(
            step(" ", &["9000"]),
            (EMPTY_OR_NULL_FIELD_VALUE, "chipScript[0].apdu".into())
        );
        assert_eq!(
            step("00A404", &["9000"]),
            (
                EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
                "chipScript[0].apdu".into()
            )
        );
        assert_eq!(
            step("00A4040000", &[]),
            (EMPTY_OR_NULL_FIELD_VALUE, "chipScript[0].expectSw".into())
        );
        assert_eq!(
            step("00A4040000", &["0000"]),
            (INVALID_FIELD_VALUE, "chipScript[0].expectSw[0]".into())
        );
        assert_eq!(
            step("00A4040000", &["90000"]),
            (
                EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
                "chipScript[0].expectSw[0]".into()
            )
        );
        assert_eq!(
            step("00A4040000", &["90 0"]),
            (INVALID_FIELD_ENCODING, "chipScript[0].expectSw[0]".into())
        );
    }

    #[test]
    fn pin_blocks_need_a_chip() {
        let mut r = request("plain");
        r.pin_block = Some("26123456FFFFFFFF".into());
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (ErrorCode::INVALID_FIELD_VALUE, "pinBlock".into())
        );
        let mut r = request("full");
        r.pin_block = Some(String::new());
        assert_eq!(
            code_field(run(r, &caps(true, "\"ymcko\""))),
            (ErrorCode::EMPTY_OR_NULL_FIELD_VALUE, "pinBlock".into())
        );
    }

    #[test]
    fn identifiers() {
        use ErrorCode::*;
        let mut r = request("plain");
        r.issuer_request_id = "a\nb".into();
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (CHARSET_NOT_SUPPORTED, "issuerRequestId".into())
        );
        let mut r = request("plain");
        r.card_id = "c".repeat(65);
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE, "cardId".into())
        );
        let mut r = request("plain");
        r.profile_id = -4;
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (INVALID_FIELD_VALUE, "profileId".into())
        );
        let mut r = request("plain");
        r.card_token = " ".into();
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (EMPTY_OR_NULL_FIELD_VALUE, "cardToken".into())
        );
        let mut r = request("plain");
        r.cardholder_name = "J".into();
        assert_eq!(
            code_field(run(r, &caps(false, "\"ko\""))),
            (
                EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
                "cardholderName".into()
            )
        );
    }

    #[test]
    fn image_rules() {
        use base64::Engine;
        use ErrorCode::*;
        let png =
            crate::request::image::tests::make_png(1016, 648, |x, _| [(x % 256) as u8, 0, 0, 255]);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
        let image = |text: String| {
            let mut r = request("full");
            r.front_image = Some(text);
            run(r, &caps(true, "\"ymcko\""))
        };
        // Line breaks and missing padding are tolerated.
        let wrapped: String = b64
            .trim_end_matches('=')
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap().to_string() + "\r\n")
            .collect();
        let a = image(wrapped).unwrap();
        let panels = a.card.panels.as_ref().unwrap();
        assert_eq!(panels.levels, 64);
        assert_eq!(panels.bitmaps(Geometry::default()).unwrap().len(), 3);
        assert_eq!(
            code_field(image(" ".into())),
            (EMPTY_OR_NULL_FIELD_VALUE, "frontImage".into())
        );
        assert_eq!(
            code_field(image("QUJD=".into())),
            (INVALID_FIELD_ENCODING, "frontImage".into())
        );
        assert_eq!(
            code_field(image("QUJDRA==".into())),
            (IMAGE_SERVER_ERROR, "frontImage".into())
        );
        let huge = "A".repeat(MAX_IMAGE_BYTES.div_ceil(3) * 4 + 4);
        assert_eq!(
            code_field(image(huge)),
            (EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE, "frontImage".into())
        );
    }

    #[test]
    fn debug_and_errors_show_no_card_data() {
        let mut r = request("full");
        r.pin_block = Some("26123456FFFFFFFF".into());
        r.printed_lines = vec![line("4000 0012 3456 7899", Some("pan"))];
        let a = run(r, &caps(true, "\"ymcko\"")).unwrap();
        let d = format!("{a:?}");
        for secret in [
            PAN,
            "0012 3456",
            "DOE/JANE",
            "JANE DOE",
            "A0000000031010",
            "[38, 18",
        ] {
            assert!(!d.contains(secret), "{secret} in {d}");
        }
        assert!(d.contains("400000******7899"), "{d}");
        assert_eq!(a.meta.pan_masked, "400000******7899");
        let e = RequestError::at(
            ErrorCode::INVALID_FIELD_VALUE,
            "pan",
            "pan fails the Luhn check",
        );
        assert_eq!(
            e.to_string(),
            "INVALID_FIELD_VALUE: pan fails the Luhn check"
        );
    }
}
