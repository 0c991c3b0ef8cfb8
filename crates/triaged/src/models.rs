//! `triaged models list|check|activate|shadow|disable|compare`.

use std::process::ExitCode;

use archive::{ArchiveReader, ModelState, ModelStateRow};
use daemon::models::{described, lifecycle_problems, load_all, manifests, valid_manifests};
use daemon::Config;
use infer::{Classifier, Manifest};
use pipeline::lifecycle;

/// The states an admin set, or none when the daemon has not yet made its
/// database.
async fn state_rows(config: &Config) -> anyhow::Result<Vec<ModelStateRow>> {
    if config.database.backend() == archive::Backend::Sqlite
        && config.database.url.is_none()
        && !config.storage.dir.join(archive::DATABASE_FILE).exists()
    {
        return Ok(Vec::new());
    }
    let states = ArchiveReader::models(&crate::archive_options(config)?).await?;
    Ok(states.list().await?)
}

pub async fn list(config: &Config) -> anyhow::Result<ExitCode> {
    let found = manifests(config)?;
    if found.is_empty() {
        println!(
            "no models in {} (each model is a folder with a model.toml)",
            config.models.dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows = state_rows(config).await?;
    let mut ok = true;
    for path in found {
        match Manifest::load(&path) {
            Ok(m) => println!(
                "{:<8} {} {} ({}, {} {}x{}): {} labels{}, {}{}{}",
                lifecycle::state(&rows, &m).as_str(),
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
                },
                rows.iter()
                    .find(|r| r.model == m.name && r.version == m.version)
                    .map(|r| format!(" [set by {} at {}]", r.changed_by, r.changed_at))
                    .unwrap_or_default()
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

pub async fn check(config: &Config) -> anyhow::Result<ExitCode> {
    let found = load_all(config)?;
    let rows = state_rows(config).await?;
    let mut failures = 0;
    for (path, result) in &found {
        match result {
            Ok(c) => println!(
                "{} {} ({}): OK (weights verified, test pass run)",
                c.manifest.name,
                c.manifest.version,
                path.display()
            ),
            Err(e) => {
                failures += 1;
                println!("{}: FAILED: {e}", described(path));
            }
        }
    }
    let loaded: Vec<&Manifest> = found
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|c| &c.manifest))
        .collect();
    for p in lifecycle_problems(&loaded, &rows) {
        failures += 1;
        println!("FAILED: {p}");
    }
    println!("{} model(s) checked, {failures} failed", found.len());
    Ok(if failures == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Who changes a state from the command line.
/// `triaged models activate|shadow|disable NAME VERSION`: the version is
/// verified (weights, a test pass) before it is put to work; the running
/// daemon applies the change to the next study.
pub async fn set_state(
    config: &Config,
    name: &str,
    version: &str,
    state: ModelState,
) -> anyhow::Result<ExitCode> {
    let manifests = valid_manifests(config)?;
    let refs: Vec<&Manifest> = manifests.iter().collect();
    let m = lifecycle::find(&refs, name, version)?;
    if state != ModelState::Disabled {
        Classifier::load_on_cpu(m.clone(), config.models.load_options())
            .map_err(|e| anyhow::anyhow!("{name} {version} cannot run, state unchanged: {e}"))?;
    }
    let store = ArchiveReader::models(&crate::archive_options(config)?).await?;
    let changes = lifecycle::set(
        &store,
        &refs,
        name,
        version,
        state,
        &crate::audit_cmd::cli_user(),
    )
    .await;
    crate::audit_cmd::record(
        config,
        archive::AuditAction::ModelState,
        None,
        Some(format!("{name} {version} {state}")),
        changes.is_ok(),
    )
    .await?;
    let changes = changes?;
    if changes.is_empty() {
        println!("{name} {version} is already {state}");
    }
    for c in changes {
        println!("{name} {}: {} -> {}", c.version, c.previous, c.state);
    }
    println!("the running daemon applies this from the next study");
    Ok(ExitCode::SUCCESS)
}

/// `triaged models compare NAME`: each version's findings, label by
/// label, against the active version on the same studies and against the
/// radiologists' verdicts.
pub async fn compare(config: &Config, name: &str, json: bool) -> anyhow::Result<ExitCode> {
    let rows = ArchiveReader::models(&crate::archive_options(config)?)
        .await?
        .compare(name)
        .await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("no findings of a model named {name}");
        return Ok(ExitCode::SUCCESS);
    }
    let ratio = |n: i64, d: i64| {
        if d == 0 {
            "-".to_string()
        } else {
            format!("{n}/{d} ({:.0} %)", 100.0 * n as f64 / d as f64)
        }
    };
    println!(
        "{:<10} {:<7} {:<24} {:>6} {:>8}  {:<18} {:<18} {:<18}",
        "VERSION",
        "MODE",
        "LABEL",
        "JOBS",
        "FLAGGED",
        "AGREES WITH ACTIVE",
        "SENSITIVITY*",
        "SPECIFICITY*"
    );
    for r in &rows {
        println!(
            "{:<10} {:<7} {:<24} {:>6} {:>8}  {:<18} {:<18} {:<18}",
            r.version,
            if r.shadow { "shadow" } else { "active" },
            r.label,
            r.jobs,
            r.flagged,
            if r.shadow {
                ratio(r.agreed, r.compared)
            } else {
                "(reference)".into()
            },
            ratio(r.present_flagged, r.present),
            ratio(r.absent_clear, r.absent),
        );
    }
    println!("* on the studies a radiologist gave a verdict on the active version's finding");
    Ok(ExitCode::SUCCESS)
}
