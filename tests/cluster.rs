//! Several nodes on one PostgreSQL database and one storage folder
//! (issue 21): work is shared, not duplicated, and a node that dies has
//! its work finished by the others.

mod support;

use std::path::Path;
use std::time::Duration;

use phantom::{Grade, Label};
use support::*;

/// A node `name` on `storage` and `database`, sending results to the
/// PACS on `pacs_port`; its leases last 3 s.
fn node(name: &str, storage: &Path, database: &str, pacs_port: u16) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let (port, http_port) = (free_port(), free_port());
    let text = format!(
        "[dicom]\nae_title = \"TRIAGED\"\nlisten = \"127.0.0.1:{port}\"\n\n\
         [storage]\ndir = \"{}\"\n\n[database]\nurl = \"{database}\"\n\n\
         [node]\nname = \"{name}\"\nlease_secs = 3\n\n\
         [log]\nlevel = \"info,pipeline=debug\"\n\n[http]\nlisten = \"127.0.0.1:{http_port}\"\n\n\
         [[destinations]]\nname = \"pacs\"\nae_title = \"{}\"\nhost = \"127.0.0.1\"\nport = {pacs_port}\n\n\
         [pipeline]\nquiet_secs = 2\n\n[models]\ndir = \"{}\"\n",
        storage.display(),
        Orthanc::AE,
        repo_root().join("models").display()
    );
    Daemon::start_config(dir, &text, port, http_port)
}

fn sql(d: &Daemon, query: &str) -> String {
    let out = d.sql(query);
    assert!(out.status.success(), "{}", text(&out));
    text(&out).trim().to_string()
}

const SR: &str = "1.2.840.10008.5.1.4.1.1.88.34";

/// Half a study to one node, half to the other: one job, one report.
#[test]
fn a_study_split_across_two_nodes_is_one_job_and_one_report() {
    let pg = Postgres::start();
    let database = pg.database();
    let shared = tempfile::tempdir().unwrap();
    let storage = shared.path().join("storage");
    let pacs_port = free_port();
    let pacs = Orthanc::start_with(pacs_port, &[], true);
    let a = node("node-a", &storage, &database, pacs_port);
    let b = node("node-b", &storage, &database, pacs_port);
    let (uid, files) = phantom_study(
        shared.path(),
        2101,
        vec![(Label::Pneumothorax, Grade::Severe)],
        4,
    );
    let (first, second) = files.split_at(2);
    let out = a.storescu(&[], &first.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    let out = b.storescu(&[], &second.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    wait_until("the report in the PACS", Duration::from_secs(60), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SR)
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
    assert_eq!(pacs.count(&uid, "SR"), 1);
    assert_eq!(sql(&b, "SELECT COUNT(*) FROM outbox WHERE destination = 'pacs' AND sop_class_uid = '1.2.840.10008.5.1.4.1.1.88.34'"), "1");
    // Each node beats and received into its own incoming folder.
    assert_eq!(
        sql(&a, "SELECT name FROM nodes ORDER BY name")
            .lines()
            .collect::<Vec<_>>(),
        ["node-a", "node-b"]
    );
    for n in ["node-a", "node-b"] {
        assert!(storage.join(".incoming").join(n).is_dir(), "{n}");
    }
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
    let pg = Postgres::start();
    let database = pg.database();
    let shared = tempfile::tempdir().unwrap();
    let storage = shared.path().join("storage");
    let pacs_port = free_port();
    let pacs = Orthanc::start_with(pacs_port, &[], true);
    let mut a = node("node-a", &storage, &database, pacs_port);
    let (uid, files) = phantom_study(
        shared.path(),
        2102,
        vec![(Label::Pneumothorax, Grade::Severe)],
        3,
    );
    let out = a.storescu(&[], &files.iter().map(|f| f.as_path()).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    // Node b is up before a claims the job, so only a can hold it.
    let b = node("node-b", &storage, &database, pacs_port);
    wait_until("node a claims the job", Duration::from_secs(60), || {
        a.log().contains("job claimed")
    });
    a.kill();
    let claimed_by_a = sql(&b, "SELECT COALESCE(node, '-') || ' ' || state FROM jobs");
    wait_until("the report in the PACS", Duration::from_secs(90), || {
        pacs.sop_classes(&uid).iter().any(|c| c == SR)
    });
    wait_until("the job done", Duration::from_secs(30), || {
        sql(&b, "SELECT state FROM jobs") == "done"
    });
    assert_eq!(pacs.count(&uid, "SR"), 1);
    assert_eq!(sql(&b, "SELECT COUNT(*) FROM jobs"), "1");
    // a was killed mid-analysis: b took the job back and ran it.
    assert!(
        ["node-a analysing", "node-a reporting"].contains(&claimed_by_a.as_str()),
        "{claimed_by_a}"
    );
    assert!(
        b.log()
            .contains("took back the claims of a node that stopped beating"),
        "{}",
        b.log()
    );
    assert!(b.log().contains("job claimed"), "{}", b.log());
}
