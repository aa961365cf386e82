//! Video extensometry against the strained-sample camera: the imposed strain is known, so
//! the measured one is checked against it (pure algorithm, no fork). These live here rather
//! than in `crabby-blocks` because they need `crabby-hardware`'s simulated camera, and the
//! two crates never depend on each other.

use crabby::camera::{Camera, PixelFormat};
use crabby_blocks::camera::{
    FrameProcessor, ImageView, LostSpot, Processed, VideoExtenso, VideoExtensoConfig,
    VideoExtensoTool,
};
use crabby_hardware::camera::StrainedSampleCamera;

fn render(cam: &mut StrainedSampleCamera, exx: f64, eyy: f64, buf: &mut [u8]) {
    cam.set_strain(exx, eyy);
    cam.render(buf);
}

#[test]
fn strain_within_0_01_percent_over_0_to_5_percent() {
    let (w, h) = (640usize, 480usize);
    let mut cam = StrainedSampleCamera::new(w as u32, h as u32, 9.0).unwrap();
    let mut buf = vec![0u8; w * h];
    let mut tool = VideoExtensoTool::new(VideoExtensoConfig::default()).unwrap();
    render(&mut cam, 0.0, 0.0, &mut buf);
    let img = ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap();
    assert_eq!(tool.detect(&img).unwrap().len(), 4);
    let (l0x, l0y) = tool.l0();
    assert!(
        (l0x - 0.7 * w as f64).abs() < 0.02 && (l0y - 0.7 * h as f64).abs() < 0.02,
        "{l0x} {l0y}"
    );
    let mut worst: f64 = 0.0;
    // A tensile path: Exx up to 5 %, Eyy contracting (Poisson 0.3), by small steps so the
    // tracker follows, then a few jumps back.
    let mut steps: Vec<f64> = (0..=100).map(|i| i as f64 * 0.05).collect();
    steps.extend([4.0, 3.1, 2.0, 1.234, 0.5, 0.0]);
    for exx in steps {
        let eyy = -0.3 * exx;
        render(&mut cam, exx, eyy, &mut buf);
        let img = ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap();
        let s = tool.track(&img).unwrap();
        worst = worst
            .max((s.exx_pct - exx).abs())
            .max((s.eyy_pct - eyy).abs());
    }
    println!("worst strain error over 0..5 %: {worst:.2e} %");
    assert!(worst < 0.01, "worst strain error {worst} % (limit 0.01 %)");
}

#[test]
fn strain_with_speckle_white_spots_and_two_spots() {
    let (w, h) = (500usize, 300usize);
    let mut cam = StrainedSampleCamera::new(w as u32, h as u32, 8.0)
        .unwrap()
        .spots(&[(-180.0, 0.0), (180.0, 0.0)])
        .speckle(300, 3)
        .unwrap()
        .white_spots();
    let mut buf = vec![0u8; w * h];
    let cfg = VideoExtensoConfig {
        white_spots: true,
        num_spots: Some(2),
        ..Default::default()
    };
    let mut tool = VideoExtensoTool::new(cfg).unwrap();
    for i in 0..=25 {
        let exx = i as f64 * 0.2;
        render(&mut cam, exx, 0.0, &mut buf);
        let img = ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap();
        let s = tool.track(&img).unwrap();
        assert!(
            (s.exx_pct - exx).abs() < 0.01,
            "exx {exx}: measured {}",
            s.exx_pct
        );
        assert!(s.eyy_pct.is_nan(), "two horizontal spots give no Eyy");
    }
}

#[test]
fn lost_spot_is_an_error_not_a_value() {
    let (w, h) = (400usize, 300usize);
    let mut cam = StrainedSampleCamera::new(w as u32, h as u32, 8.0).unwrap();
    let mut buf = vec![0u8; w * h];
    let mut tool = VideoExtensoTool::new(VideoExtensoConfig::default()).unwrap();
    render(&mut cam, 0.0, 0.0, &mut buf);
    tool.detect(&ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap())
        .unwrap();
    // A jump of 30 % moves the outer spots ~40 px: beyond the tracking windows.
    render(&mut cam, 30.0, 0.0, &mut buf);
    let e = tool
        .track(&ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap())
        .unwrap_err();
    assert!(e.description().contains("lost"), "{e}");
    // A blank image: nothing to detect.
    buf.fill(200);
    let mut t2 = VideoExtensoTool::new(VideoExtensoConfig::default()).unwrap();
    assert!(t2
        .detect(&ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap())
        .is_err());
    assert!(VideoExtensoTool::new(VideoExtensoConfig {
        num_spots: Some(5),
        ..Default::default()
    })
    .is_err());
}

#[test]
fn processor_sends_labels_and_honours_on_lost() {
    let (w, h) = (400usize, 300usize);
    let mut cam = StrainedSampleCamera::new(w as u32, h as u32, 8.0)
        .unwrap()
        .fps(0.0);
    let mut buf = vec![0u8; w * h];
    let mut ve = VideoExtenso::new().on_lost(LostSpot::StopTest);
    let info = cam.grab(&mut buf).unwrap().unwrap();
    let img = ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap();
    let Processed::Send(s) = ve.process(&info, &img, 0.5).unwrap() else {
        panic!()
    };
    assert_eq!(s.get_f64("Exx(%)"), Some(0.0));
    assert_eq!(
        s.get("Coord(px)")
            .and_then(|v| v.as_array())
            .map(|a| a.len()),
        Some(8)
    );
    cam.set_strain(1.0, 0.0);
    let info = cam.grab(&mut buf).unwrap().unwrap();
    let img = ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap();
    let Processed::Send(s) = ve.process(&info, &img, 0.6).unwrap() else {
        panic!()
    };
    assert!((s.get_f64("Exx(%)").unwrap() - 1.0).abs() < 0.01);
    buf.fill(210);
    let img = ImageView::new(&buf, w, h, PixelFormat::Mono8).unwrap();
    assert!(matches!(
        ve.process(&info, &img, 0.7).unwrap(),
        Processed::Stop
    ));
}
