//! `triaged models list|check`.

use std::process::ExitCode;

use infer::{Classifier, Manifest};

use crate::config::Config;

/// Every model in `[models] dir`, loaded as the daemon loads it (manifest,
/// weights checksum, tensors, a warm-up pass), or why it would not load.
pub fn load_all(
    config: &Config,
) -> anyhow::Result<Vec<(std::path::PathBuf, anyhow::Result<Classifier>)>> {
    Ok(manifests(config)?
        .into_iter()
        .map(|path| {
            let loaded = Manifest::load(&path)
                .map_err(anyhow::Error::from)
                .and_then(|m| {
                    Classifier::load_with(m, &candle_core::Device::Cpu, config.models.backend)
                        .map_err(anyhow::Error::from)
                });
            (path, loaded)
        })
        .collect())
}

fn manifests(config: &Config) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let dir = &config.models.dir;
    if !dir.is_dir() {
        anyhow::bail!("models.dir: {} is not a folder", dir.display());
    }
    Ok(infer::manifest::discover(dir)?)
}

pub fn list(config: &Config) -> anyhow::Result<ExitCode> {
    let found = manifests(config)?;
    if found.is_empty() {
        println!(
            "no models in {} (each model is a folder with a model.toml)",
            config.models.dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut ok = true;
    for path in found {
        match Manifest::load(&path) {
            Ok(m) => println!(
                "{} {} ({}, {} {}x{}): {} labels{}, {}{}",
                m.name,
                m.version,
                m.architecture,
                m.input.spec,
                m.input.size,
                m.input.size,
                m.reported().len(),
                if m.not_predicted.is_empty() {
                    String::new()
                } else {
                    format!(" (not predicted: {})", m.not_predicted.join(", "))
                },
                if m.validated {
                    "validated"
                } else {
                    "NOT validated"
                },
                if m.intended_use.is_empty() {
                    String::new()
                } else {
                    format!(" - {}", m.intended_use)
                }
            ),
            Err(e) => {
                ok = false;
                println!("{}: INVALID: {e}", path.display());
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let found = load_all(config)?;
    let mut failures = 0;
    for (path, result) in &found {
        match result {
            Ok(c) => println!(
                "{} {}: OK (weights verified, test pass run)",
                c.manifest.name, c.manifest.version
            ),
            Err(e) => {
                failures += 1;
                println!("{}: FAILED: {e}", path.display());
            }
        }
    }
    println!("{} model(s) checked, {failures} failed", found.len());
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
