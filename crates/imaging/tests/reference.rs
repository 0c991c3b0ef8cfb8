//! The imaging crate against pydicom: fixtures/imaging/reference.json, made
//! by scripts/imaging_reference.py from the files scripts/setup.sh copies to
//! fixtures/generated/imaging.

use std::path::PathBuf;

use imaging::{CtWindow, Frames, ImagingError, InputSpec, Photometric};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Files this build cannot decode yet, and why: each must fail with a
/// typed error. Remove a line when support lands; the test then demands a
/// match with pydicom.
const KNOWN_GAPS: &[(&str, &str)] = &[];

/// Float rounding: our planes are f32 (about 7 significant digits), the
/// reference float64; values reach a few thousand (HU, xrv units).
const FLOAT: f64 = 2e-3;

/// How far, in stored grey levels, a lossy file's decoded samples may be
/// from pydicom's (pylibjpeg's libjpeg, OpenJPEG and pyjpegls), and why.
/// Each bound is the largest difference over the whole frame, measured
/// once (decoders are deterministic, so it does not drift). Files not
/// listed must match exactly: every lossless file, and the lossy ones both
/// sides decode with the same library (JPEG 2000: OpenJPEG; JPEG-LS
/// near-lossless: CharLS) or convert the same way (uncompressed YBR).
const LOSSY_TOLERANCE: &[(&str, f64, &str)] = &[
    (
        "JPGExtended.dcm",
        1.0,
        "12-bit JPEG: the crate's own decoder (jpeg12.rs) against libjpeg's islow IDCT; \
         rounding differs by 1 on 1.3 % of samples",
    ),
    (
        "SC_rgb_jpeg_dcmtk.dcm",
        1.0,
        "baseline JPEG, YBR_FULL 4:4:4: jpeg-decoder's IDCT and colour conversion \
         against libjpeg's; 1 on 1 % of samples",
    ),
    (
        "examples_ybr_color.dcm",
        3.0,
        "baseline JPEG, YBR_FULL_422: chroma upsampling (libjpeg's triangular \
         filter against jpeg-decoder's) adds to the IDCT rounding at colour edges; \
         1 on 0.4 %, 2 on 0.08 %, 3 on 10 of 921 600 samples",
    ),
];

/// The tolerance of one file (0 for an exact match).
fn grey_tolerance(name: &str, lossy: bool) -> f64 {
    match LOSSY_TOLERANCE.iter().find(|(n, ..)| *n == name) {
        Some((_, tol, _)) => {
            assert!(lossy, "{name} is lossless: it must match exactly");
            *tol
        }
        None => 0.0,
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(root().join("fixtures/imaging/reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn open(name: &str) -> dicom_object::DefaultDicomObject {
    let p = root().join("fixtures/generated/imaging").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh",
        p.display()
    );
    dicom_object::open_file(&p).unwrap()
}

/// Block means on the grid the reference uses.
fn blocks(plane: &[f64], h: usize, w: usize, n: usize) -> Vec<Vec<f64>> {
    let ey: Vec<usize> = (0..=n).map(|i| i * h / n).collect();
    let ex: Vec<usize> = (0..=n).map(|j| j * w / n).collect();
    (0..n)
        .map(|i| {
            (0..n)
                .map(|j| {
                    let mut sum = 0.0;
                    for y in ey[i]..ey[i + 1] {
                        for x in ex[j]..ex[j + 1] {
                            sum += plane[y * w + x];
                        }
                    }
                    sum / ((ey[i + 1] - ey[i]) * (ex[j + 1] - ex[j])) as f64
                })
                .collect()
        })
        .collect()
}

/// Compare mean, min, max and block means, each within `tol` (absolute,
/// in the plane's own units).
fn compare(what: &str, plane: &[f64], h: usize, w: usize, n: usize, r: &Value, tol: f64) {
    let close = |a: f64, b: f64| (a - b).abs() <= tol;
    let mean = plane.iter().sum::<f64>() / plane.len() as f64;
    let min = plane.iter().cloned().fold(f64::MAX, f64::min);
    let max = plane.iter().cloned().fold(f64::MIN, f64::max);
    for (name, ours) in [("mean", mean), ("min", min), ("max", max)] {
        let theirs = r[name].as_f64().unwrap();
        assert!(
            close(ours, theirs),
            "{what}: {name} {ours} vs pydicom {theirs} (tolerance {tol})"
        );
    }
    let ours = blocks(plane, h, w, n);
    for (i, row) in r["blocks"].as_array().unwrap().iter().enumerate() {
        for (j, v) in row.as_array().unwrap().iter().enumerate() {
            let theirs = v.as_f64().unwrap();
            assert!(
                close(ours[i][j], theirs),
                "{what}: block ({i},{j}) {} vs pydicom {theirs} (tolerance {tol})",
                ours[i][j]
            );
        }
    }
}

/// The largest difference, in stored grey levels, between our decoded
/// samples of frame 0 and pydicom's on the reference's pixel grid (every
/// channel: a colour conversion or channel order error shows here).
fn grid_difference(name: &str, frame: &[i32], columns: usize, spp: usize, g: &Value) -> f64 {
    let rows: Vec<usize> = g["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let cols: Vec<usize> = g["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let theirs = g["values"].as_array().unwrap();
    assert_eq!(
        theirs.len(),
        rows.len() * cols.len() * spp,
        "{name}: grid size"
    );
    let mut worst = 0.0f64;
    let mut k = 0;
    for &y in &rows {
        for &x in &cols {
            for c in 0..spp {
                let ours = frame[(y * columns + x) * spp + c] as f64;
                worst = worst.max((ours - theirs[k].as_f64().unwrap()).abs());
                k += 1;
            }
        }
    }
    worst
}

fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[test]
fn every_reference_file_matches_pydicom() {
    let reference = reference();
    let xrv_size = reference["xrv_size"].as_u64().unwrap() as usize;
    let ct_size = reference["ct_size"].as_u64().unwrap() as usize;
    let ct_windows: Vec<CtWindow> = reference["ct_windows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| CtWindow {
            center: w[0].as_f64().unwrap(),
            width: w[1].as_f64().unwrap(),
        })
        .collect();
    let floats = |key: &str| -> Vec<f64> {
        reference[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect()
    };
    let imagenet = InputSpec::ImageNet {
        size: reference["imagenet_size"].as_u64().unwrap() as usize,
        mean: floats("imagenet_mean"),
        std: floats("imagenet_std"),
    };
    let mut checked = 0;
    for (name, r) in reference["files"].as_object().unwrap() {
        assert!(
            r.get("error").is_none(),
            "{name}: pydicom could not decode it: {}",
            r["error"]
        );
        let obj = open(name);
        let frames = match Frames::decode(&obj) {
            Ok(f) => f,
            Err(e) => {
                assert!(
                    KNOWN_GAPS.iter().any(|(n, _)| n == name),
                    "{name}: decoding failed: {e}"
                );
                assert!(
                    matches!(
                        e,
                        ImagingError::UnsupportedTransferSyntax { .. }
                            | ImagingError::Decode { .. }
                    ),
                    "{name}: untyped failure {e:?}"
                );
                assert!(
                    e.to_string()
                        .contains(r["transfer_syntax"].as_str().unwrap()),
                    "{e}"
                );
                continue;
            }
        };
        assert!(
            !KNOWN_GAPS.iter().any(|(n, _)| n == name),
            "{name} decodes now: remove it from KNOWN_GAPS"
        );
        let lossy = r["lossy"].as_bool().unwrap();
        assert_eq!(frames.rows, r["rows"].as_u64().unwrap() as usize, "{name}");
        assert_eq!(
            frames.columns,
            r["columns"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(
            frames.frames,
            r["frames"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(
            frames.samples_per_pixel,
            r["samples_per_pixel"].as_u64().unwrap() as usize,
            "{name}"
        );
        assert_eq!(
            frames.bits_stored as u64,
            r["bits_stored"].as_u64().unwrap(),
            "{name}"
        );
        let pi = match &frames.photometric {
            Photometric::Monochrome1 => "MONOCHROME1".to_string(),
            Photometric::Monochrome2 => "MONOCHROME2".to_string(),
            Photometric::Rgb => "RGB".to_string(),
            Photometric::Other(s) => s.clone(),
        };
        assert_eq!(pi, r["photometric"].as_str().unwrap(), "{name}");

        let (h, w, spp) = (frames.rows, frames.columns, frames.samples_per_pixel);
        // Files whose decoders agree exactly (every lossless file, and the
        // lossy ones decoded by the same library on both sides) match
        // sample for sample, every frame; the others within their
        // tolerance, on the grid below.
        let tol = grey_tolerance(name, lossy);
        if tol == 0.0 {
            let mut hasher = Sha256::new();
            for f in 0..frames.frames {
                for v in frames.frame(f).unwrap() {
                    hasher.update(v.to_le_bytes());
                }
            }
            let ours = format!("{:x}", hasher.finalize());
            assert_eq!(
                ours,
                r["samples_sha256"].as_str().unwrap(),
                "{name}: samples differ from pydicom's"
            );
        }
        let f0 = frames.frame(0).unwrap();
        let worst = grid_difference(name, f0, w, spp, &r["grid"]);
        assert!(
            worst <= tol,
            "{name}: a decoded sample differs from pydicom's by {worst} grey levels (tolerance {tol})"
        );
        let grey: Vec<f64> = if spp == 3 {
            f0.chunks_exact(3)
                .map(|p| (p[0] + p[1] + p[2]) as f64 / 3.0)
                .collect()
        } else {
            f0.iter().map(|&v| v as f64).collect()
        };
        // Statistics of the decoded values move at most as far as the
        // samples; float rounding adds FLOAT in each derived unit.
        compare(
            &format!("{name} raw"),
            &grey,
            h,
            w,
            8,
            &r["raw"],
            tol + FLOAT,
        );

        let maxval = ((1u64 << frames.bits_stored) - 1) as f64;
        let xrv = InputSpec::Xrv {
            size: xrv_size,
            resize: imaging::Resize::Area,
        }
        .apply(&frames, 0)
        .unwrap();
        assert_eq!(
            (xrv.channels, xrv.height, xrv.width),
            (1, xrv_size, xrv_size)
        );
        compare(
            &format!("{name} xrv"),
            &to_f64(&xrv.data),
            xrv_size,
            xrv_size,
            16,
            &r["xrv"],
            tol * 2048.0 / maxval + FLOAT,
        );

        if let Some(m) = r.get("modality") {
            // Every lossy file here has no rescale (slope 1): a grey level
            // is a modality unit.
            assert!(
                tol == 0.0
                    || frames
                        .modality(0)
                        .unwrap()
                        .iter()
                        .zip(f0.iter())
                        .all(|(m, s)| *m == *s as f32),
                "{name}: a lossy file with a rescale needs its slope in the tolerance"
            );
            compare(
                &format!("{name} modality"),
                &to_f64(&frames.modality(0).unwrap()),
                h,
                w,
                8,
                m,
                tol + FLOAT,
            );
        }
        if let Some(v) = r.get("voi_unit") {
            let gain = r.get("voi_gain").and_then(Value::as_f64);
            assert!(
                tol == 0.0 || gain.is_some(),
                "{name}: a lossy file with a VOI LUT table needs a tolerance of its own"
            );
            compare(
                &format!("{name} voi"),
                &to_f64(&frames.voi_unit(0).unwrap()),
                h,
                w,
                8,
                v,
                tol * gain.unwrap_or(0.0) + 1e-5,
            );
            // The same grey, resized, once per channel and normalised.
            let t = imagenet.apply(&frames, 0).unwrap();
            let size = imagenet.size();
            let channels = r["imagenet"].as_array().unwrap();
            assert_eq!((t.channels, channels.len()), (3, 3), "{name}");
            for (c, rc) in channels.iter().enumerate() {
                compare(
                    &format!("{name} imagenet {c}"),
                    &to_f64(&t.data[c * size * size..(c + 1) * size * size]),
                    size,
                    size,
                    8,
                    rc,
                    (tol * gain.unwrap_or(0.0) + 1e-5) / 0.224,
                );
            }
        }
        if let Some(cw) = r.get("ct_window") {
            let t = InputSpec::CtWindow {
                windows: ct_windows.clone(),
                size: ct_size,
            }
            .apply(&frames, 0)
            .unwrap();
            assert_eq!(t.channels, ct_windows.len());
            for (c, rc) in cw.as_array().unwrap().iter().enumerate() {
                let plane = &t.data[c * ct_size * ct_size..(c + 1) * ct_size * ct_size];
                compare(
                    &format!("{name} ct-window {c}"),
                    &to_f64(plane),
                    ct_size,
                    ct_size,
                    8,
                    rc,
                    1e-5,
                );
            }
        }
        checked += 1;
    }
    assert_eq!(
        checked + KNOWN_GAPS.len(),
        reference["files"].as_object().unwrap().len()
    );
}

#[test]
fn display_rendering_follows_the_voi() {
    // RG1 is MONOCHROME1: bright bone in the display must come from low
    // stored values.
    let frames = Frames::decode(&open("RG1_UNCI.dcm")).unwrap();
    let img = frames.display(0).unwrap();
    assert_eq!(
        (img.width, img.height, img.channels),
        (frames.columns, frames.rows, 1)
    );
    let unit = frames.voi_unit(0).unwrap();
    let raw = frames.frame(0).unwrap();
    let (darkest_raw, _) =
        raw.iter().enumerate().fold(
            (0, i32::MAX),
            |(bi, bv), (i, &v)| if v < bv { (i, v) } else { (bi, bv) },
        );
    assert!(
        unit[darkest_raw] >= 0.5,
        "MONOCHROME1 minimum must display bright"
    );
    assert_eq!(
        img.data[darkest_raw],
        (unit[darkest_raw].clamp(0.0, 1.0) * 255.0).round() as u8
    );
    let png = img.to_png();
    assert_eq!(&png[1..4], b"PNG");

    let rgb = Frames::decode(&open("SC_rgb_rle.dcm"))
        .unwrap()
        .display(0)
        .unwrap();
    assert_eq!(rgb.channels, 3);
    let heat = vec![0.25f32; 64];
    let over = imaging::overlay(&rgb, &heat, 8, 8, 0.4).unwrap();
    assert_eq!(
        (over.width, over.height, over.channels),
        (rgb.width, rgb.height, 3)
    );
}
