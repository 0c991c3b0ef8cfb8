//! The phantom's promises: determinism, ground truth that matches what is
//! drawn, and instances that decode and validate as real CR/DX objects.

use phantom::{Case, Grade, Label, Mix};

#[test]
fn the_same_seed_draws_the_same_radiograph() {
    let a = Case::sample(42, &Mix::default()).render(2.0, true);
    let b = Case::sample(42, &Mix::default()).render(2.0, true);
    assert_eq!(a.pixels, b.pixels);
    let c = Case::sample(43, &Mix::default()).render(2.0, false);
    assert_ne!(a.pixels, c.pixels);
}

#[test]
fn every_present_finding_has_a_mask_and_changes_the_image() {
    for label in Label::ALL {
        for grade in Grade::ALL {
            let seed = 7 + label.index() as u64;
            let sick = Case::sample(seed, &Mix::Exactly(vec![(label, grade)]));
            let well = Case::sample(seed, &Mix::Exactly(vec![]));
            assert_eq!(sick.grade(label), Some(grade));
            assert_eq!(
                sick.subject, well.subject,
                "findings must not change the patient"
            );
            let (s, w) = (sick.render(2.0, true), well.render(2.0, true));
            let (_, mask) = s.masks.iter().find(|(l, _)| *l == label).expect("mask");
            let area = mask.iter().filter(|m| **m).count();
            assert!(area > 0, "{label:?} {grade:?}: empty mask");
            assert!(w.masks.is_empty());
            // Inside the mask the image differs from the healthy twin.
            let differ = mask
                .iter()
                .zip(s.pixels.iter().zip(&w.pixels))
                .filter(|(m, (a, b))| **m && a != b)
                .count();
            // (An enlarged heart differs from the normal one at its border;
            // every other finding all over its mask.)
            let share = if label == Label::Cardiomegaly { 10 } else { 2 };
            assert!(
                differ * share > area,
                "{label:?} {grade:?}: {differ} of {area} mask pixels differ"
            );
        }
    }
}

#[test]
fn cardiomegaly_is_a_cardiothoracic_ratio_above_one_half() {
    for seed in 0..200 {
        let case = Case::sample(seed, &Mix::default());
        let enlarged = case.grade(Label::Cardiomegaly).is_some();
        assert_eq!(case.cardiothoracic_ratio() > 0.5, enlarged, "seed {seed}");
    }
}

#[test]
fn the_population_varies_as_documented() {
    let cases: Vec<Case> = (0..600).map(|s| Case::sample(s, &Mix::default())).collect();
    let share = |f: &dyn Fn(&Case) -> bool| {
        cases.iter().filter(|c| f(c)).count() as f64 / cases.len() as f64
    };
    for label in Label::ALL {
        let p = share(&|c| c.grade(label).is_some());
        assert!((0.22..0.38).contains(&p), "{label:?} prevalence {p}");
    }
    assert!((0.4..0.6).contains(&share(&|c| c.subject.sex == phantom::Sex::Female)));
    let ap = share(&|c| c.subject.view == phantom::View::Ap);
    assert!((0.15..0.45).contains(&ap), "AP share {ap}");
    for v in phantom::VENDORS {
        assert!(share(&|c| c.subject.vendor.manufacturer == v.manufacturer) > 0.1);
    }
}

#[test]
fn instances_decode_through_the_imaging_pipeline() {
    for seed in 0..6 {
        let case = Case::sample(seed, &Mix::default());
        let image = case.render(1.0, false);
        let obj = phantom::dicom::instance(&case, &image, 1).unwrap();
        let frames = imaging::Frames::decode(&obj).unwrap();
        assert_eq!((frames.rows, frames.columns), (image.rows, image.columns));
        assert_eq!(frames.bits_stored, case.subject.vendor.bits_stored);
        assert_eq!(
            frames.photometric == imaging::Photometric::Monochrome1,
            case.subject.vendor.monochrome1
        );
        assert_eq!(frames.pixel_spacing, Some([1.0, 1.0]));
        let t = imaging::InputSpec::Xrv {
            size: 64,
            resize: imaging::Resize::Area,
        }
        .apply(&frames, 0)
        .unwrap();
        assert!(t.data.iter().all(|v| v.is_finite() && v.abs() <= 1024.0));
        // Display convention: the mediastinum (centre column) is brighter
        // than the lungs beside it in the xrv tensor, whatever the vendor's
        // photometric interpretation.
        let at = |x: usize| t.data[28 * 64 + x];
        assert!(
            at(32) > at(20) && at(32) > at(44),
            "seed {seed}: {} {} {}",
            at(20),
            at(32),
            at(44)
        );
    }
}

/// dicom3tools' validator finds no error in either IOD (it is installed by
/// scripts/setup.sh).
#[test]
fn cr_and_dx_instances_pass_dciodvfy() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for seed in 0..40 {
        let case = Case::sample(seed, &Mix::default());
        if !seen.insert(case.subject.vendor.modality) {
            continue;
        }
        let image = case.render(2.0, false);
        let path = dir.path().join(format!("{seed}.dcm"));
        phantom::dicom::instance(&case, &image, 1)
            .unwrap()
            .write_to_file(&path)
            .unwrap();
        let out = std::process::Command::new("dciodvfy")
            .arg(&path)
            .output()
            .expect("dciodvfy runs");
        let report = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
        assert!(
            errors.is_empty(),
            "{}: {errors:#?}",
            case.subject.vendor.modality
        );
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}
