//! The outbox on a real SQLite file: queue, claim, fail, retry, deliver,
//! recover after a crash, and never queue twice.

use std::time::Duration;

mod common;

use archive::{Archive, ArchiveReader, DeliveryState, NewObject, RetryPolicy};

fn object(sop: &str) -> NewObject {
    NewObject {
        sop_instance_uid: sop.into(),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.88.34".into(),
        study_instance_uid: "1.2.3".into(),
        file: format!("DICM {sop}").into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn results_move_through_the_outbox_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open(common::options(dir.path()).await)
        .await
        .unwrap();
    let outbox = archive.outbox();
    let dests = vec!["pacs".to_string(), "backup".to_string()];
    outbox.add(&object("2.25.1"), &dests).await.unwrap();
    // Queuing the same object again changes nothing.
    outbox.add(&object("2.25.1"), &dests).await.unwrap();
    assert_eq!(outbox.list().await.unwrap().len(), 2);
    assert_eq!(
        std::fs::read(dir.path().join("outbox/2.25.1.dcm")).unwrap(),
        b"DICM 2.25.1"
    );

    let claimed = outbox.claim_due(10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|e| e.state == DeliveryState::Sending));
    assert!(
        outbox.claim_due(10).await.unwrap().is_empty(),
        "claimed rows are not claimed twice"
    );

    let policy = RetryPolicy {
        max_attempts: 3,
        first_delay: Duration::from_secs(60),
        max_delay: Duration::from_secs(600),
    };
    let (a, b) = (claimed[0].id, claimed[1].id);
    outbox.delivered(a, 0, None).await.unwrap();
    assert_eq!(
        outbox
            .failed(b, None, "connection refused", false, &policy)
            .await
            .unwrap(),
        Some(DeliveryState::Pending)
    );
    // Not due for a minute.
    assert!(outbox.claim_due(10).await.unwrap().is_empty());
    assert_eq!(outbox.backlog().await.unwrap(), (1, 0));

    // An admin retry makes it due now; a permanent rejection kills it.
    assert!(outbox.retry(b).await.unwrap());
    assert!(
        !outbox.retry(a).await.unwrap(),
        "delivered rows are not retried"
    );
    let again = outbox.claim_due(10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        outbox
            .failed(b, Some(0xA900), "rejected", true, &policy)
            .await
            .unwrap(),
        Some(DeliveryState::Dead)
    );
    assert_eq!(outbox.backlog().await.unwrap(), (0, 1));

    // A crash while sending: the row is back to pending at start-up.
    assert!(outbox.retry(b).await.unwrap());
    assert_eq!(outbox.claim_due(10).await.unwrap().len(), 1);
    archive.close().await;
    drop(outbox);
    let archive = Archive::open(common::options(dir.path()).await)
        .await
        .unwrap();
    let outbox = archive.outbox();
    assert_eq!(outbox.recover().await.unwrap(), 1);
    let rows = outbox.list().await.unwrap();
    let row = rows.iter().find(|e| e.id == b).unwrap();
    assert_eq!(row.state, DeliveryState::Pending);
    let delivered = rows.iter().find(|e| e.id == a).unwrap();
    assert_eq!(delivered.state, DeliveryState::Delivered);
    assert!(delivered.delivered_at.is_some());

    // The admin handle sees the same rows while the daemon's is open.
    let admin = ArchiveReader::outbox(&common::options(dir.path()).await)
        .await
        .unwrap();
    assert_eq!(admin.list().await.unwrap().len(), 2);
    archive.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_retry_limit_kills_and_backoff_grows_with_jitter() {
    let p = RetryPolicy {
        max_attempts: 2,
        first_delay: Duration::from_secs(10),
        max_delay: Duration::from_secs(100),
    };
    let d1 = p.delay(1, 1).as_secs_f64();
    let d3 = p.delay(1, 3).as_secs_f64();
    let d9 = p.delay(1, 9).as_secs_f64();
    assert!((5.0..10.0).contains(&d1), "{d1}");
    assert!((20.0..40.0).contains(&d3), "{d3}");
    assert!((50.0..100.0).contains(&d9), "{d9}");
    assert_ne!(p.delay(1, 3), p.delay(2, 3), "jitter differs between rows");

    let dir = tempfile::tempdir().unwrap();
    let archive = Archive::open(common::options(dir.path()).await)
        .await
        .unwrap();
    let outbox = archive.outbox();
    outbox
        .add(&object("2.25.9"), &["pacs".to_string()])
        .await
        .unwrap();
    // Due again at once, so the second attempt can be claimed.
    let p = RetryPolicy {
        first_delay: Duration::ZERO,
        ..p
    };
    let id = outbox.claim_due(1).await.unwrap()[0].id;
    assert_eq!(
        outbox.failed(id, None, "timeout", false, &p).await.unwrap(),
        Some(DeliveryState::Pending)
    );
    assert_eq!(outbox.claim_due(1).await.unwrap()[0].id, id);
    assert_eq!(
        outbox
            .failed(id, Some(0xA700), "out of resources", false, &p)
            .await
            .unwrap(),
        Some(DeliveryState::Dead)
    );
    let row = outbox
        .list()
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.id == id)
        .unwrap();
    assert_eq!((row.attempts, row.last_status), (2, Some(0xA700)));
    assert_eq!(row.last_error.as_deref(), Some("out of resources"));
    archive.close().await;
}
