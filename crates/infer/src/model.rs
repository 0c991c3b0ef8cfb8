//! A loaded classifier: architecture + weights, checked before use, with
//! class activation maps for heatmaps.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use candle_core::{DType, Device, Shape, Tensor, D};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::{Init, Linear, VarBuilder};

use crate::fast::FastNet;
use crate::formula::FormulaBackend;
use crate::onnx::{OnnxConfig, OnnxNet};
use crate::{DenseNet, DenseNetConfig, InferError, ResNet, ResNetConfig, SmallCnn, SmallCnnConfig};

/// A supported network and its hyper-parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Architecture {
    DenseNet(DenseNetConfig),
    ResNet(ResNetConfig),
    SmallCnn(SmallCnnConfig),
    /// A graph run by tract (no candle network, no named tensors).
    Onnx(OnnxConfig),
}

impl Architecture {
    pub fn name(&self) -> String {
        match self {
            Architecture::DenseNet(c) => format!("densenet{}", densenet_depth(c)),
            Architecture::ResNet(c) => format!("resnet{}", 2 + 3 * c.layers.iter().sum::<usize>()),
            Architecture::SmallCnn(_) => "smallcnn".into(),
            Architecture::Onnx(_) => "onnx".into(),
        }
    }

    pub fn in_channels(&self) -> usize {
        match self {
            Architecture::DenseNet(c) => c.in_channels,
            Architecture::ResNet(c) => c.in_channels,
            Architecture::SmallCnn(c) => c.in_channels,
            Architecture::Onnx(c) => c.in_channels,
        }
    }

    pub fn num_classes(&self) -> usize {
        match self {
            Architecture::DenseNet(c) => c.num_classes,
            Architecture::ResNet(c) => c.num_classes,
            Architecture::SmallCnn(c) => c.num_classes,
            Architecture::Onnx(c) => c.num_classes,
        }
    }

    /// Every tensor the architecture loads, with its shape: built by
    /// constructing the network on a backend that only records requests.
    pub fn required_tensors(&self) -> Result<BTreeMap<String, Vec<usize>>, InferError> {
        let recorder = Recorder::default();
        let seen = recorder.seen.clone();
        let vb = VarBuilder::from_backend(Box::new(recorder), DType::F32, Device::Cpu);
        build(self, vb)?;
        let seen = seen.lock().unwrap_or_else(|e| e.into_inner());
        Ok(seen.clone())
    }
}

fn densenet_depth(c: &DenseNetConfig) -> usize {
    2 * c.block_config.iter().sum::<usize>() + c.block_config.len() + 1
}

enum Net {
    DenseNet(DenseNet),
    ResNet(ResNet),
    SmallCnn(SmallCnn),
}

fn build(arch: &Architecture, vb: VarBuilder) -> candle_core::Result<Net> {
    Ok(match arch {
        Architecture::DenseNet(c) => Net::DenseNet(DenseNet::new(c.clone(), vb)?),
        Architecture::ResNet(c) => Net::ResNet(ResNet::new(c.clone(), vb)?),
        Architecture::SmallCnn(c) => Net::SmallCnn(SmallCnn::new(c.clone(), vb)?),
        Architecture::Onnx(_) => candle_core::bail!("an ONNX graph has no candle network"),
    })
}

/// A backend that hands out zeros and remembers what was asked for.
#[derive(Default)]
struct Recorder {
    seen: std::sync::Arc<Mutex<BTreeMap<String, Vec<usize>>>>,
}

impl SimpleBackend for Recorder {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: Init,
        dtype: DType,
        dev: &Device,
    ) -> candle_core::Result<Tensor> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), s.dims().to_vec());
        Tensor::zeros(s, dtype, dev)
    }

    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> candle_core::Result<Tensor> {
        candle_core::bail!("{name}: shape required")
    }

    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// Per-class maps of where the evidence is, scaled to [0, 1] per map.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassMaps {
    pub height: usize,
    pub width: usize,
    /// `classes x height x width`.
    pub maps: Vec<f32>,
    pub method: HeatmapMethod,
}

/// How a heatmap was made (the SR and the capture say which).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeatmapMethod {
    /// Class activation map: the classifier's weights applied to the last
    /// feature maps (exact for a global-average pool and a linear head),
    /// ReLU. Built-in architectures, and ONNX graphs that export the maps.
    Cam,
    /// Occlusion sensitivity: how far each label's output falls when one
    /// cell of a `grid x grid` partition of the image is replaced by the
    /// image's mean; any other ONNX graph.
    Occlusion { grid: usize },
}

impl HeatmapMethod {
    /// Words for a report.
    pub fn describe(&self) -> String {
        match self {
            HeatmapMethod::Cam => "class activation map".into(),
            HeatmapMethod::Occlusion { grid } => {
                format!("occlusion sensitivity ({grid} x {grid} grid)")
            }
        }
    }
}

/// ReLU, then each class's map divided by its maximum: `cam` is
/// `classes x cells`.
fn normalise(cam: &Tensor) -> candle_core::Result<Vec<f32>> {
    let cam = cam.relu()?;
    let max = cam.max_keepdim(D::Minus1)?;
    cam.broadcast_div(&(max + 1e-12)?)?.flatten_all()?.to_vec1()
}

/// How a model computes its forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The fast CPU path (`crate::fast`): the default. On a GPU device the
    /// model runs on candle instead.
    #[default]
    Fast,
    /// candle's generic operations: GPU devices, and the reference the fast
    /// path is compared with (tests, `bench/infer.sh`).
    Candle,
    /// tract, for ONNX graphs (`architecture = "onnx"` chooses it; not a
    /// configuration value).
    #[serde(skip)]
    Tract,
}

enum Engine {
    Candle(Net),
    Fast(FastNet),
    Onnx(OnnxNet),
}

impl Engine {
    fn build(
        arch: &Architecture,
        vb: VarBuilder,
        backend: Backend,
        device: &Device,
    ) -> candle_core::Result<Engine> {
        Ok(match backend {
            Backend::Fast if device.is_cpu() => Engine::Fast(FastNet::new(arch, vb)?),
            _ => Engine::Candle(build(arch, vb)?),
        })
    }

    fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Engine::Onnx(_) => candle_core::bail!("an ONNX graph exposes no feature maps"),
            Engine::Fast(n) => n.features(x),
            Engine::Candle(Net::DenseNet(n)) => n.features(x),
            Engine::Candle(Net::ResNet(n)) => n.features(x),
            Engine::Candle(Net::SmallCnn(n)) => n.features(x),
        }
    }

    fn head(&self) -> candle_core::Result<&Linear> {
        Ok(match self {
            Engine::Onnx(_) => candle_core::bail!("an ONNX graph exposes no linear head"),
            Engine::Fast(n) => n.head(),
            Engine::Candle(Net::DenseNet(n)) => n.head(),
            Engine::Candle(Net::ResNet(n)) => n.head(),
            Engine::Candle(Net::SmallCnn(n)) => n.head(),
        })
    }
}

/// A classifier ready to run.
pub struct Model {
    pub architecture: Architecture,
    engine: Engine,
    device: Device,
}

impl Model {
    /// Load safetensors weights. Before anything runs, every tensor the
    /// architecture needs is checked by name and shape, and all problems are
    /// reported at once (missing, wrong shape, unexpected).
    pub fn load(
        architecture: Architecture,
        weights: &Path,
        device: &Device,
    ) -> Result<Model, InferError> {
        Self::load_with(architecture, weights, device, Backend::default())
    }

    /// [`Model::load`] on a chosen backend.
    pub fn load_with(
        architecture: Architecture,
        weights: &Path,
        device: &Device,
        backend: Backend,
    ) -> Result<Model, InferError> {
        if let Architecture::Onnx(c) = &architecture {
            let net = OnnxNet::load(weights, c.clone())?;
            return Ok(Model {
                architecture,
                engine: Engine::Onnx(net),
                device: Device::Cpu,
            });
        }
        let tensors =
            candle_core::safetensors::load(weights, device).map_err(|e| InferError::Weights {
                path: weights.to_path_buf(),
                detail: e.to_string(),
            })?;
        check_tensors(&architecture, &tensors).map_err(|problems| InferError::TensorMismatch {
            path: weights.to_path_buf(),
            architecture: architecture.name(),
            problems,
        })?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, device);
        let engine = Engine::build(&architecture, vb, backend, device)?;
        Ok(Model {
            architecture,
            engine,
            device: device.clone(),
        })
    }

    /// The architecture with deterministic formula weights (tests, benches).
    pub fn with_formula_weights(
        architecture: Architecture,
        device: &Device,
    ) -> Result<Model, InferError> {
        Self::with_formula_weights_on(architecture, device, Backend::default())
    }

    /// [`Model::with_formula_weights`] on a chosen backend.
    pub fn with_formula_weights_on(
        architecture: Architecture,
        device: &Device,
        backend: Backend,
    ) -> Result<Model, InferError> {
        Self::with_formula(architecture, device, backend, FormulaBackend::default())
    }

    /// Formula weights of a chosen gain (see [`crate::formula`]) on a
    /// chosen backend.
    pub fn with_formula(
        architecture: Architecture,
        device: &Device,
        backend: Backend,
        formula: FormulaBackend,
    ) -> Result<Model, InferError> {
        let vb = VarBuilder::from_backend(Box::new(formula), DType::F32, device.clone());
        let engine = Engine::build(&architecture, vb, backend, device)?;
        Ok(Model {
            architecture,
            engine,
            device: device.clone(),
        })
    }

    /// The backend actually in use (a GPU device always runs candle).
    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Fast(_) => Backend::Fast,
            Engine::Candle(_) => Backend::Candle,
            Engine::Onnx(_) => Backend::Tract,
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    fn check_input(&self, x: &Tensor) -> Result<(), InferError> {
        let dims = x.dims().to_vec();
        let bad = |detail: String| InferError::Input {
            dims: dims.clone(),
            detail,
        };
        if dims.len() != 4 {
            return Err(bad("expected N x C x H x W".into()));
        }
        if dims[1] != self.architecture.in_channels() {
            return Err(bad(format!(
                "{} channels, the model takes {}",
                dims[1],
                self.architecture.in_channels()
            )));
        }
        if dims[0] == 0 || dims[2] < 32 || dims[3] < 32 {
            return Err(bad(
                "batch must be non-empty and images at least 32 x 32".into()
            ));
        }
        let flat = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        let count = flat.iter().filter(|v| !v.is_finite()).count();
        if count > 0 {
            return Err(InferError::NonFinite { count });
        }
        Ok(())
    }

    fn features(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.engine.features(x)
    }

    /// Global average pooling and the linear head (the same for every
    /// architecture and backend).
    fn classify(&self, maps: &Tensor) -> candle_core::Result<Tensor> {
        crate::layers::classify(self.engine.head()?, maps)
    }

    /// Logits, `N x classes`, for a checked input.
    pub fn logits(&self, x: &Tensor) -> Result<Tensor, InferError> {
        self.check_input(x)?;
        if let Engine::Onnx(n) = &self.engine {
            return n.run(x);
        }
        Ok(self.classify(&self.features(x)?)?)
    }

    /// How this model's heatmaps are made: CAM where the network's last
    /// feature maps are known, occlusion (`grid` cells a side) otherwise.
    pub fn heatmap_method(&self, grid: usize) -> HeatmapMethod {
        match &self.engine {
            Engine::Onnx(n) if n.config().maps.is_none() => HeatmapMethod::Occlusion { grid },
            _ => HeatmapMethod::Cam,
        }
    }

    /// Logits and, per image, class activation maps: for a global-average
    /// pool followed by a linear head, CAM is exact and needs no gradient.
    /// An ONNX graph gives the maps it exports (none: no maps here; see
    /// [`Model::occlusion`]).
    pub fn logits_and_maps(&self, x: &Tensor) -> Result<(Tensor, Vec<ClassMaps>), InferError> {
        self.check_input(x)?;
        if let Engine::Onnx(net) = &self.engine {
            let (logits, maps) = net.run_with_maps(x)?;
            let Some(maps) = maps else {
                return Ok((logits, Vec::new()));
            };
            let (n, k, h, w) = maps.dims4()?;
            let out = (0..n)
                .map(|i| {
                    Ok(ClassMaps {
                        height: h,
                        width: w,
                        maps: normalise(&maps.get(i)?.reshape((k, h * w))?)?,
                        method: HeatmapMethod::Cam,
                    })
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            return Ok((logits, out));
        }
        let maps = self.features(x)?;
        let logits = self.classify(&maps)?;
        let (n, c, h, w) = maps.dims4()?;
        let weight = self.engine.head()?.weight();
        // classes x C times C x (h*w), per image.
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let a = maps.get(i)?.reshape((c, h * w))?;
            out.push(ClassMaps {
                height: h,
                width: w,
                maps: normalise(&weight.matmul(&a)?)?,
                method: HeatmapMethod::Cam,
            });
        }
        Ok((logits, out))
    }

    /// Occlusion sensitivity of one image `1 x C x H x W` whose outputs are
    /// `base`: for each cell of a `grid x grid` partition, the image with
    /// that cell set to each channel's mean is run again (`grid²` passes,
    /// eight at a time), and each label's map holds how far its output
    /// fell, ReLU, scaled to [0, 1].
    pub fn occlusion(
        &self,
        image: &Tensor,
        base: &[f32],
        grid: usize,
    ) -> Result<ClassMaps, InferError> {
        let (one, c, h, w) = image.dims4()?;
        if one != 1 || grid == 0 || grid > h.min(w) {
            return Err(InferError::Input {
                dims: image.dims().to_vec(),
                detail: format!("occlusion takes one image at least {grid} pixels a side"),
            });
        }
        let pixels = image.flatten_all()?.to_vec1::<f32>()?;
        let plane = h * w;
        let means: Vec<f32> = pixels
            .chunks_exact(plane)
            .map(|p| (p.iter().map(|&v| v as f64).sum::<f64>() / plane as f64) as f32)
            .collect();
        let cells: Vec<(usize, usize)> = (0..grid)
            .flat_map(|gy| (0..grid).map(move |gx| (gy, gx)))
            .collect();
        let classes = base.len();
        let mut drop = vec![0f32; classes * cells.len()];
        for (chunk_no, chunk) in cells.chunks(8).enumerate() {
            let mut batch = Vec::with_capacity(chunk.len() * pixels.len());
            for &(gy, gx) in chunk {
                let mut occluded = pixels.clone();
                let (y0, y1) = (gy * h / grid, (gy + 1) * h / grid);
                let (x0, x1) = (gx * w / grid, (gx + 1) * w / grid);
                for (ch, mean) in means.iter().enumerate() {
                    for y in y0..y1 {
                        let row = ch * plane + y * w;
                        occluded[row + x0..row + x1].fill(*mean);
                    }
                }
                batch.extend(occluded);
            }
            let x = Tensor::from_vec(batch, (chunk.len(), c, h, w), &self.device)?;
            let out: Vec<Vec<f32>> = self.logits(&x)?.to_vec2()?;
            for (j, row) in out.iter().enumerate() {
                let cell = chunk_no * 8 + j;
                for k in 0..classes {
                    drop[k * cells.len() + cell] = base[k] - row[k];
                }
            }
        }
        let drop = Tensor::from_vec(drop, (classes, cells.len()), &Device::Cpu)?;
        Ok(ClassMaps {
            height: grid,
            width: grid,
            maps: normalise(&drop)?,
            method: HeatmapMethod::Occlusion { grid },
        })
    }
}

fn check_tensors(arch: &Architecture, tensors: &HashMap<String, Tensor>) -> Result<(), String> {
    let required = arch.required_tensors().map_err(|e| e.to_string())?;
    let mut problems = Vec::new();
    let missing: Vec<&String> = required
        .keys()
        .filter(|k| !tensors.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        problems.push(format!("{} missing ({})", missing.len(), list(&missing)));
    }
    let wrong: Vec<String> = required
        .iter()
        .filter_map(|(k, dims)| {
            let t = tensors.get(k)?;
            (t.dims() != dims.as_slice())
                .then(|| format!("{k} is {:?}, expected {dims:?}", t.dims()))
        })
        .collect();
    if !wrong.is_empty() {
        problems.push(format!(
            "{} with the wrong shape ({})",
            wrong.len(),
            list(&wrong.iter().collect::<Vec<_>>())
        ));
    }
    let extra: Vec<&String> = tensors
        .keys()
        .filter(|k| !required.contains_key(*k) && !k.ends_with("num_batches_tracked"))
        .collect();
    if !extra.is_empty() {
        let mut extra = extra;
        extra.sort();
        problems.push(format!("{} unexpected ({})", extra.len(), list(&extra)));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

fn list(names: &[&String]) -> String {
    const SHOWN: usize = 8;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| n.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s += &format!(", and {} more", names.len() - SHOWN);
    }
    s
}
