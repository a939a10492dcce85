//! `cargo xtask demo --screenshot`: renders the demo's report.html in headless
//! Chromium (Debian `chromium`) and checks that the picture is not blank.
//!
//! The fonts the page names first (Debian `fonts-noto-cjk`, for 张三 and the
//! Beijing address) are installed by the same step that installs Chromium:
//! without them a fresh Debian machine draws the seed's names as empty boxes.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Context, Result};
use crate::process;

const PACKAGES: [&str; 2] = ["chromium", "fonts-noto-cjk"];

/// Where Debian's package puts the browser.
fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser"]
        .iter()
        .find(|c| process::succeeds(Command::new(c).arg("--version")))
        .map(PathBuf::from)
}

fn cjk_font_present() -> bool {
    process::output(Command::new("fc-list").arg(":lang=zh")).is_ok_and(|out| out.contains("Noto Sans CJK"))
}

/// Installs Chromium and the CJK fonts when either is missing (as root, from
/// Debian's packages); otherwise says what to install.
fn ensure_installed() -> Result<PathBuf> {
    if let Some(browser) = chromium()
        && cjk_font_present()
    {
        return Ok(browser);
    }
    if !process::is_root() {
        return Err(format!(
            "headless Chromium and the CJK fonts are needed: apt-get install {} (then run this again)",
            PACKAGES.join(" ")
        ));
    }
    println!("installing {} from Debian's packages", PACKAGES.join(" "));
    process::run(Command::new("apt-get").arg("update").env("DEBIAN_FRONTEND", "noninteractive"))?;
    process::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(PACKAGES)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    if !cjk_font_present() {
        return Err("fonts-noto-cjk is installed but fc-list knows no Noto Sans CJK font".to_owned());
    }
    chromium().ok_or_else(|| "chromium is installed but does not start (`chromium --version`)".to_owned())
}

/// Renders `page` into `png` (1280 px wide) and checks the picture.
pub fn take(page: &Path, png: &Path) -> Result<Picture> {
    let browser = ensure_installed()?;
    let _ = std::fs::remove_file(png);
    // A fresh profile each time, and nothing that talks to the network.
    let profile = std::env::temp_dir().join(format!("edp-chromium-{}", std::process::id()));
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,4000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(format!("--screenshot={}", png.display()))
    .arg(format!("file://{}", page.display()));
    let out = process::output(&mut cmd);
    let _ = std::fs::remove_dir_all(&profile);
    out?;
    let bytes = std::fs::read(png).context(|| format!("Chromium wrote no screenshot at {}", png.display()))?;
    let picture = decode(&bytes).context(|| format!("reading {}", png.display()))?;
    picture.check()?;
    Ok(picture)
}

/// What the screenshot shows, reduced to what tells a page from a blank one.
#[derive(Debug, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    /// Share of pixels that differ from the most common colour (the background).
    pub ink: f64,
    /// Distinct colours (capped at 4,096).
    pub colours: usize,
}

impl Picture {
    /// A page with text and charts has ink and colours; a blank, all-white
    /// or error page has next to none.
    fn check(&self) -> Result<()> {
        if self.ink < 0.02 || self.colours < 16 {
            return Err(format!(
                "the screenshot looks blank: {:.2}% of {}x{} pixels differ from the background, {} colours",
                self.ink * 100.0,
                self.width,
                self.height,
                self.colours
            ));
        }
        Ok(())
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Decodes an 8-bit RGB or RGBA PNG (what Chromium writes) far enough to count
/// pixels: chunks, zlib, and the five scanline filters.
pub fn decode(png: &[u8]) -> std::result::Result<Picture, String> {
    const SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
    if !png.starts_with(SIGNATURE) {
        return Err("not a PNG file".to_owned());
    }
    let (mut width, mut height, mut channels) = (0u32, 0u32, 0usize);
    let mut compressed = Vec::new();
    let mut at = SIGNATURE.len();
    while at + 8 <= png.len() {
        let len = be32(&png[at..]) as usize;
        let kind = &png[at + 4..at + 8];
        let data = png.get(at + 8..at + 8 + len).ok_or("truncated chunk")?;
        match kind {
            b"IHDR" if len >= 13 => {
                width = be32(data);
                height = be32(&data[4..]);
                channels = match (data[8], data[9], data[12]) {
                    (8, 2, 0) => 3,
                    (8, 6, 0) => 4,
                    (depth, colour, interlace) => {
                        return Err(format!(
                            "unsupported PNG: depth {depth}, colour type {colour}, interlace {interlace}"
                        ));
                    }
                };
            }
            b"IDAT" => compressed.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        at += 12 + len;
    }
    if channels == 0 || width == 0 || height == 0 {
        return Err("no image header".to_owned());
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(compressed.as_slice()).read_to_end(&mut raw).map_err(|e| format!("zlib: {e}"))?;
    let stride = width as usize * channels;
    if raw.len() < (stride + 1) * height as usize {
        return Err(format!("{} bytes of pixels for {width}x{height}", raw.len()));
    }
    let mut prev = vec![0u8; stride];
    let mut row = vec![0u8; stride];
    let mut counts: std::collections::HashMap<[u8; 3], u64> = std::collections::HashMap::new();
    for y in 0..height as usize {
        let line = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let filter = line[0];
        for x in 0..stride {
            let a = if x >= channels { row[x - channels] } else { 0 };
            let b = prev[x];
            let c = if x >= channels { prev[x - channels] } else { 0 };
            let predictor = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => paeth(a, b, c),
                other => return Err(format!("unknown scanline filter {other}")),
            };
            row[x] = line[x + 1].wrapping_add(predictor);
        }
        for px in row.chunks_exact(channels) {
            let key = [px[0], px[1], px[2]];
            if counts.len() < 4096 || counts.contains_key(&key) {
                *counts.entry(key).or_default() += 1;
            }
        }
        std::mem::swap(&mut prev, &mut row);
    }
    let total = u64::from(width) * u64::from(height);
    let background = counts.values().copied().max().unwrap_or(0);
    Ok(Picture { width, height, ink: (total - background) as f64 / total as f64, colours: counts.len() })
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (ia, ib, ic) = (i16::from(a), i16::from(b), i16::from(c));
    let p = ia + ib - ic;
    let (pa, pb, pc) = ((p - ia).abs(), (p - ib).abs(), (p - ic).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A PNG of `rows` (RGB), each scanline with the given filter byte.
    fn png(width: u32, rows: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let mut raw = Vec::new();
        for (filter, px) in rows {
            raw.push(*filter);
            raw.extend_from_slice(px);
        }
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw).expect("zlib");
        let idat = z.finish().expect("zlib");
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&[0, 0, 0, 0]);
        };
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&(rows.len() as u32).to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        chunk(b"IHDR", &ihdr);
        chunk(b"IDAT", &idat);
        chunk(b"IEND", &[]);
        out
    }

    #[test]
    fn a_white_picture_is_blank_and_a_drawn_one_is_not() {
        let white = png(4, &[(0, vec![255; 12]), (2, vec![0; 12])]);
        let p = decode(&white).expect("decode");
        assert_eq!((p.width, p.height, p.ink, p.colours), (4, 2, 0.0, 1));
        assert!(p.check().is_err());

        // Row 0: white then three shades; row 1 "Up"-filtered: same plus 1 each.
        let mut first = vec![255, 255, 255];
        first.extend_from_slice(&[10, 20, 30, 40, 50, 60, 70, 80, 90]);
        let drawn = png(4, &[(0, first), (2, vec![1; 12])]);
        let p = decode(&drawn).expect("decode");
        assert_eq!(p.colours, 8, "the Up filter adds the row above");
        assert!((p.ink - 7.0 / 8.0).abs() < 1e-9);
    }

    #[test]
    fn the_paeth_and_average_filters_reconstruct_pixels() {
        // One row of two pixels: Sub filter, second pixel = first + 5.
        let p =
            decode(&png(2, &[(1, vec![100, 100, 100, 5, 5, 5]), (4, vec![0; 6]), (3, vec![0; 6])])).expect("decode");
        // Row 1, Paeth of zeros: the predictor picks the pixel above, so row 0 again.
        // Row 2, Average of zeros: (0 + 100) / 2 = 50, then (50 + 105) / 2 = 77.
        assert_eq!(p.height, 3);
        assert_eq!(p.colours, 4, "100, 105, 50 and 77");
        assert!((p.ink - 4.0 / 6.0).abs() < 1e-9, "{}", p.ink);
        assert!(decode(b"not a png").is_err());
    }
}
