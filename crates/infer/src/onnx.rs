//! ONNX classifiers, run by tract (pure Rust, from crates.io; measured
//! against candle-onnx and onnxruntime in docs/performance.md): any graph
//! whose first input takes `1 x C x size x size` images and one of whose
//! outputs holds one value per label.
//!
//! The graph is loaded, typed for the manifest's input and optimised once;
//! a batch runs image by image, each on rayon's global pool (its size is
//! `[models] threads`, as for the fast path). Problems name the file and, where tract
//! says, the node and operator.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

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
    /// An output of class activation maps, `1 x classes x h x w` per
    /// image, for heatmaps (none: occlusion makes them).
    pub maps: Option<String>,
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

/// Every node whose operator tract does not implement, named at once
/// (tract itself stops at the first).
fn missing_operators(model: &InferenceModel) -> Result<(), String> {
    use tract_onnx::tract_hir::ops::unimpl::UnimplementedOp;
    let missing: Vec<String> = model
        .nodes()
        .iter()
        .filter_map(|n| {
            let op = n.op_as::<UnimplementedOp>()?.name();
            let op = op
                .trim_start_matches("Unimplemented(")
                .trim_end_matches(')');
            Some(format!("{op} (node '{}')", n.name))
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(format!(
        "operators tract {} does not implement: {}; re-export the model without them (docs/models.md, ONNX)",
        TRACT_VERSION,
        missing.join(", ")
    ))
}

/// The engine's version, for messages.
const TRACT_VERSION: &str = "0.23";

/// The graph's input must take float images with the manifest's channels
/// (where the graph says).
fn check_image_input(model: &InferenceModel, config: &OnnxConfig) -> Result<(), String> {
    let fact = model.input_fact(0).map_err(|e| chain(&e))?;
    let name = &model.node(model.inputs[0].node).name;
    let described = fact.format_dt_shape();
    if let Some(rank) = fact.shape.rank().concretize() {
        if rank != 4 {
            return Err(format!(
                "input '{name}' is {described}: not an image (N x C x H x W)"
            ));
        }
    }
    if let Some(dt) = fact.datum_type.concretize() {
        if dt != f32::datum_type() {
            return Err(format!(
                "input '{name}' is {described}: triaged feeds float32 images"
            ));
        }
    }
    let channels = fact
        .shape
        .dims()
        .nth(1)
        .and_then(|d| d.concretize())
        .and_then(|d| d.to_i64().ok());
    if let Some(c) = channels {
        if c as usize != config.in_channels {
            return Err(format!(
                "input '{name}' is {described}: {c} channels, the manifest's input spec gives {}",
                config.in_channels
            ));
        }
    }
    Ok(())
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
        let named = |name: &str, key: &str| {
            outputs.iter().position(|o| o == name).ok_or_else(|| {
                problem(
                    path,
                    format!(
                        "{key}: the graph has no output '{name}' (outputs: {})",
                        outputs.join(", ")
                    ),
                )
            })
        };
        let maps_index = match &config.maps {
            Some(name) => Some(named(name, "heatmap.maps_output")?),
            None => None,
        };
        let index = match (&config.output, maps_index) {
            (Some(name), _) => named(name, "output_name")?,
            (None, _) if outputs.len() == 1 => 0,
            // Two outputs, one of them the maps: the labels are the other.
            (None, Some(m)) if outputs.len() == 2 => 1 - m,
            (None, _) => {
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
        let mut keep = vec![model.outputs[index]];
        if let Some(m) = maps_index {
            if m == index {
                return Err(problem(
                    path,
                    format!(
                        "heatmap.maps_output: '{}' is the labels' output",
                        outputs[m]
                    ),
                ));
            }
            keep.push(model.outputs[m]);
        }
        model.select_output_outlets(&keep).map_err(err)?;
        missing_operators(&model).map_err(|d| problem(path, d))?;
        check_image_input(&model, &config).map_err(|d| problem(path, d))?;
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
        if let Some(m) = maps_index {
            let fact = typed.output_fact(1).map_err(err)?;
            let shape = fact.shape.as_concrete().map(|d| d.to_vec());
            if !matches!(&shape, Some(d) if d.len() == 4 && d[0] == 1 && d[1] == config.num_classes)
            {
                return Err(problem(
                    path,
                    format!(
                        "heatmap.maps_output: '{}' is [{}]; class activation maps are [1, {}, h, w] \
                         (one map per label; tools/export_onnx.py --cam exports them)",
                        outputs[m],
                        fact.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "),
                        config.num_classes
                    ),
                ));
            }
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
        Ok(self.run_with_maps(x)?.0)
    }

    /// The labels' values and, if the graph exports them, the class maps
    /// (`N x classes x h x w`).
    pub fn run_with_maps(&self, x: &Tensor) -> Result<(Tensor, Option<Tensor>), InferError> {
        let path = self.path.as_path();
        let (n, c, h, w) = x.dims4()?;
        let data = x.flatten_all()?.to_vec1::<f32>()?;
        let image = c * h * w;
        let mut out = Vec::with_capacity(n * self.config.num_classes);
        let mut maps = Vec::new();
        let mut map_dims = (0, 0);
        for i in 0..n {
            let one = tract_ndarray::Array4::from_shape_vec(
                (1, c, h, w),
                data[i * image..(i + 1) * image].to_vec(),
            )
            .map_err(|e| problem(path, e))?;
            let result = multithread_tract_scope(Executor::RayonGlobal, || {
                self.plan.run(tvec!(TractTensor::from(one).into()))
            })
            .map_err(|e| problem(path, chain(&e)))?;
            let values = result[0]
                .to_plain_array_view::<f32>()
                .map_err(|e| problem(path, chain(&e)))?;
            out.extend(values.iter().copied());
            if let Some(m) = result.get(1) {
                let view = m
                    .to_plain_array_view::<f32>()
                    .map_err(|e| problem(path, chain(&e)))?;
                let shape = view.shape();
                map_dims = (shape[2], shape[3]);
                maps.extend(view.iter().copied());
            }
        }
        let logits = Tensor::from_vec(out, (n, self.config.num_classes), &Device::Cpu)?;
        let maps = if self.config.maps.is_some() {
            let (mh, mw) = map_dims;
            Some(Tensor::from_vec(
                maps,
                (n, self.config.num_classes, mh, mw),
                &Device::Cpu,
            )?)
        } else {
            None
        };
        Ok((logits, maps))
    }
}

type TractTensor = tract_onnx::prelude::Tensor;
