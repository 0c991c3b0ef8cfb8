//! The shipped files match the code: the example configuration and the
//! compose configuration load with the real loader, the conformance
//! statement's tables are the listener's own lists, and the compose wiring
//! (Orthanc routing to triaged and back) works with real peers.

mod support;

use std::path::Path;
use std::time::Duration;

use phantom::{Grade, Label};
use support::*;

#[test]
fn the_shipped_configurations_load() {
    for file in ["config/triaged.example.toml", "deploy/docker/triaged.toml"] {
        let out = run_triaged(&[
            "config",
            "check",
            "--config",
            repo_root().join(file).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{file}: {}", text(&out));
    }
}

fn run_triaged(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn the_conformance_statement_lists_what_the_code_accepts() {
    let out = run_triaged(&["conformance"]);
    assert!(out.status.success(), "{}", text(&out));
    let generated = String::from_utf8(out.stdout).unwrap();
    let doc = std::fs::read_to_string(repo_root().join("docs/conformance.md")).unwrap();
    let begin = "<!-- BEGIN triaged conformance -->\n";
    let start = doc.find(begin).expect("the BEGIN marker") + begin.len();
    let end = doc
        .find("<!-- END triaged conformance -->")
        .expect("the END marker");
    assert!(
        doc[start..end] == generated,
        "docs/conformance.md is out of date: replace its generated section with `triaged conformance`"
    );
    // The lists are the real ones: what a peer can negotiate.
    assert!(
        generated.contains("| Computed Radiography Image Storage | `1.2.840.10008.5.1.4.1.1.1` |")
    );
    assert!(generated
        .contains("| JPEG 2000 Image Compression (Lossless Only) | `1.2.840.10008.1.2.4.90` |"));
    assert!(generated.contains("| Comprehensive 3D SR Storage | `1.2.840.10008.5.1.4.1.1.88.34` |"));
}

/// deploy/docker's triaged.toml and orthanc.json (with its Lua routing
/// script), with only addresses, ports and folders changed: a study sent
/// to Orthanc reaches triaged, and the report comes back to Orthanc once.
#[test]
fn the_compose_wiring_routes_a_study_through_orthanc_and_back() {
    let deploy = repo_root().join("deploy/docker");
    let (pacs_http, pacs_dicom, dicom, http) = (free_port(), free_port(), free_port(), free_port());

    let mut toml: toml::Value =
        toml::from_str(&std::fs::read_to_string(deploy.join("triaged.toml")).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    toml["dicom"]["listen"] = format!("127.0.0.1:{dicom}").into();
    toml["storage"]["dir"] = dir.path().join("storage").display().to_string().into();
    toml["models"]["dir"] = repo_root().join("models").display().to_string().into();
    toml["destinations"][0]["host"] = "127.0.0.1".into();
    toml["destinations"][0]["port"] = i64::from(pacs_dicom).into();
    toml["http"]["listen"] = format!("127.0.0.1:{http}").into();
    let d = Daemon::start_config(dir, &toml::to_string(&toml).unwrap(), dicom, http);

    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(deploy.join("orthanc.json")).unwrap())
            .unwrap();
    let odir = tempfile::tempdir().unwrap();
    let db = odir.path().join("db").display().to_string();
    json["StorageDirectory"] = db.clone().into();
    json["IndexDirectory"] = db.into();
    json["HttpPort"] = pacs_http.into();
    json["DicomPort"] = pacs_dicom.into();
    json["DicomModalities"]["triaged"][1] = "127.0.0.1".into();
    json["DicomModalities"]["triaged"][2] = dicom.into();
    json["LuaScripts"][0] = deploy
        .join("route-to-triaged.lua")
        .display()
        .to_string()
        .into();
    let pacs = Orthanc::start_config(odir, &json.to_string(), pacs_http, pacs_dicom);

    // A modality sends a study with a pneumothorax to the PACS.
    let cases = tempfile::tempdir().unwrap();
    let (study, files) = phantom_study(
        cases.path(),
        7171,
        vec![(Label::Pneumothorax, Grade::Severe)],
        1,
    );
    let port = pacs_dicom.to_string();
    let modality_sends = |file: &Path| {
        let out = run(
            "storescu",
            &[
                "-aet",
                "MODALITY",
                "-aec",
                "ORTHANC",
                "127.0.0.1",
                &port,
                file.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    };
    modality_sends(&files[0]);

    let reports = || pacs.count(&study, "SR");
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        reports() == 1
    });
    // Every result delivered (the job is done once the SR and the heatmap
    // are both stored in Orthanc).
    wait_until("the job done", Duration::from_secs(60), || {
        d.studies()
            .iter()
            .any(|s| s["study_instance_uid"] == study && s["status"] == "done")
    });
    // Orthanc does not send triaged's own results back to it: no loop.
    // Orthanc runs its Lua events one after the other, in order: once a
    // study sent after the results has been forwarded, any forwarding of
    // the results would have happened.
    let (marker, marker_files) = phantom_study(cases.path(), 7172, vec![], 1);
    modality_sends(&marker_files[0]);
    wait_until("the later study forwarded", Duration::from_secs(60), || {
        d.studies()
            .iter()
            .any(|s| s["study_instance_uid"] == marker)
    });
    assert_eq!(reports(), 1, "{}", pacs.log());
    let studies = d.studies();
    let first = studies
        .iter()
        .find(|s| s["study_instance_uid"] == study)
        .unwrap();
    assert_eq!(studies.len(), 2, "{studies:?}");
    assert_eq!(first["instances"], 1, "{studies:?}");
    assert_eq!(first["priority"], "urgent", "{studies:?}");
    assert!(d.log().contains("calling_ae=ORTHANC"), "{}", d.log());
}
