//! Head CT haemorrhage triage end to end: the demo's two phantom head CT
//! studies sent by DCMTK's storescu, analysed by the bundled demo-ich
//! model, and the report in Orthanc: urgent with the bleed's type and the
//! key slice (a slice through the bleed) for one, routine for the normal
//! head with a calcified pineal gland.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

const SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";
const SECONDARY_CAPTURE: &str = "1.2.840.10008.5.1.4.1.1.7";

/// Every content item of an SR's tree (Orthanc's simplified tags), depth
/// first.
fn items(node: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    if let Some(seq) = node["ContentSequence"].as_array() {
        for item in seq {
            out.push(item.clone());
            items(item, out);
        }
    }
}

fn concept(item: &serde_json::Value) -> &str {
    item["ConceptNameCodeSequence"][0]["CodeValue"]
        .as_str()
        .unwrap_or("")
}

/// The SR of a study in the PACS, as simplified tags.
fn report(pacs: &Orthanc, study: &str) -> serde_json::Value {
    pacs.instances(study, Some("SR")).remove(0)
}

#[test]
fn a_head_ct_bleed_is_urgent_with_its_type_and_key_slice_and_a_normal_head_is_routine() {
    let data = tempfile::tempdir().unwrap();
    let out = data.path().join("head");
    let made = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args([
            "phantom",
            "--anatomy",
            "head-ct",
            "--set",
            "demo",
            "--count",
            "2",
            "--masks",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let csv = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    let (bleed, normal) = (&rows[0], &rows[1]);
    assert_eq!(bleed[col("intracranial_haemorrhage")], "1", "{csv}");
    assert_eq!(normal[col("intracranial_haemorrhage")], "0", "{csv}");
    assert_eq!(normal[col("pineal_calcification")], "1", "{csv}");
    let kind = [
        "intraparenchymal",
        "subdural",
        "epidural",
        "subarachnoid",
        "intraventricular",
    ]
    .into_iter()
    .find(|k| bleed[col(&format!("{k}_haemorrhage"))] == "1")
    .unwrap();

    let port = free_port();
    let d = Daemon::start(
        "",
        &format!(
            "[[destinations]]\nname = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {port}\n\n[pipeline]\nquiet_secs = 1\n\n[models]\ndir = \"{}\"\n",
            Orthanc::AE,
            repo_root().join("models").display()
        ),
    );
    let pacs = Orthanc::start_with(port, &[], true);
    let files: Vec<PathBuf> = files_under(&out)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let sent = d.storescu(&[], &refs);
    assert!(sent.status.success(), "{}", text(&sent));

    let (bleed_uid, normal_uid) = (
        bleed[col("study_instance_uid")],
        normal[col("study_instance_uid")],
    );
    for uid in [bleed_uid, normal_uid] {
        wait_until("the report in the PACS", Duration::from_secs(120), || {
            pacs.sop_classes(uid).iter().any(|c| c == SR)
        });
    }

    // The bleed: urgent, its type present, the key slice through it.
    let sr = report(&pacs, bleed_uid);
    let mut all = Vec::new();
    items(&sr, &mut all);
    let code = |item: &serde_json::Value| {
        item["ConceptCodeSequence"][0]["CodeValue"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let priority = all.iter().find(|i| concept(i) == "P-004").unwrap();
    assert_eq!(code(priority), "P-010", "urgent: {sr}");
    let present: Vec<String> = all
        .iter()
        .filter(|i| code(i) == "52101004")
        .map(|i| {
            i["ConceptNameCodeSequence"][0]["CodeMeaning"]
                .as_str()
                .unwrap()
                .to_lowercase()
        })
        .collect();
    assert!(
        present.iter().any(|m| m.contains("intracranial")),
        "{present:?}"
    );
    let type_meaning = match kind {
        "intraparenchymal" => "cerebral",
        k => k,
    };
    assert!(
        present.iter().any(|m| m.contains(type_meaning)),
        "{kind}: {present:?}"
    );
    let procedure = all.iter().find(|i| concept(i) == "121058").unwrap();
    assert_eq!(code(procedure), "303653007", "CT of head");
    let key = all
        .iter()
        .find(|i| concept(i) == "P-007")
        .expect("a key image");
    let key_uid = key["ReferencedSOPSequence"][0]["ReferencedSOPInstanceUID"]
        .as_str()
        .unwrap()
        .to_string();
    let key_file = files.iter().find(|f| sop_uid(f) == key_uid).unwrap();
    let stem = key_file.file_stem().unwrap().to_string_lossy().to_string();
    let through_bleed = files_under(key_file.parent().unwrap()).iter().any(|p| {
        let name = p.file_name().unwrap().to_string_lossy();
        name.starts_with(&format!("{stem}-")) && name.ends_with(".png")
    });
    assert!(through_bleed, "key slice {stem} has no bleed on it");
    // The thinnest series is read: with the routine series only, that one.
    let read_prefix = if bleed[col("thin_slices")].is_empty() {
        "s2-"
    } else {
        "s3-"
    };
    assert!(stem.starts_with(read_prefix), "{stem}");
    // A heatmap capture goes with it.
    assert!(
        pacs.sop_classes(bleed_uid)
            .iter()
            .any(|c| c == SECONDARY_CAPTURE),
        "a heatmap capture in the PACS"
    );

    // The normal head with a calcified pineal gland: routine.
    let sr = report(&pacs, normal_uid);
    let mut all = Vec::new();
    items(&sr, &mut all);
    let priority = all.iter().find(|i| concept(i) == "P-004").unwrap();
    assert_eq!(code(priority), "P-012", "routine: {sr}");
    assert!(
        !all.iter().any(|i| code(i) == "52101004"),
        "nothing present on the normal head: {sr}"
    );
    // The chest model never saw a head CT.
    let models = d.sql("SELECT DISTINCT model FROM findings");
    assert_eq!(text(&models).trim(), "demo-ich", "{}", text(&models));
}
