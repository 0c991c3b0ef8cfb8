//! `triaged serve`: open the archive, listen, and shut down cleanly.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use archive::{Archive, ArchiveOptions};
use dimse::{Listener, Shutdown};

use crate::config::Config;
use crate::sink::ArchiveSink;

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
    let shutdown = Shutdown::new();
    let listener = Listener::bind(
        config.listen_addr(),
        config.listener_config(),
        Arc::new(ArchiveSink {
            archive: archive.clone(),
        }),
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {} (dicom.listen)", config.dicom.listen))?;
    let addr = listener.local_addr()?;
    if config.sources.is_empty() {
        tracing::warn!(
            "no [[sources]] configured: accepting any calling AE title from loopback only"
        );
    }
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
    let delivery = tokio::spawn(crate::deliver::run(
        archive.outbox(),
        archive.jobs(),
        config.clone(),
        queued.clone(),
        shutdown.clone(),
    ));
    let pipeline = pipeline::Pipeline::new(
        archive.clone(),
        load_models(&config),
        pipeline_settings(&config, queued),
    );
    let mut stop = shutdown.clone();
    let analysis = tokio::spawn(pipeline.run(async move { stop.wait().await }));
    listener.run().await;
    signals.abort();
    let _ = delivery.await;
    let _ = analysis.await;
    archive.close().await;
    tracing::info!("triaged stopped");
    Ok(ExitCode::SUCCESS)
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
                tracing::info!(model = %c.manifest.name, version = %c.manifest.version, validated = c.manifest.validated, "model loaded");
                models.push(Arc::new(c));
            }
            Err(e) => tracing::error!(manifest = %path.display(), error = %e, "model not loaded"),
        }
    }
    models
}

fn pipeline_settings(config: &Config, queued: Arc<tokio::sync::Notify>) -> pipeline::Settings {
    pipeline::Settings {
        quiet: archive::QuietPeriods {
            default: std::time::Duration::from_secs_f64(config.pipeline.quiet_secs),
            by_calling_ae: config
                .sources
                .iter()
                .filter_map(|s| {
                    s.quiet_secs
                        .map(|q| (s.ae_title.clone(), std::time::Duration::from_secs_f64(q)))
                })
                .collect(),
        },
        destinations: if config.pipeline.destinations.is_empty() {
            config.destinations.iter().map(|d| d.name.clone()).collect()
        } else {
            config.pipeline.destinations.clone()
        },
        urgent_labels: config.pipeline.urgent_labels.clone(),
        max_images_per_series: config.pipeline.max_images_per_series,
        workers: config.pipeline.workers,
        rules: config.rules.iter().map(|r| r.rule()).collect(),
        device: crate::analyze::device(config),
        metrics: Default::default(),
        queued,
    }
}
