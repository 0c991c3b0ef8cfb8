//! Where DenseNet-121's time goes on the CPU: the network's own sequence
//! of operations (stem, 58 dense layers, 3 transitions, head) at 224², run
//! with candle's ops one by one and timed per kind, next to the whole
//! model's forward pass. Prints a table (median of RUNS passes).
//! The groundwork for the fast-CPU-inference issue.
//!
//!     RAYON_NUM_THREADS=2 cargo bench -p triaged-infer --bench layers
use std::collections::BTreeMap;
use std::time::Instant;

use candle_core::{Device, Tensor};
use infer::formula::uniform;
use infer::{Architecture, DenseNetConfig, Model};

fn t(shape: &[usize], name: &str) -> Tensor {
    let n: usize = shape.iter().product();
    Tensor::from_vec(uniform(name, n), shape, &Device::Cpu).unwrap()
}

/// BatchNorm in inference mode (a per-channel scale and shift) and ReLU.
fn bn_relu(x: &Tensor, c: usize) -> Tensor {
    let scale = t(&[1, c, 1, 1], "s");
    let shift = t(&[1, c, 1, 1], "b");
    x.broadcast_mul(&scale)
        .unwrap()
        .broadcast_add(&shift)
        .unwrap()
        .relu()
        .unwrap()
}

struct Timer(BTreeMap<&'static str, (usize, f64)>);

impl Timer {
    fn time<T>(&mut self, kind: &'static str, f: impl FnOnce() -> T) -> T {
        let start = Instant::now();
        let out = std::hint::black_box(f());
        let e = self.0.entry(kind).or_default();
        e.0 += 1;
        e.1 += start.elapsed().as_secs_f64() * 1000.0;
        out
    }
}

/// One pass of DenseNet-121's operations; returns per-kind (count, ms).
fn pass() -> BTreeMap<&'static str, (usize, f64)> {
    let mut tm = Timer(BTreeMap::new());
    let x = t(&[1, 1, 224, 224], "x");
    let w = t(&[64, 1, 7, 7], "w0");
    let x = tm.time("conv 7x7 stem", || x.conv2d(&w, 3, 2, 1, 1).unwrap());
    let x = tm.time("batchnorm+relu", || bn_relu(&x, 64));
    let x = tm.time("pooling", || {
        x.pad_with_same(2, 1, 1)
            .unwrap()
            .pad_with_same(3, 1, 1)
            .unwrap()
            .max_pool2d_with_stride(3, 2)
            .unwrap()
    });
    let mut features = x;
    let mut c = 64;
    for (b, &layers) in [6usize, 12, 24, 16].iter().enumerate() {
        let mut parts = vec![features.clone()];
        for l in 0..layers {
            let input = tm.time("concatenation", || Tensor::cat(&parts, 1).unwrap());
            let y = tm.time("batchnorm+relu", || bn_relu(&input, c + 32 * l));
            let w1 = t(&[128, c + 32 * l, 1, 1], "w1");
            let y = tm.time("conv 1x1 (dense layers)", || {
                y.conv2d(&w1, 0, 1, 1, 1).unwrap()
            });
            let y = tm.time("batchnorm+relu", || bn_relu(&y, 128));
            let w2 = t(&[32, 128, 3, 3], "w2");
            let y = tm.time("conv 3x3", || y.conv2d(&w2, 1, 1, 1, 1).unwrap());
            parts.push(y);
        }
        features = tm.time("concatenation", || Tensor::cat(&parts, 1).unwrap());
        c += 32 * layers;
        if b < 3 {
            let y = tm.time("batchnorm+relu", || bn_relu(&features, c));
            let w = t(&[c / 2, c, 1, 1], "wt");
            let y = tm.time("conv 1x1 (transitions)", || {
                y.conv2d(&w, 0, 1, 1, 1).unwrap()
            });
            features = tm.time("pooling", || y.avg_pool2d(2).unwrap());
            c /= 2;
        }
    }
    let y = tm.time("batchnorm+relu", || bn_relu(&features, c));
    let pooled = tm.time("pooling", || {
        y.mean_keepdim(3)
            .unwrap()
            .mean_keepdim(2)
            .unwrap()
            .flatten_from(1)
            .unwrap()
    });
    let wl = t(&[18, c], "wl");
    tm.time("classifier", || pooled.matmul(&wl.t().unwrap()).unwrap());
    tm.0
}

fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    pass();
    let mut passes: Vec<BTreeMap<&'static str, (usize, f64)>> = (0..runs).map(|_| pass()).collect();
    passes.sort_by(|a, b| {
        let sum = |m: &BTreeMap<&str, (usize, f64)>| m.values().map(|v| v.1).sum::<f64>();
        sum(a).partial_cmp(&sum(b)).unwrap()
    });
    let median = &passes[runs / 2];
    let total: f64 = median.values().map(|v| v.1).sum();
    let model = Model::with_formula_weights(
        Architecture::DenseNet(DenseNetConfig::densenet121(1, 18)),
        &Device::Cpu,
    )
    .unwrap();
    let x = t(&[1, 1, 224, 224], "x");
    model.logits(&x).unwrap();
    let mut whole: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            std::hint::black_box(model.logits(&x).unwrap());
            s.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    whole.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("| operation | count | ms | share |\n|---|---:|---:|---:|");
    let mut rows: Vec<_> = median.iter().collect();
    rows.sort_by(|a, b| b.1 .1.partial_cmp(&a.1 .1).unwrap());
    for (kind, (n, ms)) in rows {
        println!("| {kind} | {n} | {ms:.1} | {:.0} % |", 100.0 * ms / total);
    }
    println!("| **sum of operations** | | **{total:.1}** | |");
    println!(
        "| whole model forward (infer::Model) | 1 | {:.1} | |",
        whole[runs / 2]
    );
}
