//! The building blocks both networks share, with PyTorch's defaults.

use candle_core::Result;
use candle_nn::{batch_norm, conv2d_no_bias, BatchNorm, Conv2d, Conv2dConfig, VarBuilder};

/// BatchNorm2d with PyTorch's epsilon (1e-5); used in inference mode.
pub(crate) fn bn(channels: usize, vb: VarBuilder) -> Result<BatchNorm> {
    batch_norm(channels, 1e-5, vb)
}

/// A bias-free square convolution, as torchvision's CNNs use throughout.
pub(crate) fn conv(
    i: usize,
    o: usize,
    k: usize,
    stride: usize,
    padding: usize,
    vb: VarBuilder,
) -> Result<Conv2d> {
    conv2d_no_bias(
        i,
        o,
        k,
        Conv2dConfig {
            padding,
            stride,
            ..Default::default()
        },
        vb,
    )
}
