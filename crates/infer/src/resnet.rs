//! ResNet (He et al., 2016) with bottleneck blocks, in torchvision's layout
//! (stride on the 3x3 convolution, "v1.5"): torchxrayvision's ResNet-50
//! chest model has a one-channel stem and 18 outputs, at 512 x 512.

use candle_core::{Module, ModuleT, Result, Tensor, D};
use candle_nn::{linear, BatchNorm, Conv2d, Linear, VarBuilder};

use crate::layers::{bn, conv};

/// The shape of a bottleneck ResNet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResNetConfig {
    pub in_channels: usize,
    pub num_classes: usize,
    /// Bottleneck blocks per stage.
    pub layers: Vec<usize>,
    /// Each stage's bottleneck width (`planes` in torchvision; the stage
    /// outputs four times as many channels); the stem has the first
    /// stage's. ResNet-50: 64, 128, 256, 512.
    pub widths: Vec<usize>,
}

impl ResNetConfig {
    /// ResNet-50 (torchvision `resnet50`).
    pub fn resnet50(in_channels: usize, num_classes: usize) -> Self {
        ResNetConfig {
            in_channels,
            num_classes,
            layers: vec![3, 4, 6, 3],
            widths: vec![64, 128, 256, 512],
        }
    }
}

struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
}

const EXPANSION: usize = 4;

impl Bottleneck {
    fn new(input: usize, width: usize, stride: usize, vb: VarBuilder) -> Result<Self> {
        let out = width * EXPANSION;
        let downsample = if stride != 1 || input != out {
            Some((
                conv(input, out, 1, stride, 0, vb.pp("downsample.0"))?,
                bn(out, vb.pp("downsample.1"))?,
            ))
        } else {
            None
        };
        Ok(Bottleneck {
            conv1: conv(input, width, 1, 1, 0, vb.pp("conv1"))?,
            bn1: bn(width, vb.pp("bn1"))?,
            conv2: conv(width, width, 3, stride, 1, vb.pp("conv2"))?,
            bn2: bn(width, vb.pp("bn2"))?,
            conv3: conv(width, out, 1, 1, 0, vb.pp("conv3"))?,
            bn3: bn(out, vb.pp("bn3"))?,
            downsample,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.bn1.forward_t(&self.conv1.forward(x)?, false)?.relu()?;
        let y = self
            .bn2
            .forward_t(&self.conv2.forward(&y)?, false)?
            .relu()?;
        let y = self.bn3.forward_t(&self.conv3.forward(&y)?, false)?;
        let identity = match &self.downsample {
            Some((c, b)) => b.forward_t(&c.forward(x)?, false)?,
            None => x.clone(),
        };
        (y + identity)?.relu()
    }
}

/// A bottleneck ResNet classifier in inference mode.
pub struct ResNet {
    conv1: Conv2d,
    bn1: BatchNorm,
    stages: Vec<Vec<Bottleneck>>,
    fc: Linear,
    pub config: ResNetConfig,
}

impl ResNet {
    pub fn new(config: ResNetConfig, vb: VarBuilder) -> Result<Self> {
        let stem = config.widths[0];
        let conv1 = conv(config.in_channels, stem, 7, 2, 3, vb.pp("conv1"))?;
        let bn1 = bn(stem, vb.pp("bn1"))?;
        let mut input = stem;
        let mut stages = Vec::new();
        for (s, (&blocks, &width)) in config.layers.iter().zip(&config.widths).enumerate() {
            let stride = if s == 0 { 1 } else { 2 };
            let vb_stage = vb.pp(format!("layer{}", s + 1));
            let mut stage = Vec::with_capacity(blocks);
            for b in 0..blocks {
                stage.push(Bottleneck::new(
                    input,
                    width,
                    if b == 0 { stride } else { 1 },
                    vb_stage.pp(b),
                )?);
                input = width * EXPANSION;
            }
            stages.push(stage);
        }
        let fc = linear(input, config.num_classes, vb.pp("fc"))?;
        Ok(ResNet {
            conv1,
            bn1,
            stages,
            fc,
            config,
        })
    }

    /// The last stage's feature maps, `N x 4 widths[last] x h x w`.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.bn1.forward_t(&self.conv1.forward(x)?, false)?.relu()?;
        // MaxPool(3, stride 2, padding 1) after ReLU: zero padding is exact.
        let mut x = x
            .pad_with_zeros(D::Minus1, 1, 1)?
            .pad_with_zeros(D::Minus2, 1, 1)?
            .max_pool2d_with_stride(3, 2)?;
        for stage in &self.stages {
            for block in stage {
                x = block.forward(&x)?;
            }
        }
        Ok(x)
    }

    /// The linear head (class maps weigh the feature maps with it).
    pub fn head(&self) -> &Linear {
        &self.fc
    }

    /// Global average pooling and the linear classifier.
    pub fn classify(&self, maps: &Tensor) -> Result<Tensor> {
        crate::layers::classify(&self.fc, maps)
    }

    /// Logits, `N x num_classes`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(&self.features(x)?)
    }
}
