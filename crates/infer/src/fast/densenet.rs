//! DenseNet on the fast path. Each dense block owns one buffer with room
//! for its input and every layer's `growth` new channels: a layer reads
//! the channels before it and writes its own rows, so the concatenation
//! torchvision performs at every layer is free here.

use candle_core::Result;
use candle_nn::VarBuilder;

use super::buffers::Buffers;
use super::conv::{Affine, Conv, Epilogue, Prologue};
use super::{bn, conv, pooling, profile, Maps};
use crate::DenseNetConfig;

struct Layer {
    norm1: Affine,
    conv1: Conv,
    norm2: Affine,
    conv2: Conv,
}

pub(crate) struct DenseNet {
    conv0: Conv,
    norm0: Affine,
    blocks: Vec<Vec<Layer>>,
    transitions: Vec<(Affine, Conv)>,
    norm5: Affine,
}

impl DenseNet {
    /// From `features.*` of a torchvision DenseNet; returns the network
    /// and its output channels.
    pub fn new(c: &DenseNetConfig, f: VarBuilder) -> Result<(DenseNet, usize)> {
        let conv0 = conv(c.in_channels, c.num_init_features, 7, 2, 3, f.pp("conv0"))?;
        let norm0 = bn(c.num_init_features, f.pp("norm0"))?;
        let mut channels = c.num_init_features;
        let (mut blocks, mut transitions) = (Vec::new(), Vec::new());
        let width = c.bn_size * c.growth_rate;
        for (b, &layers) in c.block_config.iter().enumerate() {
            let vb = f.pp(format!("denseblock{}", b + 1));
            let block = (0..layers)
                .map(|l| {
                    let vb = vb.pp(format!("denselayer{}", l + 1));
                    let input = channels + l * c.growth_rate;
                    Ok(Layer {
                        norm1: bn(input, vb.pp("norm1"))?,
                        conv1: conv(input, width, 1, 1, 0, vb.pp("conv1"))?,
                        norm2: bn(width, vb.pp("norm2"))?,
                        conv2: conv(width, c.growth_rate, 3, 1, 1, vb.pp("conv2"))?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            blocks.push(block);
            channels += layers * c.growth_rate;
            if b + 1 < c.block_config.len() {
                let t = f.pp(format!("transition{}", b + 1));
                transitions.push((
                    bn(channels, t.pp("norm"))?,
                    conv(channels, channels / 2, 1, 1, 0, t.pp("conv"))?,
                ));
                channels /= 2;
            }
        }
        let norm5 = bn(channels, f.pp("norm5"))?;
        let net = DenseNet {
            conv0,
            norm0,
            blocks,
            transitions,
            norm5,
        };
        Ok((net, channels))
    }

    /// The maps after `norm5` and ReLU.
    pub fn features<'a>(&self, x: Maps<'a>, b: &'a Buffers) -> Maps<'a> {
        let g = self.conv0.output(x.g, Prologue::None);
        let mut stem = Maps::new(b, self.conv0.out, g);
        self.conv0.run(
            &x.data,
            x.g,
            Prologue::None,
            &mut stem.data,
            Epilogue::BnRelu(&self.norm0),
        );
        drop(x);
        // The block's input goes straight into its buffer's first rows.
        let mut channels = self.conv0.out;
        let mut g = pooling::max_3x3_s2_output(g);
        let mut block = Maps::new(b, channels + self.growth(0), g);
        pooling::max_3x3_s2(&stem, &mut block.data[..channels * g.cols()]);
        drop(stem);
        for (i, layers) in self.blocks.iter().enumerate() {
            let cols = g.cols();
            let width = layers.first().map_or(0, |l| l.conv1.out);
            let mut bottleneck = b.take(width * cols);
            for l in layers {
                l.conv1.run(
                    &block.data[..channels * cols],
                    g,
                    Prologue::BnRelu(&l.norm1),
                    &mut bottleneck,
                    Epilogue::BnRelu(&l.norm2),
                );
                let new = &mut block.data[channels * cols..(channels + l.conv2.out) * cols];
                l.conv2
                    .run(&bottleneck, g, Prologue::None, new, Epilogue::None);
                channels += l.conv2.out;
            }
            let Some((norm, tconv)) = self.transitions.get(i) else {
                break;
            };
            let pro = Prologue::BnReluPool(norm);
            let next_g = tconv.output(g, pro);
            let mut next = Maps::new(b, tconv.out + self.growth(i + 1), next_g);
            tconv.run(
                &block.data,
                g,
                pro,
                &mut next.data[..tconv.out * next_g.cols()],
                Epilogue::None,
            );
            block = next;
            channels = tconv.out;
            g = next_g;
        }
        let cols = g.cols();
        profile::op(
            || "BN+ReLU (norm5)".into(),
            0,
            |_| {
                for (c, row) in block.data.chunks_mut(cols).enumerate() {
                    self.norm5.relu_in_place(c, row);
                }
            },
        );
        block
    }

    /// Channels block `b` adds.
    fn growth(&self, b: usize) -> usize {
        self.blocks
            .get(b)
            .map_or(0, |l| l.iter().map(|l| l.conv2.out).sum())
    }
}
