//! Deterministic "formula" weights, reproduced bit for bit by
//! `tools/infer_reference.py`, so a model can be compared with PyTorch
//! without committing a weight file.
//!
//! Every value is a 20-bit integer scaled by a power of two, hence exact in
//! f32 on both sides: for tensor `name` and flat index `i`,
//! `k = splitmix64(fnv1a64(name) ^ (i * 0x9E3779B97F4A7C15)) >> 44` and
//! `u = k / 2^20 - 1/2`. Then by role:
//! - conv / linear weight (rank >= 2): `u * 2^-e`, `e = ceil(log2(fan_in) / 2) + 1 - gain`;
//! - BatchNorm weight (rank 1, name ends `weight`): `1 + u / 4`;
//! - bias: `u / 16`; running_mean: `u / 8`; running_var: `1/2 + (u + 1/2) / 2`.
//!
//! `gain` is 0 by default: each convolution then shrinks its input's
//! spread several-fold, so a deep network's outputs hardly depend on the
//! input (fine for timing, blind for parity). Parity fixtures raise it
//! until the signal survives every layer, so two inputs give clearly
//! different outputs.

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::Init;

fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The uniform values in [-1/2, 1/2) for a tensor, exact in f32.
pub fn uniform(name: &str, n: usize) -> Vec<f32> {
    let h = fnv1a64(name);
    (0..n as u64)
        .map(|i| {
            let k = splitmix64(h ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)) >> 44;
            k as f32 / (1u32 << 20) as f32 - 0.5
        })
        .collect()
}

/// The formula value of every element of tensor `name` with `dims`.
pub fn values(name: &str, dims: &[usize]) -> Vec<f32> {
    values_with_gain(name, dims, 0)
}

/// [`values`] with conv / linear weights `2^gain` times larger.
pub fn values_with_gain(name: &str, dims: &[usize], gain: i32) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let u = uniform(name, n);
    let leaf = name.rsplit('.').next().unwrap_or(name);
    match leaf {
        "running_var" => u.iter().map(|v| 0.5 + (v + 0.5) / 2.0).collect(),
        "running_mean" => u.iter().map(|v| v / 8.0).collect(),
        "bias" => u.iter().map(|v| v / 16.0).collect(),
        "weight" if dims.len() == 1 => u.iter().map(|v| 1.0 + v / 4.0).collect(),
        _ => {
            let fan_in = (n / dims.first().copied().unwrap_or(1).max(1)).max(1);
            let e = ((fan_in as f64).log2() / 2.0).ceil() as i32 + 1 - gain;
            let scale = 2f32.powi(-e);
            u.iter().map(|v| v * scale).collect()
        }
    }
}

/// A candle weight source that makes every tensor from the formula.
#[derive(Debug, Clone, Copy, Default)]
pub struct FormulaBackend {
    /// See the module docs.
    pub gain: i32,
}

impl SimpleBackend for FormulaBackend {
    fn get(&self, s: Shape, name: &str, _: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        Tensor::from_vec(values_with_gain(name, s.dims(), self.gain), s, dev)?.to_dtype(dtype)
    }

    fn get_unchecked(&self, name: &str, dtype: DType, dev: &Device) -> Result<Tensor> {
        candle_core::bail!("formula weights need a shape for {name} ({dtype:?} on {dev:?})")
    }

    fn contains_tensor(&self, _name: &str) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pinned values, computed independently (Python integers) from the
    /// formula in the module docs: a change to the formula, which would
    /// silently break parity with the committed PyTorch outputs, fails
    /// here first. Each value is exact in f32, so equality is exact.
    #[test]
    fn values_are_pinned() {
        assert_eq!(
            uniform("features.conv0.weight", 3),
            [0.18945694, 0.11786842, 0.31592083]
        );
        // fan_in 49 -> e = ceil(log2(49)/2) + 1 = 4: u / 16.
        assert_eq!(
            values("features.conv0.weight", &[64, 1, 7, 7])[..2],
            [0.011841059, 0.0073667765]
        );
        assert_eq!(
            values("features.norm0.running_var", &[64])[..2],
            [0.5673647, 0.5355997]
        );
        assert_eq!(
            values("features.norm0.running_mean", &[64])[..2],
            [-0.014366627, -0.026925564]
        );
        assert_eq!(
            values("features.norm0.weight", &[64])[..2],
            [1.1155717, 1.0515556]
        );
        assert_eq!(
            values("classifier.bias", &[18])[..2],
            [-0.029163718, -0.009028077]
        );
        let var = values("features.norm0.running_var", &[64]);
        assert!(var.iter().all(|v| (0.5..1.0).contains(v)));
    }
}
