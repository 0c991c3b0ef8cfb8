//! Results where radiologists and clinicians work: an analysed study's
//! result reaches a RIS as HL7 v2 ORU^R01 over MLLP, a FHIR server as a
//! transaction Bundle and an alerting service as a signed webhook, beside
//! the SR in the PACS; refusals go to dead letter with the peer's words;
//! outages and a kill -9 in the middle of a delivery end with exactly one
//! message filed per destination. The peers are tests/peers/*.py, built on
//! `hl7` and `fhir.resources` from PyPI.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use phantom::{Grade, Label};
use serde_json::Value;
use support::*;

/// A peer from tests/peers, killed when dropped; what it saw is in `log`.
struct Peer {
    child: Child,
    log: PathBuf,
}

impl Peer {
    /// `script PORT LOG MODE ARGS...` on `port`, once it says it is ready.
    fn start(script: &str, port: u16, log: &Path, mode: &str, args: &[&str]) -> Peer {
        let mut child = Command::new(python())
            .arg(repo_root().join("tests/peers").join(script))
            .arg(port.to_string())
            .arg(log)
            .arg(mode)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "{script} did not start");
        Peer {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Every line it recorded, parsed.
    fn seen(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const TOKEN: &str = "fhir-test-token";
const SECRET: &str = "webhook-test-secret";

/// Each peer's log and the secrets the daemon reads.
struct Setup {
    dir: tempfile::TempDir,
    hl7_port: u16,
    fhir_port: u16,
    hook_port: u16,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), format!("{TOKEN}\n")).unwrap();
        std::fs::write(dir.path().join("secret"), SECRET).unwrap();
        Setup {
            dir,
            hl7_port: free_port(),
            fhir_port: free_port(),
            hook_port: free_port(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn ris(&self, mode: &str) -> Peer {
        Peer::start(
            "hl7_receiver.py",
            self.hl7_port,
            &self.path("hl7.log"),
            mode,
            &[],
        )
    }

    fn fhir(&self, mode: &str) -> Peer {
        Peer::start(
            "fhir_server.py",
            self.fhir_port,
            &self.path("fhir.log"),
            mode,
            &[TOKEN],
        )
    }

    fn hook(&self, mode: &str) -> Peer {
        Peer::start(
            "webhook_receiver.py",
            self.hook_port,
            &self.path("hook.log"),
            mode,
            &[SECRET],
        )
    }

    /// A daemon with the bundled model, sending to the three peers (and to
    /// `extra` destinations), retrying quickly.
    fn daemon(&self, extra: &str) -> Daemon {
        Daemon::start(
            "",
            &format!(
                r#"
[[destinations]]
name = "ris"
kind = "hl7"
host = "127.0.0.1"
port = {}
sending_facility = "RADIOLOGY"
receiving_application = "RIS"
receiving_facility = "GENERAL"

[[destinations]]
name = "fhir"
kind = "fhir"
url = "http://127.0.0.1:{}/fhir"
token_file = "{}"

[[destinations]]
name = "alert"
kind = "webhook"
url = "http://127.0.0.1:{}/alerts"
secret_file = "{}"

{extra}

[pipeline]
quiet_secs = 1

[models]
dir = "{}"

[outbox]
first_retry_secs = 1
max_retry_secs = 2
timeout_secs = 3
"#,
                self.hl7_port,
                self.fhir_port,
                self.path("token").display(),
                self.hook_port,
                self.path("secret").display(),
                repo_root().join("models").display()
            ),
        )
    }
}

/// An urgent phantom study (a severe pneumothorax), stored into `d`.
fn send_urgent_study(d: &Daemon, dir: &Path, seed: u64) -> String {
    let (uid, files) = phantom_study(dir, seed, vec![(Label::Pneumothorax, Grade::Severe)], 1);
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    uid
}

/// `triaged outbox list --json`, parsed.
fn outbox(d: &Daemon) -> Vec<Value> {
    let out = d.cli(&["outbox", "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn state_of(d: &Daemon, destination: &str) -> Vec<String> {
    outbox(d)
        .into_iter()
        .filter(|r| r["destination"] == destination)
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect()
}

fn filed(peer: &Peer, accepted: impl Fn(&Value) -> bool) -> Vec<Value> {
    peer.seen()
        .into_iter()
        .filter(|e| accepted(e) && e["duplicate"] != true)
        .collect()
}

fn hl7_filed(p: &Peer) -> Vec<Value> {
    filed(p, |e| e["answered"] == "AA")
}

fn fhir_created(p: &Peer) -> Vec<String> {
    p.seen()
        .iter()
        .flat_map(|e| e["created"].as_array().cloned().unwrap_or_default())
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

fn hook_filed(p: &Peer) -> Vec<Value> {
    filed(p, |e| e["status"] == 204)
}

#[test]
fn an_urgent_study_reaches_the_pacs_the_ris_the_fhir_server_and_the_alert() {
    let s = Setup::new();
    let (ris, fhir, hook) = (s.ris("aa"), s.fhir("ok"), s.hook("ok"));
    let pacs_port = free_port();
    let d = s.daemon(&format!(
        "[[destinations]]\nname = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {pacs_port}\n",
        Orthanc::AE
    ));
    let pacs = Orthanc::start_with(pacs_port, &[], true);
    let study = send_urgent_study(&d, s.dir.path(), 9101);
    wait_until("every destination served", Duration::from_secs(60), || {
        !hl7_filed(&ris).is_empty()
            && !fhir_created(&fhir).is_empty()
            && !hook_filed(&hook).is_empty()
            && pacs
                .sop_classes(&study)
                .iter()
                .any(|c| c.ends_with(".88.34"))
    });

    // HL7: one ORU^R01, parsed by the hl7 library, with the study's order,
    // the urgent priority and the findings.
    let m = &hl7_filed(&ris)[0];
    assert_eq!(m["MSH-3"], "TRIAGED");
    assert_eq!(m["MSH-4"], "RADIOLOGY");
    assert_eq!(m["MSH-5"], "RIS");
    assert_eq!(m["MSH-12"], "2.5.1");
    assert_eq!(m["OBR-5"], "S");
    assert_eq!(m["OBR-25"], "P");
    assert_eq!(m["TQ1-9"], "S^Stat^HL70485");
    assert!(
        m["NTE-3"]
            .as_str()
            .unwrap()
            .contains("not for diagnostic use"),
        "{m}"
    );
    let accession = m["OBR-3"].as_str().unwrap();
    assert!(!accession.is_empty() && m["OBR-2"] == accession, "{m}");
    let obx = m["OBX"].as_array().unwrap();
    let pneumothorax = obx
        .iter()
        .find(|o| o["id"] == "36118008^Pneumothorax^SCT")
        .unwrap_or_else(|| panic!("no pneumothorax OBX in {m}"));
    assert_eq!(pneumothorax["type"], "NM");
    assert_eq!(pneumothorax["flag"], "A");
    let p: f64 = pneumothorax["value"].as_str().unwrap().parse().unwrap();
    assert!((0.0..=1.0).contains(&p), "{pneumothorax}");
    assert!(
        obx.iter().any(|o| o["type"] == "ST" && o["value"] == study),
        "{m}"
    );
    assert!(
        obx.iter().any(|o| o["id"] == "111001^Algorithm Name^DCM"),
        "{m}"
    );

    // FHIR: one Bundle that fhir.resources accepts; five resources made.
    wait_until("the FHIR bundle recorded", Duration::from_secs(10), || {
        fhir.seen().iter().any(|e| e["status"] == 200)
    });
    let seen = fhir.seen();
    let b = &seen.iter().find(|e| e["status"] == 200).unwrap()["bundle"];
    let created = fhir_created(&fhir);
    assert_eq!(
        created.len(),
        b["entry"].as_array().unwrap().len(),
        "{created:?}"
    );
    let report = b["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "DiagnosticReport")
        .unwrap();
    assert_eq!(
        report["resource"]["imagingStudy"][0]["identifier"]["value"],
        format!("urn:oid:{study}")
    );
    assert_eq!(seen[0]["content_type"], "application/fhir+json");

    // Webhook: signed, urgent, linking to the study, without the patient.
    let alert = &hook_filed(&hook)[0];
    assert_eq!(alert["signed"], true);
    assert_eq!(alert["payload"]["priority"], "urgent");
    assert_eq!(
        alert["payload"]["link"],
        format!("http://127.0.0.1:{}/#study={study}", d.http_port)
    );
    assert!(alert["payload"].get("patient").is_none(), "{alert}");

    // One row per destination for the report message, all delivered.
    for name in ["ris", "fhir", "alert"] {
        assert_eq!(state_of(&d, name), ["delivered"], "{name}");
    }
    assert!(
        state_of(&d, "pacs").len() >= 2,
        "the SR and a heatmap capture"
    );
    assert!(
        !d.log().contains("PHANTOM^"),
        "a patient name reached the log"
    );
}

#[test]
fn refusals_go_to_dead_letter_with_the_peer_s_words() {
    let s = Setup::new();
    let (_ris, _fhir, _hook) = (s.ris("ae"), s.fhir("reject"), s.hook("ok"));
    let d = s.daemon("");
    send_urgent_study(&d, s.dir.path(), 9102);
    wait_until("both refusals dead", Duration::from_secs(60), || {
        state_of(&d, "ris") == ["dead"] && state_of(&d, "fhir") == ["dead"]
    });
    let rows = outbox(&d);
    let error = |name: &str| {
        rows.iter().find(|r| r["destination"] == name).unwrap()["last_error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(
        error("ris").contains("answered AE: PID-3 not on file"),
        "{}",
        error("ris")
    );
    assert!(
        error("fhir").contains("HTTP 422: Patient identifier PH-x is not known here"),
        "{}",
        error("fhir")
    );
}

#[test]
fn a_wrong_signature_secret_is_refused_by_the_receiver() {
    let s = Setup::new();
    // The receiver knows another secret: it answers 401, a rejection.
    let hook = Peer::start(
        "webhook_receiver.py",
        s.hook_port,
        &s.path("hook.log"),
        "ok",
        &["not-the-secret"],
    );
    let (_ris, _fhir) = (s.ris("aa"), s.fhir("ok"));
    let d = s.daemon("");
    send_urgent_study(&d, s.dir.path(), 9103);
    wait_until("the alert dead", Duration::from_secs(60), || {
        state_of(&d, "alert") == ["dead"]
    });
    assert!(hook
        .seen()
        .iter()
        .all(|e| e["signed"] == false && e["status"] == 401));
}

#[test]
fn outages_are_retried_and_each_peer_files_the_result_once() {
    let s = Setup::new();
    // The RIS never answers, then drops connections; the FHIR server and
    // the alert service answer 503.
    let silent = s.ris("silent");
    let fhir_down = s.fhir("unavailable");
    let hook_down = s.hook("unavailable");
    let d = s.daemon("");
    send_urgent_study(&d, s.dir.path(), 9104);
    wait_until("attempts at every peer", Duration::from_secs(60), || {
        !silent.seen().is_empty() && !fhir_down.seen().is_empty() && !hook_down.seen().is_empty()
    });
    wait_until(
        "a timeout on the silent RIS",
        Duration::from_secs(30),
        || d.log().contains("did not answer within 3 s"),
    );
    drop(silent);
    let closing = s.ris("close");
    wait_until("an attempt cut short", Duration::from_secs(30), || {
        closing.seen().iter().any(|e| e["mode"] == "close")
    });
    // The attempt's outcome is recorded just after the peer saw it.
    for name in ["ris", "fhir", "alert"] {
        wait_until(
            &format!("{name} retried, not dead"),
            Duration::from_secs(30),
            || state_of(&d, name) == ["pending"],
        );
    }
    drop((closing, fhir_down, hook_down));
    let (ris, fhir, hook) = (s.ris("aa"), s.fhir("ok"), s.hook("ok"));
    wait_until("all delivered", Duration::from_secs(60), || {
        ["ris", "fhir", "alert"]
            .iter()
            .all(|n| state_of(&d, n) == ["delivered"])
    });
    assert_eq!(hl7_filed(&ris).len(), 1);
    assert_eq!(hook_filed(&hook).len(), 1);
    let created = fhir_created(&fhir);
    let mut unique = created.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), created.len(), "{created:?}");
    let rows = outbox(&d);
    let ris_row = rows.iter().find(|r| r["destination"] == "ris").unwrap();
    assert!(ris_row["attempts"].as_i64().unwrap() >= 3, "{ris_row}");
    assert!(d.log().contains("closed the connection"), "{}", d.log());
}

#[test]
fn a_kill_while_the_peers_are_answering_files_each_result_once() {
    let s = Setup::new();
    // Each peer files what it receives but has not answered when the
    // daemon dies: the restarted daemon sends again, with the same
    // identifiers, and each peer recognises the repeat.
    let (ris, fhir, hook) = (s.ris("slow"), s.fhir("slow"), s.hook("slow"));
    let mut d = s.daemon("");
    send_urgent_study(&d, s.dir.path(), 9105);
    wait_until(
        "every peer holding its message",
        Duration::from_secs(60),
        || {
            ris.seen().iter().any(|e| e["answered"] == "AA")
                && fhir
                    .seen()
                    .iter()
                    .any(|e| e["created"].as_array().is_some_and(|c| !c.is_empty()))
                && hook.seen().iter().any(|e| e["status"] == 204)
        },
    );
    d.kill();
    d.restart();
    wait_until("every message delivered", Duration::from_secs(60), || {
        ["ris", "fhir", "alert"]
            .iter()
            .all(|n| state_of(&d, n) == ["delivered"])
    });
    let seen = ris.seen();
    assert!(seen.len() >= 2, "sent again after the restart: {seen:?}");
    assert!(
        seen.iter().all(|e| e["MSH-10"] == seen[0]["MSH-10"]),
        "{seen:?}"
    );
    assert_eq!(hl7_filed(&ris).len(), 1, "{seen:?}");
    let alerts = hook.seen();
    assert!(alerts.len() >= 2, "{alerts:?}");
    assert_eq!(hook_filed(&hook).len(), 1, "{alerts:?}");
    let bundles = fhir.seen();
    assert!(bundles.len() >= 2, "{bundles:?}");
    let entries = bundles[0]["bundle"]["entry"].as_array().unwrap().len();
    assert_eq!(
        fhir_created(&fhir).len(),
        entries,
        "each resource created once"
    );
}

#[test]
fn the_console_and_the_cli_show_each_kind_and_try_it_without_sending() {
    let s = Setup::new();
    let (ris, _fhir) = (s.ris("aa"), s.fhir("ok"));
    let d = s.daemon("");
    let token = std::fs::read_to_string(d.storage().join("admin.token")).unwrap();
    let curl = |args: &[&str]| {
        let auth = format!("Authorization: Bearer {}", token.trim());
        let mut all = vec!["-s", "-H", &auth];
        all.extend_from_slice(args);
        text(&run("curl", &all))
    };
    let api = format!("http://127.0.0.1:{}/api/destinations", d.http_port);
    let listed: Value = serde_json::from_str(&curl(&[&api])).unwrap();
    let kinds: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|x| (x["kind"].as_str().unwrap(), x["address"].as_str().unwrap()))
        .collect();
    let fhir_url = format!("http://127.0.0.1:{}/fhir", s.fhir_port);
    assert!(kinds.contains(&("fhir", fhir_url.as_str())), "{kinds:?}");
    assert!(kinds.iter().any(|(k, _)| *k == "hl7"), "{kinds:?}");
    // The console sets DICOM and HL7 destinations, not those that read
    // secrets from files.
    let refused = curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        r#"{"kind":"hl7","host":"127.0.0.1","port":2575}"#,
        &format!("{api}/fhir"),
    ]);
    assert!(
        refused.contains("destination 'fhir' is of kind fhir: change it in the configuration file"),
        "{refused}"
    );

    let echo = |name: &str| d.cli(&["echo", name]);
    let out = echo("ris");
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("accepted a connection"),
        "{}",
        text(&out)
    );
    let out = echo("fhir");
    assert!(text(&out).contains("fhirVersion 4.0.1"), "{}", text(&out));
    let out = echo("alert");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot be tried without sending an alert"),
        "{}",
        text(&out)
    );
    drop(ris);
    let out = echo("ris");
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot connect to 127.0.0.1:"),
        "{}",
        text(&out)
    );

    // Files go by C-STORE to DICOM destinations only.
    let (_, files) = phantom_study(s.dir.path(), 9106, vec![], 1);
    let out = d.cli(&["send", "--to", "ris", files[0].to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out)
            .contains("destination 'ris' is of kind hl7: files go to DICOM destinations only"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_hl7_destination_set_in_the_console_receives_results_without_a_restart() {
    let s = Setup::new();
    let ris = s.ris("aa");
    // No destination in the file: the RIS comes from the console.
    let d = Daemon::start(
        "",
        &format!(
            "[pipeline]\nquiet_secs = 1\n\n[models]\ndir = \"{}\"\n",
            repo_root().join("models").display()
        ),
    );
    let token = std::fs::read_to_string(d.storage().join("admin.token")).unwrap();
    let put = |name: &str, body: &str| {
        let auth = format!("Authorization: Bearer {}", token.trim());
        let url = format!("http://127.0.0.1:{}/api/destinations/{name}", d.http_port);
        text(&run(
            "curl",
            &[
                "-s",
                "-X",
                "PUT",
                "-H",
                &auth,
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                body,
                &url,
            ],
        ))
    };
    let refused = put(
        "bad",
        r#"{"kind":"hl7","host":"127.0.0.1","port":2575,"sending_facility":"A|B"}"#,
    );
    assert!(
        refused.contains("sending_facility: must not contain HL7 delimiters"),
        "{refused}"
    );
    let saved = put(
        "ris",
        &format!(
            r#"{{"kind":"hl7","host":"127.0.0.1","port":{},"receiving_application":"CONSOLE-RIS","min_priority":"flagged"}}"#,
            s.hl7_port
        ),
    );
    assert!(saved.contains(r#""kind":"hl7""#), "{saved}");
    send_urgent_study(&d, s.dir.path(), 9107);
    wait_until("the console's RIS served", Duration::from_secs(60), || {
        !hl7_filed(&ris).is_empty()
    });
    assert_eq!(hl7_filed(&ris)[0]["MSH-5"], "CONSOLE-RIS");
}
