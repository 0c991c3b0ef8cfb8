//! The head CT phantom: tissues in Hounsfield units, each bleed type's
//! density, extent and mask, mass effect, mimics, and the CT instances
//! (geometry and rescale read back by the imaging crate, validated by
//! dciodvfy).

use phantom::head::{haemorrhage, Bleed, HeadCase, HeadMix, Mimic, Size};
use phantom::Rng;

/// A clean head (no bleed, no mimic) at `matrix` pixels.
fn clean(seed: u64, matrix: usize) -> HeadCase {
    let mix = HeadMix {
        bleed: 0.0,
        mimic: 0.0,
        thin: 0.0,
        matrix,
    };
    HeadCase::sample(seed, &mix)
}

#[test]
fn tissues_have_their_hounsfield_units() {
    let mut case = clean(11, 128);
    case.scale = 1.0;
    let hu = |p: [f64; 3]| case.hu_at(p).0;
    assert_eq!(hu([0.0, 0.0, 150.0]), -1000.0, "air above the vertex");
    assert!(hu([0.0, -86.0 - 4.0, 12.0]) > 600.0, "frontal bone");
    assert!(
        (0.0..12.0).contains(&hu([9.0, 4.0, 22.0])),
        "lateral ventricle: CSF"
    );
    assert!(
        (25.0..32.0).contains(&hu([30.0, -30.0, 40.0])),
        "white matter"
    );
    assert!((35.0..42.0).contains(&hu([18.0, 2.0, 8.0])), "deep grey");
    assert!(hu([0.0, -84.0, -8.0]) < -800.0, "frontal sinus: air");
    // A rendered mid slice: brain parenchyma around 30 HU with noise.
    let mid = case
        .slice_positions()
        .iter()
        .position(|&z| z > 40.0)
        .unwrap();
    let s = case.render_slice(mid);
    let n = case.matrix;
    let centre: Vec<i16> = (n / 2 - 8..n / 2 + 8)
        .flat_map(|r| (n / 2 - 30..n / 2 - 14).map(move |c| (r, c)))
        .map(|(r, c)| s.hu[r * n + c])
        .collect();
    let mean = centre.iter().map(|&v| v as f64).sum::<f64>() / centre.len() as f64;
    assert!((22.0..40.0).contains(&mean), "parenchyma {mean}");
    assert!(s.masks.is_empty());
}

/// Every type at every size, on the slice through it at a scanner's
/// 512 matrix: acute blood density, a mask, and an area that grows with
/// the size.
#[test]
fn each_bleed_type_is_dense_masked_and_graded() {
    for kind in Bleed::ALL {
        let mut areas = Vec::new();
        for size in Size::ALL {
            let mut case = clean(21, 512);
            case.scale = 1.0;
            case.thickness = 5.0;
            let mut rng = Rng::new(7);
            let bleed = haemorrhage(&mut rng, kind, size, 1.0);
            // Blood in the ventricles lies at their level.
            let z = if kind == Bleed::Intraventricular {
                22.0
            } else {
                bleed.centre[2]
            };
            case.bleeds = vec![bleed];
            let positions = case.slice_positions();
            let index = (0..positions.len())
                .min_by(|&a, &b| {
                    (positions[a] - z)
                        .abs()
                        .total_cmp(&(positions[b] - z).abs())
                })
                .unwrap();
            let s = case.render_slice(index);
            let (_, mask) = &s.masks[0];
            let plain = {
                let mut c = case.clone();
                c.bleeds.clear();
                c.render_slice(index)
            };
            let masked = |hu: &[i16]| -> Vec<i16> {
                let mut v: Vec<i16> = mask
                    .iter()
                    .zip(hu)
                    .filter(|(m, _)| **m)
                    .map(|(_, &v)| v)
                    .collect();
                v.sort();
                v
            };
            let inside = masked(&s.hu);
            assert!(!inside.is_empty(), "{kind:?} {size:?}: no mask");
            let median = inside[inside.len() / 2];
            let rise: Vec<i16> = {
                let mut d: Vec<i16> = mask
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| **m)
                    .map(|(k, _)| s.hu[k] - plain.hu[k])
                    .collect();
                d.sort();
                d
            };
            // Where it is, the bleed makes the image denser than the same
            // head without it.
            assert!(
                rise[rise.len() / 2] >= 10,
                "{kind:?} {size:?}: median rise {}",
                rise[rise.len() / 2]
            );
            // Partial volume and the kernel mix thin bleeds with the bone
            // or CSF beside them; the bulk of a clot stays acute-blood
            // dense (sulcal blood in a 5 mm slice is diluted: only its
            // rise is asserted).
            if kind != Bleed::Subarachnoid {
                assert!(
                    (45..=95).contains(&median),
                    "{kind:?} {size:?}: median {median} HU"
                );
            }
            areas.push(inside.len());
        }
        assert!(
            areas[0] < areas[1] && areas[1] < areas[2],
            "{kind:?}: areas {areas:?}"
        );
    }
}

#[test]
fn large_bleeds_push_the_midline_away() {
    let mix = HeadMix {
        bleed: 1.0,
        mimic: 0.0,
        thin: 0.0,
        matrix: 64,
    };
    let mut seen = 0;
    for seed in 0..400 {
        let case = HeadCase::sample(seed, &mix);
        let massive = case.bleeds.iter().find(|b| {
            b.size == Size::Large
                && matches!(
                    b.kind,
                    Bleed::Intraparenchymal | Bleed::Subdural | Bleed::Epidural
                )
        });
        match massive {
            Some(b) => {
                assert!(
                    case.shift * b.side < 0.0,
                    "seed {seed}: shift {} side {}",
                    case.shift,
                    b.side
                );
                assert!((4.0..=10.0).contains(&case.shift.abs()));
                seen += 1;
            }
            None => assert_eq!(case.shift, 0.0, "seed {seed}"),
        }
    }
    assert!(seen > 20, "{seen}");
}

#[test]
fn mimics_are_dense_but_not_bleeding() {
    let mut case = clean(31, 128);
    case.scale = 1.0;
    let pineal = [0.0, 22.0, 6.0];
    let before = case.hu_at(pineal).0;
    case.mimics = vec![Mimic::PinealCalcification, Mimic::FalxCalcification];
    let (after, bleeds) = case.hu_at(pineal);
    assert!(before < 60.0 && after > 150.0, "{before} -> {after}");
    assert!(bleeds.is_empty());
    assert!(
        case.hu_at([0.0, -25.0, 35.0]).0 > 150.0,
        "falx calcification"
    );
    for i in 0..case.slice_positions().len() {
        assert!(case.render_slice(i).masks.is_empty());
    }
}

/// The instances a PACS gets: rescale back to the same HU, positions one
/// slice thickness apart, a valid CT Image IOD.
#[test]
fn slices_are_valid_ct_instances_in_hounsfield_units() {
    let dir = tempfile::tempdir().unwrap();
    for (seed, signed) in [(3u64, false), (5, true)] {
        let mut case = clean(seed, 64);
        case.vendor = *phantom::head::CT_VENDORS
            .iter()
            .find(|v| v.signed == signed)
            .unwrap();
        let mut positions = Vec::new();
        for (i, number) in [(3usize, 4u32), (4, 5)] {
            let slice = case.render_slice(i);
            let obj = phantom::dicom::head_ct_instance(&case, &slice, number).unwrap();
            let path = dir.path().join(format!("{seed}-{number}.dcm"));
            obj.write_to_file(&path).unwrap();
            let frames = imaging::Frames::decode(&dicom_object::open_file(&path).unwrap()).unwrap();
            let hu = frames.modality(0).unwrap();
            assert_eq!(hu.len(), slice.hu.len());
            assert!(hu
                .iter()
                .zip(&slice.hu)
                .all(|(a, &b)| (*a as f64 - b as f64).abs() < 1e-6));
            positions.push(slice.z);
            let out = std::process::Command::new("dciodvfy")
                .arg(&path)
                .output()
                .unwrap();
            let report = String::from_utf8_lossy(&out.stderr).to_string();
            let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
            assert!(errors.is_empty(), "{report}");
        }
        assert!((positions[1] - positions[0] - case.thickness).abs() < 1e-9);
    }
}
