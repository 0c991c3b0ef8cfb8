//! `triaged models list|check` on the converter's small model.

mod support;

use support::*;

fn config_for(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("triaged.toml");
    std::fs::write(
        &cfg,
        format!("[models]\ndir = \"{}\"\n", dir.join("models").display()),
    )
    .unwrap();
    cfg
}

fn triaged(args: &[&str], cfg: &std::path::Path) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_triaged"))
        .args(args)
        .arg("--config")
        .arg(cfg)
        .output()
        .unwrap()
}

#[test]
fn models_are_listed_checked_and_tampering_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("models/tiny");
    std::fs::create_dir_all(&model).unwrap();
    for f in ["model.toml", "weights.safetensors"] {
        std::fs::copy(
            repo_root().join("fixtures/infer/tiny-densenet").join(f),
            model.join(f),
        )
        .unwrap();
    }
    let cfg = config_for(dir.path());

    let out = triaged(&["models", "list"], &cfg);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("tiny-densenet 1 (densenet, xrv 64x64): 3 labels, NOT validated"),
        "{}",
        text(&out)
    );

    let out = triaged(&["models", "check"], &cfg);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("1 model(s) checked, 0 failed"),
        "{}",
        text(&out)
    );

    let w = model.join("weights.safetensors");
    let mut bytes = std::fs::read(&w).unwrap();
    let n = bytes.len();
    bytes[n - 4] ^= 0x55;
    std::fs::write(&w, bytes).unwrap();
    let out = triaged(&["models", "check"], &cfg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("FAILED") && text(&out).contains("SHA-256"),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_models_folder_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_for(dir.path());
    let out = triaged(&["models", "list"], &cfg);
    assert!(!out.status.success());
    assert!(text(&out).contains("models.dir"), "{}", text(&out));
}

/// `python tools/convert_weights.py FILE OUT --name <OUT's name> [extra]` with the
/// test venv's Python (numpy only: the converter reads .pt files without
/// PyTorch), then the manifest it wrote.
fn convert(fixture: &str, out: &std::path::Path, extra: &[&str]) -> (std::process::Output, String) {
    let run = std::process::Command::new(python())
        .arg(repo_root().join("tools/convert_weights.py"))
        .arg(repo_root().join("fixtures/infer/xrv").join(fixture))
        .arg(out)
        // One model per folder: models of one name are versions of it.
        .arg("--name")
        .arg(out.file_name().unwrap())
        .args(extra)
        .output()
        .unwrap();
    let manifest = std::fs::read_to_string(out.join("model.toml")).unwrap_or_default();
    (run, manifest)
}

fn xrv_expected() -> serde_json::Value {
    serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("fixtures/infer/xrv/expected.json")).unwrap(),
    )
    .unwrap()
}

/// The parity input of expected.json, as tools/infer_reference.py makes it.
fn parity_input(e: &serde_json::Value) -> infer::Batch {
    let dims: Vec<usize> = e["input"]["dims"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let dims: [usize; 4] = dims.try_into().unwrap();
    let n: usize = dims.iter().product();
    let image = n / dims[0];
    let f = |k: &str, i: usize| e["input"][k][i].as_f64().unwrap() as f32;
    let data: Vec<f32> = infer::formula::uniform("input", n)
        .iter()
        .enumerate()
        .map(|(i, v)| v * f("scale", i / image) + f("offset", i / image))
        .collect();
    infer::Batch::new(data, dims).unwrap()
}

/// A model the converter wrote, loaded as the daemon loads it.
fn classifier(dir: &std::path::Path) -> infer::Classifier {
    let m = infer::Manifest::load(&dir.join("model.toml")).unwrap();
    infer::Classifier::load_on_cpu(m, infer::LoadOptions::default()).unwrap()
}

/// Every line is in the manifest the converter wrote.
fn assert_manifest_has(manifest: &str, lines: &[&str]) {
    for line in lines {
        assert!(manifest.contains(line), "'{line}' not in {manifest}");
    }
}

/// The model's logits on `x` match PyTorch's (`theirs`: images x labels)
/// within 1e-4, relative above 1.
fn assert_logits_match(c: &infer::Classifier, x: &infer::Batch, theirs: &serde_json::Value) {
    let ours: Vec<Vec<f32>> = c.logits(x).unwrap();
    for (n, row) in ours.iter().enumerate() {
        for (k, v) in row.iter().enumerate() {
            let t = theirs[n][k].as_f64().unwrap();
            assert!(
                (*v as f64 - t).abs() <= 1e-4 * t.abs().max(1.0),
                "{}: image {n} label {k}: {v} vs {t}",
                c.manifest.path.display()
            );
        }
    }
}

/// The reported probabilities on `x` match torchxrayvision's forward
/// (`theirs`: images x all labels) within 1e-4; exactly `predicted`
/// labels are reported.
fn assert_probabilities_match(
    c: &infer::Classifier,
    x: &infer::Batch,
    theirs: &serde_json::Value,
    predicted: usize,
) {
    let p = c.predict(x, false).unwrap();
    let labels = &c.manifest.labels;
    for (n, findings) in p.findings.iter().enumerate() {
        assert_eq!(findings.len(), predicted, "only the labels it predicts");
        for f in findings {
            let k = labels.iter().position(|l| *l == f.label).unwrap();
            let t = theirs[n][k].as_f64().unwrap();
            assert!(
                (f.probability as f64 - t).abs() <= 1e-4,
                "image {n} {}: {} vs torchxrayvision {t}",
                f.label,
                f.probability
            );
        }
    }
}

/// Real torchxrayvision modules (fixtures/infer/xrv, from
/// tools/infer_reference.py) convert with one command each: a DenseNet
/// saved whole needs no flag but its name; its plain state dict is refused
/// without labels and converts with --xrv-weights; a pretrained-style
/// instance brings its labels, operating thresholds (removed from the
/// weights) and the labels it does not predict; xrv's ResNet, whole and as
/// a state dict, likewise. Each passes `models check` and gives PyTorch's
/// outputs.
#[test]
fn torchxrayvision_models_convert_with_one_command() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let expected = xrv_expected();
    let x = parity_input(&expected);

    // Saved whole, weights=None: labels from the class, chest applicability.
    let whole = models.join("whole");
    let (run, manifest) = convert("densenet-whole.pt", &whole, &[]);
    assert!(run.status.success(), "{}", text(&run));
    assert_manifest_has(
        &manifest,
        &[
            "architecture = \"densenet\"",
            "\"Atelectasis\", \"Consolidation\"",
            "\"Enlarged Cardiomediastinum\"]",
            "not_predicted = []",
            "size = 224",
            "resize = \"skimage\"",
            "growth_rate = 4",
            "block_config = [2, 2]",
            "modalities = [\"CR\", \"DX\"]",
            "body_parts = [\"CHEST\"]",
        ],
    );
    assert_logits_match(&classifier(&whole), &x, &expected["densenet"]["logits"]);

    // The plain state dict carries no labels: refused, saying what to pass.
    let state = models.join("state");
    let (run, _) = convert("densenet-state.pt", &state, &[]);
    assert!(!run.status.success());
    assert!(text(&run).contains("--xrv-weights"), "{}", text(&run));
    let (run, manifest) = convert(
        "densenet-state.pt",
        &state,
        &["--xrv-weights", "densenet121-res224-all"],
    );
    assert!(run.status.success(), "{}", text(&run));
    assert!(manifest.contains("thresholds = [0.07422872"), "{manifest}");
    assert!(manifest.contains("recalibrate = true"), "{manifest}");
    let (run, _) = convert(
        "densenet-state.pt",
        &models.join("bad"),
        &["--xrv-weights", "densenet121-res999"],
    );
    assert!(
        !run.status.success() && text(&run).contains("densenet121-res224-nih"),
        "{}",
        text(&run)
    );

    // Pretrained-style: xrv's labels (four empty) and op_threshs buffer.
    let nih = models.join("nih");
    let (run, manifest) = convert("densenet-nih-whole.pt", &nih, &[]);
    assert!(run.status.success(), "{}", text(&run));
    assert!(
        manifest.contains(
            "not_predicted = [\"unused-14\", \"unused-15\", \"unused-16\", \"unused-17\"]"
        ),
        "{manifest}"
    );
    let c = classifier(&nih);
    assert!(
        c.logits(&x).is_ok(),
        "op_threshs must not be among the weights"
    );
    assert_probabilities_match(&c, &x, &expected["densenet-nih"]["op_norm"], 14);
    // xrv's ResNet saved whole (a narrow torchvision ResNet inside, keys
    // under `model.`), and its state dict with --xrv-weights.
    let resnet = models.join("resnet");
    let (run, manifest) = convert("resnet-whole.pt", &resnet, &[]);
    assert!(run.status.success(), "{}", text(&run));
    assert_manifest_has(
        &manifest,
        &[
            "architecture = \"resnet\"",
            "[resnet]",
            "layers = [1, 2, 1, 1]",
            "widths = [4, 8, 16, 32]",
            "size = 512",
            "resize = \"skimage\"",
            "not_predicted = [\"Lung Lesion\", \"Enlarged Cardiomediastinum\"]",
            "body_parts = [\"CHEST\"]",
        ],
    );
    let resnet_state = models.join("resnet-state");
    let (run, _) = convert("resnet-state.pt", &resnet_state, &[]);
    assert!(
        !run.status.success() && text(&run).contains("--xrv-weights"),
        "{}",
        text(&run)
    );
    let (run, state_manifest) = convert(
        "resnet-state.pt",
        &resnet_state,
        &["--xrv-weights", "resnet50-res512-all"],
    );
    assert!(run.status.success(), "{}", text(&run));
    assert!(state_manifest.contains("size = 512"), "{state_manifest}");
    assert!(
        state_manifest.contains("thresholds = [0.515703"),
        "{state_manifest}"
    );
    for folder in [&resnet, &resnet_state] {
        let c = classifier(folder);
        assert_logits_match(&c, &x, &expected["resnet"]["logits"]);
        assert_probabilities_match(&c, &x, &expected["resnet"]["op_norm"], 16);
    }

    let cfg = config_for(dir.path());
    let out = triaged(&["models", "check"], &cfg);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("5 model(s) checked, 0 failed"),
        "{}",
        text(&out)
    );

    // Two radiographs through triaged (analyze: DICOM decoding, the xrv
    // scaling, XRayCenterCrop, scikit-image's resize, the model) against
    // torchxrayvision's own read_xray_dcm, crop, resize and forward: a
    // 1955 x 1841 MONOCHROME1 CR, and a 1000 x 777 crop of it (even height,
    // odd side: where the two crops differ).
    let cases = dir.path().join("cases");
    let made = std::process::Command::new(python())
        .arg(repo_root().join("scripts/xrv_cases.py"))
        .arg(&cases)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", text(&made));
    let scored = triaged(
        &[
            "analyze",
            "--json",
            "--model",
            nih.to_str().unwrap(),
            cases.join("rg1.dcm").to_str().unwrap(),
            cases.join("rg1-odd.dcm").to_str().unwrap(),
        ],
        &cfg,
    );
    assert!(scored.status.success(), "{}", text(&scored));
    let scored: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    let mut worst = 0f64;
    for (image, case) in scored
        .as_array()
        .unwrap()
        .iter()
        .zip(["rg1.dcm", "rg1-odd.dcm"])
    {
        let theirs = &expected["preprocessed"][case];
        let labels = image["labels"].as_array().unwrap();
        assert_eq!(labels.len(), 14, "{image}");
        for (k, l) in labels.iter().enumerate() {
            let (ours, t) = (
                l["probability"].as_f64().unwrap(),
                theirs[k].as_f64().unwrap(),
            );
            worst = worst.max((ours - t).abs());
            assert!(
                (ours - t).abs() <= 1e-4,
                "{case} {}: {ours} vs torchxrayvision {t}",
                l["label"]
            );
        }
    }
    eprintln!("torchxrayvision preprocessing + forward: largest difference {worst:e}");

    // The check can fail: the same model with the project's own crop and
    // area resize is far from torchxrayvision on the odd crop.
    let area = models.join("nih-area");
    std::fs::create_dir_all(&area).unwrap();
    std::fs::copy(
        nih.join("weights.safetensors"),
        area.join("weights.safetensors"),
    )
    .unwrap();
    let manifest = std::fs::read_to_string(nih.join("model.toml")).unwrap();
    std::fs::write(
        area.join("model.toml"),
        manifest.replace("resize = \"skimage\"", "resize = \"area\""),
    )
    .unwrap();
    let other = triaged(
        &[
            "analyze",
            "--json",
            "--model",
            area.to_str().unwrap(),
            cases.join("rg1-odd.dcm").to_str().unwrap(),
        ],
        &cfg,
    );
    assert!(other.status.success(), "{}", text(&other));
    let other: serde_json::Value = serde_json::from_slice(&other.stdout).unwrap();
    let apart = other[0]["labels"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(k, l)| {
            (l["probability"].as_f64().unwrap()
                - expected["preprocessed"]["rg1-odd.dcm"][k].as_f64().unwrap())
            .abs()
        })
        .fold(0f64, f64::max);
    assert!(
        apart >= 10.0 * 1e-4,
        "area resize only {apart:e} from torchxrayvision"
    );
    eprintln!("the same model with the area resize: {apart:e} from torchxrayvision");
}

/// Two versions that are both active (or one version in two folders)
/// fail `models check`, and the daemon refuses to start with them, naming
/// the fix; a version in shadow beside the active one is fine.
#[test]
fn two_active_versions_of_a_model_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let manifest =
        std::fs::read_to_string(repo_root().join("fixtures/infer/tiny-densenet/model.toml"))
            .unwrap();
    assert!(manifest.contains("version = \"1\""));
    let put = |folder: &str, text: &str| {
        let model = dir.path().join("models").join(folder);
        std::fs::create_dir_all(&model).unwrap();
        std::fs::copy(
            repo_root().join("fixtures/infer/tiny-densenet/weights.safetensors"),
            model.join("weights.safetensors"),
        )
        .unwrap();
        std::fs::write(model.join("model.toml"), text).unwrap();
    };
    put("v1", &manifest);
    put(
        "v2",
        &manifest.replace("version = \"1\"", "version = \"2\""),
    );
    let cfg = dir.path().join("triaged.toml");
    std::fs::write(
        &cfg,
        format!(
            "[storage]\ndir = \"{}\"\n[dicom]\nlisten = \"127.0.0.1:{}\"\n[models]\ndir = \"{}\"\n",
            dir.path().join("storage").display(),
            free_port(),
            dir.path().join("models").display()
        ),
    )
    .unwrap();
    let out = triaged(&["models", "check"], &cfg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("tiny-densenet: versions 1, 2 are all active"),
        "{}",
        text(&out)
    );
    let out = triaged(&["serve"], &cfg);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("versions 1, 2 are all active")
            && text(&out).contains("triaged models activate tiny-densenet VERSION"),
        "{}",
        text(&out)
    );
    // With the daemon's database made, the CLI settles it: activating 2
    // disables 1.
    let out = triaged(&["models", "activate", "tiny-densenet", "2"], &cfg);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("tiny-densenet 1: active -> disabled"),
        "{}",
        text(&out)
    );
    let out = triaged(&["models", "check"], &cfg);
    assert!(out.status.success(), "{}", text(&out));
    let out = triaged(&["models", "list"], &cfg);
    assert!(
        text(&out).contains("disabled tiny-densenet 1"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("active   tiny-densenet 2"),
        "{}",
        text(&out)
    );
    // An unknown version is named with the versions present.
    let out = triaged(&["models", "shadow", "tiny-densenet", "3"], &cfg);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("present: tiny-densenet 1, tiny-densenet 2"),
        "{}",
        text(&out)
    );
    // The same version in two folders.
    put(
        "v2-copy",
        &manifest.replace("version = \"1\"", "version = \"2\""),
    );
    let out = triaged(&["models", "check"], &cfg);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("tiny-densenet 2 is in two folders"),
        "{}",
        text(&out)
    );
}

/// An ONNX classifier of an architecture triaged has no Rust code for
/// (fixtures/infer/onnx/mini-convnext.onnx) passes `models check` and
/// reads a radiograph with `analyze`, from DICOM to probabilities.
/// The input the ONNX fixtures take (one channel, 64 x 64).
const UNIT_64: &str = "[input]\nspec = \"unit\"\nsize = 64";

#[test]
fn an_onnx_model_is_checked_and_reads_a_radiograph() {
    let dir = tempfile::tempdir().unwrap();
    let (model, bytes) = onnx_model(
        &dir.path().join("models"),
        "mini",
        "mini-convnext.onnx",
        &["A", "B", "C", "D"],
        &format!("output = \"probabilities\"\noutput_name = \"probabilities\"\n{UNIT_64}"),
    );
    let cfg = config_for(dir.path());
    let out = triaged(&["models", "check"], &cfg);
    assert!(
        text(&out).contains("1 model(s) checked, 0 failed"),
        "{}",
        text(&out)
    );
    let out = triaged(&["models", "list"], &cfg);
    assert!(
        text(&out).contains("mini 1 (onnx, unit 64x64): 4 labels"),
        "{}",
        text(&out)
    );
    let data = dir.path().join("data");
    let out = triaged(
        &["phantom", "--out", data.to_str().unwrap(), "--count", "1"],
        &cfg,
    );
    assert!(out.status.success(), "{}", text(&out));
    let image = files_under(&data)
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "dcm"))
        .unwrap();
    let scored = triaged(
        &[
            "analyze",
            "--json",
            "--model",
            model.to_str().unwrap(),
            image.to_str().unwrap(),
        ],
        &cfg,
    );
    assert!(scored.status.success(), "{}", text(&scored));
    let scored: serde_json::Value = serde_json::from_slice(&scored.stdout).unwrap();
    let labels = scored[0]["labels"].as_array().unwrap();
    assert_eq!(labels.len(), 4, "{scored}");
    assert!(every(labels, |l| l["probability"]
        .as_f64()
        .is_some_and(|p| p > 0.0 && p < 1.0)));
    // A tampered graph is caught by its checksum.
    let mut bad = bytes.clone();
    let n = bad.len();
    bad[n - 8] ^= 0x55;
    std::fs::write(model.join("model.onnx"), bad).unwrap();
    let out = triaged(&["models", "check"], &cfg);
    assert!(text(&out).contains("SHA-256"), "{}", text(&out));
}

/// Graphs triaged cannot run are refused one by one, each naming the
/// model and what is wrong (the operator and its node, the input, the
/// size limit); the good model beside them still checks.
#[test]
fn onnx_models_that_cannot_run_are_named_and_the_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let ab = ["A", "B"];
    let models = dir.path().join("models");
    let good = format!("output = \"probabilities\"\noutput_name = \"probabilities\"\n{UNIT_64}");
    onnx_model(
        &models,
        "good",
        "mini-convnext.onnx",
        &["A", "B", "C", "D"],
        &good,
    );
    onnx_model(&models, "deform", "bad/deform-conv.onnx", &ab, UNIT_64);
    onnx_model(&models, "vendor", "bad/vendor-op.onnx", &ab, UNIT_64);
    onnx_model(&models, "tabular", "bad/tabular.onnx", &ab, UNIT_64);
    onnx_model(
        &models,
        "big",
        "tiny-densenet.onnx",
        &["A", "B", "C"],
        UNIT_64,
    );
    let cfg = dir.path().join("triaged.toml");
    std::fs::write(
        &cfg,
        format!(
            "[models]\ndir = \"{}\"\nmax_bytes = 20000\n",
            dir.path().join("models").display()
        ),
    )
    .unwrap();
    let out = triaged(&["models", "check"], &cfg);
    let report = text(&out);
    assert!(!out.status.success(), "{report}");
    let line = |model: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("{model} 1 (")))
            .unwrap_or_else(|| panic!("no line for {model} in\n{report}"))
            .to_string()
    };
    assert!(
        line("good").ends_with("OK (weights verified, test pass run)"),
        "{report}"
    );
    for (model, said) in [
        (
            "deform",
            vec!["FAILED", "does not implement: DeformConv (node 'deform1')"],
        ),
        (
            "vendor",
            vec![
                "FAILED",
                "does not implement: FancyPool (node 'vendor_pool')",
            ],
        ),
        (
            "tabular",
            vec!["FAILED", "input 'features'", "not an image"],
        ),
        (
            "big",
            vec!["FAILED", "26503 bytes", "[models] max_bytes = 20000"],
        ),
    ] {
        let l = line(model);
        for s in said {
            assert!(l.contains(s), "'{s}' not in: {l}");
        }
    }
    assert!(report.contains("5 model(s) checked, 4 failed"), "{report}");
}

/// `triaged phantom --anatomy head-ct`: one folder of CT slices a study,
/// labels.csv with one row each that says what the folder holds.
#[test]
fn head_ct_phantom_studies_are_written_with_their_labels() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_for(dir.path());
    let out = dir.path().join("head");
    let run = triaged(
        &[
            "phantom",
            "--anatomy",
            "head-ct",
            "--out",
            out.to_str().unwrap(),
            "--count",
            "12",
            "--matrix",
            "64",
            "--set",
            "validation",
            "--masks",
        ],
        &cfg,
    );
    assert!(run.status.success(), "{}", text(&run));
    let csv = std::fs::read_to_string(out.join("labels.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 12);
    use dicom_dictionary_std::tags;
    let get = |o: &dicom_object::DefaultDicomObject, t| {
        o.element(t).unwrap().to_str().unwrap().trim().to_string()
    };
    let mut thin = 0;
    for row in &rows {
        let folder = out.join(row[col("folder")]);
        let series = |prefix: &str| -> Vec<std::path::PathBuf> {
            let mut v: Vec<_> = files_under(&folder)
                .into_iter()
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "dcm")
                        && p.file_name().unwrap().to_string_lossy().starts_with(prefix)
                })
                .collect();
            v.sort();
            v
        };
        // The routine series: 5 mm over 140 mm.
        let slices = series("s2-");
        assert_eq!(slices.len().to_string(), row[col("slices")]);
        assert_eq!(row[col("slice_thickness")], "5");
        assert_eq!(slices.len(), 28);
        // A thin series of the same study, where labels.csv says so.
        let thins = series("s3-");
        if row[col("thin_slices")].is_empty() {
            assert!(thins.is_empty(), "{row:?}");
        } else {
            thin += 1;
            assert_eq!(thins.len().to_string(), row[col("thin_slices")]);
            let t: f64 = row[col("thin_thickness")].parse().unwrap();
            assert_eq!((thins.len() as f64 * t).round(), 140.0, "{row:?}");
            let (a, b) = (
                dicom_object::open_file(&thins[0]).unwrap(),
                dicom_object::open_file(&slices[0]).unwrap(),
            );
            assert_eq!(
                get(&a, tags::STUDY_INSTANCE_UID),
                get(&b, tags::STUDY_INSTANCE_UID)
            );
            assert_ne!(
                get(&a, tags::SERIES_INSTANCE_UID),
                get(&b, tags::SERIES_INSTANCE_UID)
            );
            assert_eq!(get(&a, tags::SERIES_NUMBER), "3");
            assert_eq!(get(&a, tags::SLICE_THICKNESS), row[col("thin_thickness")]);
        }
        let masks = files_under(&folder)
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "png"))
            .count();
        let any = row[col("intracranial_haemorrhage")] == "1";
        assert_eq!(any, masks > 0, "{row:?}");
        assert_eq!(any, !row[col("intracranial_haemorrhage_grade")].is_empty());
        let read = if row[col("thin_thickness")].is_empty() {
            "5"
        } else {
            row[col("thin_thickness")]
        };
        assert_eq!(row[col("read_thickness")], read);
        let obj = dicom_object::open_file(&slices[0]).unwrap();
        assert_eq!(
            get(&obj, tags::STUDY_INSTANCE_UID),
            row[col("study_instance_uid")]
        );
        assert_eq!(get(&obj, tags::MODALITY), "CT");
        assert_eq!(get(&obj, tags::BODY_PART_EXAMINED), "HEAD");
        assert_eq!(get(&obj, tags::SERIES_NUMBER), "2");
        assert_eq!(get(&obj, tags::MANUFACTURER), row[col("manufacturer")]);
    }
    assert!(thin > 0, "some of twelve studies have a thin series");
    // slices.csv: a row a slice file, positive where a mask lies beside it.
    let slices = std::fs::read_to_string(out.join("slices.csv")).unwrap();
    let mut lines = slices.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..2], ["file", "intracranial_haemorrhage"]);
    let mut positive = 0;
    for line in lines {
        let row: Vec<&str> = line.split(',').collect();
        let file = out.join(row[0]);
        assert!(file.is_file(), "{line}");
        let stem = file.file_stem().unwrap().to_string_lossy().to_string();
        let has_mask = files_under(file.parent().unwrap()).iter().any(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with(&format!("{stem}-")) && name.ends_with(".png")
        });
        assert_eq!(row[1] == "1", has_mask, "{line}");
        positive += has_mask as usize;
    }
    assert!(positive > 0);
    // The chest cases of the same set are other studies.
    let chest = dir.path().join("chest");
    let run = triaged(
        &[
            "phantom",
            "--out",
            chest.to_str().unwrap(),
            "--count",
            "6",
            "--set",
            "validation",
        ],
        &cfg,
    );
    assert!(run.status.success(), "{}", text(&run));
    for p in files_under(&chest)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
    {
        let uid = get(
            &dicom_object::open_file(&p).unwrap(),
            tags::STUDY_INSTANCE_UID,
        );
        assert!(
            rows.iter().all(|r| r[col("study_instance_uid")] != uid),
            "{uid} is a head CT's too"
        );
    }
}
