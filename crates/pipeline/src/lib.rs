//! From stored instances to delivered reports.
//!
//! Study assembly is read from the archive's index: a study is ready when
//! no instance of it has arrived for the quiet period, counted across every
//! association and caller (a PACS router may use several). Each ready study
//! becomes a job row, a small state machine in SQLite:
//!
//! ```text
//! ready -> analysing -> reporting -> sending -> done
//!            |             |            `-> failed (a destination gave up)
//!            `-------------+-> failed (reason) | not_applicable
//! ```
//!
//! A bounded pool of workers claims ready jobs. A worker reads each
//! model version's state ([`lifecycle`]: active, shadow or disabled),
//! picks the images each active or shadow model applies to ([`selection`],
//! [`rules`]), runs the model
//! ([`aggregate`]: every radiograph, or per CT series the slice where each
//! label scores highest), and records the findings, the study's priority
//! and its report objects queued for every destination in one transaction
//! ([`job`]): the SR and heatmap captures for DICOM destinations, the
//! report's result document for those that take messages ([`Form`]). A model in shadow runs the same way, but only its findings
//! are recorded (marked shadow): it never sets the priority, reports or
//! fails a job. The delivery loop settles the job once the outbox has sent
//! them. An instance arriving after a job makes a new job whose report
//! names the previous one as its predecessor. Report UIDs are functions of
//! their content, so a job re-run after a crash queues the same objects,
//! which the outbox does not send twice.

#![forbid(unsafe_code)]

pub mod aggregate;
pub mod analysis;
mod guard;
mod job;
pub mod lifecycle;
pub mod metrics;
pub mod rules;
pub mod selection;

use std::sync::Arc;
use std::time::Duration;

use archive::Archive;
use report::Device;
use tokio::sync::{watch, Notify};

pub use selection::{applies, select_series, subsample};

/// At most this many images of a series are analysed by default, evenly
/// spaced (`[pipeline] max_images_per_series`; training and evaluation
/// read studies the same way).
pub const DEFAULT_MAX_IMAGES_PER_SERIES: usize = 64;

/// How often study assembly looks for studies at the latest: instances
/// that other associations (or, in a cluster, other nodes) store start
/// new waits it learns of this way.
const ASSEMBLY_POLL: Duration = Duration::from_millis(250);

/// How long study assembly sleeps: until the next waiting study is quiet
/// (so its job is made on time, not at the next poll), at most
/// [`ASSEMBLY_POLL`], at least a few milliseconds (the database's clock
/// and ours round differently).
fn next_assembly(next_quiet: Option<Duration>) -> Duration {
    next_quiet
        .map_or(ASSEMBLY_POLL, |d| d.min(ASSEMBLY_POLL))
        .max(Duration::from_millis(5))
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{0}")]
    Read(String),
    #[error(transparent)]
    Imaging(#[from] imaging::ImagingError),
    #[error(transparent)]
    Infer(#[from] infer::InferError),
    #[error("model: {0}")]
    Model(String),
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
}

/// What the pipeline reads afresh for each assembly round and each job,
/// because an admin may change it while the daemon runs.
pub trait LiveRouting: std::fmt::Debug + Send + Sync + 'static {
    /// A study is ready after this long without a new instance (per
    /// calling AE of its latest instance).
    fn quiet(&self) -> archive::QuietPeriods;
    /// Destinations reports go to unless a rule names others.
    fn destinations(&self) -> Vec<String>;
    /// What `destination` receives of a report of this priority; `None`:
    /// nothing (e.g. an alert webhook for routine results). A destination
    /// that is not configured takes objects (and its rows fail, saying so).
    fn wants(&self, destination: &str, priority: report::Priority) -> Option<Form>;
}

/// What a destination receives of a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The DICOM objects: the SR and the heatmap captures.
    Objects,
    /// The SR alone (a destination that de-identifies: the captures'
    /// pixels carry burned-in text, which de-identification refuses).
    Report,
    /// The result document, from which a message is built at delivery.
    Result,
}

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The quiet periods and default destinations in force (the admin
    /// console may change them while the daemon runs).
    pub live: Arc<dyn LiveRouting>,
    /// Routing rules (none: every model by its manifest, to the defaults).
    pub rules: Vec<rules::Rule>,
    /// The rules and models of each further AE title (instances sent to
    /// the main one, or to one without a scope, use all of them).
    pub scopes: Vec<rules::AeScope>,
    /// Labels whose presence makes a study urgent.
    pub urgent_labels: Vec<String>,
    /// At most this many images per series go through a model (evenly
    /// spaced in instance order; 0: all), so a 500-slice series costs a
    /// bounded time and memory.
    pub max_images_per_series: usize,
    /// Jobs analysed at once (each worker runs one model at a time).
    pub workers: usize,
    /// The observer of the reports.
    pub device: Device,
    /// Counters and latency, shared with whoever exposes them.
    pub metrics: Arc<metrics::Metrics>,
    /// Woken whenever results are queued (the delivery task waits on it
    /// instead of polling).
    pub queued: Arc<tokio::sync::Notify>,
}

/// The pipeline of one daemon.
pub struct Pipeline {
    archive: Archive,
    models: Arc<lifecycle::Registry>,
    settings: Settings,
}

impl Pipeline {
    pub fn new(archive: Archive, models: Arc<lifecycle::Registry>, settings: Settings) -> Pipeline {
        Pipeline {
            archive,
            models,
            settings,
        }
    }

    /// Assemble studies and work jobs with the worker pool until `stop`
    /// resolves; jobs in progress then finish. Jobs a crash left analysing
    /// or reporting are made ready first.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let jobs = self.archive.jobs();
        match jobs.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "resuming jobs interrupted by a stop"),
            Err(e) => tracing::error!(error = %e, "cannot resume interrupted jobs"),
        }
        // Studies that were waiting when the daemon stopped wait a whole
        // quiet period again: their senders may resend what the stop cut.
        let watching_since = match jobs.now().await {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "cannot read the clock; quiet periods count from each study's last instance");
                None
            }
        };
        let me = Arc::new(self);
        let ready = Arc::new(Notify::new());
        let (stopping, stopped) = watch::channel(false);
        let mut workers = tokio::task::JoinSet::new();
        for n in 0..me.settings.workers.max(1) {
            workers.spawn(me.clone().work(n, ready.clone(), stopped.clone()));
        }
        tokio::pin!(stop);
        loop {
            let quiet = me.settings.live.quiet();
            let mut pause = ASSEMBLY_POLL;
            match jobs.assemble(&quiet, watching_since.as_deref()).await {
                Ok(assembly) => {
                    if !assembly.made.is_empty() {
                        let made = assembly.made.len() as u64;
                        me.settings.metrics.jobs_created.inc_by(made);
                        ready.notify_waiters();
                    }
                    pause = next_assembly(assembly.next_quiet);
                }
                Err(e) => tracing::error!(error = %e, "study assembly failed"),
            }
            tokio::select! {
                _ = &mut stop => break,
                _ = tokio::time::sleep(pause) => {}
            }
        }
        let _ = stopping.send(true);
        while workers.join_next().await.is_some() {}
    }

    /// One worker: claim the oldest ready job, work it, repeat; wait for
    /// assembly (or a poll) when there is none.
    async fn work(self: Arc<Self>, n: usize, ready: Arc<Notify>, mut stop: watch::Receiver<bool>) {
        let jobs = self.archive.jobs();
        loop {
            if *stop.borrow() {
                return;
            }
            // Listening before the claim: a job made while the claim runs
            // wakes this worker at once, not at the next poll.
            let notified = ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match jobs.claim().await {
                Ok(Some(job)) => {
                    tracing::debug!(worker = n, job = job.id, "job claimed");
                    let (me, claimed) = (self.clone(), job.clone());
                    if let Err(why) = guard::guarded(async move { me.process(claimed).await }).await
                    {
                        self.settings.metrics.jobs_failed.inc();
                        tracing::error!(
                            worker = n, job = job.id, study_instance_uid = %job.study_instance_uid,
                            error = %why, "analysis panicked: the job fails, the worker goes on"
                        );
                        let reason = format!("analysis {why}");
                        if let Err(e) = jobs.fail(&job, &reason, &[]).await {
                            tracing::error!(job = job.id, error = %e, "cannot record the failure");
                        }
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "cannot claim a job"),
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.changed() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assembly_sleeps_until_the_next_quiet_study_within_the_poll() {
        let ms = Duration::from_millis;
        assert_eq!(next_assembly(None), ASSEMBLY_POLL);
        assert_eq!(next_assembly(Some(ms(40))), ms(40));
        assert_eq!(
            next_assembly(Some(Duration::from_secs(3600))),
            ASSEMBLY_POLL
        );
        assert_eq!(next_assembly(Some(Duration::ZERO)), ms(5));
    }
}
