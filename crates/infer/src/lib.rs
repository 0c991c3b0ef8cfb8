//! CNN classifiers for triaged, on candle.
//!
//! Models are candle modules whose variable paths are PyTorch's state-dict
//! names, so torchvision / torchxrayvision weights load unchanged. The crate
//! knows nothing of DICOM: it takes `N x C x H x W` tensors (from
//! `crates/imaging`) and returns logits.
//!
//! Any other classifier runs as an ONNX graph on tract ([`onnx`]).
//!
//! [`formula`] makes deterministic weights that `tools/infer_reference.py`
//! reproduces in PyTorch, which is how parity with PyTorch is tested
//! without a weight file.

mod batch;
mod classifier;
pub mod densenet;
mod error;
mod fast;
pub mod formula;
mod layers;
pub mod manifest;
mod model;
pub mod onnx;
pub mod resnet;
pub mod smallcnn;
pub mod train;

pub use batch::Batch;
pub use classifier::{
    Classifier, ClassifierError, Finding, Heatmap, HeatmapsSkipped, LoadOptions, Prediction,
};
pub use densenet::{DenseNet, DenseNetConfig};
pub use error::InferError;
pub use fast::profile;
pub use manifest::{Aggregation, HeatmapSection, Lifecycle, Manifest, ManifestError, SeriesChoice};
pub use model::{Architecture, Backend, ClassMaps, HeatmapMethod, Model};
pub use onnx::{OnnxConfig, OnnxNet};
pub use resnet::{ResNet, ResNetConfig};
pub use smallcnn::{SmallCnn, SmallCnnConfig};
pub use train::Trainer;
