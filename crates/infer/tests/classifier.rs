//! Manifests and the classifier, on the converter's committed output.

use std::path::PathBuf;

use candle_core::Device;
use infer::formula::uniform;
use infer::{Batch, Classifier, ClassifierError, Manifest, ManifestError};

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/infer/tiny-densenet")
}

fn input(n: usize) -> Batch {
    let data: Vec<f32> = uniform("input", n * 64 * 64)
        .iter()
        .map(|v| v * 2048.0)
        .collect();
    Batch::new(data, [n, 1, 64, 64]).unwrap()
}

#[test]
fn classifier_reports_recalibrated_findings_with_heatmaps() {
    let manifest = Manifest::load(&tiny().join("model.toml")).unwrap();
    assert_eq!(
        manifest.labels,
        ["Effusion", "Pneumothorax", "Cardiomegaly"]
    );
    let c = Classifier::load(manifest, &Device::Cpu).unwrap();
    let p = c.predict(&input(2), true).unwrap();
    assert_eq!(p.findings.len(), 2);
    for image in &p.findings {
        assert_eq!(image.len(), 3);
        for f in image {
            assert!((0.0..=1.0).contains(&f.probability));
            assert_eq!(
                f.threshold, 0.5,
                "recalibrated outputs are compared with 0.5"
            );
            assert_eq!(f.flagged, f.probability >= 0.5);
            assert_eq!(f.heatmap.is_some(), f.flagged);
        }
    }
    let plain = c.predict(&input(2), false).unwrap();
    assert!(plain.findings.iter().flatten().all(|f| f.heatmap.is_none()));
}

#[test]
fn recalibration_maps_the_threshold_to_one_half() {
    let m = Manifest::load(&tiny().join("model.toml")).unwrap();
    for (i, t) in [(0, 0.25f32), (1, 0.5), (2, 0.75)] {
        assert!((m.recalibrated(i, t) - 0.5).abs() < 1e-6);
        assert!(m.recalibrated(i, 0.0).abs() < 1e-6);
        assert!((m.recalibrated(i, 1.0) - 1.0).abs() < 1e-6);
        assert!(m.recalibrated(i, t - 0.01) < 0.5 && m.recalibrated(i, t + 0.01) > 0.5);
    }
}

#[test]
fn a_tampered_weights_file_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.toml", "weights.safetensors"] {
        std::fs::copy(tiny().join(f), dir.path().join(f)).unwrap();
    }
    let w = dir.path().join("weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&w, bytes).unwrap();
    let m = Manifest::load(&dir.path().join("model.toml")).unwrap();
    let Err(e) = Classifier::load(m, &Device::Cpu) else {
        panic!("loaded tampered weights")
    };
    assert!(
        matches!(e, ClassifierError::Manifest(ManifestError::Checksum { .. })),
        "{e}"
    );
    assert!(e.to_string().contains("weights.safetensors"), "{e}");
}

#[test]
fn manifest_problems_name_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.toml");
    std::fs::write(
        &p,
        r#"name = "x"
version = "1"
architecture = "vgg16"
weights = "w.safetensors"
sha256 = "abc"
labels = ["A", "B"]
thresholds = [0.5, 1.5, 0.2]
[input]
spec = "jpeg"
size = 8
"#,
    )
    .unwrap();
    let e = Manifest::load(&p).unwrap_err().to_string();
    for key in [
        "architecture",
        "sha256",
        "thresholds: 3 values",
        "input.spec",
        "input.size",
        "model.toml",
    ] {
        assert!(e.contains(key), "'{key}' not in {e}");
    }
    std::fs::write(&p, "name = \"x\"\nversoin = \"1\"\n").unwrap();
    assert!(Manifest::load(&p)
        .unwrap_err()
        .to_string()
        .contains("versoin"));
}

#[test]
fn reference_scores_are_ten_fractions_of_a_known_label() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.toml");
    let base = "name = \"demo\"\nversion = \"1\"\narchitecture = \"smallcnn\"\nweights = \"w.safetensors\"\n\
                sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\
                labels = [\"Effusion\", \"Nodule\"]\n[input]\nspec = \"xrv\"\nsize = 64\n";
    std::fs::write(
        &p,
        format!("{base}[reference_scores]\nEffusion = [0.5, 0.2, 0.1, 0.05, 0.05, 0.03, 0.03, 0.02, 0.01, 0.01]\n"),
    )
    .unwrap();
    let m = Manifest::load(&p).unwrap();
    assert_eq!(m.reference_scores["Effusion"].len(), 10);
    std::fs::write(
        &p,
        format!("{base}[reference_scores]\nEffusion = [0.5, 0.5]\nMass = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n"),
    )
    .unwrap();
    let e = Manifest::load(&p).unwrap_err().to_string();
    assert!(
        e.contains("reference_scores.Effusion: ten non-negative"),
        "{e}"
    );
    assert!(
        e.contains("reference_scores.Mass: not one of labels"),
        "{e}"
    );
}

#[test]
fn smallcnn_manifests_choose_their_widths() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.toml");
    let base = "name = \"demo\"\nversion = \"1\"\narchitecture = \"smallcnn\"\nweights = \"w.safetensors\"\n\
                sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\
                labels = [\"Effusion\", \"Pneumothorax\"]\n[input]\nspec = \"xrv\"\nsize = 256\n";
    std::fs::write(&p, format!("{base}[smallcnn]\nwidths = [8, 16]\n")).unwrap();
    let m = Manifest::load(&p).unwrap();
    match m.architecture().unwrap() {
        infer::Architecture::SmallCnn(c) => {
            assert_eq!(
                (c.in_channels, c.num_classes, c.widths),
                (1, 2, vec![8, 16])
            )
        }
        other => panic!("{other:?}"),
    }
    std::fs::write(&p, format!("{base}[smallcnn]\nwidths = [8, 0]\n")).unwrap();
    assert!(Manifest::load(&p)
        .unwrap_err()
        .to_string()
        .contains("smallcnn.widths"));
}

/// Recalibrated probabilities (torchxrayvision's op_norm) agree with
/// PyTorch's on the converted model.
#[test]
fn recalibrated_probabilities_match_pytorch() {
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny().join("expected.json")).unwrap())
            .unwrap();
    let c = Classifier::load(
        Manifest::load(&tiny().join("model.toml")).unwrap(),
        &Device::Cpu,
    )
    .unwrap();
    let p = c.predict(&input(2), false).unwrap();
    for (n, row) in expected["recalibrated"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        for (i, v) in row.as_array().unwrap().iter().enumerate() {
            let theirs = v.as_f64().unwrap();
            let ours = p.findings[n][i].probability as f64;
            assert!(
                (ours - theirs).abs() <= 1e-4 * theirs.abs().max(1e-3),
                "image {n} label {i}: {ours} vs {theirs}"
            );
        }
    }
}

/// A label the model does not predict (an untrained head) is listed in
/// `not_predicted` and never reported; the others keep their own outputs,
/// thresholds and heatmaps.
#[test]
fn labels_the_model_does_not_predict_are_never_reported() {
    let dir = tempfile::tempdir().unwrap();
    for f in ["model.toml", "weights.safetensors"] {
        std::fs::copy(tiny().join(f), dir.path().join(f)).unwrap();
    }
    let p = dir.path().join("model.toml");
    let text = std::fs::read_to_string(&p).unwrap();
    let all = Classifier::load(Manifest::load(&p).unwrap(), &Device::Cpu).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("not_predicted"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(
        &p,
        text.replace(
            "labels = [",
            "not_predicted = [\"Pneumothorax\"]\nlabels = [",
        ),
    )
    .unwrap();
    let m = Manifest::load(&p).unwrap();
    assert_eq!(m.reported(), [0, 2]);
    let some = Classifier::load(m, &Device::Cpu).unwrap();
    let (a, b) = (
        all.predict(&input(2), true).unwrap(),
        some.predict(&input(2), true).unwrap(),
    );
    for (every, reported) in a.findings.iter().zip(&b.findings) {
        let labels: Vec<&str> = reported.iter().map(|f| f.label.as_str()).collect();
        assert_eq!(labels, ["Effusion", "Cardiomegaly"]);
        assert_eq!(reported[0], every[0]);
        assert_eq!(reported[1], every[2]);
    }

    // What the manifest must get right about it, each named.
    for (labels, not_predicted, problem) in [
        (
            r#"["A", "B"]"#,
            r#"["C"]"#,
            "not_predicted: 'C' is not one of the labels",
        ),
        (
            r#"["A", "B"]"#,
            r#"["A", "B"]"#,
            "at least one must be predicted",
        ),
        (r#"["A", ""]"#, "[]", "labels: label 1 has no name"),
        (r#"["A", "A"]"#, "[]", "labels: 'A' is named twice"),
    ] {
        std::fs::write(
            &p,
            format!(
                "name = \"x\"\nversion = \"1\"\narchitecture = \"smallcnn\"\nweights = \"w\"\nsha256 = \"{}\"\nlabels = {labels}\nnot_predicted = {not_predicted}\n[input]\nspec = \"xrv\"\nsize = 64\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(e.contains(problem), "'{problem}' not in {e}");
    }
}

#[test]
fn imagenet_inputs_take_one_channel_per_mean_and_std() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("model.toml");
    let base = "name = \"backbone\"\nversion = \"1\"\narchitecture = \"onnx\"\nweights = \"model.onnx\"\n\
                sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\
                labels = [\"Effusion\", \"Pneumothorax\"]\n[input]\nspec = \"imagenet\"\nsize = 224\n";
    std::fs::write(&p, base).unwrap();
    let m = Manifest::load(&p).unwrap();
    assert_eq!(m.architecture().unwrap().in_channels(), 3);
    assert_eq!(m.input.normalisation().1, vec![0.229, 0.224, 0.225]);
    std::fs::write(&p, format!("{base}mean = [0.5]\nstd = [0.25]\n")).unwrap();
    let m = Manifest::load(&p).unwrap();
    assert_eq!(m.architecture().unwrap().in_channels(), 1);
    for (extra, key) in [
        (
            "mean = [0.5, 0.5]\nstd = [0.25]\n",
            "input.mean, input.std: one value each",
        ),
        (
            "mean = [0.5]\nstd = [0.0]\n",
            "input.std: every value must be positive",
        ),
    ] {
        std::fs::write(&p, format!("{base}{extra}")).unwrap();
        let e = Manifest::load(&p).unwrap_err().to_string();
        assert!(e.contains(key), "'{key}' not in {e}");
    }
    std::fs::write(&p, base.replace("imagenet", "unit") + "mean = [0.5]\n").unwrap();
    let e = Manifest::load(&p).unwrap_err().to_string();
    assert!(e.contains("apply to the imagenet spec only"), "{e}");
}
