//! Printed panels as PNG images, so a person can see what a card got.
//! K and O are black on white; Y, M and C are drawn in their colour, the
//! pixel value giving the strength. The image shows the card landscape, as a
//! person holds it: a panel line is one column of the card, each line
//! running from the card's bottom edge up (`Geometry::card_to_panel`).

use crate::model::PanelImage;
use dialect::panel::{self, Panel};
use std::io;
use std::path::{Path, PathBuf};

fn rgb_of(panel: Panel) -> [u8; 3] {
    match panel {
        Panel::Y => [255, 220, 0],
        Panel::M => [230, 0, 126],
        Panel::C => [0, 160, 227],
        Panel::K | Panel::O => [0, 0, 0],
    }
}

/// Writes one PNG per image as `card-<seq>-<n>-<side>-<panel>.png` in `dir`
/// (`n` counts the card's printed panels in order, `side` is front or back).
pub fn write_images(
    seq: u64,
    images: &[PanelImage],
    geometry: panel::Geometry,
    dir: &Path,
) -> io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (n, img) in images.iter().enumerate() {
        let bm = panel::decompress(&img.data, geometry, img.levels)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        let ink = rgb_of(img.panel);
        let max = bm.levels.max_value().max(1) as u32;
        // Landscape: image width is the panel's line count, height its line width.
        let (img_w, img_h) = (geometry.height, geometry.width);
        let mut rgb = Vec::with_capacity(bm.pixels.len() * 3);
        for row in 0..img_h {
            for col in 0..img_w {
                // The card's (col, row), decoded by the printer's convention.
                let (pixel, line) = geometry.card_to_panel(col, row);
                let a = (bm.get(pixel, line) as u32).min(max);
                for &c in &ink {
                    // White blended towards the ink by the pixel's strength.
                    rgb.push((255 - (255 - c as u32) * a / max) as u8);
                }
            }
        }
        let path = dir.join(format!(
            "card-{seq}-{}-{}-{}.png",
            n + 1,
            img.side,
            img.panel.letter()
        ));
        let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut enc = png::Encoder::new(file, img_w as u32, img_h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(io::Error::other)?;
        w.write_image_data(&rgb).map_err(io::Error::other)?;
        w.finish().map_err(io::Error::other)?;
        out.push(path);
    }
    Ok(out)
}
