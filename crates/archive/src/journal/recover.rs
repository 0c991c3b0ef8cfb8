//! Recovery at start: every record after this node's checkpoint is
//! materialised before anything is received, each segment read up to its
//! end or its first torn record (a batch nobody was told Success for).
//! Replay is idempotent: the same bytes to the same paths, the rows
//! upserted, the checkpoint advanced in the same transaction.

use std::sync::Arc;

use super::appender::{segment_path, Position};
use super::materialise::{materialise, remove_segments_before, segments, Context, Staged};
use super::{InstanceRecord, Segment, Stop};
use crate::{index, ArchiveError};

/// Records replayed in one batch at most (and bytes of files).
const BATCH: usize = 256;
const BATCH_BYTES: usize = 64 << 20;

/// Materialise what the journal holds after the checkpoint and remove its
/// segments; the number of the segment to append to next.
pub(crate) async fn recover(cx: &Context) -> Result<u64, ArchiveError> {
    let checkpoint = index::checkpoint(&cx.write, &cx.node).await?;
    let dir = cx.journal_dir.clone();
    let found = blocking("list the journal", move || Ok(segments(&dir))).await?;
    let (from_segment, from_offset) = checkpoint.unwrap_or((0, 0));
    let mut replayed = 0usize;
    for &seq in found.iter().filter(|s| **s >= from_segment) {
        let from = if seq == from_segment { from_offset } else { 0 };
        let path = segment_path(&cx.journal_dir, seq);
        let scan = blocking("read a journal segment", move || {
            Segment::open(&path, seq, from)
                .map(|(_, scan)| scan)
                .map_err(|e| ArchiveError::io("read a journal segment", e))
        })
        .await?;
        if scan.stop == Stop::Torn {
            tracing::warn!(
                segment = seq,
                offset = scan.end,
                "the journal segment ends in a torn record (never acknowledged): replayed up to it"
            );
        }
        // Each record ends where the next begins, the last at the scan's end.
        let ends: Vec<u64> = scan
            .records
            .iter()
            .skip(1)
            .map(|(offset, _)| *offset)
            .chain([scan.end])
            .collect();
        let mut records = scan.records.into_iter().zip(ends).peekable();
        while records.peek().is_some() {
            let mut chunk = Vec::new();
            let mut bytes = 0;
            while let Some(next) = records.next_if(|_| chunk.len() < BATCH && bytes < BATCH_BYTES) {
                bytes += next.0 .1.part10.len();
                chunk.push(next);
            }
            let (root, journal_dir) = (cx.root.clone(), cx.journal_dir.clone());
            let batch = blocking("check journaled instances", move || {
                Ok(chunk
                    .into_iter()
                    .filter_map(|((offset, record), end)| {
                        let at = Position {
                            segment: seq,
                            offset,
                        };
                        checked(&root, &journal_dir, at, record, end)
                    })
                    .collect::<Vec<_>>())
            })
            .await?;
            replayed += batch.len();
            materialise_once_more_if_full(cx, &batch).await?;
        }
    }
    if replayed > 0 {
        tracing::info!(
            instances = replayed,
            "journal replayed: instances acknowledged before the last stop are stored"
        );
    }
    let next = found
        .last()
        .map_or(1, |last| last + 1)
        .max(from_segment + 1);
    remove_segments_before(&cx.journal_dir, next).await;
    Ok(next)
}

/// A record ready to materialise, or `None` if its data set no longer
/// parses (it did when it was acknowledged, so only a defect gets here):
/// then its file is kept beside the journal, named by its position, and
/// the error logged.
fn checked(
    root: &std::path::Path,
    journal_dir: &std::path::Path,
    at: Position,
    record: InstanceRecord,
    end: u64,
) -> Option<Staged> {
    let InstanceRecord { incoming, part10 } = record;
    match crate::writer::attributes_of_file(&incoming, &part10) {
        Ok(attributes) => Some(Staged {
            incoming,
            attributes,
            part10: 0..part10.len(),
            bytes: Arc::new(part10),
            end: Position {
                segment: at.segment,
                offset: end,
            },
            _room: None,
        }),
        Err(e) => {
            let kept = journal_dir.join(format!("unreadable-{}-{}.dcm", at.segment, at.offset));
            let saved = std::fs::write(&kept, &part10);
            tracing::error!(
                sop_instance_uid = %incoming.sop_instance_uid, segment = at.segment, offset = at.offset,
                error = %e, kept = %kept.strip_prefix(root).unwrap_or(&kept).display(),
                saved = saved.is_ok(),
                "a journaled instance no longer parses: not indexed; its file is kept"
            );
            None
        }
    }
}

/// A full disk at start: settled studies make room, and one more try.
async fn materialise_once_more_if_full(cx: &Context, batch: &[Staged]) -> Result<(), ArchiveError> {
    match materialise(cx, batch).await {
        Err(e) if e.is_disk_full() => match &cx.make_room {
            Some((retention, low)) if retention.make_room(*low).await? => {
                materialise(cx, batch).await
            }
            _ => Err(e),
        },
        other => other,
    }
}

async fn blocking<T: Send + 'static>(
    action: &'static str,
    f: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ArchiveError::io(action, std::io::Error::other(e)))?
}

#[cfg(test)]
mod tests {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    use dicom_object::InMemDicomObject;
    use dicom_transfer_syntax_registry::entries::EXPLICIT_VR_LITTLE_ENDIAN;

    use super::super::{encode, ALIGN};
    use super::*;
    use crate::{Archive, ArchiveOptions, Flush, Incoming};

    const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

    /// An instance of study 2.25.7 as the archive would journal it.
    fn instance(n: u32) -> (Incoming, Vec<u8>) {
        let sop = format!("2.25.7.1.{n}");
        let mut obj = InMemDicomObject::new_empty();
        let mut put =
            |tag, vr, v: &str| obj.put(DataElement::new(tag, vr, PrimitiveValue::from(v)));
        put(tags::SOP_CLASS_UID, VR::UI, CT);
        put(tags::SOP_INSTANCE_UID, VR::UI, &sop);
        put(tags::STUDY_INSTANCE_UID, VR::UI, "2.25.7");
        put(tags::SERIES_INSTANCE_UID, VR::UI, "2.25.7.1");
        put(tags::MODALITY, VR::CS, "CT");
        obj.put(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            PrimitiveValue::from(vec![n as u8; 3000]),
        ));
        let mut data = Vec::new();
        obj.write_dataset_with_ts(&mut data, &EXPLICIT_VR_LITTLE_ENDIAN.erased())
            .unwrap();
        let incoming = Incoming {
            sop_class_uid: CT.into(),
            sop_instance_uid: sop,
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            calling_ae_title: "MODALITY".into(),
            called_ae_title: "TRIAGED".into(),
            source: "ward".into(),
            peer_address: "127.0.0.1".into(),
        };
        let mut part10 = crate::writer::file_header(&incoming, "1.2.3.4", "TEST").unwrap();
        part10.extend(data);
        (incoming, part10)
    }

    fn options(dir: &std::path::Path) -> ArchiveOptions {
        let mut o = ArchiveOptions::new(dir);
        o.node = "n1".into();
        o.flush = Flush::Journal;
        o
    }

    fn journal_dir(dir: &std::path::Path) -> std::path::PathBuf {
        let j = dir.join(crate::JOURNAL_DIR).join("n1");
        std::fs::create_dir_all(&j).unwrap();
        j
    }

    /// A segment `seq` holding instances `ns`, as a crash left it (each
    /// appended and flushed, none materialised); their offsets.
    fn segment(dir: &std::path::Path, seq: u64, ns: &[u32]) -> Vec<u64> {
        let mut seg =
            Segment::create(&segment_path(&journal_dir(dir), seq), 64 * ALIGN as u64).unwrap();
        ns.iter()
            .map(|n| {
                let (incoming, part10) = instance(*n);
                let mut record = encode(&incoming, &[&part10]).unwrap();
                super::super::stamp(&mut record, seq);
                seg.append(&[record]).unwrap().unwrap()
            })
            .collect()
    }

    /// (SOP Instance UID, receive count) of every row, and whether each
    /// file holds exactly the journaled bytes.
    async fn indexed(a: &Archive, dir: &std::path::Path) -> Vec<(String, i64)> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as(
            "SELECT sop_instance_uid, receive_count, file_path FROM instances ORDER BY sop_instance_uid",
        )
        .fetch_all(&a.inner.db.read)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(sop, count, path)| {
                let n: u32 = sop.rsplit('.').next().unwrap().parse().unwrap();
                assert_eq!(
                    std::fs::read(dir.join(path)).unwrap(),
                    instance(n).1,
                    "{sop}"
                );
                (sop, count)
            })
            .collect()
    }

    fn uids(ns: &[u32]) -> Vec<(String, i64)> {
        ns.iter().map(|n| (format!("2.25.7.1.{n}"), 1)).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn what_a_crash_left_in_the_journal_is_stored_at_start_once() {
        let dir = tempfile::tempdir().unwrap();
        segment(dir.path(), 3, &[1, 2]);
        segment(dir.path(), 4, &[3]);
        let a = Archive::open(options(dir.path())).await.unwrap();
        assert_eq!(indexed(&a, dir.path()).await, uids(&[1, 2, 3]));
        // The replayed segments are retired; appending goes on after them.
        let left = segments(&journal_dir(dir.path()));
        assert_eq!(left.first(), Some(&5), "{left:?}");
        a.close().await;
        // Reopened: nothing replayed twice.
        let a = Archive::open(options(dir.path())).await.unwrap();
        assert_eq!(indexed(&a, dir.path()).await, uids(&[1, 2, 3]));
        a.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_torn_record_ends_its_segment_and_the_next_segment_still_counts() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = segment(dir.path(), 1, &[1, 2, 3]);
        // The second record's flush failed half-way: one byte differs.
        let path = segment_path(&journal_dir(dir.path()), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[offsets[1] as usize + 2000] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        // The appender abandoned that segment and went on in the next.
        segment(dir.path(), 2, &[4]);
        let a = Archive::open(options(dir.path())).await.unwrap();
        assert_eq!(indexed(&a, dir.path()).await, uids(&[1, 4]));
        a.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_cut_between_its_files_and_its_rows_is_replayed_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let offsets = segment(dir.path(), 1, &[1, 2, 3]);
        // The first was materialised (its row and the checkpoint after
        // it committed); the crash came after the other two files were
        // moved into place, one of them only half written, before their
        // rows: the checkpoint still names the second record.
        let a = Archive::open(options(dir.path())).await.unwrap();
        assert_eq!(indexed(&a, dir.path()).await, uids(&[1, 2, 3]));
        sqlx::query("DELETE FROM instances WHERE sop_instance_uid <> '2.25.7.1.1'")
            .execute(&a.inner.db.write)
            .await
            .unwrap();
        sqlx::query(r#"UPDATE journal_checkpoint SET segment = 1, "offset" = $1"#)
            .bind(offsets[1] as i64)
            .execute(&a.inner.db.write)
            .await
            .unwrap();
        a.close().await;
        let series = dir.path().join("2.25.7/2.25.7.1");
        std::fs::write(series.join("2.25.7.1.2.dcm"), &instance(2).1[..500]).unwrap();
        segment(dir.path(), 1, &[1, 2, 3]);
        let a = Archive::open(options(dir.path())).await.unwrap();
        // Same files, byte for byte; each row once.
        assert_eq!(indexed(&a, dir.path()).await, uids(&[1, 2, 3]));
        a.close().await;
    }
}
