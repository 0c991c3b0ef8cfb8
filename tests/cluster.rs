//! Several nodes on one PostgreSQL database and one storage folder
//! (issue 21): work is shared, not duplicated, and a node that dies has
//! its work finished by the others.

mod support;

use std::path::Path;
use std::time::Duration;

use phantom::{Grade, Label};
use support::*;

/// A node `name` on `storage` and `database`, sending results to the
/// PACS on `pacs_port`; its leases last 3 s ([`node_with_lease`]: as
/// long as asked).
fn node(name: &str, storage: &Path, database: &str, pacs_port: u16) -> Daemon {
    node_with_lease(name, storage, database, pacs_port, 3)
}

fn node_with_lease(
    name: &str,
    storage: &Path,
    database: &str,
    pacs_port: u16,
    lease_secs: u64,
) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let (port, http_port) = (free_port(), free_port());
    let text = format!(
        "[dicom]\nae_title = \"TRIAGED\"\nlisten = \"127.0.0.1:{port}\"\n\n\
         [storage]\ndir = \"{}\"\n\n[database]\nurl = \"{database}\"\n\n\
         [node]\nname = \"{name}\"\nlease_secs = {lease_secs}\n\n\
         [log]\nlevel = \"info,pipeline=debug\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
         [[destinations]]\nname = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {pacs_port}\n\n\
         [pipeline]\nquiet_secs = 2\n\n[models]\ndir = \"{}\"\n",
        storage.display(),
        Orthanc::AE,
        repo_root().join("models").display()
    );
    Daemon::start_config(dir, &text, port, http_port)
}

/// `curl` to a node's API with the admin token the first node made in the
/// shared storage folder: (status, body).
fn api(
    d: &Daemon,
    storage: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (String, String) {
    let token = std::fs::read_to_string(storage.join("admin.token")).unwrap();
    let auth = format!("Authorization: Bearer {}", token.trim());
    let url = format!("http://127.0.0.1:{}{path}", d.http_port);
    let mut args = vec!["-s", "-w", "\n%{http_code}", "-X", method, "-H", &auth];
    if let Some(b) = body {
        args.extend(["-H", "Content-Type: application/json", "--data-binary", b]);
    }
    args.push(&url);
    let out = run("curl", &args);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.to_string(), body.to_string())
}

/// What every cluster test runs on: a PostgreSQL database, a storage
/// folder the nodes share (under `shared`, beside the test's files) and a
/// PACS for the reports.
struct Site {
    pg: Postgres,
    database: String,
    shared: tempfile::TempDir,
    storage: std::path::PathBuf,
    pacs_port: u16,
    pacs: Orthanc,
}

impl Site {
    fn start() -> Site {
        Site::on(Postgres::start())
    }

    fn on(pg: Postgres) -> Site {
        let shared = tempfile::tempdir().unwrap();
        let pacs_port = free_port();
        Site {
            database: pg.database(),
            storage: shared.path().join("storage"),
            shared,
            pacs_port,
            pacs: Orthanc::start_with(pacs_port, &[], true),
            pg,
        }
    }

    /// A study of `n` images with a severe pneumothorax, in the shared folder.
    fn study(&self, seed: u64, n: u32) -> (String, Vec<std::path::PathBuf>) {
        phantom_study(
            self.shared.path(),
            seed,
            vec![(Label::Pneumothorax, Grade::Severe)],
            n,
        )
    }

    /// A node of this site (see [`node`]).
    fn node(&self, name: &str) -> Daemon {
        node(name, &self.storage, &self.database, self.pacs_port)
    }
}

fn sql(d: &Daemon, query: &str) -> String {
    let out = d.sql(query);
    assert!(out.status.success(), "{}", text(&out));
    text(&out).trim().to_string()
}

const SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";

/// The node named by a row of `study` in `table` (jobs or outbox) in one
/// of `states` (SQL list), once there is one (`what` names the wait).
fn holder(d: &Daemon, what: &str, table: &str, study: &str, states: &str) -> String {
    let query = format!(
        "SELECT COALESCE(MAX(node), '') FROM {table} WHERE study_instance_uid = '{study}' AND state IN ({states})"
    );
    let mut node = String::new();
    wait_until(what, Duration::from_secs(60), || {
        node = sql(d, &query);
        !node.is_empty()
    });
    node
}

/// Half a study to one node, half to the other: one job, one report.
#[test]
fn a_study_split_across_two_nodes_is_one_job_and_one_report() {
    let site = Site::start();
    let a = site.node("node-a");
    let b = site.node("node-b");
    let (uid, files) = site.study(2101, 4);
    let (first, second) = files.split_at(2);
    let out = a.storescu(&[], &first.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    let out = b.storescu(&[], &second.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        site.pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    // Both nodes assembled the quiet study: one job covers all four
    // images, and it is done once the PACS has its report.
    wait_until("the job done", Duration::from_secs(30), || {
        sql(&a, "SELECT state FROM jobs") == "done"
    });
    assert_eq!(
        sql(&a, "SELECT COUNT(*) || ' ' || MAX(instances) FROM jobs"),
        "1 4"
    );
    assert_eq!(site.pacs.count(&uid, "SR"), 1);
    assert_eq!(sql(&b, "SELECT COUNT(*) FROM outbox WHERE destination = 'pacs' AND sop_class_uid = '1.2.840.10008.5.1.4.1.1.88.34'"), "1");
    // Each node beats and received into its own incoming folder.
    assert_eq!(
        sql(&a, "SELECT name FROM nodes ORDER BY name")
            .lines()
            .collect::<Vec<_>>(),
        ["node-a", "node-b"]
    );
    for n in ["node-a", "node-b"] {
        assert!(site.storage.join(".incoming").join(n).is_dir(), "{n}");
    }
    // A source added on one node's console is in force on the other
    // without a restart, and the other node says which node it is.
    let (status, body) = api(
        &a,
        &site.storage,
        "PUT",
        "/api/sources/new-modality",
        Some(r#"{"ae_title":"NEWMOD","hosts":["127.0.0.1"]}"#),
    );
    assert_eq!(status, "200", "{body}");
    wait_until("the new source on node b", Duration::from_secs(30), || {
        api(&b, &site.storage, "GET", "/api/sources", None)
            .1
            .contains("NEWMOD")
    });
    let out = run(
        "echoscu",
        &[
            "-aet",
            "NEWMOD",
            "-aec",
            "TRIAGED",
            "127.0.0.1",
            &b.port.to_string(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let metrics = run(
        "curl",
        &["-s", &format!("http://127.0.0.1:{}/metrics", b.http_port)],
    );
    assert!(
        text(&metrics).contains("triaged_node{node=\"node-b\"} 1"),
        "{}",
        text(&metrics)
    );
    // The same name twice is refused: the two would share an incoming
    // folder and each other's claims.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("t.toml");
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&a.config)
            .unwrap()
            .replace(
                &format!("127.0.0.1:{}", a.port),
                &format!("127.0.0.1:{}", free_port()),
            )
            .replace(
                &format!("127.0.0.1:{}", a.http_port),
                &format!("127.0.0.1:{}", free_port()),
            ),
    )
    .unwrap();
    let out = run(
        env!("CARGO_BIN_EXE_triaged"),
        &["serve", "--config", cfg.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(
        text(&out).contains("in use by another triaged process as node node-a"),
        "{}",
        text(&out)
    );
}

/// A node killed while it analyses a study: the other node takes the job
/// over once the dead node's lease lapses, and the PACS gets one report.
#[test]
fn a_node_killed_during_analysis_has_its_job_finished_by_another() {
    let site = Site::start();
    let mut a = site.node("node-a");
    let (uid, files) = site.study(2102, 3);
    let out = a.storescu(&[], &files.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    wait_until("node a claims the job", Duration::from_secs(60), || {
        a.log().contains("job claimed")
    });
    a.kill();
    let claimed_by_a = sql(&a, "SELECT COALESCE(node, '-') || ' ' || state FROM jobs");
    // Node b starts now: a's claim is not its own, and a beat recently,
    // so b leaves the job alone until a's lease lapses.
    let b = site.node("node-b");
    wait_until("the report in the PACS", Duration::from_secs(90), || {
        site.pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    wait_until("the job done", Duration::from_secs(30), || {
        sql(&b, "SELECT state FROM jobs") == "done"
    });
    assert_eq!(site.pacs.count(&uid, "SR"), 1);
    assert_eq!(sql(&b, "SELECT COUNT(*) FROM jobs"), "1");
    // a was killed mid-analysis: b took the job back and ran it.
    assert!(
        ["node-a analysing", "node-a reporting"].contains(&claimed_by_a.as_str()),
        "{claimed_by_a}"
    );
    // Taken back by b's heartbeat, or at b's start if a's lease had
    // already lapsed by then.
    let log = b.log();
    assert!(
        log.contains("took back the claims of a node that stopped beating")
            || log.contains("resuming jobs interrupted by a stop"),
        "{log}"
    );
    assert!(b.log().contains("job claimed"), "{}", b.log());
}

/// The shipped cluster files (deploy/cluster) on this host: three nodes
/// from `triaged.toml` behind HAProxy from `haproxy.cfg`, with addresses,
/// ports, folders and node names changed. Studies go in through HAProxy;
/// one node is killed with -9 halfway. A sender whose association broke
/// sends again (as a router does); afterwards every instance is stored
/// once, each study has one job and one report, and the dead node's
/// work was finished by the others.
#[test]
fn three_nodes_behind_haproxy_lose_nothing_when_one_is_killed() {
    let site = Site::start();
    let shipped =
        |f: &str| std::fs::read_to_string(repo_root().join("deploy/cluster").join(f)).unwrap();
    let mut nodes: Vec<Daemon> = (1..=3)
        .map(|n| {
            let (port, http_port) = (free_port(), free_port());
            let text = shipped("triaged.toml")
                .replace("0.0.0.0:11112", &format!("127.0.0.1:{port}"))
                .replace("0.0.0.0:8642", &format!("127.0.0.1:{http_port}"))
                .replace("/var/lib/triaged", site.storage.to_str().unwrap())
                .replace("postgres://triaged@postgres:5432/triaged", &site.database)
                .replace(
                    "lease_secs = 30",
                    &format!("name = \"triaged-{n}\"\nlease_secs = 3"),
                )
                .replace(
                    "/usr/share/triaged/models",
                    repo_root().join("models").to_str().unwrap(),
                )
                .replace(
                    "name = \"pacs\"\nae_title = \"ORTHANC\"\nhost = \"orthanc\"\nport = 4242",
                    &format!(
                        "name = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {}",
                        Orthanc::AE,
                        site.pacs_port
                    ),
                );
            Daemon::start_config(tempfile::tempdir().unwrap(), &text, port, http_port)
        })
        .collect();
    let (lb, lb_http) = (free_port(), free_port());
    let mut cfg = shipped("haproxy.cfg")
        .replace("bind :11112", &format!("bind 127.0.0.1:{lb}"))
        .replace("bind :8642", &format!("bind 127.0.0.1:{lb_http}"))
        .replace(" resolvers docker", "");
    for (i, d) in nodes.iter().enumerate() {
        let n = i + 1;
        cfg = cfg
            .replace(
                &format!("triaged-{n}:11112 port 8642"),
                &format!("127.0.0.1:{} port {}", d.port, d.http_port),
            )
            .replace(
                &format!("triaged-{n}:8642"),
                &format!("127.0.0.1:{}", d.http_port),
            );
    }
    let cfg_path = site.shared.path().join("haproxy.cfg");
    std::fs::write(&cfg_path, cfg).unwrap();
    let haproxy = std::process::Command::new("haproxy")
        .args(["-db", "-f", cfg_path.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("haproxy (scripts/setup.sh installs it)");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _haproxy = Kill(haproxy);
    let through_lb = |files: &[std::path::PathBuf]| {
        let mut args = vec![
            "-aet".to_string(),
            "ORTHANC".into(),
            "-aec".into(),
            "TRIAGED".into(),
        ];
        args.extend(["127.0.0.1".into(), lb.to_string()]);
        args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run("storescu", &args).status.success()
    };
    wait_until(
        "HAProxy takes associations",
        Duration::from_secs(30),
        || {
            run(
                "echoscu",
                &[
                    "-aet",
                    "ORTHANC",
                    "-aec",
                    "TRIAGED",
                    "127.0.0.1",
                    &lb.to_string(),
                ],
            )
            .status
            .success()
        },
    );
    let studies: Vec<(String, Vec<std::path::PathBuf>)> =
        (0..6).map(|k| site.study(2200 + k, 2)).collect();
    for (k, (_, files)) in studies.iter().enumerate() {
        if k == 3 {
            nodes[1].kill();
        }
        // A sender whose association failed sends the study again.
        wait_until(
            "the study stored through HAProxy",
            Duration::from_secs(60),
            || through_lb(files),
        );
    }
    let alive = &nodes[0];
    for (uid, _) in &studies {
        assert!(
            wait_for(Duration::from_secs(120), || {
                site.pacs.sop_classes(uid).iter().any(|c| c == SR)
            }),
            "no report for {uid}: jobs\n{}\noutbox\n{}\nnodes\n{}",
            sql(alive, "SELECT study_instance_uid || ' ' || state || ' ' || COALESCE(node, '-') || ' ' || COALESCE(reason, '') FROM jobs"),
            sql(alive, "SELECT study_instance_uid || ' ' || state || ' ' || COALESCE(node, '-') || ' ' || COALESCE(last_error, '') FROM outbox"),
            sql(alive, "SELECT name || ' ' || seen_at FROM nodes"),
        );
    }
    wait_until("every job done", Duration::from_secs(60), || {
        sql(alive, "SELECT COUNT(*) FROM jobs WHERE state = 'done'") == "6"
    });
    assert_eq!(sql(alive, "SELECT COUNT(*) FROM instances"), "12");
    assert_eq!(sql(alive, "SELECT COUNT(*) FROM jobs"), "6");
    for (uid, files) in &studies {
        assert_eq!(site.pacs.count(uid, "SR"), 1, "{uid}");
        for f in files {
            let stored = sql(
                alive,
                &format!(
                    "SELECT file_path FROM instances WHERE sop_instance_uid = '{}'",
                    sop_uid(f)
                ),
            );
            assert_eq!(
                sop_uid(&site.storage.join(&stored)),
                sop_uid(f),
                "{uid}: stored"
            );
        }
    }
}

/// `GET path` on a node (no token): (status, body).
fn get(d: &Daemon, path: &str) -> (String, String) {
    let url = format!("http://127.0.0.1:{}{path}", d.http_port);
    let out = text(&run("curl", &["-s", "-w", "\n%{http_code}", &url]));
    let (body, status) = out.rsplit_once('\n').unwrap_or(("", &out));
    (status.to_string(), body.to_string())
}

/// PostgreSQL stopped while studies stream in, and started again: the
/// node refuses what it cannot index (the sender retries, as a router
/// does), says it is not ready, and once the database is back it takes
/// instances again and finishes every study without a restart.
#[test]
fn postgresql_restarted_under_load_loses_nothing_and_the_node_recovers() {
    let site = Site::on(Postgres::start_own());
    let a = site.node("node-a");
    let b = site.node("node-b");
    let studies: Vec<(String, Vec<std::path::PathBuf>)> =
        (0..8).map(|k| site.study(2300 + k, 2)).collect();
    let refused = std::sync::atomic::AtomicUsize::new(0);
    let sent = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for (k, (_, files)) in studies.iter().enumerate() {
                let to = if k % 2 == 0 { &a } else { &b };
                let files: Vec<&Path> = files.iter().map(|f| f.as_path()).collect();
                // A router sends again what was refused, until it is taken.
                wait_until("the study stored", Duration::from_secs(120), || {
                    let out = to.storescu(&[], &files);
                    let ok = out.status.success() && !text(&out).contains("Status:");
                    if !ok {
                        refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    ok
                });
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        wait_until("three studies in", Duration::from_secs(60), || {
            sent.load(std::sync::atomic::Ordering::SeqCst) >= 3
        });
        site.pg.stop();
        wait_until("a sender refused", Duration::from_secs(60), || {
            refused.load(std::sync::atomic::Ordering::SeqCst) > 0
        });
        assert_eq!(get(&a, "/readyz").0, "503");
        // Down long enough that every background task met the outage.
        wait_until(
            "the workers met the outage",
            Duration::from_secs(60),
            || {
                [&a, &b].iter().all(|d| {
                    let log = d.log();
                    log.contains("heartbeat failed") && log.contains("cannot claim a job")
                })
            },
        );
        // The pool keeps trying to connect; /readyz does not wait for it.
        let (status, body) = get(&a, "/readyz");
        assert_eq!(status, "503", "{body}");
        assert!(
            body.contains("the database did not answer within"),
            "{body}"
        );
        site.pg.start_again();
        wait_until("node a ready again", Duration::from_secs(60), || {
            get(&a, "/readyz").0 == "200"
        });
    });
    for (uid, _) in &studies {
        assert!(
            wait_for(Duration::from_secs(120), || {
                site.pacs.sop_classes(uid).iter().any(|c| c == SR)
            }),
            "no report for {uid}: jobs\n{}\nnode a\n{}\nnode b\n{}",
            sql(&a, "SELECT study_instance_uid || ' ' || state || ' ' || COALESCE(node, '-') || ' ' || COALESCE(reason, '') FROM jobs"),
            a.log(),
            b.log(),
        );
    }
    // Every job done and every study with one. A study can have two: an
    // instance refused while PostgreSQL was away and resent after the quiet
    // period makes a second instance set, analysed again (as designed).
    wait_until("every job done", Duration::from_secs(60), || {
        sql(&a, "SELECT COUNT(*) FROM jobs WHERE state <> 'done'") == "0"
            && sql(
                &a,
                "SELECT COUNT(DISTINCT study_instance_uid) FROM jobs WHERE state = 'done'",
            ) == "8"
    });
    assert_eq!(sql(&a, "SELECT COUNT(*) FROM instances"), "16");
    // The refused instances' files were replaced by their resends, not
    // left beside them: every instance file is one the index names.
    let instance_files: Vec<_> = files_under(&site.storage)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .filter(|p| !p.starts_with(site.storage.join("outbox")))
        .collect();
    assert_eq!(instance_files.len(), 16, "{instance_files:?}");
    // Each job's report reached the PACS exactly once.
    for (uid, _) in &studies {
        let jobs = sql(
            &a,
            &format!("SELECT COUNT(*) FROM jobs WHERE study_instance_uid = '{uid}'"),
        );
        assert_eq!(site.pacs.count(uid, "SR").to_string(), jobs, "{uid}");
    }
    // The sender heard 0xA700 (out of resources: the index was away),
    // and the log says so.
    let log = format!("{}{}", a.log(), b.log());
    assert!(
        log.lines()
            .any(|l| l.contains("instance refused") && l.contains("0xA700")),
        "{log}"
    );
}

/// The SOP Instance UID of the study's report in the outbox.
fn sop_uid_of_sr(d: &Daemon) -> String {
    sql(
        d,
        &format!("SELECT sop_instance_uid FROM outbox WHERE sop_class_uid = '{SR}'"),
    )
}

/// A TCP relay to a port on loopback. While `hold` is set, each new
/// connection gets the server's first PDU (the A-ASSOCIATE-AC) and
/// nothing more: the sender's data reach the server, its answers do not.
struct Relay {
    port: u16,
    /// Set while answers are held; its waiters are woken when it clears.
    hold: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
}

impl Relay {
    fn to(server: u16) -> Relay {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let hold = std::sync::Arc::new((std::sync::Mutex::new(true), std::sync::Condvar::new()));
        let held = hold.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server)) else {
                    continue;
                };
                let (mut up_in, mut up_out) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut up_in, &mut up_out);
                    let _ = up_out.shutdown(Shutdown::Write);
                });
                let held = held.clone();
                std::thread::spawn(move || {
                    let (mut from, mut to) = (server, client);
                    let (flag, released) = &*held;
                    if *flag.lock().unwrap() {
                        // The first PDU: a 6-byte header, then its length.
                        let mut header = [0u8; 6];
                        if from.read_exact(&mut header).is_err() {
                            return;
                        }
                        let len = u32::from_be_bytes(header[2..6].try_into().unwrap()) as usize;
                        let mut body = vec![0u8; len];
                        if from.read_exact(&mut body).is_err()
                            || to.write_all(&header).is_err()
                            || to.write_all(&body).is_err()
                        {
                            return;
                        }
                        let _released = released
                            .wait_while(flag.lock().unwrap(), |held| *held)
                            .unwrap();
                    }
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        });
        Relay { port, hold }
    }

    fn release(&self) {
        let (flag, released) = &*self.hold;
        *flag.lock().unwrap() = false;
        released.notify_all();
    }
}

/// A node killed while it delivers a report, at the worst moment: the
/// PACS has stored the SR, the node has not heard so (the relay holds
/// the PACS's answer back). Another node takes the delivery over once
/// the dead node's lease lapses and sends the same SR again: the PACS
/// still holds one.
#[test]
fn a_node_killed_during_delivery_has_the_report_sent_once_by_another() {
    let site = Site::start();
    let relay = Relay::to(site.pacs_port);
    let mut a = node("node-a", &site.storage, &site.database, relay.port);
    let (uid, files) = site.study(2103, 2);
    let out = a.storescu(&[], &files.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    wait_until(
        "the PACS stored the report",
        Duration::from_secs(60),
        || site.pacs.count(&uid, "SR") == 1,
    );
    a.kill();
    let sr = format!(
        "SELECT state || ' ' || COALESCE(node, '-') FROM outbox WHERE sop_class_uid = '{SR}'"
    );
    assert_eq!(sql(&a, &sr), "sending node-a");
    assert!(!a.log().contains("result delivered"), "{}", a.log());
    relay.release();
    let b = node("node-b", &site.storage, &site.database, relay.port);
    // The report and its heatmaps (secondary captures) all delivered.
    wait_until("every delivery recorded", Duration::from_secs(90), || {
        sql(&b, "SELECT COUNT(*) FROM outbox WHERE state <> 'delivered'") == "0"
    });
    let log = b.log();
    assert!(
        log.contains("took back the claims of a node that stopped beating")
            || log.contains("resuming jobs interrupted by a stop"),
        "{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("result delivered") && l.contains(&sop_uid_of_sr(&b))),
        "{log}"
    );
    // Sent twice under one SOP Instance UID: the PACS files it once.
    assert_eq!(site.pacs.count(&uid, "SR"), 1);
    assert_eq!(
        sql(
            &b,
            &format!("SELECT COUNT(*) FROM outbox WHERE sop_class_uid = '{SR}'")
        ),
        "1"
    );
    assert_eq!(sql(&b, "SELECT state FROM jobs"), "done");
}

/// The chaos test of tests/reliability.rs on three nodes: kill -9 of a
/// node inside an association, right after its last Success, while it
/// analyses a study, while it delivers the report, and right after its
/// first Success (the rest of the study then comes late, to another
/// node), a different node each time. The sender resends what was not
/// acknowledged to another node (as a router behind the load balancer
/// does); the dead node comes back later. Every acknowledged instance is
/// stored intact and indexed once, the survivors finish the dead node's
/// work, and every study has exactly one report in the PACS.
#[test]
fn kill_9_of_one_node_of_three_at_any_moment_loses_nothing() {
    let site = Site::start();
    // A lease long enough for a late resend to come within it (below).
    let mut nodes: Vec<Daemon> = (0..3)
        .map(|i| {
            node_with_lease(
                &format!("node-{i}"),
                &site.storage,
                &site.database,
                site.pacs_port,
                6,
            )
        })
        .collect();
    let index = |name: &str| {
        name.strip_prefix("node-")
            .and_then(|n| n.parse::<usize>().ok())
    };
    let mut studies = Vec::new();
    let mut acknowledged_before_kill = 0;
    for trial in 0..5u64 {
        let (uid, files) = phantom_study(
            site.shared.path(),
            2400 + trial,
            vec![(Label::Effusion, Grade::Severe)],
            4,
        );
        let to = trial as usize % 3;
        let accepted_before = nodes[to].log().matches("association accepted").count();
        let stored_before = nodes[to].log().matches("instance stored").count();
        let child = failing_over_sender(&nodes[to], &files);
        let (victim, moment) = match trial {
            0 => {
                // Inside the association, as soon as it is accepted.
                wait_until("the association accepted", Duration::from_secs(60), || {
                    nodes[to].log().matches("association accepted").count() > accepted_before
                });
                (to, "during C-STORE")
            }
            1 => {
                wait_until("the sender done", Duration::from_secs(60), || {
                    !child_running(&child)
                });
                (to, "after the last Success")
            }
            2 => {
                // Whichever node claimed the job (or ran it already, on a
                // fast machine).
                let states = "'analysing', 'reporting', 'sending', 'done'";
                let holder = holder(&nodes[to], "a node analysing", "jobs", &uid, states);
                (index(&holder).unwrap(), "during analysis")
            }
            3 => {
                let states = "'sending', 'delivered'";
                let holder = holder(&nodes[to], "a node delivering", "outbox", &uid, states);
                (index(&holder).unwrap(), "during delivery")
            }
            _ => {
                // Once the first instance is acknowledged: the survivors
                // must not report the part of the study the dead node
                // took before the sender resends the rest.
                wait_until("the first instance stored", Duration::from_secs(60), || {
                    nodes[to].log().matches("instance stored").count() > stored_before
                });
                (to, "after the first Success")
            }
        };
        nodes[victim].kill();
        let other = &nodes[(victim + 1) % 3];
        if trial == 4 {
            // A router that fails over without waiting for the cut
            // association (pynetdicom notices only after its DIMSE
            // timeout), but only once the part of the study the dead node
            // took has been quiet for longer than its quiet period (2 s),
            // and sends the whole study again. The survivors must not have
            // reported that part meanwhile: the study waits a quiet period
            // from the dead node's lapse (lease 6 s), so the rest joins it.
            let quiet_longer = format!(
                "SELECT COUNT(*) FROM studies WHERE study_instance_uid = '{uid}' \
                 AND last_received_at < strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-3 seconds')"
            );
            wait_until(
                "the cut study quiet for 3 s",
                Duration::from_secs(60),
                || sql(other, &quiet_longer) == "1",
            );
            let jobs = format!("SELECT COUNT(*) FROM jobs WHERE study_instance_uid = '{uid}'");
            assert_eq!(
                sql(other, &jobs),
                "0",
                "the part of a study a dead node received was analysed before its sender could resend the rest"
            );
            resend_unacknowledged(other, &files, &vec![None; files.len()], moment);
            let mut abandoned = child;
            let _ = abandoned.kill();
            let _ = abandoned.wait();
        } else {
            let sent = statuses(child, files.len());
            acknowledged_before_kill += sent.iter().filter(|s| **s == Some(0)).count();
            resend_unacknowledged(other, &files, &sent, moment);
        }
        // Every instance indexed once and intact: the stored data set is
        // the one sent, byte for byte.
        for f in &files {
            let sop = sop_uid(f);
            let path = sql(
                other,
                &format!("SELECT file_path FROM instances WHERE sop_instance_uid = '{sop}'"),
            );
            assert!(
                !path.is_empty() && !path.contains('\n'),
                "{moment}: {sop}: {path:?}"
            );
            assert_eq!(
                data_set_bytes(&site.storage.join(&path)),
                data_set_bytes(f),
                "{moment}: {sop} differs"
            );
        }
        wait_until("the report in the PACS", Duration::from_secs(90), || {
            site.pacs.sop_classes(&uid).iter().any(|c| c == SR)
        });
        nodes[victim].restart();
        studies.push((uid, moment));
    }
    let any = &nodes[0];
    for (uid, moment) in &studies {
        wait_until("the job done", Duration::from_secs(60), || {
            sql(
                any,
                &format!("SELECT COUNT(*) FROM jobs WHERE study_instance_uid = '{uid}' AND state <> 'done'"),
            ) == "0"
        });
        assert_eq!(site.pacs.count(uid, "SR"), 1, "{moment}: {uid}");
    }
    assert_eq!(sql(any, "SELECT COUNT(*) FROM instances"), "20");
    eprintln!(
        "cluster chaos: {:?}, {acknowledged_before_kill} instances acknowledged before a kill, 0 lost, one report each",
        studies.iter().map(|(_, m)| *m).collect::<Vec<_>>()
    );
}

/// A node reaches PostgreSQL over TLS, verifying the server's
/// certificate and name (`sslmode=verify-full`, the site's CA in
/// `sslrootcert`); without that CA the same URL stops the start with a
/// message that says why.
#[test]
fn a_node_reaches_postgresql_over_verified_tls() {
    let pg = Postgres::start_own_with_tls();
    let plain = pg.database();
    let ca = pg.ca();
    let database = format!("{plain}?sslmode=verify-full&sslrootcert={}", ca.display());
    let shared = tempfile::tempdir().unwrap();
    let storage = shared.path().join("storage");
    let d = node("node-a", &storage, &database, free_port());
    let (_, files) = phantom_study(
        shared.path(),
        2501,
        vec![(Label::Pneumothorax, Grade::Severe)],
        2,
    );
    let out = d.storescu(&[], &files.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(sql(&d, "SELECT COUNT(*) FROM instances"), "2");
    // Every connection of the node's is encrypted (this psql's too).
    let of_db = "FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()";
    assert_ne!(sql(&d, &format!("SELECT COUNT(*) {of_db} AND s.ssl")), "0");
    assert_eq!(
        sql(&d, &format!("SELECT COUNT(*) {of_db} AND NOT s.ssl")),
        "0"
    );

    // The system's CAs do not know this server: verify-full refuses it.
    let config = shared.path().join("unverified.toml");
    std::fs::write(
        &config,
        format!(
            "[dicom]\nlisten = \"127.0.0.1:{}\"\n[storage]\ndir = \"{}\"\n[database]\nurl = \"{plain}?sslmode=verify-full\"\n[node]\nname = \"node-b\"\n[http]\nenabled = false\n",
            free_port(),
            storage.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(["--config", config.to_str().unwrap(), "serve"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let said = text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(said.contains("cannot open the archive"), "{said}");
    assert!(said.to_lowercase().contains("certificate"), "{said}");
}
