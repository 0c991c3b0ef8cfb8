//! Phantom chest radiographs as model inputs, through exactly the path a
//! received instance takes: rendered, written as a DICOM instance, decoded
//! by the imaging crate and turned into the manifest's input tensor.

use phantom::{Case, Mix};

use crate::LabError;

/// The model input (`xrv` spec at `size`) for a case, rendered at twice
/// the input resolution so resampling averages as it does for real
/// detectors.
pub fn input(case: &Case, size: usize) -> Result<imaging::Tensor, LabError> {
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
) -> Result<(Vec<f32>, Vec<f32>, usize), LabError> {
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
