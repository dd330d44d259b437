//! The front image: a PNG of the card's size, turned into the Y, M and C
//! panels of the printer, compressed as `Dbc` sends them.
//!
//! At a kiosk the agent is the image processor: there is no image server
//! between the issuer and the printer, so an image that cannot be decoded is
//! `IMAGE_SERVER_ERROR` ("failed to process the data"), said by the agent.
//!
//! The image is the card's front seen landscape, exactly as many pixels as the
//! printer has dots: `geometry.height` wide (the long edge, 1016 at 300 dpi)
//! and `geometry.width` high (648). Pixel (x, y) is card column x, row y
//! from the top left; it lands on panel line x, pixel `width - 1 - y`, as
//! drivers that print on real printers send it
//! (`dialect::panel::Geometry::card_to_panel`, `hardware/DIALECT.md`). Colour goes to ink by plain subtraction (Y = 255 - blue,
//! M = 255 - green, C = 255 - red, transparency over white card stock), with
//! no colour profile; the printer's ribbon and driver settings do the rest.
//!
//! Memory: the decoded image (at most 4 bytes a pixel, 2.6 MB at the default
//! geometry) and one panel bitmap (0.66 MB) at a time; the result is the
//! compressed panels, usually far smaller. Every intermediate buffer is wiped.

use crate::codes::{ErrorCode, Fault};
use dialect::panel::{self, Bitmap, Geometry, Levels, Panel};
use serde::{Deserialize, Serialize};
use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// The colour depth the front image is sent with.
pub const IMAGE_LEVELS: Levels = Levels::L64;

/// The largest PNG accepted, in bytes (after base64 decoding).
pub const MAX_IMAGE_BYTES: usize = 4 * 1024 * 1024;

/// The Y, M and C panels of a front image, each compressed as `Dbc` sends it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrontPanels {
    /// Panel geometry (pixels a line, lines): the printer's.
    pub width: usize,
    pub height: usize,
    /// 32, 64 or 128.
    pub levels: u32,
    pub yellow: Vec<u8>,
    pub magenta: Vec<u8>,
    pub cyan: Vec<u8>,
}

impl Drop for FrontPanels {
    fn drop(&mut self) {
        self.yellow.zeroize();
        self.magenta.zeroize();
        self.cyan.zeroize();
    }
}

impl fmt::Debug for FrontPanels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FrontPanels({}x{}, {} levels, Y {} / M {} / C {} bytes compressed)",
            self.width,
            self.height,
            self.levels,
            self.yellow.len(),
            self.magenta.len(),
            self.cyan.len()
        )
    }
}

impl FrontPanels {
    pub fn geometry(&self) -> Geometry {
        Geometry {
            width: self.width,
            height: self.height,
        }
    }

    /// The panels as bitmaps, in printing order (Y, M, C), for
    /// `Printer::print_panels` on a printer of `geometry`. Panels prepared for
    /// another geometry (the profile changed since the request was accepted)
    /// or stored data that does not decode are `PRD_UNEXPECTED_DATA`.
    pub fn bitmaps(&self, geometry: Geometry) -> Result<Vec<(Panel, Bitmap)>, Fault> {
        let unexpected = |why: String| {
            Fault::new(
                ErrorCode::PRD_UNEXPECTED_DATA,
                "other",
                format!("front image: {why}"),
            )
        };
        if self.geometry() != geometry {
            return Err(unexpected(format!(
                "prepared for {}x{} panels, the printer's are {}x{}",
                self.width, self.height, geometry.width, geometry.height
            )));
        }
        let levels = Levels::from_number(self.levels)
            .filter(|l| *l != Levels::Two)
            .ok_or_else(|| unexpected(format!("{} levels is not a colour depth", self.levels)))?;
        [
            (Panel::Y, &self.yellow),
            (Panel::M, &self.magenta),
            (Panel::C, &self.cyan),
        ]
        .into_iter()
        .map(|(p, data)| {
            panel::decompress(data, geometry, levels)
                .map(|bm| (p, bm))
                .map_err(|e| {
                    unexpected(format!("stored panel {} does not decode: {e}", p.letter()))
                })
        })
        .collect()
    }
}

/// Why an image cannot be printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ImageProblem {
    /// Not a PNG, or a damaged one.
    Undecodable(String),
    /// A PNG of another size than the card.
    WrongSize {
        width: u32,
        height: u32,
        want_width: u32,
        want_height: u32,
    },
}

/// Turns PNG bytes into the front panels for `geometry`.
pub(crate) fn png_to_panels(
    png_bytes: &[u8],
    geometry: Geometry,
) -> Result<FrontPanels, ImageProblem> {
    let (card_w, card_h) = (geometry.height, geometry.width);
    let want = |w: usize| u32::try_from(w).unwrap_or(u32::MAX);
    let limits = png::Limits {
        bytes: card_w.saturating_mul(card_h).saturating_mul(8) + (1 << 20),
    };
    let mut decoder = png::Decoder::new_with_limits(std::io::Cursor::new(png_bytes), limits);
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| ImageProblem::Undecodable(decode_error(&e)))?;
    let (width, height) = (reader.info().width, reader.info().height);
    if width as usize != card_w || height as usize != card_h {
        return Err(ImageProblem::WrongSize {
            width,
            height,
            want_width: want(card_w),
            want_height: want(card_h),
        });
    }
    let (colour, depth) = reader.output_color_type();
    let channels = match colour {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => {
            return Err(ImageProblem::Undecodable(
                "indexed colour was not expanded".into(),
            ))
        }
    };
    if depth != png::BitDepth::Eight {
        return Err(ImageProblem::Undecodable(format!(
            "bit depth {depth:?} was not normalised to 8"
        )));
    }
    let mut frame = Zeroizing::new(vec![0u8; reader.output_buffer_size()]);
    let info = reader
        .next_frame(&mut frame)
        .map_err(|e| ImageProblem::Undecodable(decode_error(&e)))?;
    let stride = info.line_size;
    if stride < card_w * channels || frame.len() < stride * card_h {
        return Err(ImageProblem::Undecodable(
            "the decoded frame is smaller than the image".into(),
        ));
    }

    // Ink of one pixel for one panel: 0..=255, transparency over white.
    let ink = |px: &[u8], panel: Panel| -> u32 {
        let (r, g, b, a) = match channels {
            1 => (px[0], px[0], px[0], 255),
            2 => (px[0], px[0], px[0], px[1]),
            3 => (px[0], px[1], px[2], 255),
            _ => (px[0], px[1], px[2], px[3]),
        };
        let c = match panel {
            Panel::Y => b,
            Panel::M => g,
            _ => r,
        };
        u32::from(255 - c) * u32::from(a) / 255
    };
    let max = u32::from(IMAGE_LEVELS.max_value());
    let mut out = Vec::with_capacity(3);
    for panel in [Panel::Y, Panel::M, Panel::C] {
        let mut bm = Bitmap::blank(geometry, IMAGE_LEVELS);
        for y in 0..card_h {
            let row = &frame[y * stride..y * stride + card_w * channels];
            for (x, px) in row.chunks_exact(channels).enumerate() {
                // The printer's convention: card column x is line x, card
                // row y is pixel width - 1 - y (each line runs bottom up).
                let (pixel, line) = geometry.card_to_panel(x, y);
                bm.pixels[line * geometry.width + pixel] =
                    ((ink(px, panel) * max + 127) / 255) as u8;
            }
        }
        out.push(panel::compress(&bm));
        bm.pixels.zeroize();
    }
    let cyan = out.pop().unwrap_or_default();
    let magenta = out.pop().unwrap_or_default();
    let yellow = out.pop().unwrap_or_default();
    Ok(FrontPanels {
        width: geometry.width,
        height: geometry.height,
        levels: IMAGE_LEVELS.number(),
        yellow,
        magenta,
        cyan,
    })
}

/// The png crate's reason, without any of the image's bytes.
fn decode_error(e: &png::DecodingError) -> String {
    match e {
        png::DecodingError::IoError(_) => "the PNG data ends early".into(),
        png::DecodingError::Format(f) => format!("not a valid PNG ({f})"),
        png::DecodingError::Parameter(p) => format!("the PNG cannot be read ({p})"),
        png::DecodingError::LimitsExceeded => "the PNG needs more memory than a card image".into(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A PNG of `w` x `h` whose pixel (x, y) is `f(x, y)` (RGBA).
    pub(crate) fn make_png(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().unwrap();
            let mut data = Vec::with_capacity((w * h * 4) as usize);
            for y in 0..h {
                for x in 0..w {
                    data.extend_from_slice(&f(x, y));
                }
            }
            writer.write_image_data(&data).unwrap();
        }
        out
    }

    fn small() -> Geometry {
        // 8 dots across the short edge, 12 lines along the long edge.
        Geometry {
            width: 8,
            height: 12,
        }
    }

    #[test]
    fn pixels_land_in_card_coordinates() {
        let g = small();
        // Landscape 12 x 8: a red pixel at card (10, 3), transparent elsewhere.
        let png = make_png(12, 8, |x, y| {
            if (x, y) == (10, 3) {
                [255, 0, 0, 255]
            } else {
                [0, 0, 0, 0]
            }
        });
        let panels = png_to_panels(&png, g).unwrap();
        let bms = panels.bitmaps(g).unwrap();
        let (p, y) = &bms[0];
        assert_eq!(*p, Panel::Y);
        // Red = no cyan ink... but full yellow and magenta.
        // Row 3 of 8 runs bottom up: pixel 8 - 1 - 3.
        assert_eq!(y.get(4, 10), 63, "yellow at line 10, pixel 4");
        assert_eq!(y.inked(), 1);
        assert_eq!(bms[1].1.get(4, 10), 63);
        assert_eq!(bms[2].0, Panel::C);
        assert_eq!(bms[2].1.inked(), 0);
    }

    #[test]
    fn grey_levels_quantise_and_white_is_blank() {
        let g = small();
        let png = make_png(12, 8, |x, _| {
            if x == 0 {
                [0, 0, 0, 255]
            } else if x == 1 {
                [128, 128, 128, 255]
            } else {
                [255; 4]
            }
        });
        let bms = png_to_panels(&png, g).unwrap().bitmaps(g).unwrap();
        for (_, bm) in &bms {
            assert_eq!(bm.levels, IMAGE_LEVELS);
            assert_eq!(bm.get(0, 0), 63);
            assert_eq!(bm.get(7, 0), 63);
            assert_eq!(bm.get(0, 1), 31);
            assert_eq!(bm.inked(), 16);
        }
    }

    #[test]
    fn wrong_size_and_garbage_are_told_apart() {
        let g = small();
        // Portrait (8 x 12) is not the landscape card.
        let png = make_png(8, 12, |_, _| [0; 4]);
        assert_eq!(
            png_to_panels(&png, g),
            Err(ImageProblem::WrongSize {
                width: 8,
                height: 12,
                want_width: 12,
                want_height: 8
            })
        );
        assert!(matches!(
            png_to_panels(b"GIF89a....", g),
            Err(ImageProblem::Undecodable(_))
        ));
        let good = make_png(12, 8, |_, _| [1, 2, 3, 255]);
        assert!(matches!(
            png_to_panels(&good[..good.len() - 20], g),
            Err(ImageProblem::Undecodable(_))
        ));
    }

    #[test]
    fn default_geometry_image_is_modest() {
        let g = Geometry::default();
        let png = make_png(1016, 648, |x, y| {
            if x < 508 {
                [200, 30, 30, 255]
            } else {
                [(y % 256) as u8, 0, 255, 255]
            }
        });
        let panels = png_to_panels(&png, g).unwrap();
        let total = panels.yellow.len() + panels.magenta.len() + panels.cyan.len();
        assert!(total < 200_000, "{total} bytes");
        let bms = panels.bitmaps(g).unwrap();
        assert_eq!(bms[0].1.geometry, g);
        let other = Geometry {
            width: 640,
            height: 1016,
        };
        let e = panels.bitmaps(other).unwrap_err();
        assert_eq!(e.code, ErrorCode::PRD_UNEXPECTED_DATA);
        let mut broken = panels.clone();
        broken.cyan.truncate(10);
        assert!(broken
            .bitmaps(g)
            .unwrap_err()
            .description
            .contains("panel c"));
        let dbg = format!("{panels:?}");
        assert!(dbg.starts_with("FrontPanels(648x1016, 64 levels"), "{dbg}");
    }
}
