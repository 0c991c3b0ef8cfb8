//! Loading weights, checking them, checking inputs, class maps.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use infer::formula::{uniform, values};
use infer::{Architecture, DenseNetConfig, InferError, Model, ResNetConfig};

fn tiny_densenet() -> Architecture {
    Architecture::DenseNet(DenseNetConfig {
        in_channels: 1,
        num_classes: 3,
        growth_rate: 4,
        block_config: vec![2, 2],
        num_init_features: 8,
        bn_size: 2,
    })
}

fn formula_tensors(arch: &Architecture) -> HashMap<String, Tensor> {
    arch.required_tensors()
        .unwrap()
        .into_iter()
        .map(|(name, dims)| {
            let t = Tensor::from_vec(values(&name, &dims), dims, &Device::Cpu).unwrap();
            (name, t)
        })
        .collect()
}

fn input(n: usize, c: usize, size: usize) -> Tensor {
    let data: Vec<f32> = uniform("input", n * c * size * size)
        .iter()
        .map(|v| v * 2048.0)
        .collect();
    Tensor::from_vec(data, (n, c, size, size), &Device::Cpu).unwrap()
}

fn save(dir: &std::path::Path, tensors: &HashMap<String, Tensor>) -> std::path::PathBuf {
    let p = dir.join("weights.safetensors");
    candle_core::safetensors::save(tensors, &p).unwrap();
    p
}

#[test]
fn safetensors_weights_load_and_match_the_formula() {
    let arch = tiny_densenet();
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), &formula_tensors(&arch));
    let loaded = Model::load(arch.clone(), &path, &Device::Cpu).unwrap();
    let formula = Model::with_formula_weights(arch, &Device::Cpu).unwrap();
    let x = input(2, 1, 64);
    let a: Vec<Vec<f32>> = loaded.logits(&x).unwrap().to_vec2().unwrap();
    let b: Vec<Vec<f32>> = formula.logits(&x).unwrap().to_vec2().unwrap();
    assert_eq!(a, b);
    assert_eq!(a.len(), 2);
    assert_eq!(a[0].len(), 3);
}

#[test]
fn every_tensor_problem_is_listed() {
    let arch = tiny_densenet();
    let mut tensors = formula_tensors(&arch);
    tensors.remove("features.conv0.weight");
    tensors.remove("classifier.bias");
    tensors.insert(
        "features.norm0.weight".into(),
        Tensor::zeros(9, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "head.extra".into(),
        Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "features.norm0.num_batches_tracked".into(),
        Tensor::zeros(1, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = save(dir.path(), &tensors);
    let Err(e) = Model::load(arch, &path, &Device::Cpu) else {
        panic!("loaded bad weights")
    };
    let msg = e.to_string();
    assert!(matches!(e, InferError::TensorMismatch { .. }), "{msg}");
    for needle in [
        "2 missing",
        "classifier.bias",
        "features.conv0.weight",
        "features.norm0.weight is [9], expected [8]",
        "1 unexpected (head.extra)",
        "weights.safetensors",
    ] {
        assert!(msg.contains(needle), "'{needle}' not in: {msg}");
    }
    assert!(!msg.contains("num_batches_tracked"), "{msg}");
}

#[test]
fn unreadable_weights_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("none.safetensors");
    let e = Model::load(tiny_densenet(), &missing, &Device::Cpu)
        .err()
        .unwrap();
    assert!(
        matches!(e, InferError::Weights { .. }) && e.to_string().contains("none.safetensors"),
        "{e}"
    );
    let corrupt = dir.path().join("corrupt.safetensors");
    std::fs::write(
        &corrupt,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    )
    .unwrap();
    let e = Model::load(tiny_densenet(), &corrupt, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(e, InferError::Weights { .. }), "{e}");
}

#[test]
fn bad_inputs_are_refused() {
    let model = Model::with_formula_weights(tiny_densenet(), &Device::Cpu).unwrap();
    for (x, needle) in [
        (input(1, 3, 64), "3 channels, the model takes 1"),
        (input(1, 1, 16), "at least 32 x 32"),
        (
            Tensor::zeros((1, 64, 64), candle_core::DType::F32, &Device::Cpu).unwrap(),
            "N x C x H x W",
        ),
    ] {
        let e = model.logits(&x).unwrap_err();
        assert!(
            matches!(e, InferError::Input { .. }) && e.to_string().contains(needle),
            "{e}"
        );
    }
    let mut data = vec![0f32; 64 * 64];
    data[5] = f32::NAN;
    data[9] = f32::INFINITY;
    let x = Tensor::from_vec(data, (1, 1, 64, 64), &Device::Cpu).unwrap();
    assert!(matches!(
        model.logits(&x).unwrap_err(),
        InferError::NonFinite { count: 2 }
    ));
}

#[test]
fn class_maps_cover_the_feature_grid() {
    for arch in [
        tiny_densenet(),
        Architecture::ResNet(ResNetConfig {
            in_channels: 1,
            num_classes: 3,
            layers: vec![1, 1, 1, 1],
            widths: vec![8, 16, 32, 64],
        }),
    ] {
        let model = Model::with_formula_weights(arch, &Device::Cpu).unwrap();
        let (logits, maps) = model.logits_and_maps(&input(2, 1, 64)).unwrap();
        assert_eq!(logits.dims(), &[2, 3]);
        assert_eq!(maps.len(), 2);
        let m = &maps[0];
        assert_eq!(m.maps.len(), 3 * m.height * m.width);
        assert!(m.maps.iter().all(|v| (0.0..=1.0 + 1e-6).contains(v)));
        // Each non-empty map reaches 1 at its peak.
        for c in 0..3 {
            let plane = &m.maps[c * m.height * m.width..(c + 1) * m.height * m.width];
            let peak = plane.iter().cloned().fold(0f32, f32::max);
            assert!(peak == 0.0 || (peak - 1.0).abs() < 1e-5, "peak {peak}");
        }
    }
}
