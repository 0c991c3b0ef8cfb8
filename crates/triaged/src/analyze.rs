//! `triaged analyze FILE...`: run a model on DICOM files now and write
//! (or send) the structured report and heatmap captures the daemon would
//! send, one report per study. For checking a model on a case, and for
//! integration tests of a PACS's handling of the results.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use candle_core::{Device as CandleDevice, Tensor};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use infer::{Classifier, Manifest};
use report::{
    Device, HeatmapCapture, ImageRef, ImageResult, LabelResult, ModelInfo, Priority, Report,
    SrClass,
};

use crate::config::Config;

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
}

/// Labels whose presence makes a study urgent (until routing rules set
/// urgency per label).
const URGENT: [&str; 1] = ["Pneumothorax"];

/// This daemon as the observer of its reports: the device UID is derived
/// from the AE title, so it is stable across restarts and upgrades.
pub fn device(config: &Config) -> Device {
    Device {
        manufacturer: "triaged project".into(),
        name: "triaged".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uid: report::uid_from(&["device", &config.dicom.ae_title]),
    }
}

struct Analysed {
    source: InMemDicomObject,
    image: ImageRef,
    labels: Vec<LabelResult>,
    display: imaging::Image8,
    heatmaps: Vec<(String, usize, usize, Vec<f32>)>,
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches('\0').trim().to_string())
        .unwrap_or_default()
}

/// The centre square the model saw, as an RGB display image of at most
/// 1024 pixels a side.
fn model_view(frames: &imaging::Frames) -> anyhow::Result<imaging::Image8> {
    let full = frames.display(0)?;
    let (top, left, side) = imaging::centre_crop(full.height, full.width);
    let c = full.channels;
    let mut grey = Vec::with_capacity(side * side);
    for y in top..top + side {
        for x in left..left + side {
            let p = &full.data[c * (y * full.width + x)..c * (y * full.width + x) + c];
            grey.push(p.iter().map(|&v| v as f32).sum::<f32>() / c as f32);
        }
    }
    let out = side.min(1024);
    let small = imaging::area_resize(&grey, side, side, out, out);
    Ok(imaging::Image8 {
        width: out,
        height: out,
        channels: 1,
        data: small
            .iter()
            .map(|v| v.round().clamp(0.0, 255.0) as u8)
            .collect(),
    })
}

pub async fn run(config: &Config, args: &AnalyzeArgs) -> anyhow::Result<ExitCode> {
    let manifest = Manifest::load(&args.model.join("model.toml"))?;
    let classifier = Classifier::load(manifest, &CandleDevice::Cpu)?;
    let m = &classifier.manifest;
    let spec = crate::models::input_spec(m)?;
    let mut studies: BTreeMap<String, Vec<Analysed>> = BTreeMap::new();
    for f in &args.files {
        let obj =
            dicom_object::open_file(f).map_err(|e| anyhow::anyhow!("{}: {e}", f.display()))?;
        let frames = imaging::Frames::decode(&obj)?;
        let t = spec.apply(&frames, 0)?;
        let x = Tensor::from_vec(
            t.data,
            (1, t.channels, t.height, t.width),
            &CandleDevice::Cpu,
        )?;
        let prediction = classifier.predict(&x, true)?;
        let findings = &prediction.findings[0];
        println!("{}:", f.display());
        for r in findings {
            println!(
                "  {:<16} {:.3} (threshold {:.3}){}",
                r.label,
                r.probability,
                r.threshold,
                if r.flagged { "  FLAGGED" } else { "" }
            );
        }
        let source = obj.into_inner();
        let image = ImageRef {
            series_uid: text(&source, tags::SERIES_INSTANCE_UID),
            sop_class_uid: text(&source, tags::SOP_CLASS_UID),
            sop_instance_uid: text(&source, tags::SOP_INSTANCE_UID),
        };
        studies
            .entry(text(&source, tags::STUDY_INSTANCE_UID))
            .or_default()
            .push(Analysed {
                labels: findings
                    .iter()
                    .map(|r| LabelResult {
                        label: r.label.clone(),
                        probability: r.probability,
                        threshold: r.threshold,
                        flagged: r.flagged,
                    })
                    .collect(),
                heatmaps: findings
                    .iter()
                    .filter_map(|r| {
                        r.heatmap
                            .clone()
                            .map(|(h, w, v)| (r.label.clone(), h, w, v))
                    })
                    .collect(),
                display: model_view(&frames)?,
                source,
                image,
            });
    }
    if args.out.is_none() && args.send.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    let now = chrono_now();
    let device = device(config);
    let model = ModelInfo {
        name: m.name.clone(),
        version: m.version.clone(),
        weights_sha256: m.sha256.clone(),
        intended_use: m.intended_use.clone(),
        validated: m.validated,
    };
    let mut written = Vec::new();
    for (study, images) in &studies {
        let flagged: Vec<&str> = images
            .iter()
            .flat_map(|a| {
                a.labels
                    .iter()
                    .filter(|l| l.flagged)
                    .map(|l| l.label.as_str())
            })
            .collect();
        let priority = if flagged.iter().any(|l| URGENT.contains(l)) {
            Priority::Urgent
        } else if !flagged.is_empty() {
            Priority::Flagged
        } else {
            Priority::Routine
        };
        let report = Report {
            source: &images[0].source,
            study_uid: study.clone(),
            evidence: images.iter().map(|a| a.image.clone()).collect(),
            results: images
                .iter()
                .map(|a| ImageResult {
                    image: a.image.clone(),
                    findings: a.labels.clone(),
                })
                .collect(),
            model: model.clone(),
            priority,
            predecessor: None,
            device: device.clone(),
            content_date: now.0.clone(),
            content_time: now.1.clone(),
        };
        let mut objects = vec![report.build(SrClass::Comprehensive3d, 1)?];
        for a in images {
            for (n, (label, h, w, heat)) in a.heatmaps.iter().enumerate() {
                let rgb = imaging::overlay(&a.display, heat, *h, *w, 0.5)?;
                objects.push(
                    HeatmapCapture {
                        source: &a.source,
                        study_uid: study.clone(),
                        image: a.image.clone(),
                        finding: label.clone(),
                        model_name: m.name.clone(),
                        model_version: m.version.clone(),
                        device: device.clone(),
                        columns: rgb.width,
                        rows: rgb.height,
                        rgb: rgb.data,
                        content_date: now.0.clone(),
                        content_time: now.1.clone(),
                    }
                    .build(n as u32 + 1)?,
                );
            }
        }
        let dir = args.out.clone().unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&dir)?;
        for o in objects {
            let uid = o
                .meta()
                .media_storage_sop_instance_uid()
                .trim_end_matches('\0')
                .to_string();
            let path = dir.join(format!("{uid}.dcm"));
            o.write_to_file(&path)?;
            println!("wrote {}", path.display());
            written.push(path);
        }
    }
    if let Some(to) = &args.send {
        return crate::outbox_cmd::send(config, to, &written).await;
    }
    Ok(ExitCode::SUCCESS)
}

/// Now, as DICOM date and time (UTC).
fn chrono_now() -> (String, String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + (mo <= 2) as i64;
    (
        format!("{y:04}{mo:02}{d:02}"),
        format!("{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60),
    )
}
