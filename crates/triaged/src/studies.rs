//! `triaged studies list`.

use std::process::ExitCode;

use archive::Archive;

use daemon::config::Config;

pub async fn list(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let reader = Archive::open_read_only(&crate::archive_options(config)?).await?;
    let studies = reader.studies().await?;
    reader.close().await;
    if json {
        println!("{}", serde_json::to_string_pretty(&studies)?);
        return Ok(ExitCode::SUCCESS);
    }
    if studies.is_empty() {
        println!("no studies in {}", config.storage.dir.display());
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<64}  {:>9}  {:<10}  {:<24}  {:<14}  {:<8}  FINDINGS",
        "STUDY INSTANCE UID", "INSTANCES", "MODALITIES", "RECEIVED", "STATUS", "PRIORITY"
    );
    for s in studies {
        println!(
            "{:<64}  {:>9}  {:<10}  {:<24}  {:<14}  {:<8}  {}",
            s.study_instance_uid,
            s.instances,
            s.modalities.join(","),
            s.received_at,
            state(&s),
            s.priority.as_deref().unwrap_or("-"),
            s.findings.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The job state, and whether retention keeps or has deleted the images.
fn state(s: &archive::StudySummary) -> String {
    let mut state = s.status.clone().unwrap_or_else(|| "waiting".into());
    if s.held_at.is_some() {
        state += ",held";
    }
    if s.purged_at.is_some() && s.instances == 0 {
        state += ",purged";
    }
    state
}
