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
    /// dicom, hl7, fhir or webhook (only dicom ones are edited in the
    /// console; the others are set in the configuration file).
    pub kind: String,
    /// Where results go: AE@host:port, host:port, or the URL.
    pub address: String,
    pub ae_title: String,
    pub host: String,
    pub port: u16,
    /// Called over TLS (set in the configuration file only).
    pub tls: bool,
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationInput {
    pub ae_title: String,
    pub host: String,
    #[serde(deserialize_with = "whole_u16")]
    pub port: u16,
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
    /// The daemon's counters in the Prometheus text format.
    fn metrics(&self) -> String;
    /// Whether the daemon takes work (listener bound, models loaded).
    fn ready(&self) -> Result<(), String>;
}
