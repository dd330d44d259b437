//! A front image that is upright in the request is upright on the card: an
//! asymmetric image (a mark in its top-left corner, a smaller one near its
//! bottom edge) goes through the whole agent (API, validation, store, engine,
//! the driver over a real pseudo-terminal) into the simulator, which decodes
//! the panels by the printer's convention (line n = column n, pixel p = row
//! 647 - p) and dumps the card as a person holding it sees it. The card's
//! printed text is checked the same way: each line where the layout puts it
//! (in millimetres), readable, and its ink inside its box.

mod common;

use base64::Engine as _;
use common::kiosk;
use serde_json::json;
use std::time::Duration;

const W: u32 = 1016;
const H: u32 = 648;

/// True inside the big mark (top left) or the small one (bottom, a third in).
fn marked(x: u32, y: u32) -> bool {
    (x < 120 && y < 80) || ((330..350).contains(&x) && (600..630).contains(&y))
}

fn front_png() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, W, H);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().unwrap();
        let mut data = Vec::with_capacity((W * H * 3) as usize);
        for y in 0..H {
            for x in 0..W {
                // Blue: full yellow ink is 255 - blue... any non-white will
                // do: a dark blue gives yellow and magenta ink.
                data.extend_from_slice(if marked(x, y) {
                    &[0, 0, 120]
                } else {
                    &[255, 255, 255]
                });
            }
        }
        w.write_image_data(&data).unwrap();
    }
    out
}

/// The dumped Y panel's inked pixels, as (x, y) of the landscape image.
fn inked(path: &std::path::Path) -> Vec<(u32, u32)> {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (W, H), "the dump is landscape");
    let mut out = Vec::new();
    for y in 0..info.height {
        for x in 0..info.width {
            let i = ((y * info.width + x) * 3) as usize;
            if buf[i..i + 3] != [255, 255, 255] {
                out.push((x, y));
            }
        }
    }
    out
}

/// Submits `body` and waits until its card is PRODUCED.
async fn produce(p: &kiosk::Parts, body: &serde_json::Value) {
    let token = body["cardToken"].as_str().unwrap();
    let a = p
        .client
        .post("/v1/cards", body.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let mut status = String::new();
    for _ in 0..600 {
        let a = p
            .client
            .get(&format!("/v1/cards/{token}/production"))
            .await
            .unwrap();
        status = a.body["status"].as_str().unwrap_or("").to_string();
        if status == "PRODUCED" || status == "PRODUCTION_ERROR" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(status, "PRODUCED", "card {token}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mark_in_the_images_top_left_corner_is_in_the_cards_top_left_corner() {
    let p = kiosk::start(|_| {}, |_, c| c.card_types[0].colour = true).await;
    kiosk::stock(&p.client).await;
    let pan = "4000001234567899";
    let body = json!({
        "cardToken": "orient-1",
        "profileId": 42,
        "kioskId": "KIOSK01",
        "cardType": "debit",
        "issuerRequestId": "req-orient-1",
        "cardId": "card-orient-1",
        "pan": pan,
        "expiry": "2812",
        "cardholderName": "ADA LOVELACE",
        "tracks": { "track2": format!("{pan}=2812101") },
        "frontImage": base64::engine::general_purpose::STANDARD.encode(front_png()),
    });
    produce(&p, &body).await;
    let dir = tempfile::tempdir().unwrap();
    let files = p.sim.dump_card(1, dir.path()).unwrap();
    let yellow = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("-y.png"))
        .unwrap_or_else(|| panic!("no yellow panel in {files:?}"));
    let dots = inked(yellow);
    let expected = (0..H)
        .flat_map(|y| (0..W).map(move |x| (x, y)))
        .filter(|&(x, y)| marked(x, y))
        .count();
    assert_eq!(dots.len(), expected, "every inked dot, and only those");
    assert!(
        dots.iter().all(|&(x, y)| marked(x, y)),
        "ink outside the marks: the image is flipped or mirrored (first: {:?})",
        dots.iter().find(|&&(x, y)| !marked(x, y))
    );
    p.daemon.stop().await;
}

/// 1 mm in printer dots (300 dpi).
const DOTS_PER_MM: f64 = 11.8;

fn mm(dots: u32) -> f64 {
    f64::from(dots) / DOTS_PER_MM
}

/// A text box of the default layout, in millimetres from the card's top-left
/// corner as the cardholder sees it (docs/REQUEST.md).
struct TextBox {
    slot: &'static str,
    x_mm: f64,
    y_mm: f64,
    height_mm: f64,
}

const BOXES: [TextBox; 3] = [
    TextBox {
        slot: "pan",
        x_mm: 6.8,
        y_mm: 31.4,
        height_mm: 3.6,
    },
    TextBox {
        slot: "expiry",
        x_mm: 33.9,
        y_mm: 36.4,
        height_mm: 2.7,
    },
    TextBox {
        slot: "name",
        x_mm: 6.8,
        y_mm: 41.5,
        height_mm: 2.7,
    },
];

/// The card's text as the printer recorded and printed it: each line where
/// the layout puts it, in millimetres, and its ink inside that box, readable
/// (at least 2 mm tall) and upright (the first character at the box's left).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cards_text_lands_in_its_boxes_readable_and_upright() {
    let p = kiosk::start(|_| {}, |_, _| {}).await;
    kiosk::stock(&p.client).await;
    let pan = "4000001234567899";
    let body = json!({
        "cardToken": "orient-2",
        "profileId": 42,
        "kioskId": "KIOSK01",
        "cardType": "debit",
        "issuerRequestId": "req-orient-2",
        "cardId": "card-orient-2",
        "pan": pan,
        "expiry": "2812",
        "cardholderName": "ADA LOVELACE",
        "tracks": { "track2": format!("{pan}=2812101") },
        "printedLines": [
            { "text": "4000 0012 3456 7899", "slot": "pan" },
            { "text": "12/28", "slot": "expiry" },
            { "text": "ADA LOVELACE", "slot": "name" },
        ],
    });
    produce(&p, &body).await;

    // What the printer recorded of each `Wt`: position and height in mm.
    let state = p.sim.state();
    let lines = &state.cards[0].text_lines;
    assert_eq!(lines.len(), BOXES.len(), "{lines:?}");
    for (b, l) in BOXES.iter().zip(lines.iter()) {
        let close = |got: u32, want: f64| (mm(got) - want).abs() <= 0.1;
        assert!(
            close(l.x, b.x_mm) && close(l.y, b.y_mm) && close(l.height, b.height_mm),
            "{}: printed at ({:.1}, {:.1}) mm, {:.1} mm tall; the layout says ({}, {}) mm, {} mm",
            b.slot,
            mm(l.x),
            mm(l.y),
            mm(l.height),
            b.x_mm,
            b.y_mm,
            b.height_mm
        );
    }
    assert!(
        lines.iter().all(|l| !l.text.replace(' ', "").contains(pan)),
        "the printer's record never holds the full card number"
    );

    // The K panel as printed, decoded by the printer's convention.
    let dir = tempfile::tempdir().unwrap();
    let files = p.sim.dump_card(1, dir.path()).unwrap();
    let k = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("-front-k.png"))
        .unwrap_or_else(|| panic!("no K panel on the front in {files:?}"));
    let dots = inked(k);
    assert!(!dots.is_empty());
    for (b, l) in BOXES.iter().zip(lines.iter()) {
        let rows = l.y..l.y + l.height;
        let ink: Vec<&(u32, u32)> = dots.iter().filter(|(_, y)| rows.contains(y)).collect();
        let (x0, y0) = (
            ink.iter().map(|d| d.0).min().unwrap(),
            ink.iter().map(|d| d.1).min().unwrap(),
        );
        let y1 = ink.iter().map(|d| d.1).max().unwrap();
        assert!(
            x0 >= l.x && mm(x0 - l.x) < 1.0,
            "{}: the text starts {:.1} mm from the box's left edge (a mirrored line starts at the far end)",
            b.slot,
            mm(x0.saturating_sub(l.x))
        );
        let tall = mm(y1 - y0 + 1);
        assert!(
            (2.0..=b.height_mm).contains(&tall),
            "{}: the ink is {tall:.1} mm tall (readable is 2 mm or more, at most the box's {} mm)",
            b.slot,
            b.height_mm
        );
    }
    let outside: Vec<_> = dots
        .iter()
        .filter(|(_, y)| !lines.iter().any(|l| (l.y..l.y + l.height).contains(y)))
        .collect();
    assert!(
        outside.is_empty(),
        "ink outside every text box (first at {:?}): the panel is flipped",
        outside.first()
    );
    p.daemon.stop().await;
}
