//! FileReader without the camera Block: folders written by hand (raw frames with a
//! `metadata.csv` as the recorder writes it, TIFF in both byte orders, PNG), replay order,
//! timestamps, pacing, looping, and every bad folder refused with a clear error.
//! The round trip through the camera Block's own writer is in `tests/drivers_misc.rs`.

use super::*;
use crabby::camera::Camera;

struct Dir(PathBuf);
impl Dir {
    fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!("crabby-fr-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const HEADER: &str = "index,t(s),timestamp_ns,width,height,format,file\n";

/// `n` raw 4×3 mono8 frames, frame i filled with i, at 1 s + i·20 ms.
fn raw_folder(d: &Dir, n: u64) {
    let mut csv = HEADER.to_owned();
    for i in 0..n {
        let name = format!("{i:06}_{:.3}.raw", 0.02 * i as f64);
        std::fs::write(d.0.join(&name), [i as u8; 12]).unwrap();
        let ts = 1_000_000_000 + i * 20_000_000;
        csv.push_str(&format!("{i},{},{ts},4,3,mono8,{name}\n", 0.02 * i as f64));
    }
    std::fs::write(d.0.join("metadata.csv"), csv).unwrap();
}

#[test]
fn replays_raw_frames_in_order_with_their_spacing_then_finishes() {
    let d = Dir::new("raw");
    raw_folder(&d, 5);
    let mut cam = FileReader::new(&d.0, Pacing::AsFastAsPossible).unwrap();
    assert_eq!(cam.len(), 5);
    assert_eq!(cam.format(), FrameFormat::new(4, 3, PixelFormat::Mono8));
    cam.open().unwrap();
    let mut buf = vec![0u8; 12];
    let mut ts = Vec::new();
    for i in 0..5u8 {
        let info = cam.grab(&mut buf).unwrap().expect("a frame");
        assert_eq!(buf, [i; 12]);
        assert_eq!(info.index, u64::from(i));
        ts.push(info.timestamp_ns);
    }
    for w in ts.windows(2) {
        assert_eq!(w[1] - w[0], 20_000_000, "recorded spacing kept");
    }
    buf.fill(99);
    assert!(cam.grab(&mut buf).unwrap().is_none());
    assert!(cam.finished());
    assert_eq!(buf, [99; 12], "Ok(None) leaves the buffer alone");
}

#[test]
fn real_time_pacing_delivers_no_frame_before_its_time_and_loops() {
    let d = Dir::new("pace");
    raw_folder(&d, 3);
    let mut cam = FileReader::new(&d.0, Pacing::RealTime { speed: 2.0 })
        .unwrap()
        .looping(true);
    let mut buf = vec![0u8; 12];
    let mut ts = Vec::new();
    while ts.len() < 7 {
        if let Some(info) = cam.grab(&mut buf).unwrap() {
            assert!(
                crabby::time::monotonic_ns() >= info.timestamp_ns,
                "frame delivered before its time"
            );
            assert_eq!(buf[0], (ts.len() % 3) as u8);
            ts.push(info.timestamp_ns);
        }
    }
    // Speed 2: 20 ms recorded = 10 ms replayed; a lap adds one mean period (10 ms).
    let d: Vec<u64> = ts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(d.iter().all(|&x| x == 10_000_000), "{d:?}");
    assert!(!cam.finished());
}

/// A big-endian, two-strip, 16-bit TIFF written by hand.
fn be_tiff(w: u32, h: u32, px: &[u16]) -> Vec<u8> {
    let rows1 = h / 2;
    let data: Vec<u8> = px.iter().flat_map(|p| p.to_be_bytes()).collect();
    let split = (rows1 * w * 2) as usize;
    let n = 9u16;
    let ifd_len = 2 + 12 * n as usize + 4;
    let arrays = 8 + ifd_len; // strip offsets (2 LONGs) then counts (2 LONGs)
    let data_off = (arrays + 16) as u32;
    let mut b = b"MM\0*".to_vec();
    b.extend_from_slice(&8u32.to_be_bytes());
    b.extend_from_slice(&n.to_be_bytes());
    let mut e = |tag: u16, typ: u16, count: u32, v: u32| {
        b.extend_from_slice(&tag.to_be_bytes());
        b.extend_from_slice(&typ.to_be_bytes());
        b.extend_from_slice(&count.to_be_bytes());
        if typ == 3 && count == 1 {
            b.extend_from_slice(&(v as u16).to_be_bytes());
            b.extend_from_slice(&[0, 0]);
        } else {
            b.extend_from_slice(&v.to_be_bytes());
        }
    };
    e(256, 4, 1, w);
    e(257, 4, 1, h);
    e(258, 3, 1, 16);
    e(259, 3, 1, 1);
    e(262, 3, 1, 1);
    e(273, 4, 2, arrays as u32);
    e(277, 3, 1, 1);
    e(278, 4, 1, rows1);
    e(279, 4, 2, arrays as u32 + 8);
    b.extend_from_slice(&0u32.to_be_bytes());
    for v in [
        data_off,
        data_off + split as u32,
        split as u32,
        (data.len() - split) as u32,
    ] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.extend_from_slice(&data);
    b
}

#[test]
fn tiff_in_either_byte_order_and_png_without_metadata() {
    let d = Dir::new("names");
    let px: Vec<u16> = (0..12).map(|i| 1000 * i + 7).collect();
    std::fs::write(d.0.join("000000_0.500.tiff"), be_tiff(4, 3, &px)).unwrap();
    // A PNG with the same pixels, later.
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, 4, 3);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Sixteen);
        let mut w = enc.write_header().unwrap();
        let be: Vec<u8> = px.iter().flat_map(|p| p.to_be_bytes()).collect();
        w.write_image_data(&be).unwrap();
    }
    std::fs::write(d.0.join("000001_0.750.png"), &png_bytes).unwrap();
    std::fs::write(d.0.join("notes.txt"), "not an image").unwrap();
    let mut cam = FileReader::new(&d.0, Pacing::AsFastAsPossible).unwrap();
    assert_eq!(cam.format(), FrameFormat::new(4, 3, PixelFormat::Mono16));
    assert_eq!(cam.recorded_offsets(), vec![0.0, 0.25]);
    let le: Vec<u8> = px.iter().flat_map(|p| p.to_le_bytes()).collect();
    let mut buf = vec![0u8; 24];
    let a = cam.grab(&mut buf).unwrap().unwrap();
    assert_eq!(buf, le, "TIFF pixels");
    buf.fill(0);
    let b = cam.grab(&mut buf).unwrap().unwrap();
    assert_eq!(buf, le, "PNG pixels");
    assert_eq!(b.timestamp_ns - a.timestamp_ns, 250_000_000);
}

#[test]
fn bad_folders_are_refused_with_what_to_do() {
    let msg = |r: Result<FileReader>| {
        let e = r.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
        e.description().to_owned()
    };
    let fast = Pacing::AsFastAsPossible;
    assert!(msg(FileReader::new("/nonexistent/imgs", fast)).contains("not a folder"));
    let d = Dir::new("bad");
    assert!(msg(FileReader::new(&d.0, fast)).contains("no frames"));
    std::fs::write(d.0.join("000000_0.000.raw"), [0u8; 4]).unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("need it for their size"));
    assert!(msg(FileReader::new(&d.0, Pacing::RealTime { speed: 0.0 })).contains("speed"));
    // metadata.csv problems, each named with its line.
    let meta = d.0.join("metadata.csv");
    std::fs::write(&meta, "index,t(s),file\n").unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("no 'timestamp_ns' column"));
    std::fs::write(&meta, format!("{HEADER}0,0,5,2,2,mono8,missing.raw\n")).unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("does not exist"));
    std::fs::write(&meta, format!("{HEADER}0,0,x,2,2,mono8,000000_0.000.raw\n")).unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("line 2"));
    std::fs::write(&meta, format!("{HEADER}0,0,5,2,2,yuv,000000_0.000.raw\n")).unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("unknown pixel format"));
    std::fs::write(
        &meta,
        format!("{HEADER}0,0,5,2,2,mono8,000000_0.000.raw\n1,0,6,2,1,mono8,000000_0.000.raw\n"),
    )
    .unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("change format"));
    std::fs::write(&meta, format!("{HEADER}0,0,5,3,3,mono8,000000_0.000.raw\n")).unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("4 bytes, a 3x3 mono8 frame has 9"));
    // A compressed TIFF (LZW) and a file that is not a TIFF.
    let mut t = be_tiff(2, 2, &[1, 2, 3, 4]);
    // Compression is the 4th entry: its value (SHORT) at 8 + 2 + 3·12 + 8.
    t[8 + 2 + 36 + 8..8 + 2 + 36 + 10].copy_from_slice(&5u16.to_be_bytes());
    std::fs::write(d.0.join("000001_0.100.tiff"), &t).unwrap();
    std::fs::write(
        &meta,
        format!("{HEADER}1,0.1,5,2,2,mono16,000001_0.100.tiff\n"),
    )
    .unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("compressed TIFF"));
    std::fs::write(d.0.join("000002_0.200.tiff"), b"hello").unwrap();
    std::fs::write(
        &meta,
        format!("{HEADER}2,0.2,5,2,2,mono16,000002_0.200.tiff\n"),
    )
    .unwrap();
    assert!(msg(FileReader::new(&d.0, fast)).contains("not a TIFF"));
}

#[test]
fn absurd_timestamps_replay_without_overflow() {
    // A hand-edited or corrupt metadata.csv: the second frame at the end of time. The
    // replay times saturate instead of overflowing (a panic in the camera Block).
    let d = Dir::new("absurd");
    let mut csv = HEADER.to_owned();
    for (i, ts) in [0u64, u64::MAX].into_iter().enumerate() {
        let name = format!("{i:06}.raw");
        std::fs::write(d.0.join(&name), [i as u8; 12]).unwrap();
        csv.push_str(&format!("{i},0,{ts},4,3,mono8,{name}\n"));
    }
    std::fs::write(d.0.join("metadata.csv"), csv).unwrap();
    let mut cam = FileReader::new(&d.0, Pacing::AsFastAsPossible)
        .unwrap()
        .looping(true);
    let mut buf = vec![0u8; 12];
    let mut last = 0;
    for k in 0..6 {
        let info = cam.grab(&mut buf).unwrap().expect("as fast as possible");
        assert_eq!(buf[0], (k % 2) as u8);
        assert!(info.timestamp_ns >= last, "time went back at frame {k}");
        last = info.timestamp_ns;
    }
}

/// A little-endian 16-bit grey `w`×`h` TIFF with `n` strips, then `data`; `strip(len,
/// data_at, k)` gives strip `k`'s (offset, count) from the file's length and where `data`
/// starts.
fn le_tiff(
    w: u32,
    h: u32,
    n: u32,
    data: &[u8],
    strip: impl Fn(u32, u32, u32) -> (u32, u32),
) -> Vec<u8> {
    let tags = 7u16;
    let ifd_len = 2 + 12 * tags as u32 + 4;
    // One strip: offset and count inline in their tags' fields; more: two arrays.
    let arrays = if n == 1 { 0 } else { 8 * n };
    let offsets_at = 8 + ifd_len;
    let counts_at = offsets_at + 4 * n;
    let data_at = offsets_at + arrays;
    let len = data_at + data.len() as u32;
    let (o_field, c_field) = if n == 1 {
        strip(len, data_at, 0)
    } else {
        (offsets_at, counts_at)
    };
    let mut b = b"II*\0".to_vec();
    b.extend_from_slice(&8u32.to_le_bytes());
    b.extend_from_slice(&tags.to_le_bytes());
    for (tag, typ, count, v) in [
        (256u16, 4u16, 1u32, w),
        (257, 4, 1, h),
        (258, 3, 1, 16),
        (259, 3, 1, 1),
        (273, 4, n, o_field),
        (277, 3, 1, 1),
        (279, 4, n, c_field),
    ] {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&typ.to_le_bytes());
        b.extend_from_slice(&count.to_le_bytes());
        b.extend_from_slice(&v.to_le_bytes()); // a SHORT in the field's first 2 bytes (LE)
    }
    b.extend_from_slice(&0u32.to_le_bytes());
    if n > 1 {
        b.extend((0..n).flat_map(|k| strip(len, data_at, k).0.to_le_bytes()));
        b.extend((0..n).flat_map(|k| strip(len, data_at, k).1.to_le_bytes()));
    }
    b.extend_from_slice(data);
    assert_eq!(b.len(), len as usize);
    b
}

#[test]
fn a_tiff_whose_strips_exceed_the_frame_is_refused_without_gathering_them() {
    // 1000 strips, each the whole file (8 KB): 8 MB gathered for a 24-byte 4×3 frame
    // before the fix. Refused, naming the file, and nothing is gathered.
    let t = le_tiff(4, 3, 1000, &[], |len, _, _| (0, len));
    let mut out = Vec::new();
    let e = decode_tiff(&t, &mut out).unwrap_err();
    assert!(e.contains("more than the 24 bytes"), "{e}");
    assert!(out.capacity() <= 24, "gathered {} bytes", out.capacity());
    // A last strip padded past the frame (as some writers pad to whole RowsPerStrip) is
    // read and cut to the frame.
    let px: Vec<u8> = (0..25u8).map(|i| i * 3).collect();
    let long = le_tiff(4, 3, 1, &px, |_, at, _| (at, 25));
    decode_tiff(&long, &mut out).unwrap();
    assert_eq!(out, px[..24]);
    // Through the FileReader: a clear error naming the file.
    let d = Dir::new("amplify");
    std::fs::write(d.0.join("000000_0.000.tiff"), &t).unwrap();
    let e = FileReader::new(&d.0, Pacing::AsFastAsPossible).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    assert!(e.description().contains("000000_0.000.tiff"), "{e}");
    assert!(e.description().contains("more than the 24 bytes"), "{e}");
    // Exactly the frame's bytes, in one strip or in three of a row each, are read.
    for n in [1, 3] {
        let rows = 3 / n; // n strips of `rows` rows (8 bytes a row)
        let ok = le_tiff(4, 3, n, &px[..24], |_, at, k| (at + 8 * rows * k, 8 * rows));
        out.clear();
        decode_tiff(&ok, &mut out).unwrap();
        assert_eq!(out, px[..24], "{n} strips");
    }
}
