//! Phantom cases as model inputs, through exactly the path a received
//! instance takes: rendered, written as a DICOM instance, decoded by the
//! imaging crate and turned into the manifest's input tensor.

use phantom::{Case, Mix};

/// Seeds of the phantom sets: training cases are drawn from
/// `seed * TRAINING_STRIDE + i`; validation and test sets are fixed and
/// disjoint from every training run with seed < 1000.
pub const TRAINING_STRIDE: u64 = 1_000_000_000;
pub const VALIDATION_BASE: u64 = 1_000_000_000_000;
pub const TEST_BASE: u64 = 2_000_000_000_000;

/// The model input (`xrv` spec at `size`) for a case, rendered at twice
/// the input resolution so resampling averages as it does for real
/// detectors.
pub fn input(case: &Case, size: usize) -> anyhow::Result<imaging::Tensor> {
    let (w, h) = case.detector_mm();
    let pitch = w.min(h) / (2 * size) as f64;
    let image = case.render(pitch, false);
    let obj = phantom::dicom::instance(case, &image, 1)?;
    let frames = imaging::Frames::decode(&obj)?;
    Ok(imaging::InputSpec::Xrv {
        size,
        resize: imaging::Resize::Area,
    }
    .apply(&frames, 0)?)
}

/// A batch of cases as one `N x 1 x size x size` buffer and their targets.
pub fn batch(
    seeds: impl Iterator<Item = u64>,
    size: usize,
) -> anyhow::Result<(Vec<f32>, Vec<f32>, usize)> {
    let mut data = Vec::new();
    let mut targets = Vec::new();
    let mut n = 0;
    for seed in seeds {
        let case = Case::sample(seed, &Mix::default());
        data.extend(input(&case, size)?.data);
        targets.extend(case.targets());
        n += 1;
    }
    Ok((data, targets, n))
}
