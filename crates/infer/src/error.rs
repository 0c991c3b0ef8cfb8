use std::path::PathBuf;

/// Why a model cannot be loaded or run. Messages name the file, tensor or
/// input at fault.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    #[error("cannot read weights {path}: {detail}")]
    Weights { path: PathBuf, detail: String },
    #[error("weights {path} do not fit the {architecture} architecture: {problems}")]
    TensorMismatch {
        path: PathBuf,
        architecture: String,
        problems: String,
    },
    #[error("input tensor {dims:?} does not fit the model: {detail}")]
    Input { dims: Vec<usize>, detail: String },
    #[error("input contains {count} NaN or infinite values")]
    NonFinite { count: usize },
    /// An ONNX graph that cannot be loaded or run: the message names the
    /// node and operator where tract does.
    #[error("ONNX model {path}: {detail}")]
    Onnx { path: PathBuf, detail: String },
    #[error("model computation failed: {0}")]
    Candle(#[from] candle_core::Error),
}
