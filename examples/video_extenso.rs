//! Video extensometry on a simulated test: FakeMachine → strained-sample camera →
//! VideoExtenso, with images and strains recorded, and the measured strain compared with
//! the machine's at the end.
//!
//! A Generator pulls a FakeMachine (sample made unbreakable up to 6 %) at 4 mm/s until
//! `Exx(%) > 5`, then holds the crosshead still for 1 s. A `StrainedSampleCamera` receives
//! the machine's `Exx(%)` / `Eyy(%)` and films a sample with four marker spots deformed by
//! them; the camera Block's processing child runs VideoExtenso and sends `Exx(%)`, `Eyy(%)`
//! and the spots' coordinates; its recorder child saves one image in 10 as TIFF with a
//! `metadata.csv`; its display child refreshes `preview.pgm` 5 times per second. Two
//! Recorders write the machine's outputs and the measured strains to CSV.
//!
//! Output in `results/video_extenso-<date>-<time>/` (or `--out DIR`).
//!
//! `cargo run --release --example video_extenso -- [--out DIR]`

use anyhow::{bail, Context as _};
use crabby::{Settings, Test};
use crabby_blocks::camera::{CameraBlock, ImageFormat, PreviewFile, VideoExtenso};
use crabby_blocks::{FakeMachine, FakeMachineModel, Generator, Path, Recorder};
use crabby_hardware::camera::StrainedSampleCamera;
use std::path::PathBuf;
use std::time::Duration;

/// Reads a CSV written by a Recorder: (header, rows of cells).
fn read_csv(path: &std::path::Path) -> anyhow::Result<(Vec<String>, Vec<Vec<String>>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    Ok((header, rows))
}

/// Column `name` of a CSV as floats (empty cells skipped).
fn column(csv: &(Vec<String>, Vec<Vec<String>>), name: &str) -> anyhow::Result<Vec<f64>> {
    let Some(i) = csv.0.iter().position(|h| h == name) else {
        bail!("no column {name}")
    };
    Ok(csv
        .1
        .iter()
        .filter_map(|r| r.get(i).and_then(|c| c.parse().ok()))
        .collect())
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let out: PathBuf = match args.iter().position(|a| a == "--out") {
        Some(i) => args.get(i + 1).context("--out needs a folder")?.into(),
        None => PathBuf::from("results").join(format!(
            "video_extenso-{}",
            crabby::time::file_stamp(crabby::time::realtime_ns())
        )),
    };
    std::fs::create_dir_all(&out)?;

    let mut test = Test::new("video extenso");
    test.log_file(Some(out.join("test.log")));
    let generator = test.add(
        Generator::new([
            Path::constant(4.0).until("Exx(%) > 5"),
            Path::constant(0.0).until("delay=1"),
        ])?
        .end_delay(Some(0.2)),
    );
    let machine = test.add(FakeMachine::with_model(
        FakeMachineModel::new().max_strain_pct(6.0),
    ));
    let camera = StrainedSampleCamera::new(640, 480, 9.0)?.fps(50.0);
    let camera = test.add_with(
        CameraBlock::new(camera)
            .record(out.join("images"), ImageFormat::Tiff)
            .save_period(10)
            .display(
                PreviewFile::new(out.join("preview.pgm")),
                Duration::from_millis(200),
            )
            .process(VideoExtenso::new()),
        Settings::new().name("camera"),
    );
    let rec_machine = test.add(Recorder::new(out.join("machine.csv")));
    let rec_ve = test.add(Recorder::new(out.join("video_extenso.csv")));
    test.link(generator, machine);
    test.link(machine, generator);
    test.link(machine, camera);
    test.link(machine, rec_machine);
    test.link(camera, rec_ve);
    // The run report is logged (and printed) by the runtime.
    test.run()?;

    // Compare: the last measured strain (crosshead still for 1 s) with the machine's.
    let machine_csv = read_csv(&out.join("machine.csv"))?;
    let ve_csv = read_csv(&out.join("video_extenso.csv"))?;
    let (m_exx, m_eyy) = (
        column(&machine_csv, "Exx(%)")?,
        column(&machine_csv, "Eyy(%)")?,
    );
    let (v_exx, v_eyy) = (column(&ve_csv, "Exx(%)")?, column(&ve_csv, "Eyy(%)")?);
    let (Some(me), Some(ve)) = (m_exx.last(), v_exx.last()) else {
        bail!("no strain recorded")
    };
    let (my, vy) = (
        m_eyy.last().copied().unwrap_or(f64::NAN),
        v_eyy.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "final Exx: machine {me:.4} %, video extensometry {ve:.4} % (difference {:+.4} %)",
        ve - me
    );
    println!(
        "final Eyy: machine {my:.4} %, video extensometry {vy:.4} % (difference {:+.4} %)",
        vy - my
    );
    println!(
        "{} strain measurements, results in {}",
        v_exx.len(),
        out.display()
    );
    if (ve - me).abs() > 0.01 || (vy - my).abs() > 0.01 {
        bail!("video extensometry differs from the imposed strain by more than 0.01 %");
    }
    Ok(())
}
