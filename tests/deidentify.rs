//! De-identification (DICOM PS3.15 Annex E, Basic Application Level
//! Confidentiality Profile): a study received with every attribute of
//! Table E.1-1 filled in is exported with `triaged export --deidentify`,
//! and every attribute of every exported file is read back with pydicom
//! (tests/peers/deid_check.py) against the table and its original; a plain
//! study's de-identified copy passes dciodvfy; burned-in captures are
//! refused; the export is in the audit trail.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use phantom::{Grade, Label};
use support::*;

const TABLE: &str = "crates/deid/profile/table-e1-1.tsv";

fn checker(args: &[&str]) -> Output {
    std::process::Command::new(python())
        .arg(repo_root().join("tests/peers/deid_check.py"))
        .args(args)
        .output()
        .unwrap()
}

fn table() -> String {
    repo_root().join(TABLE).display().to_string()
}

fn analysed(d: &Daemon, study: &str) {
    wait_until("the study analysed", Duration::from_secs(90), || {
        d.studies()
            .iter()
            .any(|s| s["study_instance_uid"] == study && s["status"] == "done")
    });
}

fn export(d: &Daemon, study: &str, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["export", "--study", study, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    d.cli(&args)
}

fn dcm_files(dir: &Path) -> Vec<PathBuf> {
    let mut v = files_under(dir);
    v.retain(|p| p.extension().is_some_and(|x| x == "dcm"));
    v
}

fn daemon() -> Daemon {
    Daemon::start(
        "",
        &format!(
            "[pipeline]\nquiet_secs = 0.5\n\n[models]\ndir = \"{}\"\n",
            repo_root().join("models").display()
        ),
    )
}

#[test]
fn an_exported_study_passes_the_profile_attribute_by_attribute() {
    let d = daemon();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (study, files) = phantom_study(w, 2027, vec![(Label::Pneumothorax, Grade::Severe)], 3);
    let stuffed = w.join("stuffed");
    let mut args = vec!["stuff".to_string(), table(), stuffed.display().to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = checker(&args);
    assert!(out.status.success(), "{}", text(&out));
    let out = d.storescu(
        &[],
        &dcm_files(&stuffed)
            .iter()
            .map(PathBuf::as_path)
            .collect::<Vec<_>>(),
    );
    assert!(out.status.success(), "{}", text(&out));
    analysed(&d, &study);

    // The originals, as exported without de-identification: the three
    // instances, the SR and the heatmap captures.
    let plain = w.join("plain");
    let out = export(&d, &study, &plain, &[]);
    assert!(out.status.success(), "{}", text(&out));
    let originals = dcm_files(&plain);
    let captures = originals
        .iter()
        .filter(|p| {
            dicom_object::open_file(p)
                .unwrap()
                .element(dicom_dictionary_std::tags::BURNED_IN_ANNOTATION)
                .is_ok_and(|e| e.to_str().unwrap().trim() == "YES")
        })
        .count();
    assert!(captures >= 1, "the flagged study has a heatmap capture");
    assert_eq!(originals.len(), 3 + 1 + captures);

    for dates in ["shift", "remove"] {
        let out_dir = w.join(format!("deid-{dates}"));
        let out = export(&d, &study, &out_dir, &["--deidentify", "--dates", dates]);
        // Some refused (the captures' pixels carry burned-in text): 2.
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert_eq!(
            text(&out).matches("burned-in annotation").count(),
            captures,
            "{}",
            text(&out)
        );
        assert_eq!(dcm_files(&out_dir).len(), 3 + 1, "the instances and the SR");
        let out = checker(&[
            "check",
            &table(),
            "--dates",
            dates,
            plain.to_str().unwrap(),
            out_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        assert!(text(&out).contains("0 problems"), "{}", text(&out));
    }

    // One key: the same UIDs every time; no key: new ones.
    let names = |dir: &Path| -> Vec<String> {
        dcm_files(dir)
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    let key = w.join("research.key");
    let (a, b) = (w.join("keyed-a"), w.join("keyed-b"));
    for dir in [&a, &b] {
        let out = export(
            &d,
            &study,
            dir,
            &["--deidentify", "--key-file", key.to_str().unwrap()],
        );
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    }
    assert_eq!(names(&a), names(&b));
    assert!(names(&a)
        .iter()
        .all(|n| !names(&w.join("deid-shift")).contains(n)));
    // An export never writes into a folder that has files.
    let out = export(&d, &study, &a, &["--deidentify"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("new or empty folder"), "{}", text(&out));

    // Every export is in the audit trail, by Study UID.
    let out = d.cli(&["audit", "export"]);
    assert!(out.status.success(), "{}", text(&out));
    let exports: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &serde_json::Value| e["action"] == "study.export")
        .collect();
    assert_eq!(exports.len(), 6, "{exports:?}");
    assert!(exports
        .iter()
        .all(|e| e["study_instance_uid"] == study.as_str()));
    assert!(exports[1]["object"]
        .as_str()
        .unwrap()
        .starts_with("de-identified (dates shift), 4 files, "));
}

#[test]
fn a_deidentified_study_still_validates() {
    let d = daemon();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (study, files) = phantom_study(w, 2028, vec![(Label::Pneumothorax, Grade::Severe)], 2);
    let out = d.storescu(&[], &files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    analysed(&d, &study);
    let out_dir = w.join("deid");
    let out = export(&d, &study, &out_dir, &["--deidentify", "--dates", "shift"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let exported = dcm_files(&out_dir);
    assert_eq!(exported.len(), 3, "two images and the SR");
    for f in &exported {
        let out = run("dciodvfy", &[f.to_str().unwrap()]);
        let report = text(&out);
        let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
        assert!(errors.is_empty(), "{}: {report}", f.display());
    }
    // The study's identity is gone from what was written.
    let detail = d.studies();
    let s = detail
        .iter()
        .find(|s| s["study_instance_uid"] == study.as_str())
        .unwrap();
    assert_eq!(s["status"], "done");
    for f in &exported {
        let obj = dicom_object::open_file(f).unwrap();
        let uid = obj
            .element(dicom_dictionary_std::tags::STUDY_INSTANCE_UID)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        assert_ne!(uid, study);
    }
}

/// The reports of a study as a destination took them: (PACS instance ID,
/// simplified tags), every study the PACS holds but `except`.
fn other_studies(pacs: &Orthanc, except: &str) -> Vec<(String, serde_json::Value)> {
    let ids = pacs.get("/instances").unwrap();
    ids.as_array()
        .unwrap()
        .iter()
        .map(|id| {
            let id = id.as_str().unwrap().to_string();
            let tags = pacs.get(&format!("/instances/{id}/tags?simplify")).unwrap();
            (id, tags)
        })
        .filter(|(_, t)| t["StudyInstanceUID"] != except)
        .collect()
}

#[test]
fn a_deidentifying_destination_gets_the_sr_alone_and_an_export_matches_it() {
    let pacs = Orthanc::start(&[]);
    let d = Daemon::start(
        "",
        &format!(
            "[pipeline]\nquiet_secs = 0.5\n\n[models]\ndir = \"{models}\"\n\n\
             [[destinations]]\nname = \"pacs\"\nae_title = \"{ae}\"\nhost = \"127.0.0.1\"\nport = {port}\n\n\
             [[destinations]]\nname = \"research\"\nae_title = \"{ae}\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             deidentify = true\ndeidentify_dates = \"shift\"\n",
            models = repo_root().join("models").display(),
            ae = Orthanc::AE,
            port = pacs.dicom_port,
        ),
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let (study, files) = phantom_study(w, 2029, vec![(Label::Pneumothorax, Grade::Severe)], 2);
    let patient = dicom_object::open_file(&files[0])
        .unwrap()
        .element(dicom_dictionary_std::tags::PATIENT_NAME)
        .unwrap()
        .to_str()
        .unwrap()
        .trim()
        .to_string();
    let out = d.storescu(&[], &files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    analysed(&d, &study);

    // The PACS has the SR and the captures in the study; the research
    // destination's SR alone, in a study of its own.
    assert!(pacs.count(&study, "SR") == 1 && pacs.count(&study, "OT") >= 1);
    let research = other_studies(&pacs, &study);
    assert_eq!(research.len(), 1, "the SR alone: {research:?}");
    let (id, tags) = &research[0];
    assert_eq!(tags["Modality"], "SR");
    assert_eq!(tags["PatientIdentityRemoved"], "YES");
    assert_ne!(tags["PatientName"], patient.as_str());
    let sr = w.join("research-sr.dcm");
    let out = run(
        "curl",
        &[
            "-sf",
            "-o",
            sr.to_str().unwrap(),
            &format!("http://127.0.0.1:{}/instances/{id}/file", pacs.http_port),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(&sr).unwrap();
    assert!(!String::from_utf8_lossy(&bytes).contains(&patient));
    assert!(!String::from_utf8_lossy(&bytes).contains(&study));
    let out = run("dciodvfy", &[sr.to_str().unwrap()]);
    assert!(
        !text(&out).lines().any(|l| l.starts_with("Error")),
        "{}",
        text(&out)
    );
    let outbox = d.cli(&["outbox", "list", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&outbox.stdout).unwrap();
    let research_rows: Vec<_> = rows
        .iter()
        .filter(|r| r["destination"] == "research")
        .collect();
    assert_eq!(research_rows.len(), 1, "{rows:?}");
    assert_eq!(research_rows[0]["state"], "delivered");

    // Images exported with the destination's key are the ones the SR
    // references, in the same de-identified study.
    let out_dir = w.join("as-research");
    let out = export(
        &d,
        &study,
        &out_dir,
        &["--deidentify", "--as-destination", "research"],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let exported: Vec<_> = dcm_files(&out_dir)
        .iter()
        .map(|p| dicom_object::open_file(p).unwrap())
        .collect();
    let uid = |o: &dicom_object::DefaultDicomObject, t| {
        o.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string()
    };
    use dicom_dictionary_std::tags;
    let sr_obj = dicom_object::open_file(&sr).unwrap();
    for o in &exported {
        assert_eq!(
            uid(o, tags::STUDY_INSTANCE_UID),
            uid(&sr_obj, tags::STUDY_INSTANCE_UID)
        );
        assert_eq!(uid(o, tags::PATIENT_ID), uid(&sr_obj, tags::PATIENT_ID));
        assert_eq!(uid(o, tags::STUDY_DATE), uid(&sr_obj, tags::STUDY_DATE));
    }
    let images: Vec<String> = exported
        .iter()
        .filter(|o| uid(o, tags::MODALITY) != "SR")
        .map(|o| uid(o, tags::SOP_INSTANCE_UID))
        .collect();
    assert_eq!(images.len(), 2);
    let sr_text = String::from_utf8_lossy(&bytes);
    for image in &images {
        assert!(
            sr_text.contains(image.as_str()),
            "the SR references {image}"
        );
    }
    // The exported SR is the very object the destination received.
    assert!(exported
        .iter()
        .any(|o| uid(o, tags::SOP_INSTANCE_UID) == uid(&sr_obj, tags::SOP_INSTANCE_UID)));
}
