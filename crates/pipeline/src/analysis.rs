//! One study through one model: inputs from files, findings, and the
//! report objects (SR and heatmap captures) that carry them.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{FileDicomObject, InMemDicomObject};
use infer::{Classifier, Heatmap, Manifest};
use report::{
    Device, HeatmapCapture, ImageRef, ImageResult, LabelResult, ModelInfo, Priority, Report,
    SrClass,
};

use crate::PipelineError;

/// One image through one model.
#[derive(Clone)]
pub struct Analysed {
    /// The instance's attributes (without its pixel data, which is not
    /// needed once decoded), for the report's patient and study modules.
    pub source: InMemDicomObject,
    pub image: ImageRef,
    pub labels: Vec<LabelResult>,
    /// The square the model saw, for heatmap captures: made only when a
    /// label has a heatmap (most images have none: no display to render).
    pub display: Option<imaging::Image8>,
    /// (label, map) for each flagged label with a heatmap.
    pub heatmaps: Vec<(String, Heatmap)>,
}

/// The imaging input spec a manifest names.
pub fn input_spec(m: &Manifest) -> Result<imaging::InputSpec, PipelineError> {
    let size = m.input.size;
    Ok(match m.input.spec.as_str() {
        "xrv" => imaging::InputSpec::Xrv {
            size,
            resize: match m.input.resize.as_str() {
                "skimage" => imaging::Resize::Skimage,
                _ => imaging::Resize::Area,
            },
        },
        "unit" => imaging::InputSpec::Unit { size },
        "imagenet" => {
            let (mean, std) = m.input.normalisation();
            imaging::InputSpec::ImageNet { size, mean, std }
        }
        "ct-window" => imaging::InputSpec::CtWindow {
            windows: m
                .input
                .windows
                .iter()
                .map(|&[center, width]| imaging::CtWindow { center, width })
                .collect(),
            size,
        },
        other => {
            return Err(PipelineError::Model(format!(
                "{}: input.spec '{other}' is unknown",
                m.path.display()
            )))
        }
    })
}

fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    attrs::text(obj, tag).unwrap_or_default()
}

/// The square the model saw, grey, at most 1024 pixels a side.
fn model_view(
    frames: &imaging::Frames,
    spec: &imaging::InputSpec,
) -> Result<imaging::Image8, PipelineError> {
    let full = frames.display(0)?;
    let (top, left, side) = spec.crop(full.height, full.width);
    Ok(full.grey_fitted(top, left, side, side, 1024))
}

/// Run `classifier` on the first frame of the instance in `path`.
pub fn analyse_file(classifier: &Classifier, path: &Path) -> Result<Analysed, PipelineError> {
    let spec = input_spec(&classifier.manifest)?;
    let obj = dicom_object::open_file(path)
        .map_err(|e| PipelineError::Read(format!("{}: {e}", path.display())))?;
    let frames = imaging::Frames::decode(&obj)?;
    let t = spec.apply(&frames, 0)?;
    let x = infer::Batch::image(t.data, t.channels, t.height, t.width)?;
    let prediction = classifier.predict(&x, true)?;
    if let Some(skipped) = prediction.heatmaps_skipped {
        tracing::warn!(
            model = %classifier.manifest.name,
            version = %classifier.manifest.version,
            sop_instance_uid = %text(&obj, tags::SOP_INSTANCE_UID),
            "{skipped}"
        );
    }
    let findings = &prediction.findings[0];
    let heatmaps: Vec<(String, Heatmap)> = findings
        .iter()
        .filter_map(|r| r.heatmap.clone().map(|h| (r.label.clone(), h)))
        .collect();
    let display = (!heatmaps.is_empty())
        .then(|| model_view(&frames, &spec))
        .transpose()?;
    drop(frames);
    let mut source = obj.into_inner();
    source.remove_element(tags::PIXEL_DATA);
    Ok(Analysed {
        image: ImageRef {
            series_uid: text(&source, tags::SERIES_INSTANCE_UID),
            sop_class_uid: text(&source, tags::SOP_CLASS_UID),
            sop_instance_uid: text(&source, tags::SOP_INSTANCE_UID),
        },
        labels: findings
            .iter()
            .map(|r| LabelResult {
                label: r.label.clone(),
                probability: r.probability,
                threshold: r.threshold,
                flagged: r.flagged,
                heatmap: r.heatmap.as_ref().map(|h| h.method.describe()),
            })
            .collect(),
        heatmaps,
        display,
        source,
    })
}

/// The study's priority: urgent if an `urgent` label is flagged, flagged
/// if any label is, routine otherwise.
pub fn priority(images: &[Analysed], urgent: &[String]) -> Priority {
    let flagged: Vec<&str> = images
        .iter()
        .flat_map(|a| {
            a.labels
                .iter()
                .filter(|l| l.flagged)
                .map(|l| l.label.as_str())
        })
        .collect();
    if flagged
        .iter()
        .any(|l| urgent.iter().any(|u| u.eq_ignore_ascii_case(l)))
    {
        Priority::Urgent
    } else if !flagged.is_empty() {
        Priority::Flagged
    } else {
        Priority::Routine
    }
}

/// Now, as DICOM date and time (UTC).
pub fn now() -> (String, String) {
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

/// The SR for a study's analysed images (`evidence`: every image the model
/// read; `images`: those the report states results for) and a heatmap
/// capture per flagged finding, the SR first; and the result the SR states,
/// as data.
pub fn objects(
    study: &str,
    evidence: &[ImageRef],
    images: &[Analysed],
    manifest: &Manifest,
    device: &Device,
    priority: Priority,
    predecessor: Option<ImageRef>,
) -> Result<(Vec<FileDicomObject<InMemDicomObject>>, report::StudyResult), PipelineError> {
    let (date, time) = now();
    let report = Report {
        source: &images[0].source,
        study_uid: study.to_string(),
        evidence: evidence.to_vec(),
        results: images
            .iter()
            .map(|a| ImageResult {
                image: a.image.clone(),
                findings: a.labels.clone(),
            })
            .collect(),
        model: ModelInfo {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            weights_sha256: manifest.sha256.clone(),
            intended_use: manifest.intended_use.clone(),
            validated: manifest.validated,
        },
        priority,
        predecessor,
        device: device.clone(),
        content_date: date.clone(),
        content_time: time.clone(),
    };
    let mut out = vec![report.build(SrClass::Comprehensive3d, 1)?];
    let result = report::StudyResult::of(&report, SrClass::Comprehensive3d);
    let mut n = 0;
    for a in images {
        // (None only where there is no heatmap.)
        let Some(display) = &a.display else { continue };
        for (label, heat) in &a.heatmaps {
            n += 1;
            let rgb = imaging::overlay(display, &heat.values, heat.height, heat.width, 0.5)?;
            out.push(
                HeatmapCapture {
                    source: &a.source,
                    study_uid: study.to_string(),
                    image: a.image.clone(),
                    finding: label.clone(),
                    method: heat.method.describe(),
                    model_name: manifest.name.clone(),
                    model_version: manifest.version.clone(),
                    device: device.clone(),
                    columns: rgb.width,
                    rows: rgb.height,
                    rgb: rgb.data,
                    content_date: date.clone(),
                    content_time: time.clone(),
                }
                .build(n)?,
            );
        }
    }
    Ok((out, result))
}
