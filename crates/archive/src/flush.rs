//! Group flush: one `syncfs` makes every instance waiting durable.
//!
//! Without it each instance costs two flushes of its own before its index
//! commit: an fsync of its file and one of its series directory, each a
//! journal commit that the filesystem serialises. Instead the writer
//! writes the file and moves it into place without flushing, then asks
//! this task; the task takes every request waiting in its channel and
//! makes them durable with one `syncfs(2)` of the storage filesystem
//! (file data, inodes and directory entries of everything written before
//! it began). A request that arrives while a `syncfs` runs waits for the
//! next, which begins after its writes. Alone, an instance is flushed at
//! once; under load, batches grow, as the index's group commit does.
//!
//! `syncfs` reports writeback errors of the filesystem since Linux 5.8
//! (Debian 12 ships 6.1), so a failed write is never acknowledged.

use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::ArchiveError;

type Reply = oneshot::Sender<Result<(), Arc<io::Error>>>;

pub(crate) struct Flusher {
    tx: Mutex<Option<mpsc::Sender<Reply>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Flusher {
    /// A flusher for the filesystem holding `dir`.
    pub fn start(dir: &Path) -> io::Result<Self> {
        let root = Arc::new(File::open(dir)?);
        let (tx, rx) = mpsc::channel(1024);
        let task = tokio::spawn(run(root, rx));
        Ok(Flusher {
            tx: Mutex::new(Some(tx)),
            task: Mutex::new(Some(task)),
        })
    }

    /// Resolves once everything this process wrote to the storage
    /// filesystem before the call is on stable storage.
    pub async fn flush(&self) -> Result<(), ArchiveError> {
        let closed = || {
            ArchiveError::io(
                "flush the storage",
                io::Error::other("the archive is closing"),
            )
        };
        let sender = self.tx.lock().await.clone().ok_or_else(closed)?;
        let (reply, answer) = oneshot::channel();
        sender.send(reply).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?.map_err(|e| {
            ArchiveError::io("flush the storage", io::Error::new(e.kind(), e.to_string()))
        })
    }

    /// Stop taking requests and wait for those queued to be flushed.
    pub async fn close(&self) {
        self.tx.lock().await.take();
        if let Some(task) = self.task.lock().await.take() {
            let _ = task.await;
        }
    }
}

async fn run(root: Arc<File>, mut rx: mpsc::Receiver<Reply>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(next) = rx.try_recv() {
            batch.push(next);
        }
        let fd = root.clone();
        let result = tokio::task::spawn_blocking(move || rustix::fs::syncfs(&*fd))
            .await
            .map_err(|e| Arc::new(io::Error::other(e)))
            .and_then(|r| r.map_err(|e| Arc::new(io::Error::from(e))));
        if batch.len() > 1 {
            tracing::debug!(size = batch.len(), "storage group flush");
        }
        for reply in batch {
            let _ = reply.send(result.clone());
        }
    }
}
