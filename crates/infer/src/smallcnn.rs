//! The project's own small CNN: a plain stack of stride-2 and stride-1 3x3
//! convolutions with BatchNorm and ReLU, global average pooling and a
//! linear head. About 1.2 M parameters at the default widths, so it trains
//! on two CPU cores and its weights stay under 5 MB. Variable paths are
//! those of the equivalent `torch.nn.Sequential` (`features.0.weight`,
//! `features.1.running_mean`, ..., `classifier.weight`), defined in
//! tools/infer_reference.py.

use candle_core::{Module, ModuleT, Result, Tensor};
use candle_nn::{linear, BatchNorm, Conv2d, Linear, VarBuilder};

use crate::layers::{bn, conv};

/// The shape of a [`SmallCnn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallCnnConfig {
    pub in_channels: usize,
    pub num_classes: usize,
    /// Channels of each stage; each stage halves the resolution.
    pub widths: Vec<usize>,
}

impl SmallCnnConfig {
    pub fn new(in_channels: usize, num_classes: usize) -> Self {
        SmallCnnConfig {
            in_channels,
            num_classes,
            widths: vec![16, 32, 64, 128, 256],
        }
    }
}

/// Layers per stage in the Sequential: conv, bn, relu, conv, bn, relu.
const PER_STAGE: usize = 6;

pub struct SmallCnn {
    stages: Vec<[(Conv2d, BatchNorm); 2]>,
    classifier: Linear,
    pub config: SmallCnnConfig,
}

impl SmallCnn {
    pub fn new(config: SmallCnnConfig, vb: VarBuilder) -> Result<Self> {
        let f = vb.pp("features");
        let mut c = config.in_channels;
        let mut stages = Vec::new();
        for (s, &w) in config.widths.iter().enumerate() {
            let at = |k: usize| f.pp(s * PER_STAGE + k);
            stages.push([
                (conv(c, w, 3, 2, 1, at(0))?, bn(w, at(1))?),
                (conv(w, w, 3, 1, 1, at(3))?, bn(w, at(4))?),
            ]);
            c = w;
        }
        let classifier = linear(c, config.num_classes, vb.pp("classifier"))?;
        Ok(SmallCnn {
            stages,
            classifier,
            config,
        })
    }

    /// The last stage's feature maps.
    pub fn features(&self, x: &Tensor) -> Result<Tensor> {
        self.features_t(x, false)
    }

    /// Feature maps; in training mode BatchNorm uses (and updates its
    /// running statistics from) the batch.
    pub fn features_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let mut x = x.clone();
        for stage in &self.stages {
            for (c, b) in stage {
                x = b.forward_t(&c.forward(&x)?, train)?.relu()?;
            }
        }
        Ok(x)
    }

    /// The linear head (class maps weigh the feature maps with it).
    pub fn head(&self) -> &Linear {
        &self.classifier
    }

    /// Global average pooling and the linear classifier.
    pub fn classify(&self, maps: &Tensor) -> Result<Tensor> {
        crate::layers::classify(&self.classifier, maps)
    }

    /// Logits, `N x num_classes`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.classify(&self.features(x)?)
    }

    /// Logits, in training or inference mode.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        self.classify(&self.features_t(x, train)?)
    }
}
