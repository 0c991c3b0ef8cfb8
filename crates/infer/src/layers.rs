//! The building blocks both networks share, with PyTorch's defaults.

use candle_core::{Module, Result, Tensor, D};
use candle_nn::{batch_norm, conv2d_no_bias, BatchNorm, Conv2d, Conv2dConfig, Linear, VarBuilder};

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

/// Global average pooling of `N x C x h x w` maps, then the linear head:
/// every architecture's classifier, on either backend.
pub(crate) fn classify(head: &Linear, maps: &Tensor) -> Result<Tensor> {
    head.forward(&maps.mean(D::Minus1)?.mean(D::Minus1)?)
}
