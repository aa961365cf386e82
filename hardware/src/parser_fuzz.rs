//! Random and mutated bytes through every parser of what a device or a file sends: the TIFF
//! and PNG decoders of the FileReader, the Alicat data frame, the µcontroller frame, the JVL
//! read reply and the Modbus PDUs. Each must return an error (or a value), never panic.
//! `CRABBY_FUZZ_ITERS` sets the number of inputs per parser (default 20 000);
//! `CRABBY_FUZZ_SEED` replays a seed.

use crate::camera::file_reader::{decode_png, decode_tiff};
use crate::modbus::frame::Request;
use crate::sensor::Prng;
use crate::serial::alicat::AlicatFrame;
use crate::serial::jvl_mac::decode_reply;
use crate::serial::ucontroller::decode_frame;

fn budget() -> (u64, usize) {
    let seed = std::env::var("CRABBY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    let n = std::env::var("CRABBY_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    (seed, n)
}

/// `base` with a few random byte changes, insertions or a truncation; or random bytes.
fn mutate(r: &mut Prng, base: &[u8]) -> Vec<u8> {
    let mut b = base.to_vec();
    match r.next_u64() % 4 {
        0 => {
            let n = (r.next_u64() % 64) as usize;
            return (0..n).map(|_| r.next_u64() as u8).collect();
        }
        1 if !b.is_empty() => {
            let n = (r.next_u64() % b.len() as u64) as usize;
            b.truncate(n);
        }
        _ => {}
    }
    for _ in 0..1 + r.next_u64() % 4 {
        if b.is_empty() {
            break;
        }
        let i = (r.next_u64() % b.len() as u64) as usize;
        match r.next_u64() % 3 {
            0 => b[i] = r.next_u64() as u8,
            1 => b[i] = [0x00, 0xFF, 0x7F, 0x80][(r.next_u64() % 4) as usize],
            _ => b.insert(i, r.next_u64() as u8),
        }
    }
    b
}

/// A 4×3 8-bit grey uncompressed TIFF, little-endian, one strip.
fn tiny_tiff() -> Vec<u8> {
    let mut b = b"II*\0".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    let entries: [(u16, u16, u32, u32); 8] = [
        (256, 3, 1, 4),
        (257, 3, 1, 3),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, 8 + 2 + 8 * 12 + 4),
        (277, 3, 1, 1),
        (279, 4, 1, 12),
    ];
    b.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    for (tag, typ, count, v) in entries {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&typ.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    b.extend((0..12u8).map(|i| i * 20));
    b
}

/// A 2×2 8-bit grey PNG.
fn tiny_png() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, 2, 2);
        e.set_color(png::ColorType::Grayscale);
        e.set_depth(png::BitDepth::Eight);
        let mut w = e.write_header().expect("png header");
        w.write_image_data(&[1, 2, 3, 4]).expect("png data");
    }
    out
}

#[test]
fn image_decoders_never_panic() {
    let (seed, n) = budget();
    let mut r = Prng::new(seed);
    let (tiff, png_) = (tiny_tiff(), tiny_png());
    let mut out = Vec::new();
    let f = decode_tiff(&tiff, &mut out).expect("the seed TIFF decodes");
    assert_eq!((f.width, f.height, out.len()), (4, 3, 12));
    decode_png(&png_, &mut out).expect("the seed PNG decodes");
    for _ in 0..n {
        let _ = decode_tiff(&mutate(&mut r, &tiff), &mut out);
        let _ = decode_png(&mutate(&mut r, &png_), &mut out);
    }
}

#[test]
fn device_frame_parsers_never_panic() {
    let (seed, n) = budget();
    let mut r = Prng::new(seed ^ 1);
    let alicat = b"A +014.70 +025.00 +000.00 +000.00 +000.00 Air MOV".to_vec();
    assert!(AlicatFrame::parse(std::str::from_utf8(&alicat).unwrap()).is_some());
    let jvl = crate::serial::jvl_mac::reply_telegram(10, -12345);
    assert_eq!(decode_reply(&jvl, 10), Ok(-12345));
    let pdus: [&[u8]; 3] = [
        &[0x03, 0x00, 0x01, 0x00, 0x05],
        &[0x10, 0x00, 0x58, 0x00, 0x02, 0x04, 0, 0, 0, 1],
        &[0x06, 0x00, 0x02, 0x01, 0x00],
    ];
    for _ in 0..n {
        let a = mutate(&mut r, &alicat);
        let _ = AlicatFrame::parse(&String::from_utf8_lossy(&a));
        let u = mutate(&mut r, &[1, 2, 3, 4, 1, 0, 0, 128, 63]);
        let _ = decode_frame(&u, true);
        let _ = decode_frame(&u, false);
        let _ = decode_reply(&mutate(&mut r, &jvl), 10);
        let k = (r.next_u64() % 3) as usize;
        let p = mutate(&mut r, pdus[k]);
        if let Ok(req) = Request::decode(&p) {
            let _ = req.decode_response(&mutate(&mut r, &p));
        }
    }
}
