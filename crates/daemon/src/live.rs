//! The configuration in force: the file's, with the sources and
//! destinations an admin set from the console (kept in SQLite) applied on
//! top. Changes are validated like the file, persisted, then swapped in as
//! one [`Snapshot`]: the listener's AE policy, the pipeline's quiet periods
//! and default destinations and the delivery loop read the live set, so
//! they take effect without a restart, and survive one.

use std::sync::Arc;
use std::time::Duration;

use archive::{Archive, PeerKind, PeerOverride, QuietPeriods};
use dimse::{AssociationPolicy, PolicySource};
use pipeline::LiveRouting;
use report::result::PriorityName;
use tokio::sync::watch;
use web::{
    BoxFuture, ConsoleKind, Control, ControlError, DestinationInput, DestinationView, MinPriority,
    ModelStateInput, ModelView, Origin, SourceInput, SourceView,
};

use crate::config::{Config, DestinationConfig, DestinationKind, SourceConfig};

pub struct Live {
    file: Config,
    archive: Archive,
    /// What is in force, swapped whole by [`Live::reload`]: the listener,
    /// the pipeline and the delivery loop each read one consistent view.
    current: watch::Sender<Arc<Snapshot>>,
    /// One reload at a time, so a slower one never installs older rows.
    reloading: tokio::sync::Mutex<()>,
}

/// The configuration in force and what is derived from it, made together.
#[derive(Debug)]
pub struct Snapshot {
    pub config: Arc<Config>,
    overrides: Vec<PeerOverride>,
    policy: Arc<AssociationPolicy>,
    quiet: QuietPeriods,
    destinations: Vec<String>,
}

impl Snapshot {
    fn new(file: &Config, overrides: Vec<PeerOverride>) -> Snapshot {
        let config = apply(file, &overrides);
        Snapshot {
            policy: Arc::new(config.policy()),
            quiet: quiet_periods(&config),
            destinations: default_destinations(&config),
            config: Arc::new(config),
            overrides,
        }
    }
}

/// A reader of the snapshot in force, for the listener and the pipeline.
#[derive(Debug, Clone)]
pub struct Snapshots(watch::Receiver<Arc<Snapshot>>);

impl Snapshots {
    fn now(&self) -> Arc<Snapshot> {
        self.0.borrow().clone()
    }
}

impl PolicySource for Snapshots {
    fn current(&self) -> Arc<AssociationPolicy> {
        self.now().policy.clone()
    }
}

impl LiveRouting for Snapshots {
    fn quiet(&self) -> QuietPeriods {
        self.now().quiet.clone()
    }

    fn destinations(&self) -> Vec<String> {
        self.now().destinations.clone()
    }

    fn wants(&self, destination: &str, priority: report::Priority) -> Option<pipeline::Form> {
        match self.now().config.destination(destination) {
            Some(d) => d.wants(priority),
            None => Some(pipeline::Form::Objects),
        }
    }
}

/// Problems of one source or destination, named by field.
fn problems(c: Config, prefix: &str) -> Result<(), ControlError> {
    let p: Vec<String> = c
        .problems()
        .into_iter()
        .map(|p| p.strip_prefix(prefix).map(str::to_string).unwrap_or(p))
        .collect();
    if p.is_empty() {
        Ok(())
    } else {
        Err(ControlError::Invalid(p.join("; ")))
    }
}

/// A source as the console stored it (hosts one a line).
fn source_of(r: &PeerOverride) -> Result<SourceConfig, ControlError> {
    let hosts: Vec<String> = r
        .hosts
        .as_deref()
        .unwrap_or_default()
        .lines()
        .filter(|h| !h.trim().is_empty())
        .map(str::to_string)
        .collect();
    Ok(SourceConfig {
        name: r.name.clone(),
        ae_title: r.ae_title.clone().unwrap_or_default(),
        hosts: host_patterns(&hosts)?,
        quiet_secs: r.quiet_secs,
    })
}

/// Hosts as typed in the console, parsed (the message names the entry).
fn host_patterns(hosts: &[String]) -> Result<Vec<dimse::HostPattern>, ControlError> {
    hosts
        .iter()
        .enumerate()
        .map(|(j, h)| {
            h.trim()
                .parse()
                .map_err(|e| ControlError::Invalid(format!("hosts[{j}]: {e}")))
        })
        .collect()
}

/// What the console sets of a destination beyond its address, kept as
/// JSON in its row's `settings` (absent: a DICOM destination, all results).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct ConsoleSettings {
    #[serde(default)]
    kind: DestinationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sending_application: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sending_facility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receiving_application: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receiving_facility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_priority: Option<PriorityName>,
}

impl ConsoleSettings {
    fn of(input: &DestinationInput) -> ConsoleSettings {
        let trimmed = |v: &Option<String>| v.as_deref().map(|v| v.trim().to_string());
        ConsoleSettings {
            kind: match input.kind {
                ConsoleKind::Dicom => DestinationKind::Dicom,
                ConsoleKind::Hl7 => DestinationKind::Hl7,
            },
            sending_application: trimmed(&input.sending_application),
            sending_facility: trimmed(&input.sending_facility),
            receiving_application: trimmed(&input.receiving_application),
            receiving_facility: trimmed(&input.receiving_facility),
            min_priority: input.min_priority.map(|p| match p {
                MinPriority::Routine => PriorityName::Routine,
                MinPriority::Flagged => PriorityName::Flagged,
                MinPriority::Urgent => PriorityName::Urgent,
            }),
        }
    }
}

/// A destination as the console stored it, with the TLS settings of the
/// file's destination of that name (the console does not set them).
fn destination_of(file: &Config, r: &PeerOverride) -> DestinationConfig {
    let settings = r
        .settings
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    console_destination(
        file,
        &r.name,
        r.ae_title.clone().unwrap_or_default(),
        r.host.clone().unwrap_or_default(),
        r.port.and_then(|p| u16::try_from(p).ok()).unwrap_or(0),
        settings,
    )
}

/// The console's destination `name`; what the console does not set (TLS)
/// from the file's destination of that name and kind, or the defaults.
fn console_destination(
    file: &Config,
    name: &str,
    ae_title: String,
    host: String,
    port: u16,
    s: ConsoleSettings,
) -> DestinationConfig {
    let from_file = file
        .destinations
        .iter()
        .find(|f| f.name == name && f.kind == s.kind);
    DestinationConfig {
        name: name.to_string(),
        kind: s.kind,
        ae_title,
        host,
        port,
        sending_application: s.sending_application,
        sending_facility: s.sending_facility,
        receiving_application: s.receiving_application,
        receiving_facility: s.receiving_facility,
        min_priority: s.min_priority,
        ..from_file.cloned().unwrap_or_default()
    }
}

/// The file's configuration with the overrides applied; an override that
/// does not validate is left out (logged).
fn apply(file: &Config, rows: &[PeerOverride]) -> Config {
    let mut c = file.clone();
    for r in rows {
        match r.kind.as_str() {
            "source" => {
                c.sources.retain(|s| s.name != r.name);
                if !r.removed {
                    let checked = source_of(r).and_then(|s| {
                        let check = Config {
                            sources: vec![s.clone()],
                            ..Config::default()
                        };
                        problems(check, "sources[0].").map(|()| s)
                    });
                    match checked {
                        Ok(s) => c.sources.push(s),
                        Err(e) => {
                            tracing::warn!(source = %r.name, error = %e, "console source ignored")
                        }
                    }
                }
            }
            "destination" => {
                c.destinations.retain(|d| d.name != r.name);
                if !r.removed {
                    let d = destination_of(file, r);
                    let check = Config {
                        destinations: vec![d.clone()],
                        ..Config::default()
                    };
                    match problems(check, "destinations[0].") {
                        Ok(()) => c.destinations.push(d),
                        Err(e) => {
                            tracing::warn!(destination = %r.name, error = %e, "console destination ignored")
                        }
                    }
                }
            }
            _ => {}
        }
    }
    c
}

fn quiet_periods(c: &Config) -> QuietPeriods {
    QuietPeriods {
        default: Duration::from_secs_f64(c.pipeline.quiet_secs),
        by_calling_ae: c
            .sources
            .iter()
            .filter_map(|s| {
                s.quiet_secs
                    .map(|q| (s.ae_title.trim().to_string(), Duration::from_secs_f64(q)))
            })
            .collect(),
    }
}

fn default_destinations(c: &Config) -> Vec<String> {
    if c.pipeline.destinations.is_empty() {
        c.destinations.iter().map(|d| d.name.clone()).collect()
    } else {
        c.pipeline.destinations.clone()
    }
}

fn check_name(name: &str) -> Result<(), ControlError> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(|c| c.is_control()) {
        return Err(ControlError::Invalid(
            "name: 1 to 64 printable characters".into(),
        ));
    }
    Ok(())
}

impl Live {
    pub async fn open(file: Config, archive: Archive) -> Result<Arc<Live>, crate::Error> {
        let rows = archive.peers().list().await?;
        let (current, _) = watch::channel(Arc::new(Snapshot::new(&file, rows)));
        Ok(Arc::new(Live {
            file,
            archive,
            current,
            reloading: tokio::sync::Mutex::new(()),
        }))
    }

    /// A reader of what is in force, now and after every change.
    pub fn snapshots(&self) -> Snapshots {
        Snapshots(self.current.subscribe())
    }

    pub fn config(&self) -> Arc<Config> {
        self.current.borrow().config.clone()
    }

    fn origin(&self, kind: &str, name: &str) -> Origin {
        if self
            .current
            .borrow()
            .overrides
            .iter()
            .any(|r| r.kind == kind && r.name == name && !r.removed)
        {
            Origin::Console
        } else {
            Origin::File
        }
    }

    /// Follow changes other nodes make (on one database, a console
    /// change on any node is a row in `peers`): every `every`, compare the
    /// rows' stamp with the one in force and reload when it moved. Until
    /// `stop`.
    pub async fn follow(self: Arc<Self>, every: Duration, mut stop: dimse::Shutdown) {
        let mut last = self.archive.peers().stamp().await.ok();
        loop {
            tokio::select! {
                _ = stop.wait() => return,
                _ = tokio::time::sleep(every) => {}
            }
            match self.archive.peers().stamp().await {
                Ok(stamp) if Some(&stamp) != last.as_ref() => match self.reload().await {
                    Ok(()) => {
                        tracing::info!("sources and destinations changed on another node: applied");
                        last = Some(stamp);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot apply another node's console change")
                    }
                },
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read console changes"),
            }
        }
    }

    /// Re-read the overrides and put the result in force, in one swap.
    async fn reload(&self) -> Result<(), ControlError> {
        let _one = self.reloading.lock().await;
        let rows = self
            .archive
            .peers()
            .list()
            .await
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        self.current
            .send_replace(Arc::new(Snapshot::new(&self.file, rows)));
        Ok(())
    }

    fn exists(&self, kind: PeerKind, name: &str) -> bool {
        let c = self.config();
        match kind {
            PeerKind::Source => c.sources.iter().any(|s| s.name == name),
            PeerKind::Destination => c.destination(name).is_some(),
        }
    }

    async fn remove(&self, kind: PeerKind, name: &str, user: &str) -> Result<(), ControlError> {
        if !self.exists(kind, name) {
            return Err(ControlError::NotFound(format!(
                "no {} named '{name}'",
                kind.as_str()
            )));
        }
        self.archive
            .peers()
            .remove(kind, name, user)
            .await
            .map_err(|e| ControlError::Failed(e.to_string()))?;
        self.reload().await
    }
}

/// What the HTTP layer asks of this daemon.
pub struct Console {
    pub live: Arc<Live>,
    pub models: Arc<pipeline::lifecycle::Registry>,
    pub stats: crate::stats::Stats,
}

impl Control for Console {
    fn sources(&self) -> Vec<SourceView> {
        self.live
            .config()
            .sources
            .iter()
            .map(|s| SourceView {
                name: s.name.clone(),
                ae_title: s.ae_title.clone(),
                hosts: s.hosts.iter().map(|h| h.to_string()).collect(),
                quiet_secs: s.quiet_secs,
                origin: self.live.origin("source", &s.name),
            })
            .collect()
    }

    fn destinations(&self) -> Vec<DestinationView> {
        self.live
            .config()
            .destinations
            .iter()
            .map(|d| DestinationView {
                name: d.name.clone(),
                kind: d.kind.as_str().into(),
                address: d.address(),
                ae_title: d.ae_title.clone(),
                host: d.host.clone(),
                port: d.port,
                tls: d.tls,
                deidentify: d.deidentify,
                origin: self.live.origin("destination", &d.name),
            })
            .collect()
    }

    fn put_source<'a>(
        &'a self,
        name: &'a str,
        input: SourceInput,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            check_name(name)?;
            let s = SourceConfig {
                name: name.to_string(),
                ae_title: input.ae_title.trim().to_string(),
                hosts: host_patterns(&input.hosts)?,
                quiet_secs: input.quiet_secs,
            };
            problems(
                Config {
                    sources: vec![s.clone()],
                    ..Config::default()
                },
                "sources[0].",
            )?;
            let hosts: Vec<String> = s.hosts.iter().map(|h| h.to_string()).collect();
            self.live
                .archive
                .peers()
                .put_source(name, &s.ae_title, &hosts, s.quiet_secs, user)
                .await
                .map_err(|e| ControlError::Failed(e.to_string()))?;
            self.live.reload().await
        })
    }

    fn put_destination<'a>(
        &'a self,
        name: &'a str,
        input: DestinationInput,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            check_name(name)?;
            if let Some(f) = self.live.file.destination(name) {
                if !f.kind.is_address_only() {
                    return Err(ControlError::Invalid(format!(
                        "destination '{name}' is of kind {}: change it in the configuration file",
                        f.kind.as_str()
                    )));
                }
            }
            let settings = ConsoleSettings::of(&input);
            let stored = match settings == ConsoleSettings::default() {
                true => None,
                false => Some(
                    serde_json::to_string(&settings)
                        .map_err(|e| ControlError::Failed(e.to_string()))?,
                ),
            };
            let d = console_destination(
                &self.live.file,
                name,
                input.ae_title.trim().to_string(),
                input.host.trim().to_string(),
                input.port,
                settings,
            );
            problems(
                Config {
                    destinations: vec![d.clone()],
                    ..Config::default()
                },
                "destinations[0].",
            )?;
            self.live
                .archive
                .peers()
                .put_destination(name, &d.ae_title, &d.host, d.port, stored.as_deref(), user)
                .await
                .map_err(|e| ControlError::Failed(e.to_string()))?;
            self.live.reload().await
        })
    }

    fn remove_source<'a>(
        &'a self,
        name: &'a str,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(self.live.remove(PeerKind::Source, name, user))
    }

    fn remove_destination<'a>(
        &'a self,
        name: &'a str,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(self.live.remove(PeerKind::Destination, name, user))
    }

    fn echo<'a>(&'a self, destination: &'a str) -> BoxFuture<'a, Result<String, ControlError>> {
        Box::pin(async move {
            let c = self.live.config();
            let d = c.destination(destination).ok_or_else(|| {
                ControlError::NotFound(format!("no destination named '{destination}'"))
            })?;
            crate::deliver::probe(&c, d)
                .await
                .map_err(ControlError::Failed)
        })
    }

    fn models(&self) -> BoxFuture<'_, Result<Vec<ModelView>, ControlError>> {
        Box::pin(async move {
            let failed = |e: archive::ArchiveError| ControlError::Failed(e.to_string());
            let now = self
                .models
                .current(&self.live.archive)
                .await
                .map_err(failed)?;
            Ok(now
                .models
                .iter()
                .map(|(c, state)| {
                    let row = now
                        .rows
                        .iter()
                        .find(|r| r.model == c.manifest.name && r.version == c.manifest.version);
                    ModelView {
                        state: state.to_string(),
                        state_changed_by: row.map(|r| r.changed_by.clone()),
                        state_changed_at: row.map(|r| r.changed_at.clone()),
                        ..model_view(c)
                    }
                })
                .collect())
        })
    }

    fn set_model_state<'a>(
        &'a self,
        name: &'a str,
        version: &'a str,
        input: ModelStateInput,
        user: &'a str,
    ) -> BoxFuture<'a, Result<(), ControlError>> {
        Box::pin(async move {
            let state: archive::ModelState = input
                .state
                .parse()
                .map_err(|e: archive::UnknownState| ControlError::Invalid(format!("state: {e}")))?;
            let manifests = crate::models::valid_manifests(&self.live.file)
                .map_err(|e| ControlError::Failed(e.to_string()))?;
            let refs: Vec<&infer::Manifest> = manifests.iter().collect();
            pipeline::lifecycle::find(&refs, name, version)
                .map_err(|e| ControlError::NotFound(e.to_string()))?;
            if state != archive::ModelState::Disabled {
                self.models.ensure(name, version).await.map_err(|e| {
                    ControlError::Invalid(format!("{name} {version} cannot run: {e}"))
                })?;
            }
            pipeline::lifecycle::set(
                &self.live.archive.models(),
                &refs,
                name,
                version,
                state,
                user,
            )
            .await
            .map_err(|e| ControlError::Failed(e.to_string()))?;
            Ok(())
        })
    }

    fn monitoring(&self) -> BoxFuture<'_, Result<Vec<archive::LabelMonitor>, ControlError>> {
        Box::pin(async move {
            crate::monitoring::report(&self.live.archive, &self.models, &self.live.file.monitoring)
                .await
                .map_err(|e| ControlError::Failed(e.to_string()))
        })
    }

    fn metrics(&self) -> String {
        self.stats.prometheus()
    }

    fn ready(&self) -> Result<(), String> {
        self.live
            .archive
            .probe_storage()
            .map_err(|e| format!("storage: {e}"))?;
        if self.models.loaded().is_empty() {
            return Err("no model is loaded: studies are stored but not analysed".into());
        }
        Ok(())
    }

    fn node(&self) -> String {
        self.live.archive.node().to_string()
    }
}

/// What the console shows of a loaded model.
pub fn model_view(c: &infer::Classifier) -> ModelView {
    let m = &c.manifest;
    ModelView {
        name: m.name.clone(),
        version: m.version.clone(),
        architecture: m.architecture.clone(),
        labels: m
            .reported()
            .into_iter()
            .map(|i| m.labels[i].clone())
            .collect(),
        validated: m.validated,
        intended_use: m.intended_use.clone(),
        input: format!("{} {}x{}", m.input.spec, m.input.size, m.input.size),
        modalities: m.applicability.modalities.clone(),
        state: pipeline::lifecycle::initial(m).to_string(),
        state_changed_by: None,
        state_changed_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn console(dir: &std::path::Path) -> Console {
        let config = Config::parse(&format!(
            "[storage]\ndir = \"{}\"\n[pipeline]\nquiet_secs = 7\n",
            dir.display()
        ))
        .unwrap();
        let archive = Archive::open(archive::ArchiveOptions::new(dir))
            .await
            .unwrap();
        Console {
            live: Live::open(config.clone(), archive).await.unwrap(),
            models: Arc::new(pipeline::lifecycle::Registry::new(
                Vec::new(),
                None,
                config.models.load_options(),
            )),
            stats: crate::stats::Stats::default(),
        }
    }

    #[tokio::test]
    async fn a_console_change_reaches_every_reader_in_one_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let c = console(dir.path()).await;
        let readers = c.live.snapshots();
        assert!(readers.current().sources.is_empty());
        assert!(LiveRouting::destinations(&readers).is_empty());
        let input = SourceInput {
            ae_title: "ROUTER".into(),
            hosts: vec!["10.0.0.0/8".into()],
            quiet_secs: Some(2.5),
        };
        c.put_source("router", input, "test").await.unwrap();
        let destination = DestinationInput {
            ae_title: "PACS".into(),
            host: "127.0.0.1".into(),
            port: 104,
            ..DestinationInput::default()
        };
        c.put_destination("pacs", destination, "test")
            .await
            .unwrap();
        // The reader made before the change sees it: policy, quiet periods
        // and default destinations from the same configuration.
        let now = readers.now();
        assert_eq!(now.policy.sources[0].ae_title, "ROUTER");
        assert_eq!(
            now.quiet.by_calling_ae.get("ROUTER"),
            Some(&Duration::from_secs_f64(2.5))
        );
        assert_eq!(now.quiet.default, Duration::from_secs(7));
        assert_eq!(now.destinations, ["pacs"]);
        assert_eq!(now.config.sources[0].name, "router");
        assert_eq!(c.sources()[0].origin, Origin::Console);
        c.remove_source("router", "test").await.unwrap();
        assert!(readers.current().sources.is_empty());
        assert!(readers.quiet().by_calling_ae.is_empty());
    }

    #[test]
    fn a_console_address_change_keeps_the_files_tls_settings() {
        let file = Config::parse(
            "[[destinations]]\nname = \"pacs\"\nae_title = \"PACS\"\nhost = \"a\"\nport = 2762\ntls = true\nca_file = \"/etc/pacs-ca.pem\"\ncertificate = \"/etc/me.pem\"\nprivate_key = \"/etc/me.key\"\n",
        )
        .unwrap();
        let d = console_destination(
            &file,
            "pacs",
            "NEWPACS".into(),
            "b".into(),
            2763,
            ConsoleSettings::default(),
        );
        assert_eq!(
            (d.ae_title.as_str(), d.host.as_str(), d.port),
            ("NEWPACS", "b", 2763)
        );
        assert!(d.tls);
        assert_eq!(d.ca_file, Some("/etc/pacs-ca.pem".into()));
        let id = d.peer().tls.unwrap().identity.unwrap();
        assert_eq!(id.private_key, std::path::PathBuf::from("/etc/me.key"));
        // A destination the file does not have is plain TCP.
        let new = console_destination(
            &file,
            "other",
            "OTHER".into(),
            "c".into(),
            104,
            ConsoleSettings::default(),
        );
        assert!(!new.tls && new.peer().tls.is_none());
    }
}
