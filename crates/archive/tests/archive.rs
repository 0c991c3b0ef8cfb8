//! The archive on a real SQLite file in a temporary directory.

mod common;

use archive::{Archive, ArchiveError, FindingRow, Incoming};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

fn data_set(study: &str, series: &str, sop: &str, pixels: usize) -> Vec<u8> {
    let mut obj = InMemDicomObject::new_empty();
    let mut put = |tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
    put(tags::SOP_CLASS_UID, VR::UI, CT);
    put(tags::SOP_INSTANCE_UID, VR::UI, sop);
    put(tags::STUDY_INSTANCE_UID, VR::UI, study);
    put(tags::SERIES_INSTANCE_UID, VR::UI, series);
    put(tags::MODALITY, VR::CS, "CT");
    put(tags::PATIENT_ID, VR::LO, "SYNTH-1");
    put(tags::STUDY_DESCRIPTION, VR::LO, "synthetic");
    obj.put(DataElement::new(
        tags::ROWS,
        VR::US,
        PrimitiveValue::from(16_u16),
    ));
    obj.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(vec![7u8; pixels]),
    ));
    let mut out = Vec::new();
    obj.write_dataset_with_ts(&mut out, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
        .unwrap();
    out
}

fn incoming(sop: &str) -> Incoming {
    Incoming {
        sop_class_uid: CT.into(),
        sop_instance_uid: sop.into(),
        transfer_syntax_uid: EXPLICIT_LE.into(),
        calling_ae_title: "TESTSCU".into(),
        called_ae_title: "TRIAGED".into(),
        source: "test".into(),
        peer_address: "127.0.0.1".into(),
    }
}

async fn open(dir: &std::path::Path, spill: usize) -> Archive {
    let mut o = common::options(dir).await;
    o.spill_threshold = spill;
    Archive::open(o).await.unwrap()
}

/// Send `bytes` in PDU-sized chunks.
async fn store(a: &Archive, sop: &str, bytes: &[u8]) -> Result<archive::Stored, ArchiveError> {
    let mut p = a.begin(incoming(sop));
    for chunk in bytes.chunks(16 * 1024) {
        p.write(chunk).await?;
    }
    p.commit().await
}

#[tokio::test]
async fn stores_indexes_and_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let bytes = data_set("1.2.3", "1.2.3.4", "1.2.3.4.5", 1000);
    let stored = store(&a, "1.2.3.4.5", &bytes).await.unwrap();
    assert_eq!(stored.file_path, "1.2.3/1.2.3.4/1.2.3.4.5.dcm");
    assert!(!stored.duplicate);
    let file = dir.path().join(&stored.file_path);
    let obj = dicom_object::open_file(&file).unwrap();
    assert_eq!(
        obj.meta().transfer_syntax().trim_end_matches('\0'),
        EXPLICIT_LE
    );
    assert_eq!(
        obj.meta().source_application_entity_title(),
        Some("TESTSCU")
    );
    assert_eq!(std::fs::metadata(&file).unwrap().len(), stored.file_size);
    a.close().await;

    let a = open(dir.path(), 1 << 20).await;
    let studies = a.studies().await.unwrap();
    assert_eq!(studies.len(), 1);
    assert_eq!(studies[0].study_instance_uid, "1.2.3");
    assert_eq!(studies[0].instances, 1);
    assert_eq!(studies[0].modalities, vec!["CT".to_string()]);
    assert_eq!(studies[0].study_description.as_deref(), Some("synthetic"));
}

/// Every way of making an instance durable stores and indexes it, in
/// memory and spilled, with several writers at once (the group flush
/// answers every writer waiting, including those that arrive while a
/// `syncfs` runs; the journal's appender likewise, and its materialiser
/// has made every file and row by the time the count is read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_flush_mode_stores_concurrent_writers_and_small_and_spilled_instances() {
    for flush in [
        archive::Flush::Group,
        archive::Flush::Each,
        archive::Flush::Journal,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut o = common::options(dir.path()).await;
        o.spill_threshold = 4096;
        o.flush = flush;
        if common::postgres().is_some() && flush == archive::Flush::Journal {
            // Not yet in a cluster: refused at start, saying so.
            let refused = Archive::open(o).await.err().unwrap();
            assert!(
                matches!(refused, ArchiveError::JournalNeedsSqlite),
                "{refused}"
            );
            continue;
        }
        let a = Archive::open(o).await.unwrap();
        let writers = (0..24).map(|n| {
            let a = a.clone();
            tokio::spawn(async move {
                let sop = format!("2.25.90.{n}");
                // Every third spills (over 4 KiB).
                let pixels = if n % 3 == 0 { 20_000 } else { 100 };
                store(&a, &sop, &data_set("2.25.90", "2.25.90.0", &sop, pixels)).await
            })
        });
        let mut files = Vec::new();
        for w in writers.collect::<Vec<_>>() {
            files.push(w.await.unwrap().unwrap().file_path);
        }
        assert_eq!(a.instance_count().await.unwrap(), 24, "{flush:?}");
        for f in &files {
            dicom_object::open_file(dir.path().join(f)).unwrap();
        }
        assert_eq!(
            incoming_files(dir.path()),
            0,
            "{flush:?}: temporary files left"
        );
        a.close().await;
        // And after reopening (the journal's segments replay nothing twice).
        let mut o = common::options(dir.path()).await;
        o.flush = flush;
        let a = Archive::open(o).await.unwrap();
        assert_eq!(a.instance_count().await.unwrap(), 24, "{flush:?}");
        let received = count(
            dir.path(),
            "SELECT COUNT(*) FROM instances WHERE receive_count = 1",
        )
        .await;
        assert_eq!(received, 24, "{flush:?}");
        a.close().await;
    }
}

/// With the journal, Success comes before the file and the row exist; a
/// query that begins after it must still find the instance and read its
/// file (it waits for the materialiser), and a resend of the same UID that
/// spills, sent while the first copy is in the journal, must win.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_journal_an_acknowledged_instance_is_found_at_once_and_a_spilled_resend_wins() {
    if common::postgres().is_some() {
        return; // refused on PostgreSQL: every_flush_mode_... checks that
    }
    let dir = tempfile::tempdir().unwrap();
    let mut o = common::options(dir.path()).await;
    o.spill_threshold = 8192;
    o.flush = archive::Flush::Journal;
    let a = Archive::open(o).await.unwrap();
    let catalog = a.catalog();
    let writers = (0..40).map(|n| {
        let (a, catalog) = (a.clone(), catalog.clone());
        tokio::spawn(async move {
            let sop = format!("2.25.91.{n}");
            let bytes = data_set("2.25.91", "2.25.91.0", &sop, 100);
            store(&a, &sop, &bytes).await.unwrap();
            let q = archive::InstanceQuery {
                sop_instance_uid: Some(sop.clone()),
                limit: 10,
                ..Default::default()
            };
            let found = catalog.instances("2.25.91", &q).await.unwrap();
            assert_eq!(found.len(), 1, "{sop} acknowledged but not found");
            assert!(
                std::fs::read(&found[0].path).unwrap().ends_with(&bytes),
                "{sop}"
            );
        })
    });
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    // The same UID: small (journaled, behind a backlog of others), then
    // large (spilled), at once.
    let backlog: Vec<_> = (0..60)
        .map(|n| {
            let a = a.clone();
            tokio::spawn(async move {
                let sop = format!("2.25.93.{n}");
                store(&a, &sop, &data_set("2.25.93", "2.25.93.0", &sop, 2000)).await
            })
        })
        .collect();
    let small = data_set("2.25.92", "2.25.92.0", "2.25.92.1", 100);
    let large = data_set("2.25.92", "2.25.92.0", "2.25.92.1", 9000);
    store(&a, "2.25.92.1", &small).await.unwrap();
    let stored = store(&a, "2.25.92.1", &large).await.unwrap();
    for b in backlog {
        b.await.unwrap().unwrap();
    }
    a.caught_up().await;
    let written = std::fs::read(dir.path().join(&stored.file_path)).unwrap();
    assert!(
        written.ends_with(&large),
        "the earlier, journaled copy replaced the later one"
    );
    assert_eq!(a.instance_count().await.unwrap(), 101);
    a.close().await;
}

/// With the journal, the materialiser gathers a batch for
/// `journal_linger` after its first record, and a query that waits for
/// what was acknowledged ends the wait: with a linger of an hour,
/// instances acknowledged one after another are not yet placed, a count
/// then finds every one, and closing does not wait out the linger either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_journal_a_batch_gathers_until_a_query_waits_for_it() {
    if common::postgres().is_some() {
        return; // refused on PostgreSQL: every_flush_mode_... checks that
    }
    let hour = std::time::Duration::from_secs(3600);
    // Far below the linger: only a wait that was cut short ends in time.
    let deadline = std::time::Duration::from_secs(120);
    let dir = tempfile::tempdir().unwrap();
    let mut o = common::options(dir.path()).await;
    o.flush = archive::Flush::Journal;
    o.journal_linger = hour;
    let a = Archive::open(o.clone()).await.unwrap();
    let mut files = Vec::new();
    for n in 0..5 {
        let sop = format!("2.25.94.{n}");
        let stored = store(&a, &sop, &data_set("2.25.94", "2.25.94.0", &sop, 100))
            .await
            .unwrap();
        files.push(dir.path().join(stored.file_path));
    }
    assert!(
        files.iter().all(|f| !f.exists()),
        "placed before the batch was complete"
    );
    let count = tokio::time::timeout(deadline, a.instance_count())
        .await
        .expect("the count waited out the linger");
    assert_eq!(count.unwrap(), 5);
    assert!(files.iter().all(|f| f.exists()));
    store(
        &a,
        "2.25.94.5",
        &data_set("2.25.94", "2.25.94.0", "2.25.94.5", 100),
    )
    .await
    .unwrap();
    tokio::time::timeout(deadline, a.close())
        .await
        .expect("closing waited out the linger");
    let a = Archive::open(o).await.unwrap();
    assert_eq!(a.instance_count().await.unwrap(), 6);
    a.close().await;
}

#[tokio::test]
async fn large_instances_spill_to_disk_and_are_checked_the_same() {
    let dir = tempfile::tempdir().unwrap();
    // Spill past 64 KiB: a 1 MB instance streams to its temporary file.
    let a = open(dir.path(), 64 * 1024).await;
    let bytes = data_set("1.9", "1.9.1", "1.9.1.1", 1 << 20);
    let stored = store(&a, "1.9.1.1", &bytes).await.unwrap();
    let written = std::fs::read(dir.path().join(&stored.file_path)).unwrap();
    assert!(
        written.ends_with(&bytes),
        "data set bytes must be kept as received"
    );

    // A spilled data set whose UIDs are wrong is refused and cleaned up.
    let bytes = data_set("1.9", "1.9.1", "1.9.1.2", 1 << 20);
    let err = store(&a, "1.9.1.3", &bytes).await.unwrap_err();
    assert!(matches!(err, ArchiveError::InstanceMismatch), "{err}");
    assert_eq!(incoming_files(dir.path()), 0);
    assert_eq!(a.instance_count().await.unwrap(), 1);
}

#[tokio::test]
async fn bad_data_sets_are_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let good = data_set("1.5", "1.5.1", "1.5.1.1", 100);

    let err = store(&a, "1.5.1.1", &good[..good.len() - 50])
        .await
        .unwrap_err();
    assert!(matches!(err, ArchiveError::Unparsable(_)), "{err}");
    assert!(!err.is_transient());

    let err = store(&a, "1.5.1.9", &good).await.unwrap_err();
    assert!(matches!(err, ArchiveError::InstanceMismatch), "{err}");

    // A Study Instance UID that would escape the storage directory.
    let evil = data_set("../../etc", "1.5.1", "1.5.1.2", 10);
    let err = store(&a, "1.5.1.2", &evil).await.unwrap_err();
    assert!(
        matches!(
            err,
            ArchiveError::BadAttribute {
                attribute: "StudyInstanceUID"
            }
        ),
        "{err}"
    );

    let mut wrong_class = incoming("1.5.1.1");
    wrong_class.sop_class_uid = "1.2.840.10008.5.1.4.1.1.7".into();
    let mut p = a.begin(wrong_class);
    p.write(&good).await.unwrap();
    let err = p.commit().await.unwrap_err();
    assert!(matches!(err, ArchiveError::ClassMismatch), "{err}");

    assert_eq!(a.instance_count().await.unwrap(), 0);
    assert_eq!(incoming_files(dir.path()), 0);
    store(&a, "1.5.1.1", &good).await.unwrap();
}

#[tokio::test]
async fn a_resend_replaces_and_a_move_removes_the_old_file() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let first = store(&a, "2.1.1.1", &data_set("2.1", "2.1.1", "2.1.1.1", 10))
        .await
        .unwrap();
    let again = store(&a, "2.1.1.1", &data_set("2.1", "2.1.1", "2.1.1.1", 20))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(a.instance_count().await.unwrap(), 1);
    match a.backend() {
        // One node: the resend takes the old file's place.
        archive::Backend::Sqlite => assert_eq!(again.file_path, first.file_path),
        // Shared storage: beside it, never over it (a purge on another
        // node deletes what its rows name); the old file goes after.
        archive::Backend::Postgres => {
            assert_ne!(again.file_path, first.file_path);
            assert!(!dir.path().join(&first.file_path).exists());
        }
    }
    assert_eq!(
        std::fs::metadata(dir.path().join(&again.file_path))
            .unwrap()
            .len(),
        again.file_size
    );
    // Resent under another series: the old file goes.
    let moved = store(&a, "2.1.1.1", &data_set("2.1", "2.1.2", "2.1.1.1", 10))
        .await
        .unwrap();
    assert!(moved.duplicate);
    assert!(!dir.path().join(&first.file_path).exists());
    assert!(dir.path().join(&moved.file_path).exists());
    assert_eq!(a.instance_count().await.unwrap(), 1);
}

#[tokio::test]
async fn concurrent_instances_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let a = a.clone();
        tasks.push(tokio::spawn(async move {
            let sop = format!("3.1.1.{i}");
            store(&a, &sop, &data_set("3.1", "3.1.1", &sop, 100)).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(a.instance_count().await.unwrap(), 40);
    assert_eq!(a.studies().await.unwrap()[0].instances, 40);
}

#[tokio::test]
async fn aborted_and_crashed_instances_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1024).await;
    let bytes = data_set("4.1", "4.1.1", "4.1.1.1", 100_000);
    let mut p = a.begin(incoming("4.1.1.1"));
    p.write(&bytes[..50_000]).await.unwrap();
    p.abort().await;
    assert_eq!(incoming_files(dir.path()), 0);

    // A crash mid-instance leaves a temporary file; the next open removes it.
    let mut p = a.begin(incoming("4.1.1.1"));
    p.write(&bytes[..50_000]).await.unwrap();
    std::mem::forget(p);
    assert_eq!(incoming_files(dir.path()), 1);
    a.close().await;
    let a = open(dir.path(), 1024).await;
    assert_eq!(incoming_files(dir.path()), 0);
    assert_eq!(a.instance_count().await.unwrap(), 0);
}

/// A job's life: assembled, claimed, analysed with its reports queued in
/// the same transaction, then settled by the outbox: done when delivered,
/// failed when a destination gives up, sending again on a retry.
#[tokio::test]
async fn a_job_follows_its_reports_through_the_outbox() {
    use archive::{NewObject, RetryPolicy};
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let state = |a: &Archive| {
        let a = a.clone();
        async move { a.studies().await.unwrap()[0].status.clone().unwrap() }
    };
    store(
        &a,
        "2.25.13",
        &data_set("2.25.11", "2.25.12", "2.25.13", 10),
    )
    .await
    .unwrap();
    let jobs = a.jobs();
    assert_eq!(
        jobs.assemble(
            &archive::QuietPeriods::uniform(std::time::Duration::ZERO),
            None
        )
        .await
        .unwrap()
        .made
        .len(),
        1
    );
    let job = jobs.claim().await.unwrap().unwrap();
    assert_eq!(state(&a).await, "analysing");
    jobs.reporting(&job).await.unwrap();
    assert_eq!(state(&a).await, "reporting");
    let kept = a
        .outbox()
        .keep(&NewObject {
            sop_instance_uid: "2.25.14".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.88.34".into(),
            study_instance_uid: "2.25.11".into(),
            file: vec![1, 2, 3],
        })
        .await
        .unwrap();
    let finding = FindingRow {
        series_instance_uid: "2.25.12".into(),
        sop_instance_uid: "2.25.13".into(),
        model: "m".into(),
        model_version: "1".into(),
        label: "Pneumothorax".into(),
        probability: 0.9,
        threshold: 0.5,
        flagged: true,
        heatmap_uid: None,
        shadow: false,
    };
    let dests = vec!["a".to_string(), "b".to_string()];
    jobs.finish(
        &job,
        &[finding],
        &["2.25.14".into()],
        Some("urgent"),
        &[(kept, dests)],
        &[],
    )
    .await
    .unwrap();
    assert_eq!(state(&a).await, "sending");
    assert_eq!(jobs.settle().await.unwrap(), 0, "two rows still pending");
    let outbox = a.outbox();
    let rows = outbox.claim_due(10).await.unwrap();
    assert_eq!(rows.len(), 2);
    outbox.delivered(rows[0].id, 0, None).await.unwrap();
    let policy = RetryPolicy {
        max_attempts: 1,
        first_delay: std::time::Duration::from_secs(1),
        max_delay: std::time::Duration::from_secs(1),
    };
    outbox
        .failed(rows[1].id, Some(0xA700), "refused", true, &policy)
        .await
        .unwrap();
    assert_eq!(jobs.settle().await.unwrap(), 1);
    assert_eq!(state(&a).await, "failed");
    assert!(outbox.retry(rows[1].id).await.unwrap());
    assert_eq!(state(&a).await, "sending");
    let again = outbox.claim_due(10).await.unwrap();
    outbox.delivered(again[0].id, 0, None).await.unwrap();
    assert_eq!(jobs.settle().await.unwrap(), 1);
    assert_eq!(state(&a).await, "done");
    // The flagged finding stays visible through all of it.
    assert_eq!(a.studies().await.unwrap()[0].findings.len(), 1);
    a.close().await;
}

/// Each caller's quiet period applies to the studies it sent last.
#[tokio::test]
async fn a_slow_senders_studies_wait_for_its_own_quiet_period() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    for (ae, study) in [("ROUTER", "2.25.21"), ("SLOWMOD", "2.25.31")] {
        let sop = format!("{study}.1.1");
        let mut p = a.begin(Incoming {
            calling_ae_title: ae.into(),
            ..incoming(&sop)
        });
        p.write(&data_set(study, &format!("{study}.1"), &sop, 10))
            .await
            .unwrap();
        p.commit().await.unwrap();
    }
    let mut quiet = archive::QuietPeriods::uniform(std::time::Duration::ZERO);
    quiet
        .by_calling_ae
        .insert("SLOWMOD".into(), std::time::Duration::from_secs(3600));
    let jobs = a.jobs();
    let first = jobs.assemble(&quiet, None).await.unwrap();
    assert_eq!(first.made.len(), 1);
    // The slow sender's study is due in just under an hour.
    let due = first.next_quiet.expect("a study is waiting").as_secs_f64();
    assert!((3000.0..=3600.0).contains(&due), "{due}");
    let job = jobs.claim().await.unwrap().unwrap();
    assert_eq!(job.study_instance_uid, "2.25.21");
    assert!(jobs.claim().await.unwrap().is_none());
    // Once its period is over, the slow sender's study is assembled too.
    quiet.by_calling_ae.clear();
    let last = jobs.assemble(&quiet, None).await.unwrap();
    assert_eq!(last.made.len(), 1);
    assert_eq!(last.next_quiet, None, "nothing waits any more");
    a.close().await;
}

/// A study's jobs run one after the other, on every node: while another
/// node is claiming a study's oldest ready job (its row locked, its claim
/// not committed, so the study does not look busy yet), this node takes
/// another study's job, never the same study's next one.
#[tokio::test]
async fn a_studys_next_job_waits_for_its_oldest_even_mid_claim() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let jobs = a.jobs();
    let now = archive::QuietPeriods::uniform(std::time::Duration::ZERO);
    // Study 2.25.51 gets two jobs (a second instance after the first was
    // assembled), then study 2.25.61 one.
    for (study, sop) in [
        ("2.25.51", "2.25.51.1.1"),
        ("2.25.51", "2.25.51.1.2"),
        ("2.25.61", "2.25.61.1.1"),
    ] {
        store(&a, sop, &data_set(study, &format!("{study}.1"), sop, 10))
            .await
            .unwrap();
        assert_eq!(jobs.assemble(&now, None).await.unwrap().made.len(), 1);
    }
    let raw = common::raw(dir.path()).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id")
        .fetch_all(&raw)
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    match a.backend() {
        archive::Backend::Postgres => {
            // Another node in the middle of claiming the first job.
            let mut other = raw.begin().await.unwrap();
            sqlx::query("SELECT id FROM jobs WHERE id = $1 FOR UPDATE")
                .bind(ids[0])
                .fetch_all(&mut *other)
                .await
                .unwrap();
            let job = jobs.claim().await.unwrap().unwrap();
            assert_eq!(
                job.study_instance_uid, "2.25.61",
                "not 2.25.51's second job"
            );
            assert!(jobs.claim().await.unwrap().is_none());
            // It lets go: the oldest is claimed, the next still waits.
            other.rollback().await.unwrap();
            assert_eq!(jobs.claim().await.unwrap().unwrap().id, ids[0]);
        }
        // One writer: the oldest first, then the other study's.
        archive::Backend::Sqlite => {
            assert_eq!(jobs.claim().await.unwrap().unwrap().id, ids[0]);
            let job = jobs.claim().await.unwrap().unwrap();
            assert_eq!(job.study_instance_uid, "2.25.61");
        }
    }
    assert!(jobs.claim().await.unwrap().is_none());
    raw.close().await;
    a.close().await;
}

/// A study that was waiting when the daemon stopped gets a whole quiet
/// period from the restart: the time the daemon was down is not quiet
/// time (its sender may resend what the stop cut off).
#[tokio::test]
async fn quiet_time_counts_from_the_restart_at_the_earliest() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    store(
        &a,
        "2.25.43",
        &data_set("2.25.41", "2.25.42", "2.25.43", 10),
    )
    .await
    .unwrap();
    // Just received: due in a quiet period, and assembly says so.
    let quiet = archive::QuietPeriods::uniform(std::time::Duration::from_secs(60));
    let fresh = a.jobs().assemble(&quiet, None).await.unwrap();
    assert!(fresh.made.is_empty());
    let due = fresh.next_quiet.expect("a study is waiting").as_secs_f64();
    assert!((50.0..=60.0).contains(&due), "{due}");
    // The instance arrived an hour ago; the daemon was down since.
    let hour_ago = ago(3600);
    execute(
        dir.path(),
        &format!("UPDATE studies SET last_received_at = {hour_ago}"),
    )
    .await;
    execute(
        dir.path(),
        &format!("UPDATE instances SET received_at = {hour_ago}"),
    )
    .await;
    let jobs = a.jobs();
    let restarted = jobs.now().await.unwrap();
    assert!(
        jobs.assemble(&quiet, Some(&restarted))
            .await
            .unwrap()
            .made
            .is_empty(),
        "a study must not be assembled less than a quiet period after the restart"
    );
    // Counted from its last instance alone (by a node that has not
    // restarted since), it would have been.
    execute(
        dir.path(),
        &format!("UPDATE nodes SET started_at = {}", ago(7200)),
    )
    .await;
    assert_eq!(jobs.assemble(&quiet, None).await.unwrap().made.len(), 1);
    a.close().await;
}

/// In a cluster, a study whose latest instance came through a node that
/// died (or restarted) while the study waited gets a whole quiet period
/// from when the others learnt of it (the node's lease lapsed, or it
/// started again): its sender may resend the rest to another node, and
/// the time that took proves nothing about the study being complete.
/// While that node lives, the others leave the study to it until its
/// heartbeat shows it lived through the quiet period.
#[tokio::test]
async fn quiet_time_counts_from_the_receiving_nodes_death_or_restart() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    store(
        &a,
        "2.25.46",
        &data_set("2.25.44", "2.25.45", "2.25.46", 10),
    )
    .await
    .unwrap();
    let path = dir.path();
    let set = |q: String| async move { execute(path, &q).await };
    // Received 100 s ago by node-b, which beat last 40 s ago: with the
    // default 30 s lease it has been dead for 10 s.
    set(format!(
        "UPDATE studies SET last_received_at = {}, last_node = 'node-b'",
        ago(100)
    ))
    .await;
    set(format!(
        "INSERT INTO nodes (name, version, started_at, seen_at) VALUES ('node-b', '0', {}, {})",
        ago(7200),
        ago(40)
    ))
    .await;
    let jobs = a.jobs();
    let quiet = archive::QuietPeriods::uniform(std::time::Duration::from_secs(60));
    let assembled = || async { jobs.assemble(&quiet, None).await.unwrap().made.len() };
    assert_eq!(
        assembled().await,
        0,
        "assembled 10 s after its node's death"
    );
    // node-b came back 5 s ago (after the study's last instance): the
    // study still waits.
    set(format!(
        "UPDATE nodes SET started_at = {}, seen_at = {} WHERE name = 'node-b'",
        ago(5),
        ago(0)
    ))
    .await;
    assert_eq!(
        assembled().await,
        0,
        "assembled 5 s after its node's restart"
    );
    // Alive, never restarted, but last seen 20 s ago: received 70 s ago,
    // the study has been quiet for longer than its 60 s, yet node-b is
    // not known to have lived through them (its next beat will say).
    set(format!("UPDATE studies SET last_received_at = {}", ago(70))).await;
    set(format!(
        "UPDATE nodes SET started_at = {}, seen_at = {} WHERE name = 'node-b'",
        ago(7200),
        ago(20)
    ))
    .await;
    assert_eq!(
        assembled().await,
        0,
        "assembled before its node was seen alive through the quiet period"
    );
    // Seen since: counted from the instance.
    set(format!(
        "UPDATE nodes SET seen_at = {} WHERE name = 'node-b'",
        ago(0)
    ))
    .await;
    assert_eq!(assembled().await, 1);
    a.close().await;
}

/// A page far past the end is empty, not an overflow: (page - 1) *
/// per_page exceeds u32 for large pages (the API contract test found it).
#[tokio::test]
async fn a_worklist_page_past_the_end_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    store(
        &a,
        "2.25.53",
        &data_set("2.25.51", "2.25.52", "2.25.53", 10),
    )
    .await
    .unwrap();
    let mut f = archive::WorklistFilter {
        page: 1,
        per_page: 50,
        ..Default::default()
    };
    let first = a.worklist().page(&f).await.unwrap();
    assert_eq!((first.total, first.studies.len()), (1, 1));
    f.page = u32::MAX;
    let far = a.worklist().page(&f).await.unwrap();
    assert_eq!((far.total, far.studies.len()), (1, 0));
    a.close().await;
}

/// Activating a version disables the one that was active, in one change
/// recorded with who made it; setting a state twice changes nothing.
#[tokio::test]
async fn activating_a_version_disables_the_active_one() {
    use archive::ModelState::{Active, Disabled, Shadow};
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let states = a.models();
    // As the manifests say: 1 active, 2 in shadow.
    let versions = [("1".to_string(), Active), ("2".to_string(), Shadow)];
    let changes = states
        .set("cxr", "2", Active, &versions, "alice")
        .await
        .unwrap();
    let summary: Vec<(&str, ModelStatePair)> = changes
        .iter()
        .map(|c| (c.version.as_str(), (c.previous, c.state)))
        .collect();
    assert_eq!(
        summary,
        [("1", (Active, Disabled)), ("2", (Shadow, Active))]
    );
    let rows = states.list().await.unwrap();
    let now = |v: &str| archive::effective_state(&rows, "cxr", v, Shadow);
    assert_eq!((now("1"), now("2")), (Disabled, Active));
    assert!(rows.iter().all(|r| r.changed_by == "alice"));
    assert!(states
        .set("cxr", "2", Active, &versions, "alice")
        .await
        .unwrap()
        .is_empty());
    // Roll back.
    let changes = states
        .set("cxr", "1", Active, &versions, "bob")
        .await
        .unwrap();
    assert_eq!(changes.len(), 2);
    let rows = states.list().await.unwrap();
    let now = |v: &str| archive::effective_state(&rows, "cxr", v, Shadow);
    assert_eq!((now("1"), now("2")), (Active, Disabled));
    a.close().await;
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM model_state_changes WHERE model = 'cxr'"
        )
        .await,
        4
    );
}

type ModelStatePair = (archive::ModelState, archive::ModelState);

/// Store instance `sop` of study 2.25.41 (series 2.25.42) and claim the
/// job it makes.
async fn job_for(a: &Archive, sop: &str) -> archive::Job {
    job_of(a, "2.25.41", "2.25.42", sop).await
}

/// Store instance `sop` of `study` and `series` and claim the job it makes.
async fn job_of(a: &Archive, study: &str, series: &str, sop: &str) -> archive::Job {
    store(a, sop, &data_set(study, series, sop, 10))
        .await
        .unwrap();
    let jobs = a.jobs();
    jobs.assemble(
        &archive::QuietPeriods::uniform(std::time::Duration::ZERO),
        None,
    )
    .await
    .unwrap();
    jobs.claim().await.unwrap().unwrap()
}

/// A shadow model's findings are kept and compared, but never flag the
/// study or reach the worklist.
#[tokio::test]
async fn shadow_findings_never_flag_a_study_and_are_compared() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let jobs = a.jobs();
    let finding = |version: &str, label: &str, flagged: bool, shadow: bool| FindingRow {
        series_instance_uid: "2.25.42".into(),
        sop_instance_uid: "2.25.43".into(),
        model: "cxr".into(),
        model_version: version.into(),
        label: label.into(),
        probability: if flagged { 0.9 } else { 0.1 },
        threshold: 0.5,
        flagged,
        heatmap_uid: None,
        shadow,
    };
    let job = job_for(&a, "2.25.43").await;
    // Only a shadow model applied, and it would flag.
    jobs.finish(
        &job,
        &[finding("2", "Effusion", true, true)],
        &[],
        None,
        &[],
        &[],
    )
    .await
    .unwrap();
    let study = &a.studies().await.unwrap()[0];
    assert_eq!(study.status.as_deref(), Some("not_applicable"));
    assert!(study.findings.is_empty(), "{study:?}");
    assert_ne!(study.flagged, Some(true));
    // A second instance: the active version reports, the shadow one
    // disagrees on Effusion and agrees on Nodule.
    let job = job_for(&a, "2.25.44").await;
    let active = [
        finding("1", "Effusion", false, false),
        finding("1", "Nodule", true, false),
    ];
    jobs.finish(
        &job,
        &active,
        &["2.25.45".into()],
        Some("flagged"),
        &[],
        &[],
    )
    .await
    .unwrap();
    let shadow = [
        finding("2", "Effusion", true, true),
        finding("2", "Nodule", true, true),
    ];
    jobs.add_findings(&job, &shadow, &[]).await.unwrap();
    // Added twice (a re-run): replaced, not doubled.
    jobs.add_findings(&job, &shadow, &[]).await.unwrap();
    let detail = a.worklist().study("2.25.41").await.unwrap().unwrap();
    let shown: Vec<(&str, &str)> = detail
        .findings
        .iter()
        .map(|f| (f.model_version.as_str(), f.label.as_str()))
        .collect();
    assert_eq!(shown, [("1", "Nodule"), ("1", "Effusion")]);
    let study = &a.studies().await.unwrap()[0];
    assert_eq!(study.findings, ["Nodule 0.900"]);
    // A radiologist says the active version missed the effusion.
    a.worklist()
        .feedback(
            "2.25.41",
            "dr",
            &archive::Feedback {
                label: "Effusion".into(),
                agree: false,
                comment: None,
            },
        )
        .await
        .unwrap();
    let c = a.models().compare("cxr").await.unwrap();
    let row = |version: &str, label: &str| {
        c.iter()
            .find(|r| r.version == version && r.label == label)
            .unwrap_or_else(|| panic!("{version} {label} in {c:?}"))
            .clone()
    };
    let e2 = row("2", "Effusion");
    assert!(e2.shadow);
    assert_eq!((e2.jobs, e2.flagged), (2, 2));
    assert_eq!((e2.compared, e2.agreed), (1, 0));
    assert_eq!((e2.present, e2.present_flagged, e2.absent), (1, 1, 0));
    let n2 = row("2", "Nodule");
    assert_eq!((n2.jobs, n2.compared, n2.agreed), (1, 1, 1));
    assert_eq!(n2.present + n2.absent, 0, "no verdict on Nodule");
    let e1 = row("1", "Effusion");
    assert!(!e1.shadow);
    assert_eq!(
        (e1.jobs, e1.flagged, e1.present, e1.present_flagged),
        (1, 0, 1, 0)
    );
    a.close().await;
    assert_eq!(
        count(dir.path(), "SELECT COUNT(*) FROM findings WHERE shadow = 1").await,
        3
    );
}

/// The images a model could not read are recorded with the job's outcome
/// (finished, shadow findings added, or failed) and shown with the study;
/// a re-run of the model replaces them.
#[tokio::test]
async fn skipped_images_are_named_with_the_study() {
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    let jobs = a.jobs();
    let job = job_for(&a, "2.25.43").await;
    let skips = |model: &str, version: &str, images: &[(&str, &str)]| archive::ModelSkips {
        model: model.into(),
        version: version.into(),
        images: images
            .iter()
            .map(|(sop, error)| archive::SkippedImage {
                sop_instance_uid: (*sop).into(),
                error: (*error).into(),
            })
            .collect(),
    };
    let cxr = |images: &[(&str, &str)]| skips("cxr", "1", images);
    let shown = |detail: &archive::StudyDetail| -> Vec<(String, String, String)> {
        detail
            .skipped_images
            .iter()
            .map(|s| {
                assert_eq!(s.job_id, job.id);
                (s.model.clone(), s.sop_instance_uid.clone(), s.error.clone())
            })
            .collect()
    };
    let row = |m: &str, sop: &str, e: &str| (m.to_string(), sop.to_string(), e.to_string());
    // The first attempt fails after the model skipped two images.
    jobs.fail(
        &job,
        "no image of the study could be analysed",
        &[cxr(&[
            ("2.25.43", "pixel data too short"),
            ("2.25.44", "JPEG-LS"),
        ])],
    )
    .await
    .unwrap();
    let detail = a.worklist().study("2.25.41").await.unwrap().unwrap();
    assert_eq!(
        shown(&detail),
        [
            row("cxr", "2.25.43", "pixel data too short"),
            row("cxr", "2.25.44", "JPEG-LS")
        ]
    );
    // The re-run could read 2.25.44; a shadow model's rows are its own.
    // (A failed job is finished only by a worker that holds it again.)
    count(
        dir.path(),
        &format!(
            "UPDATE jobs SET state = 'analysing' WHERE id = {} RETURNING id",
            job.id
        ),
    )
    .await;
    jobs.finish(
        &job,
        &[],
        &[],
        Some("routine"),
        &[],
        &[cxr(&[("2.25.43", "pixel data too short")])],
    )
    .await
    .unwrap();
    jobs.add_findings(&job, &[], &[skips("ich", "2", &[("2.25.43", "not CT")])])
        .await
        .unwrap();
    let detail = a.worklist().study("2.25.41").await.unwrap().unwrap();
    assert_eq!(
        shown(&detail),
        [
            row("cxr", "2.25.43", "pixel data too short"),
            row("ich", "2.25.43", "not CT")
        ]
    );
    // Nothing skipped: nothing kept.
    count(
        dir.path(),
        &format!(
            "UPDATE jobs SET state = 'analysing' WHERE id = {} RETURNING id",
            job.id
        ),
    )
    .await;
    jobs.finish(&job, &[], &[], Some("routine"), &[], &[cxr(&[])])
        .await
        .unwrap();
    jobs.add_findings(&job, &[], &[skips("ich", "2", &[])])
        .await
        .unwrap();
    let detail = a.worklist().study("2.25.41").await.unwrap().unwrap();
    assert!(detail.skipped_images.is_empty(), "{detail:?}");
    a.close().await;
}

/// The files in the incoming folder (on PostgreSQL, this node's folder
/// inside it).
fn incoming_files(dir: &std::path::Path) -> usize {
    fn count(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                if e.file_type().unwrap().is_dir() {
                    count(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    count(&dir.join(".incoming"))
}

/// Run `sql` on the archive's database directly.
async fn execute(dir: &std::path::Path, sql: &str) {
    let pool = common::raw(dir).await;
    sqlx::query(sql).execute(&pool).await.unwrap();
    pool.close().await;
}

/// SQL: the database's time `secs` seconds ago.
fn ago(secs: u32) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-{secs} seconds')")
}

/// One number from the archive's database, read directly.
async fn count(dir: &std::path::Path, sql: &str) -> i64 {
    let pool = common::raw(dir).await;
    let n = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
    pool.close().await;
    n
}

/// Store one instance of study `study` (its series `study`.1, instance
/// `study`.1.1) and, unless `analyse` is false, take it through a job to
/// `outcome`: "delivered" (a report delivered), "pending" (a report not
/// yet delivered), "done" (no destination), "failed".
async fn study_in_state(a: &Archive, study: &str, outcome: &str) {
    use archive::NewObject;
    let (series, sop) = (format!("{study}.1"), format!("{study}.1.1"));
    store(a, &sop, &data_set(study, &series, &sop, 4096))
        .await
        .unwrap();
    if outcome == "unanalysed" {
        return;
    }
    let jobs = a.jobs();
    jobs.assemble(
        &archive::QuietPeriods::uniform(std::time::Duration::ZERO),
        None,
    )
    .await
    .unwrap();
    let job = jobs.claim().await.unwrap().unwrap();
    assert_eq!(job.study_instance_uid, study);
    if outcome == "failed" {
        jobs.fail(&job, "nothing decodable", &[]).await.unwrap();
        return;
    }
    let report = format!("{study}.9");
    let kept = a
        .outbox()
        .keep(&NewObject {
            sop_instance_uid: report.clone(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.88.34".into(),
            study_instance_uid: study.into(),
            file: vec![1, 2, 3],
        })
        .await
        .unwrap();
    let queued = match outcome {
        "done" => vec![],
        _ => vec![(kept, vec!["pacs".to_string()])],
    };
    jobs.finish(&job, &[], &[report], Some("routine"), &queued, &[])
        .await
        .unwrap();
    if outcome == "delivered" {
        let outbox = a.outbox();
        // (Another study's row claimed here stays 'sending': undelivered.)
        for row in outbox.claim_due(10).await.unwrap() {
            if row.study_instance_uid == study {
                outbox.delivered(row.id, 0, None).await.unwrap();
            }
        }
        jobs.settle().await.unwrap();
    }
}

/// Retention deletes the instances of settled studies only: analysed, every
/// report delivered, not held; by age, by watermark, and forgets old
/// results; a dry run changes nothing.
#[tokio::test]
async fn retention_deletes_only_settled_unheld_studies() {
    use archive::{PurgeReason, RetentionPolicy};
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    for (study, outcome) in [
        ("2.25.601", "delivered"),
        ("2.25.602", "pending"),
        ("2.25.603", "done"),
        ("2.25.604", "failed"),
        ("2.25.605", "delivered"),
        ("2.25.606", "unanalysed"),
    ] {
        study_in_state(&a, study, outcome).await;
    }
    let retention = a.retention();
    assert!(retention
        .hold("2.25.605", "test", "complaint")
        .await
        .unwrap());
    assert!(!retention.hold("2.25.999", "test", "").await.unwrap());
    let file = |study: &str| {
        dir.path()
            .join(format!("{study}/{study}.1/{study}.1.1.dcm"))
    };
    let by_age = RetentionPolicy {
        delete_after: Some(Duration::ZERO),
        high_watermark: 1.0,
        low_watermark: 1.0,
        keep_results: None,
    };
    let uids = |run: &archive::RetentionRun| {
        run.purged
            .iter()
            .map(|p| (p.study.study_instance_uid.clone(), p.reason))
            .collect::<Vec<_>>()
    };
    let expected = vec![
        ("2.25.601".to_string(), PurgeReason::Age),
        ("2.25.603".to_string(), PurgeReason::Age),
    ];
    let dry = retention.run(&by_age, true).await.unwrap();
    assert_eq!(uids(&dry), expected);
    assert!(file("2.25.601").is_file(), "a dry run deletes nothing");
    // Not old enough yet: nothing.
    let week = RetentionPolicy {
        delete_after: Some(Duration::from_secs(7 * 86_400)),
        ..by_age.clone()
    };
    assert!(retention.run(&week, false).await.unwrap().purged.is_empty());
    let run = retention.run(&by_age, false).await.unwrap();
    assert_eq!(uids(&run), expected);
    assert!(run
        .purged
        .iter()
        .all(|p| p.study.instances == 1 && p.study.bytes > 4096));
    for gone in ["2.25.601", "2.25.603"] {
        assert!(!file(gone).exists(), "{gone}");
        assert!(
            !dir.path().join(gone).exists(),
            "{gone}: empty folders go too"
        );
    }
    for kept in ["2.25.602", "2.25.604", "2.25.605", "2.25.606"] {
        assert!(file(kept).is_file(), "{kept} must be kept");
    }
    // Delivered report copies go with the instances; undelivered stay.
    let report = |study: &str| dir.path().join(format!("outbox/{study}.9.dcm"));
    assert!(!report("2.25.603").exists());
    assert!(report("2.25.602").is_file());
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM purges WHERE reason = 'age'"
        )
        .await,
        2
    );
    let studies = a.studies().await.unwrap();
    let s601 = studies
        .iter()
        .find(|s| s.study_instance_uid == "2.25.601")
        .unwrap();
    assert_eq!(s601.instances, 0);
    assert!(s601.purged_at.is_some());
    assert!(studies
        .iter()
        .any(|s| s.study_instance_uid == "2.25.605" && s.held_at.is_some()));

    // Released, the held study goes by watermark (every filesystem is above
    // a 0 % watermark).
    assert!(retention.release("2.25.605").await.unwrap());
    let full = RetentionPolicy {
        delete_after: None,
        high_watermark: 0.0,
        low_watermark: 0.0,
        keep_results: None,
    };
    let run = retention.run(&full, false).await.unwrap();
    assert_eq!(
        uids(&run),
        vec![("2.25.605".to_string(), PurgeReason::Watermark)]
    );
    assert!(!file("2.25.605").exists());

    // A late instance of a purged study is stored and makes it wait again.
    store(
        &a,
        "2.25.601.1.2",
        &data_set("2.25.601", "2.25.601.1", "2.25.601.1.2", 10),
    )
    .await
    .unwrap();
    assert!(retention.run(&full, false).await.unwrap().purged.is_empty());

    // Results of purged studies are forgotten: findings, jobs, rows.
    let forget = RetentionPolicy {
        keep_results: Some(Duration::ZERO),
        ..full.clone()
    };
    let run = retention.run(&forget, false).await.unwrap();
    assert_eq!(run.forgotten, vec!["2.25.603", "2.25.605"]);
    let left: Vec<String> = a
        .studies()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.study_instance_uid)
        .collect();
    assert!(!left.contains(&"2.25.603".to_string()), "{left:?}");
    assert!(
        left.contains(&"2.25.601".to_string()),
        "waiting again: kept"
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT COUNT(*) FROM jobs WHERE study_instance_uid = '2.25.603'"
        )
        .await,
        0
    );
    a.close().await;
}

/// Monitoring counts analyses and flags per day, estimates PPV and misses
/// from verdicts, and measures drift against a reference histogram or,
/// without one, the version's first weeks.
#[tokio::test]
async fn monitoring_counts_flags_verdicts_and_drift() {
    use std::collections::BTreeMap;
    let dir = tempfile::tempdir().unwrap();
    let a = open(dir.path(), 1 << 20).await;
    // Four analyses of label "Effusion" by model m 1: scores 0.9, 0.8
    // (flagged), 0.3, 0.2 (not flagged).
    for (n, p) in [0.9, 0.8, 0.3, 0.2].into_iter().enumerate() {
        let study = format!("2.25.70{n}");
        let (series, sop) = (format!("{study}.1"), format!("{study}.1.1"));
        let job = job_of(&a, &study, &series, &sop).await;
        let jobs = a.jobs();
        let finding = FindingRow {
            series_instance_uid: series.clone(),
            sop_instance_uid: sop.clone(),
            model: "m".into(),
            model_version: "1".into(),
            label: "Effusion".into(),
            probability: p,
            threshold: 0.5,
            flagged: p > 0.5,
            heatmap_uid: None,
            shadow: false,
        };
        // (A report, which verdicts are given on.)
        jobs.finish(
            &job,
            &[finding],
            &[format!("{study}.9")],
            Some("routine"),
            &[],
            &[],
        )
        .await
        .unwrap();
    }
    // Verdicts: the first flag confirmed, the second refuted; a finding
    // seen on the third, which was not flagged.
    let w = a.worklist();
    for (study, agree) in [("2.25.700", true), ("2.25.701", false), ("2.25.702", false)] {
        let f = archive::Feedback {
            label: "Effusion".into(),
            agree,
            comment: None,
        };
        assert!(w.feedback(study, "dr", &f).await.unwrap());
    }
    let m = a.monitoring();
    let report = m.report(30, &BTreeMap::new(), 0.25).await.unwrap();
    assert_eq!(report.len(), 1, "{report:?}");
    let e = &report[0];
    assert_eq!((e.studies_7d, e.flagged_7d), (4, 2));
    assert_eq!(e.days.len(), 1);
    assert_eq!((e.days[0].studies, e.days[0].flagged), (4, 2));
    assert_eq!(
        (e.flagged_reviewed, e.flagged_confirmed, e.ppv),
        (2, 1, Some(0.5))
    );
    assert_eq!(
        (e.clear_reviewed, e.missed, e.missed_rate),
        (1, 1, Some(1.0))
    );
    assert_eq!(e.scores_7d, [0, 0, 1, 1, 0, 0, 0, 0, 1, 1]);
    // No reference: this week is the baseline, so no drift.
    assert_eq!(e.reference_source, Some(archive::ReferenceSource::Baseline));
    assert!(e.psi.unwrap().abs() < 1e-9 && !e.drift_alert);
    // A validation set that scored everything low: this week drifted.
    let mut low = vec![0.0; 10];
    low[0] = 1.0;
    let refs = BTreeMap::from([(
        ("m".to_string(), "1".to_string(), "Effusion".to_string()),
        low,
    )]);
    let e = &m.report(30, &refs, 0.25).await.unwrap()[0];
    assert_eq!(
        e.reference_source,
        Some(archive::ReferenceSource::Validation)
    );
    assert!(e.psi.unwrap() > 0.25 && e.drift_alert, "{e:?}");
    a.close().await;
}
