//! Forward-pass time of DenseNet-121 and ResNet-50 (1 channel, 18 classes,
//! formula weights; `smallcnn`, the bundled demos' network, on request) at
//! a batch size and input size, on the fast path and on candle's ops;
//! prints `model<TAB>size<TAB>batch<TAB>backend<TAB>ms`
//! (median of RUNS after one warm-up). Threads: RAYON_NUM_THREADS.
//! MODELS (default `densenet121,resnet50`), SIZE (default 224) and
//! BACKENDS (default `fast,candle`; `tract` runs ONNX_DIR/MODEL-SIZE.onnx,
//! the same network exported by bench/infer_python.py) narrow the run.
//!
//!     RAYON_NUM_THREADS=2 BATCH=8 cargo bench -p triaged-infer --bench forward
use std::time::Instant;

use candle_core::{Device, Tensor};
use infer::formula::uniform;
use infer::{
    Architecture, Backend, DenseNetConfig, Model, OnnxConfig, ResNetConfig, SmallCnnConfig,
};

fn var(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let batch: usize = std::env::var("BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    let size: usize = var("SIZE", "224").parse().expect("SIZE");
    let models = var("MODELS", "densenet121,resnet50");
    let backends = var("BACKENDS", "fast,candle");
    for (name, arch) in [
        (
            "densenet121",
            Architecture::DenseNet(DenseNetConfig::densenet121(1, 18)),
        ),
        (
            "resnet50",
            Architecture::ResNet(ResNetConfig::resnet50(1, 18)),
        ),
        (
            "smallcnn",
            Architecture::SmallCnn(SmallCnnConfig::new(1, 5)),
        ),
    ] {
        if !models.split(',').any(|m| m == name) {
            continue;
        }
        for (label, backend) in [
            ("fast", Backend::Fast),
            ("candle", Backend::Candle),
            ("tract", Backend::Tract),
        ] {
            if !backends.split(',').any(|b| b == label) {
                continue;
            }
            let model = if backend == Backend::Tract {
                let path =
                    std::path::Path::new(&var("ONNX_DIR", ".")).join(format!("{name}-{size}.onnx"));
                let onnx = Architecture::Onnx(OnnxConfig {
                    in_channels: 1,
                    num_classes: 18,
                    size,
                    output: None,
                    maps: None,
                });
                Model::load(onnx, &path, &Device::Cpu).expect("ONNX model")
            } else {
                Model::with_formula_weights_on(arch.clone(), &Device::Cpu, backend).expect("model")
            };
            let data: Vec<f32> = uniform("input", batch * size * size)
                .iter()
                .map(|v| v * 2048.0)
                .collect();
            let x = Tensor::from_vec(data, (batch, 1, size, size), &Device::Cpu).unwrap();
            model.logits(&x).expect("warm-up");
            let mut times: Vec<f64> = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    std::hint::black_box(model.logits(&x).unwrap());
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            println!("{name}\t{size}\t{batch}\t{label}\t{:.1}", times[runs / 2]);
        }
    }
}
