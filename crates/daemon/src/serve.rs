//! The daemon's life: [`Daemon::start`] opens the archive, loads the
//! models, binds every socket and starts the tasks; [`Daemon::wait`] returns
//! when a [`Shutdown`] was triggered and every task has finished its work
//! in flight. [`run`] is `triaged serve`: start, stop on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::sync::Arc;

use archive::Archive;
use dimse::{Listener, Shutdown};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::deliver::Delivery;
use crate::live::{Console, Live};
use crate::sink::ArchiveSink;
use crate::stats::Stats;
use crate::Error;

/// Where the first admin token is kept when no users are configured.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

/// A started daemon: its sockets are bound and its tasks run.
pub struct Daemon {
    archive: Archive,
    shutdown: Shutdown,
    dicom: SocketAddr,
    dicom_tls: Option<SocketAddr>,
    http: Option<SocketAddr>,
    /// The listener, the HTTP server, delivery and the pipeline.
    tasks: Vec<(&'static str, JoinHandle<()>)>,
}

/// `triaged serve`: run until SIGTERM or SIGINT, then finish the work in
/// flight and stop.
pub async fn run(config: Config) -> Result<(), Error> {
    until_signal(Daemon::start(config).await?).await
}

/// Run a started daemon until SIGTERM or SIGINT, then stop it cleanly.
pub async fn until_signal(daemon: Daemon) -> Result<(), Error> {
    let signals = tokio::spawn(wait_for_signal(daemon.shutdown()));
    let stopped = daemon.wait().await;
    signals.abort();
    stopped
}

impl Daemon {
    /// Open, load, bind and start. A daemon that cannot serve as
    /// configured (archive, sockets, TLS, two active versions of a model)
    /// fails here, before it takes any association.
    pub async fn start(config: Config) -> Result<Daemon, Error> {
        let mut options = config.archive_options().map_err(Error::DatabaseConfig)?;
        let retention = config.retention.policy();
        options.make_room_to = retention.as_ref().map(|p| p.low_watermark);
        let archive = Archive::open(options)
            .await
            .map_err(|source| Error::Archive {
                dir: config.storage.dir.clone(),
                source,
            })?;
        let instances = archive.instance_count().await.unwrap_or(-1);
        let live = Live::open(config.clone(), archive.clone()).await?;
        // Each pipeline worker decodes its own images: OpenJPEG gets a
        // share of the cores, not all of them per worker.
        imaging::set_jpeg2000_threads(jpeg2000_threads(
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            config.pipeline.workers,
        ));
        // Before the listener: a daemon that refuses its models never
        // takes an association.
        let models = crate::models::load_serving(&config);
        for (i, a) in config.dicom.ae_titles.iter().enumerate() {
            for (k, name) in a.models.iter().enumerate() {
                if !models.iter().any(|m| &m.manifest.name == name) {
                    tracing::warn!(
                        key = format!("dicom.ae_titles[{i}].models[{k}]"),
                        model = %name,
                        ae_title = %a.ae_title,
                        "not a loaded model: nothing sent to this AE title is read by it"
                    );
                }
            }
        }
        crate::models::check_lifecycle(&archive, &models).await?;
        let models = Arc::new(pipeline::lifecycle::Registry::new(
            models,
            Some(config.models.dir.clone()),
            config.models.load_options(),
        ));
        let stats = Stats::default();
        stats.retention.watch(archive.retention());
        let shutdown = Shutdown::new();
        let stored = Arc::new(tokio::sync::Notify::new());
        let mut listener_config = config.listener_config();
        listener_config.policy = dimse::LivePolicy::from_source(live.snapshots());
        listener_config.stats = stats.listener.clone();
        let listener = Listener::bind(
            config.dicom.listen,
            listener_config,
            Arc::new(ArchiveSink {
                archive: archive.clone(),
                stats: stats.ingest.clone(),
                stored: stored.clone(),
            }),
            shutdown.clone(),
        )
        .await
        .map_err(|source| Error::Listen {
            key: "dicom.listen",
            addr: config.dicom.listen,
            source,
        })?;
        let listener = match &config.dicom.tls {
            None => listener,
            Some(tls) => {
                let acceptor = dimse::TlsAcceptor::new(&tls.settings()).map_err(Error::Tls)?;
                listener
                    .with_tls(tls.listen, acceptor)
                    .await
                    .map_err(|source| Error::Listen {
                        key: "dicom.tls.listen",
                        addr: tls.listen,
                        source,
                    })?
            }
        };
        let dicom = listener.local_addr()?;
        let dicom_tls = listener.tls_local_addr().transpose()?;
        if let Some(addr) = dicom_tls {
            tracing::info!(
                listen = %addr,
                client_certificates = config.dicom.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
                "DICOM over TLS"
            );
        }
        if live.config().sources.is_empty() {
            tracing::warn!(
                "no [[sources]] configured: accepting any calling AE title from loopback only"
            );
        }
        let mut tasks = Vec::new();
        let mut http = None;
        if config.http.enabled {
            let users = http_users(&config)?;
            let bound = tokio::net::TcpListener::bind(config.http.listen)
                .await
                .map_err(|source| Error::Listen {
                    key: "http.listen",
                    addr: config.http.listen,
                    source,
                })?;
            let state = web::AppState {
                worklist: archive.worklist(),
                outbox: archive.outbox(),
                control: Arc::new(Console {
                    live: live.clone(),
                    models: models.clone(),
                    stats: stats.clone(),
                }),
                users: Arc::new(users),
                cache_dir: config.storage.dir.join("cache"),
                audit: Arc::new(web::AuditTrail::new(archive.audit())),
                catalog: archive.catalog(),
                store: Arc::new(crate::sink::StowStore {
                    archive: archive.clone(),
                    stats: stats.ingest.clone(),
                    stored: stored.clone(),
                    ae_title: config.dicom.ae_title.clone(),
                }),
                base_url: config.http.public_url(),
                max_stow_bytes: (config.http.max_stow_mb as usize).saturating_mul(1 << 20),
            };
            let addr = bound.local_addr()?;
            tracing::info!(listen = %addr, "worklist and admin console over HTTP");
            http = Some(addr);
            let mut stop = shutdown.clone();
            tasks.push((
                "http",
                tokio::spawn(async move {
                    if let Err(e) = web::serve(bound, state, async move { stop.wait().await }).await
                    {
                        tracing::error!(error = %e, "HTTP server failed");
                    }
                }),
            ));
        }
        tracing::info!(
            ae_title = %config.dicom.ae_title,
            other_ae_titles = %config
                .dicom
                .ae_titles
                .iter()
                .map(|a| a.ae_title.trim())
                .collect::<Vec<_>>()
                .join(","),
            listen = %dicom,
            storage = %config.storage.dir.display(),
            instances,
            version = env!("CARGO_PKG_VERSION"),
            "triaged ready"
        );
        let queued = Arc::new(tokio::sync::Notify::new());
        tasks.push((
            "delivery",
            tokio::spawn(
                Delivery {
                    outbox: archive.outbox(),
                    jobs: archive.jobs(),
                    live: live.clone(),
                    wake: queued.clone(),
                    stats: stats.delivery.clone(),
                }
                .run(shutdown.clone()),
            ),
        ));
        let models_for_monitoring = models.clone();
        let pipeline = pipeline::Pipeline::new(
            archive.clone(),
            models,
            pipeline_settings(&config, &live, &stats, queued),
        );
        let mut stop = shutdown.clone();
        tasks.push((
            "pipeline",
            tokio::spawn(pipeline.run(async move { stop.wait().await })),
        ));
        tasks.extend(housekeeping(
            &config,
            &archive,
            retention,
            models_for_monitoring,
            stored,
            &stats,
            &shutdown,
        ));
        tasks.push((
            "console changes",
            tokio::spawn(live.clone().follow(
                std::time::Duration::from_secs(config.node.lease_secs.div_ceil(3).max(1)),
                shutdown.clone(),
            )),
        ));
        tasks.push(("listener", tokio::spawn(listener.run())));
        Ok(Daemon {
            archive,
            shutdown,
            dicom,
            dicom_tls,
            http,
            tasks,
        })
    }

    /// The DICOM listener's address (the configured port, or the one the
    /// system chose for port 0).
    pub fn dicom_addr(&self) -> SocketAddr {
        self.dicom
    }

    /// The DICOM TLS listener's address, when `[dicom.tls]` is configured.
    pub fn dicom_tls_addr(&self) -> Option<SocketAddr> {
        self.dicom_tls
    }

    /// The worklist and console's address, when `[http] enabled`.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http
    }

    /// What stops this daemon: trigger it, then [`Daemon::wait`].
    pub fn shutdown(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Wait for the shutdown and for every task to finish its work in
    /// flight; then close the archive. A task that panics or ends before
    /// the shutdown stops the daemon (the others finish their work in
    /// flight) and is named in the error, so that the service manager
    /// restarts the whole process (`Restart=on-failure` in the systemd
    /// unit): restarting one task in place could leave it out of step with
    /// the others.
    pub async fn wait(self) -> Result<(), Error> {
        let failed = supervise(self.tasks, &self.shutdown).await;
        self.archive.close().await;
        match failed {
            None => {
                tracing::info!("triaged stopped");
                Ok(())
            }
            Some(task) => Err(Error::TaskFailed(task)),
        }
    }
}

/// Await every task; the first to panic or end before `shutdown` was
/// triggered triggers it and is returned.
async fn supervise(
    tasks: Vec<(&'static str, JoinHandle<()>)>,
    shutdown: &Shutdown,
) -> Option<&'static str> {
    let mut running = tokio::task::JoinSet::new();
    for (name, task) in tasks {
        running.spawn(async move { (name, task.await) });
    }
    let mut failed = None;
    while let Some(Ok((name, ended))) = running.join_next().await {
        let stopping = shutdown.is_triggered();
        match ended {
            Ok(()) if stopping => continue,
            Ok(()) => tracing::error!(task = name, "a daemon task ended on its own; stopping"),
            Err(e) => {
                tracing::error!(task = name, error = %e, "a daemon task panicked; stopping")
            }
        }
        if failed.is_none() && !stopping {
            failed = Some(name);
        }
        shutdown.trigger();
    }
    failed
}

/// The HTTP users: the configured ones, or else one admin whose token the
/// daemon makes at first start and keeps, readable by its user only, in
/// `<storage>/admin.token`.
fn http_users(config: &Config) -> Result<Vec<web::User>, Error> {
    if !config.http.users.is_empty() {
        return Ok(config
            .http
            .users
            .iter()
            .map(|u| web::User {
                name: u.name.clone(),
                role: u.role,
                token_sha256: u.token_sha256.to_ascii_lowercase(),
            })
            .collect());
    }
    let path = config.storage.dir.join(ADMIN_TOKEN_FILE);
    let token = match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => t.trim().to_string(),
        _ => {
            let token = web::auth::new_token()?;
            write_private(&path, &token).map_err(|source| Error::File {
                path: path.clone(),
                source,
            })?;
            token
        }
    };
    tracing::info!(
        file = %path.display(),
        "no [[http.users]] configured: sign in to the console as admin with the token in this file"
    );
    Ok(vec![web::User {
        name: "admin".into(),
        role: web::Role::Admin,
        token_sha256: web::auth::token_hash(&token),
    }])
}

/// Write a line readable by this user only, flushed to disk.
fn write_private(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    writeln!(f, "{line}")?;
    f.sync_all()
}

async fn wait_for_signal(shutdown: Shutdown) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers");
        return;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        signal = name,
        "shutting down: no new associations; finishing instances in flight"
    );
    shutdown.trigger();
}

/// OpenJPEG threads per image when `workers` decode at once on `cores`.
fn jpeg2000_threads(cores: usize, workers: usize) -> usize {
    (cores / workers.max(1)).max(1)
}

/// This daemon as the observer of its reports: the device UID is derived
/// from the AE title, so it is stable across restarts and upgrades.
pub fn device(config: &Config) -> report::Device {
    report::Device {
        manufacturer: "triaged project".into(),
        name: "triaged".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        uid: report::uid_from(&["device", &config.dicom.ae_title]),
    }
}

/// The tasks that keep a daemon healthy for months: retention (with a
/// warning when the storage is already past its high watermark), model
/// monitoring, and forwarding the audit trail to syslog.
fn housekeeping(
    config: &Config,
    archive: &Archive,
    retention: Option<archive::RetentionPolicy>,
    models: Arc<pipeline::lifecycle::Registry>,
    stored: Arc<tokio::sync::Notify>,
    stats: &Stats,
    shutdown: &Shutdown,
) -> Vec<(&'static str, JoinHandle<()>)> {
    let mut tasks = Vec::new();
    if let (Some(policy), Ok(used)) = (&retention, archive.retention().usage()) {
        if used.fraction() > policy.high_watermark {
            tracing::warn!(
                used_percent = format!("{:.1}", used.fraction() * 100.0),
                high_watermark_percent = format!("{:.1}", policy.high_watermark * 100.0),
                "the storage filesystem is above retention's high watermark: settled studies \
                 are purged as soon as their reports are delivered (give the storage its own \
                 volume, or raise [retention] high_watermark_percent)"
            );
        }
    }
    if let Ok(Some(target)) = config.audit.target() {
        tracing::info!(target = ?target, "audit trail forwarded to syslog");
        tasks.push((
            "syslog",
            tokio::spawn(
                crate::syslog::Forwarder {
                    audit: archive.audit(),
                    target,
                    hostname: config
                        .audit
                        .syslog_hostname
                        .clone()
                        .unwrap_or_else(crate::syslog::host_name),
                }
                .run(shutdown.clone()),
            ),
        ));
    }
    tasks.push((
        "monitoring",
        tokio::spawn(
            crate::monitoring::MonitoringTask {
                archive: archive.clone(),
                models,
                config: config.monitoring.clone(),
                stats: stats.models.clone(),
            }
            .run(shutdown.clone()),
        ),
    ));
    match retention {
        Some(policy) => tasks.push((
            "retention",
            tokio::spawn(
                crate::retention::RetentionTask {
                    retention: archive.retention(),
                    policy,
                    interval: config.retention.interval(),
                    stored,
                    stats: stats.retention.clone(),
                }
                .run(shutdown.clone()),
            ),
        )),
        None => tracing::warn!("[retention] enabled = false: nothing is ever deleted"),
    }
    tasks
}

fn pipeline_settings(
    config: &Config,
    live: &Live,
    stats: &Stats,
    queued: Arc<tokio::sync::Notify>,
) -> pipeline::Settings {
    pipeline::Settings {
        live: Arc::new(live.snapshots()),
        urgent_labels: config.pipeline.urgent_labels.clone(),
        max_images_per_series: config.pipeline.max_images_per_series,
        workers: config.pipeline.workers,
        rules: config.rules.clone(),
        scopes: config.dicom.ae_titles.iter().map(|a| a.scope()).collect(),
        device: device(config),
        metrics: stats.pipeline.clone(),
        queued,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_share_the_cores_for_jpeg2000() {
        assert_eq!(jpeg2000_threads(8, 2), 4);
        assert_eq!(jpeg2000_threads(2, 4), 1);
        assert_eq!(jpeg2000_threads(16, 0), 16);
    }

    fn config(dir: &std::path::Path, extra: &str) -> Config {
        Config::parse(&format!(
            "[dicom]\nlisten = \"127.0.0.1:0\"\n[storage]\ndir = \"{}\"\n[models]\ndir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n{extra}",
            dir.join("storage").display(),
            dir.join("no-models").display()
        ))
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_daemon_binds_makes_its_admin_token_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let daemon = Daemon::start(config(dir.path(), "")).await.unwrap();
        assert_ne!(daemon.dicom_addr().port(), 0);
        let http = daemon.http_addr().unwrap();
        assert_ne!(http.port(), 0);
        let token = dir.path().join("storage").join(ADMIN_TOKEN_FILE);
        let meta = std::fs::metadata(&token).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        // A second start on the same storage keeps the token.
        let first = std::fs::read_to_string(&token).unwrap();
        tokio::net::TcpStream::connect(daemon.dicom_addr())
            .await
            .unwrap();
        daemon.shutdown().trigger();
        daemon.wait().await.unwrap();
        let again = Daemon::start(config(dir.path(), "")).await.unwrap();
        assert_eq!(std::fs::read_to_string(&token).unwrap(), first);
        again.shutdown().trigger();
        again.wait().await.unwrap();
    }

    #[tokio::test]
    async fn a_task_that_panics_stops_the_others_and_is_named() {
        let shutdown = Shutdown::new();
        let mut stop = shutdown.clone();
        let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let done = finished.clone();
        let tasks = vec![
            (
                "steady",
                tokio::spawn(async move {
                    stop.wait().await;
                    done.store(true, std::sync::atomic::Ordering::SeqCst);
                }),
            ),
            ("broken", tokio::spawn(async { panic!("a bug") })),
        ];
        assert_eq!(supervise(tasks, &shutdown).await, Some("broken"));
        assert!(shutdown.is_triggered());
        assert!(finished.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn tasks_that_end_after_the_shutdown_are_no_failure() {
        let shutdown = Shutdown::new();
        let tasks = (0..3)
            .map(|_| {
                let mut stop = shutdown.clone();
                ("steady", tokio::spawn(async move { stop.wait().await }))
            })
            .collect();
        shutdown.trigger();
        assert_eq!(supervise(tasks, &shutdown).await, None);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_port_in_use_is_named_by_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let mut c = config(dir.path(), "");
        c.http.listen = addr;
        let e = Daemon::start(c).await.err().unwrap();
        assert!(
            matches!(
                e,
                Error::Listen {
                    key: "http.listen",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }
}
