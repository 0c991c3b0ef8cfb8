//! Training the project's small CNN: binary cross-entropy over independent
//! labels, AdamW, BatchNorm in training mode. The data comes from the
//! caller as [`Batch`]es (the crate knows nothing of where images come
//! from). Training runs on the CPU.
//!
//! Reproducible: initial weights come from a seeded formula (candle's CPU
//! random generator cannot be seeded), batches are the caller's, and the
//! saved file lists tensors in a fixed order.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};

use crate::formula::uniform;
use crate::{Architecture, Batch, InferError, SmallCnn, SmallCnnConfig};

/// A small CNN being trained.
pub struct Trainer {
    varmap: VarMap,
    model: SmallCnn,
    optimizer: AdamW,
    device: Device,
}

/// PyTorch's default initialisation of weights (uniform within
/// 1/sqrt(fan_in) for convolutions and linear layers), zero biases and
/// BatchNorm at identity, drawn from the seeded formula.
fn initial(seed: u64, name: &str, dims: &[usize]) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let leaf = name.rsplit('.').next().unwrap_or(name);
    match (leaf, dims.len()) {
        ("running_var", _) => vec![1.0; n],
        ("running_mean", _) => vec![0.0; n],
        ("weight", 1) => vec![1.0; n],
        ("bias", _) => vec![0.0; n],
        _ => {
            let fan_in = (n / dims[0].max(1)).max(1);
            let bound = 2.0 / (fan_in as f32).sqrt();
            uniform(&format!("init/{seed}/{name}"), n)
                .into_iter()
                .map(|u| u * bound)
                .collect()
        }
    }
}

/// Mean binary cross-entropy on logits, in the stable form
/// `max(z, 0) - z y + ln(1 + e^-|z|)`. (candle's version takes the log of
/// the sigmoid, which is -inf once the model is confident: NaN losses.)
pub fn bce_with_logits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = (logits.abs()?.neg()?.exp()? + 1.0)?.log()?;
    ((logits.relu()? - (logits * targets)?)? + softplus)?.mean_all()
}

impl Trainer {
    pub fn new(
        config: SmallCnnConfig,
        seed: u64,
        learning_rate: f64,
    ) -> Result<Trainer, InferError> {
        let device = &Device::Cpu;
        let required = Architecture::SmallCnn(config.clone()).required_tensors()?;
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
            for (name, dims) in &required {
                let t = Tensor::from_vec(initial(seed, name, dims), dims.as_slice(), device)?;
                data.insert(name.clone(), Var::from_tensor(&t)?);
            }
        }
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, device);
        let model = SmallCnn::new(config, vb)?;
        // Only the learnable tensors: running statistics are updated by
        // BatchNorm itself, never by the optimiser.
        let learnable: Vec<Var> = {
            let data = varmap.data().lock().unwrap_or_else(|e| e.into_inner());
            let mut names: Vec<&String> = data
                .keys()
                .filter(|k| !k.ends_with("running_mean") && !k.ends_with("running_var"))
                .collect();
            names.sort();
            names.iter().map(|k| data[*k].clone()).collect()
        };
        let optimizer = AdamW::new(
            learnable,
            ParamsAdamW {
                lr: learning_rate,
                weight_decay: 1e-4,
                ..Default::default()
            },
        )?;
        Ok(Trainer {
            varmap,
            model,
            optimizer,
            device: device.clone(),
        })
    }

    /// Learnable parameters.
    pub fn parameters(&self) -> usize {
        let data = self.varmap.data().lock().unwrap_or_else(|e| e.into_inner());
        data.iter()
            .filter(|(k, _)| !k.contains("running_"))
            .map(|(_, v)| v.elem_count())
            .sum()
    }

    /// One optimisation step on a batch with targets `N x classes` in
    /// {0, 1} (row-major); returns the batch loss.
    pub fn step(
        &mut self,
        batch: &Batch,
        targets: &[f32],
        learning_rate: f64,
    ) -> Result<f32, InferError> {
        let n = batch.len();
        let classes = self.model.config.num_classes;
        if targets.len() != n * classes {
            return Err(InferError::Input {
                dims: vec![n, classes],
                detail: format!(
                    "{} targets given for {n} images x {classes} labels",
                    targets.len()
                ),
            });
        }
        let x = batch.to_tensor(&self.device)?;
        let targets = Tensor::from_slice(targets, (n, classes), &self.device)?;
        self.optimizer.set_learning_rate(learning_rate);
        let logits = self.model.forward_t(&x, true)?;
        let loss = bce_with_logits(&logits, &targets)?;
        self.optimizer.backward_step(&loss)?;
        Ok(loss.to_scalar::<f32>()?)
    }

    /// Sigmoid outputs in inference mode, `N x classes`.
    pub fn predict(&self, batch: &Batch) -> Result<Vec<Vec<f32>>, InferError> {
        let x = batch.to_tensor(&self.device)?;
        let p = candle_nn::ops::sigmoid(&self.model.forward_t(&x, false)?)?;
        Ok(p.to_vec2()?)
    }

    /// Continue from saved weights (every tensor of the architecture must be
    /// in the file).
    pub fn load(&mut self, path: &Path) -> Result<(), InferError> {
        self.varmap.load(path).map_err(|e| InferError::Weights {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    /// Write the weights (PyTorch names) as safetensors.
    pub fn save(&self, path: &Path) -> Result<(), InferError> {
        self.varmap.save(path)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_is_finite_for_confident_logits() {
        let z = Tensor::new(&[[40f32, -40.0, 0.0]], &Device::Cpu).unwrap();
        let y = Tensor::new(&[[1f32, 1.0, 0.0]], &Device::Cpu).unwrap();
        let l: f32 = bce_with_logits(&z, &y).unwrap().to_scalar().unwrap();
        // (0 + 40 + ln 2) / 3
        assert!(
            (l - (40.0 + std::f32::consts::LN_2) / 3.0).abs() < 1e-4,
            "{l}"
        );
    }
}
