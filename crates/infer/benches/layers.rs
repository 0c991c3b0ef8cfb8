//! Where the fast path's time goes: DenseNet-121 and ResNet-50 (1 channel,
//! 18 classes, formula weights) at SIZE² (default 224), BATCH images
//! (default 1), recorded per kind of operation by `infer::profile` over
//! RUNS passes after a warm-up. Columns: calls and wall ms per pass, share
//! of the whole forward pass, multiply-accumulate rate, and the thread time
//! (all threads summed) spent building columns, in the matrix product, and
//! in the epilogue.
//!
//!     RAYON_NUM_THREADS=2 cargo bench -p triaged-infer --bench layers
use std::time::Instant;

use candle_core::{Device, Tensor};
use infer::formula::uniform;
use infer::{profile, Architecture, DenseNetConfig, Model, ResNetConfig};

fn var(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let (runs, batch, size) = (var("RUNS", 5), var("BATCH", 1), var("SIZE", 224));
    let threads = rayon::current_num_threads();
    for (name, arch) in [
        (
            "DenseNet-121",
            Architecture::DenseNet(DenseNetConfig::densenet121(1, 18)),
        ),
        (
            "ResNet-50",
            Architecture::ResNet(ResNetConfig::resnet50(1, 18)),
        ),
    ] {
        let model = Model::with_formula_weights(arch, &Device::Cpu).unwrap();
        let data: Vec<f32> = uniform("input", batch * size * size)
            .iter()
            .map(|v| v * 2048.0)
            .collect();
        let x = Tensor::from_vec(data, (batch, 1, size, size), &Device::Cpu).unwrap();
        model.logits(&x).unwrap();
        profile::enable(true);
        let start = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(model.logits(&x).unwrap());
        }
        let whole = start.elapsed().as_secs_f64() * 1e3 / runs as f64;
        profile::enable(false);
        let mut rows: Vec<_> = profile::take().into_iter().collect();
        rows.sort_by(|a, b| b.1.wall_ms.partial_cmp(&a.1.wall_ms).unwrap());
        println!("\n{name} {size}² batch {batch}, {threads} threads: {whole:.1} ms a pass\n");
        println!(
            "| operation | calls | ms | share | GMAC/s | columns ms | gemm ms | epilogue ms |"
        );
        println!("|---|---:|---:|---:|---:|---:|---:|---:|");
        let r = runs as f64;
        let mut sum = 0.0;
        for (kind, e) in rows {
            let ms = e.wall_ms / r;
            sum += ms;
            let rate = if e.macs > 0 {
                format!("{:.1}", e.macs as f64 / (e.wall_ms / 1e3) / 1e9)
            } else {
                String::new()
            };
            println!(
                "| {kind} | {} | {ms:.2} | {:.0} % | {rate} | {:.2} | {:.2} | {:.2} |",
                e.calls / runs,
                100.0 * ms / whole,
                e.columns_ms / r,
                e.gemm_ms / r,
                e.epilogue_ms / r,
            );
        }
        println!(
            "| other (input check, head, allocation) | | {:.2} | {:.0} % | | | | |",
            whole - sum,
            100.0 * (whole - sum) / whole
        );
    }
}
