//! Retention on a small disk: the storage is a tmpfs a few times smaller
//! than what is sent through it. Settled studies (analysed, their SR in
//! Orthanc) are purged oldest first above the high watermark; a held
//! study, a study whose report is not delivered and a study still waiting
//! for its quiet period are never touched; no C-STORE is refused.
//!
//! Mounting a tmpfs needs root (CI runs as root).

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::*;

const SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";

/// Studies `seeds`, one instance each, written to `dir`.
fn studies(dir: &Path, seeds: std::ops::Range<u64>) -> Vec<(String, PathBuf)> {
    seeds
        .map(|seed| {
            let (uid, files) = phantom_study(dir, seed, vec![], 1);
            (uid, files.into_iter().next().unwrap())
        })
        .collect()
}

fn study_row(d: &Daemon, uid: &str) -> serde_json::Value {
    d.studies()
        .into_iter()
        .find(|s| s["study_instance_uid"] == uid)
        .unwrap_or_else(|| panic!("no study {uid}"))
}

/// Above the high watermark, settled studies go oldest first, by the
/// daemon's retention task; the CLI shows and (daemon stopped) applies the
/// policy; a released hold lets the study go.
#[test]
fn a_small_disk_keeps_accepting_and_keeps_what_is_not_settled() {
    small_disk(60);
}

/// With the high watermark out of reach (99 %), writes find the disk full:
/// the write itself makes room from settled studies and succeeds.
#[test]
fn a_full_disk_makes_room_from_settled_studies_and_refuses_nothing() {
    small_disk(99);
}

fn small_disk(high: u32) {
    let outer = tempfile::tempdir().unwrap();
    let storage = outer.path().join("storage");
    let disk = Tmpfs::mount(&storage, "16m");
    let pacs_port = free_port();
    let down_port = free_port();
    let (port, http_port) = (free_port(), free_port());
    let config = format!(
        r#"
[dicom]
ae_title = "TRIAGED"
listen = "127.0.0.1:{port}"

[storage]
dir = "{storage}"

[retention]
delete_after_days = 0
high_watermark_percent = {high}
low_watermark_percent = 40
interval_secs = 3600

[http]
listen = "127.0.0.1:{http_port}"

[log]
level = "info"

[pipeline]
quiet_secs = 0.5

[models]
dir = "{models}"

[outbox]
max_attempts = 1000

[[sources]]
name = "router"
ae_title = "STORESCU"

[[sources]]
name = "slow"
ae_title = "SLOWAE"
quiet_secs = 3600

[[sources]]
name = "elsewhere"
ae_title = "DOWNAE"

[[destinations]]
name = "pacs"
ae_title = "{pacs_ae}"
host = "127.0.0.1"
port = {pacs_port}

[[destinations]]
name = "down"
ae_title = "NOBODY"
host = "127.0.0.1"
port = {down_port}

[[rules]]
name = "elsewhere"
calling_ae_titles = ["DOWNAE"]
destinations = ["down"]

[[rules]]
name = "everything else"
destinations = ["pacs"]
"#,
        storage = storage.display(),
        models = repo_root().join("models").display(),
        pacs_ae = Orthanc::AE,
    );
    let d = Daemon::start_config(tempfile::tempdir().unwrap(), &config, port, http_port);
    let pacs = Orthanc::start_with(pacs_port, &[], true);
    let files = tempfile::tempdir().unwrap();
    let all = studies(files.path(), 1..101);
    let size = std::fs::metadata(&all[0].1).unwrap().len();
    let total: u64 = all
        .iter()
        .map(|(_, f)| std::fs::metadata(f).unwrap().len())
        .sum();
    assert!(
        total > 2 * (16 << 20),
        "the test must send more than twice the disk ({total} bytes of {size}-byte studies)"
    );
    let store = |aet: &str, f: &Path| {
        let out = d.storescu(&["-aet", aet], &[f]);
        assert!(
            out.status.success() && !text(&out).contains("Failed"),
            "C-STORE refused at {:.0} % used:\n{}\n{}",
            disk.used() * 100.0,
            text(&out),
            d.log()
        );
    };
    let delivered = |uid: &str| pacs.sop_classes(uid).iter().any(|c| c == SR);

    // The oldest studies, first in line for a purge: one held once its
    // report is delivered, one whose destination is down, one still in its
    // quiet period.
    let (held, undelivered, waiting) = (&all[0], &all[1], &all[2]);
    store("STORESCU", &held.1);
    wait_until("the held study's report", Duration::from_secs(60), || {
        delivered(&held.0)
    });
    let out = d.cli(&["studies", "hold", &held.0, "--reason", "under review"]);
    assert!(out.status.success(), "{}", text(&out));
    store("DOWNAE", &undelivered.1);
    store("SLOWAE", &waiting.1);
    wait_until(
        "the undelivered study analysed",
        Duration::from_secs(60),
        || study_row(&d, &undelivered.0)["status"] == "sending",
    );

    // Then batches, each waited on until its reports are in the PACS (so
    // that settled studies are there to purge when the next batch comes).
    for batch in all[3..].chunks(4) {
        for (_, f) in batch {
            store("STORESCU", f);
        }
        wait_until("a batch's reports", Duration::from_secs(120), || {
            batch.iter().all(|(uid, _)| delivered(uid))
        });
    }
    // Report copies found room too: no analysis failed for want of space.
    assert!(!d.log().contains("analysis failed"), "{}", d.log());
    let reason = if high < 99 {
        wait_until(
            "the storage back under its high watermark",
            Duration::from_secs(60),
            || disk.used() <= high as f64 / 100.0,
        );
        assert!(
            d.log().contains("trigger=\"high watermark\""),
            "{}",
            d.log()
        );
        "watermark"
    } else {
        assert!(
            d.log()
                .contains("storage full: purged settled studies to make room"),
            "{}",
            d.log()
        );
        "disk_full"
    };

    // Space was reclaimed from settled studies only.
    let rows = d.studies();
    let purged: Vec<&serde_json::Value> =
        rows.iter().filter(|s| s["purged_at"].is_string()).collect();
    assert!(
        purged.len() >= 20,
        "{} studies purged; log:\n{}",
        purged.len(),
        d.log()
    );
    assert!(purged.iter().all(|s| s["instances"] == 0));
    for (what, (uid, f)) in [
        ("held", held),
        ("undelivered", undelivered),
        ("waiting", waiting),
    ] {
        let row = study_row(&d, uid);
        assert_eq!(row["instances"], 1, "{what} study lost its instance: {row}");
        assert!(row["purged_at"].is_null(), "{what}: {row}");
        let stored = storage.join(uid).join(phantom_series(f));
        assert!(stored.is_dir(), "{what} study's files are gone");
    }
    let metrics = text(&run(
        "curl",
        &["-s", &format!("http://127.0.0.1:{http_port}/metrics")],
    ));
    let purged_metric = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "triaged_retention_purged_studies_total{{reason=\"{reason}\"}}"
            ))
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no {reason} purges in /metrics:\n{metrics}"));
    assert!(purged_metric >= 20, "{metrics}");
    if high == 99 {
        return;
    }

    // The console still shows a purged study: its findings, no images, and
    // an image asked for by its old UID is a 404, not an error.
    let token = std::fs::read_to_string(storage.join("admin.token")).unwrap();
    let auth = format!("Authorization: Bearer {}", token.trim());
    let api = |path: &str, extra: &[&str]| {
        let url = format!("http://127.0.0.1:{http_port}/api{path}");
        let mut args = vec!["-s", "-H", &auth];
        args.extend_from_slice(extra);
        args.push(&url);
        text(&run("curl", &args))
    };
    let uid = purged[0]["study_instance_uid"].as_str().unwrap();
    let detail: serde_json::Value =
        serde_json::from_str(&api(&format!("/studies/{uid}"), &[])).unwrap();
    assert!(detail["purged_at"].is_string(), "{detail}");
    assert_eq!(detail["images"], serde_json::json!([]), "{detail}");
    let sop = detail["results"][0]["sop_instance_uid"].as_str().unwrap();
    let status = api(
        &format!("/instances/{sop}/image.png"),
        &["-o", "/dev/null", "-w", "%{http_code}"],
    );
    assert_eq!(status, "404");

    // Beside the running daemon, a dry run says what would go (nothing is
    // over the watermark now: at most what the age rule would take, which
    // is off) and a real run is refused: the daemon purges by itself.
    let out = d.cli(&["retention", "run", "--dry-run", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["dry_run"], true);
    let out = d.cli(&["retention", "run"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("in use by another triaged process"),
        "{}",
        text(&out)
    );

    // Released, the held study goes at the next purge.
    let out = d.cli(&["studies", "release", &held.0]);
    assert!(out.status.success(), "{}", text(&out));
    // As the daemon ran (with the suite's [database], if any).
    let config = std::fs::read_to_string(&d.config).unwrap();
    drop(d);
    let mut again = config.replace("high_watermark_percent = 60", "high_watermark_percent = 2");
    again = again.replace("low_watermark_percent = 40", "low_watermark_percent = 1");
    let cfg = files.path().join("again.toml");
    std::fs::write(&cfg, again).unwrap();
    let out = run(
        env!("CARGO_BIN_EXE_triaged"),
        &["retention", "run", "--config", cfg.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&held.0), "{}", text(&out));
    assert!(!storage.join(&held.0).exists());
    assert!(storage.join(&undelivered.0).exists());
    assert!(storage.join(&waiting.0).exists());
}

/// The series folder of a phantom instance file (its Series Instance UID).
fn phantom_series(f: &Path) -> String {
    let out = run("dcmdump", &["+P", "0020,000e", f.to_str().unwrap()]);
    let t = text(&out);
    let start = t.find('[').unwrap() + 1;
    let end = t[start..].find(']').unwrap() + start;
    t[start..end].to_string()
}
