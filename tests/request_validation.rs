//! Production requests: one row per request error code the agent emits, each
//! with the request that triggers it, asserting the code and the field named;
//! valid requests down to the printer's terms; card data never in an error or
//! a debug output; and no panic on garbage.
//!
//! Test-range PANs only (Luhn-valid, no issuer's).

use base64::Engine;
use satellite::chip::ChipScript;
use satellite::codes::ErrorCode::{self, *};
use satellite::printer::profile::Profile;
use satellite::printer::steps::{EmbossLine, TextLine, Track};
use satellite::request::{self, Accepted, CardType, Context, RequestError};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::OnceLock;

const PAN: &str = "4000001234567899";
const OTHER_PAN: &str = "4111111111111111";
const KIOSK: &str = "WIS00001";
const KM: &str = "evolis-km500b";
const IE: &str = "instant-embosser-ie4";

const TRACK1: &str = "B4000001234567899^DOE/JANE^28122010000000000000";
const TRACK2: &str = "4000001234567899=28122010000000000";
const SELECT: &str = "00A4040007A0000000031010";
const STORE_DATA: &str = "80E2000005DF01020304";
const PIN2: &str = "26123456FFFFFFFF";

const CARD_TYPES: &str = r#"
[[card_type]]
id = "debit-chip-mag"
magnetic = true
chip = true
colour = true

[[card_type]]
id = "embossed"
magnetic = true
chip = true
emboss = true

[[card_type]]
id = "plain"
"#;

#[derive(serde::Deserialize)]
struct Config {
    card_type: Vec<CardType>,
}

fn card_types() -> Vec<CardType> {
    let c: Config = toml::from_str(CARD_TYPES).unwrap();
    request::check_card_types(&c.card_type, dialect::panel::Geometry::default()).unwrap();
    c.card_type
}

/// The two shipped profiles and the card types, loaded once.
fn setup() -> &'static (Profile, Profile, Vec<CardType>) {
    static SETUP: OnceLock<(Profile, Profile, Vec<CardType>)> = OnceLock::new();
    SETUP.get_or_init(|| {
        (
            Profile::load(KM, None).unwrap(),
            Profile::load(IE, None).unwrap(),
            card_types(),
        )
    })
}

fn accept_on(model: &str, body: &[u8]) -> Result<Accepted, RequestError> {
    let (km, ie, types) = setup();
    let profile = if model == KM { km } else { ie };
    assert_eq!(profile.model.id, model);
    let ctx = Context {
        kiosk_id: KIOSK,
        card_types: types,
        capabilities: &profile.capabilities,
        geometry: profile.geometry,
    };
    request::accept(body, &ctx)
}

/// A valid request for `debit-chip-mag` on the KM500B.
fn valid() -> Value {
    json!({
        "cardToken": "ca0c8154-1e14-4464-a1ce-dcea7dc3de52",
        "profileId": 123456,
        "kioskId": KIOSK,
        "cardType": "debit-chip-mag",
        "issuerRequestId": "req-0001",
        "cardId": "card-0001",
        "pan": PAN,
        "expiry": "2812",
        "cardholderName": "JANE DOE",
        "printedLines": [
            { "text": "4000 0012 3456 7899", "slot": "pan" },
            { "text": "JANE DOE", "slot": "name" },
            { "text": "Member since 2024" }
        ],
        "tracks": { "track1": TRACK1, "track2": TRACK2 },
        "chipScript": [
            { "apdu": SELECT },
            { "apdu": STORE_DATA, "expectSw": ["9000", "6283"] }
        ],
        "pinBlock": PIN2
    })
}

/// A valid request for `embossed` on the IE4 embosser.
fn valid_embossed() -> Value {
    let mut v = valid();
    v["cardType"] = json!("embossed");
    v["embossLines"] = json!(["4000 0012 3456 7899", "", "JANE DOE"]);
    v
}

fn body(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn with(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = valid();
    f(&mut v);
    body(&v)
}

fn with_embossed(f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v = valid_embossed();
    f(&mut v);
    body(&v)
}

fn remove(v: &mut Value, key: &str) {
    v.as_object_mut().unwrap().remove(key);
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A PNG of `w` x `h`, colour stripes.
fn png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header().unwrap();
        let mut data = Vec::with_capacity((w * h * 3) as usize);
        for _y in 0..h {
            for x in 0..w {
                data.extend_from_slice(match x * 3 / w {
                    0 => &[255, 0, 0],
                    1 => &[0, 255, 0],
                    _ => &[0, 0, 255],
                });
            }
        }
        writer.write_image_data(&data).unwrap();
    }
    out
}

/// ISO 9564 format 0 block for `pin` and `pan` (the test's own encoder).
fn iso0(pin: &str, pan: &str) -> String {
    let mut clear = format!("0{:X}{pin}", pin.len());
    while clear.len() < 16 {
        clear.push('F');
    }
    let digits = &pan[..pan.len() - 1];
    let field = format!("0000{:0>12}", &digits[digits.len().saturating_sub(12)..]);
    clear
        .chars()
        .zip(field.chars())
        .map(|(c, p)| format!("{:X}", c.to_digit(16).unwrap() ^ p.to_digit(16).unwrap()))
        .collect()
}

struct Row {
    name: &'static str,
    model: &'static str,
    body: Vec<u8>,
    code: ErrorCode,
    field: Option<&'static str>,
}

fn row(name: &'static str, body: Vec<u8>, code: ErrorCode, field: Option<&'static str>) -> Row {
    Row {
        name,
        model: KM,
        body,
        code,
        field,
    }
}

fn rows() -> Vec<Row> {
    let full = body(&valid());
    let mut rows = vec![
        // The body as a whole.
        row(
            "malformed JSON",
            b"{\"cardToken\": }".to_vec(),
            DATA_PREPARATION_FAILED,
            None,
        ),
        row(
            "not an object",
            b"[1, 2, 3]".to_vec(),
            DATA_PREPARATION_FAILED,
            None,
        ),
        row("empty body", b"  ".to_vec(), DATA_PREPARATION_FAILED, None),
        row(
            "trailing garbage",
            [&full[..], b"}"].concat(),
            DATA_PREPARATION_FAILED,
            None,
        ),
        row(
            "profileId as a string",
            with(|v| v["profileId"] = json!("123456")),
            DATA_PREPARATION_FAILED,
            Some("profileId"),
        ),
        row(
            "pan as a number",
            with(|v| v["pan"] = json!(4000001234567899u64)),
            DATA_PREPARATION_FAILED,
            Some("pan"),
        ),
        row(
            "tracks as a string",
            with(|v| v["tracks"] = json!(TRACK2)),
            DATA_PREPARATION_FAILED,
            Some("tracks"),
        ),
        row(
            "field given twice",
            with(|_| ())
                .strip_suffix(b"}")
                .map(|b| [b, b",\"pan\":\"4111111111111111\"}"].concat())
                .unwrap(),
            DATA_PREPARATION_FAILED,
            Some("pan"),
        ),
        row(
            "cut short",
            full[..full.len() / 2].to_vec(),
            PARTIAL_DATA_RECEIVED,
            None,
        ),
        row(
            "cut before the last brace",
            full[..full.len() - 1].to_vec(),
            PARTIAL_DATA_RECEIVED,
            None,
        ),
        // Empty or null.
        row(
            "pan missing",
            with(|v| remove(v, "pan")),
            EMPTY_OR_NULL_FIELD_VALUE,
            Some("pan"),
        ),
        row(
            "cardholderName null",
            with(|v| v["cardholderName"] = Value::Null),
            EMPTY_OR_NULL_FIELD_VALUE,
            Some("cardholderName"),
        ),
        row(
            "cardId empty",
            with(|v| v["cardId"] = json!("")),
            EMPTY_OR_NULL_FIELD_VALUE,
            Some("cardId"),
        ),
        row(
            "printed text null",
            with(|v| v["printedLines"][1]["text"] = Value::Null),
            EMPTY_OR_NULL_FIELD_VALUE,
            Some("printedLines[1].text"),
        ),
        row(
            "chip card type without a script",
            with(|v| remove(v, "chipScript")),
            EMPTY_OR_NULL_FIELD_VALUE,
            Some("chipScript"),
        ),
        row(
            "magnetic card type without tracks",
            with(|v| v["tracks"] = json!({})),
            EMPTY_OR_NULL_FIELD_VALUE,
            Some("tracks"),
        ),
        // Wrong sizes.
        row(
            "pan of 11 digits",
            with(|v| v["pan"] = json!("40000012345")),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("pan"),
        ),
        row(
            "cardToken of 65 characters",
            with(|v| v["cardToken"] = json!("t".repeat(65))),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("cardToken"),
        ),
        row(
            "expiry of 3 digits",
            with(|v| v["expiry"] = json!("281")),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("expiry"),
        ),
        row(
            "name of 27 characters",
            with(|v| v["cardholderName"] = json!("A".repeat(27))),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("cardholderName"),
        ),
        row(
            "track 1 over 79 with sentinels and LRC",
            with(|v| {
                v["tracks"]["track1"] = json!(format!("{TRACK1}{}", "0".repeat(77 - TRACK1.len())))
            }),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("tracks.track1"),
        ),
        row(
            "track 2 over 40 with sentinels and LRC",
            with(|v| {
                v["tracks"]["track2"] = json!(format!("{TRACK2}{}", "0".repeat(38 - TRACK2.len())))
            }),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("tracks.track2"),
        ),
        row(
            "track 3 over 107 with sentinels and LRC",
            with(|v| v["tracks"]["track3"] = json!("1".repeat(105))),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("tracks.track3"),
        ),
        row(
            "status word of 3 digits",
            with(|v| v["chipScript"][1]["expectSw"] = json!(["900"])),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("chipScript[1].expectSw[0]"),
        ),
        row(
            "more lines without a slot than the layout has room for",
            with(|v| {
                v["printedLines"]
                    .as_array_mut()
                    .unwrap()
                    .extend([json!({ "text": "TWO" }), json!({ "text": "THREE" })])
            }),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("printedLines[4]"),
        ),
        row(
            "image of the wrong size",
            with(|v| v["frontImage"] = json!(b64(&png(648, 1016)))),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("frontImage"),
        ),
        // Values.
        row(
            "pan failing Luhn",
            with(|v| v["pan"] = json!("4000001234567890")),
            INVALID_FIELD_VALUE,
            Some("pan"),
        ),
        row(
            "expiry month 13",
            with(|v| v["expiry"] = json!("2813")),
            INVALID_FIELD_VALUE,
            Some("expiry"),
        ),
        row(
            "unknown field",
            with(|v| v["cvv"] = json!("123")),
            INVALID_FIELD_VALUE,
            Some("cvv"),
        ),
        row(
            "unknown field in tracks",
            with(|v| v["tracks"]["track4"] = json!("1")),
            INVALID_FIELD_VALUE,
            Some("tracks.track4"),
        ),
        row(
            "emboss lines for a card type that is not embossed",
            with(|v| v["embossLines"] = json!(["JANE DOE"])),
            INVALID_FIELD_VALUE,
            Some("embossLines"),
        ),
        row(
            "tracks for a card type without a stripe",
            with(|v| {
                v["cardType"] = json!("plain");
                remove(v, "chipScript");
                remove(v, "pinBlock");
            }),
            INVALID_FIELD_VALUE,
            Some("tracks"),
        ),
        row(
            "unknown layout slot",
            with(|v| v["printedLines"][2]["slot"] = json!("logo")),
            INVALID_FIELD_VALUE,
            Some("printedLines[2].slot"),
        ),
        row(
            "another card number in the pan slot",
            with(|v| v["printedLines"][0]["text"] = json!("4111 1111 1111 1111")),
            INVALID_FIELD_VALUE,
            Some("printedLines[0].text"),
        ),
        row(
            "profileId zero",
            with(|v| v["profileId"] = json!(0)),
            INVALID_FIELD_VALUE,
            Some("profileId"),
        ),
        // Character sets.
        row(
            "accented name",
            with(|v| v["cardholderName"] = json!("JOSÉ DOE")),
            CHARSET_NOT_SUPPORTED,
            Some("cardholderName"),
        ),
        row(
            "lower-case name (track 1 cannot carry it)",
            with(|v| v["cardholderName"] = json!("Jane Doe")),
            CHARSET_NOT_SUPPORTED,
            Some("cardholderName"),
        ),
        row(
            "printed text the printer cannot carry",
            with(|v| v["printedLines"][2]["text"] = json!("Fidélité")),
            CHARSET_NOT_SUPPORTED,
            Some("printedLines[2].text"),
        ),
        row(
            "printed text with the dialect's separator",
            with(|v| v["printedLines"][2]["text"] = json!("A;B")),
            CHARSET_NOT_SUPPORTED,
            Some("printedLines[2].text"),
        ),
        row(
            "track 1 in lower case",
            with(|v| v["tracks"]["track1"] = json!(TRACK1.replace("DOE/JANE", "Doe/Jane"))),
            CHARSET_NOT_SUPPORTED,
            Some("tracks.track1"),
        ),
        row(
            "track 2 with a letter",
            with(|v| v["tracks"]["track2"] = json!(TRACK2.replace('=', "D"))),
            CHARSET_NOT_SUPPORTED,
            Some("tracks.track2"),
        ),
        row(
            "cardToken with a slash",
            with(|v| v["cardToken"] = json!("a/b")),
            CHARSET_NOT_SUPPORTED,
            Some("cardToken"),
        ),
        // Track form.
        row(
            "track 1 without format code B",
            with(|v| v["tracks"]["track1"] = json!(&TRACK1[1..])),
            INVALID_FIELD_FORMAT,
            Some("tracks.track1"),
        ),
        row(
            "track 1 with sentinels",
            with(|v| v["tracks"]["track1"] = json!(format!("%{TRACK1}?"))),
            INVALID_FIELD_FORMAT,
            Some("tracks.track1"),
        ),
        row(
            "track 2 with another PAN",
            with(|v| v["tracks"]["track2"] = json!(TRACK2.replace(PAN, OTHER_PAN))),
            INVALID_FIELD_FORMAT,
            Some("tracks.track2"),
        ),
        row(
            "track 1 with another expiry",
            with(|v| v["tracks"]["track1"] = json!(TRACK1.replace("^2812", "^2912"))),
            INVALID_FIELD_FORMAT,
            Some("tracks.track1"),
        ),
        row(
            "track 2 without its separator",
            with(|v| v["tracks"]["track2"] = json!(TRACK2.replace('=', ""))),
            INVALID_FIELD_FORMAT,
            Some("tracks.track2"),
        ),
        row(
            "pan with spaces",
            with(|v| v["pan"] = json!("4000 0012 3456 7899")),
            INVALID_FIELD_FORMAT,
            Some("pan"),
        ),
        row(
            "APDU whose length byte lies",
            with(|v| v["chipScript"][0]["apdu"] = json!("00A4040009A0000000031010")),
            INVALID_FIELD_FORMAT,
            Some("chipScript[0].apdu"),
        ),
        // PIN blocks.
        row(
            "PIN block format 1",
            with(|v| v["pinBlock"] = json!("16123456FFFFFFFF")),
            INVALID_PIN_FORMAT,
            Some("pinBlock"),
        ),
        row(
            "PIN block with a bad fill",
            with(|v| v["pinBlock"] = json!("2612345600000000")),
            INVALID_PIN_FORMAT,
            Some("pinBlock"),
        ),
        row(
            "format 0 block made for another PAN",
            with(|v| v["pinBlock"] = json!(iso0("1234", OTHER_PAN))),
            INVALID_PIN_FORMAT,
            Some("pinBlock"),
        ),
        row(
            "PIN of 3 digits",
            with(|v| v["pinBlock"] = json!("23123FFFFFFFFFFF")),
            PIN_LENGTH_ERROR,
            Some("pinBlock"),
        ),
        row(
            "PIN of 13 digits",
            with(|v| v["pinBlock"] = json!("2D1234567890123F")),
            PIN_LENGTH_ERROR,
            Some("pinBlock"),
        ),
        // Encodings.
        row(
            "APDU that is not hex",
            with(|v| v["chipScript"][0]["apdu"] = json!("00A4040G07A0000000031010")),
            INVALID_FIELD_ENCODING,
            Some("chipScript[0].apdu"),
        ),
        row(
            "APDU with an odd number of hex digits",
            with(|v| v["chipScript"][0]["apdu"] = json!("00A4040007A000000003101")),
            INVALID_FIELD_ENCODING,
            Some("chipScript[0].apdu"),
        ),
        row(
            "status word that is not hex",
            with(|v| v["chipScript"][1]["expectSw"] = json!(["9000", "62X3"])),
            INVALID_FIELD_ENCODING,
            Some("chipScript[1].expectSw[1]"),
        ),
        row(
            "PIN block that is not hex",
            with(|v| v["pinBlock"] = json!("26123456FFFFFFFZ")),
            INVALID_FIELD_ENCODING,
            Some("pinBlock"),
        ),
        row(
            "image that is not base64",
            with(|v| v["frontImage"] = json!("iVBORw0KGgo*AAAA")),
            INVALID_FIELD_ENCODING,
            Some("frontImage"),
        ),
        // The image.
        row(
            "image that is not a PNG",
            with(|v| v["frontImage"] = json!(b64(b"GIF89a this is not a PNG"))),
            IMAGE_SERVER_ERROR,
            Some("frontImage"),
        ),
        row(
            "PNG cut short",
            with(|v| {
                let p = png(1016, 648);
                v["frontImage"] = json!(b64(&p[..p.len() / 2]))
            }),
            IMAGE_SERVER_ERROR,
            Some("frontImage"),
        ),
        // This kiosk.
        row(
            "another kiosk",
            with(|v| v["kioskId"] = json!("WIS00002")),
            KIOSK_ID_NOT_FOUND,
            Some("kioskId"),
        ),
        row(
            "unknown card type",
            with(|v| v["cardType"] = json!("gold")),
            CARD_TYPE_NOT_FOUND,
            Some("cardType"),
        ),
        row(
            "embossed card type on a printer without the module",
            body(&valid_embossed()),
            CARD_TYPE_NOT_FOUND,
            Some("cardType"),
        ),
    ];
    // The embosser's rows.
    for (name, body, code, field) in [
        (
            "emboss line longer than the module's line",
            with_embossed(|v| v["embossLines"][0] = json!("4000 0012 3456 78990")),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("embossLines[0]"),
        ),
        (
            "more emboss lines than the module has",
            with_embossed(|v| v["embossLines"] = json!(["1", "2", "3", "4", "5"])),
            EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
            Some("embossLines"),
        ),
        (
            "emboss text in lower case",
            with_embossed(|v| v["embossLines"][2] = json!("Jane Doe")),
            CHARSET_NOT_SUPPORTED,
            Some("embossLines[2]"),
        ),
        (
            "image for a card type not printed in colour",
            with_embossed(|v| v["frontImage"] = json!(b64(&png(1016, 648)))),
            INVALID_FIELD_VALUE,
            Some("frontImage"),
        ),
        (
            "embossed card type without emboss lines",
            with_embossed(|v| v["embossLines"] = json!(["", " "])),
            EMPTY_OR_NULL_FIELD_VALUE,
            Some("embossLines"),
        ),
    ] {
        rows.push(Row {
            name,
            model: IE,
            body,
            code,
            field,
        });
    }
    rows
}

/// The request error codes validation emits; the others are the engine's or
/// cannot arise at a kiosk (docs/REQUEST.md).
const EMITTED: &[ErrorCode] = &[
    DATA_PREPARATION_FAILED,
    PARTIAL_DATA_RECEIVED,
    EMPTY_OR_NULL_FIELD_VALUE,
    EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
    INVALID_FIELD_VALUE,
    CHARSET_NOT_SUPPORTED,
    INVALID_FIELD_FORMAT,
    INVALID_PIN_FORMAT,
    PIN_LENGTH_ERROR,
    INVALID_FIELD_ENCODING,
    IMAGE_SERVER_ERROR,
    KIOSK_ID_NOT_FOUND,
    CARD_TYPE_NOT_FOUND,
];

/// Every request error code of the seed.
const REQUEST_CODES: &[ErrorCode] = &[
    UNKNOWN_ERROR,
    REQUEST_ALREADY_EXISTS,
    KIOSK_ID_NOT_FOUND,
    CARD_TYPE_NOT_FOUND,
    INVALID_FIELD_VALUE,
    INVALID_PIN_FORMAT,
    EMPTY_OR_NULL_FIELD_VALUE,
    EMPTY_OR_NULL_OR_WRONG_SIZE_FIELD_VALUE,
    CHARSET_NOT_SUPPORTED,
    INVALID_FIELD_FORMAT,
    INVALID_FIELD_ENCODING,
    CDATA_ENCODING_OR_FORMATING_ERROR,
    PIN_LENGTH_ERROR,
    PIN_VERIFICATION_FAILED,
    DATA_PREPARATION_FAILED,
    PARTIAL_DATA_RECEIVED,
    NO_BRANCH_LINKED_TO_KIOSK,
    IMAGE_SERVER_ERROR,
    PAN_ALREADY_EXISTS,
    PRINTER_OR_SATELLITE_NOT_READY,
    REQUEST_CREATED_BUT_NOT_STARTED,
    UNABLE_TO_ACCEPT_REQUEST,
];

fn assert_no_card_data(text: &str, context: &str) {
    for secret in [PAN, OTHER_PAN, "0012 3456", "DOE/JANE", PIN2, SELECT] {
        assert!(
            !text.contains(secret),
            "{context}: {secret:?} appears in {text:?}"
        );
    }
}

#[test]
fn each_code_for_its_reason_naming_the_field() {
    let mut failures = Vec::new();
    for r in rows() {
        match accept_on(r.model, &r.body) {
            Ok(_) => failures.push(format!("{}: accepted, expected {}", r.name, r.code)),
            Err(e) => {
                if e.code != r.code || e.field.as_deref() != r.field {
                    failures.push(format!(
                        "{}: got {} at {:?} ({}), expected {} at {:?}",
                        r.name, e.code, e.field, e.message, r.code, r.field
                    ));
                }
                assert!(!e.message.is_empty(), "{}", r.name);
                assert_no_card_data(&e.message, r.name);
                assert_no_card_data(&e.to_string(), r.name);
                assert_no_card_data(&format!("{e:?}"), r.name);
                assert!(e.to_string().starts_with(r.code.as_str()), "{e}");
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_emitted_code_has_a_row_and_is_a_request_code() {
    let covered: BTreeSet<ErrorCode> = rows().iter().map(|r| r.code).collect();
    let emitted: BTreeSet<ErrorCode> = EMITTED.iter().copied().collect();
    assert_eq!(covered, emitted);
    for c in EMITTED {
        assert!(REQUEST_CODES.contains(c), "{c}");
    }
    // The request codes are the seed's first 22, before the production codes.
    assert_eq!(&ErrorCode::ALL[..REQUEST_CODES.len()], REQUEST_CODES);
}

#[test]
fn the_document_covers_every_request_code() {
    let doc = include_str!("../docs/REQUEST.md");
    for c in REQUEST_CODES {
        assert!(
            doc.contains(&format!("`{}`", c.as_str())),
            "{c} missing from docs/REQUEST.md"
        );
    }
    // Its example request is a valid one.
    let start = doc.find("```json\n").expect("an example request") + 8;
    let end = start + doc[start..].find("```").unwrap();
    let example = &doc[start..end];
    let accepted = accept_on(KM, example.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(accepted.meta.kiosk_id, KIOSK);
}

#[test]
fn a_valid_request_comes_out_in_printer_terms() {
    let mut v = valid();
    v["frontImage"] = json!(b64(&png(1016, 648)));
    let a = accept_on(KM, &body(&v)).unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(a.meta.card_token, "ca0c8154-1e14-4464-a1ce-dcea7dc3de52");
    assert_eq!(a.meta.profile_id, 123456);
    assert_eq!(a.meta.kiosk_id, KIOSK);
    assert_eq!(a.meta.card_type, "debit-chip-mag");
    assert_eq!(a.meta.issuer_request_id, "req-0001");
    assert_eq!(a.meta.card_id, "card-0001");
    assert_eq!(a.meta.pan_masked, "400000******7899");
    assert_eq!(a.pan.as_str(), PAN);

    let c = &a.card;
    assert_eq!(c.feeder_card_type, "debit-chip-mag");
    assert_eq!(
        c.tracks,
        vec![
            Track {
                number: 1,
                data: TRACK1.into()
            },
            Track {
                number: 2,
                data: TRACK2.into()
            }
        ]
    );
    let line = |x, y, font, height, text: &str| TextLine {
        x,
        y,
        font,
        height,
        text: text.into(),
    };
    assert_eq!(
        c.text,
        vec![
            line(80, 370, 1, 42, "4000 0012 3456 7899"),
            line(80, 490, 0, 32, "JANE DOE"),
            line(80, 545, 0, 30, "Member since 2024"),
        ]
    );
    assert!(c.emboss.is_empty());
    // The script, then the offline PIN (CHANGE REFERENCE DATA, format 2 block).
    let expected = ChipScript::parse(&format!(
        "{SELECT}\n{STORE_DATA}/9000,6283\n002401800826123456FFFFFFFF/9000\n"
    ))
    .unwrap();
    assert_eq!(c.chip_script(), expected);
    assert_eq!(c.chip[1].1, vec![0x9000, 0x6283]);
    assert_eq!(
        c.pin_block.as_deref(),
        Some(&[0x26, 0x12, 0x34, 0x56, 0xFF, 0xFF, 0xFF, 0xFF][..])
    );
    let g = Profile::load(KM, None).unwrap().geometry;
    let panels = c.panels.as_ref().expect("panels").bitmaps(g).unwrap();
    let letters: Vec<&str> = panels.iter().map(|(p, _)| p.letter()).collect();
    assert_eq!(letters, ["y", "m", "c"]);
    for (_, bm) in &panels {
        assert_eq!(bm.geometry, g);
    }
    // Red, green and blue thirds from left to right. Bitmap (pixel, line)
    // is card (row, column).
    let (yellow, cyan) = (&panels[0].1, &panels[2].1);
    assert_eq!(cyan.get(100, 10), 0);
    assert_eq!(cyan.get(100, 400), 63);
    assert_eq!(cyan.get(100, 1000), 63);
    assert_eq!(yellow.get(100, 10), 63);
    assert_eq!(yellow.get(100, 400), 63);
    assert_eq!(yellow.get(100, 1000), 0);

    // The card data survives the store's round trip.
    let json = serde_json::to_string(&a.card).unwrap();
    let back: request::CardData = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, c);
    let meta: request::JobMeta =
        serde_json::from_str(&serde_json::to_string(&a.meta).unwrap()).unwrap();
    assert_eq!(meta, a.meta);

    let dbg = format!("{a:?}");
    assert_no_card_data(&dbg, "Debug of Accepted");
    assert!(dbg.contains("400000******7899"), "{dbg}");
}

#[test]
fn an_embossed_card_on_the_embosser() {
    let a = accept_on(IE, &body(&valid_embossed())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        a.card.emboss,
        vec![
            EmbossLine {
                line: 1,
                font: 0,
                text: "4000 0012 3456 7899".into()
            },
            EmbossLine {
                line: 3,
                font: 1,
                text: "JANE DOE".into()
            },
        ]
    );
    assert!(a.card.panels.is_none());
}

#[test]
fn a_plain_card_needs_only_its_identity() {
    let v = json!({
        "cardToken": "t-1", "profileId": 1, "kioskId": KIOSK, "cardType": "plain",
        "issuerRequestId": "r", "cardId": "c", "pan": "400000123457", "expiry": "2701",
        "cardholderName": "JO", "printedLines": [{ "text": "GIFT CARD" }],
        "embossLines": [], "tracks": null, "chipScript": null, "pinBlock": null, "frontImage": null
    });
    let a = accept_on(KM, &body(&v)).unwrap_or_else(|e| panic!("{e}"));
    assert!(a.card.tracks.is_empty() && a.card.chip.is_empty());
    assert_eq!(a.card.pin_block, None);
    assert_eq!(a.card.text.len(), 1);
    assert_eq!(a.meta.pan_masked, "400000**3457");
}

#[test]
fn format_0_pin_blocks_are_checked_against_the_pan() {
    let block = iso0("4321", PAN);
    let a =
        accept_on(KM, &with(|v| v["pinBlock"] = json!(block))).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.card.pin_block.as_ref().map(Vec::len), Some(8));
}

#[test]
fn the_serde_form_and_the_parser_agree() {
    let b = body(&valid());
    let parsed = request::parse(&b).unwrap();
    let serde: request::ProductionRequest = serde_json::from_slice(&b).unwrap();
    assert_eq!(parsed, serde);
    let again = request::parse(&serde_json::to_vec(&parsed).unwrap()).unwrap();
    assert_eq!(again, parsed);
    assert_eq!(parsed.chip_script[0].expect_sw, vec!["9000".to_string()]);
    let dbg = format!("{parsed:?}");
    assert_no_card_data(&dbg, "Debug of ProductionRequest");
    assert_eq!(
        request::token_of(&with(|v| v["pan"] = json!(1))).as_deref(),
        Some("ca0c8154-1e14-4464-a1ce-dcea7dc3de52")
    );
    assert_eq!(request::token_of(b"{\"cardToken\": \"a/b\"}"), None);
    assert_eq!(request::token_of(b"{\"cardTok"), None);
}

/// xorshift64*: deterministic garbage.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn check_garbage(model: &str, body: &[u8]) {
    let outcome = std::panic::catch_unwind(|| accept_on(model, body));
    let Ok(result) = outcome else {
        panic!("panic on body {:?}", String::from_utf8_lossy(body));
    };
    if let Err(e) = result {
        assert!(!e.message.is_empty());
        assert!(!e.message.contains(PAN), "{e}");
        assert!(
            REQUEST_CODES.contains(&e.code) && e.code != UNKNOWN_ERROR,
            "{e}"
        );
    }
}

#[test]
fn garbage_never_panics() {
    let mut rng = Rng(0x5EED_CA7D_0000_0001);
    let seeds = [body(&valid()), body(&valid_embossed())];
    let special = b"{}[]\":,0123456789-.eE\\ntfu \x00\xff\xc3";
    for i in 0..4000 {
        let seed = &seeds[i % 2];
        let mut b = seed.clone();
        for _ in 0..1 + rng.below(4) {
            match rng.below(5) {
                0 => b.truncate(rng.below(b.len() + 1)),
                1 if !b.is_empty() => {
                    let at = rng.below(b.len());
                    b[at] ^= 1 << rng.below(8);
                }
                2 => {
                    let at = rng.below(b.len() + 1);
                    b.insert(at, special[rng.below(special.len())]);
                }
                3 if !b.is_empty() => {
                    let at = rng.below(b.len());
                    b[at] = special[rng.below(special.len())];
                }
                _ if !b.is_empty() => {
                    let at = rng.below(b.len());
                    b.remove(at);
                }
                _ => {}
            }
        }
        check_garbage(if i % 2 == 0 { KM } else { IE }, &b);
    }
    for _ in 0..500 {
        let len = rng.below(300);
        let b: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        check_garbage(KM, &b);
    }
}

#[test]
fn every_field_with_every_wrong_value_is_refused_without_panic() {
    let weird = [
        Value::Null,
        json!(true),
        json!(0),
        json!(-1),
        json!(1.5),
        json!(u64::MAX),
        json!(""),
        json!(" "),
        json!("x".repeat(300)),
        json!("é\u{0}\u{1F600}"),
        json!([]),
        json!([null]),
        json!([{}]),
        json!({}),
        json!({ "text": 1 }),
    ];
    let fields: Vec<String> = valid().as_object().unwrap().keys().cloned().collect();
    for field in fields
        .iter()
        .map(String::as_str)
        .chain(["frontImage", "embossLines"])
    {
        for w in &weird {
            let b = with(|v| v[field] = w.clone());
            let result = std::panic::catch_unwind(|| accept_on(KM, &b));
            let Ok(result) = result else {
                panic!("panic with {field} = {w}");
            };
            match result {
                // Absent and null are the same for optional fields; an empty
                // list is fine where the card type does not need one.
                Ok(_) => assert!(
                    matches!(
                        field,
                        "printedLines" | "pinBlock" | "frontImage" | "embossLines"
                    ),
                    "{field} = {w} accepted"
                ),
                Err(e) => {
                    let named = e.field.as_deref().unwrap_or("");
                    assert!(
                        named.starts_with(field),
                        "{field} = {w}: {e} names {named:?}"
                    );
                    assert!(REQUEST_CODES.contains(&e.code), "{e}");
                }
            }
        }
    }
}
