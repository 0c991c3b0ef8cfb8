//! Evaluation of a classifier on labelled data: the check a hospital runs
//! on its own patients before switching a model on.
//!
//! Given each image's scores, labels, optional severity grades and
//! subgroup values (sex, age band, manufacturer, view ...), it reports per
//! label AUROC with a bootstrap 95 % interval, sensitivity, specificity,
//! PPV and NPV at the model's threshold, calibration (ECE and a
//! reliability curve), the same per subgroup with a flag where a subgroup
//! falls well below the whole, and draws ROC curves and reliability
//! diagrams as PNG; and, where ground-truth masks exist, how well the
//! heatmaps point at the finding ([`localisation`]). It knows nothing of
//! DICOM or of models: the caller runs the model.

#![forbid(unsafe_code)]

pub mod localisation;
pub mod metrics;
pub mod plots;
mod report;
pub mod tables;

pub use report::{
    evaluate, GradeMetrics, LabelReport, Metrics, Report, Sample, Setup, SubgroupMetrics,
};
