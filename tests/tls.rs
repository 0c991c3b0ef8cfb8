//! DICOM over TLS both ways, against DCMTK (Debian's is built with OpenSSL)
//! and Orthanc with DICOM TLS, with certificates made here by `openssl`.
//!
//! Receiving: a client with a certificate from the configured CA stores;
//! one without a certificate, one from another CA, and a plain-TCP client
//! on the TLS port are refused and leave nothing behind; the plain port
//! keeps working; a key that does not match its certificate stops the start
//! naming the key.
//!
//! Sending: `tls = true` on a destination reaches DCMTK's `storescp +tls`
//! (which requires our client certificate) by C-ECHO and C-STORE; a
//! destination whose certificate does not verify against `ca_file`, and one
//! called without the client certificate it requires, store nothing and say
//! why; the outbox delivers to Orthanc's DICOM TLS port.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use std::process::{Child, Stdio};
use std::time::Duration;

use support::{
    every, free_port, phantom_study, run, sop_uid, text, wait_for, wait_until, Daemon, Orthanc,
};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// A CA, a server certificate for 127.0.0.1 signed by it, a client
/// certificate signed by it, and a client certificate from another CA.
fn certificates(dir: &Path) {
    let days = ["-days", "2"];
    for ca in ["ca", "other-ca"] {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=triaged test {ca}"),
                days[0],
                days[1],
            ],
        );
    }
    // X.509 v3 certificates (with extensions), as CAs issue today; rustls
    // refuses v1 ones.
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for (name, ca, ext) in [
        ("server", "ca", "server.ext"),
        ("client", "ca", "client.ext"),
        ("stranger", "other-ca", "client.ext"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN=triaged test {name}"),
            ],
        );
        let args = vec![
            "x509".to_string(),
            "-req".into(),
            "-in".into(),
            format!("{name}.csr"),
            "-CA".into(),
            format!("{ca}.pem"),
            "-CAkey".into(),
            format!("{ca}.key"),
            "-CAcreateserial".into(),
            "-out".into(),
            format!("{name}.pem"),
            days[0].into(),
            days[1].into(),
            "-extfile".into(),
            ext.into(),
        ];
        openssl(dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }
}

fn tls_table(port: u16, certs: &Path, client_ca: bool) -> String {
    let p = |f: &str| certs.join(f).display().to_string();
    let mut t = format!(
        "\n[dicom.tls]\nlisten = \"127.0.0.1:{port}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n",
        p("server.pem"),
        p("server.key")
    );
    if client_ca {
        t += &format!("client_ca = \"{}\"\n", p("ca.pem"));
    }
    t
}

/// `storescu` over TLS to the daemon's TLS port; `identity` is the
/// client's key and certificate, or none (anonymous TLS client).
fn storescu_tls(port: u16, certs: &Path, identity: Option<&str>, files: &[&Path]) -> Output {
    let mut a: Vec<String> = match identity {
        Some(name) => vec![
            "+tls".into(),
            certs.join(format!("{name}.key")).display().to_string(),
            certs.join(format!("{name}.pem")).display().to_string(),
        ],
        None => vec!["+tla".into()],
    };
    // Trust the server through the test CA.
    a.extend(["+cf".into(), certs.join("ca.pem").display().to_string()]);
    a.extend([
        "-aec".into(),
        "TRIAGED".into(),
        "127.0.0.1".into(),
        port.to_string(),
    ]);
    a.extend(files.iter().map(|f| f.display().to_string()));
    run(
        "storescu",
        &a.iter().map(String::as_str).collect::<Vec<_>>(),
    )
}

/// A daemon with a TLS port (`client_ca` or not), the test certificates,
/// and `n` instances of a phantom study to send.
struct Setup {
    certs: tempfile::TempDir,
    port: u16,
    daemon: Daemon,
    _files_dir: tempfile::TempDir,
    files: Vec<PathBuf>,
}

impl Setup {
    fn start(client_ca: bool, n: u32) -> Setup {
        let certs = tempfile::tempdir().unwrap();
        certificates(certs.path());
        let port = free_port();
        let daemon = Daemon::start(&tls_table(port, certs.path(), client_ca), "");
        let files_dir = tempfile::tempdir().unwrap();
        let files = phantom_study(files_dir.path(), 7, vec![], n).1;
        Setup {
            certs,
            port,
            daemon,
            _files_dir: files_dir,
            files,
        }
    }
}

#[test]
fn tls_with_client_certificates_stores_and_refuses_strangers() {
    let s = Setup::start(true, 3);
    let (certs, tls_port, d) = (&s.certs, s.port, &s.daemon);
    let all: Vec<&Path> = s.files.iter().map(PathBuf::as_path).collect();

    // A client with a certificate from the CA: stored, over TLS.
    let out = storescu_tls(tls_port, certs.path(), Some("client"), &all[..2]);
    assert!(out.status.success(), "storescu +tls failed: {}", text(&out));
    assert_eq!(d.instance_files().len(), 2);
    let log = d.log();
    assert!(log.contains("DICOM over TLS"), "{log}");
    assert!(
        log.contains("tls=true"),
        "association not marked TLS: {log}"
    );

    // No certificate, a certificate from another CA, plain TCP: refused,
    // nothing stored.
    let out = storescu_tls(tls_port, certs.path(), None, &all[2..]);
    assert!(
        !out.status.success(),
        "anonymous client was served: {}",
        text(&out)
    );
    let out = storescu_tls(tls_port, certs.path(), Some("stranger"), &all[2..]);
    assert!(
        !out.status.success(),
        "foreign certificate was served: {}",
        text(&out)
    );
    let plain = run(
        "storescu",
        &[
            "-to",
            "5",
            "-aec",
            "TRIAGED",
            "127.0.0.1",
            &tls_port.to_string(),
            all[2].to_str().unwrap(),
        ],
    );
    assert!(
        !plain.status.success(),
        "plain TCP on the TLS port was served"
    );
    assert_eq!(d.instance_files().len(), 2);
    // The refusal of the last client is logged when the server's side of
    // the handshake ends, which may be just after the client gave up.
    let refused = wait_for(Duration::from_secs(30), || {
        d.log().matches("TLS handshake failed").count() >= 3
    });
    assert!(refused, "expected 3 refusals in the log:\n{}", d.log());

    // The plain port is unaffected.
    let out = d.storescu(&[], &all[2..]);
    assert!(
        out.status.success(),
        "plain storescu failed: {}",
        text(&out)
    );
    assert_eq!(d.instance_files().len(), 3);
    let echo = run(
        "echoscu",
        &[
            "+tls",
            certs.path().join("client.key").to_str().unwrap(),
            certs.path().join("client.pem").to_str().unwrap(),
            "+cf",
            certs.path().join("ca.pem").to_str().unwrap(),
            "-aec",
            "TRIAGED",
            "127.0.0.1",
            &tls_port.to_string(),
        ],
    );
    assert!(
        echo.status.success(),
        "echoscu +tls failed: {}",
        text(&echo)
    );
}

#[test]
fn tls_without_client_ca_serves_clients_without_certificates() {
    let s = Setup::start(false, 1);
    let out = storescu_tls(s.port, s.certs.path(), None, &[s.files[0].as_path()]);
    assert!(out.status.success(), "storescu +tla failed: {}", text(&out));
    assert_eq!(s.daemon.instance_files().len(), 1);
}

#[test]
fn a_key_that_does_not_match_its_certificate_stops_the_start() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("triaged.toml");
    let p = |f: &str| certs.path().join(f).display().to_string();
    std::fs::write(
        &config,
        format!(
            "[dicom]\nlisten = \"127.0.0.1:{}\"\n[dicom.tls]\nlisten = \"127.0.0.1:{}\"\ncertificate = \"{}\"\nprivate_key = \"{}\"\n[storage]\ndir = \"{}\"\n[http]\nenabled = false\n",
            free_port(),
            free_port(),
            p("server.pem"),
            p("client.key"),
            dir.path().join("storage").display()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("dicom.tls.private_key"), "{said}");
    assert!(said.contains("does not match the certificate"), "{said}");
    assert!(
        !dir.path().join("storage").exists(),
        "storage created before the check"
    );
}

/// A `[[destinations]]` entry over TLS; `identity` names our client
/// certificate and key files (`client` for client.pem and client.key).
fn tls_destination(name: &str, ae: &str, port: u16, ca: &Path, identity: Option<&Path>) -> String {
    let mut t = format!(
        "[[destinations]]\nname = \"{name}\"\nae_title = \"{ae}\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = true\nca_file = \"{}\"\n",
        ca.display()
    );
    if let Some(id) = identity {
        t += &format!(
            "certificate = \"{}\"\nprivate_key = \"{}\"\n",
            id.with_extension("pem").display(),
            id.with_extension("key").display()
        );
    }
    t
}

/// DCMTK's `storescp` on a TLS port with the test server certificate; it
/// requires a client certificate from the test CA (its default).
struct Storescp {
    child: Child,
    port: u16,
    out: tempfile::TempDir,
}

impl Storescp {
    const AE: &'static str = "TLSPACS";

    fn start(certs: &Path) -> Storescp {
        let port = free_port();
        let out = tempfile::tempdir().unwrap();
        let p = |f: &str| certs.join(f).display().to_string();
        let child = Command::new("storescp")
            .args([
                "+tls",
                &p("server.key"),
                &p("server.pem"),
                "+cf",
                &p("ca.pem"),
            ])
            .args(["-aet", Self::AE, "-od"])
            .arg(out.path())
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("storescp (dcmtk)");
        let s = Storescp { child, port, out };
        wait_until("storescp +tls answers", Duration::from_secs(20), || {
            run(
                "echoscu",
                &[
                    "+tls",
                    &p("client.key"),
                    &p("client.pem"),
                    "+cf",
                    &p("ca.pem"),
                    "-aec",
                    Self::AE,
                    "127.0.0.1",
                    &port.to_string(),
                ],
            )
            .status
            .success()
        });
        s
    }

    /// The SOP Instance UIDs of what it stored.
    fn stored(&self) -> Vec<String> {
        support::files_under(self.out.path())
            .iter()
            .map(|f| sop_uid(f))
            .collect()
    }
}

impl Drop for Storescp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn results_reach_a_pacs_over_tls_and_an_unverified_peer_gets_nothing() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let c = certs.path();
    let pacs = Storescp::start(c);
    let files_dir = tempfile::tempdir().unwrap();
    let files = phantom_study(files_dir.path(), 11, vec![], 3).1;
    let client = c.join("client");
    let destinations = [
        tls_destination(
            "pacs",
            Storescp::AE,
            pacs.port,
            &c.join("ca.pem"),
            Some(&client),
        ),
        // The PACS's certificate is not from this authority.
        tls_destination(
            "distrusted",
            Storescp::AE,
            pacs.port,
            &c.join("other-ca.pem"),
            Some(&client),
        ),
        // The PACS requires a client certificate; none is configured.
        tls_destination(
            "anonymous",
            Storescp::AE,
            pacs.port,
            &c.join("ca.pem"),
            None,
        ),
    ]
    .concat();
    let d = Daemon::start("", &destinations);

    let echo = d.cli(&["echo", "pacs"]);
    assert!(echo.status.success(), "echo over TLS: {}", text(&echo));
    let out = d.cli(&["send", "--to", "pacs", files[0].to_str().unwrap()]);
    assert!(out.status.success(), "send over TLS: {}", text(&out));
    assert!(text(&out).contains("stored (0x0000)"), "{}", text(&out));
    assert_eq!(pacs.stored(), vec![sop_uid(&files[0])]);

    let out = d.cli(&["send", "--to", "distrusted", files[1].to_str().unwrap()]);
    assert!(!out.status.success(), "an unverified PACS was sent to");
    let said = text(&out);
    assert!(said.contains("UnknownIssuer"), "no reason given: {said}");
    let out = d.cli(&["send", "--to", "anonymous", files[2].to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "sent without the required certificate"
    );
    assert!(text(&out).contains("cannot associate"), "{}", text(&out));
    assert_eq!(pacs.stored().len(), 1, "the refused sends stored something");
}

#[test]
fn the_outbox_delivers_to_orthanc_over_dicom_tls() {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let c = certs.path();
    let p = |f: &str| c.join(f).display().to_string();
    // Orthanc's DICOM port speaks only TLS and requires client certificates
    // from the test CA.
    let pacs = Orthanc::start_with_settings(&format!(
        r#""DicomTlsEnabled": true, "DicomTlsCertificate": "{}", "DicomTlsPrivateKey": "{}",
           "DicomTlsTrustedCertificates": "{}", "DicomTlsRemoteCertificateRequired": true"#,
        p("server.pem"),
        p("server.key"),
        p("ca.pem"),
    ));
    let dicom_port = pacs.dicom_port;
    let files_dir = tempfile::tempdir().unwrap();
    let (study, files) = phantom_study(files_dir.path(), 12, vec![], 2);
    let d = Daemon::start(
        "",
        &tls_destination(
            "pacs",
            Orthanc::AE,
            dicom_port,
            &c.join("ca.pem"),
            Some(&c.join("client")),
        ),
    );
    let mut args = vec!["outbox", "add", "--to", "pacs"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = d.cli(&args);
    assert!(out.status.success(), "{}", text(&out));
    wait_until("both delivered", Duration::from_secs(60), || {
        let out = d.cli(&["outbox", "list", "--json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap_or_default();
        rows.len() == 2 && every(&rows, |r| r["state"] == "delivered")
    });
    let found = pacs.post(
        "/tools/find",
        &format!(r#"{{"Level":"Instance","Query":{{"StudyInstanceUID":"{study}"}}}}"#),
    );
    assert_eq!(found.as_array().map(Vec::len), Some(2), "{found}");
}
