//! The models folder as the daemon loads it: every manifest, its weights
//! verified and a warm-up pass run; and the start-up check that no two
//! versions of a model are active.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use archive::{Archive, ModelState, ModelStateRow};
use infer::{Classifier, ClassifierError, Manifest};
use pipeline::lifecycle;

use crate::{Config, Error};

/// The manifests (`model.toml`) in `[models] dir`.
pub fn manifests(config: &Config) -> Result<Vec<PathBuf>, Error> {
    let dir = &config.models.dir;
    if !dir.is_dir() {
        return Err(Error::NoModelsFolder(dir.clone()));
    }
    Ok(infer::manifest::discover(dir)?)
}

/// A manifest's path and the model it loaded, or why it did not.
pub type Loaded = (PathBuf, Result<Classifier, ClassifierError>);

/// Every model in `[models] dir`, loaded as the daemon loads it (manifest,
/// weights checksum, tensors, a warm-up pass), or why it would not load.
pub fn load_all(config: &Config) -> Result<Vec<Loaded>, Error> {
    Ok(manifests(config)?
        .into_iter()
        .map(|path| {
            let loaded = Manifest::load(&path)
                .map_err(ClassifierError::from)
                .and_then(|m| Classifier::load_on_cpu(m, config.models.load_options()));
            (path, loaded)
        })
        .collect())
}

/// The valid manifests in `[models] dir` (an invalid one is left out:
/// `models list` and `models check` say why).
pub fn valid_manifests(config: &Config) -> Result<Vec<Manifest>, Error> {
    Ok(manifests(config)?
        .iter()
        .filter_map(|p| Manifest::load(p).ok())
        .collect())
}

/// The lifecycle problems of these models with their states now.
pub fn lifecycle_problems(manifests: &[&Manifest], rows: &[ModelStateRow]) -> Vec<String> {
    let with_states: Vec<(&Manifest, ModelState)> = manifests
        .iter()
        .map(|m| (*m, lifecycle::state(rows, m)))
        .collect();
    lifecycle::problems(&with_states)
        .into_iter()
        .map(|e| e.to_string())
        .collect()
}

/// At start-up: the loaded models must not have two folders with one name
/// and version, nor two active versions of a model.
pub async fn check_lifecycle(archive: &Archive, models: &[Arc<Classifier>]) -> Result<(), Error> {
    let rows = archive.models().list().await?;
    let manifests: Vec<&Manifest> = models.iter().map(|c| &c.manifest).collect();
    let problems = lifecycle_problems(&manifests, &rows);
    if !problems.is_empty() {
        return Err(Error::Lifecycle(problems));
    }
    for m in manifests {
        tracing::info!(model = %m.name, version = %m.version, state = %lifecycle::state(&rows, m), "model state");
    }
    Ok(())
}

/// A manifest's model name and version and where it is (only the path
/// when the manifest itself cannot be read).
pub fn described(path: &Path) -> String {
    match Manifest::load(path) {
        Ok(m) => format!("{} {} ({})", m.name, m.version, path.display()),
        Err(_) => path.display().to_string(),
    }
}

/// Every model in `[models] dir` that loads; a broken one is logged with
/// its reason and left out, so the listener still takes studies.
pub fn load_serving(config: &Config) -> Vec<Arc<Classifier>> {
    let found = match load_all(config) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(error = %e, "no models: studies are stored but not analysed");
            return Vec::new();
        }
    };
    let mut models = Vec::new();
    for (path, loaded) in found {
        match loaded {
            Ok(c) => {
                tracing::info!(model = %c.manifest.name, version = %c.manifest.version, validated = c.manifest.validated, backend = ?c.model.backend(), "model loaded");
                models.push(Arc::new(c));
            }
            Err(e) => tracing::error!(
                model = %described(&path),
                error = %e,
                "model not loaded; the others serve"
            ),
        }
    }
    for r in &config.rules {
        for name in &r.models {
            if !models.iter().any(|m| &m.manifest.name == name) {
                tracing::warn!(rule = %r.name, model = %name, "a rule names a model that is not loaded");
            }
        }
    }
    models
}
