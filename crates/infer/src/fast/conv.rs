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
use super::profile::{self, Part};
use super::{winograd, Geometry};

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

/// How an operation is cut into tasks: `chunks` column ranges of `chunk`
/// columns (the last may be shorter) times `row_parts` ranges of
/// `rows_per` output channels.
pub(crate) struct Plan {
    cols: usize,
    rows: usize,
    chunk: usize,
    chunks: usize,
    row_parts: usize,
    rows_per: usize,
}

/// One task's share of an operation.
pub(crate) struct Task {
    pub cols: std::ops::Range<usize>,
    pub rows: std::ops::Range<usize>,
}

/// Columns below which a chunk is not worth its own task.
const MIN_CHUNK: usize = 64;

impl Plan {
    /// `cols` columns (or other units of work) in chunks of at most
    /// `max_chunk` and, where the threads allow, at least `min_chunk`.
    pub fn new(
        cols: usize,
        rows: usize,
        max_chunk: usize,
        min_chunk: usize,
        threads: usize,
    ) -> Plan {
        let mut chunks = cols.div_ceil(max_chunk).max(1);
        // Equal shares for every thread where the columns allow it.
        let even = chunks.next_multiple_of(threads);
        if cols / even >= min_chunk {
            chunks = even;
        }
        let chunk = cols.div_ceil(chunks).max(1);
        let chunks = cols.div_ceil(chunk);
        // Too few columns to share: split the output channels too.
        let row_parts = if chunks >= threads {
            1
        } else {
            (threads / chunks).clamp(1, rows.div_ceil(16).max(1))
        };
        Plan {
            cols,
            rows,
            chunk,
            chunks,
            row_parts,
            rows_per: rows.div_ceil(row_parts),
        }
    }

    pub fn tasks(&self) -> usize {
        self.chunks * self.row_parts
    }

    /// Task `t`'s columns and output channels; `None` where rounding left
    /// it no channels.
    pub fn task(&self, t: usize) -> Option<Task> {
        let (c, p) = (t / self.row_parts, t % self.row_parts);
        let j0 = c * self.chunk;
        let r0 = p * self.rows_per;
        let r1 = (r0 + self.rows_per).min(self.rows);
        (r0 < r1).then(|| Task {
            cols: j0..(j0 + self.chunk).min(self.cols),
            rows: r0..r1,
        })
    }
}

thread_local! {
    /// Each thread's im2col chunk, kept between operations: a chunk is at
    /// most `chunk_floats()` floats (or one 4096-column chunk of a deep
    /// layer), so this stays small, and nothing is allocated or zeroed per
    /// task.
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
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
    /// The weights transformed for [`winograd`], made on first use (by
    /// the 3x3 stride-1 convolutions that take that path).
    winograd: std::sync::OnceLock<Vec<f32>>,
}

/// Floats of `col` one chunk may hold: 512 KiB, inside a core's L2 next to
/// the weights' working set (measured: 64 Ki and 256 Ki floats were both
/// slower for DenseNet-121).
const CHUNK_FLOATS: usize = 128 * 1024;

/// Columns of a chunk when a 1x1 convolution reads its input in place.
const DIRECT_CHUNK: usize = 2048;

impl Conv {
    pub fn new(
        out: usize,
        input: usize,
        k: usize,
        stride: usize,
        pad: usize,
        weight: Vec<f32>,
    ) -> Conv {
        assert_eq!(weight.len(), out * input * k * k, "convolution weights");
        Conv {
            out,
            input,
            k,
            stride,
            pad,
            weight,
            winograd: std::sync::OnceLock::new(),
        }
    }

    /// Folds a following BatchNorm into the weights; returns the bias.
    pub fn fold(&mut self, bn: &Affine) -> Vec<f32> {
        self.winograd = std::sync::OnceLock::new();
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
    /// 3x3 "same" convolutions with stride 1 on maps of at least 8x8 go
    /// by [`winograd`], all others by im2col.
    pub fn run(
        &self,
        input: &[f32],
        g: Geometry,
        prologue: Prologue,
        out: &mut [f32],
        epilogue: Epilogue,
    ) {
        let same3 = self.k == 3 && self.stride == 1 && self.pad == 1;
        if same3 && matches!(prologue, Prologue::None) && winograd::pays(g) && self.out > 0 {
            self.check(input, g, g.cols(), out, epilogue);
            let u = self
                .winograd
                .get_or_init(|| winograd::transform_weights(self));
            return winograd::run(self, u, input, g, out, epilogue);
        }
        self.run_im2col(input, g, prologue, out, epilogue)
    }

    /// The sizes `run` relies on.
    fn check(&self, input: &[f32], g: Geometry, cols: usize, out: &[f32], epilogue: Epilogue) {
        assert!(
            input.len() >= self.input * g.cols(),
            "convolution input too short"
        );
        assert_eq!(out.len(), self.out * cols, "convolution output size");
        if let Epilogue::Bias {
            residual: Some(r), ..
        } = epilogue
        {
            assert_eq!(r.len(), out.len(), "residual size");
        }
    }

    /// `run` by im2col and the `gemm` crate.
    pub(crate) fn run_im2col(
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
        self.check(input, g, cols, out, epilogue);
        if let Prologue::BnRelu(_) | Prologue::BnReluPool(_) = prologue {
            assert!(self.k == 1 && self.stride == 1 && self.pad == 0);
        }
        if cols == 0 || self.out == 0 {
            // Maps pooled down to nothing (inputs far below a model's
            // size): nothing to compute, and no task to plan.
            return;
        }
        let direct = self.k == 1 && self.stride == 1 && self.pad == 0;
        let direct = direct && matches!(prologue, Prologue::None);
        let max_chunk = if direct {
            DIRECT_CHUNK
        } else {
            (CHUNK_FLOATS / depth).clamp(64, 4096)
        };
        // Every chunk reads all the weights: where they outweigh a chunk's
        // columns (deep late layers), fewer and longer chunks.
        let max_chunk = max_chunk.max(self.out);
        let plan = Plan::new(
            cols,
            self.out,
            max_chunk,
            MIN_CHUNK,
            rayon::current_num_threads(),
        );
        let kind = || {
            let what = match prologue {
                Prologue::None => "",
                Prologue::BnRelu(_) => " after BN+ReLU",
                Prologue::BnReluPool(_) => " after BN+ReLU+avg pool",
            };
            format!(
                "conv {0}x{0} stride {1}{what} @{2}",
                self.k, self.stride, og.h
            )
        };
        let macs = (self.out * cols * depth) as u64;
        profile::op(kind, macs, |parts| {
            let dst = Out::new(out);
            (0..plan.tasks()).into_par_iter().for_each(|t| {
                let Some(task) = plan.task(t) else { return };
                let (j0, len) = (task.cols.start, task.cols.len());
                let (r0, rows) = (task.rows.start, task.rows.len());
                SCRATCH.with_borrow_mut(|col| {
                    let rhs = if direct {
                        View {
                            data: &input[j0..],
                            stride: in_cols,
                        }
                    } else {
                        // Every element is written by `columns`: growing
                        // is the only reason to touch the buffer here.
                        if col.len() < depth * len {
                            col.resize(depth * len, 0.0);
                        }
                        let col = &mut col[..depth * len];
                        parts.time(Part::Columns, || {
                            self.columns(input, g, og, prologue, j0, len, col)
                        });
                        View {
                            data: col,
                            stride: len,
                        }
                    };
                    let lhs = View {
                        data: &self.weight[r0 * depth..],
                        stride: depth,
                    };
                    // SAFETY: tasks cover disjoint (rows, columns) rectangles.
                    let mut rect = unsafe { dst.rows(r0 * cols + j0, rows, len, cols) };
                    parts.time(Part::Gemm, || rect.assign_product(lhs, rhs, depth));
                    parts.time(Part::Epilogue, || {
                        for r in 0..rows {
                            let o = r0 + r;
                            finish(epilogue, o, rect.row(r), o * cols + j0);
                        }
                    });
                });
            });
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
        if s == 1 && 2 * p + 1 == k {
            return self.columns_same(input, g, j0, len, col);
        }
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
                        // Output x = ox0 + i reads input x = (ox0 + i) * s + kx - p,
                        // inside the row for i in [lo, hi).
                        let base = (ox0 * s + kx) as isize - p as isize;
                        let lo = if base >= 0 {
                            0
                        } else {
                            ((-base) as usize).div_ceil(s).min(seg)
                        };
                        let room = g.w as isize - base; // x < w  <=>  i * s < room
                        let hi = if room <= 0 {
                            lo
                        } else {
                            (room as usize).div_ceil(s).clamp(lo, seg)
                        };
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        if hi > lo {
                            let x0 = (base + (lo * s) as isize) as usize;
                            if s == 1 {
                                dst[lo..hi].copy_from_slice(&src[x0..x0 + (hi - lo)]);
                            } else {
                                let n = hi - lo;
                                let src = &src[x0..x0 + (n - 1) * s + 1];
                                for (i, d) in dst[lo..hi].iter_mut().enumerate() {
                                    *d = src[i * s];
                                }
                            }
                        }
                    }
                }
            }
        });
    }
}

impl Conv {
    /// `columns` for a stride-1 convolution whose output is the input's
    /// size ("same" padding, DenseNet's and ResNet's 3x3 ones). Within one
    /// image, output position `q` (row-major) reads input `q + offset` for
    /// each tap, so a tap's row of `col` is one copy per image in the
    /// chunk, then zeros where the tap falls off the top, bottom, left or
    /// right edge: far fewer and longer copies than one per output row,
    /// which mattered at 14x14 and 7x7.
    fn columns_same(&self, input: &[f32], g: Geometry, j0: usize, len: usize, col: &mut [f32]) {
        let (k, p) = (self.k, self.pad as isize);
        let (h, w) = (g.h as isize, g.w as isize);
        let plane = g.h * g.w;
        let mut j = j0;
        while j < j0 + len {
            let (img, q0) = (j / plane, j % plane);
            let n = (plane - q0).min(j0 + len - j);
            let t = j - j0;
            for c in 0..self.input {
                let src = &input[c * g.cols() + img * plane..][..plane];
                for ky in 0..k {
                    let dy = ky as isize - p;
                    for kx in 0..k {
                        let dx = kx as isize - p;
                        let row = (c * k + ky) * k + kx;
                        let dst = &mut col[row * len + t..][..n];
                        // Output q reads src[q + off]: where its row plus dy
                        // is inside the image and the index inside the plane
                        // (a tap one column off the edge reads the next or
                        // previous row's end: the column zeroing clears it).
                        let off = dy * w + dx;
                        let lo = ((-dy).max(0) * w).max(-off).max(q0 as isize);
                        let hi = ((h - dy.max(0)) * w)
                            .min(plane as isize - off)
                            .min((q0 + n) as isize);
                        let (a, b) = ((lo as usize - q0).min(n), (hi.max(lo) as usize - q0).min(n));
                        dst[..a].fill(0.0);
                        dst[b..].fill(0.0);
                        if b > a {
                            let from = (q0 as isize + a as isize + off) as usize;
                            dst[a..b].copy_from_slice(&src[from..from + (b - a)]);
                        }
                        // Columns whose x + dx leaves the row.
                        if dx != 0 {
                            let bad = if dx < 0 {
                                0..(-dx) as usize
                            } else {
                                (w - dx) as usize..g.w
                            };
                            let first_row = q0 / g.w;
                            let last_row = (q0 + n - 1) / g.w;
                            for y in first_row..=last_row {
                                for x in bad.clone() {
                                    let q = y * g.w + x;
                                    if q >= q0 && q < q0 + n {
                                        dst[q - q0] = 0.0;
                                    }
                                }
                            }
                        }
                    }
                }
            }
            j += n;
        }
    }
}

/// The epilogue on output channel `o`'s values `y`, which lie at `at` in
/// the output (and the residual).
pub(crate) fn finish(epilogue: Epilogue, o: usize, y: &mut [f32], at: usize) {
    match epilogue {
        Epilogue::None => {}
        Epilogue::BnRelu(a) => a.relu_in_place(o, y),
        Epilogue::Bias {
            bias,
            residual: res,
            relu,
        } => {
            // One pass over the values, whichever parts apply.
            let b = bias[o];
            let r = |v: f32| if relu { v.max(0.0) } else { v };
            match res {
                Some(res) => {
                    let res = &res[at..][..y.len()];
                    y.iter_mut().zip(res).for_each(|(v, x)| *v = r(*v + b + x));
                }
                None => y.iter_mut().for_each(|v| *v = r(*v + b)),
            }
        }
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
