//! Routing rules: which models analyse which images, and where their
//! reports go.
//!
//! A rule matches an instance when every criterion it names matches (an
//! empty list or no pattern matches anything). For a model, an instance is
//! analysed when the model's manifest applies to it and, if any rules are
//! configured, at least one matching rule names the model (or names no
//! models); the report goes to the union of those rules' destinations (a
//! rule without destinations sends to the defaults). With no rules, every
//! model analyses what its manifest applies to and reports go to the
//! defaults.

use archive::StudyInstance;
use infer::Manifest;

/// A routing rule (`[[rules]]` in the configuration, read as it is:
/// the pattern is compiled when the file is read). Every criterion given
/// must match; empty ones match anything.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rule {
    pub name: String,
    pub modalities: Vec<String>,
    pub body_parts: Vec<String>,
    pub view_positions: Vec<String>,
    pub sop_classes: Vec<String>,
    pub calling_ae_titles: Vec<String>,
    /// A regular expression searched in the Study Description.
    #[serde(deserialize_with = "pattern")]
    pub study_description: Option<regex::Regex>,
    /// Model names (manifest `name`); empty: every model.
    pub models: Vec<String>,
    /// Destination names; empty: `pipeline.destinations` (or all).
    pub destinations: Vec<String>,
}

/// `study_description`, compiled (the message says why a pattern is not
/// one; the TOML error names the key's line).
fn pattern<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<regex::Regex>, D::Error> {
    use serde::Deserialize;
    Option::<String>::deserialize(d)?
        .map(|p| {
            regex::Regex::new(&p)
                .map_err(|e| serde::de::Error::custom(format!("not a regular expression: {e}")))
        })
        .transpose()
}

fn one_of(allowed: &[String], value: Option<&str>) -> bool {
    allowed.is_empty()
        || value
            .map(str::trim)
            .is_some_and(|v| allowed.iter().any(|a| a.eq_ignore_ascii_case(v)))
}

impl Rule {
    /// Does the rule match this instance?
    pub fn matches(&self, i: &StudyInstance) -> bool {
        one_of(&self.modalities, i.modality.as_deref())
            && one_of(&self.body_parts, i.body_part_examined.as_deref())
            && one_of(&self.view_positions, i.view_position.as_deref())
            && one_of(&self.sop_classes, Some(&i.sop_class_uid))
            && one_of(&self.calling_ae_titles, Some(&i.calling_ae_title))
            && self
                .study_description
                .as_ref()
                .is_none_or(|re| re.is_match(i.study_description.as_deref().unwrap_or("")))
    }

    fn names(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|m| m == model)
    }
}

/// Where `model`'s result for `instance` goes, or `None` when the model
/// does not analyse it.
/// What one called AE title lets read what it receives: some rules and
/// some models (empty: all). Instances sent to an AE title without a scope
/// (the main one) are read by every model and routed by every rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AeScope {
    pub ae_title: String,
    pub rules: Vec<String>,
    pub models: Vec<String>,
}

pub fn route(
    rules: &[Rule],
    scopes: &[AeScope],
    defaults: &[String],
    model: &Manifest,
    instance: &StudyInstance,
) -> Option<Vec<String>> {
    if !crate::applies(model, instance) {
        return None;
    }
    let scope = instance
        .called_ae_title
        .as_deref()
        .and_then(|ae| scopes.iter().find(|s| s.ae_title == ae.trim()));
    if let Some(s) = scope {
        if !s.models.is_empty() && !s.models.contains(&model.name) {
            return None;
        }
    }
    if rules.is_empty() {
        return Some(defaults.to_vec());
    }
    let in_scope = |r: &Rule| scope.is_none_or(|s| s.rules.is_empty() || s.rules.contains(&r.name));
    let matching: Vec<&Rule> = rules
        .iter()
        .filter(|r| in_scope(r) && r.names(&model.name) && r.matches(instance))
        .collect();
    if matching.is_empty() {
        return None;
    }
    let mut to: Vec<String> = Vec::new();
    for r in matching {
        let add = if r.destinations.is_empty() {
            defaults
        } else {
            &r.destinations[..]
        };
        for d in add {
            if !to.contains(d) {
                to.push(d.clone());
            }
        }
    }
    Some(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(modality: &str, description: &str, ae: &str) -> StudyInstance {
        StudyInstance {
            sop_instance_uid: "1.2.3.4".into(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.1".into(),
            series_instance_uid: "1.2.3".into(),
            modality: Some(modality.into()),
            body_part_examined: Some("CHEST".into()),
            view_position: None,
            calling_ae_title: ae.into(),
            called_ae_title: None,
            study_description: Some(description.into()),
            file: "x.dcm".into(),
        }
    }

    fn manifest() -> Manifest {
        let dir = std::env::temp_dir().join(format!("rules-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("model.toml");
        std::fs::write(
            &p,
            format!(
                "name = \"cxr\"\nversion = \"1\"\narchitecture = \"smallcnn\"\nweights = \"w\"\nsha256 = \"{}\"\nlabels = [\"A\"]\n[input]\nspec = \"xrv\"\nsize = 64\n[applicability]\nmodalities = [\"CR\", \"DX\"]\n",
                "0".repeat(64)
            ),
        )
        .unwrap();
        Manifest::load(&p).unwrap()
    }

    fn rule(description: Option<&str>, ae: &[&str], destinations: &[&str]) -> Rule {
        Rule {
            name: "r".into(),
            modalities: vec![],
            body_parts: vec![],
            view_positions: vec![],
            sop_classes: vec![],
            calling_ae_titles: ae.iter().map(|s| s.to_string()).collect(),
            study_description: description.map(|d| regex::Regex::new(d).unwrap()),
            models: vec!["cxr".into()],
            destinations: destinations.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn rules_choose_images_and_destinations() {
        let m = manifest();
        let defaults = vec!["pacs".to_string()];
        let chest = instance("CR", "XR CHEST PA", "ROUTER");
        // No rules: the manifest decides, defaults receive.
        assert_eq!(
            route(&[], &[], &defaults, &m, &chest),
            Some(defaults.clone())
        );
        assert_eq!(
            route(
                &[],
                &[],
                &defaults,
                &m,
                &instance("CT", "CT HEAD", "ROUTER")
            ),
            None
        );
        let rules = vec![
            rule(Some("(?i)chest"), &[], &[]),
            rule(None, &["ER-ROUTER"], &["er-pacs", "pacs"]),
        ];
        assert_eq!(
            route(&rules, &[], &defaults, &m, &chest),
            Some(defaults.clone())
        );
        assert_eq!(
            route(
                &rules,
                &[],
                &defaults,
                &m,
                &instance("CR", "XR HAND", "ROUTER")
            ),
            None
        );
        assert_eq!(
            route(
                &rules,
                &[],
                &defaults,
                &m,
                &instance("DX", "XR CHEST", "ER-ROUTER")
            ),
            Some(vec!["pacs".to_string(), "er-pacs".to_string()])
        );
        // A rule never widens what the manifest applies to.
        assert_eq!(
            route(
                &rules,
                &[],
                &defaults,
                &m,
                &instance("CT", "CT CHEST", "ER-ROUTER")
            ),
            None
        );
        // Subsampling keeps at most `max` per series, spread over it.
        let series = |uid: &str, n: usize| -> Vec<StudyInstance> {
            (0..n)
                .map(|k| StudyInstance {
                    sop_instance_uid: format!("{uid}.{k}"),
                    series_instance_uid: uid.into(),
                    ..chest.clone()
                })
                .collect()
        };
        let many: Vec<StudyInstance> = [series("1", 10), series("2", 2)].concat();
        let kept: Vec<String> = crate::subsample(many.clone(), 3)
            .into_iter()
            .map(|i| i.sop_instance_uid)
            .collect();
        assert_eq!(kept, ["1.1", "1.5", "1.8", "2.0", "2.1"]);
        assert_eq!(crate::subsample(many, 0).len(), 12);
        // A rule for another model does not route this one.
        let mut other = rule(None, &[], &[]);
        other.models = vec!["ct-head".into()];
        assert_eq!(route(&[other], &[], &defaults, &m, &chest), None);
    }

    #[test]
    fn an_ae_titles_scope_limits_its_models_and_rules() {
        let m = manifest();
        let defaults = vec!["pacs".to_string()];
        let sent_to = |ae: &str| StudyInstance {
            called_ae_title: Some(ae.into()),
            ..instance("CR", "XR CHEST PA", "ROUTER")
        };
        let scopes = [
            AeScope {
                ae_title: "TRIAGE_CT".into(),
                rules: vec![],
                models: vec!["ich".into()],
            },
            AeScope {
                ae_title: "TRIAGE_CXR".into(),
                rules: vec!["to ris".into()],
                models: vec![],
            },
        ];
        let to_pacs = rule(None, &[], &["pacs"]);
        let to_ris = Rule {
            name: "to ris".into(),
            ..rule(None, &[], &["ris"])
        };
        let rules = [to_pacs, to_ris];
        // Another model's AE title: this model does not read it.
        assert_eq!(
            route(&rules, &scopes, &defaults, &m, &sent_to("TRIAGE_CT")),
            None
        );
        // Its own: only its rules route.
        assert_eq!(
            route(&rules, &scopes, &defaults, &m, &sent_to("TRIAGE_CXR")),
            Some(vec!["ris".to_string()])
        );
        // The main AE title (no scope): every rule.
        assert_eq!(
            route(&rules, &scopes, &defaults, &m, &sent_to("TRIAGED")),
            Some(vec!["pacs".to_string(), "ris".to_string()])
        );
    }
}
