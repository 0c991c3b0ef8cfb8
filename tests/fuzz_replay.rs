//! The fuzz targets' inputs replayed on stable, in the suite: every crash
//! reproducer kept in fuzz/regressions (each a bug that was fixed), the
//! hand-made PDU seeds, and the fixtures the fuzz corpora start from. A
//! panic here is a regression. fuzz/run.sh runs the fuzzers themselves
//! (nightly); docs/reliability.md has their figures.

mod support;

use std::path::{Path, PathBuf};

use support::*;

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn fixtures() -> Vec<PathBuf> {
    let g = repo_root().join("fixtures/generated");
    let mut v = files(&g);
    v.extend(files(&g.join("imaging")));
    v.retain(|p| p.extension().is_some_and(|x| x == "dcm"));
    assert!(v.len() > 10, "run scripts/setup.sh first");
    v
}

fn replay(target: &str, extra: &[PathBuf], f: fn(&[u8])) -> usize {
    let mut inputs = files(&repo_root().join("fuzz/regressions").join(target));
    inputs.extend(extra.iter().cloned());
    for p in &inputs {
        let data = std::fs::read(p).unwrap();
        f(&data);
        // Every prefix of small inputs too: truncation is the commonest
        // malformation on the wire.
        if data.len() <= 4096 {
            for n in 0..data.len() {
                f(&data[..n]);
            }
        }
    }
    inputs.len()
}

#[test]
fn pdus_and_commands_from_peers() {
    let seeds = files(&repo_root().join("fuzz/seeds/pdu"));
    assert!(replay("pdu", &seeds, fuzzcases::pdu) >= 4);
}

/// The data set part of each fixture, after the file meta group, under
/// each transfer syntax selector (the first byte of a `dataset` or
/// `pixels` input).
fn data_sets(dir: &Path, selectors: u8) -> Vec<PathBuf> {
    let mut sets = Vec::new();
    for (n, f) in fixtures().iter().enumerate() {
        let body = data_set_bytes(f);
        for pick in 0..selectors {
            let p = dir.join(format!("{n}-{pick}"));
            std::fs::write(
                &p,
                [&[pick][..], &body[..body.len().min(64 * 1024)]].concat(),
            )
            .unwrap();
            sets.push(p);
        }
    }
    sets
}

#[test]
fn received_data_sets() {
    let dir = tempfile::tempdir().unwrap();
    assert!(replay("dataset", &data_sets(dir.path(), 4), fuzzcases::dataset) > 40);
}

#[test]
fn received_data_sets_through_the_pixel_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    assert!(replay("pixels", &data_sets(dir.path(), 1), fuzzcases::pixels) > 10);
}
