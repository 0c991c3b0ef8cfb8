//! The fast CPU path against candle's ops on inputs the PyTorch parity
//! fixtures do not cover: odd and non-square sizes (pooling floors, padded
//! edges), batches whose column chunks span two images, batches cut into
//! several passes, single images too small to fill every thread; logits and
//! class maps both.

use candle_core::{Device, Tensor};
use infer::formula::{uniform, FormulaBackend};
use infer::{Architecture, Backend, DenseNetConfig, Model, ResNetConfig, SmallCnnConfig};

/// Formula noise; odd images quieter and on a bright offset, so the
/// images of a batch differ as radiographs do (as in the parity fixtures).
fn input(n: usize, c: usize, h: usize, w: usize) -> Tensor {
    let image = c * h * w;
    let data: Vec<f32> = uniform("fast-input", n * image)
        .iter()
        .enumerate()
        .map(|(i, v)| match (i / image) % 2 {
            0 => v * 2048.0,
            _ => v * 512.0 + 700.0,
        })
        .collect();
    Tensor::from_vec(data, (n, c, h, w), &Device::Cpu).unwrap()
}

/// Logits are compared at this relative error.
const TOLERANCE: f32 = 1e-4;

/// max |a - b| / max |b|.
fn relative(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale.max(f32::MIN_POSITIVE)
}

/// Formula weights of `gain` (the parity fixtures' gains: the signal
/// reaches the logits) on both backends, over `shapes`.
fn compare(arch: Architecture, gain: i32, shapes: &[(usize, usize, usize)]) {
    let formula = FormulaBackend { gain };
    let fast = Model::with_formula(arch.clone(), &Device::Cpu, Backend::Fast, formula).unwrap();
    let reference =
        Model::with_formula(arch.clone(), &Device::Cpu, Backend::Candle, formula).unwrap();
    for &(n, h, w) in shapes {
        let x = input(n, arch.in_channels(), h, w);
        let (a, am) = fast.logits_and_maps(&x).unwrap();
        let (b, bm) = reference.logits_and_maps(&x).unwrap();
        assert_eq!(a.dims(), b.dims());
        let classes = b.dims()[1];
        let a = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let b = b.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let err = relative(&a, &b);
        let name = arch.name();
        assert!(
            err <= TOLERANCE,
            "{name} {n}x{h}x{w}: logits differ by {err:e}"
        );
        if n >= 2 {
            // The comparison can fail: the batch's first two images give
            // logits far further apart than the tolerance.
            let apart = relative(&b[..classes], &b[classes..2 * classes]);
            assert!(
                apart >= 100.0 * TOLERANCE,
                "{name} {n}x{h}x{w}: input-blind weights ({apart:e})"
            );
        }
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
        2,
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
    compare(Architecture::DenseNet(tiny), 2, &[(2, 40, 41)]);
}

#[test]
fn resnet_fast_path_matches_candle() {
    compare(
        Architecture::ResNet(ResNetConfig::resnet50(1, 18)),
        2,
        SHAPES,
    );
    // A narrow one, as torchvision builds with other stage widths.
    let narrow = ResNetConfig {
        in_channels: 1,
        num_classes: 4,
        layers: vec![1, 2, 1, 1],
        widths: vec![8, 16, 32, 64],
    };
    compare(Architecture::ResNet(narrow), 2, &[(2, 64, 64), (1, 65, 47)]);
}

#[test]
fn smallcnn_fast_path_matches_candle() {
    compare(
        Architecture::SmallCnn(SmallCnnConfig::new(1, 5)),
        3,
        &[(1, 64, 64), (3, 65, 47), (2, 256, 200)],
    );
}

#[test]
fn a_batch_larger_than_one_pass_matches_candle_image_for_image() {
    // Three images of 512x400 are more pixels than one pass takes: the
    // fast path runs two images, then one, and joins the results.
    compare(
        Architecture::SmallCnn(SmallCnnConfig::new(1, 5)),
        3,
        &[(3, 512, 400)],
    );
}

#[test]
fn the_fast_path_is_the_default_on_the_cpu() {
    let arch = Architecture::SmallCnn(SmallCnnConfig::new(1, 2));
    let model = Model::with_formula_weights(arch, &Device::Cpu).unwrap();
    assert_eq!(model.backend(), Backend::Fast);
}
