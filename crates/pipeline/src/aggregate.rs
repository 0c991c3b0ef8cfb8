//! A model over the images selected for it, and what it reports: every
//! image (radiographs), or per series the slice where each label scores
//! highest (CT, [`Aggregation::SeriesMax`]). Images are read one at a time
//! and only the results still needed are kept, so a long series costs
//! time, not memory.

use std::rc::Rc;

use archive::{SkippedImage, StudyInstance};
use infer::{Aggregation, Classifier};
use report::ImageRef;

use crate::analysis::{analyse_file, Analysed};

/// One model's results on a study.
pub struct ModelRun {
    /// Every image the model read (the report's evidence).
    pub evidence: Vec<ImageRef>,
    /// What the report states, one entry per image it names.
    pub results: Vec<Analysed>,
    /// Images that could not be read or decoded, and why (logged).
    pub skipped: Vec<SkippedImage>,
}

/// Run `classifier` on `images` (in series, then instance order).
pub fn run(classifier: &Classifier, images: &[StudyInstance]) -> ModelRun {
    let mut out = ModelRun {
        evidence: Vec::with_capacity(images.len()),
        results: Vec::new(),
        skipped: Vec::new(),
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
                out.skipped.push(SkippedImage {
                    sop_instance_uid: i.sop_instance_uid.clone(),
                    error: e.to_string(),
                });
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
    let labels = classifier.manifest.reported().len();
    let slices = analysed(classifier, series, out);
    strongest(slices, labels, |a, k| {
        a.labels.get(k).map(|l| l.probability)
    })
    .into_iter()
    .map(|(a, ks)| {
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

/// For each of `labels` labels, the item that scores highest (the earlier
/// one on a tie; `score` gives an item's score for a label, if it has
/// one). Each winning item is returned once, with the labels it won, in
/// the order of those labels. Items are consumed one at a time and dropped
/// unless they lead some label, so only the winners are ever held.
fn strongest<T: Clone>(
    items: impl Iterator<Item = T>,
    labels: usize,
    score: impl Fn(&T, usize) -> Option<f32>,
) -> Vec<(T, Vec<usize>)> {
    let mut best: Vec<Option<(f32, Rc<T>)>> = vec![None; labels];
    for item in items {
        let item = Rc::new(item);
        for (k, b) in best.iter_mut().enumerate() {
            let Some(p) = score(&item, k) else { continue };
            if b.as_ref().is_none_or(|(q, _)| p > *q) {
                *b = Some((p, item.clone()));
            }
        }
        // `item` is dropped here unless it leads some label.
    }
    let mut winners: Vec<(Rc<T>, Vec<usize>)> = Vec::new();
    for (k, b) in best.iter().enumerate() {
        let Some((_, item)) = b else { continue };
        match winners.iter_mut().find(|(w, _)| Rc::ptr_eq(w, item)) {
            Some((_, ks)) => ks.push(k),
            None => winners.push((item.clone(), vec![k])),
        }
    }
    drop(best);
    winners
        .into_iter()
        .map(|(item, ks)| {
            let item = Rc::try_unwrap(item).unwrap_or_else(|shared| (*shared).clone());
            (item, ks)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::strongest;

    /// (slice name, probability per label)
    fn pick(slices: &[(&'static str, Vec<f32>)], labels: usize) -> Vec<(&'static str, Vec<usize>)> {
        strongest(slices.iter().cloned(), labels, |s, k| s.1.get(k).copied())
            .into_iter()
            .map(|(s, ks)| (s.0, ks))
            .collect()
    }

    #[test]
    fn each_label_goes_to_the_slice_where_it_scores_highest() {
        let slices = vec![
            ("s1", vec![0.1, 0.9, 0.2]),
            ("s2", vec![0.7, 0.1, 0.3]),
            ("s3", vec![0.2, 0.4, 0.8]),
            ("s4", vec![0.6, 0.95, 0.1]),
        ];
        assert_eq!(
            pick(&slices, 3),
            vec![("s2", vec![0]), ("s4", vec![1]), ("s3", vec![2])]
        );
    }

    #[test]
    fn a_slice_that_wins_several_labels_is_reported_once() {
        let slices = vec![
            ("s1", vec![0.1, 0.2]),
            ("s2", vec![0.9, 0.8]),
            ("s3", vec![0.5, 0.5]),
        ];
        assert_eq!(pick(&slices, 2), vec![("s2", vec![0, 1])]);
    }

    #[test]
    fn ties_go_to_the_earlier_slice_and_missing_scores_are_skipped() {
        let slices = vec![("s1", vec![0.5]), ("s2", vec![0.5, 0.3]), ("s3", vec![])];
        assert_eq!(pick(&slices, 2), vec![("s1", vec![0]), ("s2", vec![1])]);
        assert!(pick(&[], 2).is_empty());
    }
}
