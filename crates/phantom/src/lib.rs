//! Synthetic frontal chest radiographs and head CT studies with known
//! findings (the head CT phantom: [`head`]).
//!
//! No chest X-ray data set or licensed model can be had offline, so triaged
//! makes its own: a procedural phantom of PA/AP chest radiographs (body
//! outline, lungs, heart and mediastinum, diaphragm domes, ribs, clavicles,
//! spine, scapulae, vessels) across sexes, ages, habitus, positioning,
//! inspiration, exposure and three fictitious vendors' detectors and
//! processing, with five findings at graded severity (effusion,
//! pneumothorax, cardiomegaly, nodule/mass, consolidation) and their
//! masks. Everything follows from a seed. The same generator feeds model
//! training, evaluation, the demo, tests and benchmarks; its images are
//! written as PNG or as full CR / DX instances.
//!
//! The physics is deliberately simple (attenuation along straight rays
//! through analytic shapes, quantum noise, logarithmic detector, automatic
//! ranging, unsharp masking, a tone curve): enough that a model must learn
//! shapes and densities rather than a shortcut, not a substitute for real
//! radiographs.

#![forbid(unsafe_code)]

mod anatomy;
mod case;
mod detector;
pub mod dicom;
mod findings;
pub mod head;
mod raster;
mod render;
mod rng;
mod subject;

pub use case::{encode_png, Case, Mix, Radiograph};
pub use findings::{Finding, Grade, Label, Side};
pub use rng::Rng;
pub use subject::{AgeBand, Sex, Subject, Vendor, View, VENDORS};
