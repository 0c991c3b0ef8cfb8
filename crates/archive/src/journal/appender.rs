//! The journal's one writer: every record waiting is appended to the
//! current segment with one write and one `fdatasync`, then each record is
//! handed on (in journal order, to the materialiser) and its waiter told
//! where it lies. With k senders one flush covers up to k
//! instances, as the index's group commit does.
//!
//! The writer is an OS thread that owns the segment: appends are blocking
//! file work from start to end. The next segment is made (allocated,
//! written with zeros, flushed) by another thread while the current one
//! fills, so that rolling over costs an open file, not 64 MiB of writes.
//! After a failed write or flush the segment is abandoned for a new one:
//! what a failed `fdatasync` left on disk is unknown, and a record there
//! was never acknowledged (recovery may replay it or not; both are right).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot, Mutex};

use super::Segment;
use crate::ArchiveError;

/// Where a record was made durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Position {
    /// The segment's sequence number (its file name).
    pub segment: u64,
    pub offset: u64,
}

impl Position {
    /// Just after a record of `len` bytes at this position.
    pub fn after(self, len: usize) -> Position {
        Position {
            segment: self.segment,
            offset: self.offset + len as u64,
        }
    }
}

/// A record made durable, handed on with what came with it.
pub(crate) struct Appended<T> {
    pub at: Position,
    pub record: Vec<u8>,
    pub item: T,
}

/// Where durable records go, in journal order, and how many went.
pub(crate) struct Handoff<T> {
    pub next: mpsc::UnboundedSender<Appended<T>>,
    /// Counted after a record is handed on and before its waiter hears.
    pub handed: Arc<AtomicU64>,
}

type Reply = oneshot::Sender<Result<Position, Arc<io::Error>>>;
/// A record, what comes with it, and who waits for it.
type Waiter<T> = (Vec<u8>, T, Reply);

pub(crate) struct Appender<T> {
    tx: Mutex<Option<mpsc::Sender<Waiter<T>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The file of segment `seq` in `dir`.
pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:012}.seg"))
}

/// Segment files in `dir` ready for a new life (`*.free`: materialised
/// segments, or made ahead at start).
pub(crate) fn free_segments(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "free"))
        .collect()
}

/// Segment `seq` of `size` bytes in `dir`: a free one recycled when there
/// is one (nothing to write), else made (written with zeros once).
pub(crate) fn new_segment(dir: &Path, seq: u64, size: u64) -> io::Result<Segment> {
    let path = segment_path(dir, seq);
    for free in free_segments(dir) {
        match Segment::recycle(&free, &path, size) {
            Ok(segment) => return Ok(segment),
            Err(e) => {
                tracing::warn!(file = %free.display(), error = %e, "a free journal segment cannot be reused: removed");
                let _ = std::fs::remove_file(&free);
            }
        }
    }
    Segment::create(&path, size)
}

impl<T: Send + 'static> Appender<T> {
    /// Append to new segments of `size` bytes in `dir`, numbered from
    /// `first` (which must not exist yet); durable records go to `handoff`.
    pub fn start(dir: &Path, size: u64, first: u64, handoff: Handoff<T>) -> io::Result<Self> {
        let segment = new_segment(dir, first, size)?;
        let (tx, rx) = mpsc::channel(1024);
        let writer = Writer {
            dir: dir.to_path_buf(),
            size,
            current: Some((first, segment)),
            next_seq: first + 1,
            spare: None,
            handoff,
        };
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || writer.run(rx))?;
        Ok(Appender {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Append `record` (from [`super::encode`]), to be handed on with
    /// `item`; `Ok` once it is durable (and handed on).
    pub async fn append(&self, record: Vec<u8>, item: T) -> Result<Position, ArchiveError> {
        let closed = || {
            ArchiveError::io(
                "append to the journal",
                io::Error::other("the archive is closing"),
            )
        };
        let sender = self.tx.lock().await.clone().ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        sender
            .send((record, item, reply))
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?.map_err(|e| {
            ArchiveError::io(
                "append to the journal",
                io::Error::new(e.kind(), e.to_string()),
            )
        })
    }

    /// Stop taking records and wait for those queued to be appended.
    pub async fn close(&self) {
        self.tx.lock().await.take();
        if let Some(thread) = self.thread.lock().await.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

struct Writer<T> {
    dir: PathBuf,
    size: u64,
    /// The segment appended to, unless the last one failed or filled.
    current: Option<(u64, Segment)>,
    next_seq: u64,
    /// The next segment, being made.
    spare: Option<JoinHandle<io::Result<Segment>>>,
    handoff: Handoff<T>,
}

impl<T> Writer<T> {
    fn run(mut self, mut rx: mpsc::Receiver<Waiter<T>>) {
        while let Some(first) = rx.blocking_recv() {
            let mut waiting = vec![first];
            while let Ok(next) = rx.try_recv() {
                waiting.push(next);
            }
            while !waiting.is_empty() {
                waiting = self.append_some(waiting);
            }
        }
        if let Some(spare) = self.spare.take() {
            let _ = spare.join();
        }
    }

    /// Append the records at the head of `waiting` that fit in the current
    /// segment (rolling to the next one when none does) and answer them;
    /// the rest, for the next call.
    fn append_some(&mut self, mut waiting: Vec<Waiter<T>>) -> Vec<Waiter<T>> {
        let (seq, mut segment) = match self.current.take() {
            Some(current) => current,
            None => match self.roll() {
                Ok(next) => next,
                Err(e) => {
                    fail(waiting, e);
                    return Vec::new();
                }
            },
        };
        let mut room = segment.room();
        let fit = waiting
            .iter()
            .take_while(|(r, _, _)| {
                let fits = r.len() as u64 <= room;
                room -= if fits { r.len() as u64 } else { 0 };
                fits
            })
            .count();
        if fit == 0 {
            if segment.is_empty() {
                // Larger than a whole segment: never appendable.
                let too_large = io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a record larger than a journal segment",
                );
                fail(vec![waiting.remove(0)], too_large);
                self.current = Some((seq, segment));
            }
            // Else the segment is full: the next call rolls over.
            return waiting;
        }
        let rest = waiting.split_off(fit);
        for (record, _, _) in &mut waiting {
            super::stamp(record, seq);
        }
        let records: Vec<&[u8]> = waiting.iter().map(|(r, _, _)| r.as_slice()).collect();
        match segment.append(&records) {
            Ok(Ok(offset)) => {
                let mut at = Position {
                    segment: seq,
                    offset,
                };
                for (record, item, reply) in waiting {
                    let next = at.after(record.len());
                    // Handed on before its waiter hears Success: whoever
                    // then waits for the materialiser waits for this too.
                    let _ = self.handoff.next.send(Appended { at, record, item });
                    self.handoff.handed.fetch_add(1, Ordering::SeqCst);
                    let _ = reply.send(Ok(at));
                    at = next;
                }
                self.current = Some((seq, segment));
            }
            // Chosen to fit, so not met; were it, the next segment takes them.
            Ok(Err(super::Full)) => {
                waiting.extend(rest);
                return waiting;
            }
            Err(e) => {
                tracing::error!(segment = seq, error = %e, "journal append failed: the segment is abandoned");
                fail(waiting, e);
            }
        }
        rest
    }

    /// The next segment (the spare, when it was made), and the one after
    /// it begun.
    fn roll(&mut self) -> io::Result<(u64, Segment)> {
        let seq = self.next_seq;
        let made = match self.spare.take() {
            Some(spare) => spare
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("making a segment panicked"))),
            None => new_segment(&self.dir, seq, self.size),
        };
        // A spare that failed (disk full) leaves its number to the next try.
        let segment = made?;
        self.next_seq = seq + 1;
        let (dir, next, size) = (self.dir.clone(), self.next_seq, self.size);
        self.spare = std::thread::Builder::new()
            .name("journal-segment".into())
            .spawn(move || new_segment(&dir, next, size))
            .ok();
        Ok((seq, segment))
    }
}

/// Answer every one of `waiting` with `e`.
fn fail<T>(waiting: Vec<Waiter<T>>, e: io::Error) {
    let e = Arc::new(e);
    for (_, _, reply) in waiting {
        let _ = reply.send(Err(e.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::super::{encode, scan, tests::incoming, ALIGN};
    use super::*;

    fn handoff<T>() -> (Handoff<T>, mpsc::UnboundedReceiver<Appended<T>>) {
        let (next, rx) = mpsc::unbounded_channel();
        let handed = Arc::new(AtomicU64::new(0));
        (Handoff { next, handed }, rx)
    }

    /// The records of every segment in `dir`, in journal order.
    fn journal(dir: &Path) -> Vec<(Position, String)> {
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let seq: u64 = f.file_stem().unwrap().to_str().unwrap().parse().unwrap();
            for (offset, r) in scan(&std::fs::read(&f).unwrap(), seq, 0).records {
                out.push((
                    Position {
                        segment: seq,
                        offset,
                    },
                    r.incoming.sop_instance_uid,
                ));
            }
        }
        out
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_records_are_all_durable_where_they_were_said_to_be() {
        let dir = tempfile::tempdir().unwrap();
        // Eight blocks a segment: records of one and two blocks roll over
        // every few batches.
        let (handoff, mut handed) = handoff();
        let appender = Arc::new(Appender::start(dir.path(), 8 * ALIGN as u64, 1, handoff).unwrap());
        let mut tasks = Vec::new();
        for n in 0..60u32 {
            let appender = appender.clone();
            tasks.push(tokio::spawn(async move {
                let size = if n % 3 == 0 { 5000 } else { 100 };
                let record = encode(&incoming(n), &[&vec![n as u8; size]]).unwrap();
                (
                    appender.append(record, n).await.unwrap(),
                    format!("1.2.3.{n}"),
                )
            }));
        }
        let mut said = Vec::new();
        for t in tasks {
            said.push(t.await.unwrap());
        }
        appender.close().await;
        said.sort();
        let found = journal(dir.path());
        assert_eq!(found, said);
        assert!(found.last().unwrap().0.segment > 5, "{found:?}");
        // Every record was handed on, in journal order, with its item.
        let mut order = Vec::new();
        while let Ok(a) = handed.try_recv() {
            assert_eq!(
                super::super::part10_range(&a.record).len(),
                if a.item % 3 == 0 { 5000 } else { 100 }
            );
            order.push((a.at, format!("1.2.3.{}", a.item)));
        }
        assert_eq!(order, said);
    }

    #[tokio::test]
    async fn a_record_larger_than_a_segment_is_refused_and_the_next_goes_in() {
        let dir = tempfile::tempdir().unwrap();
        let (handoff, _handed) = handoff();
        let appender = Appender::start(dir.path(), 2 * ALIGN as u64, 1, handoff).unwrap();
        let big = encode(&incoming(1), &[&[1; 3 * ALIGN]]).unwrap();
        assert!(appender.append(big, ()).await.is_err());
        let small = encode(&incoming(2), &[&[2; 10]]).unwrap();
        let at = appender.append(small, ()).await.unwrap();
        assert_eq!(
            at,
            Position {
                segment: 1,
                offset: 0
            }
        );
        appender.close().await;
        assert!(appender
            .append(encode(&incoming(3), &[&[3; 10]]).unwrap(), ())
            .await
            .is_err());
        let uids: Vec<_> = journal(dir.path()).into_iter().map(|(_, u)| u).collect();
        assert_eq!(uids, ["1.2.3.2"]);
    }
}
