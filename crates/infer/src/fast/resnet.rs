//! Bottleneck ResNet on the fast path: every BatchNorm follows a
//! convolution, so each is folded into that convolution's weights and a
//! bias; the residual sum and ReLU are the last convolution's epilogue.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::buffers::Buffers;
use super::conv::{Conv, Epilogue, Prologue};
use super::{bn, conv, pooling, Maps};
use crate::ResNetConfig;

/// A convolution with its BatchNorm folded in.
struct Folded {
    conv: Conv,
    bias: Vec<f32>,
}

impl Folded {
    #[allow(clippy::too_many_arguments)]
    fn new(
        i: usize,
        o: usize,
        k: usize,
        s: usize,
        p: usize,
        c: VarBuilder,
        b: VarBuilder,
    ) -> Result<Folded> {
        let mut conv = conv(i, o, k, s, p, c)?;
        let bias = conv.fold(&bn(o, b)?);
        Ok(Folded { conv, bias })
    }

    fn run<'a>(&self, x: &Maps, b: &'a Buffers, residual: Option<&[f32]>, relu: bool) -> Maps<'a> {
        let g = self.conv.output(x.g, Prologue::None);
        let mut out = Maps::new(b, self.conv.out, g);
        let epilogue = Epilogue::Bias {
            bias: &self.bias,
            residual,
            relu,
        };
        self.conv
            .run(&x.data, x.g, Prologue::None, &mut out.data, epilogue);
        out
    }
}

struct Bottleneck {
    conv1: Folded,
    conv2: Folded,
    conv3: Folded,
    downsample: Option<Folded>,
}

pub(crate) struct ResNet {
    stem: Folded,
    stages: Vec<Vec<Bottleneck>>,
}

const EXPANSION: usize = 4;

impl ResNet {
    /// From a torchvision ResNet's state dict; returns the network and its
    /// output channels.
    pub fn new(c: &ResNetConfig, vb: VarBuilder) -> Result<(ResNet, usize)> {
        let stem = Folded::new(
            c.in_channels,
            c.widths[0],
            7,
            2,
            3,
            vb.pp("conv1"),
            vb.pp("bn1"),
        )?;
        let mut input = c.widths[0];
        let mut stages = Vec::new();
        for (s, (&blocks, &width)) in c.layers.iter().zip(&c.widths).enumerate() {
            let out = width * EXPANSION;
            let vb = vb.pp(format!("layer{}", s + 1));
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                let stride = if b == 0 && s > 0 { 2 } else { 1 };
                let vb = vb.pp(b);
                let downsample = if stride != 1 || input != out {
                    Some(Folded::new(
                        input,
                        out,
                        1,
                        stride,
                        0,
                        vb.pp("downsample.0"),
                        vb.pp("downsample.1"),
                    )?)
                } else {
                    None
                };
                stage.push(Bottleneck {
                    conv1: Folded::new(input, width, 1, 1, 0, vb.pp("conv1"), vb.pp("bn1"))?,
                    conv2: Folded::new(width, width, 3, stride, 1, vb.pp("conv2"), vb.pp("bn2"))?,
                    conv3: Folded::new(width, out, 1, 1, 0, vb.pp("conv3"), vb.pp("bn3"))?,
                    downsample,
                });
                input = out;
            }
            stages.push(stage);
        }
        Ok((ResNet { stem, stages }, input))
    }

    /// The last stage's maps.
    pub fn features<'a>(&self, x: Maps<'a>, b: &'a Buffers) -> Maps<'a> {
        let stem = self.stem.run(&x, b, None, true);
        drop(x);
        let mut x = Maps::new(b, stem.channels, pooling::max_3x3_s2_output(stem.g));
        pooling::max_3x3_s2(&stem, &mut x.data);
        drop(stem);
        for block in self.stages.iter().flatten() {
            let y = block.conv1.run(&x, b, None, true);
            let y = block.conv2.run(&y, b, None, true);
            let identity = block.downsample.as_ref().map(|d| d.run(&x, b, None, false));
            let residual = identity.as_ref().map_or(&x.data, |m| &m.data);
            x = block.conv3.run(&y, b, Some(residual), true);
        }
        x
    }
}
