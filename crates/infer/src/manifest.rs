//! Model manifests: what a model is, what it expects, what its outputs
//! mean, and whether it may be trusted. One TOML file per model, next to
//! its weights:
//!
//! ```toml
//! name = "xrv-densenet121-all"
//! version = "1"
//! architecture = "densenet121"   # densenet121 | resnet50 | densenet (+ [densenet]) | resnet (+ [resnet]) | smallcnn
//! in_channels = 1
//! weights = "weights.safetensors"
//! sha256 = "…"                  # of the weights file; checked at load
//! labels = ["Atelectasis", …]
//! not_predicted = ["unused-14"]  # outputs the model does not predict: never reported
//! thresholds = [0.31, …]         # per label; the operating point
//! recalibrate = true             # torchxrayvision: threshold maps to 0.5
//! validated = false
//! state = "shadow"               # active (default) | shadow | disabled, until an admin changes it
//! intended_use = "…"
//! aggregation = "image"          # image | series-max (CT: one result per series)
//! output = "logits"              # logits (default) | probabilities (what the labels' values are)
//! output_name = "probs"          # ONNX: the graph output holding the labels (if it has several)
//! [heatmap]
//! maps_output = "maps"           # ONNX: an output of class activation maps (1 x labels x h x w)
//! occlusion_grid = 8             # ONNX without maps: occlusion sensitivity, grid x grid cells
//! occlusion_budget_ms = 5000     # per image; the grid shrinks to fit, no heatmap if 2 x 2 does not
//! [input]
//! spec = "xrv"                   # an imaging input spec: xrv | ct-window | unit | imagenet
//! size = 224
//! # mean = [0.485, 0.456, 0.406]  # imagenet: per channel (these are the defaults)
//! # std = [0.229, 0.224, 0.225]
//! resize = "skimage"             # area (default) | skimage (torchxrayvision's own)
//! [applicability]
//! modalities = ["CR", "DX"]
//! body_parts = ["CHEST"]
//! view_positions = ["PA", "AP"]
//! series = "all"                 # all (default) | thinnest (CT: the thinnest axial series only)
//! ```
//!
//! docs/models.md documents every key for admins.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{Architecture, DenseNetConfig, OnnxConfig, ResNetConfig, SmallCnnConfig};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub architecture: String,
    #[serde(default = "one")]
    pub in_channels: usize,
    pub weights: String,
    pub sha256: String,
    pub labels: Vec<String>,
    /// Labels the network has an output for but does not predict (an
    /// untrained head: torchxrayvision marks them with a NaN operating
    /// threshold). Never reported, flagged, evaluated or shown.
    #[serde(default)]
    pub not_predicted: Vec<String>,
    #[serde(default)]
    pub thresholds: Vec<f32>,
    #[serde(default)]
    pub recalibrate: bool,
    #[serde(default)]
    pub validated: bool,
    #[serde(default)]
    pub intended_use: String,
    /// The state this version starts in, until an admin changes it
    /// (`triaged models activate|shadow|disable`, the console).
    #[serde(default)]
    pub state: Lifecycle,
    pub input: InputSection,
    #[serde(default)]
    pub applicability: Applicability,
    /// How results over a series' images become findings.
    #[serde(default)]
    pub aggregation: Aggregation,
    /// Per label, the validation set's scores as fractions of its cases in
    /// ten bins of 0.1 (0-0.1, ..., 0.9-1): the reference for drift
    /// monitoring (without it, a version's first weeks of use are).
    #[serde(default)]
    pub reference_scores: std::collections::BTreeMap<String, Vec<f64>>,
    /// What the network's label outputs are.
    #[serde(default)]
    pub output: OutputKind,
    /// ONNX: the graph output holding the labels (needed when it has
    /// several).
    #[serde(default)]
    pub output_name: Option<String>,
    /// How heatmaps are made.
    #[serde(default)]
    pub heatmap: HeatmapSection,
    /// Hyper-parameters for `architecture = "densenet"`.
    #[serde(default)]
    pub densenet: Option<DenseNetSection>,
    /// Blocks and widths for `architecture = "resnet"`.
    #[serde(default)]
    pub resnet: Option<ResNetSection>,
    /// Stage widths for `architecture = "smallcnn"` (default 16..256).
    #[serde(default)]
    pub smallcnn: Option<SmallCnnSection>,
    /// Where the manifest was read from (not in the file).
    #[serde(skip)]
    pub path: PathBuf,
}

fn one() -> usize {
    1
}

/// How heatmaps are made. Built-in architectures always use class
/// activation maps; an ONNX graph uses the maps it exports
/// (`maps_output`) or, without them, occlusion sensitivity.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeatmapSection {
    #[serde(default)]
    pub maps_output: Option<String>,
    #[serde(default = "eight")]
    pub occlusion_grid: usize,
    #[serde(default = "five_seconds")]
    pub occlusion_budget_ms: u64,
}

impl Default for HeatmapSection {
    fn default() -> Self {
        HeatmapSection {
            maps_output: None,
            occlusion_grid: eight(),
            occlusion_budget_ms: five_seconds(),
        }
    }
}

fn eight() -> usize {
    8
}

fn five_seconds() -> u64 {
    5000
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    pub spec: String,
    pub size: usize,
    /// For `ct-window`: (center, width) pairs in HU.
    #[serde(default)]
    pub windows: Vec<[f64; 2]>,
    /// For `xrv`: how the frame is cropped and resized. `area` (default):
    /// the centred square, area-averaged; `skimage`: torchxrayvision's
    /// own preprocessing (XRayCenterCrop, scikit-image's resize), which
    /// its models were trained with.
    #[serde(default = "area")]
    pub resize: String,
    /// For `imagenet`: one mean and one standard deviation per channel,
    /// applied to the [0, 1] grey (default: torchvision's ImageNet
    /// statistics, three channels).
    #[serde(default)]
    pub mean: Option<Vec<f64>>,
    #[serde(default)]
    pub std: Option<Vec<f64>>,
}

impl InputSection {
    /// The `imagenet` spec's statistics: the manifest's or the defaults.
    pub fn normalisation(&self) -> (Vec<f64>, Vec<f64>) {
        const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
        const STD: [f64; 3] = [0.229, 0.224, 0.225];
        (
            self.mean.clone().unwrap_or_else(|| MEAN.to_vec()),
            self.std.clone().unwrap_or_else(|| STD.to_vec()),
        )
    }

    /// Channels the spec makes.
    pub fn channels(&self, in_channels: usize) -> usize {
        match self.spec.as_str() {
            "ct-window" => self.windows.len(),
            "imagenet" => self.normalisation().0.len(),
            _ => in_channels,
        }
    }
}

fn area() -> String {
    "area".into()
}

/// What a version of a model does with live studies (the daemon keeps
/// the state an admin sets; this is the manifest's initial one).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    /// Its findings set the priority and are reported (one version of a
    /// model at a time).
    #[default]
    Active,
    /// It reads live studies; its findings are recorded for evaluation,
    /// never flagged, reported or shown.
    Shadow,
    /// It reads nothing.
    Disabled,
}

/// What a network's label outputs are.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Logits: a sigmoid makes them probabilities.
    #[default]
    Logits,
    /// Probabilities already (a sigmoid in the graph): used as they are.
    Probabilities,
}

/// How a model's per-image results become findings.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Aggregation {
    /// Every image is its own result (radiographs: each view is read).
    #[default]
    Image,
    /// One result per series and label: the highest probability over the
    /// series' slices, on the slice where it occurs (CT: a finding on any
    /// slice is a finding of the series). Only that slice's heatmap is
    /// kept, so memory does not grow with the series.
    SeriesMax,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Applicability {
    #[serde(default)]
    pub modalities: Vec<String>,
    #[serde(default)]
    pub body_parts: Vec<String>,
    #[serde(default)]
    pub view_positions: Vec<String>,
    /// Which series of a study the model reads.
    #[serde(default)]
    pub series: SeriesChoice,
}

/// Which of a study's series a model reads.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SeriesChoice {
    /// Every series it applies to (radiographs: each view).
    #[default]
    All,
    /// One: the axial series with the thinnest slices (CT: the
    /// reconstruction meant for reading; a scout, a reformat or a
    /// thicker duplicate is left out). Ties go to the series with more
    /// images.
    Thinnest,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DenseNetSection {
    pub growth_rate: usize,
    pub block_config: Vec<usize>,
    pub num_init_features: usize,
    pub bn_size: usize,
}

/// A bottleneck ResNet other than ResNet-50: blocks per stage and each
/// stage's bottleneck width (torchvision's `planes`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResNetSection {
    pub layers: Vec<usize>,
    pub widths: Vec<usize>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SmallCnnSection {
    pub widths: Vec<usize>,
}

/// A manifest problem, naming the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read {path}: {detail}")]
    Read { path: PathBuf, detail: String },
    #[error("{path}: {problems}")]
    Invalid { path: PathBuf, problems: String },
    #[error("{weights}: SHA-256 is {actual}, the manifest {path} says {expected}")]
    Checksum {
        path: PathBuf,
        weights: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{weights}: {bytes} bytes, more than [models] max_bytes = {max} (the manifest {path}); raise the limit if the model is meant to be this large")]
    TooLarge {
        path: PathBuf,
        weights: PathBuf,
        bytes: u64,
        max: u64,
    },
}

impl Manifest {
    /// Read and validate a manifest (not yet the weights' checksum).
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError::Read {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let mut m: Manifest = toml::from_str(&text).map_err(|e| ManifestError::Invalid {
            path: path.to_path_buf(),
            problems: e.to_string().trim().to_string(),
        })?;
        m.path = path.to_path_buf();
        let problems = m.problems();
        if !problems.is_empty() {
            return Err(ManifestError::Invalid {
                path: path.to_path_buf(),
                problems: problems.join("; "),
            });
        }
        Ok(m)
    }

    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (label, bins) in &self.reference_scores {
            if !self.labels.contains(label) {
                p.push(format!("reference_scores.{label}: not one of labels"));
            }
            let total: f64 = bins.iter().sum();
            if bins.len() != 10 || bins.iter().any(|b| b.is_nan() || *b < 0.0) || total <= 0.0 {
                p.push(format!(
                    "reference_scores.{label}: ten non-negative fractions (bins of 0.1) are needed"
                ));
            }
        }
        if self.output_name.is_some() && self.architecture != "onnx" {
            p.push("output_name: only for architecture = \"onnx\"".into());
        }
        if self.labels.is_empty() {
            p.push("labels: at least one label is needed".into());
        }
        if let Some(i) = self.labels.iter().position(|l| l.trim().is_empty()) {
            p.push(format!(
                "labels: label {i} has no name (name it, and list it in not_predicted if the model does not predict it)"
            ));
        }
        if let Some((i, l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(i, l)| self.labels[..*i].contains(l))
        {
            p.push(format!("labels: '{l}' is named twice (label {i})"));
        }
        for l in &self.not_predicted {
            if !self.labels.contains(l) {
                p.push(format!("not_predicted: '{l}' is not one of the labels"));
            }
        }
        if !self.labels.is_empty() && self.reported().is_empty() {
            p.push("not_predicted: every label is listed; at least one must be predicted".into());
        }
        if !self.thresholds.is_empty() && self.thresholds.len() != self.labels.len() {
            p.push(format!(
                "thresholds: {} values for {} labels",
                self.thresholds.len(),
                self.labels.len()
            ));
        }
        if let Some(t) = self.thresholds.iter().find(|t| !(**t > 0.0 && **t < 1.0)) {
            p.push(format!("thresholds: {t} is outside (0, 1)"));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            p.push("sha256: 64 hexadecimal digits expected".into());
        }
        if !["xrv", "ct-window", "unit", "imagenet"].contains(&self.input.spec.as_str()) {
            p.push(format!(
                "input.spec: '{}' is not xrv, ct-window, unit or imagenet",
                self.input.spec
            ));
        }
        if !(32..=4096).contains(&self.input.size) {
            p.push(format!(
                "input.size: {} is outside 32..=4096",
                self.input.size
            ));
        }
        if !["area", "skimage"].contains(&self.input.resize.as_str()) {
            p.push(format!(
                "input.resize: '{}' is not area or skimage",
                self.input.resize
            ));
        } else if self.input.resize != "area" && self.input.spec != "xrv" {
            p.push(format!(
                "input.resize: '{}' applies to the xrv spec only",
                self.input.resize
            ));
        }
        if self.input.spec == "ct-window" && self.input.windows.is_empty() {
            p.push("input.windows: ct-window needs at least one [center, width]".into());
        }
        if self.input.spec == "imagenet" {
            let (mean, std) = self.input.normalisation();
            if mean.is_empty() || mean.len() != std.len() {
                p.push(format!(
                    "input.mean, input.std: one value each per channel ({} and {} given)",
                    mean.len(),
                    std.len()
                ));
            }
            if std.iter().any(|s| !(*s > 0.0 && s.is_finite()))
                || mean.iter().any(|m| !m.is_finite())
            {
                p.push("input.std: every value must be positive (and input.mean finite)".into());
            }
        } else if self.input.mean.is_some() || self.input.std.is_some() {
            p.push("input.mean, input.std: apply to the imagenet spec only".into());
        }
        if !(2..=32).contains(&self.heatmap.occlusion_grid) {
            p.push(format!(
                "heatmap.occlusion_grid: {} is outside 2..=32",
                self.heatmap.occlusion_grid
            ));
        }
        if self.heatmap.maps_output.is_some() && self.architecture != "onnx" {
            p.push("heatmap.maps_output: applies to architecture = \"onnx\" only (built-in architectures make class activation maps themselves)".into());
        }
        if let Err(e) = self.architecture() {
            p.push(e);
        }
        p
    }

    /// The network this manifest describes.
    pub fn architecture(&self) -> Result<Architecture, String> {
        let classes = self.labels.len();
        let channels = self.input.channels(self.in_channels);
        match (self.architecture.as_str(), &self.densenet) {
            ("densenet121", _) => Ok(Architecture::DenseNet(DenseNetConfig::densenet121(
                channels, classes,
            ))),
            ("resnet50", _) => Ok(Architecture::ResNet(ResNetConfig::resnet50(
                channels, classes,
            ))),
            ("densenet", Some(d)) => Ok(Architecture::DenseNet(DenseNetConfig {
                in_channels: channels,
                num_classes: classes,
                growth_rate: d.growth_rate,
                block_config: d.block_config.clone(),
                num_init_features: d.num_init_features,
                bn_size: d.bn_size,
            })),
            ("densenet", None) => Err("densenet: the [densenet] table is required".into()),
            ("onnx", _) => Ok(Architecture::Onnx(OnnxConfig {
                in_channels: channels,
                num_classes: classes,
                size: self.input.size,
                output: self.output_name.clone(),
                maps: self.heatmap.maps_output.clone(),
            })),
            ("resnet", _) => {
                let Some(r) = &self.resnet else {
                    return Err("resnet: the [resnet] table is required".into());
                };
                if r.layers.is_empty()
                    || r.layers.len() != r.widths.len()
                    || r.layers.contains(&0)
                    || r.widths.contains(&0)
                {
                    return Err(
                        "resnet: layers and widths need one non-zero value per stage each".into(),
                    );
                }
                Ok(Architecture::ResNet(ResNetConfig {
                    in_channels: channels,
                    num_classes: classes,
                    layers: r.layers.clone(),
                    widths: r.widths.clone(),
                }))
            }
            ("smallcnn", _) => {
                let mut c = SmallCnnConfig::new(channels, classes);
                if let Some(s) = &self.smallcnn {
                    if s.widths.is_empty() || s.widths.contains(&0) {
                        return Err("smallcnn.widths: at least one non-zero width".into());
                    }
                    c.widths = s.widths.clone();
                }
                Ok(Architecture::SmallCnn(c))
            }
            (other, _) => Err(format!(
                "architecture: '{other}' is not densenet121, resnet50, densenet, resnet, smallcnn or onnx"
            )),
        }
    }

    /// The weights file, relative to the manifest.
    pub fn weights_path(&self) -> PathBuf {
        self.path
            .parent()
            .unwrap_or(Path::new("."))
            .join(&self.weights)
    }

    /// Check the weights file against the manifest's SHA-256.
    pub fn verify(&self) -> Result<(), ManifestError> {
        self.verify_within(u64::MAX)
    }

    /// [`Manifest::verify`], refusing a weights file over `max_bytes`
    /// before reading it.
    pub fn verify_within(&self, max_bytes: u64) -> Result<(), ManifestError> {
        let weights = self.weights_path();
        let size = std::fs::metadata(&weights)
            .map_err(|e| ManifestError::Read {
                path: weights.clone(),
                detail: e.to_string(),
            })?
            .len();
        if size > max_bytes {
            return Err(ManifestError::TooLarge {
                path: self.path.clone(),
                weights,
                bytes: size,
                max: max_bytes,
            });
        }
        let bytes = std::fs::read(&weights).map_err(|e| ManifestError::Read {
            path: weights.clone(),
            detail: e.to_string(),
        })?;
        let actual = format!("{:x}", Sha256::digest(&bytes));
        if actual != self.sha256.to_ascii_lowercase() {
            return Err(ManifestError::Checksum {
                path: self.path.clone(),
                weights,
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// The indices of the labels the model predicts (every label but those
    /// in `not_predicted`), in label order: the only ones reported.
    pub fn reported(&self) -> Vec<usize> {
        (0..self.labels.len())
            .filter(|&i| !self.not_predicted.contains(&self.labels[i]))
            .collect()
    }

    /// The operating threshold of label `i` (0.5 if none is given).
    pub fn threshold(&self, i: usize) -> f32 {
        self.thresholds.get(i).copied().unwrap_or(0.5)
    }

    /// torchxrayvision's recalibration: a sigmoid output `p` below the
    /// threshold `t` maps to `p / 2t`, above it to `1 - (1 - p) / 2(1 - t)`,
    /// so the operating point becomes 0.5.
    pub fn recalibrated(&self, i: usize, p: f32) -> f32 {
        if !self.recalibrate {
            return p;
        }
        let t = self.threshold(i);
        if p < t {
            p / (2.0 * t)
        } else {
            1.0 - (1.0 - p) / (2.0 * (1.0 - t))
        }
    }

    /// The threshold a (possibly recalibrated) probability is compared with.
    pub fn decision_threshold(&self, i: usize) -> f32 {
        if self.recalibrate {
            0.5
        } else {
            self.threshold(i)
        }
    }
}

/// Every `*/model.toml` under `dir`, sorted by path.
pub fn discover(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let entries = std::fs::read_dir(dir).map_err(|e| ManifestError::Read {
        path: dir.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("model.toml"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    Ok(found)
}
