//! The fast CPU path: DenseNet, ResNet and the small CNN run by a
//! model-specific executor instead of candle's generic ops, with the same
//! weights (read through the same `VarBuilder` paths) and the same results
//! to float rounding (the PyTorch parity tests run against both paths).
//!
//! Why not candle's ops: its CPU convolution copies the whole im2col
//! matrix, multiplies, then copies the result into NCHW; BatchNorm and
//! ReLU are separate passes over memory, and DenseNet's concatenations
//! copy every earlier feature map again at every layer. Here:
//! - maps are channel-major (`C x N x H x W`), so a convolution over a
//!   whole batch is one matrix product and a channel is one contiguous row;
//! - convolutions build their im2col columns one cache-sized chunk at a
//!   time (1x1 ones read their input in place) and finish BatchNorm, bias,
//!   residual and ReLU on the chunk before the next (`conv.rs`);
//! - BatchNorm is folded into the weights where it follows a convolution
//!   (ResNet, the small CNN) and fused into the product's input or output
//!   where it precedes one (DenseNet);
//! - each dense block writes its layers into one pre-allocated buffer, so
//!   concatenation costs nothing.
//!
//! Matrix products use the `gemm` crate (pure Rust, runtime-dispatched
//! AVX2 / AVX-512 kernels); threads are rayon's (`RAYON_NUM_THREADS`).

mod buffers;
// The SIMD kernels' raw buffers: the crate's only unsafe code.
#[allow(unsafe_code)]
mod conv;
mod densenet;
#[allow(unsafe_code)]
mod gemm;
mod pooling;
pub mod profile;
mod resnet;
mod smallcnn;
#[allow(unsafe_code)]
mod winograd;

use candle_core::{Device, Result, Tensor};
use candle_nn::{linear, Linear, VarBuilder};

use crate::Architecture;
use buffers::{Buf, Buffers};
use conv::{Affine, Conv};

/// The shape of channel-major feature maps: each channel is one row of
/// `n * h * w` values (image, then row, then column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub n: usize,
    pub h: usize,
    pub w: usize,
}

impl Geometry {
    /// Values per channel row.
    pub fn cols(&self) -> usize {
        self.n * self.h * self.w
    }
}

/// Channel-major feature maps in a buffer on loan.
pub(crate) struct Maps<'a> {
    pub data: Buf<'a>,
    pub channels: usize,
    pub g: Geometry,
}

impl<'a> Maps<'a> {
    /// Maps whose every value the caller writes before reading.
    pub fn new(buffers: &'a Buffers, channels: usize, g: Geometry) -> Maps<'a> {
        Maps {
            data: buffers.take(channels * g.cols()),
            channels,
            g,
        }
    }
}

enum Body {
    DenseNet(densenet::DenseNet),
    ResNet(resnet::ResNet),
    SmallCnn(smallcnn::SmallCnn),
}

/// A network on the fast path: its feature extractor and linear head.
pub(crate) struct FastNet {
    body: Body,
    head: Linear,
    buffers: Buffers,
}

impl FastNet {
    pub fn new(arch: &Architecture, vb: VarBuilder) -> Result<FastNet> {
        let (body, channels, head) = match arch {
            Architecture::DenseNet(c) => {
                let net = densenet::DenseNet::new(c, vb.pp("features"))?;
                (Body::DenseNet(net.0), net.1, "classifier")
            }
            Architecture::ResNet(c) => {
                let net = resnet::ResNet::new(c, vb.clone())?;
                (Body::ResNet(net.0), net.1, "fc")
            }
            Architecture::SmallCnn(c) => {
                let net = smallcnn::SmallCnn::new(c, vb.pp("features"))?;
                (Body::SmallCnn(net.0), net.1, "classifier")
            }
            Architecture::Onnx(_) => candle_core::bail!("an ONNX graph has no fast-path network"),
        };
        let head = linear(channels, arch.num_classes(), vb.pp(head))?;
        Ok(FastNet {
            body,
            head,
            buffers: Buffers::default(),
        })
    }

    /// The final feature maps, `N x C x h x w` (as candle's path returns).
    /// A batch of more than [`PIXELS_PER_PASS`] input pixels runs in
    /// several passes of equal size (see there).
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let per = images_per_pass(n, h * w);
        if per >= n {
            return self.pass(x);
        }
        let parts = (0..n)
            .step_by(per)
            .map(|i| self.pass(&x.narrow(0, i, per.min(n - i))?))
            .collect::<Result<Vec<_>>>()?;
        Tensor::cat(&parts, 0)
    }

    /// [`FastNet::features`] of a batch in one pass.
    fn pass(&self, x: &Tensor) -> Result<Tensor> {
        let (n, c, h, w) = x.dims4()?;
        let nchw = x.flatten_all()?.to_vec1::<f32>()?;
        let b = &self.buffers;
        let mut input = Maps::new(b, c, Geometry { n, h, w });
        profile::op(
            || "layout NCHW <-> CNHW".into(),
            0,
            |_| transpose(&nchw, n, c, h * w, &mut input.data),
        );
        drop(nchw);
        // The whole pass runs on one of rayon's threads: each operation's
        // tasks are then shared from inside the pool instead of being
        // handed over from outside and waited for (a wake-up and a sleep
        // per operation, ~120 of them in DenseNet-121).
        let (maps, ()) = rayon::join(
            || match &self.body {
                Body::DenseNet(net) => net.features(input, b),
                Body::ResNet(net) => net.features(input, b),
                Body::SmallCnn(net) => net.features(input, b),
            },
            || (),
        );
        let Geometry { n, h, w } = maps.g;
        let mut data = vec![0.0; maps.data.len()];
        profile::op(
            || "layout NCHW <-> CNHW".into(),
            0,
            |_| transpose(&maps.data, maps.channels, n, h * w, &mut data),
        );
        Tensor::from_vec(data, (n, maps.channels, h, w), &Device::Cpu)
    }

    pub fn head(&self) -> &Linear {
        &self.head
    }
}

/// Input pixels (images x height x width) one forward pass takes at most:
/// a larger batch is cut into passes of equal size. The maps of a pass
/// should stay in the last-level cache: the widest map, 256 channels at a
/// quarter of the input's side (DenseNet's first block, ResNet's first
/// stage), takes 64 bytes per input pixel, 32 MiB at 2^19 pixels. Measured
/// (ResNet-50, 512², batch 8, AMD EPYC with 32 MiB of L3, 2026-12-06): one
/// pass 2224 / 4163 ms on 2 / 1 threads, passes of two images 1765 /
/// 3635, of one image 1753 / 3413; at 224² (eight images, 2^18.6 pixels,
/// one pass) passes of four measured the same within noise.
const PIXELS_PER_PASS: usize = 1 << 19;

/// Images of `pixels` each per pass for a batch of `n`: as many as fit in
/// [`PIXELS_PER_PASS`] (at least one), the passes as equal as they can be.
fn images_per_pass(n: usize, pixels: usize) -> usize {
    // More passes than images (one image larger than a pass) still gives
    // one image a pass: the ceiling of a fraction below one.
    let passes = (n * pixels).div_ceil(PIXELS_PER_PASS).max(1);
    n.div_ceil(passes).max(1)
}

/// `a x b` blocks of `plane` values to `b x a` (NCHW <-> CNHW).
fn transpose(data: &[f32], a: usize, b: usize, plane: usize, out: &mut [f32]) {
    for i in 0..a {
        for j in 0..b {
            out[(j * a + i) * plane..][..plane]
                .copy_from_slice(&data[(i * b + j) * plane..][..plane]);
        }
    }
}

fn values(t: Tensor) -> Result<Vec<f32>> {
    t.flatten_all()?.to_vec1::<f32>()
}

/// A bias-free convolution's weights from `vb` (PyTorch's `weight`).
pub(crate) fn conv(
    input: usize,
    out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    vb: VarBuilder,
) -> Result<Conv> {
    Ok(Conv::new(
        out,
        input,
        k,
        stride,
        pad,
        values(vb.get((out, input, k, k), "weight")?)?,
    ))
}

/// BatchNorm2d (epsilon 1e-5, as in `layers::bn`) as a scale and shift.
pub(crate) fn bn(channels: usize, vb: VarBuilder) -> Result<Affine> {
    let get = |name: &str| values(vb.get(channels, name)?);
    Ok(Affine::from_batch_norm(
        &get("weight")?,
        &get("bias")?,
        &get("running_mean")?,
        &get("running_var")?,
        1e-5,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_cut_into_equal_passes_that_fit() {
        // 224²: eight images fit one pass.
        assert_eq!(images_per_pass(8, 224 * 224), 8);
        // 512²: two images a pass; three images in passes of two and one.
        assert_eq!(images_per_pass(8, 512 * 512), 2);
        assert_eq!(images_per_pass(3, 512 * 512), 2);
        // Larger than a pass alone: one image a pass.
        assert_eq!(images_per_pass(4, 1024 * 1024), 1);
        // Nine images of a pass's ninth: one pass; ten: two of five.
        assert_eq!(images_per_pass(9, PIXELS_PER_PASS / 9), 9);
        assert_eq!(images_per_pass(10, PIXELS_PER_PASS / 9), 5);
        assert_eq!(images_per_pass(1, 1), 1);
        assert_eq!(images_per_pass(0, 1), 1);
    }
}
