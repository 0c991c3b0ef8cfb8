//! `triaged retention run` and `triaged studies hold|release`.

use std::process::ExitCode;

use archive::{Archive, RetentionRun};
use daemon::config::Config;

/// Apply `[retention]` now, or (`dry_run`) show what it would delete.
pub async fn run(config: &Config, dry_run: bool, json: bool) -> anyhow::Result<ExitCode> {
    let Some(policy) = config.retention.policy() else {
        anyhow::bail!("retention is off ([retention] enabled = false): nothing would be deleted");
    };
    let options = crate::archive_options(config)?;
    let run = if dry_run {
        // Beside a running daemon: its own connection, nothing deleted.
        let retention = archive::ArchiveReader::retention(&options).await?;
        retention.run(&policy, true).await?
    } else {
        // Deleting needs the storage folder to itself, so that no instance
        // of a study being purged can be arriving at that moment.
        let archive = Archive::open(options).await.map_err(|e| {
            anyhow::anyhow!(
                "{e}\n(a running daemon applies [retention] itself every interval_secs \
                 and above the high watermark; `triaged retention run --dry-run` shows what would go)"
            )
        })?;
        let run = archive.retention().run(&policy, false).await;
        let object = run
            .as_ref()
            .map(|r| {
                format!(
                    "{} studies purged, {} forgotten",
                    r.purged.len(),
                    r.forgotten.len()
                )
            })
            .ok();
        let record = archive
            .audit()
            .record(&archive::NewAuditEvent {
                user: crate::audit_cmd::cli_user(),
                role: archive::AuditRole::Cli,
                action: archive::AuditAction::RetentionRun,
                study_instance_uid: None,
                object,
                outcome: match run.is_ok() {
                    true => archive::AuditOutcome::Ok,
                    false => archive::AuditOutcome::Failed,
                },
                address: None,
            })
            .await;
        archive.close().await;
        record?;
        run?
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print!("{}", table(&run));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(run: &RetentionRun) -> String {
    let verb = if run.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let mut s = String::new();
    if !run.purged.is_empty() {
        s += &format!(
            "{:<64}  {:<24}  {:>9}  {:>12}  REASON\n",
            "STUDY INSTANCE UID", "SETTLED", "INSTANCES", "BYTES"
        );
        for p in &run.purged {
            s += &format!(
                "{:<64}  {:<24}  {:>9}  {:>12}  {}\n",
                p.study.study_instance_uid,
                p.study.settled_at,
                p.study.instances,
                p.study.bytes,
                p.reason.as_str()
            );
        }
    }
    for uid in &run.forgotten {
        s += &format!("{uid}: results forgotten (keep_results_days)\n");
    }
    s += &format!(
        "{verb} {} instances of {} studies ({} bytes); results of {} studies forgotten; storage {:.1} % used -> {:.1} %\n",
        run.instances(),
        run.purged.len(),
        run.bytes(),
        run.forgotten.len(),
        run.used_before * 100.0,
        run.used_after * 100.0
    );
    s
}

/// Keep a study's instances whatever `[retention]` says.
pub async fn hold(config: &Config, study: &str, reason: &str) -> anyhow::Result<ExitCode> {
    let retention = archive::ArchiveReader::retention(&crate::archive_options(config)?).await?;
    let held = retention
        .hold(study, &crate::audit_cmd::cli_user(), reason)
        .await?;
    crate::audit_cmd::record(
        config,
        archive::AuditAction::StudyHold,
        Some(study),
        None,
        held,
    )
    .await?;
    if !held {
        anyhow::bail!("no study {study} in {}", config.storage.dir.display());
    }
    println!("study {study} held: retention will not delete it until `triaged studies release`");
    Ok(ExitCode::SUCCESS)
}

/// Let `[retention]` apply to a held study again.
pub async fn release(config: &Config, study: &str) -> anyhow::Result<ExitCode> {
    let retention = archive::ArchiveReader::retention(&crate::archive_options(config)?).await?;
    let released = retention.release(study).await?;
    crate::audit_cmd::record(
        config,
        archive::AuditAction::StudyRelease,
        Some(study),
        None,
        released,
    )
    .await?;
    if !released {
        anyhow::bail!("no study {study} in {}", config.storage.dir.display());
    }
    println!("study {study} released: retention applies to it again");
    Ok(ExitCode::SUCCESS)
}
