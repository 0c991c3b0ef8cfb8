//! What the HTTP layer asks of the daemon.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why an admin action failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The request is wrong (names the field).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Failed(String),
}

/// Where a peer's settings come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The configuration file.
    File,
    /// The admin console (kept in SQLite, overriding the file).
    Console,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceView {
    pub name: String,
    pub ae_title: String,
    pub hosts: Vec<String>,
    pub quiet_secs: Option<f64>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DestinationView {
    pub name: String,
    /// dicom, hl7, fhir or webhook (dicom and hl7 ones are edited in the
    /// console; the others are set in the configuration file).
    pub kind: String,
    /// Where results go: AE@host:port, host:port, or the URL.
    pub address: String,
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    /// Called over TLS (set in the configuration file only).
    pub tls: bool,
    /// Sent de-identified (set in the configuration file only).
    pub deidentify: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInput {
    pub ae_title: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    #[serde(default)]
    pub quiet_secs: Option<f64>,
}

/// A destination as the console sets it: a PACS (dicom) or a RIS (hl7).
/// FHIR and webhook destinations read secrets from files, so only the
/// configuration file sets them. Checked as it is read: a key of the
/// other kind, a missing AE title or a `null` is refused by name.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(try_from = "DestinationRequest")]
pub struct DestinationInput {
    pub kind: ConsoleKind,
    /// dicom only.
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    /// hl7 only: MSH-3..6.
    pub sending_application: Option<String>,
    pub sending_facility: Option<String>,
    pub receiving_application: Option<String>,
    pub receiving_facility: Option<String>,
    /// The least priority of the reports sent there (default: all).
    pub min_priority: Option<MinPriority>,
}

/// The request body as sent, before the per-kind checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DestinationRequest {
    #[serde(default)]
    kind: ConsoleKind,
    #[serde(default, deserialize_with = "present")]
    ae_title: Option<String>,
    host: String,
    #[serde(deserialize_with = "whole_u16")]
    port: u16,
    #[serde(default, deserialize_with = "present")]
    sending_application: Option<String>,
    #[serde(default, deserialize_with = "present")]
    sending_facility: Option<String>,
    #[serde(default, deserialize_with = "present")]
    receiving_application: Option<String>,
    #[serde(default, deserialize_with = "present")]
    receiving_facility: Option<String>,
    #[serde(default, deserialize_with = "present")]
    min_priority: Option<MinPriority>,
}

impl TryFrom<DestinationRequest> for DestinationInput {
    type Error = String;

    fn try_from(r: DestinationRequest) -> Result<DestinationInput, String> {
        let hl7_names = [
            ("sending_application", &r.sending_application),
            ("sending_facility", &r.sending_facility),
            ("receiving_application", &r.receiving_application),
            ("receiving_facility", &r.receiving_facility),
        ];
        let ae_title = match (r.kind, r.ae_title) {
            (ConsoleKind::Dicom, None) => {
                return Err("ae_title: a dicom destination needs one".to_string())
            }
            (ConsoleKind::Dicom, Some(ae)) => {
                if let Some((key, _)) = hl7_names.iter().find(|(_, v)| v.is_some()) {
                    return Err(format!("{key}: only an hl7 destination has one"));
                }
                ae
            }
            (ConsoleKind::Hl7, Some(_)) => {
                return Err("ae_title: an hl7 destination has none".to_string())
            }
            (ConsoleKind::Hl7, None) => String::new(),
        };
        Ok(DestinationInput {
            kind: r.kind,
            ae_title,
            host: r.host,
            port: r.port,
            sending_application: r.sending_application,
            sending_facility: r.sending_facility,
            receiving_application: r.receiving_application,
            receiving_facility: r.receiving_facility,
            min_priority: r.min_priority,
        })
    }
}

/// An optional key that, when present, must hold a value (not `null`).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    match Option::<T>::deserialize(d)? {
        Some(v) => Ok(Some(v)),
        None => Err(serde::de::Error::custom(
            "null is not a value: leave the key out instead",
        )),
    }
}

/// The kinds of destination the console sets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleKind {
    #[default]
    Dicom,
    Hl7,
}

/// A priority, as the console names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MinPriority {
    Routine,
    Flagged,
    Urgent,
}

/// A JSON integer in 0..=65535, also when written with a zero fraction
/// (`104.0` is an integer in JSON Schema, as the API's document says).
fn whole_u16<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = f64::deserialize(d)?;
    if v.fract() == 0.0 && (0.0..=65535.0).contains(&v) {
        Ok(v as u16)
    } else {
        Err(serde::de::Error::custom(format!(
            "{v} is not an integer in 0..=65535"
        )))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelView {
    pub name: String,
    pub version: String,
    pub architecture: String,
    pub labels: Vec<String>,
    pub validated: bool,
    pub intended_use: String,
    pub input: String,
    pub modalities: Vec<String>,
    /// active, shadow or disabled.
    pub state: String,
    /// Who set the state, and when (none: the manifest's initial state).
    pub state_changed_by: Option<String>,
    pub state_changed_at: Option<String>,
}

/// A new state for one version of a model.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelStateInput {
    /// active, shadow or disabled.
    pub state: String,
}

/// The daemon, as the HTTP layer sees it. Changes to sources and
/// destinations are validated, persisted and applied by the implementation
/// (the listener's AE policy and the delivery loop read the live set).
pub trait Control: Send + Sync + 'static {
    fn sources(&self) -> Vec<SourceView>;
    fn destinations(&self) -> Vec<DestinationView>;
    fn put_source<'a>(
        &'a self,
        name: &'a str,
        input: SourceInput,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>>;
    fn put_destination<'a>(
        &'a self,
        name: &'a str,
        input: DestinationInput,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>>;
    fn remove_source<'a>(
        &'a self,
        name: &'a str,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>>;
    fn remove_destination<'a>(
        &'a self,
        name: &'a str,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>>;
    /// C-ECHO a destination; the answer in words.
    fn echo<'a>(&'a self, destination: &'a str) -> BoxFuture<'a, Result<String, ControlError>>;
    /// Every loaded version of every model, with its state now.
    fn models(&self) -> BoxFuture<'_, Result<Vec<ModelView>, ControlError>>;
    /// Put one version of a model in a state (activating it disables the
    /// version that was active); takes effect with the next study.
    fn set_model_state<'a>(
        &'a self,
        name: &'a str,
        version: &'a str,
        input: ModelStateInput,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>>;
    /// Per model version and label: flag rates, agreement, drift.
    fn monitoring(&self) -> BoxFuture<'_, Result<Vec<archive::LabelMonitor>, ControlError>>;
    /// The daemon's counters in the Prometheus text format.
    fn metrics(&self) -> String;
    /// Whether the daemon takes work (storage writable, models loaded).
    fn ready(&self) -> Result<(), String>;
    /// This node's name (`[node] name`).
    fn node(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(body: &str) -> Result<DestinationInput, String> {
        serde_json::from_str(body).map_err(|e| e.to_string())
    }

    #[test]
    fn a_destination_body_holds_the_keys_of_its_kind_only() {
        let pacs = read(r#"{"ae_title":"PACS","host":"h","port":104}"#).unwrap();
        assert_eq!(
            (pacs.kind, pacs.ae_title.as_str()),
            (ConsoleKind::Dicom, "PACS")
        );
        let ris = read(
            r#"{"kind":"hl7","host":"h","port":2575,"sending_facility":"RAD","min_priority":"flagged"}"#,
        )
        .unwrap();
        assert_eq!(ris.kind, ConsoleKind::Hl7);
        assert_eq!(ris.sending_facility.as_deref(), Some("RAD"));
        assert_eq!(ris.min_priority, Some(MinPriority::Flagged));
        for (body, key) in [
            (r#"{"host":"h","port":104}"#, "ae_title"),
            (
                r#"{"kind":"hl7","ae_title":"X","host":"h","port":1}"#,
                "ae_title",
            ),
            (
                r#"{"ae_title":"X","host":"h","port":1,"receiving_application":"RIS"}"#,
                "receiving_application",
            ),
            (
                r#"{"kind":"hl7","host":"h","port":1,"min_priority":null}"#,
                "null",
            ),
            (r#"{"kind":"fhir","host":"h","port":1}"#, "fhir"),
        ] {
            let e = read(body).unwrap_err();
            assert!(e.contains(key), "{body}: {e}");
        }
    }
}
