//! `[[dicom.ae_titles]]`: further AE titles the daemon answers to, each a
//! service line with its own sources, routing rules and models (e.g.
//! `TRIAGE_CT` for the CT routers and the head CT model, `TRIAGE_CXR` for
//! the radiography rooms and the chest model).

use serde::Deserialize;

use super::{check_ae_title, Config};

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AeTitleConfig {
    pub ae_title: String,
    /// `[[sources]]` names that may call it; empty: every source.
    #[serde(default)]
    pub sources: Vec<String>,
    /// `[[rules]]` names that route what it receives; empty: every rule.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Models (manifest `name`) that read what it receives; empty: every
    /// model.
    #[serde(default)]
    pub models: Vec<String>,
}

impl AeTitleConfig {
    /// What the pipeline needs of it.
    pub fn scope(&self) -> pipeline::rules::AeScope {
        pipeline::rules::AeScope {
            ae_title: self.ae_title.trim().to_string(),
            rules: self.rules.clone(),
            models: self.models.clone(),
        }
    }
}

/// Validation problems of `[[dicom.ae_titles]]`, each naming its key.
pub fn problems(c: &Config) -> Vec<String> {
    let mut p = Vec::new();
    for (i, a) in c.dicom.ae_titles.iter().enumerate() {
        let key = format!("dicom.ae_titles[{i}]");
        if let Err(e) = check_ae_title(&a.ae_title) {
            p.push(format!("{key}.ae_title: {e}"));
        }
        let title = a.ae_title.trim();
        if title == c.dicom.ae_title.trim() {
            p.push(format!(
                "{key}.ae_title: '{title}' is already dicom.ae_title"
            ));
        } else if c.dicom.ae_titles[..i]
            .iter()
            .any(|o| o.ae_title.trim() == title)
        {
            p.push(format!("{key}.ae_title: '{title}' is listed twice"));
        }
        for (k, s) in a.sources.iter().enumerate() {
            if !c.sources.iter().any(|src| &src.name == s) {
                p.push(format!(
                    "{key}.sources[{k}]: '{s}' is not a [[sources]] name"
                ));
            }
        }
        for (k, r) in a.rules.iter().enumerate() {
            if !c.rules.iter().any(|rule| &rule.name == r) {
                p.push(format!("{key}.rules[{k}]: '{r}' is not a [[rules]] name"));
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_and_repeated_titles_are_named() {
        let c = Config::parse(
            r#"
[dicom]
ae_title = "TRIAGED"
[[dicom.ae_titles]]
ae_title = "TRIAGE_CT"
sources = ["ct-router"]
rules = ["head ct"]
models = ["demo-ich"]
[[dicom.ae_titles]]
ae_title = "TRIAGED"
sources = ["nobody"]
rules = ["nothing"]
[[sources]]
name = "ct-router"
ae_title = "CTROUTER"
[[rules]]
name = "head ct"
modalities = ["CT"]
"#,
        )
        .unwrap();
        let p = problems(&c);
        assert_eq!(
            p,
            [
                "dicom.ae_titles[1].ae_title: 'TRIAGED' is already dicom.ae_title",
                "dicom.ae_titles[1].sources[0]: 'nobody' is not a [[sources]] name",
                "dicom.ae_titles[1].rules[0]: 'nothing' is not a [[rules]] name",
            ]
        );
        assert_eq!(c.dicom.ae_titles[0].scope().models, ["demo-ich"]);
    }
}
