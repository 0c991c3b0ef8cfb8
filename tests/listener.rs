//! The DICOM listener and archive, end to end: the built daemon driven by
//! DCMTK, pynetdicom and Orthanc over loopback.

mod support;

use std::path::Path;
use std::time::Duration;

use dicom_dictionary_std::tags;
use support::*;

fn study<'a>(studies: &'a [serde_json::Value], uid: &str) -> &'a serde_json::Value {
    studies
        .iter()
        .find(|s| s["study_instance_uid"] == uid)
        .unwrap_or_else(|| panic!("study {uid} not listed in {studies:#?}"))
}

fn uid_of(path: &Path, tag: dicom_core::Tag) -> String {
    let obj = dicom_object::open_file(path).unwrap();
    obj.element(tag)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

#[test]
fn echo_from_dcmtk_and_the_cli() {
    let port = free_port();
    let port_closed = free_port();
    let d = Daemon::start_at(
        port,
        "",
        &format!(
            "[[destinations]]\nname = \"self\"\nae_title = \"TRIAGED\"\nhost = \"127.0.0.1\"\nport = {port}\n\n\
             [[destinations]]\nname = \"down\"\nae_title = \"NOBODY\"\nhost = \"127.0.0.1\"\nport = {port_closed}\n"
        ),
    );

    let out = d.echoscu(&["-aec", "TRIAGED"]);
    assert!(out.status.success(), "echoscu failed: {}", text(&out));
    // Each C-ECHO-RSP must answer its own Message ID.
    let out = d.echoscu(&["-aec", "TRIAGED", "--repeat", "3"]);
    assert!(
        out.status.success(),
        "echoscu --repeat 3 failed: {}",
        text(&out)
    );

    let out = d.cli(&["echo", "self"]);
    assert!(out.status.success(), "triaged echo self: {}", text(&out));
    assert!(text(&out).contains("answered C-ECHO"), "{}", text(&out));

    let out = d.cli(&["echo", "down"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "echo to a closed port must fail: {}",
        text(&out)
    );
    assert!(text(&out).contains("C-ECHO failed"), "{}", text(&out));

    let out = d.cli(&["echo", "nosuch"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no destination named 'nosuch'"),
        "{}",
        text(&out)
    );
}

#[test]
fn stores_fifty_ct_instances_durably_and_indexed() {
    let d = Daemon::start("", "");
    let ct = fixture("ct-693.dcm");
    let out = d.storescu(&["--repeat", "50", "+II"], &[&ct]);
    assert!(out.status.success(), "storescu failed: {}", text(&out));

    // +II invents new UIDs: one new study, one series, 50 instances.
    let studies = d.studies();
    assert_eq!(studies.len(), 1, "{studies:#?}");
    let s = &studies[0];
    let study_uid = s["study_instance_uid"].as_str().unwrap().to_string();
    assert_ne!(study_uid, uid_of(&ct, tags::STUDY_INSTANCE_UID));
    assert_eq!(s["instances"], 50);
    assert_eq!(s["series"], 1);
    assert_eq!(s["modalities"], serde_json::json!(["CT"]));
    assert!(s["received_at"].as_str().unwrap().ends_with('Z'));

    let files = d.instance_files();
    assert_eq!(files.len(), 50);
    let series_uid = uid_of(&files[0], tags::SERIES_INSTANCE_UID);
    for f in &files {
        assert_eq!(uid_of(f, tags::STUDY_INSTANCE_UID), study_uid);
        // <storage>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm, named by its own UID.
        let rel = f.strip_prefix(d.storage()).unwrap();
        let parts: Vec<_> = rel
            .iter()
            .map(|p| p.to_string_lossy().to_string())
            .collect();
        assert_eq!(parts[0], study_uid);
        assert_eq!(parts[1], series_uid);
        assert_eq!(
            parts[2],
            format!("{}.dcm", uid_of(f, tags::SOP_INSTANCE_UID))
        );
    }
    // The files are valid Part 10 for an independent reader.
    let out = run("dcmdump", &["-q", &files[0].display().to_string()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(d.log().matches("instance stored").count() >= 50);
    // Logs carry UIDs, never patient data.
    let source = dicom_object::open_file(&ct).unwrap();
    for tag in [tags::PATIENT_NAME, tags::PATIENT_ID] {
        let value = source
            .element(tag)
            .unwrap()
            .to_str()
            .unwrap()
            .trim()
            .to_string();
        assert!(value.len() > 2, "fixture lacks {tag}");
        assert!(
            !d.log().contains(&value),
            "log contains patient data ({tag})"
        );
    }
    // No partial files left behind.
    assert_eq!(std::fs::read_dir(d.incoming()).unwrap().count(), 0);
}

#[test]
fn compressed_transfer_syntaxes_are_stored_as_received() {
    let d = Daemon::start("", "");
    // DCMTK's storescp in bit-preserving mode (+B) writes exactly the bytes
    // it receives: the reference for "as received".
    let reference_dir = tempfile::tempdir().unwrap();
    let ref_port = free_port();
    let mut storescp = std::process::Command::new("storescp")
        .args(["-aet", "REF", "+xa", "+B", "-od"])
        .arg(reference_dir.path())
        .arg(ref_port.to_string())
        .env("TCP_NODELAY", "1")
        .spawn()
        .expect("storescp (dcmtk)");
    wait_until("storescp", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", ref_port)).is_ok()
    });

    for (name, ts) in [
        ("j2k.dcm", "1.2.840.10008.1.2.4.91"),
        ("deflate.dcm", "1.2.840.10008.1.2.1.99"),
    ] {
        let file = fixture(name);
        let f = file.display().to_string();
        // dcmsend proposes the file's own transfer syntax.
        let out = run(
            "dcmsend",
            &["-aec", "TRIAGED", "127.0.0.1", &d.port.to_string(), &f],
        );
        assert!(out.status.success(), "dcmsend to triaged: {}", text(&out));
        let out = run(
            "dcmsend",
            &["-aec", "REF", "127.0.0.1", &ref_port.to_string(), &f],
        );
        assert!(out.status.success(), "dcmsend to storescp: {}", text(&out));

        let sop = uid_of(&file, tags::SOP_INSTANCE_UID);
        let ours = d
            .instance_files()
            .into_iter()
            .find(|p| p.file_name().unwrap().to_string_lossy() == format!("{sop}.dcm"))
            .expect("instance archived");
        let reference = std::fs::read_dir(reference_dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().contains(&sop))
            .expect("storescp wrote the instance");
        let archived = dicom_object::open_file(&ours).unwrap();
        assert_eq!(
            archived.meta().transfer_syntax().trim_end_matches('\0'),
            ts,
            "{name}"
        );
        assert!(
            data_set_bytes(&ours) == data_set_bytes(&reference),
            "{name}: archived data set differs from the bytes received"
        );
        // And the compressed pixel data is the source file's, untouched.
        let source = dicom_object::open_file(&file).unwrap();
        assert_eq!(
            archived.element(tags::PIXEL_DATA).unwrap().value(),
            source.element(tags::PIXEL_DATA).unwrap().value(),
            "{name}: pixel data changed"
        );
    }
    let _ = storescp.kill();
    let _ = storescp.wait();
}

#[test]
fn association_policy_rejects_with_the_right_reason() {
    let d = Daemon::start(
        "",
        "[[sources]]\nname = \"router\"\nae_title = \"PACSROUTER\"\nhosts = [\"127.0.0.1\"]\n\n\
         [[sources]]\nname = \"elsewhere\"\nae_title = \"FARAWAY\"\nhosts = [\"192.0.2.0/24\"]\n",
    );
    let out = d.echoscu(&["-aet", "PACSROUTER", "-aec", "TRIAGED"]);
    assert!(
        out.status.success(),
        "configured source refused: {}",
        text(&out)
    );

    let out = d.echoscu(&["-aet", "STRANGER", "-aec", "TRIAGED"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("Rejected Permanent"), "{}", text(&out));
    assert!(
        text(&out).contains("Calling AE Title Not Recognized"),
        "{}",
        text(&out)
    );

    let out = d.echoscu(&["-aet", "PACSROUTER", "-aec", "SOMEONE"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Called AE Title Not Recognized"),
        "{}",
        text(&out)
    );

    // A known AE title from a host it is not allowed to use.
    let out = d.echoscu(&["-aet", "FARAWAY", "-aec", "TRIAGED"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("Calling AE Title Not Recognized"),
        "{}",
        text(&out)
    );

    // The peer may read the A-ASSOCIATE-RJ before the daemon logs it.
    for (calling, reason) in [
        ("STRANGER", "calling AE title is not a configured source"),
        ("PACSROUTER", "called AE title is not ours"),
        (
            "FARAWAY",
            "calling AE title is not allowed from this address",
        ),
    ] {
        wait_until(
            &format!("rejection logged with '{reason}'"),
            Duration::from_secs(10),
            || {
                d.log().lines().any(|l| {
                    l.contains("association rejected")
                        && l.contains(reason)
                        && l.contains(&format!("calling_ae={calling}"))
                        && l.contains("peer=127.0.0.1")
                })
            },
        );
    }
    let log = d.log();
    assert!(log.contains("source=router"), "{log}");
}

#[test]
fn a_bad_data_set_fails_alone_and_the_association_goes_on() {
    let d = Daemon::start("", "");
    let ct = fixture("ct-small.dcm").display().to_string();
    let mr = fixture("mr-small.dcm").display().to_string();
    let out = d.py_peer(&[
        "store",
        "TRIAGED",
        &format!("garbage:{ct}"),
        &format!("truncate:{ct}:30000"),
        &format!("raw:{ct}"),
        &format!("truncate:{ct}:100"),
        &format!("raw:{mr}"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let statuses: Vec<Option<u16>> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        statuses,
        vec![Some(0xC000), Some(0xC000), Some(0), Some(0xC000), Some(0)]
    );
    let studies = d.studies();
    assert_eq!(studies.len(), 2, "{studies:#?}");
    assert_eq!(d.instance_files().len(), 2);
    assert_eq!(std::fs::read_dir(d.incoming()).unwrap().count(), 0);
    assert!(d.log().contains("data set cannot be parsed"));
}

#[test]
fn unwritable_storage_answers_out_of_resources() {
    let d = Daemon::start("", "");
    let ct = fixture("ct-small.dcm").display().to_string();
    let mr = fixture("mr-small.dcm").display().to_string();
    // Make the incoming directory unusable (a file in its place: even root
    // cannot create files in it).
    let incoming = d.incoming();
    std::fs::remove_dir(&incoming).unwrap();
    std::fs::write(&incoming, b"not a directory").unwrap();
    let repaired = d.dir.path().join("repaired");
    let peer = {
        let d_port = d.port;
        let (ct, mr, repaired) = (ct.clone(), mr.clone(), repaired.display().to_string());
        let py = python();
        let script = repo_root().join("tests/peers/dimse_peer.py");
        std::thread::spawn(move || {
            std::process::Command::new(py)
                .arg(script)
                .args(["store", &d_port.to_string(), "TRIAGED"])
                .arg(format!("raw:{ct}"))
                .arg(format!("wait:{repaired}"))
                .arg(format!("raw:{mr}"))
                .output()
                .unwrap()
        })
    };
    wait_until("the refusal", Duration::from_secs(30), || {
        d.log().contains("instance refused")
    });
    std::fs::remove_file(&incoming).unwrap();
    std::fs::create_dir(&incoming).unwrap();
    std::fs::write(&repaired, b"").unwrap();
    let out = peer.join().unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let statuses: Vec<Option<u16>> = serde_json::from_slice(&out.stdout).unwrap();
    // Refused for lack of resources, then the same association stores again.
    assert_eq!(statuses, vec![Some(0xA700), Some(0)]);
    assert_eq!(d.instance_files().len(), 1);
    assert!(d.log().contains("archive cannot store"));
}

#[test]
fn a_resend_is_idempotent() {
    let d = Daemon::start("", "");
    let ct = fixture("ct-small.dcm");
    for _ in 0..2 {
        let out = d.storescu(&[], &[&ct]);
        assert!(out.status.success(), "{}", text(&out));
    }
    let studies = d.studies();
    assert_eq!(studies.len(), 1);
    assert_eq!(studies[0]["instances"], 1);
    assert_eq!(d.instance_files().len(), 1);
    assert!(d.log().contains("resent instance replaced"));
}

#[test]
fn a_crash_and_a_restart_keep_every_acknowledged_instance() {
    let mut d = Daemon::start("", "");
    let ct = fixture("ct-small.dcm");
    let out = d.storescu(&["--repeat", "10", "+II"], &[&ct]);
    assert!(out.status.success(), "{}", text(&out));
    let before = d.studies();
    let files_before = d.instance_files();
    assert_eq!(files_before.len(), 10);

    // kill -9 right after the last Success: everything acknowledged is on
    // disk and in the index.
    d.kill();
    d.restart();
    assert_eq!(d.studies(), before);
    assert_eq!(d.instance_files(), files_before);

    // More arrive after the restart, then a clean stop.
    let out = d.storescu(&["--repeat", "5", "+II"], &[&ct]);
    assert!(out.status.success(), "{}", text(&out));
    let status = d.stop();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(d.log().contains("triaged stopped"));
    // The database was closed cleanly: WAL checkpointed and removed.
    if d.database.is_none() {
        assert!(!d.storage().join("triaged.db-wal").exists());
    }
    d.restart();
    let total: i64 = d
        .studies()
        .iter()
        .map(|s| s["instances"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 15);
    assert_eq!(d.instance_files().len(), 15);
}

#[test]
fn orthanc_as_the_router_pushes_a_study() {
    // triaged accepts Orthanc as a configured source.
    let d = Daemon::start(
        "",
        &format!(
            "[[sources]]\nname = \"orthanc\"\nae_title = \"{}\"\nhosts = [\"127.0.0.1\"]\n",
            Orthanc::AE
        ),
    );
    let orthanc = Orthanc::start(&[("triaged", "TRIAGED", d.port)]);
    // Fill Orthanc with a 20-instance CT study, sent by DCMTK.
    let ct = fixture("ct-693.dcm");
    let out = run(
        "storescu",
        &[
            "--repeat",
            "20",
            "+II",
            "-aec",
            Orthanc::AE,
            "127.0.0.1",
            &orthanc.dicom_port.to_string(),
            &ct.display().to_string(),
        ],
    );
    assert!(out.status.success(), "storescu to Orthanc: {}", text(&out));
    let studies = orthanc.get("/studies").unwrap();
    assert_eq!(studies.as_array().unwrap().len(), 1);
    let orthanc_study = studies[0].as_str().unwrap().to_string();
    let study_uid = orthanc.get(&format!("/studies/{orthanc_study}")).unwrap()["MainDicomTags"]
        ["StudyInstanceUID"]
        .as_str()
        .unwrap()
        .to_string();

    // Orthanc, as the PACS router, checks the node and pushes the study.
    orthanc.post("/modalities/triaged/echo", "{}");
    orthanc.post(
        "/modalities/triaged/store",
        &format!(r#"{{"Resources": ["{orthanc_study}"], "Synchronous": true}}"#),
    );
    let studies = d.studies();
    assert_eq!(study(&studies, &study_uid)["instances"], 20);
    assert_eq!(d.instance_files().len(), 20);
    assert!(d.log().contains("source=orthanc"));
    // Every SOP Instance UID that Orthanc holds arrived.
    let files = d.instance_files();
    let instances = orthanc
        .get(&format!("/studies/{orthanc_study}/instances"))
        .unwrap();
    assert_eq!(instances.as_array().unwrap().len(), 20);
    for i in instances.as_array().unwrap() {
        let sop = i["MainDicomTags"]["SOPInstanceUID"].as_str().unwrap();
        assert!(
            files
                .iter()
                .any(|f| f.file_name().unwrap().to_string_lossy() == format!("{sop}.dcm")),
            "{sop} missing"
        );
    }
}

#[test]
fn association_limit_and_idle_timeout() {
    // The idle timeout leaves the second association a generous window to
    // be refused in while the slot is held; the holder waits much longer
    // than the timeout for the abort.
    let d = Daemon::start("max_associations = 1\nidle_timeout_secs = 10", "");
    let holder = hold_association(&d, 120);
    let out = d.echoscu(&["-aec", "TRIAGED"]);
    assert!(
        !out.status.success(),
        "a second association must be refused"
    );
    assert!(text(&out).contains("Rejected Transient"), "{}", text(&out));
    assert!(
        text(&out).contains("Local Limit Exceeded"),
        "{}",
        text(&out)
    );

    // The idle association is aborted by the timeout, freeing the slot.
    let out = holder.join().unwrap();
    let held: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(held["established"], true);
    assert_eq!(held["aborted_by_peer"], true, "{held}");
    assert!(d.log().contains("idle timeout"), "{}", d.log());
    let out = d.echoscu(&["-aec", "TRIAGED"]);
    assert!(out.status.success(), "slot not freed: {}", text(&out));
}

#[test]
fn configuration_errors_name_the_key() {
    let exe = env!("CARGO_BIN_EXE_triaged");
    let example = repo_root().join("config/triaged.example.toml");
    let out = std::process::Command::new(exe)
        .args(["config", "check", "--config"])
        .arg(&example)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("configuration OK"));

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    // A value of the wrong kind stops the parse; the others are all listed.
    for (file, keys) in [
        (
            "[[sources]]\nname = \"x\"\nae_title = \"X\"\nhosts = [\"10.0.0.1\", \"example.org\"]\n",
            &["sources[0].hosts[1]", "example.org"][..],
        ),
        (
            "[dicom]\nae_title = \"MUCH TOO LONG AE TITLE\"\n[[sources]]\nname = \"x\"\nae_title = \"\"\n",
            &["dicom.ae_title", "sources[0].ae_title"][..],
        ),
    ] {
        std::fs::write(&bad, file).unwrap();
        for cmd in [&["config", "check"][..], &["serve"][..]] {
            let out = std::process::Command::new(exe)
                .args(cmd)
                .arg("--config")
                .arg(&bad)
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(2), "{cmd:?}: {}", text(&out));
            let t = text(&out);
            assert!(keys.iter().all(|k| t.contains(k)), "{keys:?} in {t}");
        }
    }
    std::fs::write(&bad, "[dicom]\nport = 104\n").unwrap();
    let out = std::process::Command::new(exe)
        .args(["config", "check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("unknown field `port`"),
        "{}",
        text(&out)
    );
}

#[test]
fn studies_list_without_an_archive_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndir = \"{}\"\n",
            dir.path().join("none").display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["studies", "list", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("does not exist"), "{}", text(&out));
}

#[test]
fn shutdown_ends_idle_associations_and_exits_cleanly() {
    let mut d = Daemon::start("idle_timeout_secs = 120", "");
    let holder = hold_association(&d, 30);
    let status = d.stop();
    assert!(status.success(), "{status}");
    let out = holder.join().unwrap();
    let held: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(held["aborted_by_peer"], true, "{held}");
    // Ended by the shutdown itself: not by the 120 s idle timeout, nor
    // by the end of the 30 s grace period.
    let log = d.log();
    assert!(
        log.contains("association aborted") && log.contains("reason=daemon shutting down"),
        "{log}"
    );
    assert!(!log.contains("shutdown grace period over"), "{log}");
    assert!(!log.contains("idle timeout"), "{log}");
    assert!(log.contains("triaged stopped"), "{log}");
}

#[test]
fn a_misbehaving_peer_does_not_affect_others() {
    use std::io::{Read, Write};
    let d = Daemon::start("idle_timeout_secs = 3", "");
    // Not DICOM at all.
    let mut junk = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    junk.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    // Connected, silent.
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap();
    // Others are served meanwhile.
    let out = d.storescu(&[], &[&fixture("ct-small.dcm")]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(d.studies().len(), 1);
    // Both bad connections are closed by the daemon, the silent one after
    // the idle timeout.
    for stream in [&mut junk, &mut silent] {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut buf = [0u8; 256];
        let mut total = 0;
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("connection not closed by the daemon: {e}"),
            }
            assert!(total < 4096, "unexpected data from the daemon");
        }
    }
    // The socket closes inside dicom-ul before the daemon logs why.
    wait_until("both refusals logged", Duration::from_secs(10), || {
        d.log().matches("association not established").count() >= 2
    });
    let out = d.echoscu(&["-aec", "TRIAGED"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// A flood over the association limit is bounded: with the slot taken, at
/// most 16 refusals wait for their requests at a time, and every further
/// connection is closed at once, unanswered, and counted, instead of each
/// getting a task of its own.
#[test]
fn a_flood_over_the_limit_is_closed_without_a_task_each() {
    let d = Daemon::start("max_associations = 1\nidle_timeout_secs = 120", "");
    let holder = hold_association(&d, 20);
    // 100 connections that never send a request.
    let sockets: Vec<std::net::TcpStream> = (0..100)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", d.port)).unwrap())
        .collect();
    for s in &sockets {
        s.set_nonblocking(true).unwrap();
    }
    let closed = || {
        sockets
            .iter()
            .filter(|s| matches!(s.peek(&mut [0u8; 1]), Ok(0)))
            .count()
    };
    wait_until(
        "84 connections closed unanswered",
        Duration::from_secs(60),
        || closed() == 84,
    );
    let metric = |name: &str| -> u64 {
        let out = run(
            "curl",
            &["-s", &format!("http://127.0.0.1:{}/metrics", d.http_port)],
        );
        text(&out)
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} not in /metrics: {}", text(&out)))
    };
    assert_eq!(metric("triaged_connections_dropped_total"), 84);
    assert_eq!(metric("triaged_associations_over_limit_total"), 16);
    // The 16 refusals are still waiting for their requests, not closed.
    assert_eq!(closed(), 84);
    drop(sockets);
    let _ = holder.join();
}

/// The pynetdicom peer holds one idle association for up to `seconds`
/// (it returns sooner when the daemon ends it); returns once the daemon has
/// logged it. The thread's output says whether the daemon aborted it.
fn hold_association(d: &Daemon, seconds: u32) -> std::thread::JoinHandle<std::process::Output> {
    let (port, py, script) = (
        d.port,
        python(),
        repo_root().join("tests/peers/dimse_peer.py"),
    );
    let holder = std::thread::spawn(move || {
        std::process::Command::new(py)
            .arg(script)
            .args(["hold", &port.to_string(), "TRIAGED", &seconds.to_string()])
            .output()
            .unwrap()
    });
    wait_until("the held association", Duration::from_secs(20), || {
        d.log().contains("calling_ae=PYPEER")
    });
    holder
}
