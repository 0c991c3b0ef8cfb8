//! The detector and the vendor's processing: photons, quantum noise, the
//! logarithm, automatic ranging, edge enhancement, the tone curve and the
//! stored bit depth.

use crate::raster::{blur, Grid};
use crate::rng::Rng;
use crate::subject::Subject;

/// Linear attenuation of water at a chest technique's effective energy.
const MU_PER_CM: f64 = 0.2;
/// Scattered radiation reaching the detector, as a fraction of the
/// unattenuated beam (lowers contrast under dense tissue).
const SCATTER: f64 = 0.012;

/// Turn attenuation (cm) into stored sample values.
pub fn expose(cm: &[f32], grid: &Grid, subject: &Subject, rng: &mut Rng) -> Vec<u16> {
    let vendor = &subject.vendor;
    // Quantum noise is per detector pixel: finer pixels are noisier, and
    // resampling to a coarser grid averages it back, so the same case
    // looks alike at every pitch.
    let quanta = vendor.quanta_per_mm2 * subject.exposure * grid.pitch * grid.pitch;
    let open = quanta * (1.0 + SCATTER);
    let log: Vec<f32> = cm
        .iter()
        .map(|&t| {
            let mean = quanta * ((-MU_PER_CM * t as f64).exp() + SCATTER);
            let counted = (mean + mean.sqrt() * rng.normal()).max(1.0);
            (-(counted / open).ln()) as f32
        })
        .collect();

    // Automatic ranging, as every CR/DX reader does (the "exposure
    // recognition"): the body's percentiles map to the output range.
    let mut sample: Vec<f32> = log.iter().step_by(7).copied().collect();
    sample.sort_by(|a, b| a.total_cmp(b));
    let pct = |p: f64| sample[((sample.len() - 1) as f64 * p) as usize] as f64;
    let (lo, hi) = (pct(0.01), pct(0.995));
    let span = (hi - lo).max(1e-6);
    let mut v: Vec<f32> = log
        .iter()
        .map(|&s| ((s as f64 - lo) / span) as f32)
        .collect();
    if vendor.edge_gain > 0.0 {
        let smooth = blur(
            &v,
            grid.columns,
            grid.rows,
            vendor.edge_sigma_mm / grid.pitch,
        );
        for (x, s) in v.iter_mut().zip(smooth) {
            *x += (vendor.edge_gain * (*x - s) as f64) as f32;
        }
    }
    let c = vendor.contrast;
    let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
    let (s0, s1) = (sig(-c / 2.0), sig(c / 2.0));
    let maxval = ((1u32 << vendor.bits_stored) - 1) as f64;
    v.iter()
        .map(|&x| {
            let x = (x as f64).clamp(-0.1, 1.1);
            let y = if c > 0.0 {
                (sig(c * (x - 0.5)) - s0) / (s1 - s0)
            } else {
                x
            };
            let q = (y.clamp(0.0, 1.0) * maxval).round();
            (if vendor.monochrome1 { maxval - q } else { q }) as u16
        })
        .collect()
}
