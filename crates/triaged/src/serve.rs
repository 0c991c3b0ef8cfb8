//! `triaged serve`: open the archive, listen, and shut down cleanly.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use archive::{Archive, ArchiveOptions};
use dimse::{Listener, Shutdown};

use crate::config::Config;
use crate::live::{Console, Live};
use crate::sink::ArchiveSink;
use crate::stats::Stats;

pub async fn run(config: Config) -> anyhow::Result<ExitCode> {
    let mut options = ArchiveOptions::new(&config.storage.dir);
    options.spill_threshold = config.storage.spill_threshold_mb << 20;
    let archive = Archive::open(options).await.with_context(|| {
        format!(
            "cannot open the archive in {}",
            config.storage.dir.display()
        )
    })?;
    let instances = archive.instance_count().await.unwrap_or(-1);
    let live = Live::open(config.clone(), archive.clone()).await?;
    // Before the listener: a daemon that refuses its models never takes
    // an association.
    // Each pipeline worker decodes its own images: OpenJPEG gets a share
    // of the cores, not all of them per worker.
    imaging::set_jpeg2000_threads(jpeg2000_threads(
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        config.pipeline.workers,
    ));
    let models = load_models(&config);
    crate::models::check_lifecycle(&archive, &models).await?;
    let models = Arc::new(pipeline::lifecycle::Registry::new(
        models,
        Some(config.models.dir.clone()),
        config.models.load_options(),
    ));
    let stats = Stats::default();
    let shutdown = Shutdown::new();
    let mut listener_config = config.listener_config();
    listener_config.policy = live.policy.clone();
    listener_config.stats = stats.listener.clone();
    let listener = Listener::bind(
        config.listen_addr(),
        listener_config,
        Arc::new(ArchiveSink {
            archive: archive.clone(),
            stats: stats.ingest.clone(),
        }),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {} (dicom.listen)", config.dicom.listen))?;
    let listener = match &config.dicom.tls {
        None => listener,
        Some(tls) => {
            let acceptor = dimse::TlsAcceptor::new(&tls.settings())
                .with_context(|| "dicom.tls".to_string())?;
            let addr = tls.listen.parse().expect("validated at load");
            listener
                .with_tls(addr, acceptor)
                .await
                .with_context(|| format!("cannot listen on {} (dicom.tls.listen)", tls.listen))?
        }
    };
    let addr = listener.local_addr()?;
    if let Some(tls) = listener.tls_local_addr() {
        tracing::info!(
            listen = %tls?,
            client_certificates = config.dicom.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            "DICOM over TLS"
        );
    }
    if live.config().sources.is_empty() {
        tracing::warn!(
            "no [[sources]] configured: accepting any calling AE title from loopback only"
        );
    }
    let http = if config.http.enabled {
        let users = http_users(&config)?;
        let bound = tokio::net::TcpListener::bind(&config.http.listen)
            .await
            .with_context(|| format!("cannot listen on {} (http.listen)", config.http.listen))?;
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
        };
        tracing::info!(listen = %bound.local_addr()?, "worklist and admin console over HTTP");
        let mut stop = shutdown.clone();
        Some(tokio::spawn(async move {
            if let Err(e) = web::serve(bound, state, async move { stop.wait().await }).await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        }))
    } else {
        None
    };
    tracing::info!(
        ae_title = %config.dicom.ae_title,
        listen = %addr,
        storage = %config.storage.dir.display(),
        instances,
        version = env!("CARGO_PKG_VERSION"),
        "triaged ready"
    );
    let signals = tokio::spawn(wait_for_signal(shutdown.clone()));
    let queued = Arc::new(tokio::sync::Notify::new());
    let delivery = tokio::spawn(
        crate::deliver::Delivery {
            outbox: archive.outbox(),
            jobs: archive.jobs(),
            live: live.clone(),
            wake: queued.clone(),
            stats: stats.delivery.clone(),
        }
        .run(shutdown.clone()),
    );
    let pipeline = pipeline::Pipeline::new(
        archive.clone(),
        models,
        pipeline_settings(&config, &live, &stats, queued),
    );
    let mut stop = shutdown.clone();
    let analysis = tokio::spawn(pipeline.run(async move { stop.wait().await }));
    listener.run().await;
    signals.abort();
    let _ = delivery.await;
    let _ = analysis.await;
    if let Some(h) = http {
        let _ = h.await;
    }
    archive.close().await;
    tracing::info!("triaged stopped");
    Ok(ExitCode::SUCCESS)
}

/// The HTTP users: the configured ones, or else one admin whose token the
/// daemon makes at first start and keeps, readable by its user only, in
/// `<storage>/admin.token`.
fn http_users(config: &Config) -> anyhow::Result<Vec<web::User>> {
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
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let token = crate::token::new_token()?;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(f, "{token}")?;
            f.sync_all()?;
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

/// Where the first admin token is kept when no users are configured.
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

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

/// Every model in `[models] dir` that loads; a broken one is logged with
/// its reason and left out, so the listener still takes studies.
fn load_models(config: &Config) -> Vec<Arc<infer::Classifier>> {
    let models = load_manifests(config);
    for r in &config.rules {
        for name in &r.models {
            if !models.iter().any(|m| &m.manifest.name == name) {
                tracing::warn!(rule = %r.name, model = %name, "a rule names a model that is not loaded");
            }
        }
    }
    models
}

/// OpenJPEG threads per image when `workers` decode at once on `cores`.
fn jpeg2000_threads(cores: usize, workers: usize) -> usize {
    (cores / workers.max(1)).max(1)
}

fn load_manifests(config: &Config) -> Vec<Arc<infer::Classifier>> {
    let found = match crate::models::load_all(config) {
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
                model = %crate::models::described(&path),
                error = %e,
                "model not loaded; the others serve"
            ),
        }
    }
    models
}

fn pipeline_settings(
    config: &Config,
    live: &Live,
    stats: &Stats,
    queued: Arc<tokio::sync::Notify>,
) -> pipeline::Settings {
    pipeline::Settings {
        quiet: live.quiet.clone(),
        destinations: live.default_destinations.clone(),
        urgent_labels: config.pipeline.urgent_labels.clone(),
        max_images_per_series: config.pipeline.max_images_per_series,
        workers: config.pipeline.workers,
        rules: config.rules.iter().map(|r| r.rule()).collect(),
        device: crate::analyze::device(config),
        metrics: stats.pipeline.clone(),
        queued,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn workers_share_the_cores_for_jpeg2000() {
        assert_eq!(super::jpeg2000_threads(8, 2), 4);
        assert_eq!(super::jpeg2000_threads(2, 4), 1);
        assert_eq!(super::jpeg2000_threads(16, 0), 16);
    }
}
