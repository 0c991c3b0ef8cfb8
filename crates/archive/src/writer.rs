//! Receiving one instance: buffer or spill, then make durable and index.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::meta::FileMetaTableBuilder;
use dicom_object::{DefaultDicomObject, OpenFileOptions};

use crate::attributes::InstanceAttributes;
use crate::fsutil;
use crate::lengths;
use crate::{Archive, ArchiveError};

/// What the network layer knows about an instance before its data set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub sop_class_uid: String,
    pub sop_instance_uid: String,
    pub transfer_syntax_uid: String,
    pub calling_ae_title: String,
    /// The AE title it was sent to (ours, or one of `[[dicom.ae_titles]]`).
    pub called_ae_title: String,
    /// The configured source's name.
    pub source: String,
    pub peer_address: String,
}

/// An instance safely stored and indexed.
#[derive(Debug, Clone)]
pub struct Stored {
    pub attributes: InstanceAttributes,
    /// Relative to the storage directory.
    pub file_path: String,
    pub file_size: u64,
    /// The SOP Instance UID was already in the archive; its file was replaced.
    pub duplicate: bool,
}

/// An instance being received. Drop without `commit` or `abort` leaves at
/// most a temporary file, removed at the next start.
pub struct PendingInstance {
    archive: Archive,
    incoming: Incoming,
    /// Preamble, "DICM" and file meta group.
    header: Vec<u8>,
    /// Data set bytes not yet written to the temporary file.
    buf: Vec<u8>,
    spill: Option<(File, PathBuf)>,
    size: u64,
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl PendingInstance {
    pub(crate) fn new(archive: Archive, incoming: Incoming) -> Self {
        PendingInstance {
            archive,
            incoming,
            header: Vec::new(),
            buf: Vec::new(),
            spill: None,
            size: 0,
        }
    }

    fn file_header(&self) -> Result<Vec<u8>, ArchiveError> {
        let options = &self.archive.inner.options;
        file_header(
            &self.incoming,
            &options.implementation_class_uid,
            &options.implementation_version_name,
        )
    }

    fn tmp_path(&self) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.archive
            .inner
            .tmp_dir
            .join(format!("{}-{}.part", std::process::id(), n))
    }

    /// Append data set bytes.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), ArchiveError> {
        self.size += chunk.len() as u64;
        self.buf.extend_from_slice(chunk);
        if self.buf.len() >= self.archive.inner.options.spill_threshold {
            if let Err(e) = self.spill().await {
                // Too big to keep in memory for another try: make room for
                // the sender's retry, and fail this one (0xA700).
                if let Some(low) = self
                    .archive
                    .inner
                    .options
                    .make_room_to
                    .filter(|_| e.is_disk_full())
                {
                    if let Err(purge) = self.archive.retention().make_room(low).await {
                        tracing::error!(error = %purge, "storage full and purging failed");
                    }
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Move the buffered bytes to the temporary file.
    async fn spill(&mut self) -> Result<(), ArchiveError> {
        if self.header.is_empty() {
            self.header = self.file_header()?;
        }
        let mut data = std::mem::take(&mut self.buf);
        let header = if self.spill.is_none() {
            Some(self.header.clone())
        } else {
            None
        };
        let spill = self.spill.take();
        let path = self.tmp_path();
        let (spill, mut data) = blocking(move || {
            let (mut file, path) = match spill {
                Some(s) => s,
                None => {
                    let file = File::create(&path)
                        .map_err(|e| ArchiveError::io("create a temporary file", e))?;
                    (file, path)
                }
            };
            if let Some(h) = header {
                file.write_all(&h)
                    .map_err(|e| ArchiveError::io("write a temporary file", e))?;
            }
            file.write_all(&data)
                .map_err(|e| ArchiveError::io("write a temporary file", e))?;
            data.clear();
            Ok(((file, path), data))
        })
        .await?;
        // Reuse the allocation for the next chunk.
        std::mem::swap(&mut self.buf, &mut data);
        self.spill = Some(spill);
        Ok(())
    }

    /// Make the instance durable and index it. Only after this returns
    /// `Ok` may the sender be told Success.
    ///
    /// Order: parse (an in-memory instance is parsed before it touches the
    /// disk), write the temporary file, rename it into place; then flush
    /// and commit the index row at the same time. The flush is one group
    /// `syncfs` of the storage filesystem ([`crate::Flush::Group`]: file
    /// data, inode and name of this and every instance written meanwhile)
    /// or, with [`crate::Flush::Each`], an fsync of the file before the
    /// rename and one of the series directory after. Both finish before
    /// `Ok`, so the caller's Success is never early; a crash between them
    /// leaves an unacknowledged instance (its row may name a file that is
    /// missing or short) that the sender resends, and a resend replaces
    /// it.
    pub async fn commit(mut self) -> Result<Stored, ArchiveError> {
        if self.header.is_empty() {
            self.header = self.file_header()?;
        }
        let root = self.archive.inner.options.dir.clone();
        let tmp = self.tmp_path();
        let PendingInstance {
            archive,
            incoming,
            header,
            buf,
            spill,
            size,
        } = self;
        let file_size = header.len() as u64 + size;
        let make_room_to = archive.inner.options.make_room_to;
        if let Some(journal) = &archive.inner.journal {
            if spill.is_none() && journal.takes(file_size as usize) {
                return journaled(&archive, journal, incoming, header, buf, file_size).await;
            }
        }
        let started = Instant::now();
        let mut parts = Some((header, buf, spill));
        let mut room_made = false;
        let (tmp_path, attrs, mut timings) = loop {
            let (header, buf, spill) = parts.take().expect("parts are put back on a retry");
            let inc = incoming.clone();
            let tmp = tmp.clone();
            let sync = archive.inner.flusher.is_none();
            match blocking(move || write_temporary(&inc, &tmp, header, buf, spill, sync)).await? {
                Written::Done(path, attrs, timings) => break (path, *attrs, timings),
                Written::DiskFull(e, header, buf) => {
                    // An instance held in memory can be written again once
                    // settled studies have made room (once: if nothing was
                    // purgeable, the sender hears 0xA700 and retries later).
                    let Some(low) = make_room_to.filter(|_| !room_made) else {
                        return Err(e);
                    };
                    room_made = true;
                    if !archive.retention().make_room(low).await? {
                        return Err(e);
                    }
                    parts = Some((header, buf, None));
                }
            }
        };
        // With the journal, an earlier instance of the same UID still in it
        // must be materialised first, or it would replace this one.
        if let Some(journal) = &archive.inner.journal {
            journal.visibility().caught_up().await;
        }
        // From the move into place until the index row is committed, a
        // purge of this study waits (and a purge under way finishes first).
        let study_uid = attrs.study_instance_uid.clone();
        let gates = archive.inner.gates.clone();
        let _gate = gates.enter(&study_uid).await;
        // On shared storage a purge on another node is not held by this
        // node's gate: a resend must never take the place of the file its
        // index row names (the purge deletes what its rows name), so it is
        // written beside it and the old one goes once the row names the
        // new one. A file no row names (left by a refused instance) is
        // simply replaced, as on one node.
        let in_series = format!("{}/{}", attrs.study_instance_uid, attrs.series_instance_uid);
        let mut rel = format!("{in_series}/{}.dcm", attrs.sop_instance_uid);
        let beside = archive.backend() == crate::db::Backend::Postgres
            && tokio::fs::try_exists(root.join(&rel)).await.unwrap_or(true)
            && match indexed_at(&archive, &attrs.sop_instance_uid, &rel).await {
                Ok(named) => named,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&tmp_path).await;
                    return Err(e);
                }
            };
        if beside {
            let part = tmp.file_stem().unwrap_or_default().to_string_lossy();
            let node = &archive.inner.lease.node;
            rel = format!("{in_series}/{}.{node}-{part}.dcm", attrs.sop_instance_uid);
        }
        let placed = blocking(move || {
            let t = Instant::now();
            let dest = root.join(&rel);
            let series_dir = dest
                .parent()
                .expect("instance path has a parent")
                .to_path_buf();
            let moved = fsutil::create_dir_durable(&root, &series_dir)
                .map_err(|e| ArchiveError::io("create the series directory", e))
                .and_then(|()| {
                    std::fs::rename(&tmp_path, &dest)
                        .map_err(|e| ArchiveError::io("move the instance into place", e))
                });
            if let Err(e) = moved {
                let _ = std::fs::remove_file(&tmp_path);
                return Err(e);
            }
            timings.rename = t.elapsed();
            Ok((attrs, rel, series_dir, timings))
        })
        .await;
        let (attributes, file_path, series_dir, timings) = placed?;

        let t = Instant::now();
        let flushed = async {
            match &archive.inner.flusher {
                // The file, its inode and its new name, with whatever
                // other instances wrote meanwhile.
                Some(flusher) => flusher.flush().await,
                None => {
                    blocking(move || {
                        fsutil::sync_dir(&series_dir)
                            .map_err(|e| ArchiveError::io("fsync the series directory", e))
                    })
                    .await
                }
            }
        };
        let incoming_again = incoming.clone();
        let indexed = archive.inner.index.record(crate::index::Entry {
            attributes: attributes.clone(),
            incoming,
            file_path: file_path.clone(),
            file_size,
        });
        let (flushed, indexed) = tokio::join!(flushed, indexed);
        flushed?;
        let previous = match (indexed, make_room_to) {
            // The file fitted, the index's next page did not: settled
            // studies make room, then the row is written once more.
            (Err(e), Some(low)) if e.is_disk_full() && !room_made => {
                let retention = archive.retention();
                if !retention.make_room_sparing(low, Some(&study_uid)).await? {
                    return Err(e);
                }
                archive
                    .inner
                    .index
                    .record(crate::index::Entry {
                        attributes: attributes.clone(),
                        incoming: incoming_again,
                        file_path: file_path.clone(),
                        file_size,
                    })
                    .await?
            }
            (indexed, _) => indexed?,
        };
        tracing::debug!(
            sop_instance_uid = %attributes.sop_instance_uid,
            parse_us = timings.parse.as_micros() as u64,
            write_fsync_us = timings.write.as_micros() as u64,
            rename_us = timings.rename.as_micros() as u64,
            dir_fsync_and_index_us = t.elapsed().as_micros() as u64,
            total_us = started.elapsed().as_micros() as u64,
            "instance committed"
        );
        let duplicate = previous.is_some();
        if let Some(old) = previous.filter(|old| *old != file_path) {
            // A resend under another study or series: the new file wins.
            let _ = tokio::fs::remove_file(archive.inner.options.dir.join(old)).await;
        }
        Ok(Stored {
            attributes,
            file_path,
            file_size,
            duplicate,
        })
    }

    /// Discard the instance.
    pub async fn abort(self) {
        if let Some((file, path)) = self.spill {
            drop(file);
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

/// An instance held in memory, through the journal: parsed and checked,
/// its record appended and flushed (one `fdatasync`, shared with every
/// instance appended meanwhile); its file and index row come after, from
/// the materialiser (`journal::materialise`). A full disk (no next segment
/// can be made) fails this instance, 0xA700, after making room for the
/// sender's retry, as a spilled instance does.
async fn journaled(
    archive: &Archive,
    journal: &crate::journal::Journal,
    incoming: Incoming,
    header: Vec<u8>,
    buf: Vec<u8>,
    file_size: u64,
) -> Result<Stored, ArchiveError> {
    let inc = incoming.clone();
    let (attributes, record) = blocking(move || {
        let obj = parse_bytes(&header, &buf, &inc.transfer_syntax_uid)?;
        let attributes = checked_attributes(&obj, &inc)?;
        drop(obj);
        let record = crate::journal::encode(&inc, &[&header, &buf])
            .map_err(|e| ArchiveError::io("encode a journal record", e))?;
        Ok((attributes, record))
    })
    .await?;
    let sop = attributes.sop_instance_uid.clone();
    let known = async {
        sqlx::query_scalar::<_, i64>("SELECT 1 FROM instances WHERE sop_instance_uid = $1")
            .bind(&sop)
            .fetch_optional(&archive.inner.db.read)
            .await
            .map(|row| row.is_some())
    };
    let append = journal.append(record, incoming, attributes.clone());
    let (known, appended) = tokio::join!(known, append);
    if let Err(e) = appended {
        if let Some(low) = archive
            .inner
            .options
            .make_room_to
            .filter(|_| e.is_disk_full())
        {
            if let Err(purge) = archive.retention().make_room(low).await {
                tracing::error!(error = %purge, "storage full and purging failed");
            }
        }
        return Err(e);
    }
    Ok(Stored {
        file_path: crate::journal::file_path(&attributes),
        attributes,
        file_size,
        // A resend while its first copy is still in the journal reads as
        // new here; the index counts it as received twice all the same.
        duplicate: known.unwrap_or(false),
    })
}

/// Whether the index names `rel` as the file of instance `sop`.
async fn indexed_at(archive: &Archive, sop: &str, rel: &str) -> Result<bool, ArchiveError> {
    let path: Option<String> =
        sqlx::query_scalar("SELECT file_path FROM instances WHERE sop_instance_uid = $1")
            .bind(sop)
            .fetch_optional(&archive.inner.db.read)
            .await
            .map_err(ArchiveError::db("looking up the file of a resent instance"))?;
    Ok(path.as_deref() == Some(rel))
}

/// The temporary file of an instance, or the disk was full (with the
/// bytes back, for another try, when they were held in memory).
enum Written {
    Done(PathBuf, Box<InstanceAttributes>, Timings),
    DiskFull(ArchiveError, Vec<u8>, Vec<u8>),
}

/// Parse (in memory) and write the temporary file, or finish and parse the
/// spilled one; fsynced either way when `sync` (else the group flush
/// makes it durable after the move into place).
fn write_temporary(
    inc: &Incoming,
    tmp: &Path,
    header: Vec<u8>,
    buf: Vec<u8>,
    spill: Option<(File, PathBuf)>,
    sync: bool,
) -> Result<Written, ArchiveError> {
    let mut timings = Timings::default();
    match spill {
        None => {
            let t = Instant::now();
            let attrs =
                checked_attributes(&parse_bytes(&header, &buf, &inc.transfer_syntax_uid)?, inc)?;
            timings.parse = t.elapsed();
            let t = Instant::now();
            let result = write_new(tmp, &[&header, &buf], sync);
            timings.write = t.elapsed();
            match result {
                Ok(()) => Ok(Written::Done(tmp.to_path_buf(), Box::new(attrs), timings)),
                Err(e) if e.is_disk_full() => Ok(Written::DiskFull(e, header, buf)),
                Err(e) => Err(e),
            }
        }
        Some((mut file, path)) => {
            let t = Instant::now();
            let written = file
                .write_all(&buf)
                .and_then(|()| if sync { file.sync_all() } else { Ok(()) })
                .map_err(|e| ArchiveError::io("write a temporary file", e));
            drop(file);
            timings.write = t.elapsed();
            let t = Instant::now();
            let attrs = written
                .and_then(|()| parse_file(&path, &inc.transfer_syntax_uid))
                .and_then(|obj| checked_attributes(&obj, inc));
            timings.parse = t.elapsed();
            match attrs {
                Ok(a) => Ok(Written::Done(path, Box::new(a), timings)),
                Err(e) => {
                    let _ = std::fs::remove_file(&path);
                    Err(e)
                }
            }
        }
    }
}

#[derive(Default)]
struct Timings {
    parse: Duration,
    write: Duration,
    rename: Duration,
}

/// Create `path` with the given parts, fsynced if `sync`. Removed again
/// on failure.
fn write_new(path: &Path, parts: &[&[u8]], sync: bool) -> Result<(), ArchiveError> {
    let result = (|| {
        let mut file = File::create(path)?;
        for p in parts {
            file.write_all(p)?;
        }
        if sync {
            file.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(path);
        ArchiveError::io("write a temporary file", e)
    })
}

/// Preamble, "DICM" and the file meta group we write before a received
/// data set.
pub(crate) fn file_header(
    incoming: &Incoming,
    implementation_class_uid: &str,
    implementation_version_name: &str,
) -> Result<Vec<u8>, ArchiveError> {
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(incoming.sop_class_uid.as_str())
        .media_storage_sop_instance_uid(incoming.sop_instance_uid.as_str())
        .transfer_syntax(incoming.transfer_syntax_uid.as_str())
        .implementation_class_uid(implementation_class_uid)
        .implementation_version_name(implementation_version_name)
        .source_application_entity_title(incoming.calling_ae_title.as_str())
        .build()
        .map_err(|e| ArchiveError::Unparsable(format!("cannot build file meta: {e}")))?;
    let mut header = vec![0u8; 128];
    header.extend_from_slice(b"DICM");
    meta.write(&mut header)
        .map_err(|e| ArchiveError::Unparsable(format!("cannot write file meta: {e}")))?;
    Ok(header)
}

/// Parse and check a received data set as a commit does, without storing
/// anything: the object as it would be stored (file meta included), or
/// why it would be refused. The fuzz targets (fuzz/) and their corpus
/// replay test call this and [`check_received`].
pub fn parse_received(
    incoming: &Incoming,
    data: &[u8],
) -> Result<DefaultDicomObject, ArchiveError> {
    let header = file_header(
        incoming,
        crate::IMPLEMENTATION_CLASS_UID,
        crate::IMPLEMENTATION_VERSION_NAME,
    )?;
    parse_bytes(&header, data, &incoming.transfer_syntax_uid)
}

/// [`parse_received`], then the index attributes checked against the
/// command: what the SCP answers Success for.
pub fn check_received(
    incoming: &Incoming,
    data: &[u8],
) -> Result<InstanceAttributes, ArchiveError> {
    checked_attributes(&parse_received(incoming, data)?, incoming)
}

/// The index attributes of a whole Part 10 file as [`PendingInstance`]
/// wrote it (file header, then the data set as received), checked as a
/// commit checks them: what journal recovery replays.
pub(crate) fn attributes_of_file(
    incoming: &Incoming,
    part10: &[u8],
) -> Result<InstanceAttributes, ArchiveError> {
    let header = part10
        .get(140..144)
        .map(|l| 144 + u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize)
        .filter(|h| *h <= part10.len())
        .ok_or_else(|| ArchiveError::Unparsable("a journaled file without its file meta".into()))?;
    let obj = parse_bytes(
        &part10[..header],
        &part10[header..],
        &incoming.transfer_syntax_uid,
    )?;
    checked_attributes(&obj, incoming)
}

/// The index attributes, checked against what the C-STORE command said.
fn checked_attributes(
    obj: &DefaultDicomObject,
    inc: &Incoming,
) -> Result<InstanceAttributes, ArchiveError> {
    let attrs = InstanceAttributes::from_object(obj)?;
    if attrs.sop_instance_uid != inc.sop_instance_uid {
        return Err(ArchiveError::InstanceMismatch);
    }
    if attrs.sop_class_uid != inc.sop_class_uid {
        return Err(ArchiveError::ClassMismatch);
    }
    Ok(attrs)
}

/// The largest deflated data set accepted, inflated (deflate is for small
/// non-image objects such as reports).
const MAX_INFLATED: u64 = 256 << 20;

fn parse_bytes(
    header: &[u8],
    data: &[u8],
    transfer_syntax: &str,
) -> Result<DefaultDicomObject, ArchiveError> {
    match lengths::encoding(transfer_syntax) {
        Some((explicit, little)) => {
            lengths::check(data, explicit, little).map_err(ArchiveError::Unparsable)?
        }
        None => {
            let inflated =
                lengths::inflate(data, MAX_INFLATED).map_err(ArchiveError::Unparsable)?;
            lengths::check(&inflated[..], true, true).map_err(ArchiveError::Unparsable)?
        }
    }
    let reader = std::io::Read::chain(&header[128..], data);
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(reader)
        .map_err(|e| ArchiveError::Unparsable(e.to_string()))
}

/// Large instances are checked up to the pixel data, so that parsing does
/// not hold a second copy of a multi-gigabyte object in memory.
fn parse_file(path: &Path, transfer_syntax: &str) -> Result<DefaultDicomObject, ArchiveError> {
    let io = |e| ArchiveError::io("read a temporary file", e);
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut head = [0u8; 144];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).map_err(io)?;
    let start = 144
        + u64::from(u32::from_le_bytes([
            head[140], head[141], head[142], head[143],
        ]));
    match lengths::encoding(transfer_syntax) {
        Some((explicit, little)) => {
            lengths::check(&lengths::FileFrom(&file, start, size), explicit, little)
                .map_err(ArchiveError::Unparsable)?
        }
        None => {
            let mut body = vec![0u8; size.saturating_sub(start) as usize];
            std::os::unix::fs::FileExt::read_exact_at(&file, &mut body, start).map_err(io)?;
            let inflated =
                lengths::inflate(&body, MAX_INFLATED).map_err(ArchiveError::Unparsable)?;
            lengths::check(&inflated[..], true, true).map_err(ArchiveError::Unparsable)?
        }
    }
    OpenFileOptions::new()
        .read_until(tags::PIXEL_DATA)
        .open_file(path)
        .map_err(|e| ArchiveError::Unparsable(e.to_string()))
}

/// Run file work off the async threads. A panic in the DICOM parser on a
/// hostile data set is caught here and becomes an unparsable data set.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => Err(ArchiveError::Unparsable(
            "the parser failed on this data set".into(),
        )),
        Err(e) => Err(ArchiveError::io(
            "run a storage task",
            std::io::Error::other(e),
        )),
    }
}
