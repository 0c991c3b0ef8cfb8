//! Test harness: the built daemon as a process, real DICOM peers (DCMTK,
//! Orthanc, pynetdicom) on loopback, and the sample files from
//! `scripts/setup.sh`. Nothing here skips: a missing tool is a failure that
//! says how to install it.
#![allow(dead_code)]

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// An ONNX fixture (fixtures/infer/onnx/FILE) copied into
/// `models/NAME` with a manifest: name, version 1, its SHA-256, `labels`,
/// then `keys` as they are (thresholds, `[heatmap]`, `[input]`, ...).
/// Returns the folder and the graph's bytes.
pub fn onnx_model(
    models: &Path,
    name: &str,
    file: &str,
    labels: &[&str],
    keys: &str,
) -> (PathBuf, Vec<u8>) {
    use sha2::{Digest, Sha256};
    let dir = models.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let bytes = std::fs::read(repo_root().join("fixtures/infer/onnx").join(file)).unwrap();
    std::fs::write(dir.join("model.onnx"), &bytes).unwrap();
    let quoted: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
    std::fs::write(
        dir.join("model.toml"),
        format!(
            "name = \"{name}\"\nversion = \"1\"\narchitecture = \"onnx\"\nweights = \"model.onnx\"\n\
             sha256 = \"{:x}\"\nlabels = [{}]\n{keys}\n",
            Sha256::digest(&bytes),
            quoted.join(", ")
        ),
    )
    .unwrap();
    (dir, bytes)
}

/// A sample file from fixtures/generated (made by scripts/setup.sh).
pub fn fixture(name: &str) -> PathBuf {
    let p = repo_root().join("fixtures/generated").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// Instances 1..=n of one phantom study (1 mm pixels) written to `dir`:
/// (study UID, files).
pub fn phantom_study(
    dir: &Path,
    seed: u64,
    findings: Vec<(phantom::Label, phantom::Grade)>,
    n: u32,
) -> (String, Vec<PathBuf>) {
    let case = phantom::Case::sample(seed, &phantom::Mix::Exactly(findings));
    let image = case.render(1.0, false);
    let files: Vec<PathBuf> = (1..=n)
        .map(|k| {
            let p = dir.join(format!("{seed}-{k}.dcm"));
            phantom::dicom::instance(&case, &image, k)
                .unwrap()
                .write_to_file(&p)
                .unwrap();
            p
        })
        .collect();
    (phantom::dicom::Identity::of(&case).study_uid, files)
}

/// Every file under `dir`, recursively, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The data set bytes after the file meta group of a Part 10 file.
pub fn data_set_bytes(path: &Path) -> Vec<u8> {
    let b = std::fs::read(path).unwrap();
    assert_eq!(&b[128..132], b"DICM");
    let group_len = u32::from_le_bytes(b[140..144].try_into().unwrap()) as usize;
    b[144 + group_len..].to_vec()
}

/// The SOP Instance UID of a DICOM file.
pub fn sop_uid(path: &Path) -> String {
    let obj = dicom_object::open_file(path).unwrap();
    obj.element(dicom_dictionary_std::tags::SOP_INSTANCE_UID)
        .unwrap()
        .to_str()
        .unwrap()
        .trim_end_matches('\0')
        .to_string()
}

pub fn python() -> PathBuf {
    let p = repo_root().join(".venv/bin/python");
    assert!(
        p.is_file(),
        "{} is missing: run scripts/setup.sh (scripts/test.sh does)",
        p.display()
    );
    p
}

/// A loopback port nothing listens on, for a server a test starts. Taken
/// below Linux's ephemeral range (32768-60999), where the kernel never
/// puts an outgoing connection, and never twice in one test process: a
/// port from `bind(":0")` could be taken by another test's connection or
/// server before the server meant for it bound it (seen in CI: Orthanc's
/// "Address already in use"). Test binaries start at different points.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 20000;
    const COUNT: u32 = 12000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(2654435761) % COUNT,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..COUNT {
        let port = (FIRST + NEXT.fetch_add(1, Ordering::Relaxed) % COUNT) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {FIRST}..{}", FIRST + COUNT);
}

/// Run a tool to completion. TCP_NODELAY=1 makes DCMTK skip Nagle's delay.
pub fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .env("TCP_NODELAY", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e} (scripts/setup.sh installs it)"));
    out
}

pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Whether `f` became true before `timeout` (polled every 25 ms): for a
/// test that must clean up before it fails.
pub fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while !f() {
        if start.elapsed() >= timeout {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    true
}

pub fn wait_until(what: &str, timeout: Duration, f: impl FnMut() -> bool) {
    assert!(
        wait_for(timeout, f),
        "timed out after {timeout:?} waiting for {what}"
    );
}

/// True when there is at least one item and every item satisfies `f`
/// (`Iterator::all` is true of nothing, which proves nothing).
pub fn every<T>(items: &[T], f: impl FnMut(&T) -> bool) -> bool {
    !items.is_empty() && items.iter().all(f)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
}

/// The pynetdicom peer storing `files` in one association, started now.
pub fn sender(d: &Daemon, files: &[PathBuf]) -> std::process::Child {
    spawn_sender(d, files, 30)
}

/// [`sender`] as a router that fails over soon after its peer dies: it
/// gives up on an answer after 3 s (pynetdicom would otherwise wait its
/// whole 30 s DIMSE timeout after a killed node's connection closed, and
/// the part of the study the dead node took would be reported alone
/// before the rest was resent). A slow Success taken for none is only
/// resent, which the daemon files once.
pub fn failing_over_sender(d: &Daemon, files: &[PathBuf]) -> std::process::Child {
    spawn_sender(d, files, 3)
}

fn spawn_sender(d: &Daemon, files: &[PathBuf], dimse_timeout_secs: u32) -> std::process::Child {
    let mut args = vec![
        repo_root()
            .join("tests/peers/dimse_peer.py")
            .display()
            .to_string(),
        "store".into(),
        d.port.to_string(),
        "TRIAGED".into(),
    ];
    args.extend(files.iter().map(|f| format!("raw:{}", f.display())));
    Command::new(python())
        .args(&args)
        .env("DIMSE_TIMEOUT", dimse_timeout_secs.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// The sender's statuses, one per file (`None`: no answer).
pub fn statuses(child: std::process::Child, n: usize) -> Vec<Option<u16>> {
    let out = child.wait_with_output().unwrap();
    let v: serde_json::Value =
        serde_json::from_slice(out.stdout.trim_ascii()).unwrap_or(serde_json::Value::Null);
    let mut s: Vec<Option<u16>> = v
        .as_array()
        .map(|a| a.iter().map(|x| x.as_u64().map(|n| n as u16)).collect())
        .unwrap_or_default();
    s.resize(n, None);
    s
}

/// What a router does after a broken association: send `d` again the
/// `files` whose first sending got no Success (`sent`, from [`statuses`]);
/// each must be acknowledged now (`what` names the moment in a failure).
pub fn resend_unacknowledged(d: &Daemon, files: &[PathBuf], sent: &[Option<u16>], what: &str) {
    let retry: Vec<PathBuf> = files
        .iter()
        .zip(sent)
        .filter(|(_, s)| **s != Some(0))
        .map(|(f, _)| f.clone())
        .collect();
    if !retry.is_empty() {
        let again = statuses(sender(d, &retry), retry.len());
        assert!(again.iter().all(|s| *s == Some(0)), "{what}: {again:?}");
    }
}

/// Whether a child process is still running (not a zombie).
pub fn child_running(c: &std::process::Child) -> bool {
    Path::new(&format!("/proc/{}", c.id())).exists()
        && !std::fs::read_to_string(format!("/proc/{}/stat", c.id()))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The PostgreSQL server the suite runs on (`TRIAGED_TEST_POSTGRES`,
/// `postgres://user@host:port`), if any; else every daemon uses SQLite.
pub fn test_postgres() -> Option<String> {
    std::env::var("TRIAGED_TEST_POSTGRES")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('/').to_string())
}

/// The node name of a daemon the suite put on PostgreSQL.
pub const TEST_NODE: &str = "test-node";

/// A new, empty database on the suite's PostgreSQL server; its URL.
pub fn new_postgres_database(server: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "d_{}_{}_{}",
        std::process::id(),
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let out = run(
        "psql",
        &[
            "-X",
            "-q",
            &format!("{server}/postgres"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ],
    );
    assert!(out.status.success(), "CREATE DATABASE: {}", text(&out));
    format!("{server}/{name}")
}

/// A PostgreSQL server: the suite's (`TRIAGED_TEST_POSTGRES`) or, without
/// one, the test's own (scripts/postgres.sh, stopped when dropped).
pub struct Postgres {
    pub server: String,
    own: Option<tempfile::TempDir>,
}

impl Postgres {
    pub fn start() -> Postgres {
        match test_postgres() {
            Some(server) => Postgres { server, own: None },
            None => Postgres::start_own(),
        }
    }

    /// A server of the test's own, even when the suite has one: for a test
    /// that stops and restarts it.
    pub fn start_own() -> Postgres {
        Postgres::own(false)
    }

    /// A server of the test's own that also speaks TLS, with a certificate
    /// for 127.0.0.1 signed by [`Postgres::ca`].
    pub fn start_own_with_tls() -> Postgres {
        Postgres::own(true)
    }

    /// The certificate of the CA that signed a TLS server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.own.as_ref().expect("own server").path().join("ca.pem")
    }

    fn own(tls: bool) -> Postgres {
        let dir = tempfile::tempdir().unwrap();
        if tls {
            // Read by scripts/postgres.sh at every start of this server.
            std::fs::write(dir.path().join("tls"), "on").unwrap();
        }
        let out = Postgres::script("start", dir.path());
        let server = String::from_utf8_lossy(&out.stdout)
            .trim()
            .trim_start_matches("export TRIAGED_TEST_POSTGRES=")
            .to_string();
        Postgres {
            server,
            own: Some(dir),
        }
    }

    /// Stops the test's own server (fast shutdown: sessions are cut).
    pub fn stop(&self) {
        Postgres::script("stop", self.own.as_ref().expect("own server").path());
    }

    /// Starts the test's own server again, on the same port.
    pub fn start_again(&self) {
        Postgres::script("start", self.own.as_ref().expect("own server").path());
    }

    fn script(command: &str, dir: &Path) -> Output {
        let script = repo_root().join("scripts/postgres.sh");
        let out = run(
            "bash",
            &[script.to_str().unwrap(), command, dir.to_str().unwrap()],
        );
        assert!(
            out.status.success(),
            "postgres.sh {command}: {}",
            text(&out)
        );
        out
    }

    /// A new, empty database on it; its URL.
    pub fn database(&self) -> String {
        new_postgres_database(&self.server)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Some(dir) = &self.own {
            let script = repo_root().join("scripts/postgres.sh");
            run(
                "bash",
                &[
                    script.to_str().unwrap(),
                    "stop",
                    dir.path().to_str().unwrap(),
                ],
            );
        }
    }
}

/// The triaged daemon, started from the test's build, in a temp directory.
pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// The worklist and console (each daemon on its own port).
    pub http_port: u16,
    pub config: PathBuf,
    /// Its PostgreSQL database (`None`: SQLite in its storage folder).
    pub database: Option<String>,
    starts: usize,
}

impl Daemon {
    /// `dicom` is extra lines for the [dicom] table; `rest` is appended
    /// after it (sources, destinations, ...).
    pub fn start(dicom: &str, rest: &str) -> Daemon {
        Self::start_at(free_port(), dicom, rest)
    }

    /// Like `start`, on a port chosen by the caller (for configurations
    /// that must name it, such as a destination pointing at ourselves).
    pub fn start_at(port: u16, dicom: &str, rest: &str) -> Daemon {
        Self::start_with_storage(port, dicom, "", rest)
    }

    /// Like `start_at`, with extra lines for the [storage] table.
    pub fn start_with_storage(port: u16, dicom: &str, storage_lines: &str, rest: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("storage");
        let http_port = free_port();
        let text = format!(
            "[dicom]\nae_title = \"TRIAGED\"\nlisten = \"127.0.0.1:{port}\"\n{dicom}\n\n[storage]\ndir = \"{}\"\n{storage_lines}\n\n[log]\nlevel = \"info,dimse=debug\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n{rest}\n",
            storage.display()
        );
        Self::start_config(dir, &text, port, http_port)
    }

    /// With a whole configuration file's text (its storage under `dir`),
    /// listening on the ports it names.
    ///
    /// Unless the text has a `[retention]` table, retention is off: the
    /// host's disk may well be above the default 90 % watermark, and a test
    /// about something else must not see its studies purged. Unless it has
    /// a `[database]` table, the daemon gets a database of its own on the
    /// suite's PostgreSQL server when there is one ([`test_postgres`]).
    pub fn start_config(dir: tempfile::TempDir, text: &str, port: u16, http_port: u16) -> Daemon {
        let config = dir.path().join("triaged.toml");
        let mut text = text.to_string();
        if !text.contains("[retention]") {
            text += "\n[retention]\nenabled = false\n";
        }
        // A PostgreSQL url the text names itself.
        let mut database = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("url = \"postgres"))
            .map(|rest| format!("postgres{}", rest.trim_end_matches('"')))
            .next();
        if !text.contains("[database]") {
            if let Some(server) = test_postgres() {
                let url = new_postgres_database(&server);
                text += &format!("\n[database]\nurl = \"{url}\"\n");
                if !text.contains("[node]") {
                    text += &format!("\n[node]\nname = \"{TEST_NODE}\"\n");
                }
                database = Some(url);
            }
        }
        std::fs::File::create(&config)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let mut d = Daemon {
            child: None,
            dir,
            port,
            http_port,
            config,
            database,
            starts: 0,
        };
        d.spawn();
        d
    }

    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where this daemon receives (on PostgreSQL, its node's own folder).
    pub fn incoming(&self) -> PathBuf {
        let incoming = self.storage().join(".incoming");
        match &self.database {
            Some(_) => incoming.join(TEST_NODE),
            None => incoming,
        }
    }

    /// Run `query` on the daemon's database (the sqlite3 or psql client):
    /// its rows, a line each, columns separated by `|`.
    pub fn sql(&self, query: &str) -> Output {
        match &self.database {
            Some(url) => run("psql", &["-X", "-q", "-A", "-t", url, "-c", query]),
            None => {
                let db = self.storage().join("triaged.db");
                run("sqlite3", &[db.to_str().unwrap(), query])
            }
        }
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("daemon.log")
    }

    /// Everything the daemon logged, across restarts.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        self.starts += 1;
        let want = self.starts;
        wait_until("triaged ready", Duration::from_secs(30), || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "triaged exited with {status} during start-up:\n{}",
                    self.log()
                );
            }
            self.log().matches("triaged ready").count() >= want
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    /// SIGTERM and wait for exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        signal(child.id(), "-TERM");
        let start = Instant::now();
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return s;
            }
            if start.elapsed() > Duration::from_secs(40) {
                let _ = child.kill();
                panic!(
                    "triaged did not exit within 40 s of SIGTERM:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL: a crash.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("daemon running");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        self.spawn();
    }

    /// A `triaged` CLI command with this daemon's configuration.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_triaged"))
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    }

    /// `triaged studies list --json`, parsed.
    pub fn studies(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["studies", "list", "--json"]);
        assert!(out.status.success(), "studies list failed: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every `.dcm` file under the storage folder (instances and results).
    pub fn instance_files(&self) -> Vec<PathBuf> {
        let mut v = files_under(&self.storage());
        v.retain(|p| p.extension().is_some_and(|x| x == "dcm"));
        v
    }

    /// The received instances on disk (not the reports kept in the
    /// outbox), by the SOP Instance UID in each file (on shared storage a
    /// resend's file is named `<SOP>.<node>-<n>.dcm`).
    pub fn received_files(&self) -> std::collections::BTreeMap<String, PathBuf> {
        let outbox = self.storage().join("outbox");
        self.instance_files()
            .into_iter()
            .filter(|p| !p.starts_with(&outbox))
            .map(|p| (sop_uid(&p), p))
            .collect()
    }

    /// `storescu OPTIONS -aec TRIAGED 127.0.0.1 PORT FILES` to this daemon.
    pub fn storescu(&self, options: &[&str], files: &[&Path]) -> Output {
        let port = self.port.to_string();
        let mut a: Vec<String> = options.iter().map(|s| s.to_string()).collect();
        a.extend(["-aec".into(), "TRIAGED".into(), "127.0.0.1".into(), port]);
        a.extend(files.iter().map(|f| f.display().to_string()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        run("storescu", &a)
    }

    pub fn echoscu(&self, args: &[&str]) -> Output {
        let port = self.port.to_string();
        let mut a: Vec<&str> = args.to_vec();
        a.extend_from_slice(&["127.0.0.1", &port]);
        run("echoscu", &a)
    }

    /// The pynetdicom peer (tests/peers/dimse_peer.py).
    pub fn py_peer(&self, args: &[&str]) -> Output {
        let script = repo_root().join("tests/peers/dimse_peer.py");
        let port = self.port.to_string();
        let mut cmd = Command::new(python());
        cmd.arg(script).arg(args[0]).arg(&port).args(&args[1..]);
        cmd.output().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- triaged log ----\n{}", self.log());
        }
    }
}

/// A real PACS: Orthanc from Debian, in the foreground on free ports.
pub struct Orthanc {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub http_port: u16,
    pub dicom_port: u16,
}

impl Orthanc {
    pub const AE: &'static str = "TESTPACS";

    /// `modalities`: (name, AE, port) entries on 127.0.0.1.
    pub fn start(modalities: &[(&str, &str, u16)]) -> Orthanc {
        Self::start_with(free_port(), modalities, true)
    }

    /// On a DICOM port chosen by the caller; with `allow_store` false,
    /// only the listed modalities may store.
    pub fn start_with(
        dicom_port: u16,
        modalities: &[(&str, &str, u16)],
        allow_store: bool,
    ) -> Orthanc {
        Self::start_configured(dicom_port, modalities, allow_store, "")
    }

    /// Storing from anyone, with `extra` configuration entries (JSON
    /// members, e.g. `"DicomTlsEnabled": true`) added to the usual ones.
    pub fn start_with_settings(extra: &str) -> Orthanc {
        Self::start_configured(free_port(), &[], true, extra)
    }

    fn start_configured(
        dicom_port: u16,
        modalities: &[(&str, &str, u16)],
        allow_store: bool,
        extra: &str,
    ) -> Orthanc {
        let dir = tempfile::tempdir().unwrap();
        let http_port = free_port();
        let mods: Vec<String> = modalities
            .iter()
            .map(|(n, ae, p)| format!("\"{n}\": [\"{ae}\", \"127.0.0.1\", {p}]"))
            .collect();
        let db = dir.path().join("db");
        let config = format!(
            r#"{{"Name": "TestPACS", "StorageDirectory": "{db}", "IndexDirectory": "{db}", "Plugins": [],
               "HttpPort": {http_port}, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
               "DicomAet": "{ae}", "DicomPort": {dicom_port}, "DicomCheckCalledAet": true,
               "DicomAlwaysAllowStore": {allow_store}, "DicomModalities": {{ {mods} }},
               "StableAge": 5, "SaveJobs": false, "HttpTimeout": 60{extra}}}"#,
            db = db.display(),
            ae = Self::AE,
            mods = mods.join(", "),
            extra = if extra.is_empty() {
                String::new()
            } else {
                format!(", {extra}")
            }
        );
        Self::start_config(dir, &config, http_port, dicom_port)
    }

    /// With a whole configuration file's text, in `dir`, on the ports it
    /// names.
    pub fn start_config(
        dir: tempfile::TempDir,
        config: &str,
        http_port: u16,
        dicom_port: u16,
    ) -> Orthanc {
        let cfg = dir.path().join("orthanc.json");
        std::fs::write(&cfg, config).unwrap();
        let log = std::fs::File::create(dir.path().join("orthanc.log")).unwrap();
        let child = Command::new("Orthanc")
            .arg(&cfg)
            .env("TCP_NODELAY", "1")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot run Orthanc (scripts/setup.sh installs it)");
        let o = Orthanc {
            child: Some(child),
            dir,
            http_port,
            dicom_port,
        };
        wait_until("Orthanc REST API", Duration::from_secs(30), || {
            o.get("/system").is_some()
        });
        o
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.http_port, path)
    }

    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        let out = run("curl", &["-sf", &self.url(path)]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    pub fn post(&self, path: &str, body: &str) -> serde_json::Value {
        let out = run(
            "curl",
            &["-sf", "-X", "POST", "--data-binary", body, &self.url(path)],
        );
        assert!(out.status.success(), "POST {path} failed: {}", text(&out));
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("orthanc.log")).unwrap_or_default()
    }

    /// The tags (simplified) of every instance the PACS holds for a study,
    /// of one modality or of all.
    pub fn instances(&self, study: &str, modality: Option<&str>) -> Vec<serde_json::Value> {
        let modality = modality
            .map(|m| format!(r#","Modality":"{m}""#))
            .unwrap_or_default();
        let found = self.post(
            "/tools/find",
            &format!(
                r#"{{"Level":"Instance","Query":{{"StudyInstanceUID":"{study}"{modality}}}}}"#
            ),
        );
        found
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|id| self.get(&format!("/instances/{}/tags?simplify", id.as_str()?)))
            .collect()
    }

    /// The SOP Class UIDs of a study's instances in the PACS.
    pub fn sop_classes(&self, study: &str) -> Vec<String> {
        self.instances(study, None)
            .iter()
            .filter_map(|t| t["SOPClassUID"].as_str().map(str::to_string))
            .collect()
    }

    /// How many instances of `modality` the PACS holds for a study.
    pub fn count(&self, study: &str, modality: &str) -> usize {
        self.post(
            "/tools/find",
            &format!(
                r#"{{"Level":"Instance","Query":{{"StudyInstanceUID":"{study}","Modality":"{modality}"}}}}"#
            ),
        )
        .as_array()
        .map(Vec::len)
        .unwrap_or(0)
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            signal(c.id(), "-TERM");
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- Orthanc log ----\n{}", self.log());
        }
    }
}

/// A tmpfs mounted for the test's life.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mount a tmpfs of `size` (as mount(8) says it: `4m`) at `at`.
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let out = run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                at.to_str().unwrap(),
            ],
        );
        assert!(
            out.status.success(),
            "mount tmpfs (the tests run as root): {}",
            text(&out)
        );
        Tmpfs(at.to_path_buf())
    }

    pub fn resize(&self, size: &str) {
        let out = run(
            "mount",
            &[
                "-o",
                &format!("remount,size={size}"),
                self.0.to_str().unwrap(),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    /// The fraction in use, as df counts it.
    pub fn used(&self) -> f64 {
        let out = run(
            "df",
            &["--output=used,avail", "-B1", self.0.to_str().unwrap()],
        );
        let line = text(&out).lines().last().unwrap_or_default().to_string();
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
        v[0] / (v[0] + v[1])
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run("umount", &["-l", self.0.to_str().unwrap()]);
        // The temporary folder around it could not be removed while the
        // mount was there.
        let _ = std::fs::remove_dir_all(&self.0);
        if let Some(parent) = self.0.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}
