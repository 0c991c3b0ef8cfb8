//! `triaged evaluate`: a model against a labelled data set (a folder of
//! DICOM or PNG files and a CSV of labels): AUROC with bootstrap
//! intervals, operating-point metrics, calibration, per-grade and
//! per-subgroup tables, as JSON and PNG plots; heatmap localisation
//! (the pointing game) where masks lie beside the images, as
//! `triaged phantom --masks` writes them (`<stem>-<label>.png`).

use std::path::{Path, PathBuf};

use evaluate::tables::{localisation_table, subgroup_table, summary_tables};
use evaluate::{Sample, Setup};
use infer::{Batch, Classifier, LoadOptions, Manifest};

use crate::{ensure, LabError};

#[derive(Debug, Clone, clap::Args)]
pub struct EvaluateArgs {
    /// The model folder (with model.toml).
    #[arg(long, default_value = "models/demo-cxr")]
    pub model: PathBuf,
    /// The data folder; file paths in the CSV are relative to it.
    #[arg(long)]
    pub data: PathBuf,
    /// The labels CSV (default: <data>/labels.csv). Columns: `file` (an
    /// image) or `folder` (a study: its series read and aggregated as the
    /// daemon does), one 0/1 column per model label (blank: unknown;
    /// matched ignoring case, with `_` for spaces), optional
    /// `<label>_grade`, and subgroup columns (sex, age, manufacturer, view
    /// ...).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// Where to write evaluation.json, roc.png and reliability.png
    /// (default: <data>/evaluation).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Bootstrap resamples for the 95 % intervals.
    #[arg(long, default_value_t = 1000)]
    pub bootstrap: usize,
    /// Only these columns are subgroups (default: every other column).
    #[arg(long, value_delimiter = ',')]
    pub subgroups: Vec<String>,
    /// Studies: at most this many images of a series are read, evenly
    /// spaced, as `pipeline.max_images_per_series` (0: all).
    #[arg(long, default_value_t = pipeline::DEFAULT_MAX_IMAGES_PER_SERIES)]
    pub max_images_per_series: usize,
}

/// A column name or label as compared: lower case, `_` for anything
/// other than a letter or digit.
fn column_key(name: &str) -> String {
    name.trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect()
}

/// One row of the labels CSV.
struct Row {
    file: PathBuf,
    truth: Vec<Option<bool>>,
    grades: Vec<Option<String>>,
    groups: Vec<(String, String)>,
}

fn read_csv(
    path: &Path,
    data: &Path,
    labels: &[String],
    only: &[String],
) -> Result<Vec<Row>, LabError> {
    let mut reader = csv::Reader::from_path(path)
        .map_err(|e| LabError::Invalid(format!("{}: {e}", path.display())))?;
    let header: Vec<String> = reader
        .headers()?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| column_key(h) == column_key(name))
    };
    let file = col("file").or_else(|| col("folder")).ok_or_else(|| {
        LabError::Invalid(format!(
            "{}: no `file` (or `folder`) column",
            path.display()
        ))
    })?;
    let label_cols: Vec<Option<usize>> = labels.iter().map(|l| col(l)).collect();
    ensure!(
        label_cols.iter().any(|c| c.is_some()),
        "{}: none of the model's labels ({}) is a column",
        path.display(),
        labels.join(", ")
    );
    let grade_cols: Vec<Option<usize>> =
        labels.iter().map(|l| col(&format!("{l}_grade"))).collect();
    let used: Vec<usize> = std::iter::once(Some(file))
        .chain(label_cols.iter().copied())
        .chain(grade_cols.iter().copied())
        .flatten()
        .collect();
    let group_cols: Vec<usize> = (0..header.len())
        .filter(|i| !used.contains(i))
        .filter(|&i| only.is_empty() || only.contains(&header[i]))
        .collect();
    let mut rows = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let record = record?;
        let get = |i: usize| record.get(i).unwrap_or("").trim();
        let truth = label_cols
            .iter()
            .map(|c| match c.map(get) {
                None | Some("") => Ok(None),
                Some("1") | Some("true") | Some("True") => Ok(Some(true)),
                Some("0") | Some("false") | Some("False") => Ok(Some(false)),
                Some(other) => Err(LabError::Invalid(format!(
                    "{} line {}: label value '{other}' is not 0, 1 or blank",
                    path.display(),
                    n + 2
                ))),
            })
            .collect::<Result<Vec<_>, LabError>>()?;
        rows.push(Row {
            file: data.join(get(file)),
            truth,
            grades: grade_cols
                .iter()
                .map(|c| c.map(get).filter(|g| !g.is_empty()).map(str::to_string))
                .collect(),
            groups: group_cols
                .iter()
                .filter(|&&i| !get(i).is_empty())
                .map(|&i| (header[i].clone(), get(i).to_string()))
                .collect(),
        });
    }
    Ok(rows)
}

/// An 8-bit greyscale PNG as (width, height, pixels).
fn read_grey_png(path: &Path) -> Result<(usize, usize, Vec<u8>), LabError> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf)?;
    ensure!(
        info.color_type == png::ColorType::Grayscale && info.bit_depth == png::BitDepth::Eight,
        "{}: a mask must be an 8-bit greyscale PNG",
        path.display()
    );
    let (w, h) = (info.width as usize, info.height as usize);
    buf.truncate(w * h);
    Ok((w, h, buf))
}

/// The mask of `label` beside an image (`<stem>-<label>.png`), if any.
fn mask_of(image: &Path, label: &str) -> Option<PathBuf> {
    let stem = image.file_stem()?.to_str()?;
    let p = image.with_file_name(format!("{stem}-{label}.png"));
    p.is_file().then_some(p)
}

/// The model input for a PNG (8- or 16-bit grey), scaled as the xrv spec
/// scales a MONOCHROME2 instance.
fn png_input(path: &Path, spec: &imaging::InputSpec) -> Result<Vec<f32>, LabError> {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf)?;
    let (w, h) = (info.width as usize, info.height as usize);
    ensure!(
        info.color_type == png::ColorType::Grayscale,
        "{}: only greyscale PNG is supported",
        path.display()
    );
    let (grey, maxval): (Vec<f64>, f64) = match info.bit_depth {
        png::BitDepth::Eight => (buf[..w * h].iter().map(|&v| v as f64).collect(), 255.0),
        png::BitDepth::Sixteen => (
            buf[..2 * w * h]
                .chunks_exact(2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]) as f64)
                .collect(),
            65535.0,
        ),
        other => {
            return Err(LabError::Invalid(format!(
                "{}: {other:?}-bit PNG is not supported",
                path.display()
            )))
        }
    };
    let plane: Vec<f32> = grey
        .iter()
        .map(|&x| ((2.0 * x / maxval - 1.0) * 1024.0) as f32)
        .collect();
    Ok(spec.fit(&plane, h, w))
}

/// A study folder's scores per reported label: its DICOM files as the
/// daemon reads them (the manifest's series choice, at most `max` images
/// a series, the model's aggregation), a label's score its highest.
fn study_scores(classifier: &Classifier, folder: &Path, max: usize) -> Result<Vec<f32>, LabError> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        if path
            .extension()
            .is_none_or(|e| !e.eq_ignore_ascii_case("dcm"))
        {
            continue;
        }
        let obj = dicom_object::OpenFileOptions::new()
            .read_until(dicom_dictionary_std::tags::PIXEL_DATA)
            .open_file(&path)?;
        let text = |tag| attrs::text(&obj, tag);
        use dicom_dictionary_std::tags;
        let number = attrs::int(&obj, tags::INSTANCE_NUMBER).unwrap_or(0);
        found.push((
            text(tags::SERIES_INSTANCE_UID).unwrap_or_default(),
            number,
            archive::StudyInstance {
                sop_instance_uid: text(tags::SOP_INSTANCE_UID).unwrap_or_default(),
                sop_class_uid: text(tags::SOP_CLASS_UID).unwrap_or_default(),
                series_instance_uid: text(tags::SERIES_INSTANCE_UID).unwrap_or_default(),
                modality: text(tags::MODALITY),
                body_part_examined: text(tags::BODY_PART_EXAMINED),
                view_position: text(tags::VIEW_POSITION),
                calling_ae_title: String::new(),
                called_ae_title: None,
                study_description: text(tags::STUDY_DESCRIPTION),
                file: path,
            },
        ));
    }
    found.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let m = &classifier.manifest;
    let images: Vec<_> = found
        .into_iter()
        .map(|(_, _, i)| i)
        .filter(|i| pipeline::applies(m, i))
        .collect();
    let images = pipeline::subsample(pipeline::select_series(m, images), max);
    ensure!(!images.is_empty(), "no image the model applies to");
    let run = pipeline::aggregate::run(classifier, &images);
    ensure!(!run.results.is_empty(), "no image could be analysed");
    let labels: Vec<&String> = m.reported().iter().map(|&i| &m.labels[i]).collect();
    Ok(labels
        .iter()
        .map(|l| {
            run.results
                .iter()
                .flat_map(|r| &r.labels)
                .filter(|r| &&r.label == l)
                .map(|r| r.probability)
                .fold(0.0, f32::max)
        })
        .collect())
}

fn input(path: &Path, spec: &imaging::InputSpec) -> Result<Vec<f32>, LabError> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("png"))
    {
        ensure!(
            spec.name() == "xrv",
            "PNG input needs a model with the xrv input spec"
        );
        return png_input(path, spec);
    }
    let obj = dicom_object::open_file(path)?;
    let frames = imaging::Frames::decode(&obj)?;
    Ok(spec.apply(&frames, 0)?.data)
}

/// What an evaluation that ran to the end leaves to the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Images or studies that could not be read (listed in
    /// evaluation.json); the others were evaluated.
    pub failed: usize,
}

pub fn run(args: &EvaluateArgs) -> Result<Outcome, LabError> {
    let manifest = Manifest::load(&args.model.join("model.toml"))?;
    let classifier = Classifier::load_on_cpu(manifest, LoadOptions::default())?;
    let m = &classifier.manifest;
    // Only the labels the model predicts are evaluated (findings come in
    // this order); `reported[k]` is label k's output in the network's head.
    let reported = m.reported();
    let labels: Vec<String> = reported.iter().map(|&i| m.labels[i].clone()).collect();
    let spec = pipeline::analysis::input_spec(m)?;
    let csv_path = args
        .labels
        .clone()
        .unwrap_or_else(|| args.data.join("labels.csv"));
    let rows = read_csv(&csv_path, &args.data, &labels, &args.subgroups)?;
    ensure!(!rows.is_empty(), "{}: no rows", csv_path.display());
    let studies = rows.iter().all(|r| r.file.is_dir());
    let size = m.input.size;
    let channels = classifier.model.architecture.in_channels();
    let mut samples = Vec::new();
    let mut failed = Vec::new();
    // Per label: (strongest cell touched?, share of cells touched).
    let mut pointing: Vec<Vec<(Vec<f32>, Vec<bool>)>> = vec![Vec::new(); labels.len()];
    for row in rows.iter().filter(|_| studies) {
        match study_scores(&classifier, &row.file, args.max_images_per_series) {
            Ok(scores) => samples.push(Sample {
                scores,
                truth: row.truth.clone(),
                grades: row.grades.clone(),
                groups: row.groups.clone(),
            }),
            Err(e) => {
                eprintln!("skipped {}: {e}", row.file.display());
                failed.push(serde_json::json!({"file": row.file, "error": format!("{e}")}));
            }
        }
    }
    for chunk in rows.chunks(32).filter(|_| !studies) {
        let mut data = Vec::new();
        let mut ok = Vec::new();
        for row in chunk {
            match input(&row.file, &spec) {
                Ok(d) => {
                    data.extend(d);
                    ok.push(row);
                }
                Err(e) => {
                    eprintln!("skipped {}: {e}", row.file.display());
                    failed.push(serde_json::json!({"file": row.file, "error": format!("{e}")}));
                }
            }
        }
        if ok.is_empty() {
            continue;
        }
        let x = Batch::new(data, [ok.len(), channels, size, size])?;
        let prediction = classifier.predict(&x, false)?;
        let masked: Vec<Vec<(usize, PathBuf)>> = ok
            .iter()
            .map(|row| {
                (0..labels.len())
                    .filter(|&k| row.truth[k] == Some(true))
                    .filter_map(|k| mask_of(&row.file, &labels[k]).map(|p| (k, p)))
                    .collect()
            })
            .collect();
        if masked.iter().any(|v| !v.is_empty()) {
            let maps = classifier.class_maps(&x)?;
            for (cams, masks) in maps.iter().zip(&masked) {
                for (k, path) in masks {
                    let (w, h, pixels) = read_grey_png(path)?;
                    let mask: Vec<bool> = pixels.iter().map(|&v| v > 127).collect();
                    let crop = spec.crop(h, w);
                    let touched = evaluate::localisation::touched_cells(
                        &mask,
                        w,
                        crop,
                        cams.height,
                        cams.width,
                    );
                    let plane = cams.height * cams.width;
                    let head = reported[*k];
                    pointing[*k].push((
                        cams.maps[head * plane..(head + 1) * plane].to_vec(),
                        touched,
                    ));
                }
            }
        }
        for (row, findings) in ok.iter().zip(prediction.findings) {
            samples.push(Sample {
                scores: findings.iter().map(|f| f.probability).collect(),
                truth: row.truth.clone(),
                grades: row.grades.clone(),
                groups: row.groups.clone(),
            });
        }
    }
    ensure!(!samples.is_empty(), "no image could be read");
    let setup = Setup {
        labels: labels.clone(),
        thresholds: reported.iter().map(|&i| m.decision_threshold(i)).collect(),
        bootstrap_rounds: args.bootstrap,
        ..Setup::default()
    };
    let report = evaluate::evaluate(&setup, &samples);
    let localisation: Vec<_> = labels
        .iter()
        .zip(&pointing)
        .filter(|(_, images)| !images.is_empty())
        .map(|(label, images)| {
            let evidence: Vec<_> = images
                .iter()
                .map(|(map, touched)| evaluate::localisation::Pointing { map, touched })
                .collect();
            evaluate::localisation::pointing_game(label, &evidence)
        })
        .collect();
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.data.join("evaluation"));
    std::fs::create_dir_all(&out)?;
    let json = serde_json::json!({
        "model": {"name": m.name, "version": m.version, "sha256": m.sha256, "validated": m.validated},
        "data": {"folder": args.data, "labels": csv_path, "unit": if studies { "study" } else { "image" }, "images": samples.len(), "failed": failed},
        "report": report,
        "localisation": localisation,
    });
    std::fs::write(
        out.join("evaluation.json"),
        serde_json::to_string_pretty(&json)? + "\n",
    )?;
    let unit = if studies { "studies" } else { "images" };
    let title = format!("{} {} on {} {unit}", m.name, m.version, samples.len());
    evaluate::plots::roc(&report, &format!("ROC: {title}"), &out.join("roc.png"))?;
    evaluate::plots::reliability(
        &report,
        &format!("Reliability: {title}"),
        &out.join("reliability.png"),
    )?;
    let tables = summary_tables(&report) + &localisation_table(&localisation);
    std::fs::write(out.join("tables.md"), &tables)?;
    std::fs::write(out.join("reference_scores.toml"), reference_scores(&report))?;
    print!("{tables}{}", subgroup_table(&report));
    eprintln!(
        "wrote evaluation.json, tables.md, roc.png, reliability.png and reference_scores.toml (for the manifest: the drift reference) to {}",
        out.display()
    );
    Ok(Outcome {
        failed: failed.len(),
    })
}

/// The manifest's `[reference_scores]` table from an evaluation: per label,
/// the fraction of cases in each tenth of the score range (the reference
/// for drift monitoring, docs/models.md section 8).
pub fn reference_scores(report: &evaluate::Report) -> String {
    let mut s = String::from(
        "# The validation set's score distribution per label (ten bins of 0.1),\n# written by `triaged evaluate`: paste into model.toml.\n[reference_scores]\n",
    );
    for l in &report.labels {
        let mut bins = [0usize; 10];
        for b in &l.reliability {
            let i = ((b.lower * 10.0).round() as usize).min(9);
            bins[i] += b.count;
        }
        let total: usize = bins.iter().sum();
        let fractions: Vec<String> = bins
            .iter()
            .map(|&c| format!("{:.4}", c as f64 / total.max(1) as f64))
            .collect();
        s += &format!("{} = [{}]\n", toml_key(&l.label), fractions.join(", "));
    }
    s
}

/// A label as a TOML key (quoted unless bare).
fn toml_key(label: &str) -> String {
    if !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        label.to_string()
    } else {
        format!("\"{}\"", label.replace('\\', "\\\\").replace('"', "\\\""))
    }
}
