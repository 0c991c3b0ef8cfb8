//! Convolution as matrix products over column chunks, with BatchNorm,
//! bias, residual and ReLU applied while the chunk is still in cache.
//!
//! Feature maps are channel-major (see [`super::Geometry`]): channel `c`
//! of every image in the batch is one row. A convolution is then
//! `out[o][j] = sum_k weight[o][k] * col[k][j]`, where `j` runs over every
//! output pixel of every image and `k` over input channel x kernel offset.
//! The columns are cut into chunks small enough for the core's cache; for
//! each chunk the kernel builds only that slice of `col` (a 1x1
//! convolution with stride 1 reads the input itself, no copy), multiplies
//! with the `gemm` crate, and finishes the outputs (the epilogue) before
//! moving on. Chunks run in parallel on rayon's threads; when there are
//! fewer chunks than threads (small late layers), output channels are
//! split too.

use rayon::prelude::*;

use super::gemm::{Out, View};
use super::Geometry;

/// BatchNorm in inference mode: `y = x * scale + shift` per channel.
#[derive(Debug, Clone)]
pub(crate) struct Affine {
    pub scale: Vec<f32>,
    pub shift: Vec<f32>,
}

impl Affine {
    /// From PyTorch's BatchNorm2d parameters.
    pub fn from_batch_norm(
        weight: &[f32],
        bias: &[f32],
        mean: &[f32],
        var: &[f32],
        eps: f64,
    ) -> Affine {
        let scale: Vec<f32> = weight
            .iter()
            .zip(var)
            .map(|(g, v)| (*g as f64 / (*v as f64 + eps).sqrt()) as f32)
            .collect();
        let shift = bias
            .iter()
            .zip(mean)
            .zip(&scale)
            .map(|((b, m), s)| (*b as f64 - *m as f64 * *s as f64) as f32)
            .collect();
        Affine { scale, shift }
    }

    /// `relu(x * scale[c] + shift[c])` over one channel's values.
    fn relu(&self, c: usize, x: &[f32], out: &mut [f32]) {
        let (s, b) = (self.scale[c], self.shift[c]);
        for (o, v) in out.iter_mut().zip(x) {
            *o = (v * s + b).max(0.0);
        }
    }

    pub fn relu_in_place(&self, c: usize, x: &mut [f32]) {
        let (s, b) = (self.scale[c], self.shift[c]);
        for v in x {
            *v = (*v * s + b).max(0.0);
        }
    }
}

/// What happens to the input before the product.
#[derive(Clone, Copy)]
pub(crate) enum Prologue<'a> {
    /// The input as it is.
    None,
    /// BatchNorm and ReLU (DenseNet's pre-activation); 1x1 only.
    BnRelu(&'a Affine),
    /// BatchNorm, ReLU and 2x2 average pooling (DenseNet's transition,
    /// pooled before its 1x1 convolution: both are linear, so pooling
    /// first gives the same result with a quarter of the work); 1x1 only.
    BnReluPool(&'a Affine),
}

/// What happens to each output channel after the product.
#[derive(Clone, Copy)]
pub(crate) enum Epilogue<'a> {
    None,
    /// BatchNorm and ReLU (a DenseNet layer's norm2).
    BnRelu(&'a Affine),
    /// A bias (BatchNorm folded into the weights), then `residual` added,
    /// then ReLU if asked.
    Bias {
        bias: &'a [f32],
        residual: Option<&'a [f32]>,
        relu: bool,
    },
}

/// A bias-free square convolution, weights `out x (input * k * k)` in
/// PyTorch's order (a BatchNorm after it may be folded in as a bias).
#[derive(Debug, Clone)]
pub(crate) struct Conv {
    pub out: usize,
    pub input: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
    pub weight: Vec<f32>,
}

/// Floats of `col` one chunk may hold: about 512 KB, inside a core's L2
/// next to the weights' working set.
const CHUNK_FLOATS: usize = 128 * 1024;

impl Conv {
    /// Folds a following BatchNorm into the weights; returns the bias.
    pub fn fold(&mut self, bn: &Affine) -> Vec<f32> {
        let per = self.input * self.k * self.k;
        for (o, w) in self.weight.chunks_mut(per).enumerate() {
            w.iter_mut().for_each(|v| *v *= bn.scale[o]);
        }
        bn.shift.clone()
    }

    /// The output geometry for an input geometry.
    pub fn output(&self, g: Geometry, prologue: Prologue) -> Geometry {
        if let Prologue::BnReluPool(_) = prologue {
            return Geometry {
                n: g.n,
                h: g.h / 2,
                w: g.w / 2,
            };
        }
        let size = |x: usize| (x + 2 * self.pad).saturating_sub(self.k) / self.stride + 1;
        Geometry {
            n: g.n,
            h: size(g.h),
            w: size(g.w),
        }
    }

    /// Runs the convolution: `input` holds `self.input` channel rows of
    /// geometry `g`; `out` receives `self.out` rows of the output geometry.
    pub fn run(
        &self,
        input: &[f32],
        g: Geometry,
        prologue: Prologue,
        out: &mut [f32],
        epilogue: Epilogue,
    ) {
        let og = self.output(g, prologue);
        let (in_cols, cols) = (g.cols(), og.cols());
        let depth = self.input * self.k * self.k;
        assert!(
            input.len() >= self.input * in_cols,
            "convolution input too short"
        );
        assert_eq!(out.len(), self.out * cols, "convolution output size");
        if let Prologue::BnRelu(_) | Prologue::BnReluPool(_) = prologue {
            assert!(self.k == 1 && self.stride == 1 && self.pad == 0);
        }
        if let Epilogue::Bias {
            residual: Some(r), ..
        } = epilogue
        {
            assert_eq!(r.len(), out.len(), "residual size");
        }
        let direct = self.k == 1 && self.stride == 1 && self.pad == 0;
        let direct = direct && matches!(prologue, Prologue::None);
        let chunk = if direct {
            2048
        } else {
            (CHUNK_FLOATS / depth).clamp(64, 4096) / 16 * 16
        };
        let chunks = cols.div_ceil(chunk);
        let threads = rayon::current_num_threads();
        let row_parts = if chunks >= threads {
            1
        } else {
            threads.div_ceil(chunks).min(self.out.div_ceil(16)).max(1)
        };
        let rows_per = self.out.div_ceil(row_parts);
        let dst = Out::new(out);
        (0..chunks * row_parts)
            .into_par_iter()
            .for_each_init(Vec::new, |col, task| {
                let (c, p) = (task / row_parts, task % row_parts);
                let j0 = c * chunk;
                let len = chunk.min(cols - j0);
                let r0 = p * rows_per;
                let rows = rows_per.min(self.out.saturating_sub(r0));
                if rows == 0 {
                    return;
                }
                let rhs = if direct {
                    View {
                        data: &input[j0..],
                        stride: in_cols,
                    }
                } else {
                    col.resize(depth * len, 0.0);
                    self.columns(input, g, og, prologue, j0, len, col);
                    View {
                        data: &col[..],
                        stride: len,
                    }
                };
                let lhs = View {
                    data: &self.weight[r0 * depth..],
                    stride: depth,
                };
                // SAFETY: tasks cover disjoint (rows, columns) rectangles.
                let mut rect = unsafe { dst.rows(r0 * cols + j0, rows, len, cols) };
                rect.assign_product(lhs, rhs, depth);
                for r in 0..rows {
                    let o = r0 + r;
                    let y = rect.row(r);
                    match epilogue {
                        Epilogue::None => {}
                        Epilogue::BnRelu(a) => a.relu_in_place(o, y),
                        Epilogue::Bias {
                            bias,
                            residual,
                            relu,
                        } => {
                            let b = bias[o];
                            match residual {
                                Some(res) => {
                                    let res = &res[o * cols + j0..][..len];
                                    y.iter_mut().zip(res).for_each(|(v, r)| *v += b + r);
                                }
                                None => y.iter_mut().for_each(|v| *v += b),
                            }
                            if relu {
                                y.iter_mut().for_each(|v| *v = v.max(0.0));
                            }
                        }
                    }
                }
            });
    }

    /// Builds columns `j0 .. j0 + len` of the `col` matrix into `col`
    /// (`depth x len`, row-major).
    #[allow(clippy::too_many_arguments)]
    fn columns(
        &self,
        input: &[f32],
        g: Geometry,
        og: Geometry,
        prologue: Prologue,
        j0: usize,
        len: usize,
        col: &mut [f32],
    ) {
        let in_cols = g.cols();
        match prologue {
            Prologue::BnRelu(a) => {
                for c in 0..self.input {
                    let x = &input[c * in_cols + j0..][..len];
                    a.relu(c, x, &mut col[c * len..][..len]);
                }
                return;
            }
            Prologue::BnReluPool(a) => {
                for c in 0..self.input {
                    let (s, b) = (a.scale[c], a.shift[c]);
                    let f = |v: f32| (v * s + b).max(0.0);
                    let dst = &mut col[c * len..][..len];
                    for_each_segment(og, j0, len, |t, img, oy, ox0, seg| {
                        let plane = &input[c * in_cols + img * g.h * g.w..];
                        let top = &plane[2 * oy * g.w..];
                        let bottom = &plane[(2 * oy + 1) * g.w..];
                        for (i, d) in dst[t..t + seg].iter_mut().enumerate() {
                            let x = 2 * (ox0 + i);
                            *d = 0.25
                                * (f(top[x]) + f(top[x + 1]) + f(bottom[x]) + f(bottom[x + 1]));
                        }
                    });
                }
                return;
            }
            Prologue::None => {}
        }
        let (k, s, p) = (self.k, self.stride, self.pad);
        for_each_segment(og, j0, len, |t, img, oy, ox0, seg| {
            for c in 0..self.input {
                let plane = &input[c * in_cols + img * g.h * g.w..][..g.h * g.w];
                for ky in 0..k {
                    let iy = (oy * s + ky) as isize - p as isize;
                    let row_ok = iy >= 0 && (iy as usize) < g.h;
                    for kx in 0..k {
                        let r = (c * k + ky) * k + kx;
                        let dst = &mut col[r * len + t..][..seg];
                        if !row_ok {
                            dst.fill(0.0);
                            continue;
                        }
                        let src = &plane[iy as usize * g.w..][..g.w];
                        // Output x in [lo, hi) reads inside the row.
                        let first = |ox: usize| (ox * s + kx) as isize - p as isize;
                        let lo = (0..seg).find(|&i| first(ox0 + i) >= 0).unwrap_or(seg);
                        let hi = (lo..seg)
                            .find(|&i| first(ox0 + i) >= g.w as isize)
                            .unwrap_or(seg);
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        if hi > lo {
                            let x0 = first(ox0 + lo) as usize;
                            if s == 1 {
                                dst[lo..hi].copy_from_slice(&src[x0..x0 + (hi - lo)]);
                            } else {
                                for (i, d) in dst[lo..hi].iter_mut().enumerate() {
                                    *d = src[x0 + i * s];
                                }
                            }
                        }
                    }
                }
            }
        });
    }
}

/// Calls `f(offset, image, output row, first x, length)` for each run of
/// columns `j0 .. j0 + len` that lies on one output row.
fn for_each_segment(
    og: Geometry,
    j0: usize,
    len: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    let plane = og.h * og.w;
    let mut j = j0;
    while j < j0 + len {
        let (img, rem) = (j / plane, j % plane);
        let (oy, ox) = (rem / og.w, rem % og.w);
        let seg = (og.w - ox).min(j0 + len - j);
        f(j - j0, img, oy, ox, seg);
        j += seg;
    }
}
