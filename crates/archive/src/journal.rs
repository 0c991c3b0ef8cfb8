//! The ingest journal's on-disk form (docs/ingest-journal.md, issue 26):
//! segment files of checksummed, 4 KiB-aligned records, each an instance's
//! [`Incoming`] and its Part 10 bytes; the append that makes a batch of
//! records durable with one `fdatasync`; and the scan recovery runs, which
//! stops at the first record that is short, zero or fails its checksum.
//!
//! Why stopping there is right: one writer appends batches in order and a
//! batch is acknowledged only once its flush returned, before the next
//! batch is written. A damaged record therefore belongs to a batch nobody
//! was told Success for, and so does everything after it.
//!
//! On the write path with `storage.flush = "journal"`: [`ingest`] appends
//! a received instance's record (through [`appender`]) before Success,
//! [`materialise`] turns records into instance files and index rows
//! after it, and [`recover`] replays at start what a crash left.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::Incoming;

mod appender;
mod ingest;
mod materialise;
mod recover;

pub(crate) use ingest::{Journal, Visibility};
pub(crate) use materialise::{file_path, Context};

/// Records start on this boundary, so no record shares a block with the
/// next batch's.
pub(crate) const ALIGN: usize = 4096;
/// magic, checksum, version, kind, payload length, segment number.
const HEADER: usize = 24;
const MAGIC: [u8; 4] = *b"TJR1";
const VERSION: u16 = 1;
/// The one kind of record: an instance received, its [`Incoming`] and
/// its Part 10 file.
const KIND_INSTANCE: u16 = 1;

/// An instance as the journal holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InstanceRecord {
    pub incoming: Incoming,
    /// Preamble, "DICM", file meta group and data set: the file's bytes.
    pub part10: Vec<u8>,
}

/// The record of `incoming` and its file's bytes (`part10`, in parts:
/// the file header and the data set as received), padded to [`ALIGN`].
pub(crate) fn encode(incoming: &Incoming, part10: &[&[u8]]) -> io::Result<Vec<u8>> {
    let fields = fields(incoming);
    let file: usize = part10.iter().map(|p| p.len()).sum();
    let payload = file + fields.iter().map(|f| 2 + f.len()).sum::<usize>();
    let length = u32::try_from(payload)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a record over 4 GiB"))?;
    // The file's bytes are copied once, into the record itself.
    let mut record = Vec::with_capacity(padded(HEADER + payload));
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&[0; 4]); // the checksum, below
    record.extend_from_slice(&VERSION.to_le_bytes());
    record.extend_from_slice(&KIND_INSTANCE.to_le_bytes());
    record.extend_from_slice(&length.to_le_bytes());
    record.extend_from_slice(&[0; 8]); // the segment's number, by `stamp`
    for field in fields {
        let len = u16::try_from(field.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a field over 64 KiB"))?;
        record.extend_from_slice(&len.to_le_bytes());
        record.extend_from_slice(field.as_bytes());
    }
    for part in part10 {
        record.extend_from_slice(part);
    }
    let crc = checksum(&record);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
    record.resize(padded(record.len()), 0);
    Ok(record)
}

/// The CRC-32 of a record's version, kind, length and payload: not of
/// the segment number, which the writer stamps when it knows it.
fn checksum(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[8..16]);
    h.update(&record[HEADER..]);
    h.finalize()
}

/// Mark `record` (from [`encode`]) as written to segment `seq`. A segment
/// file is recycled: the records of its earlier life, with their earlier
/// number, then read as its end.
pub(crate) fn stamp(record: &mut [u8], seq: u64) {
    record[16..24].copy_from_slice(&seq.to_le_bytes());
}

/// Where the file's bytes lie in a record made by [`encode`].
pub(crate) fn part10_range(record: &[u8]) -> std::ops::Range<usize> {
    let u16_at = |i: usize| u16::from_le_bytes([record[i], record[i + 1]]) as usize;
    let end =
        HEADER + u32::from_le_bytes([record[12], record[13], record[14], record[15]]) as usize;
    let mut start = HEADER;
    for _ in 0..7 {
        start += 2 + u16_at(start);
    }
    start..end
}

fn fields(i: &Incoming) -> [&str; 7] {
    [
        &i.sop_class_uid,
        &i.sop_instance_uid,
        &i.transfer_syntax_uid,
        &i.calling_ae_title,
        &i.called_ae_title,
        &i.source,
        &i.peer_address,
    ]
}

fn padded(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// Why a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Zeros where the next record would start: the journal's end.
    End,
    /// A record cut short, of an unknown version or kind, or whose
    /// checksum fails: an unacknowledged batch, and the journal's end.
    Torn,
}

/// The records of a segment from an offset on, in order.
#[derive(Debug)]
pub(crate) struct Scan {
    /// Each record's offset and what it holds.
    pub records: Vec<(u64, InstanceRecord)>,
    /// Where the next record goes (the first byte after the last good one).
    pub end: u64,
    pub stop: Stop,
}

/// Read the records of `bytes` (segment `seq`'s contents) from `offset`
/// on.
pub(crate) fn scan(bytes: &[u8], seq: u64, offset: u64) -> Scan {
    let mut records = Vec::new();
    let mut at = usize::try_from(offset).unwrap_or(usize::MAX);
    let stop = loop {
        match decode(bytes.get(at..).unwrap_or_default(), seq) {
            Ok((record, size)) => {
                records.push((at as u64, record));
                at += size;
            }
            Err(stop) => break stop,
        }
    };
    Scan {
        records,
        end: at as u64,
        stop,
    }
}

/// The record of segment `seq` at the start of `bytes`, and its padded
/// size.
fn decode(bytes: &[u8], seq: u64) -> Result<(InstanceRecord, usize), Stop> {
    let head = bytes.get(..HEADER).ok_or(Stop::End)?;
    if head.iter().all(|&b| b == 0) {
        return Err(Stop::End);
    }
    let u16_at = |i: usize| u16::from_le_bytes([head[i], head[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if head[..4] != MAGIC[..] || u16_at(8) != VERSION || u16_at(10) != KIND_INSTANCE {
        return Err(Stop::Torn);
    }
    if head[16..24] != seq.to_le_bytes() {
        // Written in this file's earlier life, as another segment.
        return Err(Stop::End);
    }
    let end = HEADER + u32_at(12) as usize;
    let record = bytes.get(..end).ok_or(Stop::Torn)?;
    if checksum(record) != u32_at(4) {
        return Err(Stop::Torn);
    }
    let mut payload = &bytes[HEADER..end];
    let mut field = || -> Result<String, Stop> {
        let len = payload.get(..2).ok_or(Stop::Torn)?;
        let len = u16::from_le_bytes([len[0], len[1]]) as usize;
        let text = payload.get(2..2 + len).ok_or(Stop::Torn)?;
        let text = String::from_utf8(text.to_vec()).map_err(|_| Stop::Torn)?;
        payload = &payload[2 + len..];
        Ok(text)
    };
    let incoming = Incoming {
        sop_class_uid: field()?,
        sop_instance_uid: field()?,
        transfer_syntax_uid: field()?,
        calling_ae_title: field()?,
        called_ae_title: field()?,
        source: field()?,
        peer_address: field()?,
    };
    let record = InstanceRecord {
        incoming,
        part10: payload.to_vec(),
    };
    Ok((record, padded(end)))
}

/// A segment file open for appending.
pub(crate) struct Segment {
    file: File,
    size: u64,
    /// Where the next batch goes.
    end: u64,
}

/// A batch that does not fit in what is left of a segment.
#[derive(Debug)]
pub(crate) struct Full;

impl Segment {
    /// Make a segment of `size` bytes at `path`: allocated and written
    /// with zeros once, then flushed with its directory entry, so that an
    /// append later overwrites written blocks and its `fdatasync` has no
    /// allocation or file size to journal (an append to a growing file
    /// would cost what today's flushes do).
    ///
    /// A segment not made (the disk full) is removed again, so that the
    /// next try may take its name.
    pub fn create(path: &Path, size: u64) -> io::Result<Segment> {
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        let made = (|| {
            rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size)?;
            let zeros = vec![0u8; 1 << 20];
            let mut at = 0;
            while at < size {
                let n = zeros.len().min((size - at) as usize);
                file.write_all_at(&zeros[..n], at)?;
                at += n as u64;
            }
            file.sync_all()?;
            match path.parent() {
                Some(dir) => crate::fsutil::sync_dir(dir),
                None => Ok(()),
            }
        })();
        match made {
            Ok(()) => Ok(Segment { file, size, end: 0 }),
            Err(e) => {
                drop(file);
                let _ = std::fs::remove_file(path);
                Err(e)
            }
        }
    }

    /// Give the segment file `from` (whose records are all materialised)
    /// a new life as `to`, of `size` bytes: renamed, the rename flushed.
    /// Its blocks are written already, so appends to it flush data only,
    /// and nothing need be written first (its old records carry their old
    /// segment number).
    pub fn recycle(from: &Path, to: &Path, size: u64) -> io::Result<Segment> {
        if std::fs::metadata(from)?.len() != size {
            return Err(io::Error::other("a recycled segment of another size"));
        }
        std::fs::rename(from, to)?;
        if let Some(dir) = to.parent() {
            crate::fsutil::sync_dir(dir)?;
        }
        let file = File::options().read(true).write(true).open(to)?;
        Ok(Segment { file, size, end: 0 })
    }

    /// Open segment `seq`, made by [`Segment::create`], appending after
    /// its last good record; with the records from `from` on.
    pub fn open(path: &Path, seq: u64, from: u64) -> io::Result<(Segment, Scan)> {
        let file = File::options().read(true).write(true).open(path)?;
        let bytes = std::fs::read(path)?;
        let scan = scan(&bytes, seq, from);
        let segment = Segment {
            file,
            size: bytes.len() as u64,
            end: scan.end,
        };
        Ok((segment, scan))
    }

    /// Bytes left for records.
    pub fn room(&self) -> u64 {
        self.size - self.end
    }

    /// Whether no record was appended yet.
    pub fn is_empty(&self) -> bool {
        self.end == 0
    }

    /// Write `records` (each from [`encode`]) after the last batch and
    /// flush them with one `fdatasync`: durable when this returns `Ok`.
    pub fn append<R: AsRef<[u8]>>(&mut self, records: &[R]) -> io::Result<Result<u64, Full>> {
        let len: usize = records.iter().map(|r| r.as_ref().len()).sum();
        if self.end + len as u64 > self.size {
            return Ok(Err(Full));
        }
        // One write a record, where it goes (no copy into one buffer);
        // the flush is what costs, and there is one a batch.
        let at = self.end;
        let mut next = at;
        for r in records {
            self.file.write_all_at(r.as_ref(), next)?;
            next += r.as_ref().len() as u64;
        }
        self.file.sync_data()?;
        self.end = next;
        Ok(Ok(at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn incoming(n: u32) -> Incoming {
        Incoming {
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1.1".into(),
            sop_instance_uid: format!("1.2.3.{n}"),
            transfer_syntax_uid: "1.2.840.10008.1.2.1".into(),
            calling_ae_title: "MODALITY".into(),
            called_ae_title: "TRIAGED".into(),
            source: "ward".into(),
            peer_address: "127.0.0.1".into(),
        }
    }

    /// Three records of 100, 5000 and 10 bytes of file, in a segment
    /// of `size` zeros.
    fn segment(size: usize) -> (Vec<u8>, Vec<usize>) {
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for (n, len) in [(1, 100), (2, 5000), (3, 10)] {
            offsets.push(bytes.len());
            let mut record = encode(&incoming(n), &[&vec![n as u8; len]]).unwrap();
            stamp(&mut record, 7);
            bytes.extend(record);
        }
        bytes.resize(size.max(bytes.len()), 0);
        (bytes, offsets)
    }

    #[test]
    fn records_come_back_as_written_and_aligned() {
        let (bytes, offsets) = segment(64 << 10);
        assert_eq!(offsets, [0, ALIGN, 3 * ALIGN]);
        let scan = scan(&bytes, 7, 0);
        assert_eq!(scan.stop, Stop::End);
        assert_eq!(scan.end, 4 * ALIGN as u64);
        let got = &scan.records;
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, ALIGN as u64);
        assert_eq!(got[1].1.incoming, incoming(2));
        assert_eq!(got[1].1.part10, vec![2u8; 5000]);
        // From a later offset (a checkpoint): only what follows it.
        let later = super::scan(&bytes, 7, ALIGN as u64);
        // The same file read as another segment: records of its earlier
        // life, so nothing (a recycled segment's start).
        let other = super::scan(&bytes, 8, 0);
        assert_eq!(
            (other.records.len(), other.end, other.stop),
            (0, 0, Stop::End)
        );
        assert_eq!(later.records.len(), 2);
        assert_eq!(later.records[0].1.incoming, incoming(2));
    }

    #[test]
    fn a_damaged_record_ends_the_journal_and_nothing_after_it_counts() {
        let (clean, offsets) = segment(64 << 10);
        // A flipped byte in the second record's file bytes.
        let mut flipped = clean.clone();
        flipped[offsets[1] + 3000] ^= 1;
        // The second record cut short: its last blocks never written.
        let mut cut = clean.clone();
        cut[offsets[1] + ALIGN..offsets[2]].fill(0);
        // A header claiming more than the segment holds.
        let mut long = clean.clone();
        long[offsets[1] + 12..offsets[1] + 16].copy_from_slice(&u32::MAX.to_le_bytes());
        // A version this build does not know.
        let mut version = clean.clone();
        version[offsets[1] + 8] = 9;
        for bytes in [flipped, cut, long, version] {
            let scan = scan(&bytes, 7, 0);
            assert_eq!(scan.stop, Stop::Torn);
            assert_eq!(scan.records.len(), 1);
            assert_eq!(scan.end, offsets[1] as u64);
        }
        // A segment filled to its last byte ends cleanly.
        let (full, _) = segment(0);
        assert_eq!(full.len(), 4 * ALIGN);
        let scan = scan(&full, 7, 0);
        assert_eq!((scan.stop, scan.records.len()), (Stop::End, 3));
    }

    #[test]
    fn an_appended_batch_is_read_back_after_reopening_and_a_full_segment_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("000000000001.seg");
        let mut seg = Segment::create(&path, 6 * ALIGN as u64).unwrap();
        let record = |n: u32, len: usize, seq: u64| {
            let mut r = encode(&incoming(n), &[&vec![n as u8; len]]).unwrap();
            stamp(&mut r, seq);
            r
        };
        let batch: Vec<_> = (1..=2).map(|n| record(n, 10, 1)).collect();
        assert_eq!(seg.append(&batch).unwrap().unwrap(), 0);
        let last = vec![record(3, 5000, 1)];
        assert_eq!(seg.append(&last).unwrap().unwrap(), 2 * ALIGN as u64);
        // Two blocks left: a two-block record fits, a third does not.
        assert!(seg.append(&last).unwrap().is_ok());
        assert!(seg.append(&last).unwrap().is_err());
        drop(seg);

        let (mut seg, scan) = Segment::open(&path, 1, 0).unwrap();
        let uids: Vec<_> = scan
            .records
            .iter()
            .map(|(_, r)| r.incoming.sop_instance_uid.as_str())
            .collect();
        assert_eq!(uids, ["1.2.3.1", "1.2.3.2", "1.2.3.3", "1.2.3.3"]);
        assert_eq!((scan.stop, scan.end), (Stop::End, 6 * ALIGN as u64));
        assert!(seg.append(&batch[..1]).unwrap().is_err());
        drop(seg);

        // Recycled as segment 3: empty to a reader until written again,
        // and its earlier records after the new ones are not read.
        let again = dir.path().join("000000000003.seg");
        assert!(Segment::recycle(&path, &again, ALIGN as u64).is_err());
        let mut seg = Segment::recycle(&path, &again, 6 * ALIGN as u64).unwrap();
        assert!(!path.exists());
        assert_eq!(Segment::open(&again, 3, 0).unwrap().1.records.len(), 0);
        assert_eq!(seg.append(&[record(9, 10, 3)]).unwrap().unwrap(), 0);
        let (_, scan) = Segment::open(&again, 3, 0).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.records[0].1.incoming, incoming(9));
        assert_eq!((scan.stop, scan.end), (Stop::End, ALIGN as u64));
        std::fs::rename(&again, &path).unwrap();
        // Never made over an existing segment.
        assert!(Segment::create(&path, ALIGN as u64).is_err());
        // One that cannot be made (no disk holds an exabyte) leaves no
        // file behind to block the next try.
        let next = dir.path().join("000000000002.seg");
        assert!(Segment::create(&next, 1 << 60).is_err());
        assert!(!next.exists());
        assert!(Segment::create(&next, ALIGN as u64).is_ok());
    }
}
