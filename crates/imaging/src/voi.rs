//! The VOI LUT: from modality values to display values in [0, 1].

use crate::frames::{Frames, Photometric};
use crate::ImagingError;

/// VOI LUT Function (0028,1056).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VoiFunction {
    #[default]
    Linear,
    LinearExact,
    Sigmoid,
}

/// A VOI LUT Sequence item.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VoiLut {
    /// The first input value mapped.
    pub first: i32,
    /// Bits per entry (from the LUT Descriptor).
    pub bits: u8,
    pub data: Vec<u16>,
}

/// The VOI transformation of one frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Voi {
    Window {
        center: f64,
        width: f64,
        function: VoiFunction,
    },
    Lut(VoiLut),
    /// None in the object: the frame's own range is used.
    None,
}

/// A window applied to one value, scaled to [0, 1] (PS3.3 C.11.2.1.2).
pub(crate) fn window(x: f64, center: f64, width: f64, function: VoiFunction) -> f64 {
    match function {
        VoiFunction::Linear | VoiFunction::LinearExact => {
            let (c, w) = if function == VoiFunction::Linear {
                (center - 0.5, width - 1.0)
            } else {
                (center, width)
            };
            if x <= c - w / 2.0 {
                0.0
            } else if x > c + w / 2.0 {
                1.0
            } else {
                (x - c) / w + 0.5
            }
        }
        VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - center) / width).exp()),
    }
}

impl Frames {
    /// The VOI of `frame` applied to its modality values, in [0, 1], with
    /// MONOCHROME1 inverted so that 1 is always white. The VOI LUT Sequence
    /// is preferred over a window when both are present (as pydicom does);
    /// with neither, the frame's own minimum and maximum.
    pub fn voi_unit(&self, frame: usize) -> Result<Vec<f32>, ImagingError> {
        let voi = self.voi_of(frame).clone();
        self.voi_unit_with(frame, &voi)
    }

    /// Like [`voi_unit`](Self::voi_unit) with a window chosen by the caller.
    pub fn window_unit(
        &self,
        frame: usize,
        center: f64,
        width: f64,
        function: VoiFunction,
    ) -> Result<Vec<f32>, ImagingError> {
        if width <= 0.0 || (function == VoiFunction::Linear && width < 1.0) {
            return Err(ImagingError::Spec(format!(
                "window width {width} is too small"
            )));
        }
        self.voi_unit_with(
            frame,
            &Voi::Window {
                center,
                width,
                function,
            },
        )
    }

    fn voi_unit_with(&self, frame: usize, voi: &Voi) -> Result<Vec<f32>, ImagingError> {
        let values = self.modality(frame)?;
        let mut out: Vec<f64> = match voi {
            Voi::Window {
                center,
                width,
                function,
            } if *width > 0.0 => values
                .iter()
                .map(|&x| window(x as f64, *center, *width, *function))
                .collect(),
            Voi::Lut(lut) if !lut.data.is_empty() => {
                let scale = ((1u64 << lut.bits.clamp(1, 16)) - 1) as f64;
                let last = lut.data.len() as i64 - 1;
                values
                    .iter()
                    .map(|&x| {
                        let i = (x as f64 - lut.first as f64)
                            .floor()
                            .clamp(0.0, last as f64) as usize;
                        lut.data[i] as f64 / scale
                    })
                    .collect()
            }
            _ => {
                let (lo, hi) = values.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &v| {
                    (lo.min(v as f64), hi.max(v as f64))
                });
                let span = if hi > lo { hi - lo } else { 1.0 };
                values.iter().map(|&v| (v as f64 - lo) / span).collect()
            }
        };
        if self.photometric == Photometric::Monochrome1 {
            out.iter_mut().for_each(|v| *v = 1.0 - *v);
        }
        Ok(out.into_iter().map(|v| v as f32).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_window_matches_the_standard() {
        // Center 40, width 80 (brain): 0 at <= -0.5 + ... see C.11.2.1.2.1.
        let f = |x| window(x, 40.0, 80.0, VoiFunction::Linear);
        assert_eq!(f(0.0), 0.0);
        assert_eq!(f(100.0), 1.0);
        assert!((f(40.0) - (0.5 / 79.0 + 0.5)).abs() < 1e-12);
        let e = |x| window(x, 40.0, 80.0, VoiFunction::LinearExact);
        assert_eq!(e(40.0), 0.5);
        assert_eq!(e(0.0), 0.0);
        let s = window(40.0, 40.0, 80.0, VoiFunction::Sigmoid);
        assert!((s - 0.5).abs() < 1e-12);
    }
}
