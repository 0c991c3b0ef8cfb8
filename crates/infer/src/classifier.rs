//! A model with its manifest: probabilities, thresholds, flags and
//! heatmaps for each image.

use std::time::{Duration, Instant};

use candle_core::{DType, Device, Tensor};

use crate::manifest::{Manifest, ManifestError, OutputKind};
use crate::{Backend, InferError, Model};

/// One label's result for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub label: String,
    /// Sigmoid of the logit, recalibrated if the manifest says so.
    pub probability: f32,
    /// What `probability` is compared with.
    pub threshold: f32,
    pub flagged: bool,
    /// Class activation map in [0, 1] (`height x width`), for flagged
    /// labels when heatmaps were asked for.
    pub heatmap: Option<(usize, usize, Vec<f32>)>,
}

/// The results for a batch of images.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub findings: Vec<Vec<Finding>>,
    pub elapsed: Duration,
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

impl Classifier {
    /// Load: manifest, weights checksum, tensor check, and a warm-up pass
    /// so the first real study does not pay for allocation.
    pub fn load(manifest: Manifest, device: &Device) -> Result<Classifier, ClassifierError> {
        Self::load_with(manifest, device, Backend::default())
    }

    /// [`Classifier::load`] on a chosen backend.
    pub fn load_with(
        manifest: Manifest,
        device: &Device,
        backend: Backend,
    ) -> Result<Classifier, ClassifierError> {
        manifest.verify()?;
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

    /// Findings for a batch `N x C x size x size`: one per label the model
    /// predicts (labels in the manifest's `not_predicted` never appear), in
    /// label order.
    pub fn predict(&self, input: &Tensor, heatmaps: bool) -> Result<Prediction, InferError> {
        let reported = self.manifest.reported();
        let started = Instant::now();
        let (logits, maps) = if heatmaps {
            let (l, m) = self.model.logits_and_maps(input)?;
            (l, Some(m))
        } else {
            (self.model.logits(input)?, None)
        };
        let logits: Vec<Vec<f32>> = logits.to_vec2()?;
        let findings = logits
            .iter()
            .enumerate()
            .map(|(n, row)| {
                reported
                    .iter()
                    .filter_map(|&i| row.get(i).map(|&z| (i, z)))
                    .map(|(i, z)| {
                        let p = match self.manifest.output {
                            OutputKind::Logits => 1.0 / (1.0 + (-z).exp()),
                            OutputKind::Probabilities => z,
                        };
                        let p = self.manifest.recalibrated(i, p);
                        let threshold = self.manifest.decision_threshold(i);
                        let flagged = p >= threshold;
                        let heatmap = maps
                            .as_ref()
                            .filter(|_| flagged)
                            .and_then(|m| m.get(n))
                            .map(|cm| {
                                let plane = cm.height * cm.width;
                                (
                                    cm.height,
                                    cm.width,
                                    cm.maps[i * plane..(i + 1) * plane].to_vec(),
                                )
                            });
                        Finding {
                            label: self.manifest.labels[i].clone(),
                            probability: p,
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
        })
    }
}
