//! The one input type of this crate's public API: a batch of images as a
//! plain buffer. Callers (the pipeline, training, evaluation) build it from
//! the imaging crate's tensors without naming candle, which stays inside
//! this crate.

use candle_core::{Device, Tensor};

use crate::InferError;

/// `N x C x H x W` 32-bit floats, row-major, as PyTorch lays out a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    data: Vec<f32>,
    shape: [usize; 4],
}

impl Batch {
    /// A batch of `shape = [n, channels, height, width]`; the buffer must
    /// hold exactly that many values.
    pub fn new(data: Vec<f32>, shape: [usize; 4]) -> Result<Batch, InferError> {
        let expected: usize = shape.iter().product();
        if data.len() != expected || expected == 0 {
            return Err(InferError::Input {
                dims: shape.to_vec(),
                detail: format!(
                    "{} values given for {expected} (batch x channels x height x width)",
                    data.len()
                ),
            });
        }
        Ok(Batch { data, shape })
    }

    /// One image, `channels x height x width`.
    pub fn image(
        data: Vec<f32>,
        channels: usize,
        height: usize,
        width: usize,
    ) -> Result<Batch, InferError> {
        Batch::new(data, [1, channels, height, width])
    }

    /// `[n, channels, height, width]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// Images in the batch.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Never true for a batch made by [`Batch::new`]; here for the API
    /// guidelines' `len`/`is_empty` pair.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    pub(crate) fn to_tensor(&self, device: &Device) -> Result<Tensor, InferError> {
        Ok(Tensor::from_slice(
            &self.data,
            self.shape.as_slice(),
            device,
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_must_fit_its_shape() {
        assert!(Batch::new(vec![0.0; 12], [2, 1, 2, 3]).is_ok());
        let e = Batch::new(vec![0.0; 11], [2, 1, 2, 3]).unwrap_err();
        assert!(matches!(e, InferError::Input { .. }), "{e}");
        assert!(e.to_string().contains("11 values given for 12"), "{e}");
        assert!(Batch::new(Vec::new(), [0, 1, 2, 2]).is_err(), "empty");
    }

    #[test]
    fn the_tensor_keeps_the_layout() {
        let b = Batch::image((0..6).map(|v| v as f32).collect(), 1, 2, 3).unwrap();
        let t = b.to_tensor(&Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 1, 2, 3]);
        let rows: Vec<Vec<f32>> = t.squeeze(0).unwrap().squeeze(0).unwrap().to_vec2().unwrap();
        assert_eq!(rows, vec![vec![0.0, 1.0, 2.0], vec![3.0, 4.0, 5.0]]);
    }
}
