//! The VOI LUT: from modality values to display values in [0, 1].

use crate::frames::{Frames, ModalityLut, Photometric};
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
        self.voi_unit_with(frame, self.voi_of(frame))
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
        self.map_unit(frame, voi, |u| u as f32)
    }

    /// `f` of the unit value (as [`voi_unit`](Self::voi_unit) computes it)
    /// of each sample of `frame`, through [`UnitMap::apply`].
    pub(crate) fn map_unit<T: Copy>(
        &self,
        frame: usize,
        voi: &Voi,
        f: impl Fn(f64) -> T,
    ) -> Result<Vec<T>, ImagingError> {
        Ok(self.unit_map(frame, voi)?.apply(self.frame(frame)?, f))
    }

    /// The VOI of `frame` as a function of one stored sample: what
    /// [`voi_unit`](Self::voi_unit) computes for each, without the
    /// frame-sized planes in between (see [`UnitMap::apply`]).
    fn unit_map<'a>(&self, frame: usize, voi: &'a Voi) -> Result<UnitMap<'a>, ImagingError> {
        let modality = self.modality_lut(frame)?;
        let stored = stored_range(self.frame(frame)?);
        let kind = match voi {
            Voi::Window {
                center,
                width,
                function,
            } if *width > 0.0 => Kind::Window {
                center: *center,
                width: *width,
                function: *function,
            },
            Voi::Lut(lut) if !lut.data.is_empty() => Kind::Lut {
                lut,
                scale: ((1u64 << lut.bits.clamp(1, 16)) - 1) as f64,
            },
            _ => Kind::range(modality, stored),
        };
        Ok(UnitMap {
            modality,
            kind,
            invert: self.photometric == Photometric::Monochrome1,
            stored,
        })
    }
}

/// How modality values become [0, 1].
#[derive(Debug, Clone, Copy)]
enum Kind<'a> {
    Window {
        center: f64,
        width: f64,
        function: VoiFunction,
    },
    Lut {
        lut: &'a VoiLut,
        scale: f64,
    },
    /// Neither in the object: the frame's own range.
    Range {
        lo: f64,
        span: f64,
    },
}

impl Kind<'_> {
    /// The range of the modality values of stored samples from `stored`'s
    /// smallest to its largest. The modality value is monotonic in the
    /// stored value (increasing or, with a negative slope, decreasing), so
    /// its extremes are those of the stored extremes.
    fn range(modality: ModalityLut, stored: Option<(i32, i32)>) -> Self {
        let (lo, hi) = stored.map_or((0.0, 0.0), |(a, b)| {
            let (a, b) = (modality.value(a) as f64, modality.value(b) as f64);
            (a.min(b), a.max(b))
        });
        Kind::Range {
            lo,
            span: if hi > lo { hi - lo } else { 1.0 },
        }
    }
}

/// A frame's Modality LUT, VOI and MONOCHROME1 inversion as one function
/// of a stored sample.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnitMap<'a> {
    modality: ModalityLut,
    kind: Kind<'a>,
    invert: bool,
    /// The smallest and largest stored sample of the frame (none: empty).
    stored: Option<(i32, i32)>,
}

/// Below this many distinct stored values a table is always worth it.
const SMALL_TABLE: usize = 1 << 16;

/// The smallest and largest of `samples`.
fn stored_range(samples: &[i32]) -> Option<(i32, i32)> {
    let first = *samples.first()?;
    Some(
        samples
            .iter()
            .fold((first, first), |(lo, hi), &v| (lo.min(v), hi.max(v))),
    )
}

impl UnitMap<'_> {
    /// `f` of every sample of the frame's unit value ([`unit`](Self::unit)).
    /// Stored values are integers of at most 16 bits in practice, so `f`
    /// is evaluated once per value in the frame's range into a table, not
    /// once per pixel (a 2150 x 2150 radiograph has 4.6 million pixels
    /// and a few thousand distinct values); a range wider than the frame
    /// itself is mapped pixel by pixel. Either way the result is the same.
    pub(crate) fn apply<T: Copy>(&self, samples: &[i32], f: impl Fn(f64) -> T) -> Vec<T> {
        let Some((lo, hi)) = self.stored else {
            return Vec::new();
        };
        let span = (hi as i64 - lo as i64) as u64 + 1;
        if span > samples.len().max(SMALL_TABLE) as u64 {
            return samples.iter().map(|&v| f(self.unit(v))).collect();
        }
        let table: Vec<T> = (lo..=hi).map(|v| f(self.unit(v))).collect();
        // (A sample outside the range, from other samples than the
        // frame's, is computed rather than a panic.)
        samples
            .iter()
            .map(|&v| match table.get(v.wrapping_sub(lo) as u32 as usize) {
                Some(&t) => t,
                None => f(self.unit(v)),
            })
            .collect()
    }

    /// One stored sample in [0, 1], 1 white.
    pub(crate) fn unit(&self, v: i32) -> f64 {
        let x = self.modality.value(v) as f64;
        let u = match self.kind {
            Kind::Window {
                center,
                width,
                function,
            } => window(x, center, width, function),
            Kind::Lut { lut, scale } => {
                let last = lut.data.len() as f64 - 1.0;
                let i = (x - lut.first as f64).floor().clamp(0.0, last) as usize;
                lut.data[i] as f64 / scale
            }
            Kind::Range { lo, span } => (x - lo) / span,
        };
        if self.invert {
            1.0 - u
        } else {
            u
        }
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

    #[test]
    fn a_table_maps_like_each_sample() {
        let map = |samples: &[i32]| UnitMap {
            modality: ModalityLut {
                slope: 0.5,
                intercept: -1024.0,
            },
            kind: Kind::Window {
                center: 40.0,
                width: 80.0,
                function: VoiFunction::Sigmoid,
            },
            invert: true,
            stored: stored_range(samples),
        };
        let each = |m: &UnitMap, s: &[i32]| s.iter().map(|&v| m.unit(v)).collect::<Vec<_>>();
        // A narrow range (a table) and one wider than the frame (no table).
        for samples in [
            (0..5000)
                .map(|i| (i * 7919) % 4096 - 100)
                .collect::<Vec<i32>>(),
            vec![i32::MIN, 2100, 2150, 2101, i32::MAX],
        ] {
            let m = map(&samples);
            assert_eq!(m.apply(&samples, |u| u), each(&m, &samples));
        }
        // Samples outside the range the map was made for.
        let m = map(&[10, 20]);
        let outside = [i32::MIN, 9, 15, 21, i32::MAX];
        assert_eq!(m.apply(&outside, |u| u), each(&m, &outside));
        assert!(map(&[]).apply(&[], |u| u).is_empty());
    }

    #[test]
    fn a_frame_range_follows_a_negative_slope() {
        let modality = ModalityLut {
            slope: -2.0,
            intercept: 1.0,
        };
        let Kind::Range { lo, span } = Kind::range(modality, Some((-5, 10))) else {
            panic!("a range");
        };
        // -2 * 10 + 1 = -19 up to -2 * -5 + 1 = 11.
        assert_eq!((lo, span), (-19.0, 30.0));
        let Kind::Range { span, .. } = Kind::range(modality, Some((3, 3))) else {
            panic!("a range");
        };
        assert_eq!(span, 1.0, "a flat frame does not divide by zero");
    }
}
