//! Head CT phantom slices as model inputs, through the path a received
//! slice takes (a CT Image Storage instance, decoded by the imaging crate,
//! through the manifest's windows), and the series the daemon reads.

use phantom::head::{Bleed, CtSlice, HeadCase, HeadMix};
use phantom::Rng;

use crate::sets::DEMO_BASE;
use crate::LabError;

/// The labels of the head CT model: any haemorrhage, then each type in
/// the order of [`Bleed::ALL`].
pub const HEAD_LABELS: [&str; 6] = [
    "Intracranial haemorrhage",
    "Intraparenchymal haemorrhage",
    "Subdural haemorrhage",
    "Epidural haemorrhage",
    "Subarachnoid haemorrhage",
    "Intraventricular haemorrhage",
];

/// The windows (centre, width HU) the model's three channels show: brain,
/// subdural, bone.
pub const HEAD_WINDOWS: [(f64, f64); 3] = [(40.0, 80.0), (80.0, 200.0), (600.0, 2800.0)];

/// The head CT model's input spec at `size`.
pub fn head_spec(size: usize) -> imaging::InputSpec {
    imaging::InputSpec::CtWindow {
        windows: HEAD_WINDOWS
            .iter()
            .map(|&(center, width)| imaging::CtWindow { center, width })
            .collect(),
        size,
    }
}

/// Head CT seeds start this far into each set, so their studies' UIDs
/// never meet the chest cases' (identities follow from the seed).
pub const HEAD_CT_SEEDS: u64 = 500_000_000_000;

/// Seed `i` of a head CT set whose chest cases start at `base`.
pub fn head_seed(base: u64, i: u64) -> u64 {
    base + HEAD_CT_SEEDS + i
}

/// A slice's targets, in [`HEAD_LABELS`] order: a type is present when
/// its mask reaches the slice.
pub fn slice_targets(slice: &CtSlice) -> [bool; 6] {
    let mut t = [false; 6];
    for (b, mask) in &slice.masks {
        if mask.iter().any(|&m| m) {
            t[0] = true;
            t[1 + Bleed::ALL.iter().position(|x| x == b).unwrap_or(0)] = true;
        }
    }
    t
}

/// A study's targets, in [`HEAD_LABELS`] order.
pub fn study_targets(case: &HeadCase) -> [bool; 6] {
    let mut t = [false; 6];
    t[0] = case.any();
    for (k, b) in Bleed::ALL.iter().enumerate() {
        t[1 + k] = case.size(*b).is_some();
    }
    t
}

/// The model input for slice `index` of `series`.
pub fn slice_input(
    series: &HeadCase,
    slice: &CtSlice,
    index: usize,
    size: usize,
) -> Result<imaging::Tensor, LabError> {
    let obj = phantom::dicom::head_ct_instance(series, slice, index as u32 + 1)?;
    let frames = imaging::Frames::decode(&obj)?;
    Ok(head_spec(size).apply(&frames, 0)?)
}

/// The series of a study the daemon reads (the thinnest axial one; see
/// `pipeline::selection::reading_series`), and the slices of it it reads:
/// at most `max` evenly spaced (0: all), as `pipeline.max_images_per_series`
/// samples them.
pub fn read_slices(case: &HeadCase, max: usize) -> (HeadCase, Vec<usize>) {
    let series = case.thin_series().unwrap_or_else(|| case.clone());
    let n = series.slice_positions().len();
    let picked = if max == 0 || n <= max {
        (0..n).collect()
    } else {
        (0..max).map(|k| (2 * k + 1) * n / (2 * max)).collect()
    };
    (series, picked)
}

/// Training slices: one a seed, from the routine or the thin series, most
/// of a bleeding head's slices through its bleed. Rendered at twice the
/// input size. Returns the `N x 3 x size x size` inputs and `N x 6`
/// targets.
pub fn head_batch(
    seeds: impl Iterator<Item = u64>,
    size: usize,
) -> Result<(Vec<f32>, Vec<f32>, usize), LabError> {
    let mix = HeadMix {
        bleed: 0.6,
        mimic: 0.3,
        thin: 0.5,
        matrix: 2 * size,
    };
    let mut data = Vec::new();
    let mut targets = Vec::new();
    let mut n = 0;
    for seed in seeds {
        let case = HeadCase::sample(seed, &mix);
        let mut r = Rng::derive(seed, 0x7124_1A1E);
        let series = match case.thin_series() {
            Some(thin) if r.chance(0.5) => thin,
            _ => case.clone(),
        };
        let positions = series.slice_positions();
        let index = match case.bleeds.get(r.below(case.bleeds.len().max(1))) {
            Some(b) if r.chance(0.7) => {
                let z = b.centre[2] + r.range(-1.0, 1.0) * (b.extent / 2.0).max(6.0);
                nearest(&positions, z)
            }
            _ => r.below(positions.len()),
        };
        let slice = series.render_slice(index);
        data.extend(slice_input(&series, &slice, index, size)?.data);
        targets.extend(slice_targets(&slice).map(|t| t as u8 as f32));
        n += 1;
    }
    Ok((data, targets, n))
}

/// The head CT studies `triaged demo` sends: a single medium or large
/// intraparenchymal or subdural haemorrhage, and a normal head with a
/// calcified pineal gland; the first such demo-set seeds without a thin
/// series (so the demo stays quick).
pub fn demo_cases() -> [HeadCase; 2] {
    let first = |bleed: f64, fits: &dyn Fn(&HeadCase) -> bool| {
        (0..10_000)
            .map(|i| {
                HeadCase::sample(
                    head_seed(DEMO_BASE, i),
                    &HeadMix {
                        bleed,
                        ..HeadMix::default()
                    },
                )
            })
            .find(|c| c.thin.is_none() && fits(c))
            .expect("the demo set has such a case")
    };
    [
        first(1.0, &|c| {
            c.bleeds.len() == 1
                && matches!(c.bleeds[0].kind, Bleed::Intraparenchymal | Bleed::Subdural)
                && c.bleeds[0].size >= phantom::head::Size::Medium
        }),
        first(0.0, &|c| {
            c.mimics == [phantom::head::Mimic::PinealCalcification]
        }),
    ]
}

/// The index of the position nearest `z`.
fn nearest(positions: &[f64], z: f64) -> usize {
    positions
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - z).abs().total_cmp(&(b.1 - z).abs()))
        .map(|(i, _)| i)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_reads_the_thin_series_sampled_evenly() {
        let mix = HeadMix {
            thin: 1.0,
            matrix: 64,
            ..HeadMix::default()
        };
        let case = HeadCase::sample(7, &mix);
        let (series, picked) = read_slices(&case, 64);
        assert!(series.thickness < 5.0);
        assert_eq!(picked.len(), 64);
        assert!(picked.windows(2).all(|w| w[0] < w[1]));
        let (_, all) = read_slices(&case, 0);
        assert_eq!(all.len(), series.slice_positions().len());
    }

    #[test]
    fn a_slice_through_a_bleed_is_labelled_with_its_type_and_any() {
        let mix = HeadMix {
            bleed: 1.0,
            matrix: 64,
            ..HeadMix::default()
        };
        let case = HeadCase::sample(11, &mix);
        let b = &case.bleeds[0];
        let index = nearest(&case.slice_positions(), b.centre[2]);
        let t = slice_targets(&case.render_slice(index));
        let k = 1 + Bleed::ALL.iter().position(|x| *x == b.kind).unwrap();
        assert!(t[0] && t[k], "{:?} at slice {index}: {t:?}", b.kind);
        // The vertex slice is above every bleed.
        let top = case.slice_positions().len() - 1;
        assert_eq!(slice_targets(&case.render_slice(top)), [false; 6]);
    }
}
