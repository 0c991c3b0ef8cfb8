//! The TOML configuration: defaults, parsing and validation.
//!
//! Every key has a default, so `triaged serve` runs with no file at all.
//! Validation happens once at start-up and names the offending key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub mod ae_titles;
pub mod audit;
pub mod database;
pub mod destination;
pub mod monitoring;
pub mod node;
pub mod retention;
pub use audit::AuditConfig;
pub use database::DatabaseConfig;
pub use destination::{DestinationConfig, DestinationKind};
pub use node::NodeConfig;
pub use retention::RetentionConfig;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub dicom: DicomConfig,
    pub storage: StorageConfig,
    pub database: DatabaseConfig,
    pub node: NodeConfig,
    pub retention: RetentionConfig,
    pub audit: AuditConfig,
    pub monitoring: monitoring::MonitoringConfig,
    pub sources: Vec<SourceConfig>,
    pub destinations: Vec<DestinationConfig>,
    pub models: ModelsConfig,
    pub outbox: OutboxConfig,
    pub pipeline: PipelineConfig,
    /// Routing rules (`[[rules]]`).
    pub rules: Vec<pipeline::rules::Rule>,
    pub http: HttpConfig,
    pub log: LogConfig,
}

/// The worklist and admin console over HTTP (crates/web).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve the page and API at all.
    pub enabled: bool,
    /// Loopback by default: put a TLS reverse proxy in front to reach it
    /// from other machines.
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    /// Who may sign in. With none, the daemon makes one admin token at
    /// first start and keeps it in `<storage>/admin.token`.
    pub users: Vec<HttpUserConfig>,
    /// The worklist's address as users reach it (e.g. behind the TLS
    /// proxy), for links in alerts and DICOMweb's RetrieveURLs; default
    /// `http://<listen>`.
    pub public_url: Option<String>,
    /// The largest STOW-RS request (all its instances), in MiB; a larger
    /// one is refused with 413 before anything is stored.
    pub max_stow_mb: u64,
}

impl HttpConfig {
    /// Where users reach the worklist.
    pub fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.listen))
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8642)),
            users: Vec::new(),
            public_url: None,
            max_stow_mb: 1024,
        }
    }
}

/// One user: a name (in the access log and on reviews), a role, and the
/// SHA-256 of their token (`triaged token` makes both).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpUserConfig {
    pub name: String,
    pub role: web::Role,
    pub token_sha256: String,
}

/// Study assembly and analysis.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// A study is analysed once no instance of it has arrived for this
    /// long (across all associations).
    pub quiet_secs: f64,
    /// Flagged labels that make a study urgent (case-insensitive).
    pub urgent_labels: Vec<String>,
    /// Destinations that receive every report; empty: all destinations.
    pub destinations: Vec<String>,
    /// At most this many images of a series are analysed (evenly spaced);
    /// 0: all.
    pub max_images_per_series: usize,
    /// Studies analysed at once (1..=16). Each worker holds one study's
    /// working set; two keep the cores busy while one decodes or writes.
    pub workers: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            quiet_secs: 5.0,
            urgent_labels: vec!["Pneumothorax".into(), "Intracranial haemorrhage".into()],
            destinations: Vec::new(),
            max_images_per_series: pipeline::DEFAULT_MAX_IMAGES_PER_SERIES,
            workers: 2,
        }
    }
}

/// Delivery of results to destinations.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Attempts before a result that keeps failing transiently goes to
    /// dead letter (`triaged outbox retry` revives it).
    pub max_attempts: u32,
    /// First retry delay; it doubles per attempt (with jitter) up to
    /// `max_retry_secs`.
    pub first_retry_secs: u64,
    pub max_retry_secs: u64,
    /// How long one attempt to an HL7, FHIR or webhook destination may
    /// take: connecting, sending and the answer (DICOM destinations use
    /// `dicom.scu_timeout_secs`).
    pub timeout_secs: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig {
            max_attempts: 50,
            first_retry_secs: 5,
            max_retry_secs: 3600,
            timeout_secs: 30,
        }
    }
}

impl OutboxConfig {
    pub fn policy(&self) -> archive::RetryPolicy {
        archive::RetryPolicy {
            max_attempts: self.max_attempts,
            first_delay: Duration::from_secs(self.first_retry_secs),
            max_delay: Duration::from_secs(self.max_retry_secs),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsConfig {
    /// Folder of models, one sub-folder each with a `model.toml` manifest.
    pub dir: PathBuf,
    /// CPU threads for inference; 0 = one per core.
    pub threads: usize,
    /// `fast` (triaged's own CPU path, the default) or `candle` (candle's
    /// generic operations: slower, kept as a fallback and a reference).
    pub backend: infer::Backend,
    /// The largest weights file (safetensors or ONNX) a model may have:
    /// a bigger one is refused before it is read.
    pub max_bytes: u64,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        let defaults = infer::LoadOptions::default();
        ModelsConfig {
            dir: PathBuf::from("models"),
            threads: 0,
            backend: defaults.backend,
            max_bytes: defaults.max_bytes,
        }
    }
}

impl ModelsConfig {
    pub fn load_options(&self) -> infer::LoadOptions {
        infer::LoadOptions {
            backend: self.backend,
            max_bytes: self.max_bytes,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DicomConfig {
    pub ae_title: String,
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    pub max_pdu: u32,
    pub idle_timeout_secs: u64,
    pub max_associations: usize,
    pub shutdown_grace_secs: u64,
    /// Timeout for associations triaged opens (echo, sending results).
    pub scu_timeout_secs: u64,
    /// DICOM over TLS on a second port, beside the plain one.
    pub tls: Option<DicomTlsConfig>,
    /// Further AE titles, each with its own sources, rules and models.
    pub ae_titles: Vec<ae_titles::AeTitleConfig>,
}

/// `[dicom.tls]`: the TLS port (DICOM's registered one is 2762) and its
/// certificate; `client_ca` makes client certificates required.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DicomTlsConfig {
    #[serde(deserialize_with = "socket_addr")]
    pub listen: SocketAddr,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
}

impl DicomTlsConfig {
    pub fn settings(&self) -> dimse::TlsSettings {
        dimse::TlsSettings {
            certificate: self.certificate.clone(),
            private_key: self.private_key.clone(),
            client_ca: self.client_ca.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub dir: PathBuf,
    pub spill_threshold_mb: usize,
    /// How each instance is made durable before Success: "each" (fsync
    /// its file and its directory; the default), "group" (one `syncfs`
    /// for every instance waiting: only for a filesystem of its own) or
    /// "journal" (one flushed append to the ingest journal for every
    /// instance waiting, the file and index row made after; SQLite only).
    pub flush: FlushMode,
}

/// `storage.flush`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    Group,
    #[default]
    Each,
    Journal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    pub name: String,
    pub ae_title: String,
    /// Empty: any host.
    #[serde(default, deserialize_with = "host_patterns")]
    pub hosts: Vec<dimse::HostPattern>,
    /// This sender's quiet period (a slow modality may pause longer
    /// between images than a router); default `pipeline.quiet_secs`.
    #[serde(default)]
    pub quiet_secs: Option<f64>,
}

/// A destination name that is not in `[[destinations]]`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("no destination named '{name}' in [[destinations]] (configured: {})", list_or_none(.configured))]
pub struct UnknownDestination {
    pub name: String,
    pub configured: Vec<String>,
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter, e.g. "info" or "info,dimse=debug". RUST_LOG wins.
    pub level: String,
    /// "text" or "json".
    pub format: String,
}

/// An `address:port` key, parsed when the file is read (the message
/// quotes the value; the TOML error names the key's line).
fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let raw = String::deserialize(d)?;
    raw.trim().parse().map_err(|e| {
        serde::de::Error::custom(format!(
            "'{raw}' is not an address:port, e.g. 0.0.0.0:11112 ({e})"
        ))
    })
}

/// A source's `hosts`: IP addresses or CIDR ranges, parsed when the file
/// is read.
fn host_patterns<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<dimse::HostPattern>, D::Error> {
    Ok(Vec::<Host>::deserialize(d)?
        .into_iter()
        .map(|h| h.0)
        .collect())
}

/// One entry of `hosts`, read element by element so that an error names
/// its index (`sources[0].hosts[1]`).
struct Host(dimse::HostPattern);

impl<'de> Deserialize<'de> for Host {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Host, D::Error> {
        String::deserialize(d)?
            .parse()
            .map(Host)
            .map_err(serde::de::Error::custom)
    }
}

impl Default for DicomConfig {
    fn default() -> Self {
        DicomConfig {
            ae_title: "TRIAGED".into(),
            listen: SocketAddr::from(([0, 0, 0, 0], 11112)),
            max_pdu: 131_072,
            idle_timeout_secs: 60,
            max_associations: 32,
            shutdown_grace_secs: 30,
            scu_timeout_secs: 30,
            tls: None,
            ae_titles: Vec::new(),
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            dir: PathBuf::from("var/triaged"),
            spill_threshold_mb: 16,
            flush: FlushMode::default(),
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: "text".into(),
        }
    }
}

/// A configuration problem, naming the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: invalid configuration:\n{}", .problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid {
        path: PathBuf,
        problems: Vec<String>,
    },
}

/// Where the configuration came from, for messages.
pub fn describe(path: Option<&Path>) -> PathBuf {
    path.map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("<built-in defaults>"))
}

impl Config {
    /// Where the archive is: the storage folder and the database (whose
    /// password this reads from its file or the environment).
    pub fn archive_options(&self) -> Result<archive::ArchiveOptions, String> {
        let mut options =
            archive::ArchiveOptions::new(&self.storage.dir).with_database(self.database.options()?);
        options.spill_threshold = self.storage.spill_threshold_mb << 20;
        options.flush = match self.storage.flush {
            FlushMode::Group => archive::Flush::Group,
            FlushMode::Each => archive::Flush::Each,
            FlushMode::Journal => archive::Flush::Journal,
        };
        options.node = self.node.name.clone();
        options.lease = Duration::from_secs(self.node.lease_secs);
        Ok(options)
    }

    /// Load from a file, or the built-in defaults when `path` is None, and
    /// validate.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        let config = match path {
            None => Config::default(),
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: p.to_path_buf(),
                    source,
                })?;
                Config::parse(&text).map_err(|message| ConfigError::Parse {
                    path: p.to_path_buf(),
                    message,
                })?
            }
        };
        let problems = config.problems();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError::Invalid {
                path: describe(path),
                problems,
            })
        }
    }

    /// Parse a configuration file's text. A value that cannot be read as
    /// its type (an address, a host pattern, a regex) is named by its key
    /// path, followed by TOML's own message with the line and column.
    pub fn parse(text: &str) -> Result<Config, String> {
        let document = toml::Deserializer::parse(text).map_err(|e| e.to_string())?;
        serde_path_to_error::deserialize(document)
            .map_err(|e| {
                let key = e.path().to_string();
                let message = e.into_inner().to_string();
                if key == "." {
                    message
                } else {
                    format!("{key}: {message}")
                }
            })
            .map_err(|m| m.trim_end().to_string())
    }

    /// Every validation problem, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(self.pipeline.quiet_secs >= 0.0 && self.pipeline.quiet_secs <= 86_400.0) {
            p.push(format!(
                "pipeline.quiet_secs: {} is outside 0..=86400",
                self.pipeline.quiet_secs
            ));
        }
        for (i, src) in self.sources.iter().enumerate() {
            if let Some(q) = src.quiet_secs {
                if !(0.0..=86_400.0).contains(&q) {
                    p.push(format!("sources[{i}].quiet_secs: {q} is outside 0..=86400"));
                }
            }
        }
        if !(1..=16).contains(&self.pipeline.workers) {
            p.push(format!(
                "pipeline.workers: {} is outside 1..=16",
                self.pipeline.workers
            ));
        }
        for (i, d) in self.pipeline.destinations.iter().enumerate() {
            if self.destination(d).is_none() {
                p.push(format!(
                    "pipeline.destinations[{i}]: '{d}' is not a [[destinations]] name"
                ));
            }
        }
        for (i, r) in self.rules.iter().enumerate() {
            if r.name.trim().is_empty() {
                p.push(format!("rules[{i}].name: must not be empty"));
            } else if self.rules[..i].iter().any(|o| o.name == r.name) {
                p.push(format!("rules[{i}].name: '{}' is used twice", r.name));
            }
            for (k, d) in r.destinations.iter().enumerate() {
                if self.destination(d).is_none() {
                    p.push(format!(
                        "rules[{i}].destinations[{k}]: '{d}' is not a [[destinations]] name"
                    ));
                }
            }
        }
        p.extend(self.database.problems());
        p.extend(self.node.problems());
        p.extend(self.retention.problems());
        p.extend(self.audit.problems());
        p.extend(self.monitoring.problems());
        p.extend(ae_titles::problems(self));
        if self.outbox.timeout_secs == 0 {
            p.push("outbox.timeout_secs: must be at least 1".into());
        }
        if self.outbox.max_attempts == 0 {
            p.push("outbox.max_attempts: must be at least 1".into());
        }
        if self.outbox.first_retry_secs == 0
            || self.outbox.first_retry_secs > self.outbox.max_retry_secs
        {
            p.push(format!(
                "outbox.first_retry_secs: {} must lie in 1..=outbox.max_retry_secs ({})",
                self.outbox.first_retry_secs, self.outbox.max_retry_secs
            ));
        }
        if let Err(e) = check_ae_title(&self.dicom.ae_title) {
            p.push(format!("dicom.ae_title: {e}"));
        }
        if !(4096..=1_048_576).contains(&self.dicom.max_pdu) {
            p.push(format!(
                "dicom.max_pdu: {} is outside 4096..=1048576",
                self.dicom.max_pdu
            ));
        }
        if self.dicom.idle_timeout_secs == 0 {
            p.push("dicom.idle_timeout_secs: must be at least 1".into());
        }
        if self.dicom.max_associations == 0 {
            p.push("dicom.max_associations: must be at least 1".into());
        }
        if self.dicom.scu_timeout_secs == 0 {
            p.push("dicom.scu_timeout_secs: must be at least 1".into());
        }
        if let Some(tls) = &self.dicom.tls {
            if tls.listen == self.dicom.listen {
                p.push("dicom.tls.listen: the same address as dicom.listen".into());
            }
            // Loading them now catches a missing file, a key that does not
            // match its certificate, or an empty CA file at start-up.
            match dimse::TlsAcceptor::new(&tls.settings()) {
                Ok(_) => {}
                Err(e @ dimse::TlsError::File { .. }) => p.push(format!("dicom.tls.{e}")),
                Err(e) => p.push(format!("dicom.tls: {e}")),
            }
        }
        if self.storage.dir.as_os_str().is_empty() {
            p.push("storage.dir: must not be empty".into());
        }
        if self.storage.spill_threshold_mb == 0 || self.storage.spill_threshold_mb > 1024 {
            p.push(format!(
                "storage.spill_threshold_mb: {} is outside 1..=1024",
                self.storage.spill_threshold_mb
            ));
        }
        for (i, s) in self.sources.iter().enumerate() {
            if s.name.trim().is_empty() {
                p.push(format!("sources[{i}].name: must not be empty"));
            }
            if self.sources[..i].iter().any(|o| o.name == s.name) {
                p.push(format!("sources[{i}].name: '{}' is used twice", s.name));
            }
            if let Err(e) = check_ae_title(&s.ae_title) {
                p.push(format!("sources[{i}].ae_title: {e}"));
            }
        }
        for (i, d) in self.destinations.iter().enumerate() {
            if self.destinations[..i].iter().any(|o| o.name == d.name) {
                p.push(format!(
                    "destinations[{i}].name: '{}' is used twice",
                    d.name
                ));
            }
            p.extend(d.problems(&format!("destinations[{i}].")));
        }
        for (i, u) in self.http.users.iter().enumerate() {
            if u.name.trim().is_empty() {
                p.push(format!("http.users[{i}].name: must not be empty"));
            }
            if u.token_sha256.len() != 64 || !u.token_sha256.bytes().all(|b| b.is_ascii_hexdigit())
            {
                p.push(format!(
                    "http.users[{i}].token_sha256: 64 hexadecimal digits expected (`triaged token` makes one)"
                ));
            }
            if self.http.users[..i]
                .iter()
                .any(|o| o.token_sha256.eq_ignore_ascii_case(&u.token_sha256))
            {
                p.push(format!(
                    "http.users[{i}].token_sha256: the same token as another user"
                ));
            }
        }
        if !(1..=65536).contains(&self.http.max_stow_mb) {
            p.push(format!(
                "http.max_stow_mb: {} is not within 1..=65536",
                self.http.max_stow_mb
            ));
        }
        if self.models.threads > 256 {
            p.push(format!(
                "models.threads: {} is more than 256",
                self.models.threads
            ));
        }
        if self.models.max_bytes == 0 {
            p.push("models.max_bytes: must be more than 0".into());
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            p.push(format!(
                "log.format: '{}' must be \"text\" or \"json\"",
                self.log.format
            ));
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            p.push(format!(
                "log.level: '{}' is not a valid filter ({e})",
                self.log.level
            ));
        }
        p
    }

    pub fn destination(&self, name: &str) -> Option<&DestinationConfig> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// The destination called `name`, or an error that lists the ones
    /// configured.
    pub fn named_destination(&self, name: &str) -> Result<&DestinationConfig, UnknownDestination> {
        self.destination(name).ok_or_else(|| UnknownDestination {
            name: name.to_string(),
            configured: self.destinations.iter().map(|d| d.name.clone()).collect(),
        })
    }

    /// How triaged opens associations (C-ECHO, sending results).
    pub fn scu_settings(&self) -> dimse::scu::ScuSettings {
        dimse::scu::ScuSettings {
            calling_ae_title: self.dicom.ae_title.clone(),
            timeout: Duration::from_secs(self.dicom.scu_timeout_secs),
            max_pdu: self.dicom.max_pdu,
        }
    }

    pub fn policy(&self) -> dimse::AssociationPolicy {
        dimse::AssociationPolicy {
            ae_title: self.dicom.ae_title.clone(),
            sources: self
                .sources
                .iter()
                .map(|s| dimse::SourceRule {
                    name: s.name.clone(),
                    ae_title: s.ae_title.clone(),
                    hosts: s.hosts.clone(),
                })
                .collect(),
            other_ae_titles: self
                .dicom
                .ae_titles
                .iter()
                .map(|a| dimse::CalledAe {
                    ae_title: a.ae_title.trim().to_string(),
                    sources: a.sources.clone(),
                })
                .collect(),
        }
    }

    pub fn listener_config(&self) -> dimse::ListenerConfig {
        dimse::ListenerConfig {
            policy: dimse::LivePolicy::new(self.policy()),
            max_pdu: self.dicom.max_pdu,
            idle_timeout: Duration::from_secs(self.dicom.idle_timeout_secs),
            max_associations: self.dicom.max_associations,
            shutdown_grace: Duration::from_secs(self.dicom.shutdown_grace_secs),
            stats: Default::default(),
        }
    }
}

/// AE titles: 1 to 16 characters of the default repertoire, no backslash or
/// control characters, not only spaces (PS3.5 6.2).
/// A destination's host: a DNS name or an IP address literal, 1 to 253
/// characters of ASCII letters, digits, '.', '-', '_' and ':'.
pub fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("must not be empty".into());
    }
    if host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return Err(format!(
            "'{host}' is not a host name or IP address (letters, digits, '.', '-', '_', ':'; at most 253)"
        ));
    }
    Ok(())
}

pub fn check_ae_title(ae: &str) -> Result<(), String> {
    if ae.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if ae.len() > 16 {
        return Err(format!(
            "'{ae}' is {} characters; at most 16 are allowed",
            ae.len()
        ));
    }
    if let Some(c) = ae
        .chars()
        .find(|c| !c.is_ascii() || c.is_ascii_control() || *c == '\\')
    {
        return Err(format!(
            "'{ae}' contains {c:?}; use ASCII letters, digits and punctuation other than backslash"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let c = Config::default();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
        assert_eq!(c.dicom.ae_title, "TRIAGED");
        assert_eq!(c.dicom.listen.port(), 11112);
        assert!(c.sources.is_empty());
    }

    #[test]
    fn issue_example_parses() {
        let c = Config::parse(
            r#"
            [dicom]
            ae_title = "TRIAGED"
            listen = "0.0.0.0:11112"
            [storage]
            dir = "var/triaged"
            [[sources]]
            name = "router"
            ae_title = "PACSROUTER"
            hosts = ["127.0.0.1"]
            [[destinations]]
            name = "pacs"
            ae_title = "ORTHANC"
            host = "127.0.0.1"
            port = 4242
            "#,
        )
        .unwrap();
        assert!(c.problems().is_empty());
        assert_eq!(c.sources[0].ae_title, "PACSROUTER");
        assert_eq!(c.destination("pacs").unwrap().port, 4242);
    }

    #[test]
    fn the_example_file_is_valid_and_complete() {
        let text = include_str!("../../../config/triaged.example.toml");
        let c = Config::parse(text).unwrap();
        assert!(c.problems().is_empty(), "{:?}", c.problems());
    }

    #[test]
    fn the_inference_backend_is_fast_unless_set() {
        assert_eq!(Config::default().models.backend, infer::Backend::Fast);
        let c = Config::parse("[models]\nbackend = \"candle\"\n").unwrap();
        assert_eq!(c.models.backend, infer::Backend::Candle);
        let e = Config::parse("[models]\nbackend = \"gpu\"\n").unwrap_err();
        assert!(e.contains("backend") && e.contains("fast"), "{e}");
    }

    #[test]
    fn problems_name_their_keys() {
        let c = Config::parse(
            r#"
            [dicom]
            ae_title = "THIS TITLE IS FAR TOO LONG"
            [[sources]]
            name = "a"
            ae_title = "A\\B"
            [[sources]]
            name = "a"
            ae_title = "B"
            [[destinations]]
            name = "pacs"
            ae_title = ""
            host = "pacs"
            port = 0
            [models]
            threads = 1000
            max_bytes = 0
            [[rules]]
            name = ""
            destinations = ["nowhere"]
            [outbox]
            max_attempts = 0
            first_retry_secs = 100
            max_retry_secs = 10
            "#,
        )
        .unwrap();
        let p = c.problems().join("\n");
        for key in [
            "dicom.ae_title",
            "sources[0].ae_title",
            "sources[1].name",
            "destinations[0].ae_title",
            "destinations[0].port",
            "models.threads",
            "models.max_bytes",
            "outbox.max_attempts",
            "rules[0].name",
            "rules[0].destinations[0]",
            "outbox.first_retry_secs",
        ] {
            assert!(p.contains(key), "no problem for {key} in:\n{p}");
        }
    }

    #[test]
    fn a_tls_destination_needs_its_authorities_and_both_halves_of_its_identity() {
        let dest = |name: &str, extra: &str| {
            format!("[[destinations]]\nname = \"{name}\"\nae_title = \"P\"\nhost = \"h\"\nport = 2762\n{extra}\n")
        };
        let text = [
            dest("a", "tls = true\ncertificate = \"/etc/me.pem\""),
            dest("b", "tls = true\nca_file = \"/nonexistent/ca.pem\""),
            dest("c", "ca_file = \"/etc/ca.pem\""),
            dest("d", ""),
        ]
        .concat();
        let c = Config::parse(&text).unwrap();
        let p = c.problems();
        for want in [
            "destinations[0].ca_file: required with tls = true",
            "destinations[0].private_key: required with certificate",
            "destinations[1].ca_file /nonexistent/ca.pem: ",
            "destinations[2].ca_file: set, but tls is false",
        ] {
            assert!(
                p.iter().any(|p| p.starts_with(want)),
                "no '{want}' in {p:#?}"
            );
        }
        assert_eq!(p.len(), 4, "{p:#?}");
        assert!(c.destinations[3].peer().tls.is_none());
    }

    #[test]
    fn addresses_and_host_patterns_are_parsed_when_the_file_is_read() {
        let c = Config::parse(
            "[dicom]\nlisten = \"127.0.0.1:104\"\n[[sources]]\nname = \"r\"\nae_title = \"R\"\nhosts = [\"10.0.0.0/8\", \"192.168.1.7\"]\n",
        )
        .unwrap();
        assert_eq!(c.dicom.listen, SocketAddr::from(([127, 0, 0, 1], 104)));
        let hosts = &c.policy().sources[0].hosts;
        assert!(
            hosts[0].matches([10, 1, 2, 3].into()) && hosts[1].matches([192, 168, 1, 7].into())
        );
        for (text, key, value) in [
            (
                "[dicom]\nlisten = \"nowhere\"\n",
                "dicom.listen: ",
                "'nowhere' is not an address:port",
            ),
            (
                "[http]\nlisten = \"8642\"\n",
                "http.listen: ",
                "'8642' is not an address:port",
            ),
            (
                "[[sources]]\nname = \"a\"\nae_title = \"A\"\nhosts = [\"10.0.0.0/99\"]\n",
                "sources[0].hosts[0]: ",
                "'10.0.0.0/99' is not an IP address or CIDR range",
            ),
            (
                "[[rules]]\nname = \"r\"\nstudy_description = \"(unclosed\"\n",
                "rules[0].study_description: ",
                "not a regular expression",
            ),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert!(e.contains(key) && e.contains(value), "{e}");
        }
    }

    #[test]
    fn unknown_keys_are_errors() {
        let e = Config::parse("[dicom]\nae_titel = \"X\"\n").unwrap_err();
        assert!(e.contains("ae_titel"), "{e}");
        let e = Config::parse("[dicom]\nmax_pdu = \"big\"\n").unwrap_err();
        assert!(e.contains("max_pdu"), "{e}");
    }
}
