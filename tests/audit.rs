//! The audit trail: every view of a study or image, every review and change
//! (console and CLI), refused attempts included, is recorded with who, what,
//! which study (by UID only), when and from where; it cannot be changed; it
//! can be listed (`GET /api/audit`) and exported (`triaged audit export`);
//! and it reaches a real syslog collector (Debian's rsyslog) as RFC 5424,
//! over TCP and UDP, including what was recorded while the collector was
//! down.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use phantom::{Grade, Label};
use serde_json::Value;
use support::*;

/// rsyslogd in the foreground, taking RFC 5424 over TCP and UDP on
/// loopback and writing `INPUT MSGID STRUCTURED-DATA MSG` lines to a file.
struct Rsyslog {
    child: Option<Child>,
    dir: tempfile::TempDir,
    tcp: u16,
    udp: u16,
}

impl Rsyslog {
    fn start() -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let (tcp, udp) = (free_port(), free_port());
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("rsyslog.conf"),
            format!(
                r#"global(workDirectory="{d}")
module(load="imtcp")
module(load="imudp")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="audit")
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="audit")
template(name="line" type="string" string="%inputname% %hostname% %msgid% %structured-data% %msg%\n")
ruleset(name="audit") {{ action(type="omfile" file="{d}/audit.log" template="line") }}
"#
            ),
        )
        .unwrap();
        let mut r = Rsyslog {
            child: None,
            dir,
            tcp,
            udp,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let child = Command::new("rsyslogd")
            .args(["-n", "-f"])
            .arg(self.dir.path().join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rsyslogd (Debian package rsyslog; scripts/setup.sh installs it)");
        self.child = Some(child);
        wait_until("rsyslog listening", Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", self.tcp)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_file(self.dir.path().join("rsyslogd.pid"));
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("audit.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// The line carrying audit event `id`, if it arrived.
    fn event(&self, id: i64) -> Vec<String> {
        let tag = format!("[audit@32473 id=\"{id}\" ");
        self.lines()
            .into_iter()
            .filter(|l| l.contains(&tag))
            .collect()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Api {
    base: String,
    token: String,
}

impl Api {
    /// `curl` with the admin token (or `token`): (status, body).
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        token: Option<&str>,
    ) -> (u16, String) {
        let auth = format!("Authorization: Bearer {}", token.unwrap_or(&self.token));
        let url = format!("{}{path}", self.base);
        let mut args = vec!["-s", "-X", method, "-H", &auth, "-w", "\n%{http_code}"];
        if let Some(b) = body {
            args.extend(["-H", "Content-Type: application/json", "-d", b]);
        }
        args.push(&url);
        let out = text(&run("curl", &args));
        let (body, status) = out.trim_end().rsplit_once('\n').unwrap();
        (status.parse().unwrap(), body.to_string())
    }

    fn get(&self, path: &str) -> Value {
        let (status, body) = self.call("GET", path, None, None);
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).unwrap()
    }
}

fn actions(events: &Value) -> Vec<String> {
    events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn every_access_and_change_is_recorded_kept_and_sent_to_syslog() {
    let mut rsyslog = Rsyslog::start();
    let mut d = Daemon::start(
        "",
        &format!(
            "[audit]\nsyslog = \"tcp://127.0.0.1:{}\"\nsyslog_hostname = \"triage-node-a\"\n\n[pipeline]\nquiet_secs = 0.5\n\n[models]\ndir = \"{}\"\n",
            rsyslog.tcp,
            repo_root().join("models").display()
        ),
    );
    let cases = tempfile::tempdir().unwrap();
    let (study, files) = phantom_study(
        cases.path(),
        4242,
        vec![(Label::Pneumothorax, Grade::Severe)],
        1,
    );
    let out = d.storescu(&[], &[files[0].as_path()]);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the study analysed", Duration::from_secs(60), || {
        d.studies()
            .iter()
            .any(|s| s["study_instance_uid"] == study && s["status"] == "done")
    });
    let api = Api {
        base: format!("http://127.0.0.1:{}/api", d.http_port),
        token: std::fs::read_to_string(d.storage().join("admin.token"))
            .unwrap()
            .trim()
            .to_string(),
    };

    // A radiologist's session, as the console makes it (the worklist is
    // refreshed: recorded once), and an admin's change.
    api.get("/worklist");
    api.get("/worklist");
    let detail = api.get(&format!("/studies/{study}"));
    let patient_name = detail["patient_name"].as_str().unwrap().to_string();
    let patient_id = detail["patient_id"].as_str().unwrap().to_string();
    let finding = detail["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["heatmap_uid"].is_string())
        .expect("a flagged finding with a heatmap")
        .clone();
    let sop = finding["sop_instance_uid"].as_str().unwrap();
    let label = finding["label"].as_str().unwrap();
    let (s, _) = api.call("GET", &format!("/instances/{sop}/image.png"), None, None);
    assert_eq!(s, 200);
    let (s, _) = api.call(
        "GET",
        &format!("/instances/{sop}/heatmap.png?label={label}"),
        None,
        None,
    );
    assert_eq!(s, 200);
    let (s, b) = api.call("POST", &format!("/studies/{study}/ack"), Some("{}"), None);
    assert!((200..300).contains(&s), "{b}");
    let (s, b) = api.call(
        "PUT",
        "/sources/ct-router",
        Some(r#"{"ae_title":"CTROUTER"}"#),
        None,
    );
    assert_eq!(s, 200, "{b}");
    // Someone without a valid token tries to read the study.
    let (s, _) = api.call(
        "GET",
        &format!("/studies/{study}"),
        None,
        Some("not-a-token"),
    );
    assert_eq!(s, 401);
    // An admin at the command line holds the study.
    let out = d.cli(&["studies", "hold", &study, "--reason", "complaint"]);
    assert!(out.status.success(), "{}", text(&out));

    let trail = api.get(&format!("/audit?study={study}"));
    let mut seen = actions(&trail);
    seen.sort();
    assert_eq!(
        seen,
        [
            "heatmap.view",
            "image.view",
            "study.acknowledge",
            "study.hold",
            "study.view",
            "study.view"
        ],
        "{trail}"
    );
    for e in trail.as_array().unwrap() {
        assert_eq!(e["study_instance_uid"], study.as_str(), "{e}");
        match e["role"].as_str().unwrap() {
            "cli" => {
                assert!(e["user"].as_str().unwrap().starts_with("cli"), "{e}");
                assert!(e["address"].is_null(), "{e}");
            }
            "none" => {
                assert_eq!(
                    (e["action"].as_str(), e["outcome"].as_str()),
                    (Some("study.view"), Some("denied"))
                );
                assert_eq!(e["address"], "127.0.0.1", "{e}");
            }
            _ => {
                assert_eq!(
                    (e["user"].as_str(), e["role"].as_str()),
                    (Some("admin"), Some("admin")),
                    "{e}"
                );
                assert_eq!(e["outcome"], "ok", "{e}");
                assert_eq!(e["address"], "127.0.0.1", "{e}");
            }
        }
    }
    let image = trail
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "image.view")
        .unwrap();
    assert_eq!(
        image["object"], sop,
        "the image by its own UID, the study looked up"
    );
    assert_eq!(
        actions(&api.get("/audit?action=worklist.view")),
        ["worklist.view"]
    );
    let change = api.get("/audit?action=source.save");
    assert_eq!(change[0]["object"], "ct-router", "{change}");
    // UIDs only: never the patient's name or ID.
    let all = api.get("/audit?limit=1000").to_string();
    assert!(
        !all.contains(&patient_name) && !all.contains(&patient_id),
        "{all}"
    );
    // Reading the trail is itself recorded (the four reads above).
    assert_eq!(actions(&api.get("/audit?action=audit.view")).len(), 4);
    let (s, _) = api.call("GET", "/audit?limit=0", None, None);
    assert_eq!(s, 400);

    // Append-only, also to someone with the database file.
    for sql in ["DELETE FROM audit", "UPDATE audit SET user_name = 'nobody'"] {
        let out = d.sql(sql);
        assert!(!out.status.success(), "{sql} was allowed");
        assert!(text(&out).contains("append-only"), "{}", text(&out));
    }

    // The export: every event as a JSON line, oldest first, itself included.
    let out = d.cli(&["audit", "export", "--since", "2000-01-01"]);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<i64> = lines.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(lines.last().unwrap()["action"], "audit.export");
    let last_id = *ids.last().unwrap();

    // Every event reached rsyslog over TCP, once, as RFC 5424.
    wait_until("every event in rsyslog", Duration::from_secs(60), || {
        (1..=last_id).all(|id| rsyslog.event(id).len() == 1)
    });
    let view = &rsyslog.event(
        trail
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["action"] == "study.view" && e["role"] == "admin")
            .unwrap()["id"]
            .as_i64()
            .unwrap(),
    )[0];
    assert!(
        view.starts_with("imtcp triage-node-a study.view [audit@32473 "),
        "{view}"
    );
    assert!(view.contains(&format!("study=\"{study}\"")), "{view}");
    assert!(view.contains("user=\"admin\" role=\"admin\""), "{view}");
    assert!(!rsyslog.lines().join("\n").contains(&patient_name));

    // The collector goes down: events are kept and sent once it is back.
    rsyslog.stop();
    api.get(&format!("/studies/{study}"));
    let while_down = api.get("/audit?limit=1")[0]["id"].as_i64().unwrap();
    // The forwarder tried and found the collector gone (it says so once).
    wait_until(
        "the forwarder noticing the collector is down",
        Duration::from_secs(60),
        || d.log().contains("cannot forward the audit trail to syslog"),
    );
    assert!(rsyslog.event(while_down).is_empty());
    rsyslog.spawn();
    wait_until(
        "the event recorded while rsyslog was down",
        Duration::from_secs(60),
        || rsyslog.event(while_down).len() == 1,
    );

    // Over UDP after a restart: the cursor survives, nothing is sent twice.
    let config = std::fs::read_to_string(&d.config).unwrap().replace(
        &format!("tcp://127.0.0.1:{}", rsyslog.tcp),
        &format!("udp://127.0.0.1:{}", rsyslog.udp),
    );
    std::fs::write(&d.config, config).unwrap();
    d.restart();
    api.get(&format!("/studies/{study}"));
    let by_udp = api.get("/audit?limit=1")[0]["id"].as_i64().unwrap();
    wait_until("an event over UDP", Duration::from_secs(60), || {
        rsyslog.event(by_udp).len() == 1
    });
    assert!(
        rsyslog.event(by_udp)[0].starts_with("imudp "),
        "{:?}",
        rsyslog.event(by_udp)
    );
    assert!((1..=while_down).all(|id| rsyslog.event(id).len() == 1));
}
