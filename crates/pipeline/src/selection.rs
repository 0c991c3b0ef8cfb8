//! Which images of a study a model reads.

use archive::StudyInstance;
use infer::Manifest;

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
