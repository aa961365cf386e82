//! Random and mutated test files fed to `validate` for a bounded time: no panic, no hang.
//!
//! A small xorshift PRNG (seeded, so a failure can be replayed with `CRABBY_FUZZ_SEED`;
//! `CRABBY_FUZZ_SECS` sets the budget, 4 s by default) mutates the good and bad files (byte flips, insertions of TOML-significant bytes, truncations,
//! swapped and duplicated lines, numbers replaced by extreme ones, units and names
//! misspelt) and
//! validates each in-process on a worker thread with a deadline: a validate that takes more
//! than 5 s fails the test as a hang, a panic fails it with the input saved for replay.

use crabby_cli::Registry;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const TOKENS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "{",
    "}",
    "=",
    ",",
    "\n",
    "#",
    ".",
    "\\",
    "[[",
    "]]",
    "1e309",
    "-0",
    "nan",
    "inf",
    "\"\"\"",
    "°C",
    "mm/s",
    "kN",
    "%",
    "\u{0}",
    "é",
    "9999999999999999999",
];

const SWAPS: &[(&str, &str)] = &[
    ("mm/s", "kN"),
    ("Hz", "s"),
    ("Generator", "Generater"),
    ("machine", "machin"),
    ("F(N)", "F(n)"),
    ("true", "\"true\""),
    ("= 1", "= -1e308"),
    ("from", "form"),
    ("constant", "ramp"),
    ("delay=", "delay>"),
];

fn mutate(rng: &mut Rng, src: &[u8]) -> Vec<u8> {
    let mut b = src.to_vec();
    for _ in 0..=rng.below(4) {
        match rng.below(9) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(b.len() + 1);
                let t = TOKENS[rng.below(TOKENS.len())].as_bytes();
                b.splice(i..i, t.iter().copied());
            }
            2 if !b.is_empty() => {
                let n = rng.below(b.len());
                b.truncate(n);
            }
            3 | 4 => {
                let mut lines: Vec<Vec<u8>> =
                    b.split(|c| *c == b'\n').map(<[u8]>::to_vec).collect();
                if lines.len() > 1 {
                    let (i, j) = (rng.below(lines.len()), rng.below(lines.len()));
                    if rng.below(2) == 0 {
                        lines.swap(i, j);
                    } else {
                        let l = lines[i].clone();
                        lines.insert(j, l);
                    }
                }
                b = lines.join(&b'\n');
            }
            5 => {
                let s = String::from_utf8_lossy(&b).into_owned();
                let (from, to) = SWAPS[rng.below(SWAPS.len())];
                b = s.replacen(from, to, 1).into_bytes();
            }
            7 => {
                // A number replaced by an extreme one (what overflows a conversion).
                const EXTREMES: &[&str] = &[
                    "1e300",
                    "-1e300",
                    "0",
                    "-1",
                    "1e-300",
                    "4294967296",
                    "18446744073709551615",
                    "-9223372036854775808",
                    "0.5",
                    "1e9",
                    "65536",
                    "\"1e300 s\"",
                    "\"-0 mm\"",
                ];
                let starts: Vec<usize> = (0..b.len())
                    .filter(|&i| {
                        b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_alphanumeric())
                    })
                    .collect();
                if !starts.is_empty() {
                    let i = starts[rng.below(starts.len())];
                    let mut j = i;
                    while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.' || b[j] == b'e') {
                        j += 1;
                    }
                    let x = EXTREMES[rng.below(EXTREMES.len())].as_bytes();
                    b.splice(i..j, x.iter().copied());
                }
            }
            6 if !b.is_empty() => {
                let i = rng.below(b.len());
                let n = rng.below(8).min(b.len() - i);
                b.drain(i..i + n);
            }
            _ => {
                // Random bytes.
                let i = rng.below(b.len() + 1);
                let r: Vec<u8> = (0..rng.below(6)).map(|_| rng.next() as u8).collect();
                b.splice(i..i, r);
            }
        }
    }
    b
}

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut v = Vec::new();
    for d in [
        root.join("tests/good"),
        root.join("tests/bad"),
        root.join("../examples"),
    ] {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|e| e == "toml") {
                v.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    v.sort();
    v
}

#[test]
fn mutated_files_never_panic_or_hang() {
    let seed: u64 = std::env::var("CRABBY_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_CAFE);
    let budget = Duration::from_secs(
        std::env::var("CRABBY_FUZZ_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(4),
    );
    let seeds = seeds();
    // Files go next to the seeds' fragments, so includes and custom paths resolve.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good");
    let file = dir.join(format!(".fuzz-{}.input", std::process::id()));
    let mut rng = Rng(seed | 1);
    let start = Instant::now();
    let mut n = 0u64;
    let (mut ok, mut invalid) = (0u64, 0u64);
    let (tx, rx) = mpsc::channel::<(Vec<u8>, mpsc::Sender<Result<bool, String>>)>();
    let worker_file = file.clone();
    // One worker: validates what it is sent, answers whether it validated.
    let worker = std::thread::spawn(move || {
        let registry = Registry::stock();
        for (bytes, answer) in rx {
            std::fs::write(&worker_file, &bytes).unwrap();
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let r = crabby_cli::validate(&worker_file, &registry);
                if let Err(e) = &r {
                    let _ = e.render(); // rendering must not panic either
                }
                r.is_ok()
            }))
            .map_err(|p| {
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            });
            if answer.send(r).is_err() {
                break;
            }
        }
    });
    let mut failure = None;
    while start.elapsed() < budget {
        let (_, src) = &seeds[rng.below(seeds.len())];
        let input = if rng.below(10) == 0 {
            // Now and then pure noise.
            (0..rng.below(300)).map(|_| rng.next() as u8).collect()
        } else {
            mutate(&mut rng, src)
        };
        let (atx, arx) = mpsc::channel();
        tx.send((input.clone(), atx)).unwrap();
        match arx.recv_timeout(Duration::from_secs(5)) {
            Ok(Ok(true)) => ok += 1,
            Ok(Ok(false)) => invalid += 1,
            Ok(Err(panic)) => {
                failure = Some((format!("panic: {panic}"), input));
                break;
            }
            Err(_) => {
                failure = Some(("validate took more than 5 s (a hang)".to_owned(), input));
                break;
            }
        }
        n += 1;
    }
    drop(tx);
    if failure.is_none() {
        worker.join().unwrap();
    }
    let _ = std::fs::remove_file(&file);
    eprintln!(
        "fuzz: {n} inputs in {:.1} s (seed {seed}): {ok} valid, {invalid} refused",
        start.elapsed().as_secs_f64()
    );
    if let Some((why, input)) = failure {
        let keep = std::env::temp_dir().join(format!("crabby-fuzz-failure-{seed}.toml"));
        let _ = std::fs::write(&keep, &input);
        panic!("{why}; input saved in {}", keep.display());
    }
    assert!(n > 50, "only {n} inputs in the time budget");
    assert!(
        invalid > 0,
        "no mutation was refused: the mutator does nothing"
    );
}
