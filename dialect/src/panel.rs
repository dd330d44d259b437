//! Panels: geometry, bit packing, and the `Dbc` compression.
//!
//! A panel is a bitmap of `width` x `height` pixels, sent line by line. K and O
//! panels use one bit a pixel (levels 2); Y, M and C panels 5, 6 or 7 bits a
//! pixel (levels 32, 64, 128), packed most significant bit first with no padding
//! between lines. The geometry is a profile setting; the default is the public
//! 648 x 1016 at 300 dpi (`hardware/DIALECT.md` explains why the public byte
//! count, 84,624, does not follow from it and why we follow the geometry).
//!
//! Compression, as this project implements it:
//! * 2 levels, per line: `0` white line, `255` black line, `N` in 1..=bytes_per_line
//!   followed by N bytes of the line (the rest of the line is white).
//! * 32/64/128 levels, per line: a byte with the top bit clear is one pixel value;
//!   a byte with the top bit set carries a value in its low bits and is followed
//!   by a repeat count; in the 5- and 6-bit modes the spare bits between the flag
//!   and the value add 256 to the count each. A count of 0 means the line is
//!   blank (the rest of it, whatever value the byte carries): the encoder uses
//!   it for an all-blank line only and gives every other run an explicit count.
//!   A run never crosses a line end.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub width: usize,
    pub height: usize,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry {
            width: 648,
            height: 1016,
        }
    }
}

/// Colour depth of a panel download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Levels {
    Two,
    L32,
    L64,
    L128,
}

impl Levels {
    pub fn from_number(n: u32) -> Option<Levels> {
        match n {
            2 => Some(Levels::Two),
            32 => Some(Levels::L32),
            64 => Some(Levels::L64),
            128 => Some(Levels::L128),
            _ => None,
        }
    }
    pub fn number(self) -> u32 {
        match self {
            Levels::Two => 2,
            Levels::L32 => 32,
            Levels::L64 => 64,
            Levels::L128 => 128,
        }
    }
    pub fn bits(self) -> usize {
        match self {
            Levels::Two => 1,
            Levels::L32 => 5,
            Levels::L64 => 6,
            Levels::L128 => 7,
        }
    }
    pub fn max_value(self) -> u8 {
        (self.number() - 1) as u8
    }
}

/// The five panels of a YMCKO ribbon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Panel {
    Y,
    M,
    C,
    K,
    O,
}

impl Panel {
    pub fn from_letter(s: &str) -> Option<Panel> {
        match s {
            "y" => Some(Panel::Y),
            "m" => Some(Panel::M),
            "c" => Some(Panel::C),
            "k" => Some(Panel::K),
            "o" => Some(Panel::O),
            _ => None,
        }
    }
    pub fn letter(self) -> &'static str {
        match self {
            Panel::Y => "y",
            Panel::M => "m",
            Panel::C => "c",
            Panel::K => "k",
            Panel::O => "o",
        }
    }
    /// K and O are one bit a pixel; Y, M, C carry levels.
    pub fn is_mono(self) -> bool {
        matches!(self, Panel::K | Panel::O)
    }
}

impl Geometry {
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }
    /// Bytes of one mono line (81 for the default width).
    pub fn mono_line_bytes(&self) -> usize {
        self.width.div_ceil(8)
    }
    /// Size of an uncompressed (`Db`) payload.
    pub fn raw_len(&self, levels: Levels) -> usize {
        match levels {
            Levels::Two => self.mono_line_bytes() * self.height,
            _ => (self.pixels() * levels.bits()).div_ceil(8),
        }
    }
}

/// A decoded panel: one value per pixel, row-major.
#[derive(Clone, PartialEq, Eq)]
pub struct Bitmap {
    pub geometry: Geometry,
    pub levels: Levels,
    pub pixels: Vec<u8>,
}

impl fmt::Debug for Bitmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Bitmap({}x{}, {} levels, {} inked)",
            self.geometry.width,
            self.geometry.height,
            self.levels.number(),
            self.inked()
        )
    }
}

impl Geometry {
    /// Where the card's point (`x`, `y`) goes in a panel, as drivers that
    /// print on real printers send it: the card's front seen landscape, as
    /// the cardholder holds it, `x` from the left edge (0 to `height`, the
    /// line count), `y` from the top edge (0 to `width`, the line width).
    /// Line n of the data is the card's column n; within a line, pixel p is
    /// the card's row `width - 1 - p`: each line starts at the card's bottom
    /// edge and runs up. Gives (pixel, line), the order [`Bitmap::get`]
    /// takes them in.
    pub fn card_to_panel(&self, x: usize, y: usize) -> (usize, usize) {
        (self.width - 1 - y.min(self.width - 1), x)
    }

    /// The card's point (`x`, `y`) shown by a panel's `pixel` of `line`:
    /// the inverse of [`Geometry::card_to_panel`].
    pub fn panel_to_card(&self, pixel: usize, line: usize) -> (usize, usize) {
        (line, self.width - 1 - pixel.min(self.width - 1))
    }
}

impl Bitmap {
    pub fn blank(geometry: Geometry, levels: Levels) -> Self {
        Bitmap {
            geometry,
            levels,
            pixels: vec![0; geometry.pixels()],
        }
    }
    pub fn get(&self, x: usize, y: usize) -> u8 {
        self.pixels[y * self.geometry.width + x]
    }
    pub fn set(&mut self, x: usize, y: usize, v: u8) {
        if x < self.geometry.width && y < self.geometry.height {
            self.pixels[y * self.geometry.width + x] = v;
        }
    }
    /// Number of pixels with a non-zero value.
    pub fn inked(&self) -> usize {
        self.pixels.iter().filter(|&&p| p != 0).count()
    }
}

/// Why a panel payload cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PanelError {
    #[error("payload is {got} bytes, the panel needs {want}")]
    Length { got: usize, want: usize },
    #[error("line {line}: {what}")]
    Line { line: usize, what: String },
    #[error("compressed data ends after {lines} of {height} lines")]
    Short { lines: usize, height: usize },
    #[error("{extra} bytes left after the last line")]
    Trailing { extra: usize },
    #[error("pixel value {value} is above {max} for this level count")]
    Value { value: u8, max: u8 },
}

/// Packs a bitmap into the uncompressed `Db` layout.
pub fn pack(bitmap: &Bitmap) -> Vec<u8> {
    let g = bitmap.geometry;
    match bitmap.levels {
        Levels::Two => {
            let lb = g.mono_line_bytes();
            let mut out = vec![0u8; lb * g.height];
            for y in 0..g.height {
                for x in 0..g.width {
                    if bitmap.get(x, y) != 0 {
                        out[y * lb + x / 8] |= 0x80 >> (x % 8);
                    }
                }
            }
            out
        }
        levels => {
            let bits = levels.bits();
            let mut out = vec![0u8; g.raw_len(levels)];
            let mut pos = 0usize;
            for &p in &bitmap.pixels {
                for i in (0..bits).rev() {
                    if (p >> i) & 1 == 1 {
                        out[pos / 8] |= 0x80 >> (pos % 8);
                    }
                    pos += 1;
                }
            }
            out
        }
    }
}

/// Unpacks an uncompressed `Db` payload.
pub fn unpack(data: &[u8], geometry: Geometry, levels: Levels) -> Result<Bitmap, PanelError> {
    let want = geometry.raw_len(levels);
    if data.len() != want {
        return Err(PanelError::Length {
            got: data.len(),
            want,
        });
    }
    let mut bm = Bitmap::blank(geometry, levels);
    match levels {
        Levels::Two => {
            let lb = geometry.mono_line_bytes();
            for y in 0..geometry.height {
                for x in 0..geometry.width {
                    let v = (data[y * lb + x / 8] >> (7 - x % 8)) & 1;
                    bm.pixels[y * geometry.width + x] = v;
                }
            }
        }
        _ => {
            let bits = levels.bits();
            let mut pos = 0usize;
            for px in bm.pixels.iter_mut() {
                let mut v = 0u8;
                for _ in 0..bits {
                    v = (v << 1) | ((data[pos / 8] >> (7 - pos % 8)) & 1);
                    pos += 1;
                }
                *px = v;
            }
        }
    }
    Ok(bm)
}

/// Compresses a bitmap for `Dbc`.
pub fn compress(bitmap: &Bitmap) -> Vec<u8> {
    let g = bitmap.geometry;
    let mut out = Vec::new();
    match bitmap.levels {
        Levels::Two => {
            let packed = pack(bitmap);
            let lb = g.mono_line_bytes();
            for line in packed.chunks(lb) {
                // The padding bits of the last byte are always clear in `pack`,
                // so a black line is all 0xFF only when the width is a multiple of 8.
                let used = line.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                if used == 0 {
                    out.push(0);
                } else if g.width.is_multiple_of(8) && line.iter().all(|&b| b == 0xFF) {
                    out.push(255);
                } else {
                    out.push(used as u8);
                    out.extend_from_slice(&line[..used]);
                }
            }
        }
        levels => {
            let spare = spare_bits(levels);
            let max_count = 255 + 256 * ((1usize << spare) - 1);
            for y in 0..g.height {
                let row = &bitmap.pixels[y * g.width..(y + 1) * g.width];
                let mut x = 0;
                while x < row.len() {
                    let v = row[x];
                    let run = row[x..].iter().take_while(|&&p| p == v).count();
                    if x == 0 && v == 0 && run == row.len() {
                        // A blank line: the only use of a count of 0 the
                        // vendor defines. A non-zero value to the end of a
                        // line gets explicit counts (a real printer leaves
                        // the tail of a count-0 run blank).
                        out.push(0x80);
                        out.push(0);
                        break;
                    }
                    if run >= 3 {
                        let n = run.min(max_count);
                        out.push(0x80 | (((n >> 8) as u8) << (7 - spare)) | v);
                        out.push((n & 0xFF) as u8);
                        x += n;
                    } else {
                        out.push(v);
                        x += 1;
                    }
                }
            }
        }
    }
    out
}

/// Number of spare bits between the run flag and the value (count extension).
fn spare_bits(levels: Levels) -> usize {
    7 - levels.bits().min(7)
}

/// Decompresses a `Dbc` payload.
pub fn decompress(data: &[u8], geometry: Geometry, levels: Levels) -> Result<Bitmap, PanelError> {
    let g = geometry;
    let mut bm = Bitmap::blank(g, levels);
    let mut i = 0usize;
    match levels {
        Levels::Two => {
            let lb = g.mono_line_bytes();
            let mut packed = vec![0u8; lb * g.height];
            for y in 0..g.height {
                let Some(&n) = data.get(i) else {
                    return Err(PanelError::Short {
                        lines: y,
                        height: g.height,
                    });
                };
                i += 1;
                let line = &mut packed[y * lb..(y + 1) * lb];
                match n {
                    0 => {}
                    255 => line.fill(0xFF),
                    n if (n as usize) <= lb => {
                        let n = n as usize;
                        let Some(bytes) = data.get(i..i + n) else {
                            return Err(PanelError::Short {
                                lines: y,
                                height: g.height,
                            });
                        };
                        line[..n].copy_from_slice(bytes);
                        i += n;
                    }
                    n => {
                        return Err(PanelError::Line {
                            line: y,
                            what: format!("length byte {n} is above {lb}"),
                        })
                    }
                }
            }
            if i != data.len() {
                return Err(PanelError::Trailing {
                    extra: data.len() - i,
                });
            }
            let mut out = unpack(&packed, g, levels)?;
            // Padding bits beyond the width carry no pixel.
            out.geometry = g;
            Ok(out)
        }
        levels => {
            let spare = spare_bits(levels);
            let value_mask = levels.max_value();
            for y in 0..g.height {
                let row = &mut bm.pixels[y * g.width..(y + 1) * g.width];
                let mut x = 0;
                while x < row.len() {
                    let Some(&b) = data.get(i) else {
                        return Err(PanelError::Short {
                            lines: y,
                            height: g.height,
                        });
                    };
                    i += 1;
                    if b & 0x80 == 0 {
                        if b > value_mask {
                            return Err(PanelError::Value {
                                value: b,
                                max: value_mask,
                            });
                        }
                        row[x] = b;
                        x += 1;
                        continue;
                    }
                    let v = b & value_mask;
                    let ext = if spare == 0 {
                        0
                    } else {
                        ((b & 0x7F) >> (7 - spare)) as usize
                    };
                    let Some(&c) = data.get(i) else {
                        return Err(PanelError::Short {
                            lines: y,
                            height: g.height,
                        });
                    };
                    i += 1;
                    let count = ext * 256 + c as usize;
                    if count == 0 {
                        // "This line is blank", as the vendor defines it,
                        // whatever value the byte carries.
                        row[x..].fill(0);
                        x = row.len();
                    } else if x + count > row.len() {
                        return Err(PanelError::Line {
                            line: y,
                            what: format!("a run of {count} at pixel {x} crosses the line end"),
                        });
                    } else {
                        row[x..x + count].fill(v);
                        x += count;
                    }
                }
            }
            if i != data.len() {
                return Err(PanelError::Trailing {
                    extra: data.len() - i,
                });
            }
            Ok(bm)
        }
    }
}

#[cfg(test)]
mod count_zero_tests {
    use super::*;

    /// The vendor defines a count of 0 as "this line is blank", nothing
    /// else: runs to the end of a line carry explicit counts, and a count of
    /// 0 decodes as blank whatever value it carries.
    #[test]
    fn a_count_of_zero_is_a_blank_line_only() {
        let g = Geometry {
            width: 300,
            height: 3,
        };
        let mut bm = Bitmap::blank(g, Levels::L64);
        for x in 10..300 {
            bm.set(x, 0, 40); // a value to the end of line 0
        }
        bm.set(5, 2, 7); // line 2: one dot, then blank to the end
        let data = compress(&bm);
        // Every run byte's count, walked as the decoder does.
        let (mut i, mut zero_counts) = (0, Vec::new());
        while i < data.len() {
            if data[i] & 0x80 != 0 {
                // 64 levels: bit 6 extends the count by 256, bits 0-5 the value.
                if data[i + 1] == 0 && (data[i] & 0x40) == 0 {
                    zero_counts.push(data[i] & 0x3F);
                }
                i += 2;
            } else {
                i += 1;
            }
        }
        assert_eq!(
            zero_counts,
            vec![0],
            "count 0 only for the blank line 1: {data:?}"
        );
        assert_eq!(decompress(&data, g, Levels::L64).unwrap(), bm);
        // A count of 0 with a value prints nothing, as on a real printer.
        let one_line = Geometry {
            width: 8,
            height: 1,
        };
        let d = decompress(&[3, 0x80 | 9, 0], one_line, Levels::L64).unwrap();
        assert_eq!(d.pixels, vec![3, 0, 0, 0, 0, 0, 0, 0]);
    }
}

#[cfg(test)]
mod orientation_tests {
    use super::*;

    /// The fact sheet's words: line n is the image's column n; pixel p is
    /// the image's row 647 - p (the line starts at the bottom edge).
    #[test]
    fn line_n_is_column_n_and_pixel_p_is_row_647_minus_p() {
        let g = Geometry::default();
        assert_eq!(g.card_to_panel(0, 0), (647, 0), "top-left corner");
        assert_eq!(g.card_to_panel(0, 647), (0, 0), "bottom-left corner");
        assert_eq!(g.card_to_panel(1015, 0), (647, 1015), "top-right corner");
        assert_eq!(g.card_to_panel(10, 600), (47, 10));
        for (x, y) in [(0, 0), (5, 9), (1015, 647), (300, 20)] {
            let (p, l) = g.card_to_panel(x, y);
            assert_eq!(g.panel_to_card(p, l), (x, y));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Geometry {
        Geometry {
            width: 20,
            height: 4,
        }
    }

    #[test]
    fn default_geometry_sizes() {
        let g = Geometry::default();
        assert_eq!(g.mono_line_bytes(), 81);
        assert_eq!(g.raw_len(Levels::Two), 81 * 1016);
        assert_eq!(g.raw_len(Levels::L128), 648 * 1016 * 7 / 8);
    }

    #[test]
    fn mono_compression_follows_the_line_rule() {
        let g = Geometry {
            width: 16,
            height: 3,
        };
        let mut bm = Bitmap::blank(g, Levels::Two);
        for x in 0..16 {
            bm.set(x, 1, 1);
        }
        bm.set(0, 2, 1);
        // White line, black line, one byte of data.
        assert_eq!(compress(&bm), vec![0, 255, 1, 0x80]);
        assert_eq!(decompress(&compress(&bm), g, Levels::Two).unwrap(), bm);
    }

    #[test]
    fn colour_compression_round_trips_in_every_mode() {
        for levels in [Levels::L32, Levels::L64, Levels::L128] {
            let g = Geometry {
                width: 700,
                height: 3,
            };
            let mut bm = Bitmap::blank(g, levels);
            for x in 0..700 {
                bm.set(x, 0, (x % 7) as u8);
                bm.set(x, 1, if x < 600 { levels.max_value() } else { 1 });
            }
            let c = compress(&bm);
            assert_eq!(decompress(&c, g, levels).unwrap(), bm, "{levels:?}");
            assert_eq!(unpack(&pack(&bm), g, levels).unwrap(), bm, "{levels:?}");
        }
    }

    #[test]
    fn long_runs_use_the_spare_bits_in_five_bit_mode() {
        // 5-bit: flag, 2 spare bits, 5 value bits. A run of 600 of value 3:
        // 600 = 2 * 256 + 88, so the spare bits hold 2.
        let g = Geometry {
            width: 601,
            height: 1,
        };
        let mut bm = Bitmap::blank(g, Levels::L32);
        for x in 0..600 {
            bm.set(x, 0, 3);
        }
        bm.set(600, 0, 1);
        let c = compress(&bm);
        assert_eq!(c, vec![0x80 | (2 << 5) | 3, 88, 1]);
    }

    #[test]
    fn blank_line_is_a_zero_count() {
        let g = small();
        let bm = Bitmap::blank(g, Levels::L64);
        assert_eq!(compress(&bm), vec![0x80, 0, 0x80, 0, 0x80, 0, 0x80, 0]);
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let g = small();
        assert!(matches!(
            decompress(&[0, 0], g, Levels::Two),
            Err(PanelError::Short { lines: 2, .. })
        ));
        assert!(matches!(
            decompress(&[9, 0, 0, 0], g, Levels::Two),
            Err(PanelError::Line { line: 0, .. })
        ));
        assert!(matches!(
            decompress(&[0, 0, 0, 0, 7], g, Levels::Two),
            Err(PanelError::Trailing { extra: 1 })
        ));
        assert!(matches!(
            decompress(&[0x85, 30], g, Levels::L32),
            Err(PanelError::Line { .. })
        ));
        assert!(matches!(
            decompress(&[0x7F], g, Levels::L32),
            Err(PanelError::Value { .. })
        ));
        assert!(matches!(
            unpack(&[0; 3], g, Levels::Two),
            Err(PanelError::Length { .. })
        ));
    }
}
