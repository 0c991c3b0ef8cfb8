//! Where the fast path's time goes, per kind of operation: wall time of
//! each operation, and the thread time its parts took (building columns,
//! the matrix product, the epilogue). Off unless [`enable`]d (one atomic
//! load per operation); meant for `cargo bench --bench layers`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TABLE: Mutex<BTreeMap<String, Entry>> = Mutex::new(BTreeMap::new());

/// Totals for one kind of operation.
#[derive(Debug, Clone, Default)]
pub struct Entry {
    pub calls: usize,
    /// Multiply-accumulates (convolutions only).
    pub macs: u64,
    /// Wall-clock milliseconds.
    pub wall_ms: f64,
    /// Thread milliseconds building im2col columns or prologues.
    pub columns_ms: f64,
    /// Thread milliseconds in the matrix product.
    pub gemm_ms: f64,
    /// Thread milliseconds in the epilogue.
    pub epilogue_ms: f64,
}

/// Starts (or stops) recording; starting clears the table.
pub fn enable(on: bool) {
    if on {
        TABLE.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
    ENABLED.store(on, Ordering::Relaxed);
}

/// The table so far, by operation kind.
pub fn take() -> BTreeMap<String, Entry> {
    std::mem::take(&mut *TABLE.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Thread time of an operation's parts, summed over its tasks.
#[derive(Default)]
pub(crate) struct Parts {
    columns: AtomicU64,
    gemm: AtomicU64,
    epilogue: AtomicU64,
}

pub(crate) enum Part {
    Columns,
    Gemm,
    Epilogue,
}

impl Parts {
    /// Runs `f`, adding its time to `part` when recording.
    pub fn time<T>(&self, part: Part, f: impl FnOnce() -> T) -> T {
        if !ENABLED.load(Ordering::Relaxed) {
            return f();
        }
        let start = Instant::now();
        let out = f();
        let ns = start.elapsed().as_nanos() as u64;
        let counter = match part {
            Part::Columns => &self.columns,
            Part::Gemm => &self.gemm,
            Part::Epilogue => &self.epilogue,
        };
        counter.fetch_add(ns, Ordering::Relaxed);
        out
    }
}

/// Times one operation of `kind` (its wall time and, for convolutions,
/// its parts).
pub(crate) fn op<T>(kind: impl FnOnce() -> String, macs: u64, f: impl FnOnce(&Parts) -> T) -> T {
    let parts = Parts::default();
    if !ENABLED.load(Ordering::Relaxed) {
        return f(&parts);
    }
    let start = Instant::now();
    let out = f(&parts);
    let wall = start.elapsed().as_secs_f64() * 1e3;
    let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
    let mut table = TABLE.lock().unwrap_or_else(|e| e.into_inner());
    let e = table.entry(kind()).or_default();
    e.calls += 1;
    e.macs += macs;
    e.wall_ms += wall;
    e.columns_ms += ms(&parts.columns);
    e.gemm_ms += ms(&parts.gemm);
    e.epilogue_ms += ms(&parts.epilogue);
    out
}
