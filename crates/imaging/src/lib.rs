//! DICOM pixel data to model-ready tensors.
//!
//! [`Frames::decode`] turns a stored instance into exact stored sample
//! values (every transfer syntax that dicom-pixeldata decodes in pure
//! Rust; JPEG-LS through CharLS and JPEG 2000 through OpenJPEG), checking
//! the image header first so that a hostile header is a
//! typed error, never a panic or a huge allocation. From the samples:
//! - [`Frames::modality`] applies the Modality LUT (rescale slope and
//!   intercept, per frame for enhanced objects): Hounsfield units for CT;
//! - [`Frames::voi_unit`] applies the VOI LUT (window with the LINEAR,
//!   LINEAR_EXACT or SIGMOID function, or a VOI LUT Sequence) and scales to
//!   [0, 1], MONOCHROME1 inverted;
//! - [`InputSpec`] builds a model's input tensor: torchxrayvision's `xrv`
//!   convention, stacked CT windows, or VOI-applied unit values, each
//!   centre-cropped and area-resized, or for torchxrayvision models cropped
//!   and resized exactly as its own preprocessing does ([`Resize`]);
//! - [`Frames::display`], [`overlay`] and [`Image8::to_png`] render what
//!   people look at: the windowed image and a heatmap over it;
//!   [`preview_png`] does it from a stored file.
//!
//! The crate knows nothing of models or the network; results are compared
//! with pydicom in `tests/reference.rs`.

mod codec;
mod error;
mod frames;
mod header;
mod jpeg12;
// The two C bindings (OpenJPEG, CharLS): the crate's only unsafe code.
#[allow(unsafe_code)]
mod jpeg2k;
#[allow(unsafe_code)]
mod jpegls;
mod preview;
mod render;
mod resize;
mod samples;
mod spec;
mod transcode;
mod voi;

pub use error::ImagingError;
pub use frames::{Frames, Photometric};
pub use jpeg2k::set_threads as set_jpeg2000_threads;
pub use preview::preview_png;
pub use render::{overlay, Image8};
pub use resize::{area_resize, centre_crop, skimage_resize, xrv_centre_crop};
pub use spec::{CtWindow, InputSpec, Resize, Tensor};
pub use voi::VoiFunction;
