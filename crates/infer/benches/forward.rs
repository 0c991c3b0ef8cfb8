//! Forward-pass time of DenseNet-121 and ResNet-50 (1 channel, 18 classes,
//! formula weights) at a batch size; prints `model<TAB>batch<TAB>ms`
//! (median of RUNS after one warm-up). Threads: RAYON_NUM_THREADS.
//!
//!     RAYON_NUM_THREADS=2 BATCH=8 cargo bench -p triaged-infer --bench forward
use std::time::Instant;

use candle_core::{Device, Tensor};
use infer::formula::uniform;
use infer::{Architecture, DenseNetConfig, Model, ResNetConfig};

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    for (name, arch) in [
        (
            "densenet121",
            Architecture::DenseNet(DenseNetConfig::densenet121(1, 18)),
        ),
        (
            "resnet50",
            Architecture::ResNet(ResNetConfig::resnet50(1, 18)),
        ),
    ] {
        let model = Model::with_formula_weights(arch, &Device::Cpu).expect("model");
        let data: Vec<f32> = uniform("input", batch * 224 * 224)
            .iter()
            .map(|v| v * 2048.0)
            .collect();
        let x = Tensor::from_vec(data, (batch, 1, 224, 224), &Device::Cpu).unwrap();
        model.logits(&x).expect("warm-up");
        let mut times: Vec<f64> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(model.logits(&x).unwrap());
                t.elapsed().as_secs_f64() * 1000.0
            })
            .collect();
        times.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!("{name}\t{batch}\t{:.1}", times[runs / 2]);
    }
}
