//! `triaged analyze FILE...`: run a model on DICOM files now and write
//! (or send) the structured report and heatmap captures the daemon would
//! send, one report per study. For checking a model on a case, and for
//! integration tests of a PACS's handling of the results.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use dicom_dictionary_std::tags;
use infer::{Classifier, Manifest};
use pipeline::analysis::{self, Analysed};

use daemon::config::Config;

#[derive(Debug, Clone, clap::Args)]
pub struct AnalyzeArgs {
    /// DICOM files (any mix of studies).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The model folder (with model.toml).
    #[arg(long, default_value = "models/demo-cxr")]
    pub model: PathBuf,
    /// Write the SR and heatmap captures here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Send them to this configured destination.
    #[arg(long)]
    pub send: Option<String>,
    /// Print the results as JSON (one array, an entry per file, every
    /// probability at full precision) instead of text.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(config: &Config, args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::load(&args.model.join("model.toml"))?;
    // The daemon's backend, so a case checked here scores as it will there.
    let classifier = Classifier::load_on_cpu(manifest, config.models.load_options())?;
    let mut studies: BTreeMap<String, Vec<Analysed>> = BTreeMap::new();
    let mut json = Vec::new();
    for f in &args.files {
        let a = analysis::analyse_file(&classifier, f)?;
        let study = attrs::text(&a.source, tags::STUDY_INSTANCE_UID).unwrap_or_default();
        if args.json {
            json.push(serde_json::json!({
                "file": f,
                "study_instance_uid": study,
                "sop_instance_uid": a.image.sop_instance_uid,
                "labels": a.labels.iter().map(|r| serde_json::json!({
                    "label": r.label,
                    "probability": r.probability,
                    "threshold": r.threshold,
                    "flagged": r.flagged,
                })).collect::<Vec<_>>(),
            }));
        } else {
            println!("{}:", f.display());
            for r in &a.labels {
                println!(
                    "  {:<16} {:.6} (threshold {:.6}){}",
                    r.label,
                    r.probability,
                    r.threshold,
                    if r.flagged { "  FLAGGED" } else { "" }
                );
            }
        }
        studies.entry(study).or_default().push(a);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    if args.out.is_none() && args.send.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    let device = daemon::serve::device(config);
    let mut written = Vec::new();
    let dir = args.out.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&dir)?;
    for (study, images) in &studies {
        let priority = analysis::priority(images, &config.pipeline.urgent_labels);
        let evidence: Vec<_> = images.iter().map(|a| a.image.clone()).collect();
        for o in analysis::objects(
            study,
            &evidence,
            images,
            &classifier.manifest,
            &device,
            priority,
            None,
        )?
        .0
        {
            let uid = o
                .meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0')
                .to_string();
            let path = dir.join(format!("{uid}.dcm"));
            o.write_to_file(&path)?;
            // stdout stays one JSON document with --json.
            if args.json {
                eprintln!("wrote {}", path.display());
            } else {
                println!("wrote {}", path.display());
            }
            written.push(path);
        }
    }
    if let Some(to) = &args.send {
        return crate::outbox_cmd::send(config, to, &written).await;
    }
    Ok(ExitCode::SUCCESS)
}
