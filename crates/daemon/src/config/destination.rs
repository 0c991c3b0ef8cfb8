//! `[[destinations]]`: where results go, and how.
//!
//! One flat table per destination whatever its kind, so the console and
//! the file read alike: `kind` says which keys apply, and
//! [`DestinationConfig::problems`] names any key set for another kind.

use std::path::{Path, PathBuf};

use report::result::PriorityName;
use serde::{Deserialize, Serialize};

use super::{check_ae_title, check_host};

/// The site's de-identification key, in the storage folder.
pub const DEID_KEY_FILE: &str = "deid.key";

/// How a destination receives results.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DestinationKind {
    /// A PACS: the SR and heatmap captures by C-STORE.
    #[default]
    Dicom,
    /// A RIS or interface engine: HL7 v2.5.1 ORU^R01 over MLLP.
    Hl7,
    /// A FHIR R4 server: a transaction Bundle.
    Fhir,
    /// An alerting service: a signed JSON POST.
    Webhook,
    /// A DICOMweb server (a PACS, a cloud archive): the SR and heatmap
    /// captures by STOW-RS.
    Dicomweb,
}

impl DestinationKind {
    /// Set by an address alone (the console may set these).
    pub fn is_address_only(self) -> bool {
        matches!(self, DestinationKind::Dicom | DestinationKind::Hl7)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DestinationKind::Dicom => "dicom",
            DestinationKind::Hl7 => "hl7",
            DestinationKind::Fhir => "fhir",
            DestinationKind::Webhook => "webhook",
            DestinationKind::Dicomweb => "dicomweb",
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    pub name: String,
    #[serde(default)]
    pub kind: DestinationKind,
    /// dicom: the destination's AE title.
    #[serde(default)]
    pub ae_title: String,
    /// dicom and hl7: where to connect.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    /// DICOM over TLS to this destination (its TLS port, often 2762):
    /// `ca_file` is then required, the authorities the destination's
    /// certificate must verify against (the certificate must also name
    /// `host`); `certificate` and `private_key`, together, for a destination
    /// that requires client certificates. Only the configuration file sets
    /// them: a console change of the destination's address keeps them.
    /// For fhir and webhook, an `https` url is TLS, and `ca_file` (optional)
    /// replaces the system's authorities.
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub certificate: Option<PathBuf>,
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// fhir: the server's base; webhook: the address to POST to;
    /// dicomweb: the DICOMweb root (STOW-RS posts to `<url>/studies`).
    #[serde(default)]
    pub url: String,
    /// fhir and dicomweb: a file holding the bearer token (read at each
    /// delivery, so a renewed token needs no restart).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// fhir: the system of the patient identifier (e.g. the hospital's MRN
    /// system); none: the identifier's value alone.
    #[serde(default)]
    pub patient_system: Option<String>,
    /// webhook: a file holding the HMAC-SHA256 signing secret.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// webhook: add the patient's name, ID, birth date and sex.
    #[serde(default)]
    pub include_patient: bool,
    /// hl7: MSH-3..6.
    #[serde(default)]
    pub sending_application: Option<String>,
    #[serde(default)]
    pub sending_facility: Option<String>,
    #[serde(default)]
    pub receiving_application: Option<String>,
    #[serde(default)]
    pub receiving_facility: Option<String>,
    /// The least priority of the reports sent here: "routine" (all, the
    /// default) or "flagged" or "urgent" (the default for webhooks).
    #[serde(default)]
    pub min_priority: Option<PriorityName>,
    /// dicom: send the SR de-identified by DICOM PS3.15's Basic Profile
    /// (a research archive, a registry): UIDs, pseudonym and date shift
    /// from this destination's key, so resends are identical and
    /// `triaged export --deidentify --as-destination NAME` writes images
    /// the SR's references match. Heatmap captures are not sent: their
    /// pixels carry burned-in text. Only the configuration file sets it.
    #[serde(default)]
    pub deidentify: bool,
    /// With `deidentify`: "remove" dates (the default) or "shift" them by
    /// a number of days fixed per patient.
    #[serde(default)]
    pub deidentify_dates: Option<DatesName>,
}

/// `deidentify_dates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DatesName {
    Remove,
    Shift,
}

impl From<DatesName> for deid::Dates {
    fn from(d: DatesName) -> deid::Dates {
        match d {
            DatesName::Remove => deid::Dates::Remove,
            DatesName::Shift => deid::Dates::Shift,
        }
    }
}

impl DestinationConfig {
    /// The peer an association to this destination is opened with.
    pub fn peer(&self) -> dimse::scu::Peer {
        dimse::scu::Peer {
            ae_title: self.ae_title.clone(),
            host: self.host.clone(),
            port: self.port,
            tls: self.tls_settings(),
        }
    }

    /// What this destination receives of a report of `priority`.
    pub fn wants(&self, priority: report::Priority) -> Option<pipeline::Form> {
        let least = self.min_priority.unwrap_or(match self.kind {
            DestinationKind::Webhook => PriorityName::Urgent,
            _ => PriorityName::Routine,
        });
        (PriorityName::from(priority) >= least).then_some(match self.kind {
            DestinationKind::Dicom if self.deidentify => pipeline::Form::Report,
            DestinationKind::Dicom | DestinationKind::Dicomweb => pipeline::Form::Objects,
            _ => pipeline::Form::Result,
        })
    }

    /// The de-identifier of a destination with `deidentify`: its key is
    /// derived from the site's (`deid.key` in the storage folder, made at
    /// first use) and its name.
    pub fn deidentifier(
        &self,
        storage: &Path,
    ) -> Result<Option<deid::Deidentifier>, deid::DeidError> {
        if !self.deidentify {
            return Ok(None);
        }
        let site = deid::Key::read_or_create(&storage.join(DEID_KEY_FILE))?;
        Ok(Some(deid::Deidentifier::new(
            site.derive_key(&format!("destination:{}", self.name)),
            self.deidentify_dates.unwrap_or(DatesName::Remove).into(),
        )))
    }

    /// Where it is, for the console and messages.
    pub fn address(&self) -> String {
        match self.kind {
            DestinationKind::Dicom => format!("{}@{}:{}", self.ae_title, self.host, self.port),
            DestinationKind::Hl7 => format!("{}:{}", self.host, self.port),
            DestinationKind::Fhir | DestinationKind::Webhook | DestinationKind::Dicomweb => {
                self.url.clone()
            }
        }
    }

    /// MSH-3..6 of the messages sent here.
    pub fn hl7_header(&self) -> report::hl7::Header {
        let or = |v: &Option<String>, d: &str| v.clone().unwrap_or_else(|| d.to_string());
        report::hl7::Header {
            sending_application: or(&self.sending_application, "TRIAGED"),
            sending_facility: or(&self.sending_facility, ""),
            receiving_application: or(&self.receiving_application, ""),
            receiving_facility: or(&self.receiving_facility, ""),
        }
    }

    /// The keys of MSH-3..6 and their values.
    fn msh_names(&self) -> [(&'static str, &Option<String>); 4] {
        [
            ("sending_application", &self.sending_application),
            ("sending_facility", &self.sending_facility),
            ("receiving_application", &self.receiving_application),
            ("receiving_facility", &self.receiving_facility),
        ]
    }

    /// Every problem, each message starting with its key after `prefix`
    /// (e.g. "destinations[0].").
    pub fn problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.trim().is_empty() {
            p.push(format!("{prefix}name: must not be empty"));
        }
        let kind = self.kind.as_str();
        let mut unused = |key: &str, set: bool| {
            if set {
                p.push(format!("{prefix}{key}: not used by kind = \"{kind}\""));
            }
        };
        let dicom = self.kind == DestinationKind::Dicom;
        let hl7 = self.kind == DestinationKind::Hl7;
        let http = matches!(
            self.kind,
            DestinationKind::Fhir | DestinationKind::Webhook | DestinationKind::Dicomweb
        );
        unused("ae_title", !dicom && !self.ae_title.is_empty());
        unused("host", http && !self.host.is_empty());
        unused("port", http && self.port != 0);
        unused("tls", !dicom && self.tls);
        unused("certificate", !dicom && self.certificate.is_some());
        unused("private_key", !dicom && self.private_key.is_some());
        unused("ca_file", hl7 && self.ca_file.is_some());
        unused("url", !http && !self.url.is_empty());
        unused(
            "token_file",
            !matches!(self.kind, DestinationKind::Fhir | DestinationKind::Dicomweb)
                && self.token_file.is_some(),
        );
        unused(
            "patient_system",
            self.kind != DestinationKind::Fhir && self.patient_system.is_some(),
        );
        unused(
            "secret_file",
            self.kind != DestinationKind::Webhook && self.secret_file.is_some(),
        );
        unused(
            "include_patient",
            self.kind != DestinationKind::Webhook && self.include_patient,
        );
        unused("deidentify", !dicom && self.deidentify);
        for (key, v) in self.msh_names() {
            unused(key, !hl7 && v.is_some());
        }
        if self.deidentify_dates.is_some() && !self.deidentify {
            p.push(format!(
                "{prefix}deidentify_dates: set, but deidentify is false"
            ));
        }
        if dicom {
            if let Err(e) = check_ae_title(&self.ae_title) {
                p.push(format!("{prefix}ae_title: {e}"));
            }
        }
        if dicom || hl7 {
            if let Err(e) = check_host(&self.host) {
                p.push(format!("{prefix}host: {e}"));
            }
            if self.port == 0 {
                p.push(format!("{prefix}port: must be 1..=65535"));
            }
        }
        if dicom {
            p.extend(self.tls_problems(prefix));
        }
        if http {
            match url_problem(&self.url) {
                Some(e) => p.push(format!("{prefix}url: {e}")),
                None => {
                    if let Some(f) = &self.ca_file {
                        if !self.url.starts_with("https://") {
                            p.push(format!("{prefix}ca_file: set, but url is not https"));
                        } else if let Err(e) = std::fs::read(f) {
                            p.push(format!("{prefix}ca_file {}: {e}", f.display()));
                        }
                    }
                }
            }
        }
        if matches!(self.kind, DestinationKind::Fhir | DestinationKind::Dicomweb) {
            if let Some(f) = &self.token_file {
                if let Err(e) = read_secret(f) {
                    p.push(format!("{prefix}token_file {}: {e}", f.display()));
                }
            }
        }
        if self.kind == DestinationKind::Webhook {
            match &self.secret_file {
                None => p.push(format!(
                    "{prefix}secret_file: required for kind = \"webhook\" (the HMAC-SHA256 signing secret)"
                )),
                Some(f) => {
                    if let Err(e) = read_secret(f) {
                        p.push(format!("{prefix}secret_file {}: {e}", f.display()));
                    }
                }
            }
        }
        if hl7 {
            for (key, v) in self.msh_names() {
                if v.as_deref()
                    .is_some_and(|v| v.contains(['|', '^', '~', '\\', '&', '\r', '\n']))
                {
                    p.push(format!(
                        "{prefix}{key}: must not contain HL7 delimiters (| ^ ~ \\ &)"
                    ));
                }
            }
        }
        p
    }

    /// What the SCU calls with; `None` for plain TCP. Complete only for a
    /// destination [`Config::problems`] found nothing wrong with.
    fn tls_settings(&self) -> Option<dimse::ClientTlsSettings> {
        self.tls.then(|| dimse::ClientTlsSettings {
            ca_file: self.ca_file.clone().unwrap_or_default(),
            identity: self.certificate.clone().zip(self.private_key.clone()).map(
                |(certificate, private_key)| dimse::Identity {
                    certificate,
                    private_key,
                },
            ),
        })
    }

    /// What is wrong with the TLS settings, each message starting with its
    /// key after `prefix` (e.g. "destinations[0].").
    fn tls_problems(&self, prefix: &str) -> Vec<String> {
        let mut p = Vec::new();
        let files = [
            ("ca_file", &self.ca_file),
            ("certificate", &self.certificate),
            ("private_key", &self.private_key),
        ];
        if !self.tls {
            for (key, _) in files.iter().filter(|(_, f)| f.is_some()) {
                p.push(format!("{prefix}{key}: set, but tls is false"));
            }
            return p;
        }
        if self.ca_file.is_none() {
            p.push(format!(
                "{prefix}ca_file: required with tls = true (the authorities the destination's certificate must verify against)"
            ));
        }
        match (&self.certificate, &self.private_key) {
            (Some(_), None) => p.push(format!("{prefix}private_key: required with certificate")),
            (None, Some(_)) => p.push(format!("{prefix}certificate: required with private_key")),
            _ => {}
        }
        if p.is_empty() {
            if let Some(Err(e)) = self.tls_settings().map(|s| s.client_config()) {
                p.push(match e {
                    dimse::TlsError::File { .. } => format!("{prefix}{e}"),
                    e => format!("{prefix}tls: {e}"),
                });
            }
        }
        p
    }
}

/// What is wrong with a destination's http(s) URL.
fn url_problem(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        None if url.is_empty() => Some("required (http:// or https://)".into()),
        None => Some(format!("'{url}' is not an http:// or https:// address")),
        Some(r) => {
            let host = r.split(['/', '?', '#']).next().unwrap_or_default();
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            let name = match host.strip_prefix('[') {
                Some(v6) => v6.split(']').next().unwrap_or_default(),
                None => host.split(':').next().unwrap_or_default(),
            };
            if name.is_empty() {
                Some(format!("'{url}' names no host"))
            } else {
                None
            }
        }
    }
}

/// A secret or token file's content, trimmed; an error if it cannot be
/// read or is empty.
pub fn read_secret(path: &Path) -> std::io::Result<String> {
    let text = std::fs::read_to_string(path)?;
    let text = text.trim();
    if text.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the file is empty",
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::DestinationKind;
    use crate::config::Config;

    fn problems(toml: &str) -> Vec<String> {
        Config::parse(toml).unwrap().problems()
    }

    #[test]
    fn each_kind_needs_its_keys_and_refuses_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let p = problems(&format!(
            r#"
            [[destinations]]
            name = "ris"
            kind = "hl7"
            host = "ris.example"
            ae_title = "RIS"
            sending_application = "A|B"

            [[destinations]]
            name = "fhir"
            kind = "fhir"
            url = "ftp://x"
            token_file = "/nonexistent/token"

            [[destinations]]
            name = "alert"
            kind = "webhook"
            url = "https://alerts.example/hook"

            [[destinations]]
            name = "ok-hook"
            kind = "webhook"
            url = "http://127.0.0.1:9/hook"
            secret_file = "{}"
            min_priority = "flagged"
            "#,
            secret.display()
        ));
        let expected = [
            "destinations[0].ae_title: not used by kind = \"hl7\"",
            "destinations[0].port: must be 1..=65535",
            "destinations[0].sending_application: must not contain HL7 delimiters",
            "destinations[1].url: 'ftp://x' is not an http:// or https:// address",
            "destinations[1].token_file /nonexistent/token: ",
            "destinations[2].secret_file: required for kind = \"webhook\"",
        ];
        for e in expected {
            assert!(p.iter().any(|m| m.starts_with(e)), "{e} not in {p:#?}");
        }
        assert_eq!(p.len(), expected.len(), "{p:#?}");
    }

    /// The commented examples in config/triaged.example.toml use real keys.
    #[test]
    fn the_example_file_s_destination_examples_parse() {
        let text = include_str!("../../../../config/triaged.example.toml");
        let mut kinds = Vec::new();
        for block in text.split("# [[destinations]]\n").skip(1) {
            let body: String = block
                .lines()
                .take_while(|l| l.starts_with("# "))
                .map(|l| format!("{}\n", &l[2..]))
                .collect();
            let c = Config::parse(&format!("[[destinations]]\n{body}"))
                .unwrap_or_else(|e| panic!("{e}\n{body}"));
            kinds.push(c.destinations[0].kind);
        }
        for k in [
            DestinationKind::Dicom,
            DestinationKind::Hl7,
            DestinationKind::Fhir,
            DestinationKind::Webhook,
        ] {
            assert!(kinds.contains(&k), "no {k:?} example");
        }
    }

    #[test]
    fn webhooks_take_urgent_results_and_messages_take_the_result_document() {
        let c = Config::parse(
            r#"
            [[destinations]]
            name = "pacs"
            ae_title = "PACS"
            host = "p"
            port = 104
            [[destinations]]
            name = "alert"
            kind = "webhook"
            url = "http://a/"
            [[destinations]]
            name = "ris"
            kind = "hl7"
            host = "r"
            port = 2575
            min_priority = "flagged"
            [[destinations]]
            name = "research"
            ae_title = "RESEARCH"
            host = "r"
            port = 104
            deidentify = true
            "#,
        )
        .unwrap();
        use pipeline::Form;
        use report::Priority::*;
        let wants = |n: &str, p| c.destination(n).unwrap().wants(p);
        assert_eq!(wants("pacs", Routine), Some(Form::Objects));
        assert_eq!(wants("alert", Flagged), None);
        assert_eq!(wants("alert", Urgent), Some(Form::Result));
        assert_eq!(wants("ris", Routine), None);
        assert_eq!(wants("ris", Flagged), Some(Form::Result));
        assert_eq!(wants("research", Routine), Some(Form::Report));
        assert_eq!(
            c.destination("ris")
                .unwrap()
                .hl7_header()
                .sending_application,
            "TRIAGED"
        );
    }

    #[test]
    fn deidentify_is_for_dicom_destinations() {
        let c = Config::parse(
            r#"
            [[destinations]]
            name = "ris"
            kind = "hl7"
            host = "r"
            port = 2575
            deidentify = true
            [[destinations]]
            name = "pacs"
            ae_title = "PACS"
            host = "p"
            port = 104
            deidentify_dates = "shift"
            "#,
        )
        .unwrap();
        let p = c.problems().join("\n");
        assert!(
            p.contains("destinations[0].deidentify: not used by kind = \"hl7\""),
            "{p}"
        );
        assert!(
            p.contains("destinations[1].deidentify_dates: set, but deidentify is false"),
            "{p}"
        );
    }
}
