//! From stored instances to delivered reports.
//!
//! Study assembly is read from the archive's index: a study is ready when
//! no instance of it has arrived for the quiet period, counted across every
//! association and caller (a PACS router may use several). Each ready study
//! becomes a job row; a worker claims it, picks the images each model
//! applies to (its manifest's modalities, body parts and view positions; an
//! image without the attribute is not excluded by it), runs the model,
//! records the findings and the study's priority, and puts the structured
//! report and heatmap captures in the outbox for every destination. An
//! instance arriving after a job makes a new job whose report names the
//! previous one as its predecessor. Report UIDs are functions of their
//! content, so a job re-run after a crash queues the same objects, which
//! the outbox does not send twice.

pub mod analysis;
pub mod metrics;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use archive::{Archive, FindingRow, Job, NewObject, StudyInstance};
use infer::{Classifier, Manifest};
use report::{Device, ImageRef, Priority, SrClass};

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

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct Settings {
    /// A study is ready after this long without a new instance.
    pub quiet: Duration,
    /// Destinations reports go to unless a rule names others.
    pub destinations: Vec<String>,
    /// Routing rules (none: every model by its manifest, to the defaults).
    pub rules: Vec<rules::Rule>,
    /// Labels whose presence makes a study urgent.
    pub urgent_labels: Vec<String>,
    /// At most this many images per series go through a model (evenly
    /// spaced in instance order; 0: all), so a 500-slice series costs a
    /// bounded time and memory.
    pub max_images_per_series: usize,
    /// The observer of the reports.
    pub device: Device,
    /// Counters and latency, shared with whoever exposes them.
    pub metrics: Arc<metrics::Metrics>,
    /// Woken whenever results are queued (the delivery task waits on it
    /// instead of polling).
    pub queued: Arc<tokio::sync::Notify>,
}

/// Does `manifest` apply to this instance?
pub fn applies(manifest: &Manifest, i: &StudyInstance) -> bool {
    let a = &manifest.applicability;
    let fits = |allowed: &[String], value: &Option<String>| {
        allowed.is_empty()
            || value
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .is_none_or(|v| allowed.iter().any(|x| x.eq_ignore_ascii_case(v)))
    };
    let modality_known = i.modality.as_deref().is_some_and(|m| !m.trim().is_empty());
    (a.modalities.is_empty() || (modality_known && fits(&a.modalities, &i.modality)))
        && fits(&a.body_parts, &i.body_part_examined)
        && fits(&a.view_positions, &i.view_position)
}

/// At most `max` images of each series (0: all), evenly spaced, keeping
/// the input's order (series, then instance number).
pub fn subsample(images: Vec<StudyInstance>, max: usize) -> Vec<StudyInstance> {
    if max == 0 {
        return images;
    }
    let mut out = Vec::new();
    let mut start = 0;
    while start < images.len() {
        let series = &images[start].series_instance_uid;
        let end = start
            + images[start..]
                .iter()
                .take_while(|i| &i.series_instance_uid == series)
                .count();
        let n = end - start;
        if n <= max {
            out.extend_from_slice(&images[start..end]);
        } else {
            // Centres of `max` equal parts of the series.
            out.extend((0..max).map(|k| images[start + (2 * k + 1) * n / (2 * max)].clone()));
        }
        start = end;
    }
    out
}

/// The pipeline of one daemon.
pub struct Pipeline {
    archive: Archive,
    models: Vec<Arc<Classifier>>,
    settings: Settings,
}

impl Pipeline {
    pub fn new(archive: Archive, models: Vec<Arc<Classifier>>, settings: Settings) -> Pipeline {
        Pipeline {
            archive,
            models,
            settings,
        }
    }

    /// Assemble and work jobs until `stop` resolves. Jobs a crash left
    /// analysing are resumed first.
    pub async fn run(self, stop: impl std::future::Future<Output = ()>) {
        let jobs = self.archive.jobs();
        match jobs.recover().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "resuming jobs interrupted by a stop"),
            Err(e) => tracing::error!(error = %e, "cannot resume interrupted jobs"),
        }
        tokio::pin!(stop);
        loop {
            match jobs.assemble(self.settings.quiet).await {
                Ok(made) => {
                    metrics::Metrics::add(&self.settings.metrics.jobs_created, made.len() as u64)
                }
                Err(e) => tracing::error!(error = %e, "study assembly failed"),
            }
            loop {
                match jobs.claim().await {
                    Ok(Some(job)) => self.process(job).await,
                    Ok(None) => break,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot claim a job");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
        }
    }

    async fn process(&self, job: Job) {
        let study = job.study_instance_uid.clone();
        let started = std::time::Instant::now();
        let m = &self.settings.metrics;
        let outcome = self.analyse(&job).await;
        match &outcome {
            Ok(Some((_, queued))) => {
                metrics::Metrics::add(&m.jobs_done, 1);
                metrics::Metrics::add(&m.objects_queued, *queued as u64);
                m.analysis.observe(started.elapsed());
            }
            Ok(None) => metrics::Metrics::add(&m.jobs_not_applicable, 1),
            Err(_) => metrics::Metrics::add(&m.jobs_failed, 1),
        }
        match outcome {
            Ok(Some((priority, reports))) => tracing::info!(
                job = job.id, study_instance_uid = %study, priority = ?priority, reports,
                ms = started.elapsed().as_millis() as u64, "study analysed"
            ),
            Ok(None) => {
                tracing::info!(job = job.id, study_instance_uid = %study, "no applicable model: recorded, no report")
            }
            Err(e) => {
                tracing::error!(job = job.id, study_instance_uid = %study, error = %e, "analysis failed");
                if let Err(e) = self.archive.jobs().fail(&job, &e.to_string()).await {
                    tracing::error!(job = job.id, error = %e, "cannot record the failure");
                }
            }
        }
    }

    /// Returns the priority and the number of objects queued, or `None`
    /// when no model applies.
    async fn analyse(&self, job: &Job) -> Result<Option<(Priority, usize)>, PipelineError> {
        let jobs = self.archive.jobs();
        let instances = jobs.instances(&job.study_instance_uid).await?;
        // Per model: the images it analyses and where its report goes.
        let mut work: Vec<(Arc<Classifier>, Vec<StudyInstance>, Vec<String>)> = Vec::new();
        for m in &self.models {
            let mut images = Vec::new();
            let mut to: Vec<String> = Vec::new();
            for i in &instances {
                if let Some(dests) = rules::route(
                    &self.settings.rules,
                    &self.settings.destinations,
                    &m.manifest,
                    i,
                ) {
                    images.push(i.clone());
                    for d in dests {
                        if !to.contains(&d) {
                            to.push(d);
                        }
                    }
                }
            }
            if !images.is_empty() {
                work.push((
                    m.clone(),
                    subsample(images, self.settings.max_images_per_series),
                    to,
                ));
            }
        }
        if work.is_empty() {
            jobs.finish(job, &[], &[], None).await?;
            return Ok(None);
        }
        let predecessors = jobs
            .previous_reports(&job.study_instance_uid, job.id)
            .await?;
        let mut findings = Vec::new();
        let mut report_uids = Vec::new();
        let mut queued = 0;
        let mut study_priority = Priority::Routine;
        for (model, images, destinations) in work {
            let m = model.clone();
            let count = images.len();
            let analysed = tokio::task::spawn_blocking(move || {
                images
                    .iter()
                    .filter_map(|i| match analysis::analyse_file(&m, &i.file) {
                        Ok(a) => Some(a),
                        Err(e) => {
                            tracing::warn!(sop_instance_uid = %i.sop_instance_uid, error = %e, "image skipped");
                            None
                        }
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| PipelineError::Model(e.to_string()))?;
            let m = &self.settings.metrics;
            metrics::Metrics::add(&m.images_analysed, analysed.len() as u64);
            metrics::Metrics::add(&m.images_skipped, (count - analysed.len()) as u64);
            if analysed.is_empty() {
                return Err(PipelineError::Model(format!(
                    "{}: no image of the study could be analysed",
                    model.manifest.name
                )));
            }
            let priority = analysis::priority(&analysed, &self.settings.urgent_labels);
            study_priority = study_priority.max(priority);
            let predecessor = predecessors.first().map(|uid| ImageRef {
                series_uid: report::sr::series_uid(&job.study_instance_uid, &self.settings.device),
                sop_class_uid: SrClass::Comprehensive3d.uid().into(),
                sop_instance_uid: uid.clone(),
            });
            let objects = analysis::objects(
                &job.study_instance_uid,
                &analysed,
                &model.manifest,
                &self.settings.device,
                priority,
                predecessor,
            )?;
            let outbox = self.archive.outbox();
            for (k, o) in objects.iter().enumerate() {
                let uid = o
                    .meta()
                    .media_storage_sop_instance_uid()
                    .trim_end_matches('\0')
                    .to_string();
                let class = o
                    .meta()
                    .media_storage_sop_class_uid()
                    .trim_end_matches('\0')
                    .to_string();
                let mut file = Vec::new();
                o.write_all(&mut file)
                    .map_err(|e| PipelineError::Model(format!("encoding {uid}: {e}")))?;
                outbox
                    .add(
                        &NewObject {
                            sop_instance_uid: uid.clone(),
                            sop_class_uid: class,
                            study_instance_uid: job.study_instance_uid.clone(),
                            file,
                        },
                        &destinations,
                    )
                    .await?;
                if k == 0 {
                    report_uids.push(uid);
                }
                queued += 1;
            }
            self.settings.queued.notify_one();
            // Heatmap captures follow the SR in the order of the images'
            // heatmaps: remember which finding each one shows.
            let mut captures = objects.iter().skip(1).map(|o| {
                o.meta()
                    .media_storage_sop_instance_uid()
                    .trim_end_matches('\0')
                    .to_string()
            });
            let mut heatmap_of = std::collections::HashMap::new();
            for a in &analysed {
                for (label, ..) in &a.heatmaps {
                    if let Some(uid) = captures.next() {
                        heatmap_of.insert((a.image.sop_instance_uid.clone(), label.clone()), uid);
                    }
                }
            }
            for a in &analysed {
                for l in &a.labels {
                    findings.push(FindingRow {
                        series_instance_uid: a.image.series_uid.clone(),
                        sop_instance_uid: a.image.sop_instance_uid.clone(),
                        model: model.manifest.name.clone(),
                        model_version: model.manifest.version.clone(),
                        label: l.label.clone(),
                        probability: l.probability as f64,
                        threshold: l.threshold as f64,
                        flagged: l.flagged,
                        heatmap_uid: heatmap_of
                            .get(&(a.image.sop_instance_uid.clone(), l.label.clone()))
                            .cloned(),
                    });
                }
            }
        }
        let p = match study_priority {
            Priority::Urgent => "urgent",
            Priority::Flagged => "flagged",
            Priority::Routine => "routine",
        };
        jobs.finish(job, &findings, &report_uids, Some(p)).await?;
        Ok(Some((study_priority, queued)))
    }
}
