//! Parity with PyTorch: the same formula weights and input through candle
//! and through torchvision (fixtures/infer/*.json, from
//! tools/infer_reference.py).

use candle_core::{Device, Tensor};
use infer::formula::{uniform, values};
use infer::{DenseNetConfig, HeatmapMethod};
use serde_json::Value;

fn reference(name: &str) -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/infer")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

/// The fixture's input: formula values, image `n` scaled by `scale[n]`
/// and shifted by `offset[n]` (or one `scale` for every image), as
/// tools/infer_reference.py makes it.
fn input(r: &Value) -> Tensor {
    let dims: Vec<usize> = r["input"]["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let per_image = |key: &str, default: f64| -> Vec<f32> {
        match &r["input"][key] {
            Value::Array(a) => a.iter().map(|v| v.as_f64().unwrap() as f32).collect(),
            Value::Null => vec![default as f32; dims[0]],
            v => vec![v.as_f64().unwrap() as f32; dims[0]],
        }
    };
    let (scale, offset) = (per_image("scale", 1.0), per_image("offset", 0.0));
    let n: usize = dims.iter().product();
    let image = n / dims[0];
    let data: Vec<f32> = uniform(r["input"]["name"].as_str().unwrap(), n)
        .iter()
        .enumerate()
        .map(|(i, v)| v * scale[i / image] + offset[i / image])
        .collect();
    Tensor::from_vec(data, dims, &Device::Cpu).unwrap()
}

/// The classifier's input type for the same values.
fn batch(t: &Tensor) -> infer::Batch {
    let dims: [usize; 4] = t.dims().try_into().unwrap();
    infer::Batch::new(t.flatten_all().unwrap().to_vec1().unwrap(), dims).unwrap()
}

/// How far apart the fixture's two images' outputs are, as a share of the
/// largest output: what a model blind to its input would fail.
fn spread(theirs: &Value) -> f64 {
    let m = matrix(theirs);
    let scale = m.iter().flatten().fold(0f64, |a, v| a.max(v.abs()));
    let apart = m[0]
        .iter()
        .zip(&m[1])
        .fold(0f64, |a, (x, y)| a.max((x - y).abs()));
    apart / scale
}

/// Parity is checked at this relative error.
const TOLERANCE: f64 = 1e-4;

/// A JSON array of arrays of numbers.
fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// max |ours - theirs| / max |theirs| over the whole output.
fn relative_error(ours: &[Vec<f32>], theirs: &Value) -> f64 {
    let theirs = matrix(theirs);
    let scale = theirs.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .flatten()
        .zip(theirs.iter().flatten())
        .fold(0f64, |m, (a, b)| m.max((*a as f64 - b).abs()));
    diff / scale
}

#[test]
fn formula_matches_the_python_generator() {
    for (file, dims) in [
        ("densenet121_parity.json", [64, 1, 7, 7]),
        ("resnet50_parity.json", [64, 1, 7, 7]),
        ("smallcnn_parity.json", [16, 1, 3, 3]),
    ] {
        let r = reference(file);
        for (name, theirs) in r["probe"].as_object().unwrap() {
            let theirs: Vec<f32> = theirs
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
                .collect();
            assert_eq!(&values(name, &dims)[..4], &theirs[..], "{file}: {name}");
        }
    }
}

/// Formula weights through `Model` (the path the daemon uses), on the
/// fast path and on candle's ops, against the committed PyTorch logits.
/// Returns the fast path's logits.
fn assert_parity(file: &str, arch: infer::Architecture, classes: usize) -> Vec<Vec<f32>> {
    let r = reference(file);
    // The check can fail: the two images' outputs are far further apart
    // than the tolerance, so a model that ignored its input would not pass.
    let apart = spread(&r["logits"]);
    eprintln!("{file}: the two images' logits differ by {apart:e} of the largest");
    assert!(
        apart >= 100.0 * TOLERANCE,
        "{file}: input-blind fixture ({apart:e})"
    );
    let formula = infer::formula::FormulaBackend {
        gain: r["gain"].as_i64().unwrap() as i32,
    };
    let mut results = Vec::new();
    for backend in [infer::Backend::Fast, infer::Backend::Candle] {
        let model =
            infer::Model::with_formula(arch.clone(), &Device::Cpu, backend, formula).unwrap();
        assert_eq!(model.backend(), backend);
        let logits = model.logits(&input(&r)).unwrap();
        assert_eq!(logits.dims(), &[2, classes]);
        let ours: Vec<Vec<f32>> = logits.to_vec2().unwrap();
        let err = relative_error(&ours, &r["logits"]);
        eprintln!("{file} ({backend:?}): relative error {err:e} against PyTorch");
        assert!(
            err <= TOLERANCE,
            "{file} ({backend:?}): relative error {err:e} against PyTorch"
        );
        results.push(ours);
    }
    results.swap_remove(0)
}

#[test]
fn densenet121_matches_pytorch() {
    let arch = infer::Architecture::DenseNet(DenseNetConfig::densenet121(1, 18));
    let ours = assert_parity("densenet121_parity.json", arch, 18);
    // Sigmoid probabilities, as the model manifests use them.
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let theirs = matrix(&reference("densenet121_parity.json")["logits"]);
    for (a, b) in ours.iter().flatten().zip(theirs.iter().flatten()) {
        assert!((sig(*a as f64) - sig(*b)).abs() / sig(*b) <= 1e-4);
    }
}

#[test]
fn resnet50_matches_pytorch() {
    assert_parity(
        "resnet50_parity.json",
        infer::Architecture::ResNet(infer::ResNetConfig::resnet50(1, 18)),
        18,
    );
}

#[test]
fn smallcnn_matches_pytorch() {
    assert_parity(
        "smallcnn_parity.json",
        infer::Architecture::SmallCnn(infer::SmallCnnConfig::new(1, 5)),
        5,
    );
}

/// The bundled model's trained weights (models/demo-cxr) on both backends
/// against PyTorch: logits and probabilities, on two images whose results
/// differ far more than the tolerance.
#[test]
fn the_bundled_trained_model_matches_pytorch_on_both_backends() {
    use sha2::{Digest, Sha256};
    let r = reference("demo_cxr_parity.json");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let weights = root.join("models/demo-cxr/weights.safetensors");
    assert_eq!(
        format!("{:x}", Sha256::digest(std::fs::read(&weights).unwrap())),
        r["weights_sha256"].as_str().unwrap(),
        "the weights changed: rerun tools/infer_reference.py"
    );
    let apart = spread(&r["probabilities"]);
    eprintln!("demo-cxr: the two images' probabilities differ by {apart:e} of the largest");
    assert!(
        apart >= 100.0 * TOLERANCE,
        "input-blind fixture ({apart:e})"
    );
    let arch = infer::Architecture::SmallCnn(infer::SmallCnnConfig::new(1, 5));
    let theirs = matrix(&r["probabilities"]);
    for backend in [infer::Backend::Fast, infer::Backend::Candle] {
        let model = infer::Model::load_with(arch.clone(), &weights, &Device::Cpu, backend).unwrap();
        let ours: Vec<Vec<f32>> = model.logits(&input(&r)).unwrap().to_vec2().unwrap();
        let err = relative_error(&ours, &r["logits"]);
        assert!(err <= TOLERANCE, "{backend:?}: logits {err:e} from PyTorch");
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        let worst = ours
            .iter()
            .flatten()
            .zip(theirs.iter().flatten())
            .fold(0f64, |m, (a, b)| m.max((sig(*a as f64) - b).abs()));
        eprintln!("demo-cxr ({backend:?}): logits {err:e} relative, probabilities {worst:e} absolute from PyTorch");
        assert!(
            worst <= TOLERANCE,
            "{backend:?}: probabilities {worst:e} from PyTorch"
        );
    }
}

/// tools/convert_weights.py turned a pickled torchxrayvision-style module
/// into safetensors and a manifest; both load here and give PyTorch's
/// logits.
#[test]
fn converted_weights_load_and_match_pytorch() {
    use sha2::{Digest, Sha256};
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/infer/tiny-densenet");
    let manifest: toml::Value =
        toml::from_str(&std::fs::read_to_string(dir.join("model.toml")).unwrap()).unwrap();
    let weights = dir.join(manifest["weights"].as_str().unwrap());
    let sha = format!("{:x}", Sha256::digest(std::fs::read(&weights).unwrap()));
    assert_eq!(sha, manifest["sha256"].as_str().unwrap());
    assert_eq!(manifest["labels"].as_array().unwrap().len(), 3);
    assert_eq!(
        manifest["thresholds"].as_array().unwrap()[1].as_float(),
        Some(0.5)
    );

    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let c = &expected["config"];
    let n = |k: &str| c[k].as_u64().unwrap() as usize;
    let arch = infer::Architecture::DenseNet(DenseNetConfig {
        in_channels: n("in_channels"),
        num_classes: n("num_classes"),
        growth_rate: n("growth_rate"),
        block_config: c["block_config"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect(),
        num_init_features: n("num_init_features"),
        bn_size: n("bn_size"),
    });
    let model = infer::Model::load(arch, &weights, &Device::Cpu).unwrap();
    let ours: Vec<Vec<f32>> = model.logits(&input(&expected)).unwrap().to_vec2().unwrap();
    let err = relative_error(&ours, &expected["logits"]);
    assert!(err <= 1e-4, "relative error {err:e} against PyTorch");
}

/// An ONNX fixture (fixtures/infer/onnx, from `tools/infer_reference.py
/// onnx`) behind a manifest written next to a copy of it.
fn onnx_classifier(
    dir: &std::path::Path,
    file: &str,
    labels: &[&str],
    extra: &str,
) -> Result<infer::Classifier, String> {
    use sha2::{Digest, Sha256};
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/infer/onnx")
        .join(file);
    let bytes = std::fs::read(src).unwrap();
    std::fs::write(dir.join("model.onnx"), &bytes).unwrap();
    let labels: Vec<String> = labels.iter().map(|l| format!("\"{l}\"")).collect();
    std::fs::write(
        dir.join("model.toml"),
        format!(
            "name = \"m\"\nversion = \"1\"\narchitecture = \"onnx\"\nweights = \"model.onnx\"\nsha256 = \"{:x}\"\nlabels = [{}]\n{extra}\n[input]\nspec = \"unit\"\nsize = 64\n",
            Sha256::digest(&bytes),
            labels.join(", ")
        ),
    )
    .unwrap();
    let m = infer::Manifest::load(&dir.join("model.toml")).map_err(|e| e.to_string())?;
    infer::Classifier::load(m, &Device::Cpu).map_err(|e| e.to_string())
}

/// ONNX graphs run on tract as onnxruntime runs them: a DenseNet's logits,
/// and the probabilities output of a network triaged has no Rust code for
/// (depthwise convolution, LayerNorm, GELU, SiLU; two outputs, the labels
/// named by `output_name`).
#[test]
fn onnx_graphs_match_onnxruntime() {
    let r = reference("onnx/expected.json");
    let x = input(&r);
    let dir = tempfile::tempdir().unwrap();
    let dense = onnx_classifier(dir.path(), "tiny-densenet.onnx", &["A", "B", "C"], "").unwrap();
    assert_eq!(dense.model.backend(), infer::Backend::Tract);
    let theirs = &r["tiny-densenet"]["logits"];
    assert!(spread(theirs) > 0.1, "the fixture's images must differ");
    let ours: Vec<Vec<f32>> = dense.model.logits(&x).unwrap().to_vec2().unwrap();
    let e = relative_error(&ours, theirs);
    assert!(e <= TOLERANCE, "tiny-densenet: relative error {e:e}");
    // Logits: probabilities by a sigmoid.
    let p = dense.predict(&batch(&x), true).unwrap();
    let z = theirs[1][2].as_f64().unwrap();
    let f = &p.findings[1][2];
    assert!((f.probability as f64 - 1.0 / (1.0 + (-z).exp())).abs() <= 1e-4);
    assert_eq!(
        dense.model.heatmap_method(8),
        HeatmapMethod::Occlusion { grid: 8 },
        "a graph without maps: occlusion"
    );

    let mini = onnx_classifier(
        dir.path(),
        "mini-convnext.onnx",
        &["A", "B", "C", "D"],
        "output = \"probabilities\"\noutput_name = \"probabilities\"",
    )
    .unwrap();
    let theirs = &r["mini-convnext"]["probabilities"];
    let p = mini.predict(&batch(&x), false).unwrap();
    for (n, findings) in p.findings.iter().enumerate() {
        for (k, f) in findings.iter().enumerate() {
            let t = theirs[n][k].as_f64().unwrap();
            assert!(
                (f.probability as f64 - t).abs() <= 1e-4,
                "image {n} label {k}: {} vs onnxruntime {t}",
                f.probability
            );
        }
    }
}

/// onnxruntime's class maps for image `n`, label `k`, as triaged scales
/// them: ReLU, divided by the map's maximum.
fn normalised_map(maps: &Value, n: usize, k: usize) -> Vec<f64> {
    let plane: Vec<f64> = maps[n][k]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap().max(0.0))
        })
        .collect();
    let max = plane.iter().cloned().fold(0.0, f64::max);
    plane.iter().map(|v| v / (max + 1e-12)).collect()
}

/// A graph exporting class activation maps gives heatmaps from them (the
/// labels' output found as the other one), as onnxruntime computes them.
#[test]
fn onnx_class_maps_make_the_heatmaps() {
    let r = reference("onnx/expected.json");
    let x = input(&r);
    let dir = tempfile::tempdir().unwrap();
    let mini = onnx_classifier(
        dir.path(),
        "mini-convnext.onnx",
        &["A", "B", "C", "D"],
        "output = \"probabilities\"\nthresholds = [0.01, 0.01, 0.01, 0.01]\n[heatmap]\nmaps_output = \"maps\"",
    )
    .unwrap();
    assert_eq!(mini.model.heatmap_method(8), HeatmapMethod::Cam);
    let p = mini.predict(&batch(&x), true).unwrap();
    let mut compared = 0;
    for (n, findings) in p.findings.iter().enumerate() {
        for (k, f) in findings.iter().enumerate() {
            assert!(f.flagged, "threshold 0.01 flags every label");
            let h = f.heatmap.as_ref().expect("a flagged label has a heatmap");
            assert_eq!(h.method, HeatmapMethod::Cam);
            let theirs = normalised_map(&r["mini-convnext"]["maps"], n, k);
            assert_eq!(h.values.len(), theirs.len());
            assert_eq!(h.height * h.width, theirs.len());
            for (a, b) in h.values.iter().zip(&theirs) {
                assert!(
                    (*a as f64 - b).abs() <= 1e-4,
                    "image {n} label {k}: {a} vs {b}"
                );
            }
            compared += 1;
        }
    }
    assert_eq!(compared, 8);
    // A maps output the graph does not have is named.
    let e = onnx_classifier(
        dir.path(),
        "tiny-densenet.onnx",
        &["A", "B", "C"],
        "[heatmap]\nmaps_output = \"cam\"",
    )
    .err()
    .unwrap();
    assert!(
        e.contains("heatmap.maps_output: the graph has no output 'cam' (outputs: logits)"),
        "{e}"
    );
}

/// Without maps, occlusion finds what the output depends on: the graph's
/// logit is the mean of the top-left quadrant, so the cells there (and
/// only those) lower it when covered.
#[test]
fn occlusion_heatmaps_find_what_the_output_depends_on() {
    let dir = tempfile::tempdir().unwrap();
    let quadrant = onnx_classifier(dir.path(), "quadrant.onnx", &["Bleed"], "").unwrap();
    let mut image = vec![0f32; 64 * 64];
    for y in 0..32 {
        image[y * 64..y * 64 + 32].fill(4.0);
    }
    let x = Tensor::from_vec(image, (1, 1, 64, 64), &Device::Cpu).unwrap();
    let p = quadrant.predict(&batch(&x), true).unwrap();
    let f = &p.findings[0][0];
    assert!(f.flagged, "{f:?}");
    let h = f.heatmap.as_ref().expect("heatmap");
    assert_eq!(h.method, HeatmapMethod::Occlusion { grid: 8 });
    assert_eq!((h.height, h.width), (8, 8));
    for gy in 0..8 {
        for gx in 0..8 {
            let want = if gy < 4 && gx < 4 { 1.0 } else { 0.0 };
            let v = h.values[gy * 8 + gx];
            assert!((v - want).abs() < 1e-4, "cell ({gy}, {gx}) is {v}");
        }
    }
    assert!(p.heatmaps_skipped.is_none());
    // Not computed for an image with nothing flagged.
    let blank = Tensor::full(-4f32, (1, 1, 64, 64), &Device::Cpu).unwrap();
    let p = quadrant.predict(&batch(&blank), true).unwrap();
    assert!(!p.findings[0][0].flagged && p.findings[0][0].heatmap.is_none());
    // A budget too small for a 2 x 2 grid: no heatmap, and said so.
    let tight = onnx_classifier(
        dir.path(),
        "quadrant.onnx",
        &["Bleed"],
        "[heatmap]\nocclusion_budget_ms = 0",
    )
    .unwrap();
    let p = tight.predict(&batch(&x), true).unwrap();
    assert!(p.findings[0][0].flagged && p.findings[0][0].heatmap.is_none());
    let skipped = p.heatmaps_skipped.expect("skipped heatmaps are reported");
    assert_eq!((skipped.images, skipped.budget_ms), (1, 0));
    assert!(skipped
        .to_string()
        .contains("heatmap.occlusion_budget_ms = 0"));
}

/// A graph that does not fit its manifest is refused at load, naming what.
#[test]
fn an_onnx_graph_that_does_not_fit_its_manifest_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let e = onnx_classifier(dir.path(), "tiny-densenet.onnx", &["A", "B"], "")
        .err()
        .unwrap();
    assert!(
        e.contains("output 'logits' is [1, 3]") && e.contains("(2 labels)"),
        "{e}"
    );
    let labels = ["A", "B", "C", "D"];
    let e = onnx_classifier(dir.path(), "mini-convnext.onnx", &labels, "")
        .err()
        .unwrap();
    assert!(
        e.contains("has 2 outputs (maps, probabilities)") && e.contains("output_name"),
        "{e}"
    );
    let e = onnx_classifier(
        dir.path(),
        "mini-convnext.onnx",
        &labels,
        "output_name = \"scores\"",
    )
    .err()
    .unwrap();
    assert!(e.contains("no output 'scores'"), "{e}");
    // The maps are not one value per label either.
    let e = onnx_classifier(
        dir.path(),
        "mini-convnext.onnx",
        &labels,
        "output_name = \"maps\"",
    )
    .err()
    .unwrap();
    assert!(e.contains("output 'maps' is [1, 4, 8, 8]"), "{e}");
    // Not an ONNX file at all.
    std::fs::write(dir.path().join("junk.onnx"), b"not a graph").unwrap();
    let bytes = b"not a graph";
    let m = format!(
        "name = \"m\"\nversion = \"1\"\narchitecture = \"onnx\"\nweights = \"junk.onnx\"\nsha256 = \"{:x}\"\nlabels = [\"A\"]\n[input]\nspec = \"unit\"\nsize = 64\n",
        <sha2::Sha256 as sha2::Digest>::digest(bytes)
    );
    std::fs::write(dir.path().join("model.toml"), m).unwrap();
    let m = infer::Manifest::load(&dir.path().join("model.toml")).unwrap();
    let e = infer::Classifier::load(m, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("ONNX model") && e.contains("junk.onnx"), "{e}");
}
