//! ONNX classifiers, run by tract (pure Rust, from crates.io; measured
//! against candle-onnx and onnxruntime in docs/performance.md): any graph
//! whose first input takes `1 x C x size x size` images and one of whose
//! outputs holds one value per label.
//!
//! The graph is loaded, typed for the manifest's input and optimised once;
//! a batch runs image by image. Problems name the file and, where tract
//! says, the node and operator.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tract_onnx::prelude::*;

use crate::InferError;

/// What an ONNX graph is expected to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnnxConfig {
    pub in_channels: usize,
    pub num_classes: usize,
    /// The square side of the input.
    pub size: usize,
    /// The output holding the labels (none: the graph's only output).
    pub output: Option<String>,
}

/// A loaded, optimised ONNX graph.
pub struct OnnxNet {
    plan: std::sync::Arc<TypedRunnableModel>,
    config: OnnxConfig,
    path: PathBuf,
}

impl std::fmt::Debug for OnnxNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxNet")
            .field("config", &self.config)
            .finish()
    }
}

fn problem(path: &Path, detail: impl std::fmt::Display) -> InferError {
    InferError::Onnx {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

/// tract's error with its causes (they name the node and the operator).
fn chain(e: &TractError) -> String {
    e.chain()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(": ")
}

impl OnnxNet {
    /// Load, type for the manifest's input, check the labels' output and
    /// optimise. A file tract cannot read is an error, also where tract
    /// would panic (one bad model never stops the daemon).
    pub fn load(path: &Path, config: OnnxConfig) -> Result<OnnxNet, InferError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Self::load_checked(path, config)
        }))
        .unwrap_or_else(|_| Err(problem(path, "the graph could not be read (tract failed)")))
    }

    fn load_checked(path: &Path, config: OnnxConfig) -> Result<OnnxNet, InferError> {
        let err = |e: TractError| problem(path, chain(&e));
        let mut model = tract_onnx::onnx().model_for_path(path).map_err(err)?;
        if model.inputs.len() != 1 {
            return Err(problem(
                path,
                format!(
                    "the graph has {} inputs; an image classifier has one",
                    model.inputs.len()
                ),
            ));
        }
        let outputs: Vec<String> = model
            .outputs
            .iter()
            .map(|o| {
                model
                    .outlet_label(*o)
                    .map(str::to_string)
                    .unwrap_or_else(|| model.node(o.node).name.clone())
            })
            .collect();
        let index = match &config.output {
            Some(name) => outputs.iter().position(|o| o == name).ok_or_else(|| {
                problem(
                    path,
                    format!(
                        "output_name: the graph has no output '{name}' (outputs: {})",
                        outputs.join(", ")
                    ),
                )
            })?,
            None if outputs.len() == 1 => 0,
            None => {
                return Err(problem(
                    path,
                    format!(
                        "the graph has {} outputs ({}): name the one holding the labels with output_name",
                        outputs.len(),
                        outputs.join(", ")
                    ),
                ))
            }
        };
        let keep = model.outputs[index];
        model.select_output_outlets(&[keep]).map_err(err)?;
        let shape = [1, config.in_channels, config.size, config.size];
        model
            .set_input_fact(0, f32::fact(shape).into())
            .map_err(err)?;
        let typed = model.into_typed().map_err(err)?;
        let out = typed.output_fact(0).map_err(err)?;
        let dims: Vec<String> = out.shape.iter().map(|d| d.to_string()).collect();
        let volume: Option<usize> = out.shape.as_concrete().map(|d| d.iter().product());
        if volume != Some(config.num_classes) {
            return Err(problem(
                path,
                format!(
                    "output '{}' is [{}] for a {}x{}x{} input: not one value per label ({} labels)",
                    outputs[index],
                    dims.join(", "),
                    config.in_channels,
                    config.size,
                    config.size,
                    config.num_classes
                ),
            ));
        }
        let plan = typed
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(err)?;
        Ok(OnnxNet {
            plan,
            config,
            path: path.to_path_buf(),
        })
    }

    pub fn config(&self) -> &OnnxConfig {
        &self.config
    }

    /// The labels' values for `x` (`N x C x size x size`): `N x classes`.
    pub fn run(&self, x: &Tensor) -> Result<Tensor, InferError> {
        let path = self.path.as_path();
        let (n, c, h, w) = x.dims4()?;
        let data = x.flatten_all()?.to_vec1::<f32>()?;
        let image = c * h * w;
        let mut out = Vec::with_capacity(n * self.config.num_classes);
        for i in 0..n {
            let one = tract_ndarray::Array4::from_shape_vec(
                (1, c, h, w),
                data[i * image..(i + 1) * image].to_vec(),
            )
            .map_err(|e| problem(path, e))?;
            let result = self
                .plan
                .run(tvec!(TractTensor::from(one).into()))
                .map_err(|e| problem(path, chain(&e)))?;
            let values = result[0]
                .to_plain_array_view::<f32>()
                .map_err(|e| problem(path, chain(&e)))?;
            out.extend(values.iter().copied());
        }
        Ok(Tensor::from_vec(
            out,
            (n, self.config.num_classes),
            &Device::Cpu,
        )?)
    }
}

type TractTensor = tract_onnx::prelude::Tensor;
