//! Which version of each model does what: each manifest's initial state
//! (`state`, default active) with the states an admin set (kept in the
//! archive) on top. The pipeline reads them for every job, so a change
//! applies to the next study without a restart; a version put in shadow
//! or activated that the daemon had not loaded (a folder added since it
//! started) is loaded then ([`Registry`]).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use archive::{Archive, ModelState, ModelStateRow, ModelStates, StateChange};
use infer::{Classifier, Lifecycle, LoadOptions, Manifest};

/// The state a manifest starts in.
pub fn initial(m: &Manifest) -> ModelState {
    match m.state {
        Lifecycle::Active => ModelState::Active,
        Lifecycle::Shadow => ModelState::Shadow,
        Lifecycle::Disabled => ModelState::Disabled,
    }
}

/// The state of `m` now, given the admin's rows.
pub fn state(rows: &[ModelStateRow], m: &Manifest) -> ModelState {
    archive::effective_state(rows, &m.name, &m.version, initial(m))
}

/// Why a set of models cannot be used as it is.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    /// Two manifests claim the same name and version.
    #[error("{name} {version} is in two folders: {first} and {second} (give one a new version)")]
    Duplicate {
        name: String,
        version: String,
        first: String,
        second: String,
    },
    /// More than one version of a model is active.
    #[error("{name}: versions {versions} are all active; one version of a model is active at a time (set `state = \"shadow\"` in the others' manifests, or run `triaged models activate {name} VERSION`)")]
    SeveralActive { name: String, versions: String },
    #[error("no valid model {name} version {version} in the models folder (present: {present})")]
    NoSuchVersion {
        name: String,
        version: String,
        present: String,
    },
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
}

/// Problems of the models in a folder with their states now: the same
/// name and version twice, or several active versions of one model.
pub fn problems(models: &[(&Manifest, ModelState)]) -> Vec<LifecycleError> {
    let mut out = Vec::new();
    for (i, (m, _)) in models.iter().enumerate() {
        if let Some((first, _)) = models[..i]
            .iter()
            .find(|(o, _)| o.name == m.name && o.version == m.version)
        {
            out.push(LifecycleError::Duplicate {
                name: m.name.clone(),
                version: m.version.clone(),
                first: first.path.display().to_string(),
                second: m.path.display().to_string(),
            });
        }
    }
    let mut names: Vec<&str> = models.iter().map(|(m, _)| m.name.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let mut active: Vec<&str> = models
            .iter()
            .filter(|(m, s)| m.name == name && *s == ModelState::Active)
            .map(|(m, _)| m.version.as_str())
            .collect();
        // (A version in two folders is reported above.)
        active.sort();
        active.dedup();
        if active.len() > 1 {
            out.push(LifecycleError::SeveralActive {
                name: name.to_string(),
                versions: active.join(", "),
            });
        }
    }
    out
}

/// The manifest of version `version` of model `name`, or an error listing
/// the versions present.
pub fn find<'a>(
    manifests: &[&'a Manifest],
    name: &str,
    version: &str,
) -> Result<&'a Manifest, LifecycleError> {
    manifests
        .iter()
        .find(|m| m.name == name && m.version == version)
        .copied()
        .ok_or_else(|| LifecycleError::NoSuchVersion {
            name: name.to_string(),
            version: version.to_string(),
            present: if manifests.is_empty() {
                "none".into()
            } else {
                manifests
                    .iter()
                    .map(|m| format!("{} {}", m.name, m.version))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

/// Put version `version` of model `name` (one of `manifests`) in `state`;
/// activating it disables the version that was active, in the same
/// transaction. Returns what changed.
pub async fn set(
    store: &ModelStates,
    manifests: &[&Manifest],
    name: &str,
    version: &str,
    state: ModelState,
    user: &str,
) -> Result<Vec<StateChange>, LifecycleError> {
    find(manifests, name, version)?;
    let versions: Vec<(String, ModelState)> = manifests
        .iter()
        .filter(|m| m.name == name)
        .map(|m| (m.version.clone(), initial(m)))
        .collect();
    Ok(store.set(name, version, state, &versions, user).await?)
}

/// The loaded models with their states, and the admin's rows.
pub struct Current {
    pub models: Vec<(Arc<Classifier>, ModelState)>,
    pub rows: Vec<ModelStateRow>,
}

/// The models a daemon has loaded, every version whatever its state.
pub struct Registry {
    loaded: RwLock<Vec<Arc<Classifier>>>,
    /// Where versions added while the daemon runs are found (none: the
    /// loaded set is fixed).
    dir: Option<PathBuf>,
    options: LoadOptions,
    /// The admin's rows when the folder was last looked at.
    seen: Mutex<Option<Vec<ModelStateRow>>>,
}

impl Registry {
    pub fn new(
        loaded: Vec<Arc<Classifier>>,
        dir: Option<PathBuf>,
        options: LoadOptions,
    ) -> Registry {
        Registry {
            loaded: RwLock::new(loaded),
            dir,
            options,
            seen: Mutex::new(None),
        }
    }

    /// The loaded models.
    pub fn loaded(&self) -> Vec<Arc<Classifier>> {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The loaded models with their states now, and the admin's rows they
    /// come from. When the rows have changed since the last call, a
    /// version they put in shadow or activate that is not loaded is looked
    /// for in the models folder and loaded (a failure is logged and the
    /// version stays unloaded).
    pub async fn current(&self, archive: &Archive) -> Result<Current, archive::ArchiveError> {
        let rows = archive.models().list().await?;
        let changed = {
            let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
            let changed = seen.as_ref() != Some(&rows);
            *seen = Some(rows.clone());
            changed
        };
        if changed {
            self.load_wanted(&rows).await;
        }
        let models = self
            .loaded()
            .into_iter()
            .map(|c| {
                let s = state(&rows, &c.manifest);
                (c, s)
            })
            .collect();
        Ok(Current { models, rows })
    }

    fn is_loaded(&self, name: &str, version: &str) -> bool {
        self.loaded
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|c| c.manifest.name == name && c.manifest.version == version)
    }

    /// Load the versions `rows` want running that are not loaded.
    async fn load_wanted(&self, rows: &[ModelStateRow]) {
        let wanted: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.state != ModelState::Disabled.as_str())
            .filter(|r| !self.is_loaded(&r.model, &r.version))
            .map(|r| (r.model.clone(), r.version.clone()))
            .collect();
        for (name, version) in wanted {
            if let Err(e) = self.ensure(&name, &version).await {
                tracing::error!(model = %name, version = %version, error = %e,
                    "an admin set this version running, but it cannot be loaded: it reads nothing");
            }
        }
    }

    /// Load version `version` of model `name` from the models folder
    /// unless it is loaded; why not when it cannot be.
    pub async fn ensure(&self, name: &str, version: &str) -> Result<(), String> {
        if self.is_loaded(name, version) {
            return Ok(());
        }
        let Some(dir) = self.dir.clone() else {
            return Err(format!("{name} {version} is not loaded"));
        };
        let (n, v, options) = (name.to_string(), version.to_string(), self.options);
        let c = tokio::task::spawn_blocking(move || load_version(&dir, &n, &v, options))
            .await
            .map_err(|e| e.to_string())??;
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        if !loaded
            .iter()
            .any(|l| l.manifest.name == name && l.manifest.version == version)
        {
            tracing::info!(model = %name, version = %version, "model loaded (an admin set it running)");
            loaded.push(Arc::new(c));
        }
        Ok(())
    }
}

/// Find version `version` of model `name` in `dir` and load it.
fn load_version(
    dir: &std::path::Path,
    name: &str,
    version: &str,
    options: LoadOptions,
) -> Result<Classifier, String> {
    let paths = infer::manifest::discover(dir).map_err(|e| e.to_string())?;
    let manifest = paths
        .iter()
        .filter_map(|p| Manifest::load(p).ok())
        .find(|m| m.name == name && m.version == version)
        .ok_or_else(|| {
            format!(
                "no valid manifest for {name} {version} in {}",
                dir.display()
            )
        })?;
    Classifier::load_on_cpu(manifest, options).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(name: &str, version: &str, state: Lifecycle) -> Manifest {
        let text = format!(
            "name = \"{name}\"\nversion = \"{version}\"\narchitecture = \"smallcnn\"\nweights = \"w\"\nsha256 = \"{}\"\nlabels = [\"A\"]\n[input]\nspec = \"xrv\"\nsize = 64\n",
            "0".repeat(64)
        );
        let mut m: Manifest = toml::from_str(&text).unwrap();
        m.state = state;
        m.path = format!("/models/{name}-{version}/model.toml").into();
        m
    }

    fn row(model: &str, version: &str, state: &str) -> ModelStateRow {
        ModelStateRow {
            model: model.into(),
            version: version.into(),
            state: state.into(),
            changed_by: "admin".into(),
            changed_at: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn an_admin_row_overrides_the_manifest() {
        let v1 = manifest("cxr", "1", Lifecycle::Active);
        let v2 = manifest("cxr", "2", Lifecycle::Shadow);
        assert_eq!(state(&[], &v1), ModelState::Active);
        assert_eq!(state(&[], &v2), ModelState::Shadow);
        let rows = [row("cxr", "2", "active"), row("cxr", "1", "disabled")];
        assert_eq!(state(&rows, &v1), ModelState::Disabled);
        assert_eq!(state(&rows, &v2), ModelState::Active);
        // Another model's row does not apply.
        assert_eq!(
            state(&[row("other", "1", "disabled")], &v1),
            ModelState::Active
        );
    }

    #[test]
    fn two_active_versions_or_a_repeated_version_are_problems() {
        let v1 = manifest("cxr", "1", Lifecycle::Active);
        let v2 = manifest("cxr", "2", Lifecycle::Active);
        let head = manifest("head", "1", Lifecycle::Active);
        assert!(problems(&[
            (&v1, ModelState::Active),
            (&v2, ModelState::Shadow),
            (&head, ModelState::Active)
        ])
        .is_empty());
        let p = problems(&[(&v1, ModelState::Active), (&v2, ModelState::Active)]);
        assert_eq!(p.len(), 1);
        assert!(
            matches!(&p[0], LifecycleError::SeveralActive { name, versions } if name == "cxr" && versions == "1, 2")
        );
        let again = manifest("cxr", "1", Lifecycle::Disabled);
        let p = problems(&[(&v1, ModelState::Active), (&again, ModelState::Disabled)]);
        assert!(matches!(&p[0], LifecycleError::Duplicate { .. }), "{p:?}");
    }
}
