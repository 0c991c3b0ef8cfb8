//! The report objects validate with dicom3tools (dciodvfy) and read back
//! with DCMTK (dsrdump); UIDs are deterministic.

use std::path::Path;
use std::process::Command;

use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use phantom::{Case, Grade, Label, Mix};
use report::{
    Device, HeatmapCapture, ImageRef, ImageResult, LabelResult, ModelInfo, Priority, Report,
    SrClass,
};

fn source() -> (InMemDicomObject, ImageRef, String) {
    let case = Case::sample(5, &Mix::Exactly(vec![(Label::Pneumothorax, Grade::Severe)]));
    let image = case.render(4.0, false);
    let obj = phantom::dicom::instance(&case, &image, 1).unwrap();
    let s = |t| {
        obj.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string()
    };
    let r = ImageRef {
        series_uid: s(tags::SERIES_INSTANCE_UID),
        sop_class_uid: s(tags::SOP_CLASS_UID),
        sop_instance_uid: s(tags::SOP_INSTANCE_UID),
    };
    let study = s(tags::STUDY_INSTANCE_UID);
    (obj.into_inner(), r, study)
}

fn device() -> Device {
    Device {
        manufacturer: "triaged project".into(),
        name: "triaged".into(),
        version: "0.1.0".into(),
        uid: "2.25.1234567".into(),
    }
}

fn report<'a>(src: &'a InMemDicomObject, image: &ImageRef, study: &str, p: f32) -> Report<'a> {
    Report {
        source: src,
        study_uid: study.into(),
        evidence: vec![image.clone()],
        results: vec![ImageResult {
            image: image.clone(),
            findings: vec![
                LabelResult {
                    label: "Pneumothorax".into(),
                    probability: p,
                    threshold: 0.3,
                    flagged: p >= 0.3,
                    heatmap: Some("occlusion sensitivity (8 x 8 grid)".into()),
                },
                LabelResult {
                    label: "Effusion".into(),
                    probability: 0.02,
                    threshold: 0.4,
                    flagged: false,
                    heatmap: None,
                },
                LabelResult {
                    label: "Odd label/x".into(),
                    probability: 0.5,
                    threshold: 0.5,
                    flagged: true,
                    heatmap: None,
                },
            ],
        }],
        model: ModelInfo {
            name: "demo-cxr".into(),
            version: "1".into(),
            weights_sha256: "ab".repeat(32),
            intended_use: "demonstration on synthetic data — not for diagnostic use".into(),
            validated: false,
        },
        priority: Priority::Urgent,
        predecessor: None,
        device: device(),
        content_date: "20261129".into(),
        content_time: "120000".into(),
    }
}

fn dciodvfy_errors(path: &Path) -> Vec<String> {
    let out = Command::new("dciodvfy")
        .arg(path)
        .output()
        .expect("dciodvfy runs");
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.starts_with("Error"))
        .map(str::to_string)
        .collect()
}

#[test]
fn the_structured_report_validates_and_reads_back() {
    let (src, image, study) = source();
    let dir = tempfile::tempdir().unwrap();
    for class in [SrClass::Comprehensive3d, SrClass::Comprehensive] {
        let r = report(&src, &image, &study, 0.91);
        let obj = r.build(class, 1).unwrap();
        let path = dir.path().join("sr.dcm");
        obj.write_to_file(&path).unwrap();
        let errors = dciodvfy_errors(&path);
        assert!(errors.is_empty(), "{class:?}: {errors:#?}");
        let out = Command::new("dsrdump")
            .arg("+Pl")
            .arg(&path)
            .output()
            .expect("dsrdump runs");
        let tree = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{tree}");
        for expected in [
            "Imaging Measurement Report",
            "Pneumothorax",
            "Present",
            "Absent",
            "Probability of finding",
            "0.910000",
            "demo-cxr",
            "Urgent",
            "not for diagnostic use",
            "Pleural effusion",
            "L-ODD-LABEL-X",
            "Heatmap method",
            "occlusion sensitivity (8 x 8 grid)",
        ] {
            assert!(tree.contains(expected), "{expected} not in\n{tree}");
        }
        assert_eq!(tree.matches("Heatmap method").count(), 1, "{tree}");
        // Patient and study copied from the source.
        let get = |o: &InMemDicomObject, t| o.element(t).unwrap().to_str().unwrap().to_string();
        assert_eq!(get(&obj, tags::PATIENT_ID), get(&src, tags::PATIENT_ID));
        assert_eq!(get(&obj, tags::STUDY_INSTANCE_UID), study);
        assert!(
            obj.element(tags::REFERENCED_REQUEST_SEQUENCE).is_ok(),
            "accession present"
        );
    }
}

#[test]
fn uids_are_a_function_of_the_content() {
    let (src, image, study) = source();
    let a = report(&src, &image, &study, 0.91);
    let b = report(&src, &image, &study, 0.91);
    assert_eq!(
        a.sop_instance_uid(SrClass::Comprehensive3d),
        b.sop_instance_uid(SrClass::Comprehensive3d)
    );
    assert_ne!(
        a.sop_instance_uid(SrClass::Comprehensive3d),
        a.sop_instance_uid(SrClass::Comprehensive)
    );
    let c = report(&src, &image, &study, 0.5);
    assert_ne!(
        a.sop_instance_uid(SrClass::Comprehensive3d),
        c.sop_instance_uid(SrClass::Comprehensive3d)
    );
    assert_eq!(a.series_uid(), c.series_uid());
    // A re-run references its predecessor.
    let mut d = report(&src, &image, &study, 0.5);
    d.predecessor = Some(ImageRef {
        series_uid: a.series_uid(),
        sop_class_uid: SrClass::Comprehensive3d.uid().into(),
        sop_instance_uid: a.sop_instance_uid(SrClass::Comprehensive3d),
    });
    let obj = d.build(SrClass::Comprehensive3d, 2).unwrap();
    assert!(obj.element(tags::PREDECESSOR_DOCUMENTS_SEQUENCE).is_ok());
    let dir = tempfile::tempdir().unwrap();
    obj.write_to_file(dir.path().join("r.dcm")).unwrap();
    assert!(dciodvfy_errors(&dir.path().join("r.dcm")).is_empty());
}

#[test]
fn the_heatmap_capture_validates_and_carries_its_label() {
    let (src, image, study) = source();
    let (w, h) = (320usize, 256usize);
    let rgb: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % 256) as u8, 64, 128])
        .collect();
    let hc = HeatmapCapture {
        source: &src,
        study_uid: study,
        image,
        finding: "Pneumothorax".into(),
        method: "class activation map".into(),
        model_name: "demo-cxr".into(),
        model_version: "1".into(),
        device: device(),
        columns: w,
        rows: h,
        rgb: rgb.clone(),
        content_date: "20261129".into(),
        content_time: "120000".into(),
    };
    assert_eq!(hc.label(), "AI heatmap - Pneumothorax - not for diagnosis");
    let obj = hc.build(1).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sc.dcm");
    obj.write_to_file(&path).unwrap();
    let errors = dciodvfy_errors(&path);
    assert!(errors.is_empty(), "{errors:#?}");
    let burned = obj
        .element(tags::BURNED_IN_ANNOTATION)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(burned.trim(), "YES");
    let derivation = obj
        .element(tags::DERIVATION_DESCRIPTION)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        derivation.contains("class activation map for Pneumothorax"),
        "{derivation}"
    );
    // The label changed pixels in the top-left corner only.
    let px = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let changed = |r0: usize, r1: usize| {
        (r0..r1)
            .flat_map(|r| (0..w).map(move |c| 3 * (r * w + c)))
            .filter(|&k| px[k..k + 3] != rgb[k..k + 3])
            .count()
    };
    assert!(changed(0, 30) > 500, "label not drawn");
    assert_eq!(changed(60, h), 0);
    assert!(HeatmapCapture {
        rgb: vec![0; 5],
        ..hc.clone()
    }
    .build(1)
    .is_err());
}

/// Two slices of a phantom head CT as report sources.
fn head_ct_slices() -> (InMemDicomObject, Vec<ImageRef>, String) {
    use phantom::head::{HeadCase, HeadMix};
    let case = HeadCase::sample(
        3,
        &HeadMix {
            matrix: 64,
            ..HeadMix::default()
        },
    );
    let mut refs = Vec::new();
    let mut first = None;
    for index in [10, 14] {
        let slice = case.render_slice(index);
        let obj = phantom::dicom::head_ct_instance(&case, &slice, index as u32 + 1).unwrap();
        let s = |t| attrs::text(&obj, t).unwrap();
        refs.push(ImageRef {
            series_uid: s(tags::SERIES_INSTANCE_UID),
            sop_class_uid: s(tags::SOP_CLASS_UID),
            sop_instance_uid: s(tags::SOP_INSTANCE_UID),
        });
        first.get_or_insert(obj.into_inner());
    }
    let src = first.unwrap();
    let study = attrs::text(&src, tags::STUDY_INSTANCE_UID).unwrap();
    (src, refs, study)
}

#[test]
fn a_head_ct_report_names_the_procedure_the_types_and_the_key_slice() {
    let (src, slices, study) = head_ct_slices();
    let finding = |label: &str, probability: f32, threshold: f32| LabelResult {
        label: label.into(),
        probability,
        threshold,
        flagged: probability >= threshold,
        heatmap: None,
    };
    let mut r = report(&src, &slices[0], &study, 0.0);
    r.evidence = slices.clone();
    // The subdural finding is more probable, but the haemorrhage lies
    // further above its threshold: its slice is the key slice.
    r.results = vec![
        ImageResult {
            image: slices[0].clone(),
            findings: vec![finding("Subdural haemorrhage", 0.97, 0.9)],
        },
        ImageResult {
            image: slices[1].clone(),
            findings: vec![
                finding("Intracranial haemorrhage", 0.9, 0.3),
                finding("Epidural haemorrhage", 0.1, 0.5),
            ],
        },
    ];
    assert_eq!(r.key_image(), Some(&slices[1]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sr.dcm");
    r.build(SrClass::Comprehensive3d, 1)
        .unwrap()
        .write_to_file(&path)
        .unwrap();
    let errors = dciodvfy_errors(&path);
    assert!(errors.is_empty(), "{errors:#?}");
    let out = Command::new("dsrdump")
        .args(["+Pl", "+Pu"])
        .arg(&path)
        .output()
        .unwrap();
    let tree = String::from_utf8_lossy(&out.stdout);
    for expected in [
        "Computed tomography of head",
        "Intracranial hemorrhage",
        "Subdural hemorrhage",
        "L-EPIDURAL-HAEMO",
        "Key image",
    ] {
        assert!(tree.contains(expected), "{expected} not in\n{tree}");
    }
    assert!(!tree.contains("Plain chest X-ray"), "{tree}");
    // The key image item names the key slice.
    let key = tree.lines().find(|l| l.contains("Key image")).unwrap();
    assert!(key.contains(&slices[1].sop_instance_uid), "{key}\n{tree}");
}

#[test]
fn the_result_document_states_what_the_sr_states() {
    let (src, slices, study) = head_ct_slices();
    let finding = |label: &str, probability: f32| LabelResult {
        label: label.into(),
        probability,
        threshold: 0.5,
        flagged: probability >= 0.5,
        heatmap: None,
    };
    let mut r = report(&src, &slices[0], &study, 0.0);
    r.results = vec![
        ImageResult {
            image: slices[0].clone(),
            findings: vec![finding("Intracranial haemorrhage", 0.4)],
        },
        ImageResult {
            image: slices[1].clone(),
            findings: vec![finding("Intracranial haemorrhage", 0.8)],
        },
    ];
    let doc = report::StudyResult::of(&r, SrClass::Comprehensive3d);
    let sr = r.build(SrClass::Comprehensive3d, 1).unwrap();
    assert_eq!(
        doc.report_uid,
        attrs::text(&sr, tags::SOP_INSTANCE_UID).unwrap()
    );
    assert_eq!(doc.study.instance_uid, study);
    assert_eq!(doc.patient.id, attrs::text(&src, tags::PATIENT_ID).unwrap());
    assert_eq!(doc.study.procedure.meaning, "Computed tomography of head");
    assert_eq!(doc.priority, report::result::PriorityName::Urgent);
    // One finding per label: its most probable slice, flagged if any is.
    assert_eq!(doc.findings.len(), 1);
    let f = &doc.findings[0];
    assert_eq!((f.probability, f.flagged), (0.8, true));
    assert_eq!(f.image_uid, slices[1].sop_instance_uid);
    assert_eq!(f.code.code, "1386000");
    assert!(doc.producer.intended_use.contains("not for diagnostic use"));
}
