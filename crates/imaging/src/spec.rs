//! Model input specifications: how a frame becomes a model's tensor.

use crate::frames::{Frames, Photometric};
use crate::resize::{area_resize_with, centre_crop, skimage_resize, xrv_centre_crop};
use crate::voi::{window, VoiFunction};
use crate::ImagingError;

/// A CT display window in Hounsfield units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CtWindow {
    pub center: f64,
    pub width: f64,
}

/// How to turn a frame into a model input, as a model manifest names it.
/// Every spec centre-crops to a square and area-resizes to `size` x `size`.
#[derive(Debug, Clone, PartialEq)]
pub enum InputSpec {
    /// torchxrayvision's convention: one channel of stored values (no
    /// Modality or VOI LUT) scaled by `(2 * x / maxval - 1) * 1024`, where
    /// maxval = 2^BitsStored - 1; MONOCHROME1 inverted (`maxval - x`); RGB
    /// averaged to grey.
    Xrv { size: usize, resize: Resize },
    /// Hounsfield units through each window (LINEAR_EXACT, to [0, 1]), one
    /// channel per window: e.g. brain 40/80, subdural 80/200, bone 600/2800.
    CtWindow { windows: Vec<CtWindow>, size: usize },
    /// The image's own VOI (window or VOI LUT) scaled to [0, 1], white = 1.
    Unit { size: usize },
    /// An ordinary (ImageNet-trained) backbone's input: the `unit` grey
    /// replicated to one channel per `mean`/`std` pair and normalised,
    /// `(x - mean[c]) / std[c]` (torchvision's `ToTensor` + `Normalize`).
    ImageNet {
        size: usize,
        mean: Vec<f64>,
        std: Vec<f64>,
    },
}

/// How the `xrv` spec crops and resizes a frame to the model's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resize {
    /// The largest centred square (an odd margin's extra row or column
    /// after it), area-averaged: the project's own models' convention.
    #[default]
    Area,
    /// torchxrayvision's defaults, which its models were trained with:
    /// `XRayCenterCrop` and scikit-image's resize (Gaussian anti-aliasing,
    /// linear interpolation) as its `XRayResizer` calls it.
    Skimage,
}

/// A model-ready tensor, channels x height x width, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
    pub sop_instance_uid: String,
    pub frame: usize,
    /// The spec's name (`xrv`, `ct-window`, `unit`, `imagenet`).
    pub spec: &'static str,
    /// Frames in the source instance (this tensor is one of them).
    pub source_frames: usize,
    /// The frame's size before cropping and resizing.
    pub source_rows: usize,
    pub source_columns: usize,
    /// Pixel spacing of the tensor (mm), if the source had one.
    pub pixel_spacing: Option<[f64; 2]>,
    pub photometric: Photometric,
}

impl InputSpec {
    pub fn name(&self) -> &'static str {
        match self {
            InputSpec::Xrv { .. } => "xrv",
            InputSpec::CtWindow { .. } => "ct-window",
            InputSpec::Unit { .. } => "unit",
            InputSpec::ImageNet { .. } => "imagenet",
        }
    }

    pub fn size(&self) -> usize {
        match self {
            InputSpec::Xrv { size, .. }
            | InputSpec::CtWindow { size, .. }
            | InputSpec::Unit { size }
            | InputSpec::ImageNet { size, .. } => *size,
        }
    }

    pub fn channels(&self) -> usize {
        match self {
            InputSpec::CtWindow { windows, .. } => windows.len(),
            InputSpec::ImageNet { mean, .. } => mean.len(),
            _ => 1,
        }
    }

    fn validate(&self) -> Result<(), ImagingError> {
        let size = self.size();
        if !(1..=4096).contains(&size) {
            return Err(ImagingError::Spec(format!(
                "size {size} is outside 1..=4096"
            )));
        }
        if let InputSpec::CtWindow { windows, .. } = self {
            if windows.is_empty() {
                return Err(ImagingError::Spec(
                    "ct-window needs at least one window".into(),
                ));
            }
            if let Some(w) = windows
                .iter()
                .find(|w| !w.width.is_finite() || w.width <= 0.0 || !w.center.is_finite())
            {
                return Err(ImagingError::Spec(format!(
                    "window {}/{} is invalid",
                    w.center, w.width
                )));
            }
        }
        if let InputSpec::ImageNet { mean, std, .. } = self {
            if mean.is_empty() || mean.len() != std.len() {
                return Err(ImagingError::Spec(format!(
                    "imagenet needs one mean and one std per channel ({} and {} given)",
                    mean.len(),
                    std.len()
                )));
            }
            if mean.iter().chain(std).any(|v| !v.is_finite()) || std.iter().any(|&s| s <= 0.0) {
                return Err(ImagingError::Spec(
                    "imagenet: mean and std must be finite and std positive".into(),
                ));
            }
        }
        Ok(())
    }

    fn resize_mode(&self) -> Resize {
        match self {
            InputSpec::Xrv { resize, .. } => *resize,
            _ => Resize::Area,
        }
    }

    /// The square of an `h` x `w` frame the model sees: (top, left, side).
    pub fn crop(&self, h: usize, w: usize) -> (usize, usize, usize) {
        match self.resize_mode() {
            Resize::Area => centre_crop(h, w),
            Resize::Skimage => xrv_centre_crop(h, w),
        }
    }

    /// One row-major `h` x `w` plane cropped and resized to the model's
    /// size, as [`InputSpec::apply`] does each channel.
    pub fn fit(&self, plane: &[f32], h: usize, w: usize) -> Vec<f32> {
        let (top, left, side) = self.crop(h, w);
        let size = self.size();
        match self.resize_mode() {
            Resize::Area => area_resize_with(side, side, size, size, |y, x| {
                plane[(top + y) * w + left + x] as f64
            }),
            Resize::Skimage => {
                let mut square = Vec::with_capacity(side * side);
                for y in top..top + side {
                    square.extend_from_slice(&plane[y * w + left..y * w + left + side]);
                }
                skimage_resize(&square, side, side, size, size)
            }
        }
    }

    /// Build the tensor for one frame.
    pub fn apply(&self, frames: &Frames, frame: usize) -> Result<Tensor, ImagingError> {
        self.validate()?;
        let planes: Vec<Vec<f32>> = match self {
            InputSpec::Xrv { .. } => vec![xrv_plane(frames, frame)?],
            InputSpec::CtWindow { windows, .. } => {
                let hu = frames.modality(frame)?;
                windows
                    .iter()
                    .map(|w| {
                        hu.iter()
                            .map(|&x| {
                                window(x as f64, w.center, w.width, VoiFunction::LinearExact) as f32
                            })
                            .collect()
                    })
                    .collect()
            }
            InputSpec::Unit { .. } | InputSpec::ImageNet { .. } => {
                vec![frames.voi_unit(frame)?]
            }
        };
        let (h, w) = (frames.rows, frames.columns);
        let (_, _, side) = self.crop(h, w);
        let size = self.size();
        let mut data = Vec::with_capacity(self.channels() * size * size);
        for plane in &planes {
            data.extend(self.fit(plane, h, w));
        }
        if let InputSpec::ImageNet { mean, std, .. } = self {
            // One grey plane, normalised once per channel.
            let grey = std::mem::take(&mut data);
            for (m, s) in mean.iter().zip(std) {
                data.extend(grey.iter().map(|&x| ((x as f64 - m) / s) as f32));
            }
        }
        let scale = side as f64 / size as f64;
        Ok(Tensor {
            channels: self.channels(),
            height: size,
            width: size,
            data,
            sop_instance_uid: frames.sop_instance_uid.clone(),
            frame,
            spec: self.name(),
            source_frames: frames.frames,
            source_rows: h,
            source_columns: w,
            pixel_spacing: frames.pixel_spacing.map(|[r, c]| [r * scale, c * scale]),
            photometric: frames.photometric.clone(),
        })
    }
}

/// torchxrayvision's scaling of one frame, before cropping.
fn xrv_plane(frames: &Frames, frame: usize) -> Result<Vec<f32>, ImagingError> {
    let samples = frames.frame(frame)?;
    let maxval = ((1u64 << frames.bits_stored) - 1) as f64;
    let grey: Vec<f64> = match frames.photometric {
        Photometric::Monochrome1 => samples.iter().map(|&x| maxval - x as f64).collect(),
        Photometric::Monochrome2 => samples.iter().map(|&x| x as f64).collect(),
        Photometric::Rgb => samples
            .chunks_exact(3)
            .map(|p| (p[0] + p[1] + p[2]) as f64 / 3.0)
            .collect(),
        Photometric::Other(_) => {
            return Err(ImagingError::UnsupportedPhotometric {
                sop: frames.sop_instance_uid.clone(),
                photometric: format!("{:?}", frames.photometric),
                what: "the xrv input spec",
            })
        }
    };
    Ok(grey
        .into_iter()
        .map(|x| ((2.0 * x / maxval - 1.0) * 1024.0) as f32)
        .collect())
}
