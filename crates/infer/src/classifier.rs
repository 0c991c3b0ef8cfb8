//! A model with its manifest: probabilities, thresholds, flags and
//! heatmaps for each image.

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

use crate::batch::Batch;
use crate::manifest::{Manifest, ManifestError, OutputKind};
use crate::{Backend, ClassMaps, HeatmapMethod, InferError, Model};

/// One label's result for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub label: String,
    /// Sigmoid of the logit, recalibrated if the manifest says so.
    pub probability: f32,
    /// What `probability` is compared with.
    pub threshold: f32,
    pub flagged: bool,
    /// Where the evidence is, for flagged labels when heatmaps were asked
    /// for.
    pub heatmap: Option<Heatmap>,
}

/// One label's map in [0, 1], `height x width` (coarser than the image:
/// the renderer scales it up), and how it was made.
#[derive(Debug, Clone, PartialEq)]
pub struct Heatmap {
    pub height: usize,
    pub width: usize,
    pub values: Vec<f32>,
    pub method: HeatmapMethod,
}

/// Occlusion heatmaps left out because even a 2 x 2 grid would take
/// longer than the manifest's `heatmap.occlusion_budget_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("occlusion heatmaps skipped for {images} image(s): 4 passes of ~{pass_ms} ms each exceed heatmap.occlusion_budget_ms = {budget_ms}")]
pub struct HeatmapsSkipped {
    pub images: usize,
    pub pass_ms: u64,
    pub budget_ms: u64,
}

/// The results for a batch of images.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub findings: Vec<Vec<Finding>>,
    pub elapsed: Duration,
    /// Set when heatmaps were asked for but not made in time.
    pub heatmaps_skipped: Option<HeatmapsSkipped>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Infer(#[from] InferError),
}

pub struct Classifier {
    pub manifest: Manifest,
    pub model: Model,
}

/// How the daemon loads models (`[models]` in its configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadOptions {
    pub backend: Backend,
    /// The largest weights file (safetensors or ONNX) read.
    pub max_bytes: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            backend: Backend::default(),
            max_bytes: 2 << 30,
        }
    }
}

impl Classifier {
    /// Load: manifest, weights checksum, tensor check, and a warm-up pass
    /// so the first real study does not pay for allocation.
    pub fn load(manifest: Manifest, device: &Device) -> Result<Classifier, ClassifierError> {
        Self::load_with(manifest, device, LoadOptions::default())
    }

    /// [`Classifier::load_with`] on the CPU, for callers that need not name
    /// a candle device (candle stays inside this crate).
    pub fn load_on_cpu(
        manifest: Manifest,
        options: LoadOptions,
    ) -> Result<Classifier, ClassifierError> {
        Self::load_with(manifest, &Device::Cpu, options)
    }

    /// [`Classifier::load`] with the daemon's options.
    pub fn load_with(
        manifest: Manifest,
        device: &Device,
        options: LoadOptions,
    ) -> Result<Classifier, ClassifierError> {
        let backend = options.backend;
        manifest.verify_within(options.max_bytes)?;
        let architecture = manifest
            .architecture()
            .map_err(|problems| ManifestError::Invalid {
                path: manifest.path.clone(),
                problems,
            })?;
        let model = Model::load_with(architecture, &manifest.weights_path(), device, backend)?;
        let c = Classifier { manifest, model };
        let size = c.manifest.input.size;
        let warm = Tensor::zeros(
            (1, c.model.architecture.in_channels(), size, size),
            DType::F32,
            device,
        )
        .map_err(InferError::from)?;
        c.model.logits(&warm)?;
        Ok(c)
    }

    /// The network's raw outputs for each image, every label of its head
    /// (before the sigmoid, recalibration or `not_predicted`): what parity
    /// with PyTorch or onnxruntime is checked on.
    pub fn logits(&self, batch: &Batch) -> Result<Vec<Vec<f32>>, InferError> {
        let input = batch.to_tensor(self.model.device())?;
        Ok(self.model.logits(&input)?.to_vec2()?)
    }

    /// Every label's class activation map for each image of the batch
    /// (label order as the network's head), for measuring how well the
    /// maps point at findings; empty for an ONNX graph that exports none.
    pub fn class_maps(&self, batch: &Batch) -> Result<Vec<ClassMaps>, InferError> {
        let input = batch.to_tensor(self.model.device())?;
        Ok(self.model.logits_and_maps(&input)?.1)
    }

    /// Findings for a batch `N x C x size x size`: one per label the model
    /// predicts (labels in the manifest's `not_predicted` never appear), in
    /// label order.
    pub fn predict(&self, batch: &Batch, heatmaps: bool) -> Result<Prediction, InferError> {
        let input = &batch.to_tensor(self.model.device())?;
        let reported = self.manifest.reported();
        let started = Instant::now();
        let grid = self.manifest.heatmap.occlusion_grid;
        let occlusion = matches!(
            self.model.heatmap_method(grid),
            HeatmapMethod::Occlusion { .. }
        );
        let (logits, mut maps): (Tensor, Vec<Option<ClassMaps>>) = if heatmaps && !occlusion {
            let (l, m) = self.model.logits_and_maps(input)?;
            (l, m.into_iter().map(Some).collect())
        } else {
            (self.model.logits(input)?, Vec::new())
        };
        let pass = started.elapsed() / input.dim(0)?.max(1) as u32;
        let raw: Vec<Vec<f32>> = logits.to_vec2()?;
        // Per image, per reported label: (label index, probability,
        // threshold).
        let scored: Vec<Vec<(usize, f32, f32)>> = raw
            .iter()
            .map(|row| {
                reported
                    .iter()
                    .filter_map(|&i| row.get(i).map(|&z| (i, z)))
                    .map(|(i, z)| {
                        let p = match self.manifest.output {
                            OutputKind::Logits => 1.0 / (1.0 + (-z).exp()),
                            OutputKind::Probabilities => z,
                        };
                        let p = self.manifest.recalibrated(i, p);
                        (i, p, self.manifest.decision_threshold(i))
                    })
                    .collect()
            })
            .collect();
        let mut heatmaps_skipped = None;
        if heatmaps && occlusion {
            // Occlusion costs grid² passes an image: only images with a
            // flagged label, on the largest grid the budget allows.
            let budget = Duration::from_millis(self.manifest.heatmap.occlusion_budget_ms);
            let grid = (2..=grid).rev().find(|&g| pass * (g * g) as u32 <= budget);
            for (n, row) in raw.iter().enumerate() {
                if !scored[n].iter().any(|&(_, p, t)| p >= t) {
                    maps.push(None);
                    continue;
                }
                match grid {
                    Some(g) => maps.push(Some(self.model.occlusion(
                        &input.narrow(0, n, 1)?,
                        row,
                        g,
                    )?)),
                    None => {
                        let s = heatmaps_skipped.get_or_insert(HeatmapsSkipped {
                            images: 0,
                            pass_ms: pass.as_millis() as u64,
                            budget_ms: budget.as_millis() as u64,
                        });
                        s.images += 1;
                        maps.push(None);
                    }
                }
            }
        }
        let findings = scored
            .iter()
            .enumerate()
            .map(|(n, labels)| {
                labels
                    .iter()
                    .map(|&(i, probability, threshold)| {
                        let flagged = probability >= threshold;
                        let heatmap = maps
                            .get(n)
                            .and_then(Option::as_ref)
                            .filter(|_| flagged)
                            .map(|cm| {
                                let plane = cm.height * cm.width;
                                Heatmap {
                                    height: cm.height,
                                    width: cm.width,
                                    values: cm.maps[i * plane..(i + 1) * plane].to_vec(),
                                    method: cm.method,
                                }
                            });
                        Finding {
                            label: self.manifest.labels[i].clone(),
                            probability,
                            threshold,
                            flagged,
                            heatmap,
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(Prediction {
            findings,
            elapsed: started.elapsed(),
            heatmaps_skipped,
        })
    }
}
