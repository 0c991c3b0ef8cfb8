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

/// The images of a study `manifest` reads, of those it applies to: every
/// series, or with `series = "thinnest"` one ([`thinnest_series`], each
/// series' geometry read from its first image's header).
pub fn select_series(manifest: &Manifest, images: Vec<StudyInstance>) -> Vec<StudyInstance> {
    match manifest.applicability.series {
        infer::SeriesChoice::All => images,
        infer::SeriesChoice::Thinnest => thinnest_series(images, |i| SeriesGeometry::read(&i.file)),
    }
}

/// What decides which series is read: from the header of a series' first
/// image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SeriesGeometry {
    /// Slice Thickness (mm), if stated.
    pub thickness: Option<f64>,
    /// Axial (the slice normal within ~25 degrees of the patient's long
    /// axis); `None` when Image Orientation (Patient) is absent.
    pub axial: Option<bool>,
    /// Image Type says LOCALIZER (a scout).
    pub localizer: bool,
}

impl SeriesGeometry {
    /// Read the header of `file` (up to the pixel data). `None` if it
    /// cannot be parsed.
    pub fn read(file: &std::path::Path) -> Option<SeriesGeometry> {
        use dicom_dictionary_std::tags;
        let obj = dicom_object::OpenFileOptions::new()
            .read_until(tags::PIXEL_DATA)
            .open_file(file)
            .ok()?;
        let floats = |tag| attrs::floats(&obj, tag);
        let thickness = floats(tags::SLICE_THICKNESS)
            .and_then(|v| v.first().copied())
            .filter(|t| t.is_finite() && *t > 0.0);
        let axial = floats(tags::IMAGE_ORIENTATION_PATIENT)
            .filter(|v| v.len() == 6)
            .map(|v| {
                let nz = v[0] * v[4] - v[1] * v[3];
                nz.abs() > 0.9
            });
        let localizer = attrs::values(&obj, tags::IMAGE_TYPE)
            .iter()
            .any(|v| v.eq_ignore_ascii_case("LOCALIZER"));
        Some(SeriesGeometry {
            thickness,
            axial,
            localizer,
        })
    }
}

/// The one series a `series = "thinnest"` model reads: among the series
/// that are not scouts and are axial (or do not say), the one with the
/// thinnest slices, a tie (or no thickness stated) going to the series
/// with more images. `geometry` reads a series' first image. The input is
/// in series order; the chosen series' images keep their order.
pub fn thinnest_series(
    images: Vec<StudyInstance>,
    geometry: impl Fn(&StudyInstance) -> Option<SeriesGeometry>,
) -> Vec<StudyInstance> {
    // (start, length, geometry) per series.
    let mut series = Vec::new();
    let mut start = 0;
    while start < images.len() {
        let uid = &images[start].series_instance_uid;
        let n = images[start..]
            .iter()
            .take_while(|i| &i.series_instance_uid == uid)
            .count();
        series.push((start, n, geometry(&images[start])));
        start += n;
    }
    let readable =
        |g: &Option<SeriesGeometry>| g.is_none_or(|g| !g.localizer && g.axial != Some(false));
    let key = |&(_, n, g): &(usize, usize, Option<SeriesGeometry>)| {
        let t = g.and_then(|g| g.thickness).unwrap_or(f64::INFINITY);
        (t, std::cmp::Reverse(n))
    };
    let best = series.iter().filter(|s| readable(&s.2)).min_by(|a, b| {
        key(a)
            .partial_cmp(&key(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    match best {
        Some(&(start, n, _)) => images[start..start + n].to_vec(),
        None => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(series: &str, n: usize) -> StudyInstance {
        StudyInstance {
            sop_instance_uid: format!("{series}.{n}"),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            series_instance_uid: series.into(),
            modality: Some("CT".into()),
            body_part_examined: Some("HEAD".into()),
            view_position: None,
            calling_ae_title: "CT1".into(),
            called_ae_title: None,
            study_description: None,
            file: std::path::PathBuf::from(format!("{series}-{n}.dcm")),
        }
    }

    fn study(series: &[(&str, usize)]) -> Vec<StudyInstance> {
        series
            .iter()
            .flat_map(|&(s, n)| (0..n).map(move |k| instance(s, k)))
            .collect()
    }

    fn geometry(
        thickness: Option<f64>,
        axial: Option<bool>,
        localizer: bool,
    ) -> Option<SeriesGeometry> {
        Some(SeriesGeometry {
            thickness,
            axial,
            localizer,
        })
    }

    fn chosen(
        images: Vec<StudyInstance>,
        g: impl Fn(&str) -> Option<SeriesGeometry>,
    ) -> (String, usize) {
        let out = thinnest_series(images, |i| g(&i.series_instance_uid));
        assert!(out
            .windows(2)
            .all(|w| w[0].series_instance_uid == w[1].series_instance_uid));
        (
            out.first()
                .map(|i| i.series_instance_uid.clone())
                .unwrap_or_default(),
            out.len(),
        )
    }

    #[test]
    fn the_thinnest_axial_series_is_read_not_the_scout_or_a_reformat() {
        let images = study(&[
            ("scout", 2),
            ("routine", 28),
            ("thin", 112),
            ("coronal", 90),
        ]);
        let g = |s: &str| match s {
            "scout" => geometry(Some(0.6), Some(false), true),
            "routine" => geometry(Some(5.0), Some(true), false),
            "thin" => geometry(Some(1.25), Some(true), false),
            _ => geometry(Some(0.5), Some(false), false),
        };
        assert_eq!(chosen(images.clone(), g), ("thin".into(), 112));
        // Without the thin series, the routine one.
        let routine: Vec<_> = images
            .into_iter()
            .filter(|i| i.series_instance_uid != "thin")
            .collect();
        assert_eq!(chosen(routine, g), ("routine".into(), 28));
    }

    #[test]
    fn unknown_thickness_or_orientation_falls_back_to_the_longer_series() {
        let images = study(&[("a", 20), ("b", 30)]);
        assert_eq!(chosen(images.clone(), |_| None), ("b".into(), 30));
        assert_eq!(
            chosen(images.clone(), |_| geometry(None, None, false)),
            ("b".into(), 30)
        );
        // A stated thickness beats an unknown one.
        let g = |s: &str| geometry((s == "a").then_some(5.0), None, false);
        assert_eq!(chosen(images, g), ("a".into(), 20));
        // Only scouts: nothing is read.
        let scouts = study(&[("s", 2)]);
        assert_eq!(
            chosen(scouts, |_| geometry(Some(1.0), Some(false), true)),
            (String::new(), 0)
        );
    }
}
