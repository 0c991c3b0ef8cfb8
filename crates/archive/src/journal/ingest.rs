//! The journal as the archive uses it (`storage.flush = "journal"`): an
//! instance is acknowledged once its record is durable in the journal;
//! a background task then materialises records in journal order; queries
//! wait for what was acknowledged before them to be visible.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, watch, Mutex, Notify, OwnedRwLockReadGuard, Semaphore};
use tokio::task::JoinHandle;

use super::appender::{Appended, Appender, Handoff};
use super::materialise::{fill_free_segments, index, place, Context, Staged};
use super::{part10_range, ALIGN};
use crate::attributes::InstanceAttributes;
use crate::{fsutil, ArchiveError, Incoming};

/// The most records, and bytes of files, materialised in one batch.
const MAX_BATCH: usize = 256;
const MAX_BATCH_BYTES: usize = 64 << 20;
/// The most bytes of records acknowledged and not yet materialised: past
/// it, the next instance waits (the sender sees a slower Success, memory
/// stays bounded).
const MAX_BACKLOG: usize = 256 << 20;

/// What travels with a record to the materialiser.
struct Parsed {
    incoming: Incoming,
    attributes: InstanceAttributes,
    room: tokio::sync::OwnedSemaphorePermit,
}

pub(crate) struct Journal {
    appender: Appender<Parsed>,
    visibility: Visibility,
    backlog: Arc<Semaphore>,
    segment_size: u64,
    closing: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// Waits until what was acknowledged is in the index; cheap to clone.
#[derive(Clone)]
pub(crate) struct Visibility {
    handed: Arc<AtomicU64>,
    done: watch::Receiver<u64>,
    /// What queries wait for: the materialiser stops gathering a batch
    /// while one waits for a record in it or after it.
    hurry: Arc<Hurry>,
}

/// Records waited for, counted in journal order, and a wake-up for the
/// materialiser when that count grows.
#[derive(Default)]
struct Hurry {
    wanted: AtomicU64,
    notify: Notify,
}

impl Visibility {
    /// Resolves once every instance acknowledged before the call is
    /// materialised (at once when nothing is waiting), or the archive
    /// closed.
    pub async fn caught_up(&self) {
        let target = self.handed.load(Ordering::SeqCst);
        let mut done = self.done.clone();
        if *done.borrow() < target {
            self.hurry.wanted.fetch_max(target, Ordering::SeqCst);
            self.hurry.notify.notify_one();
        }
        let _ = done.wait_for(|d| *d >= target).await;
    }
}

impl Journal {
    /// Replay what a crash left after the checkpoint (before anything is
    /// received), then open a new segment of `segment_size` bytes. A
    /// batch is gathered for up to `linger` after its first record (a
    /// batch of one would pay a directory flush and an index commit of its
    /// own, competing with the journal's flushes for the disk), or until a
    /// query waits for it.
    pub async fn open(
        cx: Context,
        segment_size: u64,
        linger: Duration,
    ) -> Result<Journal, ArchiveError> {
        // The folder may not exist yet: recovery then finds nothing.
        let first = super::recover::recover(&cx).await?;
        let (next, rx) = mpsc::unbounded_channel();
        let handed = Arc::new(AtomicU64::new(0));
        let handoff = Handoff {
            next,
            handed: handed.clone(),
        };
        let (root, dir) = (cx.root.clone(), cx.journal_dir.clone());
        let appender = tokio::task::spawn_blocking(move || {
            fsutil::create_dir_durable(&root, &dir)?;
            fill_free_segments(&dir, segment_size)?;
            Appender::start(&dir, segment_size, first, handoff)
        })
        .await
        .map_err(|e| ArchiveError::io("start the journal", std::io::Error::other(e)))?
        .map_err(|e| ArchiveError::io("start the journal", e))?;
        let (done_tx, done) = watch::channel(0);
        let (closing, closing_rx) = watch::channel(false);
        let hurry = Arc::new(Hurry::default());
        let task = tokio::spawn(run(cx, rx, linger, hurry.clone(), done_tx, closing_rx));
        Ok(Journal {
            appender,
            visibility: Visibility {
                handed,
                done,
                hurry,
            },
            backlog: Arc::new(Semaphore::new(MAX_BACKLOG / ALIGN)),
            segment_size,
            closing,
            task: Mutex::new(Some(task)),
        })
    }

    /// Whether a record of `len` bytes goes through the journal (a larger
    /// instance is stored directly).
    pub fn takes(&self, len: usize) -> bool {
        (len as u64) < self.segment_size / 2 && len < MAX_BACKLOG / 2
    }

    /// Append `record` (from [`super::encode`]) of an instance checked and
    /// parsed into `attributes`: `Ok` once it is durable.
    pub async fn append(
        &self,
        record: Vec<u8>,
        incoming: Incoming,
        attributes: InstanceAttributes,
    ) -> Result<(), ArchiveError> {
        let blocks = u32::try_from(record.len().div_ceil(ALIGN)).unwrap_or(u32::MAX);
        let room = self
            .backlog
            .clone()
            .acquire_many_owned(blocks)
            .await
            .map_err(|_| {
                ArchiveError::io(
                    "append to the journal",
                    std::io::Error::other("the archive is closing"),
                )
            })?;
        let item = Parsed {
            incoming,
            attributes,
            room,
        };
        self.appender.append(record, item).await.map(drop)
    }

    pub fn visibility(&self) -> Visibility {
        self.visibility.clone()
    }

    /// Stop taking records, append those queued, and materialise what can
    /// be (what cannot stays in the journal for the next start).
    pub async fn close(&self) {
        self.closing.send_replace(true);
        self.appender.close().await;
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

/// The materialiser: batches of what the appender handed on, in order
/// (each gathered for up to `linger`, unless a query waits for a record
/// not yet taken into a batch), placed (files written and flushed) here
/// and indexed by a second task, so that one batch's files are flushed
/// while the one before is committed; each step tried until it succeeds
/// (a record is never skipped; while the disk is full, settled studies
/// make room between tries). At close, a step that fails is left to the
/// next start.
async fn run(
    cx: Context,
    mut rx: mpsc::UnboundedReceiver<Appended<Parsed>>,
    linger: Duration,
    hurry: Arc<Hurry>,
    done: watch::Sender<u64>,
    closing: watch::Receiver<bool>,
) {
    let cx = Arc::new(cx);
    let (placed_tx, placed) = mpsc::channel(2);
    let indexer = tokio::spawn(run_index(cx.clone(), placed, done, closing.clone()));
    let mut closing_place = closing;
    // Records taken into batches before the one being gathered.
    let mut taken_before = 0u64;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![staged(first)];
        let mut bytes = batch[0].part10.len();
        let until = tokio::time::Instant::now() + linger;
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let next = match rx.try_recv() {
                Ok(next) => next,
                Err(TryRecvError::Disconnected) => break,
                Err(TryRecvError::Empty) => {
                    let woken = hurry.notify.notified();
                    // A query counted in after this check leaves a
                    // wake-up that `woken` takes.
                    if hurry.wanted.load(Ordering::SeqCst) > taken_before {
                        break;
                    }
                    tokio::select! {
                        next = rx.recv() => match next {
                            Some(next) => next,
                            None => break,
                        },
                        _ = tokio::time::sleep_until(until) => break,
                        _ = woken => break,
                    }
                }
            };
            let next = staged(next);
            bytes += next.part10.len();
            batch.push(next);
        }
        taken_before += batch.len() as u64;
        let Some(gates) = until_done(&cx, &mut closing_place, || place(&cx, &batch)).await else {
            break;
        };
        if placed_tx.send((batch, gates)).await.is_err() {
            break;
        }
    }
    drop(placed_tx);
    let _ = indexer.await;
}

/// The second step: placed batches indexed in order, then counted done.
async fn run_index(
    cx: Arc<Context>,
    mut placed: mpsc::Receiver<(Vec<Staged>, Vec<OwnedRwLockReadGuard<()>>)>,
    done: watch::Sender<u64>,
    mut closing: watch::Receiver<bool>,
) {
    let mut count = 0u64;
    while let Some((batch, gates)) = placed.recv().await {
        if until_done(&cx, &mut closing, || index(&cx, &batch))
            .await
            .is_none()
        {
            return;
        }
        drop(gates);
        count += batch.len() as u64;
        done.send_replace(count);
    }
}

/// `step` tried until it succeeds, with a growing pause and room made on
/// a full disk between tries; `None` if it failed while the archive
/// closes (the journal keeps the records for the next start).
async fn until_done<T, F, Fut>(
    cx: &Context,
    closing: &mut watch::Receiver<bool>,
    mut step: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ArchiveError>>,
{
    let mut pause = Duration::from_millis(100);
    loop {
        let e = match step().await {
            Ok(t) => return Some(t),
            Err(e) => e,
        };
        tracing::error!(
            error = %e,
            "cannot materialise journaled instances (they are safe in the journal): trying again"
        );
        if let (true, Some((retention, low))) = (e.is_disk_full(), &cx.make_room) {
            if let Err(purge) = retention.make_room(*low).await {
                tracing::error!(error = %purge, "storage full and purging failed");
            }
        }
        if *closing.borrow() {
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = closing.changed() => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

fn staged(a: Appended<Parsed>) -> Staged {
    Staged {
        part10: part10_range(&a.record),
        end: a.at.after(a.record.len()),
        bytes: Arc::new(a.record),
        incoming: a.item.incoming,
        attributes: a.item.attributes,
        _room: Some(a.item.room),
    }
}
