//! The project's small CNN on the fast path: 3x3 convolutions with their
//! BatchNorm folded in and ReLU as the epilogue.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::buffers::Buffers;
use super::conv::{Conv, Epilogue, Prologue};
use super::{bn, conv, Maps};
use crate::SmallCnnConfig;

/// Layers per stage in the PyTorch Sequential (see `crate::smallcnn`).
const PER_STAGE: usize = 6;

pub(crate) struct SmallCnn {
    layers: Vec<(Conv, Vec<f32>)>,
}

impl SmallCnn {
    /// From `features.*`; returns the network and its output channels.
    pub fn new(c: &SmallCnnConfig, f: VarBuilder) -> Result<(SmallCnn, usize)> {
        let mut input = c.in_channels;
        let mut layers = Vec::new();
        for (s, &w) in c.widths.iter().enumerate() {
            for (i, stride) in [(0, 2), (3, 1)] {
                let at = s * PER_STAGE + i;
                let mut conv = conv(input, w, 3, stride, 1, f.pp(at))?;
                let bias = conv.fold(&bn(w, f.pp(at + 1))?);
                layers.push((conv, bias));
                input = w;
            }
        }
        Ok((SmallCnn { layers }, input))
    }

    pub fn features<'a>(&self, mut x: Maps<'a>, b: &'a Buffers) -> Maps<'a> {
        for (conv, bias) in &self.layers {
            let g = conv.output(x.g, Prologue::None);
            let mut out = Maps::new(b, conv.out, g);
            let epilogue = Epilogue::Bias {
                bias,
                residual: None,
                relu: true,
            };
            conv.run(&x.data, x.g, Prologue::None, &mut out.data, epilogue);
            x = out;
        }
        x
    }
}
