//! File-system steps that make an instance durable.

use std::fs;
use std::io;
use std::path::Path;

/// Create the storage and temporary directories; empty the latter.
pub(crate) fn prepare_dirs(dir: &Path, tmp: &Path) -> Result<(), crate::ArchiveError> {
    let io = |a| move |e| crate::ArchiveError::io(a, e);
    fs::create_dir_all(dir).map_err(io("create the storage directory"))?;
    fs::create_dir_all(tmp).map_err(io("create the incoming directory"))?;
    let mut removed = 0;
    for entry in fs::read_dir(tmp).map_err(io("list the incoming directory"))? {
        let entry = entry.map_err(io("list the incoming directory"))?;
        if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            fs::remove_file(entry.path()).map_err(io("remove a stale incoming file"))?;
            removed += 1;
        }
    }
    if removed > 0 {
        tracing::info!(
            removed,
            "removed unacknowledged partial instances from a previous run"
        );
    }
    Ok(())
}

/// fsync a directory, so a rename or a new entry in it survives power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// Create `dir` (and parents up to `root`), fsyncing each parent that got a
/// new entry.
pub(crate) fn create_dir_durable(root: &Path, dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        if parent != root && parent.starts_with(root) {
            create_dir_durable(root, parent)?;
        }
        match fs::create_dir(dir) {
            Ok(()) => sync_dir(parent)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A UID is used as a path component: allow only what cannot escape the
/// storage directory. Standard UIDs are digits and dots, at most 64 long.
pub fn is_safe_uid(uid: &str) -> bool {
    !uid.is_empty()
        && uid.len() <= 64
        && !uid.starts_with('.')
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Take the storage folder for this process: an exclusive lock on
/// `<dir>/triaged.lock`, held as long as the returned file is open (the
/// kernel drops it if the process dies). A second daemon on the same
/// folder would clear the first one's temporary files and interleave its
/// writes; it is refused instead, before touching anything.
pub(crate) fn lock_storage(dir: &Path) -> std::io::Result<std::fs::File> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("triaged.lock");
    lock_file(&path, || {
        format!(
            "{} is in use by another triaged process (it holds {})",
            dir.display(),
            path.display()
        )
    })
}

/// Take this node's place in a shared storage folder: a shared lock on
/// `<dir>/triaged.lock` (so a single-node daemon, which wants it alone, is
/// refused, and refuses the nodes) and an exclusive lock on
/// `<dir>/.nodes/<node>.lock`: two processes with one node name would
/// clear each other's incoming files and claims; the second is refused.
pub(crate) fn lock_node(dir: &Path, node: &str) -> std::io::Result<Vec<std::fs::File>> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("triaged.lock");
    let shared = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    match shared.try_lock_shared() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "{} is in use by another triaged process (a single node holds {})",
                    dir.display(),
                    path.display()
                ),
            ))
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    let nodes = dir.join(".nodes");
    std::fs::create_dir_all(&nodes)?;
    let own = lock_file(&nodes.join(format!("{node}.lock")), || {
        format!(
            "{} is in use by another triaged process as node {node}",
            dir.display()
        )
    })?;
    Ok(vec![shared, own])
}

fn lock_file(path: &Path, busy: impl FnOnce() -> String) -> std::io::Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(std::io::Error::new(std::io::ErrorKind::WouldBlock, busy()))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_that_could_escape_are_refused() {
        assert!(is_safe_uid("1.2.840.113619.2.55.3"));
        assert!(!is_safe_uid(""));
        assert!(!is_safe_uid(".."));
        assert!(!is_safe_uid("../etc"));
        assert!(!is_safe_uid("1.2/3"));
        assert!(!is_safe_uid(&"1".repeat(65)));
    }
}
