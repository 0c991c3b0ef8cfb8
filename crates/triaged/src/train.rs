//! `triaged train`: the bundled demonstration model, trained in candle on
//! phantom radiographs generated on the fly.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc::sync_channel;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::{ProgressBar, ProgressStyle};
use infer::{SmallCnnConfig, Trainer};
use phantom::Label;
use sha2::{Digest, Sha256};

use crate::synthetic::{batch, TRAINING_STRIDE, VALIDATION_BASE};

#[derive(Debug, Clone, clap::Args)]
pub struct TrainArgs {
    /// Where to write weights.safetensors, model.toml and training.json.
    #[arg(long, default_value = "models/demo-cxr")]
    pub out: PathBuf,
    /// Optimisation steps.
    #[arg(long, default_value_t = 3000)]
    pub steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Model input size (pixels, square).
    #[arg(long, default_value_t = 128)]
    pub size: usize,
    /// Seed of the training cases and the initial weights.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Peak learning rate (AdamW; warm-up, then cosine decay).
    #[arg(long, default_value_t = 3e-3)]
    pub learning_rate: f64,
    /// Held-out validation cases (thresholds are chosen on them).
    #[arg(long, default_value_t = 1000)]
    pub validation: usize,
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

pub fn run(args: &TrainArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.batch > 1, "--batch must be > 1");
    anyhow::ensure!(
        args.steps > 0 || args.resume.is_some(),
        "--steps must be > 0 (or --resume given)"
    );
    anyhow::ensure!(
        args.seed < 1000,
        "--seed must be below 1000 (the validation and test seeds lie above)"
    );
    anyhow::ensure!(
        args.sensitivity > 0.0 && args.sensitivity < 1.0,
        "--sensitivity must lie in (0, 1)"
    );
    let started = Instant::now();
    let device = Device::Cpu;
    let labels: Vec<&str> = Label::ALL.iter().map(|l| l.name()).collect();
    let config = SmallCnnConfig::new(1, labels.len());
    let mut trainer = Trainer::new(config.clone(), args.seed, args.learning_rate, &device)?;
    if let Some(from) = &args.resume {
        trainer.load(from)?;
        eprintln!("resuming from {}", from.display());
    }
    eprintln!(
        "training smallcnn ({} parameters) on phantom radiographs at {}x{}: {} steps x {} images",
        trainer.parameters(),
        args.size,
        args.size,
        args.steps,
        args.batch
    );
    eprintln!("rendering {} validation cases ...", args.validation);
    let (val_x, val_y, val_n) = batch(
        VALIDATION_BASE..VALIDATION_BASE + args.validation as u64,
        args.size,
    )?;

    // Batches are rendered on another thread while the model trains.
    let (tx, rx) = sync_channel(4);
    let (steps, size, per, seed) = (args.steps, args.size, args.batch, args.seed);
    let producer = std::thread::spawn(move || {
        for step in 0..steps {
            let first = seed * TRAINING_STRIDE + (step * per) as u64;
            if tx.send(batch(first..first + per as u64, size)).is_err() {
                return;
            }
        }
    });

    let bar = ProgressBar::new(args.steps as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} loss {msg} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut curve = Vec::new();
    let mut window = Vec::new();
    for step in 0..args.steps {
        let (x, y, n) = rx.recv()??;
        let x = Tensor::from_vec(x, (n, 1, args.size, args.size), &device)?;
        let y = Tensor::from_vec(y, (n, labels.len()), &device)?;
        let loss = trainer.step(&x, &y, learning_rate(args, step))?;
        anyhow::ensure!(loss.is_finite(), "the loss diverged at step {step}");
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

    // Validation: AUROC and the operating thresholds.
    let mut probs: Vec<Vec<f32>> = Vec::with_capacity(val_n);
    let image = args.size * args.size;
    for chunk in val_x.chunks(64 * image) {
        let n = chunk.len() / image;
        let x = Tensor::from_vec(chunk.to_vec(), (n, 1, args.size, args.size), &device)?;
        probs.extend(trainer.predict(&x)?);
    }
    let mut validation = Vec::new();
    let mut thresholds = Vec::new();
    for (i, label) in labels.iter().enumerate() {
        let scores: Vec<f32> = probs.iter().map(|p| p[i]).collect();
        let truth: Vec<bool> = (0..val_n)
            .map(|k| val_y[k * labels.len() + i] > 0.5)
            .collect();
        let auc = evaluate::metrics::auroc(&scores, &truth);
        let t = evaluate::metrics::threshold_for_sensitivity(&scores, &truth, args.sensitivity)
            .unwrap_or(0.5)
            .clamp(1e-4, 0.9999);
        eprintln!(
            "  {label:<14} validation AUROC {:.4}  threshold {t:.4}",
            auc.unwrap_or(f64::NAN)
        );
        validation.push(serde_json::json!({"label": label, "auroc": auc, "threshold": t}));
        thresholds.push(t);
    }

    std::fs::create_dir_all(&args.out)?;
    let weights = args.out.join("weights.safetensors");
    trainer.save(&weights)?;
    let sha = format!("{:x}", Sha256::digest(std::fs::read(&weights)?));
    std::fs::write(
        args.out.join("model.toml"),
        manifest(args, &config, &labels, &thresholds, &sha),
    )?;
    let report_path = args.out.join("training.json");
    let report = if args.steps == 0 && report_path.exists() {
        // Thresholds recomputed for existing weights: keep the record of
        // how they were trained.
        let mut r: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path)?)?;
        r["validation"] = serde_json::json!(validation);
        r["sensitivity_target"] = serde_json::json!(args.sensitivity);
        r
    } else {
        serde_json::json!({
            "seed": args.seed,
            "steps": args.steps,
            "batch": args.batch,
            "size": args.size,
            "learning_rate": args.learning_rate,
            "parameters": trainer.parameters(),
            "validation_cases": val_n,
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
    Ok(ExitCode::SUCCESS)
}

fn manifest(
    args: &TrainArgs,
    config: &SmallCnnConfig,
    labels: &[&str],
    thresholds: &[f32],
    sha: &str,
) -> String {
    let list = |v: Vec<String>| v.join(", ");
    format!(
        r#"# The bundled demonstration model, written by `triaged train`.
# Thresholds: per label, the best specificity at no less than {sens:.0} %
# sensitivity on {val} held-out phantom validation cases (see training.json
# and docs/model-card.md).
name = "demo-cxr"
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
"#,
        sens = args.sensitivity * 100.0,
        val = args.validation,
        version = format_args!("{}-s{}", env!("CARGO_PKG_VERSION"), args.seed),
        labels = list(labels.iter().map(|l| format!("\"{l}\"")).collect()),
        thresholds = list(thresholds.iter().map(|t| format!("{t:.6}")).collect()),
        widths = list(config.widths.iter().map(|w| w.to_string()).collect()),
        size = args.size,
    )
}
