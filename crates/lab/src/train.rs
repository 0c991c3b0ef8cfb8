//! `triaged train`: the bundled demonstration models, trained in candle on
//! phantom images generated on the fly: `demo-cxr` on chest radiographs,
//! `demo-ich` on head CT slices (its thresholds chosen on whole studies,
//! as the daemon aggregates them).

use std::path::PathBuf;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use infer::{Batch, SmallCnnConfig, Trainer};
use phantom::Label;
use sha2::{Digest, Sha256};

use crate::chest::batch;
use crate::head::{self, HEAD_LABELS};
use crate::sets::{TRAINING_STRIDE, VALIDATION_BASE};
use crate::{ensure, Anatomy, LabError};

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// chest: demo-cxr on radiographs; head-ct: demo-ich on head CT slices.
    #[arg(long, value_enum, default_value_t = Anatomy::Chest)]
    pub anatomy: Anatomy,
    /// Where to write weights.safetensors, model.toml and training.json
    /// (default: models/demo-cxr or models/demo-ich).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Optimisation steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Model input size (pixels, square; default 128 chest, 64 head CT).
    #[arg(long)]
    pub size: Option<usize>,
    /// Seed of the training cases and the initial weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Peak learning rate (AdamW; warm-up, then cosine decay).
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,
    /// Held-out validation cases (thresholds are chosen on them; head CT:
    /// studies, default 300).
    #[arg(long)]
    pub validation: Option<usize>,
    /// Head CT: channels of the network's stages (each halves the
    /// resolution).
    #[arg(long, value_delimiter = ',', default_values_t = [16, 32, 64, 128])]
    pub widths: Vec<usize>,
    /// Sensitivity the thresholds are set to on the validation set.
    #[arg(long, default_value_t = 0.9)]
    pub sensitivity: f64,
    /// Start from these weights (a model folder's weights.safetensors)
    /// instead of the seeded initialisation; with --steps 0, only the
    /// validation and thresholds are recomputed.
    #[arg(long)]
    pub resume: Option<PathBuf>,
}

fn learning_rate(args: &TrainArgs, step: usize) -> f64 {
    let warm = (args.steps / 20).max(1);
    if step < warm {
        return args.learning_rate * (step + 1) as f64 / warm as f64;
    }
    let t = (step - warm) as f64 / (args.steps - warm).max(1) as f64;
    args.learning_rate * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
}

/// A batch maker: the cases of a seed range at a size, as inputs,
/// targets and their count.
type Batches = fn(std::ops::Range<u64>, usize) -> Result<(Vec<f32>, Vec<f32>, usize), LabError>;

/// What one model needs: its labels, network, input and cases.
struct Task {
    name: &'static str,
    labels: Vec<&'static str>,
    config: SmallCnnConfig,
    size: usize,
    /// Validation cases (radiographs or studies).
    validation: usize,
    batches: Batches,
    /// The first seed of the training run's cases.
    first_seed: u64,
}

impl Task {
    fn new(args: &TrainArgs) -> Result<Task, LabError> {
        Ok(match args.anatomy {
            Anatomy::Chest => {
                let labels: Vec<&str> = Label::ALL.iter().map(|l| l.name()).collect();
                Task {
                    name: "demo-cxr",
                    config: SmallCnnConfig::new(1, labels.len()),
                    labels,
                    size: args.size.unwrap_or(128),
                    validation: args.validation.unwrap_or(1000),
                    batches: |seeds, size| batch(seeds, size),
                    first_seed: args.seed * TRAINING_STRIDE,
                }
            }
            Anatomy::HeadCt => {
                ensure!(
                    !args.widths.is_empty() && args.widths.iter().all(|&w| (1..=1024).contains(&w)),
                    "--widths: one to several channel counts in 1..=1024"
                );
                Task {
                    name: "demo-ich",
                    labels: HEAD_LABELS.to_vec(),
                    config: SmallCnnConfig {
                        in_channels: head::HEAD_WINDOWS.len(),
                        num_classes: HEAD_LABELS.len(),
                        widths: args.widths.clone(),
                    },
                    size: args.size.unwrap_or(64),
                    validation: args.validation.unwrap_or(300),
                    batches: |seeds, size| head::head_batch(seeds, size),
                    first_seed: head::head_seed(args.seed * TRAINING_STRIDE, 0),
                }
            }
        })
    }
}

pub fn run(args: &TrainArgs) -> Result<(), LabError> {
    ensure!(args.batch > 1, "--batch must be > 1");
    ensure!(
        args.steps > 0 || args.resume.is_some(),
        "--steps must be > 0 (or --resume given)"
    );
    ensure!(
        args.seed < 1000,
        "--seed must be below 1000 (the validation and test seeds lie above)"
    );
    ensure!(
        args.sensitivity > 0.0 && args.sensitivity < 1.0,
        "--sensitivity must lie in (0, 1)"
    );
    let task = Task::new(args)?;
    ensure!(
        (8..=1024).contains(&task.size),
        "--size must lie in 8..=1024"
    );
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("models").join(task.name));
    let started = Instant::now();
    let mut trainer = Trainer::new(task.config.clone(), args.seed, args.learning_rate)?;
    if let Some(from) = &args.resume {
        trainer.load(from)?;
        eprintln!("resuming from {}", from.display());
    }
    eprintln!(
        "training {} (smallcnn, {} parameters) at {}x{}: {} steps x {} images",
        task.name,
        trainer.parameters(),
        task.size,
        task.size,
        args.steps,
        args.batch
    );
    let curve = fit(args, &task, &mut trainer)?;
    let (validation, thresholds) = match args.anatomy {
        Anatomy::Chest => validate_chest(args, &task, &trainer)?,
        Anatomy::HeadCt => validate_head(args, &task, &trainer)?,
    };

    std::fs::create_dir_all(&out)?;
    let weights = out.join("weights.safetensors");
    trainer.save(&weights)?;
    let sha = format!("{:x}", Sha256::digest(std::fs::read(&weights)?));
    std::fs::write(
        out.join("model.toml"),
        manifest(args, &task, &thresholds, &sha),
    )?;
    let report_path = out.join("training.json");
    let report = if args.steps == 0 && report_path.exists() {
        // Thresholds recomputed for existing weights: keep the record of
        // how they were trained.
        let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path)?)?;
        r["validation"] = serde_json::json!(validation);
        r["sensitivity_target"] = serde_json::json!(args.sensitivity);
        r
    } else {
        serde_json::json!({
            "anatomy": format!("{:?}", args.anatomy),
            "seed": args.seed,
            "steps": args.steps,
            "batch": args.batch,
            "size": task.size,
            "widths": task.config.widths,
            "learning_rate": args.learning_rate,
            "parameters": trainer.parameters(),
            "validation_cases": task.validation,
            "sensitivity_target": args.sensitivity,
            "resumed_from": args.resume,
            "seconds": started.elapsed().as_secs_f64().round(),
            "threads": std::env::var("RAYON_NUM_THREADS").ok(),
            "loss_curve": curve,
            "validation": validation,
        })
    };
    std::fs::write(&report_path, serde_json::to_string_pretty(&report)? + "\n")?;
    eprintln!(
        "wrote {} ({} bytes, sha256 {sha}) in {:.0} s",
        weights.display(),
        std::fs::metadata(&weights)?.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The optimisation: batches rendered on another thread while the model
/// trains. Returns the loss curve (step, mean loss).
fn fit(
    args: &TrainArgs,
    task: &Task,
    trainer: &mut Trainer,
) -> Result<Vec<(usize, f32)>, LabError> {
    let (tx, rx) = sync_channel(4);
    let (steps, size, per, first, batches) = (
        args.steps,
        task.size,
        args.batch,
        task.first_seed,
        task.batches,
    );
    let producer = std::thread::spawn(move || {
        for step in 0..steps {
            let from = first + (step * per) as u64;
            if tx.send(batches(from..from + per as u64, size)).is_err() {
                return;
            }
        }
    });
    let started = Instant::now();
    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} loss {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let channels = task.config.in_channels;
    let mut curve = Vec::new();
    let mut window = Vec::new();
    for step in 0..args.steps {
        let (x, y, n) = rx
            .recv()
            .map_err(|_| LabError::Invalid("the batch renderer stopped".into()))??;
        let x = Batch::new(x, [n, channels, size, size])?;
        let loss = trainer.step(&x, &y, learning_rate(args, step))?;
        ensure!(loss.is_finite(), "the loss diverged at step {step}");
        window.push(loss);
        bar.set_message(format!(
            "{:.4}",
            window.iter().sum::<f32>() / window.len() as f32
        ));
        bar.inc(1);
        let every = (args.steps / 50).max(1);
        if (step + 1) % every == 0 || step + 1 == args.steps {
            let mean = window.iter().sum::<f32>() / window.len() as f32;
            curve.push((step + 1, mean));
            if bar.is_hidden() {
                eprintln!(
                    "step {}/{}: loss {mean:.4} ({:.0} s)",
                    step + 1,
                    args.steps,
                    started.elapsed().as_secs_f64()
                );
            }
            window.clear();
        }
    }
    bar.finish();
    let _ = producer.join();
    Ok(curve)
}

/// Probabilities for `n` inputs of `channels x size x size`, 64 at a time.
fn predict_all(
    trainer: &Trainer,
    x: &[f32],
    channels: usize,
    size: usize,
) -> Result<Vec<Vec<f32>>, LabError> {
    let image = channels * size * size;
    let mut probs = Vec::with_capacity(x.len() / image);
    for chunk in x.chunks(64 * image) {
        let n = chunk.len() / image;
        let t = Batch::new(chunk.to_vec(), [n, channels, size, size])?;
        probs.extend(trainer.predict(&t)?);
    }
    Ok(probs)
}

/// Per label: AUROC and the threshold at the target sensitivity, as a
/// JSON record; and the thresholds.
fn thresholds(
    args: &TrainArgs,
    labels: &[&str],
    scores: &[Vec<f32>],
    truth: &[Vec<bool>],
    what: &str,
) -> (Vec<serde_json::Value>, Vec<f32>) {
    let mut validation = Vec::new();
    let mut thresholds = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let s: Vec<f32> = scores.iter().map(|p| p[i]).collect();
        let t: Vec<bool> = truth.iter().map(|y| y[i]).collect();
        let auc = evaluate::metrics::auroc(&s, &t);
        let threshold = evaluate::metrics::threshold_for_sensitivity(&s, &t, args.sensitivity)
            .unwrap_or(0.5)
            .clamp(1e-4, 0.9999);
        eprintln!(
            "  {label:<30} validation {what} AUROC {:.4}  threshold {threshold:.4}",
            auc.unwrap_or(f64::NAN)
        );
        validation.push(serde_json::json!({"label": label, "auroc": auc, "threshold": threshold}));
        thresholds.push(threshold);
    }
    (validation, thresholds)
}

type Validation = (Vec<serde_json::Value>, Vec<f32>);

/// Radiographs: AUROC and thresholds per image.
fn validate_chest(
    args: &TrainArgs,
    task: &Task,
    trainer: &Trainer,
) -> Result<Validation, LabError> {
    eprintln!("rendering {} validation cases ...", task.validation);
    let (x, y, n) = batch(
        VALIDATION_BASE..VALIDATION_BASE + task.validation as u64,
        task.size,
    )?;
    let probs = predict_all(trainer, &x, 1, task.size)?;
    let k = task.labels.len();
    let truth: Vec<Vec<bool>> = (0..n)
        .map(|i| (0..k).map(|j| y[i * k + j] > 0.5).collect())
        .collect();
    Ok(thresholds(args, &task.labels, &probs, &truth, "image"))
}

/// Head CT: each validation study's slices as the daemon reads them, a
/// label's study score the maximum over its slices; thresholds chosen on
/// the study scores (the daemon's decision), AUROC also per slice.
fn validate_head(args: &TrainArgs, task: &Task, trainer: &Trainer) -> Result<Validation, LabError> {
    eprintln!("rendering {} validation studies ...", task.validation);
    let mix = phantom::head::HeadMix {
        matrix: 2 * task.size,
        ..Default::default()
    };
    let channels = task.config.in_channels;
    // As the daemon samples a long series by default.
    let read = pipeline::DEFAULT_MAX_IMAGES_PER_SERIES;
    let (mut study_scores, mut study_truth) = (Vec::new(), Vec::new());
    let (mut slice_scores, mut slice_truth) = (Vec::new(), Vec::new());
    for i in 0..task.validation as u64 {
        let case = phantom::head::HeadCase::sample(head::head_seed(VALIDATION_BASE, i), &mix);
        let (series, picked) = head::read_slices(&case, read);
        let mut x = Vec::new();
        for &index in &picked {
            let slice = series.render_slice(index);
            x.extend(head::slice_input(&series, &slice, index, task.size)?.data);
            slice_truth.push(head::slice_targets(&slice).to_vec());
        }
        let probs = predict_all(trainer, &x, channels, task.size)?;
        let mut max = vec![0f32; task.labels.len()];
        for p in &probs {
            for (m, v) in max.iter_mut().zip(p) {
                *m = m.max(*v);
            }
        }
        slice_scores.extend(probs);
        study_scores.push(max);
        study_truth.push(head::study_targets(&case).to_vec());
    }
    let (mut validation, thresholds) =
        thresholds(args, &task.labels, &study_scores, &study_truth, "study");
    for (i, v) in validation.iter_mut().enumerate() {
        let s: Vec<f32> = slice_scores.iter().map(|p| p[i]).collect();
        let t: Vec<bool> = slice_truth.iter().map(|y| y[i]).collect();
        v["slice_auroc"] = serde_json::json!(evaluate::metrics::auroc(&s, &t));
    }
    Ok((validation, thresholds))
}

fn manifest(args: &TrainArgs, task: &Task, thresholds: &[f32], sha: &str) -> String {
    let list = |v: Vec<String>| v.join(", ");
    let labels = list(task.labels.iter().map(|l| format!("\"{l}\"")).collect());
    let thresholds = list(thresholds.iter().map(|t| format!("{t:.6}")).collect());
    let widths = list(task.config.widths.iter().map(|w| w.to_string()).collect());
    let version = format!("{}-s{}", env!("CARGO_PKG_VERSION"), args.seed);
    let (sens, val, name, size) = (
        args.sensitivity * 100.0,
        task.validation,
        task.name,
        task.size,
    );
    match args.anatomy {
        Anatomy::Chest => format!(
            r#"# The bundled demonstration model, written by `triaged train`.
# Thresholds: per label, the best specificity at no less than {sens:.0} %
# sensitivity on {val} held-out phantom validation cases (see training.json
# and docs/model-card.md).
name = "{name}"
version = "{version}"
architecture = "smallcnn"
in_channels = 1
weights = "weights.safetensors"
sha256 = "{sha}"
labels = [{labels}]
thresholds = [{thresholds}]
validated = false
intended_use = "demonstration on synthetic data — not for diagnostic use"

[smallcnn]
widths = [{widths}]

[input]
spec = "xrv"
size = {size}

[applicability]
modalities = ["CR", "DX"]
body_parts = ["CHEST"]
view_positions = ["PA", "AP"]
"#
        ),
        Anatomy::HeadCt => {
            let windows = list(
                head::HEAD_WINDOWS
                    .iter()
                    .map(|(c, w)| format!("[{c}, {w}]"))
                    .collect(),
            );
            format!(
                r#"# The bundled head CT demonstration model, written by
# `triaged train --anatomy head-ct`. It scores each axial slice; a study's
# score for a label is the highest over the slices of the series it reads
# (the thinnest axial one), and that slice is the key slice.
# Thresholds: per label, the best specificity at no less than {sens:.0} %
# sensitivity over {val} held-out phantom validation studies, on those
# study scores (see training.json and docs/model-card-ich.md).
name = "{name}"
version = "{version}"
architecture = "smallcnn"
in_channels = {channels}
weights = "weights.safetensors"
sha256 = "{sha}"
labels = [{labels}]
thresholds = [{thresholds}]
aggregation = "series-max"
validated = false
intended_use = "demonstration on synthetic data — not for diagnostic use"

[smallcnn]
widths = [{widths}]

[input]
spec = "ct-window"
size = {size}
windows = [{windows}]

[applicability]
modalities = ["CT"]
body_parts = ["HEAD", "BRAIN"]
series = "thinnest"
"#,
                channels = task.config.in_channels,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn args(extra: &[&str]) -> TrainArgs {
        Cli::parse_from(std::iter::once("train").chain(extra.iter().copied())).args
    }

    #[test]
    fn the_written_manifests_load_as_the_daemon_reads_them() {
        for anatomy in ["chest", "head-ct"] {
            let a = args(&["--anatomy", anatomy, "--seed", "7"]);
            let task = Task::new(&a).unwrap();
            let thresholds: Vec<f32> = (0..task.labels.len())
                .map(|i| 0.125 + i as f32 / 64.0)
                .collect();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("model.toml");
            let text = manifest(&a, &task, &thresholds, &"ab".repeat(32));
            std::fs::write(&path, text).unwrap();
            let m = infer::Manifest::load(&path).unwrap();
            assert_eq!(m.name, task.name);
            assert!(m.version.ends_with("-s7"), "{}", m.version);
            assert_eq!(m.labels, task.labels);
            for (i, t) in thresholds.iter().enumerate() {
                assert_eq!(m.threshold(i), *t, "{anatomy} label {i}");
            }
            assert_eq!(m.input.size, task.size);
            let arch = m.architecture().unwrap();
            assert_eq!(arch.in_channels(), task.config.in_channels);
            assert!(
                !m.validated,
                "{anatomy}: a phantom model is never validated"
            );
        }
    }

    #[test]
    fn the_learning_rate_warms_up_then_decays_to_a_floor() {
        let a = args(&["--steps", "200", "--learning-rate", "0.01"]);
        let rates: Vec<f64> = (0..200).map(|s| learning_rate(&a, s)).collect();
        assert!(
            rates[0] < rates[5] && (rates[9] - 0.01).abs() < 1e-12,
            "{rates:?}"
        );
        assert!(rates[10..].windows(2).all(|w| w[1] <= w[0]));
        assert!((rates[199] - 0.0005).abs() < 1e-6, "{}", rates[199]);
    }

    #[test]
    fn arguments_out_of_range_are_refused_by_name() {
        for (extra, key) in [
            (&["--seed", "1000"][..], "--seed"),
            (&["--batch", "1"][..], "--batch"),
            (&["--steps", "0"][..], "--steps"),
            (&["--sensitivity", "1"][..], "--sensitivity"),
            (&["--size", "4"][..], "--size"),
            (&["--anatomy", "head-ct", "--widths", "0"][..], "--widths"),
        ] {
            match run(&args(extra)) {
                Err(LabError::Invalid(m)) => assert!(m.contains(key), "{m}"),
                other => panic!("{extra:?}: {other:?}"),
            }
        }
    }
}
