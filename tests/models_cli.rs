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
