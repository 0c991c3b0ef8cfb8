//! DICOMweb: an independent client (dicomweb-client, PyPI) stores a study
//! by STOW-RS, finds it by QIDO-RS and reads it back by WADO-RS, data sets
//! byte for byte; the study is analysed like one sent by C-STORE; bad
//! requests get clear statuses and store nothing; Orthanc's DICOMweb
//! plugin queries triaged and pulls a study from it.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use phantom::{Grade, Label};
use support::*;

const SENDER: &str = "5e4de85e4de85e4de85e4de85e4de85e4de85e4de85e4de85e4de85e4de8aaaa";
const READER: &str = "4ead4ead4ead4ead4ead4ead4ead4ead4ead4ead4ead4ead4ead4ead4ead4ead";

fn daemon() -> Daemon {
    daemon_with("")
}

/// With `extra` (destinations) after the usual configuration.
fn daemon_with(extra: &str) -> Daemon {
    daemon_config(1, extra)
}

/// With `[http] max_stow_mb` and `extra` after the usual configuration.
fn daemon_config(max_stow_mb: u32, extra: &str) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let (port, http_port) = (free_port(), free_port());
    let text = format!(
        "[dicom]\nae_title = \"TRIAGED\"\nlisten = \"127.0.0.1:{port}\"\n\n\
         [storage]\ndir = \"{storage}\"\n\n\
         [http]\nlisten = \"127.0.0.1:{http_port}\"\nmax_stow_mb = {max_stow_mb}\n\
         [[http.users]]\nname = \"router\"\nrole = \"sender\"\ntoken_sha256 = \"{sender}\"\n\
         [[http.users]]\nname = \"dr\"\nrole = \"radiologist\"\ntoken_sha256 = \"{reader}\"\n\n\
         [pipeline]\nquiet_secs = 0.5\n\n[models]\ndir = \"{models}\"\n\n{extra}",
        storage = dir.path().join("storage").display(),
        sender = web::auth::token_hash(SENDER),
        reader = web::auth::token_hash(READER),
        models = repo_root().join("models").display()
    );
    Daemon::start_config(dir, &text, port, http_port)
}

fn base(d: &Daemon) -> String {
    format!("http://127.0.0.1:{}/dicomweb", d.http_port)
}

fn peer(d: &Daemon, token: &str, args: &[&str]) -> Output {
    std::process::Command::new(python())
        .arg(repo_root().join("tests/peers/dicomweb_peer.py"))
        .arg(base(d))
        .arg(token)
        .args(args)
        .output()
        .unwrap()
}

/// `curl` with a bearer token: (status, headers, body).
fn curl(token: Option<&str>, args: &[&str]) -> (u16, String, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let (head, body) = (dir.path().join("head"), dir.path().join("body"));
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut a = vec![
        "-s",
        "-D",
        head.to_str().unwrap(),
        "-o",
        body.to_str().unwrap(),
    ];
    if let Some(h) = &auth {
        a.extend(["-H", h.as_str()]);
    }
    a.extend_from_slice(args);
    let out = run("curl", &a);
    assert!(out.status.success(), "{}", text(&out));
    let head = std::fs::read_to_string(head).unwrap();
    let status = head
        .lines()
        .rev()
        .find(|l| l.starts_with("HTTP/"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap();
    (status, head, std::fs::read(body).unwrap())
}

/// A multipart/related body of `parts` (content type, bytes).
fn multipart(parts: &[(&str, Vec<u8>)]) -> (String, Vec<u8>) {
    let boundary = "stow-boundary-0123456789";
    let mut body = Vec::new();
    for (ct, bytes) in parts {
        body.extend(format!("--{boundary}\r\nContent-Type: {ct}\r\n\r\n").bytes());
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (
        format!("Content-Type: multipart/related; type=\"application/dicom\"; boundary={boundary}"),
        body,
    )
}

fn post(
    d: &Daemon,
    token: Option<&str>,
    path: &str,
    ct: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("body");
    std::fs::write(&f, body).unwrap();
    let data = format!("@{}", f.display());
    let url = format!("{}{path}", base(d));
    let (status, _, body) = curl(
        token,
        // Above 1 MiB curl asks `Expect: 100-continue`; it waits for the
        // answer as long as a client that honours a 413 would.
        &[
            "-X",
            "POST",
            "-H",
            ct,
            "--expect100-timeout",
            "60",
            "--data-binary",
            &data,
            &url,
        ],
    );
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

fn instance_count(d: &Daemon) -> usize {
    d.received_files().len()
}

#[test]
fn a_study_goes_in_by_stow_and_comes_back_by_qido_and_wado() {
    let d = daemon();
    let work = tempfile::tempdir().unwrap();
    let (study, files) = phantom_study(
        work.path(),
        3031,
        vec![(Label::Pneumothorax, Grade::Severe)],
        2,
    );
    let paths: Vec<&str> = files.iter().map(|f| f.to_str().unwrap()).collect();

    // STOW-RS by an independent client.
    let mut args = vec!["store"];
    args.extend(&paths);
    let out = peer(&d, SENDER, &args);
    assert!(out.status.success(), "{}", text(&out));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        answer["00081199"]["Value"].as_array().unwrap().len(),
        2,
        "{answer}"
    );
    assert!(answer.get("00081198").is_none(), "{answer}");

    // Analysed like a study sent by C-STORE.
    wait_until("the study analysed", Duration::from_secs(90), || {
        d.studies()
            .iter()
            .any(|s| s["study_instance_uid"] == study && s["status"] == "done")
    });

    // QIDO-RS by the same client: by patient ID with a wildcard, by date
    // range, with triaged's priority; nothing for another patient.
    let patient = dicom_object::open_file(&files[0])
        .unwrap()
        .element(dicom_dictionary_std::tags::PATIENT_ID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim()
        .to_string();
    let prefix = format!("PatientID={}*", &patient[..4]);
    let out = peer(
        &d,
        READER,
        &["search", &prefix, "StudyDate=19000101-29991231"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let found: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["0020000D"]["Value"][0], study.as_str());
    assert_eq!(found[0]["00201208"]["Value"][0], 2);
    assert_eq!(found[0]["00111001"]["Value"][0], "URGENT");
    let out = peer(&d, READER, &["search", "PatientID=NOBODY*"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "[]",
        "{}",
        text(&out)
    );

    // WADO-RS: attribute for attribute by the client, byte for byte here.
    let mut args = vec!["retrieve", study.as_str()];
    args.extend(&paths);
    let out = peer(&d, READER, &args);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "same 2");
    let url = format!("{}/studies/{study}", base(&d));
    let (status, head, body) = curl(Some(READER), &[&url]);
    assert_eq!(status, 200);
    let ct = head
        .lines()
        .find_map(|l| l.strip_prefix("content-type: "))
        .unwrap()
        .trim()
        .to_string();
    let boundary = web::dicomweb::multipart::media_type(&ct)
        .1
        .into_iter()
        .find(|(k, _)| k == "boundary")
        .unwrap()
        .1;
    let parts = web::dicomweb::multipart::parse(&body, &boundary).unwrap();
    assert_eq!(parts.len(), 2);
    let sent: Vec<Vec<u8>> = files.iter().map(|f| data_set_bytes(f)).collect();
    for p in &parts {
        let tmp = work.path().join("part.dcm");
        std::fs::write(&tmp, p.body).unwrap();
        assert!(sent.contains(&data_set_bytes(&tmp)), "a data set changed");
    }

    // Metadata, a frame and a rendering.
    let sop = support::sop_uid(&files[0]);
    let series = dicom_object::open_file(&files[0])
        .unwrap()
        .element(dicom_dictionary_std::tags::SERIES_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string();
    let instance = format!(
        "{}/studies/{study}/series/{series}/instances/{sop}",
        base(&d)
    );
    let (status, _, body) = curl(Some(READER), &[&format!("{instance}/metadata")]);
    assert_eq!(status, 200);
    let meta: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(meta[0]["00100020"]["Value"][0], patient.as_str());
    let bulk = meta[0]["7FE00010"]["BulkDataURI"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, _, frame) = curl(Some(READER), &[&bulk]);
    assert_eq!(status, 200);
    let obj = dicom_object::open_file(&files[0]).unwrap();
    let pixels = obj
        .element(dicom_dictionary_std::tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .to_vec();
    assert!(
        frame.windows(pixels.len()).any(|w| w == pixels.as_slice()),
        "the frame holds the pixel data"
    );
    let (status, head, png) = curl(
        Some(READER),
        &["-H", "Accept: image/png", &format!("{instance}/rendered")],
    );
    assert_eq!(status, 200, "{head}");
    assert_eq!(&png[1..4], b"PNG");

    // Every DICOMweb access is in the audit trail.
    let out = d.cli(&["audit", "export"]);
    let actions: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for a in ["dicomweb.store", "dicomweb.query", "dicomweb.retrieve"] {
        assert!(actions.iter().any(|x| x == a), "{a} not in {actions:?}");
    }
}

#[test]
fn bad_stow_requests_get_clear_statuses_and_store_nothing_half() {
    let d = daemon();
    let work = tempfile::tempdir().unwrap();
    let (study, files) = phantom_study(work.path(), 3032, vec![], 1);
    let good = std::fs::read(&files[0]).unwrap();
    let (ct, body) = multipart(&[("application/dicom", good.clone())]);

    // No token, a radiologist's token: refused.
    assert_eq!(post(&d, None, "/studies", &ct, &body).0, 401);
    assert_eq!(post(&d, Some(READER), "/studies", &ct, &body).0, 403);
    // And a sender cannot read.
    let (status, _, _) = curl(Some(SENDER), &[&format!("{}/studies", base(&d))]);
    assert_eq!(status, 403);
    // Not multipart/related of application/dicom.
    let (s, v) = post(
        &d,
        Some(SENDER),
        "/studies",
        "Content-Type: application/dicom",
        &good,
    );
    assert_eq!(s, 415, "{v}");
    let (s, v) = post(
        &d,
        Some(SENDER),
        "/studies",
        "Content-Type: multipart/related; type=\"application/dicom+json\"; boundary=x",
        &body,
    );
    assert_eq!(s, 415, "{v}");
    // A malformed body.
    let (s, v) = post(&d, Some(SENDER), "/studies", &ct, &body[..body.len() / 2]);
    assert_eq!(s, 400, "{v}");
    assert!(v["error"].as_str().unwrap().contains("malformed"), "{v}");
    // Too large for [http] max_stow_mb = 1.
    let big = vec![0u8; 2 << 20];
    let (ct_big, body_big) = multipart(&[("application/dicom", big)]);
    assert_eq!(
        post(&d, Some(SENDER), "/studies", &ct_big, &body_big).0,
        413
    );
    // Refused on its announced length, before any of it is sent: a client
    // waiting for `100 Continue` uploads nothing.
    let dir = tempfile::tempdir().unwrap();
    let big_file = dir.path().join("big");
    std::fs::write(&big_file, &body_big).unwrap();
    let out = run(
        "curl",
        &[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{size_upload}",
            "-H",
            &format!("Authorization: Bearer {SENDER}"),
            "-H",
            &ct_big,
            "--expect100-timeout",
            "60",
            "--data-binary",
            &format!("@{}", big_file.display()),
            &format!("{}/studies", base(&d)),
        ],
    );
    assert_eq!(text(&out).trim(), "413 0");
    // Another study's URL: refused with 0xA900 (conflict: nothing stored).
    let (s, v) = post(&d, Some(SENDER), "/studies/1.2.3.4", &ct, &body);
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["00081198"]["Value"][0]["00081197"]["Value"][0], 0xA900);
    assert_eq!(instance_count(&d), 0);

    // A bad part fails alone: 202, the good one stored, the bad one named.
    let (ct2, body2) = multipart(&[
        ("application/dicom", b"not DICOM at all".to_vec()),
        ("application/dicom", good.clone()),
        ("text/plain", b"hello".to_vec()),
    ]);
    let (s, v) = post(&d, Some(SENDER), &format!("/studies/{study}"), &ct2, &body2);
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["00081199"]["Value"].as_array().unwrap().len(), 1, "{v}");
    let failed = v["00081198"]["Value"].as_array().unwrap();
    assert_eq!(failed.len(), 2, "{v}");
    assert_eq!(failed[0]["00081197"]["Value"][0], 0xC000);
    assert!(failed[0]["00111010"]["Value"][0]
        .as_str()
        .unwrap()
        .contains("not a DICOM Part 10 file"));
    assert!(failed[1]["00111010"]["Value"][0]
        .as_str()
        .unwrap()
        .contains("text/plain"));
    assert_eq!(instance_count(&d), 1);
    assert!(d
        .studies()
        .iter()
        .any(|s| s["study_instance_uid"] == study.as_str()));
}

/// A client that sends its whole request before it reads the answer (as
/// a client that does not ask `Expect: 100-continue` does) gets the
/// refusal, not a reset: the daemon reads (and drops) a refused body,
/// up to `[http] max_stow_mb`, before it answers and closes. A server that
/// answers and closes with the body unread makes the kernel answer the
/// rest with RST, and the client's send fails (or its unread 401/403 is
/// discarded). The body is larger than loopback's socket buffers hold, so
/// the request cannot be written in full unless the daemon reads it: the
/// race is forced, not left to chance.
#[test]
fn a_refused_stow_is_answered_after_its_body_not_reset() {
    use std::io::{Read, Write};
    let d = daemon_config(64, "");
    let (ct, body) = multipart(&[("application/dicom", vec![7u8; 48 << 20])]);
    let body = std::sync::Arc::new(body);
    for (token, want) in [(None, 401), (Some(READER), 403)].repeat(2) {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let head = format!(
            "POST /dicomweb/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}{ct}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", d.http_port)).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let body = body.clone();
        let sent = std::thread::spawn(move || {
            writer.write_all(head.as_bytes())?;
            writer.write_all(&body)
        });
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let sent = sent.join().unwrap();
        let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).to_string();
        assert!(
            sent.is_ok(),
            "the request was cut off: {sent:?}; answer {head:?}"
        );
        assert!(read.is_ok(), "the answer was lost: {read:?}; got {head:?}");
        assert!(
            head.starts_with(&format!("HTTP/1.1 {want} ")),
            "{head:?} (want {want})"
        );
    }
    assert_eq!(instance_count(&d), 0);
}

/// Orthanc with its DICOMweb plugin; `servers`: its DicomWeb.Servers.
fn orthanc_dicomweb(servers: &str) -> Orthanc {
    let dir = tempfile::tempdir().unwrap();
    let (http_port, dicom_port) = (free_port(), free_port());
    let db = dir.path().join("db");
    let config = format!(
        r#"{{"Name": "TestPACS", "StorageDirectory": "{db}", "IndexDirectory": "{db}",
           "Plugins": ["/usr/share/orthanc/plugins/libOrthancDicomWeb.so"],
           "HttpPort": {http_port}, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
           "DicomAet": "{ae}", "DicomPort": {dicom_port}, "StableAge": 5, "SaveJobs": false,
           "DicomWeb": {{"Enable": true, "Root": "/dicom-web/", "Servers": {{ {servers} }}}}}}"#,
        db = db.display(),
        ae = Orthanc::AE,
    );
    Orthanc::start_config(dir, &config, http_port, dicom_port)
}

fn orthanc_with_dicomweb(d: &Daemon) -> Orthanc {
    orthanc_dicomweb(&format!(
        r#""triaged": {{"Url": "{}/", "HttpHeaders": {{"Authorization": "Bearer {READER}"}}}}"#,
        base(d)
    ))
}

#[test]
fn orthanc_s_dicomweb_plugin_queries_and_pulls_a_study_from_triaged() {
    let d = daemon();
    let work = tempfile::tempdir().unwrap();
    let (study, files) = phantom_study(work.path(), 3033, vec![], 3);
    let out = d.storescu(
        &[],
        &files.iter().map(PathBuf::as_path).collect::<Vec<&Path>>(),
    );
    assert!(out.status.success(), "{}", text(&out));
    let pacs = orthanc_with_dicomweb(&d);

    // QIDO-RS through Orthanc.
    let found = pacs.post(
        "/dicom-web/servers/triaged/qido",
        &format!(r#"{{"Uri": "/studies", "Arguments": {{"StudyInstanceUID": "{study}"}}}}"#),
    );
    let found = found.as_array().cloned().unwrap_or_default();
    assert_eq!(found.len(), 1, "{found:?}\n{}", pacs.log());
    let series = pacs.post(
        "/dicom-web/servers/triaged/qido",
        &format!(r#"{{"Uri": "/studies/{study}/series"}}"#),
    );
    assert_eq!(series.as_array().map(Vec::len), Some(1), "{series}");

    // WADO-RS: Orthanc pulls the whole study.
    pacs.post(
        "/dicom-web/servers/triaged/retrieve",
        &format!(r#"{{"Resources": [{{"Study": "{study}"}}]}}"#),
    );
    wait_until("Orthanc holds the study", Duration::from_secs(60), || {
        pacs.instances(&study, None).len() == 3
    });
    let sops: Vec<String> = pacs
        .instances(&study, None)
        .iter()
        .map(|t| t["SOPInstanceUID"].as_str().unwrap().to_string())
        .collect();
    for f in &files {
        assert!(sops.contains(&support::sop_uid(f)));
    }
}

#[test]
fn results_go_to_a_dicomweb_server_by_stow_rs() {
    let pacs = orthanc_dicomweb("");
    let d = daemon_with(&format!(
        "[[destinations]]\nname = \"cloud\"\nkind = \"dicomweb\"\nurl = \"http://127.0.0.1:{port}/dicom-web\"\n\n\
         [[destinations]]\nname = \"wrong\"\nkind = \"dicomweb\"\nurl = \"http://127.0.0.1:{port}/not-dicom-web\"\n",
        port = pacs.http_port
    ));
    let work = tempfile::tempdir().unwrap();
    let (study, files) = phantom_study(
        work.path(),
        3034,
        vec![(Label::Pneumothorax, Grade::Severe)],
        1,
    );
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    let rows = |name: &str| -> Vec<serde_json::Value> {
        let out = d.cli(&["outbox", "list", "--json"]);
        let all: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        all.into_iter()
            .filter(|r| r["destination"] == name)
            .collect()
    };
    wait_until(
        "every result delivered or dead",
        Duration::from_secs(90),
        || {
            let (cloud, wrong) = (rows("cloud"), rows("wrong"));
            !cloud.is_empty()
                && cloud.iter().all(|r| r["state"] == "delivered")
                && wrong.len() == cloud.len()
                && wrong.iter().all(|r| r["state"] == "dead")
        },
    );
    // The SR and the heatmap captures, in the source study, by STOW-RS.
    assert_eq!(pacs.count(&study, "SR"), 1);
    assert_eq!(pacs.count(&study, "OT"), rows("cloud").len() - 1);
    // A server that answers 404 is dead letter, with its words.
    let wrong = rows("wrong");
    assert!(
        wrong[0]["last_error"]
            .as_str()
            .unwrap()
            .contains("answered HTTP 404"),
        "{wrong:?}"
    );
}

/// kill -9 while a router sends a study by STOW-RS, an instance a
/// request, after a different number of instances each trial: after a restart and the
/// router resending what was not answered 200, every instance is stored,
/// byte for byte, and indexed once.
#[test]
fn kill_9_during_stow_rs_loses_nothing_that_was_acknowledged() {
    let mut d = daemon();
    let work = tempfile::tempdir().unwrap();
    let mut acknowledged = 0;
    for trial in 0..4u64 {
        let (uid, files) = phantom_study(work.path(), 3100 + trial, vec![], 6);
        let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        let mut cmd = std::process::Command::new(python());
        cmd.arg(repo_root().join("tests/peers/dicomweb_peer.py"))
            .arg(base(&d))
            .arg(SENDER)
            .arg("store-each")
            .args(&paths)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let before = instance_count(&d);
        let mut child = cmd.spawn().unwrap();
        // Among the requests: after 1, 2, 3, then 4 instances are on disk.
        let target = before + 1 + trial as usize;
        wait_until("instances arriving", Duration::from_secs(60), || {
            instance_count(&d) >= target || child.try_wait().unwrap().is_some()
        });
        d.kill();
        let out = child.wait_with_output().unwrap();
        let sent: Vec<Option<u16>> = serde_json::from_slice(out.stdout.trim_ascii())
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        acknowledged += sent.iter().filter(|s| **s == Some(200)).count();
        d.restart();
        let retry: Vec<&str> = paths
            .iter()
            .zip(&sent)
            .filter(|(_, s)| **s != Some(200))
            .map(|(p, _)| p.as_str())
            .collect();
        if !retry.is_empty() {
            let mut args = vec!["store-each"];
            args.extend(&retry);
            let again = peer(&d, SENDER, &args);
            let again: Vec<Option<u16>> =
                serde_json::from_slice(again.stdout.trim_ascii()).unwrap();
            assert!(again.iter().all(|s| *s == Some(200)), "{again:?}");
        }
        let stored = d.received_files();
        for f in &files {
            let sop = support::sop_uid(f);
            let path = stored
                .get(&sop)
                .unwrap_or_else(|| panic!("trial {trial}: {sop} not stored"));
            assert_eq!(data_set_bytes(path), data_set_bytes(f), "{sop} differs");
        }
        let row = d
            .studies()
            .into_iter()
            .find(|s| s["study_instance_uid"] == uid.as_str())
            .unwrap();
        assert_eq!(row["instances"], 6, "trial {trial}: {row}");
    }
    eprintln!("stow chaos: 4 trials, {acknowledged} instances acknowledged before a kill, 0 lost");
}
