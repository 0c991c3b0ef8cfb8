//! DenseNet (Huang et al., 2017) in torchvision's layout, so that a
//! torchvision or torchxrayvision state dict loads unchanged: variable paths
//! are PyTorch's (`features.denseblock1.denselayer1.norm1.weight`, ...).
//! torchxrayvision's chest X-ray model is DenseNet-121 with one input
//! channel and 18 outputs.

use candle_core::{Module, ModuleT, Result, Tensor, D};
use candle_nn::{linear, BatchNorm, Conv2d, Linear, VarBuilder};

use crate::layers::{bn, conv};

/// The shape of a DenseNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseNetConfig {
    pub in_channels: usize,
    pub num_classes: usize,
    pub growth_rate: usize,
    pub block_config: Vec<usize>,
    pub num_init_features: usize,
    pub bn_size: usize,
}

impl DenseNetConfig {
    /// DenseNet-121 (torchvision `densenet121`).
    pub fn densenet121(in_channels: usize, num_classes: usize) -> Self {
        DenseNetConfig {
            in_channels,
            num_classes,
            growth_rate: 32,
            block_config: vec![6, 12, 24, 16],
            num_init_features: 64,
            bn_size: 4,
        }
    }
}

struct DenseLayer {
    norm1: BatchNorm,
    conv1: Conv2d,
    norm2: BatchNorm,
    conv2: Conv2d,
}

impl DenseLayer {
    fn new(input: usize, growth: usize, bn_size: usize, vb: VarBuilder) -> Result<Self> {
        Ok(DenseLayer {
            norm1: bn(input, vb.pp("norm1"))?,
            conv1: conv(input, bn_size * growth, 1, 1, 0, vb.pp("conv1"))?,
            norm2: bn(bn_size * growth, vb.pp("norm2"))?,
            conv2: conv(bn_size * growth, growth, 3, 1, 1, vb.pp("conv2"))?,
        })
    }

    /// The `growth` new feature maps this layer adds.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.norm1.forward_t(x, false)?.relu()?;
        let x = self.conv1.forward(&x)?;
        let x = self.norm2.forward_t(&x, false)?.relu()?;
        self.conv2.forward(&x)
    }
}

struct Transition {
    norm: BatchNorm,
    conv: Conv2d,
}

impl Transition {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.norm.forward_t(x, false)?.relu()?;
        self.conv.forward(&x)?.avg_pool2d(2)
    }
}

/// A DenseNet classifier in inference mode (BatchNorm with running
/// statistics).
pub struct DenseNet {
    conv0: Conv2d,
    norm0: BatchNorm,
    blocks: Vec<Vec<DenseLayer>>,
    transitions: Vec<Transition>,
    norm5: BatchNorm,
    classifier: Linear,
    pub config: DenseNetConfig,
}

impl DenseNet {
    pub fn new(config: DenseNetConfig, vb: VarBuilder) -> Result<Self> {
        let f = vb.pp("features");
        let conv0 = conv(
            config.in_channels,
            config.num_init_features,
            7,
            2,
            3,
            f.pp("conv0"),
        )?;
        let norm0 = bn(config.num_init_features, f.pp("norm0"))?;
        let mut channels = config.num_init_features;
        let (mut blocks, mut transitions) = (Vec::new(), Vec::new());
        for (b, &layers) in config.block_config.iter().enumerate() {
            let vb_block = f.pp(format!("denseblock{}", b + 1));
            let block = (0..layers)
                .map(|l| {
                    DenseLayer::new(
                        channels + l * config.growth_rate,
                        config.growth_rate,
                        config.bn_size,
                        vb_block.pp(format!("denselayer{}", l + 1)),
                    )
                })
                .collect::<Result<Vec<_>>>()?;
            blocks.push(block);
            channels += layers * config.growth_rate;
            if b + 1 < config.block_config.len() {
                let t = f.pp(format!("transition{}", b + 1));
                transitions.push(Transition {
                    norm: bn(channels, t.pp("norm"))?,
                    conv: conv(channels, channels / 2, 1, 1, 0, t.pp("conv"))?,
                });
                channels /= 2;
            }
        }
        let norm5 = bn(channels, f.pp("norm5"))?;
        let classifier = linear(channels, config.num_classes, vb.pp("classifier"))?;
        Ok(DenseNet {
            conv0,
            norm0,
            blocks,
            transitions,
            norm5,
            classifier,
            config,
        })
    }

    /// The final feature maps (after `norm5` and ReLU), `N x C x h x w`:
    /// what the classifier pools, and what class activation maps weigh.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.conv0.forward(x)?;
        let x = self.norm0.forward_t(&x, false)?.relu()?;
        // MaxPool(3, stride 2, padding 1): after ReLU every value is >= 0,
        // so zero padding is the same as PyTorch's -inf padding.
        let mut x = x
            .pad_with_zeros(D::Minus1, 1, 1)?
            .pad_with_zeros(D::Minus2, 1, 1)?
            .max_pool2d_with_stride(3, 2)?;
        for (b, block) in self.blocks.iter().enumerate() {
            let mut maps = vec![x.clone()];
            for layer in block {
                let input = Tensor::cat(&maps, 1)?;
                maps.push(layer.forward(&input)?);
            }
            x = Tensor::cat(&maps, 1)?;
            if let Some(t) = self.transitions.get(b) {
                x = t.forward(&x)?;
            }
        }
        self.norm5.forward_t(&x, false)?.relu()
    }

    /// Logits, `N x num_classes`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let maps = self.features(x)?;
        self.classify(&maps)
    }

    /// The linear head (class maps weigh the feature maps with it).
    pub fn head(&self) -> &Linear {
        &self.classifier
    }

    /// Global average pooling and the linear classifier.
    pub fn classify(&self, maps: &Tensor) -> Result<Tensor> {
        crate::layers::classify(&self.classifier, maps)
    }
}
