//! `triaged send`, `triaged outbox list|add|retry`: results and their
//! delivery, from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

use archive::{ArchiveReader, NewObject};

use daemon::config::{Config, DestinationConfig, DestinationKind};
use daemon::deliver::{self, Outcome};

/// The DICOM destination `name`: files go by C-STORE; HL7, FHIR and
/// webhook messages are built by the daemon from its own analyses.
fn dicom_destination<'a>(config: &'a Config, name: &str) -> anyhow::Result<&'a DestinationConfig> {
    let d = config.named_destination(name)?;
    if d.kind != DestinationKind::Dicom {
        anyhow::bail!(
            "destination '{name}' is of kind {}: files go to DICOM destinations only (the daemon sends {} messages for the studies it analyses)",
            d.kind.as_str(),
            d.kind.as_str()
        );
    }
    Ok(d)
}

/// `triaged send --to DEST FILE...`: C-STORE the files now, one
/// association, and print each status.
pub async fn send(config: &Config, to: &str, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let dest = dicom_destination(config, to)?;
    let deid = deliver::deidentifier(&config.storage.dir, dest)?;
    let mut items = Vec::new();
    for f in files {
        items.push(deliver::load_for(
            f,
            deid.as_ref(),
            deid::Source::Received,
            &dest.name,
        )?);
    }
    let outcomes = deliver::send(&config.scu_settings(), &dest.peer(), &items).await;
    let mut failed = 0;
    for (f, o) in files.iter().zip(outcomes) {
        match o {
            Outcome::Delivered { status, note } => {
                println!(
                    "{}: stored ({status}){}",
                    f.display(),
                    note.map(|n| format!("; {n}")).unwrap_or_default()
                )
            }
            Outcome::Failed { error, .. } => {
                failed += 1;
                println!("{}: FAILED: {error}", f.display());
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `triaged outbox add --to DEST FILE...`: queue files for the daemon to
/// deliver, with retries, surviving restarts.
pub async fn add(config: &Config, to: &[String], files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    for name in to {
        dicom_destination(config, name)?;
    }
    let outbox = ArchiveReader::outbox(&crate::archive_options(config)?).await?;
    for f in files {
        let o = deliver::load(f)?;
        let study = attrs::text(&o.dataset, dicom_dictionary_std::tags::STUDY_INSTANCE_UID)
            .unwrap_or_default();
        outbox
            .add(
                &NewObject {
                    sop_instance_uid: o.sop_instance_uid.clone(),
                    sop_class_uid: o.sop_class_uid.clone(),
                    study_instance_uid: study.clone(),
                    file: std::fs::read(f)?,
                },
                to,
            )
            .await?;
        crate::audit_cmd::record(
            config,
            archive::AuditAction::OutboxAdd,
            Some(study.as_str()),
            Some(format!("{} to {}", o.sop_instance_uid, to.join(","))),
            true,
        )
        .await?;
        println!("{}: queued for {}", f.display(), to.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let outbox = ArchiveReader::outbox(&crate::archive_options(config)?).await?;
    let rows = outbox.list().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        println!("the outbox is empty");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:>6}  {:<10} {:<12} {:<7} {:>8}  {:<46} {:<24} LAST ERROR",
        "ID", "STATE", "DESTINATION", "KIND", "ATTEMPTS", "SOP INSTANCE UID", "NEXT ATTEMPT"
    );
    for r in rows {
        println!(
            "{:>6}  {:<10} {:<12} {:<7} {:>8}  {:<46} {:<24} {}",
            r.id,
            r.state,
            r.destination,
            config
                .destination(&r.destination)
                .map_or("-", |d| d.kind.as_str()),
            r.attempts,
            r.sop_instance_uid,
            if r.state == archive::DeliveryState::Pending {
                r.next_attempt_at.as_str()
            } else {
                "-"
            },
            r.last_error.unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn retry(config: &Config, id: i64) -> anyhow::Result<ExitCode> {
    let outbox = ArchiveReader::outbox(&crate::archive_options(config)?).await?;
    let retried = outbox.retry(id).await?;
    crate::audit_cmd::record(
        config,
        archive::AuditAction::OutboxRetry,
        None,
        Some(id.to_string()),
        retried,
    )
    .await?;
    if retried {
        println!("outbox row {id} will be retried now");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("no pending or dead outbox row {id}");
        Ok(ExitCode::FAILURE)
    }
}
