//! `triaged export`: a study's instances and reports copied to a folder,
//! de-identified with `--deidentify`.

use std::path::PathBuf;
use std::process::ExitCode;

use archive::{Archive, AuditAction};
use daemon::config::Config;
use deid::{Deidentifier, Key};

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The study's Study Instance UID.
    #[arg(long)]
    study: String,
    /// Where to write `<SOP Instance UID>.dcm` files (a new or empty folder).
    #[arg(long)]
    out: PathBuf,
    /// Apply DICOM PS3.15's Basic Application Level Confidentiality
    /// Profile: identifying attributes removed or replaced, UIDs replaced
    /// consistently, private attributes removed; images flagged with
    /// burned-in annotation are refused.
    #[arg(long)]
    deidentify: bool,
    /// With --deidentify: remove dates (the Basic Profile) or shift them
    /// by a number of days fixed per patient (the Modified Dates Option).
    #[arg(long, value_enum, default_value_t = DatesArg::Remove, requires = "deidentify")]
    dates: DatesArg,
    /// With --deidentify: the key new UIDs, pseudonyms and date shifts
    /// derive from (64 hex digits; made if the file does not exist).
    /// Exports under one key share pseudonyms and UIDs, and match what a
    /// de-identifying destination with that key received. Without it,
    /// each export has a fresh key and cannot be linked to any other.
    #[arg(long, requires = "deidentify")]
    key_file: Option<PathBuf>,
    /// With --deidentify: the key and date option of the de-identifying
    /// destination NAME, so the export's UIDs and pseudonyms match the
    /// reports that destination received.
    #[arg(long, value_name = "NAME", requires = "deidentify", conflicts_with_all = ["key_file", "dates"])]
    as_destination: Option<String>,
    /// Print what was written and refused as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum DatesArg {
    Remove,
    Shift,
}

/// Exit status when some files were refused (the others are written).
const PARTIAL: u8 = 2;

pub async fn run(config: &Config, args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let deid = match (args.deidentify, &args.as_destination) {
        (false, _) => None,
        (true, Some(name)) => {
            let dest = config.named_destination(name)?;
            match dest.deidentifier(&config.storage.dir)? {
                Some(d) => Some(d),
                None => {
                    anyhow::bail!("destination '{name}' does not de-identify (deidentify = false)")
                }
            }
        }
        (true, None) => {
            let key = match &args.key_file {
                Some(path) => Key::read_or_create(path)?,
                None => Key::random()?,
            };
            let dates = match args.dates {
                DatesArg::Remove => deid::Dates::Remove,
                DatesArg::Shift => deid::Dates::Shift,
            };
            Some(Deidentifier::new(key, dates))
        }
    };
    let reader = Archive::open_read_only(&crate::archive_options(config)?).await?;
    let files = reader.study_files(&args.study).await;
    reader.close().await;
    let Some(files) = files? else {
        anyhow::bail!(
            "no study {} in {}",
            args.study,
            config.storage.dir.display()
        );
    };
    if files.instances.is_empty() {
        if let Some(at) = &files.purged_at {
            anyhow::bail!(
                "study {}: its instances were deleted by retention at {at}; nothing to export",
                args.study
            );
        }
    }
    let sources: Vec<(PathBuf, deid::Source)> = files
        .instances
        .into_iter()
        .map(|f| (f, deid::Source::Received))
        .chain(
            files
                .reports
                .into_iter()
                .map(|f| (f, deid::Source::Triaged)),
        )
        .collect();
    let (out, deid_ref) = (args.out.clone(), deid.clone());
    let done = tokio::task::spawn_blocking(move || {
        daemon::export::export(&sources, &out, deid_ref.as_ref())
    })
    .await?;
    let what = match &deid {
        Some(d) => format!("de-identified (dates {:?})", d.dates()).to_lowercase(),
        None => "as received".to_string(),
    };
    let object = match &done {
        Ok(d) => format!(
            "{what}, {} files, {} refused",
            d.written.len(),
            d.refused.len()
        ),
        Err(e) => format!("{what}: {e}"),
    };
    crate::audit_cmd::record(
        config,
        AuditAction::StudyExport,
        Some(&args.study),
        Some(object),
        done.is_ok(),
    )
    .await?;
    let done = done?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&done)?);
    } else {
        println!(
            "exported {} files of study {} to {}, {what}",
            done.written.len(),
            args.study,
            args.out.display()
        );
        for r in &done.refused {
            eprintln!(
                "refused {} ({}): {}",
                r.sop_instance_uid.as_deref().unwrap_or("?"),
                r.file.display(),
                r.reason
            );
        }
    }
    Ok(match done.refused.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(PARTIAL),
    })
}
