//! Results back to the PACS: the structured report and the heatmap
//! capture reach Orthanc under the source study, survive an outage and
//! daemon crashes in the outbox, fall back to Comprehensive SR for a peer
//! without 3D SR, and go to dead letter when a destination keeps refusing.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use dicom_dictionary_std::tags;
use phantom::{Case, Grade, Label, Mix};
use report::{
    Device, HeatmapCapture, ImageRef, ImageResult, LabelResult, ModelInfo, Priority, Report,
    SrClass,
};
use support::*;

struct Objects {
    source: PathBuf,
    sr: PathBuf,
    sc: PathBuf,
    study: String,
    sr_uid: String,
}

/// A phantom source image and, for it, a hand-made result as SR and SC.
fn objects(dir: &Path) -> Objects {
    let case = Case::sample(
        77,
        &Mix::Exactly(vec![(Label::Pneumothorax, Grade::Severe)]),
    );
    let image = case.render(2.0, false);
    let src = phantom::dicom::instance(&case, &image, 1).unwrap();
    let source = dir.join("source.dcm");
    src.write_to_file(&source).unwrap();
    let s = |t| {
        src.element(t)
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches('\0')
            .to_string()
    };
    let image_ref = ImageRef {
        series_uid: s(tags::SERIES_INSTANCE_UID),
        sop_class_uid: s(tags::SOP_CLASS_UID),
        sop_instance_uid: s(tags::SOP_INSTANCE_UID),
    };
    let study = s(tags::STUDY_INSTANCE_UID);
    let device = Device {
        manufacturer: "triaged project".into(),
        name: "triaged".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uid: "2.25.99".into(),
    };
    let report = Report {
        source: &src,
        study_uid: study.clone(),
        evidence: vec![image_ref.clone()],
        results: vec![ImageResult {
            image: image_ref.clone(),
            findings: vec![
                LabelResult {
                    label: "Pneumothorax".into(),
                    probability: 0.97,
                    threshold: 0.3,
                    flagged: true,
                    heatmap: Some("class activation map".into()),
                },
                LabelResult {
                    label: "Effusion".into(),
                    probability: 0.04,
                    threshold: 0.35,
                    flagged: false,
                    heatmap: None,
                },
            ],
        }],
        model: ModelInfo {
            name: "demo-cxr".into(),
            version: "test".into(),
            weights_sha256: "0".repeat(64),
            intended_use: "demonstration on synthetic data — not for diagnostic use".into(),
            validated: false,
        },
        priority: Priority::Urgent,
        predecessor: None,
        device: device.clone(),
        content_date: "20261129".into(),
        content_time: "101500".into(),
    };
    let sr_uid = report.sop_instance_uid(SrClass::Comprehensive3d);
    let sr = dir.join("sr.dcm");
    report
        .build(SrClass::Comprehensive3d, 1)
        .unwrap()
        .write_to_file(&sr)
        .unwrap();
    let maxval = ((1u32 << image.bits_stored) - 1) as f32;
    let rgb: Vec<u8> = image
        .pixels
        .iter()
        .enumerate()
        .flat_map(|(i, &p)| {
            let g = (p as f32 / maxval * 255.0) as u8;
            let g = if image.monochrome1 { 255 - g } else { g };
            let hot = (i % image.columns) < image.columns / 3;
            [if hot { g.saturating_add(80) } else { g }, g, g]
        })
        .collect();
    let sc = dir.join("sc.dcm");
    HeatmapCapture {
        source: &src,
        study_uid: study.clone(),
        image: image_ref,
        finding: "Pneumothorax".into(),
        method: "class activation map".into(),
        model_name: "demo-cxr".into(),
        model_version: "test".into(),
        device,
        columns: image.columns,
        rows: image.rows,
        rgb,
        content_date: "20261129".into(),
        content_time: "101500".into(),
    }
    .build(1)
    .unwrap()
    .write_to_file(&sc)
    .unwrap();
    Objects {
        source,
        sr,
        sc,
        study,
        sr_uid,
    }
}

fn destination(name: &str, ae: &str, port: u16) -> String {
    format!("[[destinations]]\nname = \"{name}\"\nae_title = \"{ae}\"\nhost = \"127.0.0.1\"\nport = {port}\n")
}

fn outbox(d: &Daemon) -> Vec<serde_json::Value> {
    let out = d.cli(&["outbox", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Orthanc's instances of the study with this Study Instance UID.
fn pacs_instances(o: &Orthanc, study: &str) -> Vec<serde_json::Value> {
    let found = o.post(
        "/tools/find",
        &format!(r#"{{"Level":"Study","Query":{{"StudyInstanceUID":"{study}"}}}}"#),
    );
    let ids = found.as_array().cloned().unwrap_or_default();
    ids.iter()
        .flat_map(|id| {
            o.get(&format!("/studies/{}/instances", id.as_str().unwrap()))
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
        })
        .collect()
}

#[test]
fn the_report_and_heatmap_reach_orthanc_under_the_source_study() {
    let dir = tempfile::tempdir().unwrap();
    let o = objects(dir.path());
    // pydicom, a second implementation, reads the content tree back.
    let script = r#"
import sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
def walk(items, out):
    for it in items:
        name = it.ConceptNameCodeSequence[0].CodeMeaning
        if it.ValueType == "NUM":
            out.append((name, float(it.MeasuredValueSequence[0].NumericValue)))
        if it.ValueType == "CODE" and name == "Finding":
            out.append(("Finding", it.ConceptCodeSequence[0].CodeMeaning))
        walk(getattr(it, "ContentSequence", []), out)
    return out
for k, v in walk(ds.ContentSequence, []):
    print(f"{k}={v}")
"#;
    let out = std::process::Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(&o.sr)
        .output()
        .unwrap();
    let tree = text(&out);
    assert!(out.status.success(), "{tree}");
    for line in [
        "Finding=Pneumothorax",
        "Probability of finding=0.97",
        "Finding=Pleural effusion",
        "Probability of finding=0.04",
    ] {
        assert!(tree.contains(line), "{line} not in {tree}");
    }

    let pacs = Orthanc::start(&[]);
    let out = run(
        "storescu",
        &[
            "-aec",
            Orthanc::AE,
            "127.0.0.1",
            &pacs.dicom_port.to_string(),
            o.source.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let d = Daemon::start("", &destination("pacs", Orthanc::AE, pacs.dicom_port));
    let out = d.cli(&[
        "send",
        "--to",
        "pacs",
        o.sr.to_str().unwrap(),
        o.sc.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("stored (0x0000)").count(),
        2,
        "{}",
        text(&out)
    );

    let instances = pacs_instances(&pacs, &o.study);
    assert_eq!(instances.len(), 3, "{instances:?}");
    let sr = instances
        .iter()
        .find(|i| i["MainDicomTags"]["SOPInstanceUID"] == o.sr_uid.as_str())
        .expect("the SR is in the source study");
    let tags = pacs
        .get(&format!(
            "/instances/{}/simplified-tags",
            sr["ID"].as_str().unwrap()
        ))
        .unwrap();
    assert_eq!(tags["Modality"], "SR");
    assert_eq!(tags["SOPClassUID"], report::sr::COMPREHENSIVE_3D_SR);
    assert!(tags.to_string().contains("Pneumothorax"));
}

#[test]
fn a_peer_without_3d_sr_gets_comprehensive_sr() {
    let dir = tempfile::tempdir().unwrap();
    let o = objects(dir.path());
    let log = dir.path().join("received.jsonl");
    let port = free_port();
    // A pynetdicom SCP that takes Comprehensive SR but not 3D SR.
    let mut scp = std::process::Command::new(python())
        .arg(repo_root().join("tests/peers/dimse_peer.py"))
        .args([
            "scp",
            &port.to_string(),
            "OLDPACS",
            log.to_str().unwrap(),
            report::sr::COMPREHENSIVE_SR,
        ])
        .spawn()
        .unwrap();
    let d = Daemon::start("", &destination("old", "OLDPACS", port));
    wait_until("the SCP answers", Duration::from_secs(20), || {
        d.cli(&["echo", "old"]).status.success()
    });
    let out = d.cli(&["send", "--to", "old", o.sr.to_str().unwrap()]);
    let again = d.cli(&["send", "--to", "old", o.sr.to_str().unwrap()]);
    let _ = scp.kill();
    let _ = scp.wait();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("sent as Comprehensive SR"),
        "{}",
        text(&out)
    );
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines
        .iter()
        .all(|l| l["class"] == report::sr::COMPREHENSIVE_SR));
    // The fallback's UID is a function of the original: a resend is the
    // same instance.
    assert_eq!(lines[0]["instance"], lines[1]["instance"]);
    assert_ne!(lines[0]["instance"], o.sr_uid.as_str());
    assert!(again.status.success(), "{}", text(&again));
}

#[test]
fn an_outage_and_crashes_delay_delivery_but_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = objects(dir.path());
    let pacs_port = free_port();
    let mut d = Daemon::start(
        "",
        &(destination("pacs", Orthanc::AE, pacs_port)
            + "[outbox]\nfirst_retry_secs = 1\nmax_retry_secs = 2\n"),
    );
    let out = d.cli(&[
        "outbox",
        "add",
        "--to",
        "pacs",
        o.sr.to_str().unwrap(),
        o.sc.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("two failed attempts each", Duration::from_secs(30), || {
        let rows = outbox(&d);
        rows.len() == 2
            && rows
                .iter()
                .all(|r| r["state"] == "pending" && r["attempts"].as_i64().unwrap() >= 2)
    });
    // A crash and a clean restart while the PACS is still down.
    d.kill();
    d.restart();
    d.stop();
    d.restart();
    let pacs = Orthanc::start_with(pacs_port, &[], true);
    wait_until("both delivered", Duration::from_secs(60), || {
        every(&outbox(&d), |r| r["state"] == "delivered")
    });
    assert_eq!(pacs_instances(&pacs, &o.study).len(), 2);
    // Queuing the same objects again sends nothing new: no row is added
    // or re-opened (every row still delivered, so nothing is due).
    let out = d.cli(&["outbox", "add", "--to", "pacs", o.sr.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = outbox(&d);
    assert_eq!(rows.len(), 2);
    assert!(every(&rows, |r| r["state"] == "delivered"), "{rows:?}");
    assert_eq!(pacs_instances(&pacs, &o.study).len(), 2);
    let list = d.cli(&["outbox", "list"]);
    assert_eq!(
        text(&list).matches("delivered").count(),
        2,
        "{}",
        text(&list)
    );
}

#[test]
fn a_refusing_destination_ends_in_dead_letter_and_can_be_retried() {
    let dir = tempfile::tempdir().unwrap();
    let o = objects(dir.path());
    let port = free_port();
    // Orthanc that only lets known modalities store: triaged is not one.
    let pacs = Orthanc::start_with(port, &[], false);
    let d = Daemon::start(
        "",
        &(destination("pacs", Orthanc::AE, port)
            + "[outbox]\nmax_attempts = 3\nfirst_retry_secs = 1\nmax_retry_secs = 1\n"),
    );
    let out = d.cli(&["outbox", "add", "--to", "pacs", o.sr.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("dead letter", Duration::from_secs(30), || {
        every(&outbox(&d), |r| r["state"] == "dead")
    });
    let row = &outbox(&d)[0];
    assert_eq!(row["attempts"], 3, "{row}");
    assert!(
        row["last_error"].as_str().unwrap().contains("TESTPACS"),
        "{row}"
    );
    let list = d.cli(&["outbox", "list"]);
    assert!(text(&list).contains("dead"), "{}", text(&list));
    assert!(pacs_instances(&pacs, &o.study).is_empty());
    // A retry starts the attempts over: three more refusals, then dead
    // letter again.
    let refusals = || d.log().matches("result not delivered").count();
    let before = refusals();
    assert_eq!(before, 3, "{}", d.log());
    let id = row["id"].as_i64().unwrap().to_string();
    let out = d.cli(&["outbox", "retry", &id]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("three more attempts", Duration::from_secs(30), || {
        refusals() == before + 3 && outbox(&d)[0]["state"] == "dead"
    });
    assert_eq!(outbox(&d)[0]["attempts"], 3);
    let out = d.cli(&["outbox", "retry", "999"]);
    assert!(!out.status.success());
}

/// A destination that answers with a command set that never ends is cut
/// off once it passes 1 MiB, with a clear error, instead of being buffered
/// without bound (tests/peers/endless_scp.py, raw sockets).
#[test]
fn a_destination_that_never_ends_its_response_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let o = objects(dir.path());
    let port = free_port();
    // The peer prints a line per association when it ends, into a file the
    // test reads while the peer runs.
    let peer_log = dir.path().join("endless.jsonl");
    let mut peer = std::process::Command::new(python())
        .arg(repo_root().join("tests/peers/endless_scp.py"))
        .args([&port.to_string(), "ENDLESS"])
        .stdout(std::fs::File::create(&peer_log).unwrap())
        .spawn()
        .unwrap();
    let d = Daemon::start("", &destination("endless", "ENDLESS", port));
    wait_until("the peer listening", Duration::from_secs(20), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut send = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["send", "--to", "endless"])
        .arg(&o.sr)
        .arg("--config")
        .arg(&d.config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for it to give up (a generous deadline); a send that never does
    // is killed before failing the test, as its buffer would grow on.
    let gave_up = wait_for(Duration::from_secs(120), || {
        send.try_wait().unwrap().is_some()
    });
    if !gave_up {
        let _ = send.kill();
    }
    let out = send.wait_with_output().unwrap();
    // It really sent more than the cap before the caller hung up (the
    // peer notices the hang-up at its next write, after `send` has ended).
    let sent = || -> u64 {
        std::fs::read_to_string(&peer_log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["sent"].as_u64())
            .max()
            .unwrap_or(0)
    };
    let saw_the_cap = wait_for(Duration::from_secs(30), || sent() > 1 << 20);
    let _ = peer.kill();
    let _ = peer.wait();
    assert!(
        gave_up,
        "the send never gave up: its response buffer grew without bound"
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("response command set larger than 1 MiB"),
        "{}",
        text(&out)
    );
    assert!(saw_the_cap, "the peer sent only {} bytes", sent());
}
