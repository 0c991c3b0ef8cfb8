//! A model over the images selected for it, and what it reports: every
//! image (radiographs), or per series the slice where each label scores
//! highest (CT, [`Aggregation::SeriesMax`]). Images are read one at a time
//! and only the results still needed are kept, so a long series costs
//! time, not memory.

use std::rc::Rc;

use archive::StudyInstance;
use infer::{Aggregation, Classifier};
use report::ImageRef;

use crate::analysis::{analyse_file, Analysed};

/// One model's results on a study.
pub struct ModelRun {
    /// Every image the model read (the report's evidence).
    pub evidence: Vec<ImageRef>,
    /// What the report states, one entry per image it names.
    pub results: Vec<Analysed>,
    /// Images that could not be read or decoded (logged).
    pub skipped: usize,
}

/// Run `classifier` on `images` (in series, then instance order).
pub fn run(classifier: &Classifier, images: &[StudyInstance]) -> ModelRun {
    let mut out = ModelRun {
        evidence: Vec::with_capacity(images.len()),
        results: Vec::new(),
        skipped: 0,
    };
    match classifier.manifest.aggregation {
        Aggregation::Image => {
            let results = analysed(classifier, images, &mut out).collect();
            out.results = results;
        }
        Aggregation::SeriesMax => {
            let mut start = 0;
            while start < images.len() {
                let series = &images[start].series_instance_uid;
                let n = images[start..]
                    .iter()
                    .take_while(|i| &i.series_instance_uid == series)
                    .count();
                let best = series_max(classifier, &images[start..start + n], &mut out);
                out.results.extend(best);
                start += n;
            }
        }
    }
    out
}

/// The images that could be analysed, one at a time; the others are
/// counted as skipped.
fn analysed<'a>(
    classifier: &'a Classifier,
    images: &'a [StudyInstance],
    out: &'a mut ModelRun,
) -> impl Iterator<Item = Analysed> + 'a {
    images
        .iter()
        .filter_map(move |i| match analyse_file(classifier, &i.file) {
            Ok(a) => {
                out.evidence.push(a.image.clone());
                Some(a)
            }
            Err(e) => {
                tracing::warn!(sop_instance_uid = %i.sop_instance_uid, error = %e, "image skipped");
                out.skipped += 1;
                None
            }
        })
}

/// One series: for each label, the slice with the highest probability.
/// A slice that wins several labels is reported once, with those labels.
fn series_max(
    classifier: &Classifier,
    series: &[StudyInstance],
    out: &mut ModelRun,
) -> Vec<Analysed> {
    let labels = classifier.manifest.labels.len();
    let mut best: Vec<Option<(f32, Rc<Analysed>)>> = vec![None; labels];
    for a in analysed(classifier, series, out) {
        let a = Rc::new(a);
        for (k, l) in a.labels.iter().enumerate().take(labels) {
            if best[k].as_ref().is_none_or(|(p, _)| l.probability > *p) {
                best[k] = Some((l.probability, a.clone()));
            }
        }
        // `a` is dropped here unless it leads some label.
    }
    let mut winners: Vec<(Rc<Analysed>, Vec<usize>)> = Vec::new();
    for (k, b) in best.iter().enumerate() {
        let Some((_, a)) = b else { continue };
        match winners.iter_mut().find(|(w, _)| Rc::ptr_eq(w, a)) {
            Some((_, ks)) => ks.push(k),
            None => winners.push((a.clone(), vec![k])),
        }
    }
    drop(best);
    winners
        .into_iter()
        .map(|(a, ks)| {
            let a = Rc::try_unwrap(a).unwrap_or_else(|shared| (*shared).clone());
            let keep: Vec<&str> = ks.iter().map(|&k| a.labels[k].label.as_str()).collect();
            let heatmaps = a
                .heatmaps
                .iter()
                .filter(|h| keep.contains(&h.0.as_str()))
                .cloned()
                .collect();
            let labels = ks.iter().map(|&k| a.labels[k].clone()).collect();
            Analysed {
                labels,
                heatmaps,
                ..a
            }
        })
        .collect()
}
