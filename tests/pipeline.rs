//! Orchestration end to end: a PACS router (Orthanc) forwards studies,
//! triaged assembles them across associations, analyses them with the
//! bundled model and the report lands back in the PACS.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use phantom::{Grade, Label};
use support::*;

/// A daemon with the bundled model and Orthanc as destination `pacs`;
/// `pipeline` is the [pipeline] table's lines, `rest` more TOML.
fn daemon_with_pacs(pacs_port: u16, pipeline: &str, rest: &str) -> Daemon {
    daemon_with_models(pacs_port, &repo_root().join("models"), pipeline, rest)
}

/// Like `daemon_with_pacs`, with the models in `models`.
fn daemon_with_models(pacs_port: u16, models: &Path, pipeline: &str, rest: &str) -> Daemon {
    Daemon::start(
        "",
        &format!(
            "[[destinations]]\nname = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {pacs_port}\n\n[pipeline]\n{pipeline}\n\n[models]\ndir = \"{}\"\n\n{rest}",
            Orthanc::AE,
            models.display()
        ),
    )
}

/// A query on the daemon's database, a line per row.
fn sql(d: &Daemon, query: &str) -> String {
    let out = d.sql(query);
    assert!(out.status.success(), "{}", text(&out));
    text(&out).trim().to_string()
}

/// Change one attribute of a file in place (DCMTK's dcmodify).
fn modify(file: &Path, assignment: &str) {
    let out = run(
        "dcmodify",
        &["-nb", "-m", assignment, file.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
}

fn study_row(d: &Daemon, uid: &str) -> Option<serde_json::Value> {
    d.studies()
        .into_iter()
        .find(|s| s["study_instance_uid"] == uid)
}

const SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";
const SC: &str = "1.2.840.10008.5.1.4.1.1.7";

#[test]
fn a_routed_study_comes_back_analysed_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(
        dir.path(),
        4242,
        vec![(Label::Pneumothorax, Grade::Severe)],
        1,
    );
    let port = free_port();
    let d = daemon_with_pacs(port, "quiet_secs = 1", "");
    let pacs = Orthanc::start_with(port, &[("triaged", "TRIAGED", d.port)], true);
    let out = run(
        "storescu",
        &[
            "-aec",
            Orthanc::AE,
            "127.0.0.1",
            &port.to_string(),
            files[0].to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = pacs.post("/tools/lookup", &uid)[0]["ID"]
        .as_str()
        .unwrap()
        .to_string();
    // Orthanc as the PACS router forwards the study to triaged.
    pacs.post(
        "/modalities/triaged/store",
        &format!(r#"{{"Resources":["{id}"],"Synchronous":true}}"#),
    );
    wait_until("the report in the PACS", Duration::from_secs(30), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    wait_until("the heatmap in the PACS", Duration::from_secs(10), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SC)
    });
    let row = study_row(&d, &uid).unwrap();
    assert_eq!(row["status"], "done", "{row}");
    assert_eq!(row["priority"], "urgent", "{row}");
    assert_eq!(row["flagged"], true, "{row}");
    assert!(
        row["findings"].to_string().contains("Pneumothorax"),
        "{row}"
    );
    assert!(
        !d.log().contains("PHANTOM^"),
        "a patient name reached the log"
    );
    // The flagged finding names its heatmap capture, which is in the PACS.
    let heatmap = sql(
        &d,
        "SELECT heatmap_uid FROM findings WHERE flagged = 1 AND label = 'Pneumothorax'",
    );
    assert!(heatmap.starts_with("2.25."), "{heatmap}");
    let found = pacs.post(
        "/tools/find",
        &format!(r#"{{"Level":"Instance","Query":{{"SOPInstanceUID":"{heatmap}"}}}}"#),
    );
    assert_eq!(found.as_array().map(Vec::len), Some(1), "{found}");
}

#[test]
fn one_study_over_three_associations_is_one_job_and_a_late_image_supersedes() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(dir.path(), 4343, vec![(Label::Effusion, Grade::Severe)], 4);
    let port = free_port();
    // Three associations one after the other, well inside the quiet period.
    let d = daemon_with_pacs(port, "quiet_secs = 5", "");
    let pacs = Orthanc::start_with(port, &[], true);
    for f in &files[..3] {
        let out = d.storescu(&[], &[f.as_path()]);
        assert!(out.status.success(), "{}", text(&out));
    }
    wait_until(
        "the first report delivered",
        Duration::from_secs(60),
        || study_row(&d, &uid).is_some_and(|r| r["status"] == "done"),
    );
    // Every instance was there before the job was made: nothing is left
    // to assemble, so these counts are final.
    assert_eq!(
        sql(&d, "SELECT group_concat(CAST(instances AS TEXT)) FROM jobs"),
        "3",
        "one job"
    );
    assert_eq!(
        pacs.sop_classes(&uid).iter().filter(|c| *c == SR).count(),
        1,
        "one job, one report"
    );
    // A late image: a second report that names the first as predecessor.
    let out = d.storescu(&[], &[files[3].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the superseding report", Duration::from_secs(30), || {
        pacs.sop_classes(&uid).iter().filter(|c| *c == SR).count() == 2
    });
    let with_predecessor = pacs
        .instances(&uid, Some("SR"))
        .iter()
        .filter(|t| t.get("PredecessorDocumentsSequence").is_some())
        .count();
    assert_eq!(with_predecessor, 1);
    assert_eq!(study_row(&d, &uid).unwrap()["instances"], 4);
}

#[test]
fn a_study_no_model_applies_to_is_recorded_without_a_report() {
    let port = free_port();
    let d = daemon_with_pacs(port, "quiet_secs = 1", "");
    let pacs = Orthanc::start_with(port, &[], true);
    // A chest CT: not a radiograph (demo-cxr), not a head (demo-ich).
    let dir = tempfile::tempdir().unwrap();
    let ct = dir.path().join("ct.dcm");
    std::fs::copy(fixture("ct-small.dcm"), &ct).unwrap();
    let mut perms = std::fs::metadata(&ct).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(&ct, perms).unwrap();
    let out = run(
        "dcmodify",
        &["-nb", "-i", "(0018,0015)=CHEST", ct.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = d.storescu(&[], &[ct.as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    let uid = d.studies()[0]["study_instance_uid"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until(
        "recorded as not applicable",
        Duration::from_secs(20),
        || study_row(&d, &uid).is_some_and(|r| r["status"] == "not_applicable"),
    );
    // Not applicable is recorded in the transaction that would have queued
    // reports: nothing is queued, so nothing can reach the PACS later.
    assert_eq!(sql(&d, "SELECT COUNT(*) FROM outbox"), "0");
    assert!(pacs.sop_classes(&uid).is_empty());
    assert!(d.log().contains("no active model applies"), "{}", d.log());
}

#[test]
fn a_crash_while_analysing_still_delivers_exactly_one_report() {
    let dir = tempfile::tempdir().unwrap();
    // Enough images that the analysis takes a while to interrupt.
    let (uid, files) = phantom_study(
        dir.path(),
        4444,
        vec![(Label::Cardiomegaly, Grade::Severe)],
        30,
    );
    let port = free_port();
    let mut d = daemon_with_pacs(port, "quiet_secs = 1", "");
    let pacs = Orthanc::start_with(port, &[], true);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = d.storescu(&[], &refs);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the job analysing", Duration::from_secs(30), || {
        study_row(&d, &uid).is_some_and(|r| r["status"] == "analysing")
    });
    d.kill();
    d.restart();
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    // Done: every queued object has left the outbox, so the PACS holds
    // all it will ever get from this job.
    wait_until("the job done", Duration::from_secs(30), || {
        study_row(&d, &uid).is_some_and(|r| r["status"] == "done")
    });
    assert_eq!(sql(&d, "SELECT COUNT(*) FROM jobs"), "1");
    assert_eq!(
        pacs.sop_classes(&uid).iter().filter(|c| *c == SR).count(),
        1
    );
    assert!(
        d.log().contains("resuming jobs interrupted by a stop"),
        "{}",
        d.log()
    );
}

#[test]
fn routing_rules_choose_what_is_analysed() {
    let dir = tempfile::tempdir().unwrap();
    let (chest, files) = phantom_study(dir.path(), 4545, vec![], 1);
    let (hand, hand_files) = phantom_study(dir.path(), 4646, vec![], 1);
    // The second study is re-described as a hand radiograph.
    modify(&hand_files[0], "(0008,1030)=XR HAND");
    let port = free_port();
    let d = daemon_with_pacs(
        port,
        "quiet_secs = 1",
        "[[rules]]\nname = \"chest\"\nstudy_description = \"(?i)chest\"\nmodels = [\"demo-cxr\"]\ndestinations = [\"pacs\"]\n",
    );
    let pacs = Orthanc::start_with(port, &[], true);
    let out = d.storescu(&[], &[files[0].as_path(), hand_files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("both studies decided", Duration::from_secs(30), || {
        let a = study_row(&d, &chest).and_then(|r| r["status"].as_str().map(String::from));
        let b = study_row(&d, &hand).and_then(|r| r["status"].as_str().map(String::from));
        a.as_deref() == Some("done") && b.as_deref() == Some("not_applicable")
    });
    wait_until("the chest report", Duration::from_secs(20), || {
        pacs.sop_classes(&chest).iter().any(|c| c == SR)
    });
    assert!(pacs.sop_classes(&hand).is_empty());
}

/// A study none of whose images can be read fails alone; a study with one
/// unreadable image among readable ones is reported without it, and the
/// job names the image it skipped and why.
#[test]
fn an_undecodable_image_fails_its_job_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (bad, bad_files) = phantom_study(dir.path(), 4747, vec![], 1);
    let (good, good_files) = phantom_study(dir.path(), 4848, vec![], 1);
    let (partial, partial_files) = phantom_study(dir.path(), 4646, vec![], 2);
    // Rows no longer match the pixel data: stored, but not decodable.
    modify(&bad_files[0], "(0028,0010)=4000");
    modify(&partial_files[1], "(0028,0010)=4000");
    let port = free_port();
    let d = daemon_with_pacs(port, "quiet_secs = 1", "");
    let pacs = Orthanc::start_with(port, &[], true);
    for files in [&bad_files, &good_files, &partial_files] {
        let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
        let out = d.storescu(&[], &refs);
        assert!(out.status.success(), "{}", text(&out));
    }
    wait_until("all decided", Duration::from_secs(30), || {
        study_row(&d, &bad).is_some_and(|r| r["status"] == "failed")
            && study_row(&d, &good).is_some_and(|r| r["status"] == "done")
            && study_row(&d, &partial).is_some_and(|r| r["status"] == "done")
    });
    wait_until(
        "the readable studies' reports",
        Duration::from_secs(20),
        || {
            pacs.sop_classes(&good).iter().any(|c| c == SR)
                && pacs.sop_classes(&partial).iter().any(|c| c == SR)
        },
    );
    assert!(pacs.sop_classes(&bad).is_empty());
    assert!(
        d.log().contains("no image of the study could be analysed"),
        "{}",
        d.log()
    );
    // Exactly the two broken images are named, each with its reason.
    let skipped = sql(
        &d,
        "SELECT sop_instance_uid || ' ' || error FROM skipped_images ORDER BY sop_instance_uid",
    );
    let mut expected = [sop_uid(&bad_files[0]), sop_uid(&partial_files[1])];
    expected.sort();
    let lines: Vec<&str> = skipped.lines().collect();
    assert_eq!(lines.len(), 2, "{skipped}");
    for (line, uid) in lines.iter().zip(&expected) {
        assert!(line.starts_with(&format!("{uid} ")), "{skipped}");
        assert!(line.len() > uid.len() + 1, "no reason given: {skipped}");
    }
    // The partial study's report covers its readable image only.
    assert_eq!(
        sql(
            &d,
            &format!(
                "SELECT COUNT(DISTINCT sop_instance_uid) FROM findings WHERE study_instance_uid = '{partial}'"
            )
        ),
        "1"
    );
}

#[test]
fn a_long_series_is_subsampled() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(dir.path(), 4949, vec![], 12);
    let port = free_port();
    let d = daemon_with_pacs(port, "quiet_secs = 1\nmax_images_per_series = 3", "");
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = d.storescu(&[], &refs);
    assert!(out.status.success(), "{}", text(&out));
    // No PACS runs: the reports wait in the outbox.
    wait_until("analysed", Duration::from_secs(30), || {
        study_row(&d, &uid).is_some_and(|r| r["status"] == "sending")
    });
    assert_eq!(
        sql(&d, "SELECT COUNT(DISTINCT sop_instance_uid) FROM findings"),
        "3"
    );
}

#[test]
fn reports_waiting_for_a_pacs_that_is_down_survive_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(
        dir.path(),
        5050,
        vec![(Label::Pneumothorax, Grade::Severe)],
        1,
    );
    let port = free_port();
    let mut d = daemon_with_pacs(
        port,
        "quiet_secs = 1",
        "[outbox]\nfirst_retry_secs = 1\nmax_retry_secs = 2\n",
    );
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    // Analysed and queued; the PACS is not there yet.
    wait_until("the job sending", Duration::from_secs(30), || {
        study_row(&d, &uid).is_some_and(|r| r["status"] == "sending")
    });
    d.kill();
    d.restart();
    let pacs = Orthanc::start_with(port, &[], true);
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    wait_until("the job done", Duration::from_secs(30), || {
        study_row(&d, &uid).is_some_and(|r| r["status"] == "done")
    });
    let classes = pacs.sop_classes(&uid);
    assert_eq!(
        classes.iter().filter(|c| *c == SR).count(),
        1,
        "{classes:?}"
    );
    assert!(classes.iter().any(|c| c == SC), "{classes:?}");
    // Analysed once: the restart did not run the model again.
    assert_eq!(sql(&d, "SELECT COUNT(*) FROM jobs"), "1");
    assert_eq!(sql(&d, "SELECT attempts FROM jobs"), "1");
}

#[test]
fn a_ct_series_is_reported_once_with_its_strongest_slices() {
    let models = tempfile::tempdir().unwrap();
    let ct_model = models.path().join("tiny-ct");
    std::fs::create_dir(&ct_model).unwrap();
    for f in ["model.toml", "weights.safetensors"] {
        std::fs::copy(
            repo_root().join("fixtures/infer/tiny-ct").join(f),
            ct_model.join(f),
        )
        .unwrap();
    }
    let port = free_port();
    let d = daemon_with_models(
        port,
        models.path(),
        "quiet_secs = 1\nmax_images_per_series = 8",
        "",
    );
    let pacs = Orthanc::start_with(port, &[], true);
    // A 20-slice series made from one head CT slice: each slice's pixels
    // scaled and shifted differently, so each scores differently.
    let slices = tempfile::tempdir().unwrap();
    let script = r#"
import sys, numpy as np, pydicom
from pydicom.uid import generate_uid
src, out = sys.argv[1], sys.argv[2]
series = generate_uid()
for n in range(20):
    ds = pydicom.dcmread(src)
    a = ds.pixel_array.astype(np.int32)
    a = np.roll(a, 9 * n, axis=1) * (0.55 + 0.05 * n) + 40 * (n % 7)
    info = np.iinfo(ds.pixel_array.dtype)
    ds.PixelData = np.clip(a, info.min, info.max).astype(ds.pixel_array.dtype).tobytes()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = series
    ds.InstanceNumber = n + 1
    ds.save_as(f"{out}/slice{n:02}.dcm")
"#;
    let made = std::process::Command::new(python())
        .args(["-c", script])
        .arg(fixture("ct-693.dcm"))
        .arg(slices.path())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let files = files_under(slices.path());
    assert_eq!(files.len(), 20);
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = d.storescu(&[], &refs);
    assert!(out.status.success(), "{}", text(&out));
    let uid = d.studies()[0]["study_instance_uid"]
        .as_str()
        .unwrap()
        .to_string();
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    // One result per label for the series, on the slices where each
    // scored highest; every analysed slice is in the evidence.
    assert_eq!(
        sql(&d, "SELECT COUNT(*) || ' ' || COUNT(DISTINCT label) || ' ' || COUNT(DISTINCT series_instance_uid) FROM findings"),
        "3 3 1"
    );
    assert_eq!(sql(&d, "SELECT COUNT(*) FROM instances"), "20");
    let tags = pacs.instances(&uid, Some("SR")).remove(0);
    let evidence: Vec<String> = tags["CurrentRequestedProcedureEvidenceSequence"][0]
        ["ReferencedSeriesSequence"][0]["ReferencedSOPSequence"]
        .as_array()
        .unwrap_or_else(|| panic!("{tags}"))
        .iter()
        .map(|r| r["ReferencedSOPInstanceUID"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(evidence.len(), 8, "{tags}");
    // The same model on the analysed slices, one by one: for each label
    // the daemon reported the slice where it scores highest.
    let analysed: Vec<String> = files
        .iter()
        .filter(|f| evidence.iter().any(|e| sop_uid(f) == *e))
        .map(|f| f.display().to_string())
        .collect();
    assert_eq!(analysed.len(), 8);
    let mut args = vec!["analyze", "--json", "--model", ct_model.to_str().unwrap()];
    args.extend(analysed.iter().map(String::as_str));
    let scored = d.cli(&args);
    assert!(scored.status.success(), "{}", text(&scored));
    let scored: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    let labels: Vec<String> = scored[0]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap().to_string())
        .collect();
    let mut winners = std::collections::BTreeSet::new();
    for (k, label) in labels.iter().enumerate() {
        let p = |i: &serde_json::Value| i["labels"][k]["probability"].as_f64().unwrap();
        let images = scored.as_array().unwrap();
        let best = images.iter().max_by(|a, b| p(a).total_cmp(&p(b))).unwrap();
        let runner_up = images
            .iter()
            .filter(|i| i["sop_instance_uid"] != best["sop_instance_uid"])
            .map(p)
            .fold(f64::MIN, f64::max);
        assert!(
            p(best) > runner_up,
            "{label}: a tie proves nothing: {scored}"
        );
        assert_eq!(
            sql(
                &d,
                &format!("SELECT sop_instance_uid FROM findings WHERE label = '{label}'")
            ),
            best["sop_instance_uid"].as_str().unwrap(),
            "{label}: {scored}"
        );
        winners.insert(best["sop_instance_uid"].as_str().unwrap().to_string());
    }
    eprintln!(
        "{} labels won by {} different slices",
        labels.len(),
        winners.len()
    );
    assert!(d.log().contains("study analysed"), "{}", d.log());
}

/// The sender was cut off mid-study by a stop and the daemon stayed down
/// longer than the quiet period: after the restart the study waits a whole
/// quiet period again, so the rest, sent after the restart, joins it and
/// the study is analysed once, complete.
#[test]
fn a_study_cut_by_a_stop_waits_a_fresh_quiet_period_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(dir.path(), 5151, vec![], 3);
    let mut d = daemon_with_pacs(free_port(), "quiet_secs = 3", "");
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    d.kill();
    assert_eq!(
        sql(&d, "SELECT COUNT(*) FROM jobs"),
        "0",
        "no job before the stop"
    );
    // Down for longer than the quiet period: this pause is the scenario.
    std::thread::sleep(Duration::from_secs(4));
    d.restart();
    let refs: Vec<&Path> = files[1..].iter().map(PathBuf::as_path).collect();
    let out = d.storescu(&[], &refs);
    assert!(out.status.success(), "{}", text(&out));
    wait_until(
        "a job over the whole study",
        Duration::from_secs(60),
        || sql(&d, "SELECT COUNT(*) FROM jobs WHERE instances = 3") == "1",
    );
    assert_eq!(
        sql(&d, "SELECT group_concat(CAST(instances AS TEXT)) FROM jobs"),
        "3",
        "the study was analysed before its sender had finished"
    );
    assert_eq!(study_row(&d, &uid).unwrap()["instances"], 3);
}

/// `[models] backend = "candle"` (candle's own ops, the fallback an admin
/// may choose) runs a study end to end, and scores it as the default fast
/// path does (`triaged analyze` on the default backend).
#[test]
fn the_candle_backend_analyses_a_study_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(
        dir.path(),
        5252,
        vec![(Label::Pneumothorax, Grade::Severe)],
        1,
    );
    let port = free_port();
    let d = daemon_with_pacs(port, "quiet_secs = 1", "backend = \"candle\"\n");
    assert!(
        d.log().contains("model loaded") && d.log().contains("backend=Candle"),
        "{}",
        d.log()
    );
    let pacs = Orthanc::start_with(port, &[], true);
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    let row = study_row(&d, &uid).unwrap();
    assert_eq!(row["priority"], "urgent", "{row}");
    // The same image on the fast path (a configuration without the key).
    let fast_config = d.dir.path().join("fast.toml");
    std::fs::write(
        &fast_config,
        format!(
            "[models]\ndir = \"{}\"\n",
            repo_root().join("models").display()
        ),
    )
    .unwrap();
    let scored = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["analyze", "--json", "--model"])
        .arg(repo_root().join("models/demo-cxr"))
        .arg(&files[0])
        .arg("--config")
        .arg(&fast_config)
        .output()
        .unwrap();
    assert!(scored.status.success(), "{}", text(&scored));
    let scored: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    for l in scored[0]["labels"].as_array().unwrap() {
        let label = l["label"].as_str().unwrap();
        let candle: f64 = sql(
            &d,
            &format!("SELECT probability FROM findings WHERE label = '{label}'"),
        )
        .parse()
        .unwrap();
        let fast = l["probability"].as_f64().unwrap();
        assert!(
            (candle - fast).abs() <= 1e-4,
            "{label}: candle {candle}, fast path {fast}"
        );
    }
}

/// A label the manifest lists as not predicted reaches neither the
/// findings, the worklist nor the report, even where its output is over
/// its threshold (the bundled model flags Nodule on most studies).
#[test]
fn a_label_the_model_does_not_predict_is_never_reported() {
    let models = tempfile::tempdir().unwrap();
    let dir = models.path().join("demo-cxr");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        repo_root().join("models/demo-cxr/weights.safetensors"),
        dir.join("weights.safetensors"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(repo_root().join("models/demo-cxr/model.toml"))
        .unwrap()
        .replace("labels = [", "not_predicted = [\"Nodule\"]\nlabels = [");
    std::fs::write(dir.join("model.toml"), manifest).unwrap();
    let cases = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(
        cases.path(),
        5353,
        vec![
            (Label::Nodule, Grade::Severe),
            (Label::Effusion, Grade::Severe),
        ],
        1,
    );
    let port = free_port();
    let d = daemon_with_models(port, models.path(), "quiet_secs = 1", "");
    let pacs = Orthanc::start_with(port, &[], true);
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    assert_eq!(
        sql(
            &d,
            "SELECT group_concat(label, ',') FROM (SELECT label FROM findings ORDER BY label) AS l"
        ),
        "Cardiomegaly,Consolidation,Effusion,Pneumothorax"
    );
    let row = study_row(&d, &uid).unwrap();
    assert!(!row["findings"].to_string().contains("Nodule"), "{row}");
    assert!(row["findings"].to_string().contains("Effusion"), "{row}");
    let content = pacs.instances(&uid, Some("SR"))[0].to_string();
    assert!(content.contains("Effusion"), "{content}");
    assert!(!content.contains("Nodule"), "{content}");
}

/// One daemon answering to several AE titles: each takes its own sources
/// and its own models; an unknown AE title, or a source calling an AE
/// title that is not its own, is refused as before.
#[test]
fn each_ae_title_takes_its_own_sources_and_models() {
    let port = free_port();
    let d = daemon_with_pacs(
        port,
        "quiet_secs = 0.5",
        r#"
[[sources]]
name = "xr-rooms"
ae_title = "XRROOM"

[[sources]]
name = "ct-router"
ae_title = "CTROUTER"

[[dicom.ae_titles]]
ae_title = "TRIAGE_CXR"
sources = ["xr-rooms"]
models = ["demo-cxr"]

[[dicom.ae_titles]]
ae_title = "TRIAGE_CT"
sources = ["ct-router"]
models = ["demo-ich"]
"#,
    );
    let _pacs = Orthanc::start_with(port, &[], true);
    let dir = tempfile::tempdir().unwrap();
    let (cxr, cxr_files) = phantom_study(
        dir.path(),
        901,
        vec![(Label::Pneumothorax, Grade::Severe)],
        1,
    );
    let (to_ct, ct_files) = phantom_study(
        dir.path(),
        902,
        vec![(Label::Pneumothorax, Grade::Severe)],
        1,
    );
    let send = |calling: &str, called: &str, f: &Path| {
        run(
            "storescu",
            &[
                "-aet",
                calling,
                "-aec",
                called,
                "127.0.0.1",
                &d.port.to_string(),
                f.to_str().unwrap(),
            ],
        )
    };
    // The chest room's radiograph, to the chest AE title: the chest model.
    let out = send("XRROOM", "TRIAGE_CXR", &cxr_files[0]);
    assert!(out.status.success(), "{}", text(&out));
    // The same kind of image sent to the CT AE title: the head CT model
    // only, which does not read radiographs.
    let out = send("CTROUTER", "TRIAGE_CT", &ct_files[0]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("both studies analysed", Duration::from_secs(60), || {
        [&cxr, &to_ct].iter().all(|u| {
            study_row(&d, u).is_some_and(|r| {
                !r["status"].is_null() && r["status"] != "ready" && r["status"] != "analysing"
            })
        })
    });
    let chest = study_row(&d, &cxr).unwrap();
    assert_eq!(chest["priority"], "urgent", "{chest}");
    let ct = study_row(&d, &to_ct).unwrap();
    assert_eq!(ct["status"], "not_applicable", "{ct}");
    assert_eq!(
        sql(
            &d,
            &format!("SELECT called_ae_title FROM instances WHERE study_instance_uid = '{cxr}'")
        ),
        "TRIAGE_CXR"
    );
    // The chest room may not call the CT AE title; nobody may call an AE
    // title that is not configured; every source may call the main one.
    for (calling, called, says) in [
        (
            "XRROOM",
            "TRIAGE_CT",
            "calling AE title is not a source of this called AE title",
        ),
        ("XRROOM", "TRIAGE_MR", "called AE title is not ours"),
    ] {
        let out = send(calling, called, &cxr_files[0]);
        assert!(
            !out.status.success() || text(&out).contains("Rejected"),
            "{}",
            text(&out)
        );
        wait_until(says, Duration::from_secs(30), || d.log().contains(says));
    }
    let out = send("XRROOM", "TRIAGED", &cxr_files[0]);
    assert!(out.status.success(), "{}", text(&out));
}
