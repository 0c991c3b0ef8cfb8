//! From journal records to instance files and index rows, after Success.
//!
//! A batch, in journal order (placed, then indexed; the next batch may be
//! placed while this one is indexed): each instance's file written under a
//! temporary name and moved into its series directory; then every file
//! and every series directory touched flushed, several at once (not one
//! `syncfs`: with a bulk writer on the same filesystem it would wait for
//! all of that writer's pages, and this would fall behind the journal
//! without bound); then one index transaction that upserts the rows and
//! advances the node's checkpoint to the batch's end. A crash anywhere in
//! it leaves the checkpoint before the batch, and recovery writes the
//! same bytes to the same paths and upserts the same rows again.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{OwnedRwLockReadGuard, OwnedSemaphorePermit};

use super::appender::{free_segments, segment_path, Position};
use crate::attributes::InstanceAttributes;
use crate::db::Pool;
use crate::index::{self, Entry};
use crate::retention::Gates;
use crate::{fsutil, ArchiveError, Incoming, Retention};

/// What a batch needs of the archive.
pub(crate) struct Context {
    /// The storage folder.
    pub root: PathBuf,
    /// Where files are written before they are moved into place.
    pub tmp_dir: PathBuf,
    /// This node's journal segments.
    pub journal_dir: PathBuf,
    pub write: Pool,
    pub node: Arc<str>,
    pub gates: Arc<Gates>,
    /// When the disk is full: settled studies purged down to this
    /// fraction in use before the next try.
    pub make_room: Option<(Retention, f64)>,
    /// Segments below this are retired (kept free for reuse, or removed).
    pub removed_below: AtomicU64,
}

/// An instance in the journal, ready to be materialised.
pub(crate) struct Staged {
    pub incoming: Incoming,
    pub attributes: InstanceAttributes,
    /// The bytes that hold the file (the journal record, or the file
    /// alone) and where the file lies in them.
    pub bytes: Arc<Vec<u8>>,
    pub part10: Range<usize>,
    /// Just after the record: the checkpoint once this is materialised.
    pub end: Position,
    /// Memory held for the journal's backlog, released when dropped.
    pub _room: Option<OwnedSemaphorePermit>,
}

impl Staged {
    /// Relative to the storage folder.
    pub fn file_path(&self) -> String {
        file_path(&self.attributes)
    }
}

/// Where an instance's file lives, relative to the storage folder.
pub(crate) fn file_path(a: &InstanceAttributes) -> String {
    format!(
        "{}/{}/{}.dcm",
        a.study_instance_uid, a.series_instance_uid, a.sop_instance_uid
    )
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Materialise `batch` (in journal order): [`place`], then [`index`]. On
/// `Err` nothing of it is indexed and the checkpoint has not moved.
pub(crate) async fn materialise(cx: &Context, batch: &[Staged]) -> Result<(), ArchiveError> {
    let gates = place(cx, batch).await?;
    index(cx, batch).await?;
    drop(gates);
    Ok(())
}

/// Every file of `batch` written, moved into place and flushed (files,
/// then series directories). The studies' gates are held from the first
/// move into place: a purge of these studies waits until the guards
/// returned are dropped, after [`index`] (as for an instance written
/// directly).
pub(crate) async fn place(
    cx: &Context,
    batch: &[Staged],
) -> Result<Vec<OwnedRwLockReadGuard<()>>, ArchiveError> {
    let studies: BTreeSet<&str> = batch
        .iter()
        .map(|s| s.attributes.study_instance_uid.as_str())
        .collect();
    let mut gates = Vec::with_capacity(studies.len());
    for study in studies {
        gates.push(cx.gates.enter_owned(study).await);
    }
    let t = std::time::Instant::now();
    let files = write_files(cx, batch).await?;
    let written = t.elapsed();
    flush(files).await?;
    tracing::debug!(
        instances = batch.len(),
        write_us = written.as_micros() as u64,
        flush_us = (t.elapsed() - written).as_micros() as u64,
        "journal batch placed"
    );
    Ok(gates)
}

/// The rows of `batch` (placed) committed with the checkpoint just after
/// it, in one transaction; then files a resend moved away from removed,
/// and segments wholly behind the checkpoint.
pub(crate) async fn index(cx: &Context, batch: &[Staged]) -> Result<(), ArchiveError> {
    let Some(last) = batch.last() else {
        return Ok(());
    };
    let end = last.end;
    let t = std::time::Instant::now();
    let entries: Vec<Entry> = batch
        .iter()
        .map(|s| Entry {
            attributes: s.attributes.clone(),
            incoming: s.incoming.clone(),
            file_path: s.file_path(),
            file_size: s.part10.len() as u64,
        })
        .collect();
    let previous =
        index::record_up_to(&cx.write, &cx.node, &entries, (end.segment, end.offset)).await?;
    tracing::debug!(
        instances = batch.len(),
        index_us = t.elapsed().as_micros() as u64,
        "journal batch indexed"
    );
    for (entry, previous) in entries.iter().zip(previous) {
        if let Some(old) = previous.filter(|old| *old != entry.file_path) {
            // A resend under another study or series: the new file wins.
            let _ = tokio::fs::remove_file(cx.root.join(old)).await;
        }
    }
    if cx.removed_below.fetch_max(end.segment, Ordering::Relaxed) < end.segment {
        remove_segments_before(&cx.journal_dir, end.segment).await;
    }
    Ok(())
}

/// Each instance's file written and moved into place, not flushed: the
/// open files and the series directories, to flush.
async fn write_files(
    cx: &Context,
    batch: &[Staged],
) -> Result<(Vec<File>, Vec<PathBuf>), ArchiveError> {
    let jobs: Vec<Job> = batch
        .iter()
        .map(|s| {
            let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = cx
                .tmp_dir
                .join(format!("{}-j{}.part", std::process::id(), n));
            (
                tmp,
                cx.root.join(s.file_path()),
                s.bytes.clone(),
                s.part10.clone(),
            )
        })
        .collect();
    let root = cx.root.clone();
    tokio::task::spawn_blocking(move || write_all(&root, jobs))
        .await
        .unwrap_or_else(|e| {
            Err(ArchiveError::io(
                "write instance files",
                std::io::Error::other(e),
            ))
        })
}

/// A file to write: temporary path, final path, and its bytes.
type Job = (PathBuf, PathBuf, Arc<Vec<u8>>, Range<usize>);

fn write_all(root: &Path, jobs: Vec<Job>) -> Result<(Vec<File>, Vec<PathBuf>), ArchiveError> {
    let mut files = Vec::with_capacity(jobs.len());
    let mut dirs = BTreeSet::new();
    for (tmp, dest, bytes, part10) in &jobs {
        let bytes = &bytes[part10.clone()];
        let series = dest.parent().expect("an instance path has a parent");
        if dirs.insert(series.to_path_buf()) {
            fsutil::create_dir_durable(root, series)
                .map_err(|e| ArchiveError::io("create the series directory", e))?;
        }
        let written = File::create(tmp).and_then(|mut f| {
            f.write_all(bytes)?;
            Ok(f)
        });
        let file = match written {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(tmp);
                return Err(ArchiveError::io("write an instance file", e));
            }
        };
        if let Err(e) = std::fs::rename(tmp, dest) {
            let _ = std::fs::remove_file(tmp);
            return Err(ArchiveError::io("move the instance into place", e));
        }
        files.push(file);
    }
    Ok((files, dirs.into_iter().collect()))
}

/// Blocking threads that flush a batch's files at once, at most.
const FLUSHERS: usize = 8;

/// Flush every file, then every directory, on up to [`FLUSHERS`] blocking
/// threads: the filesystem joins concurrent flushes into one commit.
async fn flush((files, dirs): (Vec<File>, Vec<PathBuf>)) -> Result<(), ArchiveError> {
    let mut flushes = tokio::task::JoinSet::new();
    for files in deal(files) {
        flushes.spawn_blocking(move || {
            files
                .iter()
                .try_for_each(File::sync_all)
                .map_err(|e| ArchiveError::io("fsync an instance file", e))
        });
    }
    join_all(&mut flushes).await?;
    for dirs in deal(dirs) {
        flushes.spawn_blocking(move || {
            dirs.iter()
                .try_for_each(|d| fsutil::sync_dir(d))
                .map_err(|e| ArchiveError::io("fsync the series directory", e))
        });
    }
    join_all(&mut flushes).await
}

/// `items` dealt into at most [`FLUSHERS`] hands.
fn deal<T>(items: Vec<T>) -> Vec<Vec<T>> {
    let hands = items.len().min(FLUSHERS);
    let mut dealt: Vec<Vec<T>> = (0..hands).map(|_| Vec::new()).collect();
    for (i, item) in items.into_iter().enumerate() {
        dealt[i % hands].push(item);
    }
    dealt
}

async fn join_all(
    set: &mut tokio::task::JoinSet<Result<(), ArchiveError>>,
) -> Result<(), ArchiveError> {
    let mut result = Ok(());
    while let Some(joined) = set.join_next().await {
        let r = joined.unwrap_or_else(|e| {
            Err(ArchiveError::io(
                "flush the storage",
                std::io::Error::other(e),
            ))
        });
        if result.is_ok() {
            result = r;
        }
    }
    result
}

/// Segment files kept for a new life (`*.free`), at most: a segment
/// recycled is appended to with nothing written first.
pub(crate) const FREE_SEGMENTS: usize = 2;

/// Retire this node's segments numbered below `segment` (wholly behind
/// the checkpoint): each kept as a free segment while fewer than
/// [`FREE_SEGMENTS`] are, else removed. One not retired now (or whose
/// rename a crash undid) goes at the next batch or the next start.
pub(crate) async fn remove_segments_before(dir: &Path, segment: u64) {
    let dir = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || {
        let mut free = free_segments(&dir).len();
        for seq in segments(&dir).into_iter().filter(|s| *s < segment) {
            let path = segment_path(&dir, seq);
            let retired = if free < FREE_SEGMENTS {
                free += 1;
                std::fs::rename(&path, path.with_extension("free"))
            } else {
                std::fs::remove_file(&path)
            };
            if let Err(e) = retired {
                tracing::warn!(segment = seq, error = %e, "cannot retire a materialised journal segment");
            }
        }
    })
    .await;
}

/// Make free segments of `size` bytes in `dir` until there are
/// [`FREE_SEGMENTS`] (at start, before anything is received: the first
/// segments are then recycled, not written with zeros while instances
/// arrive).
pub(crate) fn fill_free_segments(dir: &Path, size: u64) -> std::io::Result<()> {
    let mut n = 0;
    while free_segments(dir).len() < FREE_SEGMENTS {
        let path = dir.join(format!("new-{n}.free"));
        n += 1;
        if !path.exists() {
            super::Segment::create(&path, size)?;
        }
    }
    Ok(())
}

/// The sequence numbers of the segments in `dir`, in order.
pub(crate) fn segments(dir: &Path) -> Vec<u64> {
    let mut found: Vec<u64> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e.ok()?.file_name();
            name.to_str()?.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    found.sort_unstable();
    found
}
