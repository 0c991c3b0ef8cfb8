//! The fast CPU path against candle's ops on inputs the PyTorch parity
//! fixtures do not cover: odd and non-square sizes (pooling floors, padded
//! edges), batches whose column chunks span two images, single images too
//! small to fill every thread; logits and class maps both.

use candle_core::{Device, Tensor};
use infer::formula::uniform;
use infer::{Architecture, Backend, DenseNetConfig, Model, ResNetConfig, SmallCnnConfig};

fn input(n: usize, c: usize, h: usize, w: usize) -> Tensor {
    let data: Vec<f32> = uniform("fast-input", n * c * h * w)
        .iter()
        .map(|v| v * 2048.0)
        .collect();
    Tensor::from_vec(data, (n, c, h, w), &Device::Cpu).unwrap()
}

/// max |a - b| / max |b|.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale.max(f32::MIN_POSITIVE)
}

fn compare(arch: Architecture, shapes: &[(usize, usize, usize)]) {
    let fast = Model::with_formula_weights_on(arch.clone(), &Device::Cpu, Backend::Fast).unwrap();
    let reference =
        Model::with_formula_weights_on(arch.clone(), &Device::Cpu, Backend::Candle).unwrap();
    for &(n, h, w) in shapes {
        let x = input(n, arch.in_channels(), h, w);
        let (a, am) = fast.logits_and_maps(&x).unwrap();
        let (b, bm) = reference.logits_and_maps(&x).unwrap();
        assert_eq!(a.dims(), b.dims());
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let err = relative(&a, &b);
        let name = arch.name();
        assert!(err <= 1e-4, "{name} {n}x{h}x{w}: logits differ by {err:e}");
        assert_eq!(am.len(), n);
        for (p, q) in am.iter().zip(&bm) {
            assert_eq!(
                (p.height, p.width),
                (q.height, q.width),
                "{name} {n}x{h}x{w}"
            );
            let err = relative(&p.maps, &q.maps);
            assert!(
                err <= 1e-3,
                "{name} {n}x{h}x{w}: class maps differ by {err:e}"
            );
        }
    }
}

const SHAPES: &[(usize, usize, usize)] = &[(1, 64, 64), (3, 65, 47), (2, 33, 90), (1, 130, 97)];

#[test]
fn densenet_fast_path_matches_candle() {
    compare(
        Architecture::DenseNet(DenseNetConfig::densenet121(1, 18)),
        SHAPES,
    );
    let tiny = DenseNetConfig {
        in_channels: 2,
        num_classes: 3,
        growth_rate: 4,
        block_config: vec![2, 3],
        num_init_features: 8,
        bn_size: 2,
    };
    // More than one input channel goes through the same stem.
    compare(Architecture::DenseNet(tiny), &[(2, 40, 41)]);
}

#[test]
fn resnet_fast_path_matches_candle() {
    compare(Architecture::ResNet(ResNetConfig::resnet50(1, 18)), SHAPES);
}

#[test]
fn smallcnn_fast_path_matches_candle() {
    compare(
        Architecture::SmallCnn(SmallCnnConfig::new(1, 5)),
        &[(1, 64, 64), (3, 65, 47), (2, 256, 200)],
    );
}

#[test]
fn the_fast_path_is_the_default_on_the_cpu() {
    let arch = Architecture::SmallCnn(SmallCnnConfig::new(1, 2));
    let model = Model::with_formula_weights(arch, &Device::Cpu).unwrap();
    assert_eq!(model.backend(), Backend::Fast);
}
