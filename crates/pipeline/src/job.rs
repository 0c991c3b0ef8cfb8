//! One job: the study's images through every model that applies, the
//! findings and reports recorded, the reports queued.

use std::collections::HashMap;
use std::sync::Arc;

use archive::{FindingRow, Job, Kept, ModelSkips, ModelState, NewObject, StudyInstance};
use infer::Classifier;
use report::{ImageRef, Priority, SrClass};

use crate::aggregate::{self, ModelRun};
use crate::{analysis, rules, select_series, subsample, Form, Pipeline, PipelineError};

/// A model, the images it reads and where its report goes.
struct Work {
    model: Arc<Classifier>,
    images: Vec<StudyInstance>,
    destinations: Vec<String>,
    /// Findings recorded for evaluation only.
    shadow: bool,
}

fn uid_of(o: &dicom_object::FileDicomObject<dicom_object::InMemDicomObject>) -> (String, String) {
    let m = o.meta();
    (
        m.media_storage_sop_instance_uid()
            .trim_end_matches('\0')
            .to_string(),
        m.media_storage_sop_class_uid()
            .trim_end_matches('\0')
            .to_string(),
    )
}

impl Pipeline {
    pub(crate) async fn process(&self, job: Job) {
        let study = job.study_instance_uid.clone();
        let started = std::time::Instant::now();
        let m = &self.settings.metrics;
        // The images each model could not read, recorded with the outcome.
        let mut skipped = Vec::new();
        let outcome = self.analyse(&job, &mut skipped).await;
        match &outcome {
            Ok(Some((_, queued))) => {
                m.jobs_done.inc();
                m.objects_queued.inc_by(*queued as u64);
                m.observe_analysis(started.elapsed());
            }
            Ok(None) => {
                m.jobs_not_applicable.inc();
            }
            Err(_) => {
                m.jobs_failed.inc();
            }
        }
        match outcome {
            Ok(Some((priority, reports))) => tracing::info!(
                job = job.id, study_instance_uid = %study, priority = ?priority, reports,
                ms = started.elapsed().as_millis() as u64, "study analysed"
            ),
            Ok(None) => {
                tracing::info!(job = job.id, study_instance_uid = %study, "no active model applies: recorded, no report")
            }
            Err(e) => {
                tracing::error!(job = job.id, study_instance_uid = %study, error = %e, "analysis failed");
                if let Err(e) = self
                    .archive
                    .jobs()
                    .fail(&job, &e.to_string(), &skipped)
                    .await
                {
                    tracing::error!(job = job.id, error = %e, "cannot record the failure");
                }
            }
        }
    }

    /// Per active or shadow model: the images it reads and the
    /// destinations of its report.
    fn plan(
        &self,
        instances: &[StudyInstance],
        models: &[(Arc<Classifier>, ModelState)],
    ) -> Vec<Work> {
        let defaults = self.settings.live.destinations();
        let mut work = Vec::new();
        for (m, state) in models {
            let shadow = match state {
                ModelState::Active => false,
                ModelState::Shadow => true,
                ModelState::Disabled => continue,
            };
            let mut images = Vec::new();
            let mut destinations: Vec<String> = Vec::new();
            for i in instances {
                if let Some(dests) = rules::route(
                    &self.settings.rules,
                    &self.settings.scopes,
                    &defaults,
                    &m.manifest,
                    i,
                ) {
                    images.push(i.clone());
                    for d in dests {
                        if !destinations.contains(&d) {
                            destinations.push(d);
                        }
                    }
                }
            }
            if !images.is_empty() {
                work.push(Work {
                    model: m.clone(),
                    images,
                    destinations,
                    shadow,
                });
            }
        }
        work
    }

    /// One model over its images, off the async threads; the images it
    /// could not read are added to `skipped`.
    async fn run_model(
        &self,
        w: &Work,
        skipped: &mut Vec<ModelSkips>,
    ) -> Result<ModelRun, PipelineError> {
        let (model, images) = (w.model.clone(), w.images.clone());
        let max = self.settings.max_images_per_series;
        let mut run = tokio::task::spawn_blocking(move || {
            // Choosing the series reads headers: off the async threads too.
            let images = subsample(select_series(&model.manifest, images), max);
            aggregate::run(&model, &images)
        })
        .await
        .map_err(|e| PipelineError::Model(e.to_string()))?;
        let m = &self.settings.metrics;
        m.images_analysed.inc_by(run.evidence.len() as u64);
        m.images_skipped.inc_by(run.skipped.len() as u64);
        skipped.push(ModelSkips {
            model: w.model.manifest.name.clone(),
            version: w.model.manifest.version.clone(),
            images: std::mem::take(&mut run.skipped),
        });
        Ok(run)
    }

    /// The findings of the models in shadow: what fails is logged, never
    /// the job's failure.
    async fn shadow_findings(
        &self,
        job: &Job,
        work: &[Work],
        skipped: &mut Vec<ModelSkips>,
    ) -> Vec<FindingRow> {
        let mut rows = Vec::new();
        for w in work {
            let (name, version) = (&w.model.manifest.name, &w.model.manifest.version);
            match self.run_model(w, skipped).await {
                Ok(run) if run.results.is_empty() => tracing::warn!(
                    job = job.id, model = %name, version = %version,
                    "shadow model: no image of the study could be analysed"
                ),
                Ok(run) => rows.extend(finding_rows(&w.model, &run, &[], true)),
                Err(e) => tracing::warn!(
                    job = job.id, model = %name, version = %version, error = %e,
                    "shadow model failed"
                ),
            }
        }
        rows
    }

    /// Returns the priority and the number of objects queued, or `None`
    /// when no active model applies. Models in shadow run after the
    /// active ones have reported, so they never delay a result.
    async fn analyse(
        &self,
        job: &Job,
        skipped: &mut Vec<ModelSkips>,
    ) -> Result<Option<(Priority, usize)>, PipelineError> {
        let jobs = self.archive.jobs();
        let instances = jobs.instances(&job.study_instance_uid).await?;
        let now = self.models.current(&self.archive).await?;
        let (shadow, active): (Vec<Work>, Vec<Work>) = self
            .plan(&instances, &now.models)
            .into_iter()
            .partition(|w| w.shadow);
        if active.is_empty() {
            let findings = self.shadow_findings(job, &shadow, skipped).await;
            jobs.finish(job, &findings, &[], None, &[], skipped).await?;
            return Ok(None);
        }
        let outcome = self.report_active(job, active, skipped).await?;
        if !shadow.is_empty() {
            let before = skipped.len();
            let findings = self.shadow_findings(job, &shadow, skipped).await;
            // The report is queued already: this job no longer fails.
            if let Err(e) = jobs.add_findings(job, &findings, &skipped[before..]).await {
                tracing::error!(job = job.id, error = %e, "cannot record the shadow models' findings");
            }
        }
        Ok(Some(outcome))
    }

    /// The active models' findings, the study's priority and the reports,
    /// recorded and queued in one transaction.
    async fn report_active(
        &self,
        job: &Job,
        work: Vec<Work>,
        skipped: &mut Vec<ModelSkips>,
    ) -> Result<(Priority, usize), PipelineError> {
        let jobs = self.archive.jobs();
        let mut runs = Vec::new();
        for w in work {
            let run = self.run_model(&w, skipped).await?;
            if run.results.is_empty() {
                return Err(PipelineError::Model(format!(
                    "{}: no image of the study could be analysed",
                    w.model.manifest.name
                )));
            }
            runs.push((w.model, run, w.destinations));
        }
        jobs.reporting(job).await?;
        let predecessor = jobs
            .previous_reports(&job.study_instance_uid, job.id)
            .await?
            .into_iter()
            .next()
            .map(|uid| ImageRef {
                series_uid: report::sr::series_uid(&job.study_instance_uid, &self.settings.device),
                sop_class_uid: SrClass::Comprehensive3d.uid().into(),
                sop_instance_uid: uid,
            });
        let mut findings = Vec::new();
        let mut report_uids = Vec::new();
        let mut queued = Vec::new();
        let mut study_priority = Priority::Routine;
        for (model, run, destinations) in runs {
            let priority = analysis::priority(&run.results, &self.settings.urgent_labels);
            study_priority = study_priority.max(priority);
            // Who takes the objects, who the result document.
            let (mut objects, mut sr_only, mut result) = (Vec::new(), Vec::new(), Vec::new());
            for d in destinations {
                match self.settings.live.wants(&d, priority) {
                    Some(Form::Objects) => objects.push(d),
                    Some(Form::Report) => sr_only.push(d),
                    Some(Form::Result) => result.push(d),
                    None => {}
                }
            }
            let (kept, document) = self
                .report(
                    job,
                    &model,
                    &run,
                    priority,
                    predecessor.clone(),
                    !result.is_empty(),
                )
                .await?;
            findings.extend(finding_rows(&model, &run, &kept, false));
            report_uids.push(kept[0].sop_instance_uid.clone());
            // The SR first, to both; the captures to those that take them.
            for (i, k) in kept.into_iter().enumerate() {
                let to = match i {
                    0 => [objects.clone(), sr_only.clone()].concat(),
                    _ => objects.clone(),
                };
                queued.push((k, to));
            }
            queued.extend(document.map(|k| (k, result)));
        }
        queued.retain(|(_, destinations)| !destinations.is_empty());
        let p = match study_priority {
            Priority::Urgent => "urgent",
            Priority::Flagged => "flagged",
            Priority::Routine => "routine",
        };
        jobs.finish(job, &findings, &report_uids, Some(p), &queued, skipped)
            .await?;
        self.settings.queued.notify_one();
        Ok((study_priority, queued.len()))
    }

    /// Build one model's SR and heatmap captures and keep them in the
    /// outbox folder (queued by the caller), the SR first; and, when some
    /// destination takes messages, the result document.
    async fn report(
        &self,
        job: &Job,
        model: &Classifier,
        run: &ModelRun,
        priority: Priority,
        predecessor: Option<ImageRef>,
        with_result: bool,
    ) -> Result<(Vec<Kept>, Option<Kept>), PipelineError> {
        let (objects, result) = analysis::objects(
            &job.study_instance_uid,
            &run.evidence,
            &run.results,
            &model.manifest,
            &self.settings.device,
            priority,
            predecessor,
        )?;
        let outbox = self.archive.outbox();
        let mut kept = Vec::with_capacity(objects.len());
        for o in objects {
            let (uid, class) = uid_of(&o);
            let mut file = Vec::new();
            o.write_all(&mut file)
                .map_err(|e| PipelineError::Model(format!("encoding {uid}: {e}")))?;
            kept.push(
                outbox
                    .keep(&NewObject {
                        sop_instance_uid: uid,
                        sop_class_uid: class,
                        study_instance_uid: job.study_instance_uid.clone(),
                        file,
                    })
                    .await?,
            );
        }
        let document = match with_result {
            true => Some(
                outbox
                    .keep_result(&NewObject {
                        sop_instance_uid: result.report_uid.clone(),
                        sop_class_uid: SrClass::Comprehensive3d.uid().into(),
                        study_instance_uid: job.study_instance_uid.clone(),
                        file: serde_json::to_vec(&result).map_err(|e| {
                            PipelineError::Model(format!("encoding the result: {e}"))
                        })?,
                    })
                    .await?,
            ),
            false => None,
        };
        Ok((kept, document))
    }
}

/// The findings of one model's run; `kept` is its SR followed by the
/// heatmap captures in the order of the results' heatmaps (none for a
/// model in shadow).
fn finding_rows(
    model: &Classifier,
    run: &ModelRun,
    kept: &[Kept],
    shadow: bool,
) -> Vec<FindingRow> {
    let mut captures = kept.iter().skip(1).map(|k| k.sop_instance_uid.clone());
    let mut heatmap_of = HashMap::new();
    for a in &run.results {
        for (label, ..) in &a.heatmaps {
            if let Some(uid) = captures.next() {
                heatmap_of.insert((a.image.sop_instance_uid.as_str(), label.as_str()), uid);
            }
        }
    }
    let mut rows = Vec::new();
    for a in &run.results {
        for l in &a.labels {
            rows.push(FindingRow {
                series_instance_uid: a.image.series_uid.clone(),
                sop_instance_uid: a.image.sop_instance_uid.clone(),
                model: model.manifest.name.clone(),
                model_version: model.manifest.version.clone(),
                label: l.label.clone(),
                probability: l.probability as f64,
                threshold: l.threshold as f64,
                flagged: l.flagged,
                heatmap_uid: heatmap_of
                    .get(&(a.image.sop_instance_uid.as_str(), l.label.as_str()))
                    .cloned(),
                shadow,
            });
        }
    }
    rows
}
