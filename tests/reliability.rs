//! Nothing lost, no one in: crashes at random moments, a full disk, a
//! corrupt or busy database, network abuse, concurrent load, and patient
//! data kept out of the logs. Short forms run in the suite; the long forms
//! (`TRIAGED_CHAOS_TRIALS=20`, `bench/load.sh`) and their figures are in
//! docs/reliability.md.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use phantom::{Grade, Label};
use support::*;

/// A study of `n` instances with a severe effusion written to `dir`.
fn study(dir: &Path, seed: u64, n: u32) -> (String, Vec<PathBuf>) {
    phantom_study(dir, seed, vec![(Label::Effusion, Grade::Severe)], n)
}

fn job_state(d: &Daemon, uid: &str) -> Option<String> {
    d.studies()
        .into_iter()
        .find(|s| s["study_instance_uid"] == uid)
        .and_then(|s| s["status"].as_str().map(String::from))
}

fn sr_count(pacs: &Orthanc, study: &str) -> usize {
    pacs.count(study, "SR")
}

/// kill -9 during a C-STORE, right after the last Success, during the
/// analysis and during delivery, in turn: after a restart (and the sender
/// resending what was not acknowledged, as a router does) every
/// acknowledged instance is on disk, intact and indexed, and every study
/// has exactly one report in the PACS.
#[test]
fn kill_9_at_any_moment_loses_nothing_that_was_acknowledged() {
    chaos("");
}

/// The same, with the ingest journal: an instance acknowledged once its
/// record is flushed, its file and row made after, and what a kill cut
/// off replayed at the restart. (On PostgreSQL the journal is refused at
/// start, saying why.)
#[test]
fn kill_9_at_any_moment_loses_nothing_that_was_acknowledged_with_the_journal() {
    let journal = "flush = \"journal\"";
    if test_postgres().is_some() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_without_http(
            &dir.path().join("triaged.toml"),
            &dir.path().join("storage"),
        );
        let text = std::fs::read_to_string(&config).unwrap().replacen(
            "[storage]\n",
            &format!("[storage]\n{journal}\n"),
            1,
        );
        let url = new_postgres_database(&test_postgres().unwrap());
        std::fs::write(&config, format!("{text}\n[database]\nurl = \"{url}\"\n")).unwrap();
        refuses_to_start(&config, &["storage.flush", "SQLite"]);
        return;
    }
    chaos(journal);
}

/// Kill -9 the daemon at four kinds of moment, with `storage` lines in
/// its [storage] table.
fn chaos(storage: &str) {
    let trials: u64 = std::env::var("TRIAGED_CHAOS_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    assert!(trials > 0, "TRIAGED_CHAOS_TRIALS=0 would prove nothing");
    let pacs_port = free_port();
    let mut d = Daemon::start_with_storage(
        free_port(),
        "",
        storage,
        &format!(
            "[[destinations]]\nname = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {pacs_port}\n\n[pipeline]\nquiet_secs = 4\n\n[models]\ndir = \"{}\"\n\n[outbox]\nfirst_retry_secs = 1\nmax_retry_secs = 2\n",
            Orthanc::AE,
            repo_root().join("models").display()
        ),
    );
    let pacs = Orthanc::start_with(pacs_port, &[], true);
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged_before_kill = 0;
    let mut studies = Vec::new();
    let mut moments: BTreeMap<&str, u64> = BTreeMap::new();
    for trial in 0..trials {
        let (uid, files) = study(dir.path(), 8000 + trial, 6);
        let child = sender(&d, &files);
        let moment = match trial % 4 {
            0 => {
                // Somewhere inside the association.
                std::thread::sleep(Duration::from_millis(30 + (trial * 7919) % 250));
                "during C-STORE"
            }
            1 => {
                while child_running(&child) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                "after the last Success"
            }
            2 => {
                wait_for_state(&d, &uid, &["analysing", "reporting", "sending", "done"]);
                "during analysis"
            }
            _ => {
                wait_for_state(&d, &uid, &["sending", "done"]);
                "during delivery"
            }
        };
        *moments.entry(moment).or_default() += 1;
        d.kill();
        let sent = statuses(child, files.len());
        acknowledged_before_kill += sent.iter().filter(|s| **s == Some(0)).count();
        d.restart();
        resend_unacknowledged(&d, &files, &sent, moment);
        // Every instance is indexed and intact: its stored data set is the
        // one sent, byte for byte.
        let stored = d.received_files();
        for f in &files {
            let sop = sop_uid(f);
            let path = stored
                .get(&sop)
                .unwrap_or_else(|| panic!("{moment}: {sop} not stored"));
            assert_eq!(
                data_set_bytes(path),
                data_set_bytes(f),
                "{moment}: {sop} differs"
            );
        }
        let row = d
            .studies()
            .into_iter()
            .find(|s| s["study_instance_uid"] == uid)
            .unwrap();
        assert_eq!(row["instances"], 6, "{moment}: {row}");
        wait_until("the report in the PACS", Duration::from_secs(60), || {
            sr_count(&pacs, &uid) >= 1
        });
        studies.push(uid);
    }
    // Every job done: each queued object has left the outbox, so the PACS
    // holds all it will get. One report per study, no duplicates.
    for uid in &studies {
        wait_until("the job done", Duration::from_secs(60), || {
            job_state(&d, uid).as_deref() == Some("done")
        });
    }
    for uid in &studies {
        assert_eq!(sr_count(&pacs, uid), 1, "{uid}");
    }
    if storage.contains("journal") {
        assert!(
            d.storage().join(".journal").is_dir(),
            "the journal was not used"
        );
    }
    assert_eq!(
        moments.len() as u64,
        trials.min(4),
        "every moment tried: {moments:?}"
    );
    let instances = pacs.get("/statistics").unwrap()["CountInstances"].clone();
    eprintln!(
        "chaos: {trials} trials {moments:?}, {acknowledged_before_kill} instances acknowledged before a kill, 0 lost; {} studies, one report each; PACS holds {instances} instances",
        studies.len()
    );
}

fn wait_for_state(d: &Daemon, uid: &str, states: &[&str]) {
    wait_until("a job state", Duration::from_secs(30), || {
        job_state(d, uid).is_some_and(|s| states.contains(&s.as_str()))
    });
}

fn indexed(d: &Daemon) -> i64 {
    d.studies()
        .iter()
        .map(|s| s["instances"].as_i64().unwrap())
        .sum()
}

/// Storage on a 4 MB tmpfs: instances that do not fit are refused with
/// 0xA700 and leave nothing behind; the daemon goes on, and stores again
/// once there is room.
#[test]
fn a_full_disk_refuses_with_out_of_resources_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let mount = Tmpfs::mount(&storage, "4m");
    let (port, http) = (free_port(), free_port());
    let config = format!(
        "[dicom]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n[log]\nlevel = \"info\"\n",
        storage.display()
    );
    let d = Daemon::start_config(dir, &config, port, http);
    let ct = fixture("ct-693.dcm");
    let out = d.storescu(&["--repeat", "12", "+II", "-v"], &[&ct]);
    let log = text(&out);
    // storescu stops at the first refusal.
    let refused = log.matches("Refused: OutOfResources").count();
    let acknowledged = log.matches("Store Response (Success)").count();
    assert!(refused > 0, "nothing was refused on a 4 MB disk: {log}");
    assert!(d.log().contains("archive cannot store"), "{}", d.log());
    // What was acknowledged is all there is: no partial files, no rows
    // without files.
    let check = |d: &Daemon| {
        let files = files_under(&d.storage());
        let instances: Vec<_> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
            .collect();
        assert!(
            !files
                .iter()
                .any(|p| p.starts_with(d.storage().join(".incoming"))),
            "left in .incoming: {files:?}"
        );
        assert!(
            !files.iter().any(|p| p.to_string_lossy().ends_with(".tmp")),
            "temporary files left: {files:?}"
        );
        assert_eq!(instances.len() as i64, indexed(d), "{files:?}");
        instances.len()
    };
    let stored = check(&d);
    assert_eq!(stored, acknowledged, "{log}");
    assert!(d.echoscu(&["-aec", "TRIAGED"]).status.success());
    // Room again: the next instances are stored.
    mount.resize("64m");
    let out = d.storescu(&["--repeat", "3", "+II"], &[&ct]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(check(&d), stored + 3);
    drop(d);
}

/// A configuration on a free DICOM port, without HTTP, for `storage`.
fn config_without_http(path: &Path, storage: &Path) -> PathBuf {
    std::fs::write(
        path,
        format!(
            "[dicom]\nlisten = \"127.0.0.1:{}\"\n[storage]\ndir = \"{}\"\n[http]\nenabled = false\n",
            free_port(),
            storage.display()
        ),
    )
    .unwrap();
    path.to_path_buf()
}

/// `triaged serve` with `config` exits (within 20 s) with an error whose
/// text has each of `says`.
fn refuses_to_start(config: &Path, says: &[&str]) {
    let out = run(
        "timeout",
        &[
            "20",
            env!("CARGO_BIN_EXE_triaged"),
            "serve",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    assert!(
        !out.status.success() && out.status.code() != Some(124),
        "{}",
        text(&out)
    );
    for s in says {
        assert!(text(&out).contains(s), "'{s}' not in: {}", text(&out));
    }
}

/// A corrupt database or a storage folder another daemon uses stops the
/// start with a message that says so; nothing is deleted or changed.
#[test]
fn a_corrupt_database_or_a_busy_storage_folder_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    std::fs::create_dir_all(storage.join(".incoming")).unwrap();
    let garbage: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(storage.join("triaged.db"), &garbage).unwrap();
    std::fs::write(storage.join(".incoming").join("in-flight.tmp"), b"x").unwrap();
    let cfg = config_without_http(&dir.path().join("t.toml"), &storage);
    refuses_to_start(&cfg, &["cannot open the archive", "not a database"]);
    assert_eq!(std::fs::read(storage.join("triaged.db")).unwrap(), garbage);

    // A second daemon on a running daemon's storage.
    let d = Daemon::start("", "");
    let store = d.storescu(&[], &[&fixture("ct-small.dcm")]);
    assert!(store.status.success(), "{}", text(&store));
    let cfg = config_without_http(&dir.path().join("second.toml"), &d.storage());
    refuses_to_start(&cfg, &["in use by another triaged process"]);
    // The first one is unharmed.
    assert_eq!(d.studies().len(), 1);
    assert!(d.echoscu(&["-aec", "TRIAGED"]).status.success());
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Random bytes, truncated PDUs, absurd lengths, a PDU over the
/// negotiated maximum, slowloris and a flood of 300 association requests,
/// all at once: every connection is closed or answered, memory stays
/// bounded, and a well-behaved sender is served meanwhile and after.
#[test]
fn network_abuse_is_refused_and_others_are_served() {
    let d = Daemon::start("idle_timeout_secs = 3\nmax_associations = 32", "");
    let before = rss_kb(d.pid());
    let abuse = Command::new(python())
        .args([
            repo_root().join("tests/peers/abuse.py").to_str().unwrap(),
            &d.port.to_string(),
            "TRIAGED",
            // A deadline, not a bound: each attack ends when the listener acts.
            "180",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A well-behaved sender during the attack: refused at most while the
    // slots are full (a transient A-ASSOCIATE-RJ), then served.
    let ct = fixture("ct-small.dcm");
    let started = Instant::now();
    let mut during = None;
    while started.elapsed() < Duration::from_secs(120) {
        let out = d.storescu(&["+II"], &[&ct]);
        if out.status.success() {
            during = Some(started.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let peak = rss_kb(d.pid());
    let out = abuse.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(out.stdout.trim_ascii()).unwrap();
    for (attack, r) in report.as_object().unwrap() {
        assert_eq!(r["connected"], r["connections"], "{attack}: {report}");
        assert_eq!(r["handled"], r["connections"], "{attack}: {report}");
    }
    assert!(during.is_some(), "no store succeeded during the attack");
    let after = d.storescu(&["--repeat", "5", "+II"], &[&ct]);
    assert!(after.status.success(), "{}", text(&after));
    assert_eq!(indexed(&d), 6);
    let end = rss_kb(d.pid());
    assert!(end < before + 100_000, "RSS {before} kB -> {end} kB");
    eprintln!(
        "abuse: {report}; a store succeeded {:?} into the attack; RSS {before} kB, {peak} kB during, {end} kB after",
        during.unwrap()
    );
}

/// Eight senders at once (storescu, fresh UIDs): no failure, every
/// instance indexed. `bench/load.sh` is the long form (8 x 500).
#[test]
fn eight_concurrent_senders_lose_nothing() {
    let d = Daemon::start("", "");
    let ct = fixture("ct-small.dcm");
    let port = d.port.to_string();
    let senders: Vec<_> = (0..8)
        .map(|_| {
            Command::new("storescu")
                .args([
                    "--repeat",
                    "50",
                    "+II",
                    "-aec",
                    "TRIAGED",
                    "127.0.0.1",
                    &port,
                ])
                .arg(&ct)
                .env("TCP_NODELAY", "1")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for s in senders {
        let out = s.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(indexed(&d), 400);
    assert_eq!(
        d.instance_files().len(),
        400,
        "files on disk must match the index"
    );
}

/// A study with a distinctive patient name and ID goes through the whole
/// product (storage, analysis, report, delivery, worklist API) at debug
/// level: no log line contains either.
#[test]
fn patient_names_and_ids_never_reach_the_logs() {
    let (pacs_port, port, http) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "[dicom]\nlisten = \"127.0.0.1:{port}\"\n[storage]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:{http}\"\n[log]\nlevel = \"debug\"\n\n[[destinations]]\nname = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {pacs_port}\n\n[pipeline]\nquiet_secs = 1\n\n[models]\ndir = \"{}\"\n",
        dir.path().join("storage").display(),
        Orthanc::AE,
        repo_root().join("models").display()
    );
    let d = Daemon::start_config(dir, &config, port, http);
    let pacs = Orthanc::start_with(pacs_port, &[], true);
    let dir = tempfile::tempdir().unwrap();
    let (uid, files) = study(dir.path(), 4242, 1);
    for assignment in [
        "(0010,0010)=Zyxwvut^Secretname",
        "(0010,0020)=PID-7Q3X9-SECRET",
    ] {
        let out = run(
            "dcmodify",
            &["-nb", "-m", assignment, files[0].to_str().unwrap()],
        );
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        sr_count(&pacs, &uid) == 1
    });
    // The worklist shows the name to a signed-in user...
    let token = std::fs::read_to_string(d.storage().join("admin.token")).unwrap();
    let list = run(
        "curl",
        &[
            "-sf",
            "-H",
            &format!("Authorization: Bearer {}", token.trim()),
            &format!(
                "http://127.0.0.1:{}/api/worklist?accession=ACC",
                d.http_port
            ),
        ],
    );
    assert!(
        text(&list).contains("Zyxwvut^Secretname"),
        "{}",
        text(&list)
    );
    // ...and the logs never do.
    let log = d.log();
    assert!(
        log.contains("debug") || log.contains("DEBUG"),
        "not at debug level"
    );
    for secret in ["Zyxwvut", "Secretname", "PID-7Q3X9", "SECRET"] {
        assert!(!log.contains(secret), "'{secret}' is in the log");
    }
}
