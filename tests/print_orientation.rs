//! A front image that is upright in the request is upright on the card: an
//! asymmetric image (a mark in its top-left corner, a smaller one near its
//! bottom edge) goes through the whole agent (API, validation, store, engine,
//! the driver over a real pseudo-terminal) into the simulator, which decodes
//! the panels by the printer's convention (line n = column n, pixel p = row
//! 647 - p) and dumps the card as a person holding it sees it.

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
    let a = p
        .client
        .post("/v1/cards", body.to_string().as_bytes())
        .await
        .unwrap();
    assert_eq!(a.status, 201, "{}", a.body);
    let mut status = String::new();
    for _ in 0..600 {
        let a = p.client.get("/v1/cards/orient-1/production").await.unwrap();
        status = a.body["status"].as_str().unwrap_or("").to_string();
        if status == "PRODUCED" || status == "PRODUCTION_ERROR" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(status, "PRODUCED");
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
