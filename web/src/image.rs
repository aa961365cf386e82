//! The camera preview: the camera Block's PGM/PPM preview file turned into a BMP, which every
//! browser shows natively (no image codec needed on either side).

/// The frame index and timestamp a camera Block's `PreviewFile` writes as a comment
/// (`# frame N timestamp_ns T`), if there.
pub fn frame_of(pnm: &[u8]) -> Option<(u64, u64)> {
    let head = std::str::from_utf8(pnm.get(..pnm.len().min(100))?)
        .ok()
        .or_else(|| {
            let n = pnm.iter().take(100).position(|&b| b > 127)?;
            std::str::from_utf8(&pnm[..n]).ok()
        })?;
    let rest = head.split("# frame ").nth(1)?;
    let mut words = rest.split_whitespace();
    let index = words.next()?.parse().ok()?;
    let ts = match (words.next(), words.next()) {
        (Some("timestamp_ns"), Some(t)) => t.parse().ok()?,
        _ => 0,
    };
    Some((index, ts))
}

/// Parses a binary PGM (`P5`) or PPM (`P6`) with 8-bit samples; returns a 24-bit BMP.
pub fn pnm_to_bmp(pnm: &[u8]) -> Option<Vec<u8>> {
    let (magic, rest) = (pnm.get(..2)?, pnm.get(2..)?);
    let channels = match magic {
        b"P5" => 1,
        b"P6" => 3,
        _ => return None,
    };
    // Three numbers (width, height, maxval), whitespace and comments between, then one
    // whitespace byte before the pixels.
    let mut nums = [0usize; 3];
    let mut i = 0;
    for n in &mut nums {
        loop {
            match rest.get(i)? {
                b'#' => {
                    while *rest.get(i)? != b'\n' {
                        i += 1;
                    }
                }
                c if c.is_ascii_whitespace() => i += 1,
                _ => break,
            }
        }
        let start = i;
        while rest.get(i)?.is_ascii_digit() {
            i += 1;
        }
        *n = std::str::from_utf8(&rest[start..i]).ok()?.parse().ok()?;
    }
    let [w, h, maxval] = nums;
    if w == 0 || h == 0 || maxval == 0 || maxval > 255 || w > 8192 || h > 8192 {
        return None;
    }
    let pixels = rest.get(i + 1..i + 1 + w * h * channels)?;
    let row = (w * 3).div_ceil(4) * 4;
    let size = 54 + row * h;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&54u32.to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(w as i32).to_le_bytes());
    out.extend_from_slice(&(h as i32).to_le_bytes()); // bottom-up
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // no compression
    out.extend_from_slice(&((row * h) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 16]);
    let scale = |v: u8| ((v as usize * 255) / maxval).min(255) as u8;
    for y in (0..h).rev() {
        let line = &pixels[y * w * channels..(y + 1) * w * channels];
        for px in line.chunks_exact(channels) {
            let (r, g, b) = if channels == 1 {
                (px[0], px[0], px[0])
            } else {
                (px[0], px[1], px[2])
            };
            out.extend_from_slice(&[scale(b), scale(g), scale(r)]);
        }
        out.resize(out.len() + row - w * 3, 0);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgm_becomes_a_bottom_up_bmp() {
        let pgm = b"P5\n# preview\n3 2\n255\n\x00\x10\x20\x30\x40\x50";
        let bmp = pnm_to_bmp(pgm).unwrap();
        assert_eq!(&bmp[..2], b"BM");
        assert_eq!(bmp.len(), 54 + 12 * 2);
        // First stored row is the image's last one.
        assert_eq!(&bmp[54..57], &[0x30, 0x30, 0x30]);
        assert_eq!(&bmp[66..69], &[0x00, 0x00, 0x00]);
        assert!(pnm_to_bmp(b"P5\n3 2\n255\n\x00").is_none(), "short data");
        assert!(pnm_to_bmp(b"GIF89a").is_none());
        let pgm = b"P5\n# frame 42 timestamp_ns 123\n1 1\n255\n\xff";
        assert_eq!(frame_of(pgm), Some((42, 123)));
        assert_eq!(pnm_to_bmp(pgm).unwrap()[54..57], [255, 255, 255]);
        assert_eq!(frame_of(b"P5\n1 1\n255\n\x00"), None);
    }
}
