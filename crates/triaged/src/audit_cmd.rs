//! `triaged audit export`, and the audit events of the CLI's own actions.

use std::io::Write;
use std::process::ExitCode;

use archive::{ArchiveReader, AuditAction, AuditOutcome, AuditRole, NewAuditEvent};
use daemon::config::Config;

/// Who runs the CLI, as the audit trail and model states name them.
pub fn cli_user() -> String {
    match std::env::var("USER") {
        Ok(u) if !u.is_empty() => format!("cli:{u}"),
        _ => "cli".into(),
    }
}

/// Record one of the CLI's actions in the audit trail.
pub async fn record(
    config: &Config,
    action: AuditAction,
    study: Option<&str>,
    object: Option<String>,
    ok: bool,
) -> anyhow::Result<()> {
    let audit = ArchiveReader::audit(&crate::archive_options(config)?).await?;
    audit
        .record(&NewAuditEvent {
            user: cli_user(),
            role: AuditRole::Cli,
            action,
            study_instance_uid: study.map(str::to_string),
            object,
            outcome: if ok {
                AuditOutcome::Ok
            } else {
                AuditOutcome::Failed
            },
            address: None,
        })
        .await?;
    Ok(())
}

/// Every audit event from `since` (and before `until`), oldest first, as
/// JSON lines on standard output.
pub async fn export(
    config: &Config,
    since: Option<&str>,
    until: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let audit = ArchiveReader::audit(&crate::archive_options(config)?).await?;
    // The export is itself an access to the trail: recorded first, so it
    // is in its own output when the range includes now.
    record(
        config,
        AuditAction::AuditExport,
        None,
        Some(format!("since {}", since.unwrap_or("the start"))),
        true,
    )
    .await?;
    let mut out = std::io::stdout().lock();
    let mut after = 0;
    loop {
        let page = audit.page(since, until, after, 1000).await?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.id;
        for e in &page {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
