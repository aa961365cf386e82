//! The Multiplexer's cost per sample: its algorithm (`MultiplexerCore`, what the Block runs
//! each loop) fed like a test feeds it, loop by loop: 50 loops/s, each bringing a force at
//! 1 kHz, a strain at 30 Hz and a text label, resampled at `interp_freq`. Prints the time
//! per input sample and per output sample.
//! `cargo bench -p crabby-blocks --bench multiplexer`

use crabby::Sample;
use crabby_blocks::MultiplexerCore;
use std::hint::black_box;
use std::time::Instant;

fn run(interp_freq: f64, seconds: usize) -> (f64, f64, usize, usize) {
    let mut m = MultiplexerCore::new(interp_freq, "t(s)", None);
    // Inputs prepared beforehand: only the Multiplexer is timed.
    let loops = seconds * 50;
    let mut batches = Vec::with_capacity(loops);
    let mut n_in = 0;
    for k in 0..loops {
        let t0 = k as f64 / 50.0;
        let force: Vec<Sample> = (0..20)
            .map(|i| {
                let t = t0 + i as f64 * 1e-3;
                Sample::new().with("t(s)", t).with("F(N)", 1000.0 * t)
            })
            .collect();
        // Strain samples at j/30 s falling in this loop's 20 ms.
        let first = (t0 * 30.0 - 1e-9).ceil() as usize;
        let strain: Vec<Sample> = (first..)
            .map(|j| j as f64 / 30.0)
            .take_while(|&t| t < t0 + 0.02 - 1e-9)
            .map(|t| {
                Sample::new()
                    .with("t(s)", t)
                    .with("Exx(%)", 0.1 * t)
                    .with("state", "load")
            })
            .collect();
        n_in += force.len() + strain.len();
        batches.push((force, strain));
    }
    let mut n_out = 0;
    let start = Instant::now();
    for (force, strain) in &batches {
        m.push(force);
        m.push(strain);
        n_out += black_box(m.resample()).len();
    }
    let dt = start.elapsed().as_secs_f64();
    (
        dt * 1e9 / n_in as f64,
        dt * 1e9 / n_out.max(1) as f64,
        n_in,
        n_out,
    )
}

fn main() {
    println!(
        "Multiplexer: force 1 kHz + strain ~30 Hz (+ a text label), 50 loops/s, 600 s of test"
    );
    for f in [100.0, 1000.0] {
        let (per_in, per_out, n_in, n_out) = run(f, 600);
        println!(
            "  interp_freq {f:>6} Hz: {per_in:>7.0} ns per input sample, {per_out:>7.0} ns per output sample ({n_in} in, {n_out} out)"
        );
    }
}
