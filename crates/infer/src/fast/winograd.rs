//! 3x3 stride-1 "same" convolutions by Winograd's minimal filtering
//! F(2x2, 3x3) (Lavin & Gray, 2016): each 2x2 block of outputs ("tile")
//! comes from the 4x4 input patch around it as `Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A`.
//! Summed over input channels, the 16 element-wise products become 16
//! matrix products, `M_ξ = U_ξ V_ξ` (`U_ξ`: output x input channels,
//! `V_ξ`: input channels x tiles), so a layer takes 16 multiply-adds per
//! four outputs and input channel where im2col takes 36: 2.25x fewer.
//!
//! Work is cut into chunks of whole tile rows (so a chunk's outputs are one
//! contiguous run of each channel row, and the epilogue runs on it while
//! it is in cache) and, where chunks are too few for the threads, output
//! channels, as in [`super::conv`]. Each chunk transforms its input patches
//! (`V`), multiplies, and transforms back.
//!
//! The transforms use only additions and halvings of the weights: the
//! results differ from im2col's by float rounding only (PyTorch parity:
//! 2.5e-7 to 7.7e-7 relative in logits, the tolerance is 1e-4).

use rayon::prelude::*;

use super::conv::{finish, Conv, Epilogue, Plan};
use super::gemm::{multiply, Out, View};
use super::profile::{self, Part};
use super::Geometry;

/// The 16 transformed weight matrices `U_ξ = (G g Gᵀ)_ξ`, `ξ = 4i + j`,
/// each `out x input` row-major, one after the other.
pub(crate) fn transform_weights(conv: &Conv) -> Vec<f32> {
    assert!(conv.k == 3, "Winograd F(2,3) takes 3x3 kernels");
    let (out, input) = (conv.out, conv.input);
    let mut u = vec![0.0; 16 * out * input];
    // G x for a column of three; G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1].
    let g3 = |[x0, x1, x2]: [f32; 3]| [x0, 0.5 * (x0 + x1 + x2), 0.5 * (x0 - x1 + x2), x2];
    for (oc, g) in conv.weight.chunks_exact(9).enumerate() {
        // G g (4 x 3) by columns, then (G g) Gᵀ (4 x 4) by rows.
        let gg = [0, 1, 2].map(|b| g3([g[b], g[3 + b], g[6 + b]]));
        for i in 0..4 {
            let row = g3([gg[0][i], gg[1][i], gg[2][i]]);
            for (j, v) in row.into_iter().enumerate() {
                u[(i * 4 + j) * out * input + oc] = v;
            }
        }
    }
    u
}

/// Whether maps of geometry `g` go faster this way than by im2col: not
/// below 8x8, where a row has too few tiles (a 7x7 map has 16, in rows of
/// 4) for products that run well (measured: ResNet-50's 7x7 layers took
/// 1.6x im2col's time).
pub(crate) fn pays(g: Geometry) -> bool {
    g.n > 0 && g.h >= 8 && g.w >= 8
}

/// Tiles down and across one image.
fn tiles(g: Geometry) -> (usize, usize) {
    (g.h.div_ceil(2), g.w.div_ceil(2))
}

/// A chunk's `V` is sized to 512 KiB, as im2col's chunk, but holds at
/// least `MIN_TILES` tiles: fewer make the products too thin (measured at
/// DenseNet-121's 56x56 layers, 128 input channels: 192 tiles, a 1.6 MiB
/// `V`, took 9 % less time than 64).
const CHUNK_FLOATS: usize = 128 * 1024;
const MIN_TILES: usize = 192;

thread_local! {
    /// Each thread's `V`, `M` and row transforms, kept between calls.
    static SCRATCH: std::cell::RefCell<[Vec<f32>; 3]> = const {
        std::cell::RefCell::new([Vec::new(), Vec::new(), Vec::new()])
    };
}

/// Grows `v` to at least `len` and returns its first `len` values (every
/// one is written before it is read).
fn take(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if v.len() < len {
        v.resize(len, 0.0);
    }
    &mut v[..len]
}

/// Runs `conv` (3x3, stride 1, padding 1) on `input` of geometry `g`
/// into `out` (same geometry) with `u` its transformed weights.
pub(crate) fn run(
    conv: &Conv,
    u: &[f32],
    input: &[f32],
    g: Geometry,
    out: &mut [f32],
    epilogue: Epilogue,
) {
    let cols = g.cols();
    let (th, tw) = tiles(g);
    let tile_rows = g.n * th;
    let per_chunk = (CHUNK_FLOATS / (16 * conv.input)).max(MIN_TILES);
    let max_rows = per_chunk.div_ceil(tw).max(1);
    let plan = Plan::new(
        tile_rows,
        conv.out,
        max_rows,
        1,
        rayon::current_num_threads(),
    );
    let kind = || format!("conv 3x3 stride 1 (Winograd) @{}", g.h);
    let macs = (conv.out * cols * conv.input * 9) as u64;
    profile::op(kind, macs, |parts| {
        let dst = Out::new(out);
        (0..plan.tasks()).into_par_iter().for_each(|t| {
            let Some(task) = plan.task(t) else { return };
            let (r0, r1) = (task.cols.start, task.cols.end);
            let (o0, rows) = (task.rows.start, task.rows.len());
            let tc = (r1 - r0) * (tw + 1);
            // The chunk's outputs: whole output rows, contiguous in each
            // channel row.
            let start = (r0 / th) * g.h * g.w + 2 * (r0 % th) * g.w;
            let last = r1 - 1;
            let end = (last / th) * g.h * g.w + (2 * (last % th) + 2).min(g.h) * g.w;
            SCRATCH.with_borrow_mut(|[v, m, t]| {
                let v = take(v, 16 * conv.input * tc);
                let m = take(m, 16 * rows * tc);
                // The transforms' rows (at most 12 (k + 1) (tw + 1)).
                let t = take(t, 12 * (r1 - r0 + 1) * (tw + 1));
                parts.time(Part::Columns, || {
                    transform_input(input, conv.input, g, r0, r1, v, t)
                });
                parts.time(Part::Gemm, || {
                    for x in 0..16 {
                        let lhs = View {
                            data: &u[(x * conv.out + o0) * conv.input..],
                            stride: conv.input,
                        };
                        let rhs = View {
                            data: &v[x * conv.input * tc..],
                            stride: tc,
                        };
                        multiply(
                            &mut m[x * rows * tc..][..rows * tc],
                            rows,
                            tc,
                            lhs,
                            rhs,
                            conv.input,
                        );
                    }
                });
                // SAFETY: tasks cover disjoint (channels, tile rows) rectangles.
                let mut rect = unsafe { dst.rows(o0 * cols + start, rows, end - start, cols) };
                parts.time(Part::Epilogue, || {
                    for r in 0..rows {
                        let y = rect.row(r);
                        transform_output(&m[r * tc..], rows * tc, g, r0, r1, start, y, t);
                        let o = o0 + r;
                        finish(epilogue, o, y, o * cols + start);
                    }
                });
            });
        });
    });
}

/// Calls `f(image, first tile row, tile rows, offset)` for each run of the
/// chunk's tile rows `r0 .. r1` inside one image; `offset` is the run's
/// first column in the chunk's `V` and `M` (a tile row takes `tw + 1`).
fn for_each_image(
    g: Geometry,
    r0: usize,
    r1: usize,
    mut f: impl FnMut(usize, usize, usize, usize),
) {
    let (th, tw) = tiles(g);
    let mut r = r0;
    while r < r1 {
        let (img, ty) = (r / th, r % th);
        let k = (th - ty).min(r1 - r);
        f(img, ty, k, (r - r0) * (tw + 1));
        r += k;
    }
}

/// `dst[f] = op(a[f], b[f])` over `dst`'s length.
#[inline(always)]
fn zip2(dst: &mut [f32], a: &[f32], b: &[f32], op: impl Fn(f32, f32) -> f32) {
    let (a, b) = (&a[..dst.len()], &b[..dst.len()]);
    for (i, d) in dst.iter_mut().enumerate() {
        *d = op(a[i], b[i]);
    }
}

/// `dst[f] = op(a[f], b[f], c[f])` over `dst`'s length.
#[inline(always)]
fn zip3(dst: &mut [f32], a: &[f32], b: &[f32], c: &[f32], op: impl Fn(f32, f32, f32) -> f32) {
    let (a, b, c) = (&a[..dst.len()], &b[..dst.len()], &c[..dst.len()]);
    for (i, d) in dst.iter_mut().enumerate() {
        *d = op(a[i], b[i], c[i]);
    }
}

/// Writes `V` (`16 x channels x tc`) for tile rows `r0 .. r1`. Every step
/// runs over all of an image's tile rows at once, for long vector loops:
/// a tile row's values lie `tw + 1` apart (the extra column is computed
/// and never read). Per channel and image: the padded input rows
/// `p[j] = row j - 1` that the tiles read, split into even and odd rows
/// and each into even and odd columns; transformed across (`d B`); then
/// down (`Bᵀ ·`), straight into `V`. `scratch`: `12 (k + 1) (tw + 1)`
/// values for `k` tile rows.
fn transform_input(
    input: &[f32],
    channels: usize,
    g: Geometry,
    r0: usize,
    r1: usize,
    v: &mut [f32],
    scratch: &mut [f32],
) {
    let (_, tw) = tiles(g);
    let tc = (r1 - r0) * (tw + 1);
    let s = tw + 1;
    for c in 0..channels {
        for_each_image(g, r0, r1, |img, ty0, k, at| {
            let plane = &input[c * g.cols() + img * g.h * g.w..][..g.h * g.w];
            let n = (k + 1) * s;
            let (split, across) = scratch[..12 * n].split_at_mut(4 * n);
            // split[(2 * row parity + column parity) * n + i * s + x]:
            // padded row 2 (ty0 + i) + row parity, column 2x + parity.
            for i in 0..=k {
                for parity in 0..2 {
                    let y = (2 * (ty0 + i) + parity) as isize - 1;
                    let (even, odd) = split[2 * parity * n + i * s..].split_at_mut(n);
                    let (even, odd) = (&mut even[..s], &mut odd[..s]);
                    if y < 0 || y as usize >= g.h {
                        even.fill(0.0);
                        odd.fill(0.0);
                        continue;
                    }
                    let line = &plane[y as usize * g.w..][..g.w];
                    // even[x] = p[2x] = line[2x - 1], odd[x] = line[2x]; the
                    // padding (even[0], and both past the line) is zero.
                    even[0] = 0.0;
                    even[g.w / 2 + 1..].fill(0.0);
                    odd[g.w.div_ceil(2)..].fill(0.0);
                    let pairs = line.chunks_exact(2);
                    if let [last] = pairs.remainder() {
                        odd[g.w / 2] = *last;
                    }
                    for ((pair, o), e) in pairs.zip(odd.iter_mut()).zip(&mut even[1..]) {
                        *o = pair[0];
                        *e = pair[1];
                    }
                }
            }
            // Across: tile x reads columns e[x], o[x], e[x + 1], o[x + 1].
            // across[(4 * row parity + component) * n + f].
            for parity in 0..2 {
                let e = &split[2 * parity * n..][..n];
                let o = &split[(2 * parity + 1) * n..][..n];
                let h = &mut across[4 * parity * n..][..4 * n];
                let m = n - 1;
                zip2(&mut h[..m], e, &e[1..], |x0, x2| x0 - x2);
                zip2(&mut h[n..n + m], o, &e[1..], |x1, x2| x1 + x2);
                zip2(&mut h[2 * n..2 * n + m], &e[1..], o, |x2, x1| x2 - x1);
                zip2(&mut h[3 * n..3 * n + m], o, &o[1..], |x1, x3| x1 - x3);
            }
            // Down: tile row i reads padded rows 2i (even i), 2i + 1 (odd
            // i), 2i + 2 (even i + 1), 2i + 3 (odd i + 1).
            let len = k * s;
            for j in 0..4 {
                let even = &across[j * n..][..n];
                let odd = &across[(4 + j) * n..][..n];
                let (d0, d1, d2, d3) = (even, odd, &even[s..], &odd[s..]);
                let to = |i: usize| ((i * 4 + j) * channels + c) * tc + at;
                zip2(&mut v[to(0)..][..len], d0, d2, |a, b| a - b);
                zip2(&mut v[to(1)..][..len], d1, d2, |a, b| a + b);
                zip2(&mut v[to(2)..][..len], d2, d1, |a, b| a - b);
                zip2(&mut v[to(3)..][..len], d1, d3, |a, b| a - b);
            }
        });
    }
}

/// One output channel: `m[ξ * stride + t]` holds `M_ξ` for column `t` of
/// the chunk (tile rows `r0 .. r1`); writes `Aᵀ M A` into `y`, the
/// channel's outputs from `start` on. `scratch`: `12 k (tw + 1)` values
/// for `k` tile rows.
#[allow(clippy::too_many_arguments)]
fn transform_output(
    m: &[f32],
    stride: usize,
    g: Geometry,
    r0: usize,
    r1: usize,
    start: usize,
    y: &mut [f32],
    scratch: &mut [f32],
) {
    let (_, tw) = tiles(g);
    let s = tw + 1;
    for_each_image(g, r0, r1, |img, ty0, k, at| {
        let n = k * s;
        let (down, lines) = scratch[..12 * n].split_at_mut(8 * n);
        let e = |i: usize, j: usize| &m[(i * 4 + j) * stride + at..][..n];
        // Aᵀ = [1 1 1 0; 0 1 -1 -1]: down (rows 0 and 1 of Aᵀ M) ...
        for j in 0..4 {
            let (m0, m1, m2, m3) = (e(0, j), e(1, j), e(2, j), e(3, j));
            let (a, b) = down[2 * j * n..][..2 * n].split_at_mut(n);
            zip3(a, m0, m1, m2, |x, y, z| x + y + z);
            zip3(b, m1, m2, m3, |x, y, z| x - y - z);
        }
        // ... then across, into each tile row's two output lines.
        for (row, line) in lines.chunks_exact_mut(2 * n).enumerate() {
            let d = |j: usize| &down[(2 * j + row) * n..][..n];
            let (d0, d1, d2, d3) = (d(0), d(1), d(2), d(3));
            for (x, pair) in line.chunks_exact_mut(2).enumerate() {
                pair[0] = d0[x] + d1[x] + d2[x];
                pair[1] = d1[x] - d2[x] - d3[x];
            }
        }
        let (line0, line1) = lines.split_at(2 * n);
        for i in 0..k {
            let oy = 2 * (ty0 + i);
            let top = img * g.h * g.w + oy * g.w - start;
            y[top..top + g.w].copy_from_slice(&line0[2 * i * s..][..g.w]);
            if oy + 1 < g.h {
                y[top + g.w..top + 2 * g.w].copy_from_slice(&line1[2 * i * s..][..g.w]);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fast::conv::Prologue;

    /// A convolution with weights and inputs from a small formula.
    fn conv(input: usize, out: usize) -> Conv {
        let weight = (0..out * input * 9)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        Conv::new(out, input, 3, 1, 1, weight)
    }

    #[test]
    fn winograd_matches_im2col_with_every_epilogue() {
        for (n, h, w, input, out) in [
            (1, 7, 7, 8, 16),
            (2, 5, 9, 3, 40),
            (3, 14, 13, 17, 8),
            (1, 1, 1, 4, 4),
            (2, 2, 3, 5, 7),
            (1, 56, 56, 64, 32),
        ] {
            let c = conv(input, out);
            let g = Geometry { n, h, w };
            let x: Vec<f32> = (0..input * g.cols())
                .map(|i| ((i * 53 % 97) as f32 - 48.0) / 10.0)
                .collect();
            let residual: Vec<f32> = (0..out * g.cols()).map(|i| (i % 7) as f32 - 3.0).collect();
            let bias: Vec<f32> = (0..out).map(|o| o as f32 * 0.1 - 1.0).collect();
            for epilogue in [
                Epilogue::None,
                Epilogue::Bias {
                    bias: &bias,
                    residual: Some(&residual),
                    relu: true,
                },
            ] {
                let mut direct = vec![f32::NAN; out * g.cols()];
                c.run_im2col(&x, g, Prologue::None, &mut direct, epilogue);
                let mut fast = vec![f32::NAN; out * g.cols()];
                run(&c, &transform_weights(&c), &x, g, &mut fast, epilogue);
                let scale = direct.iter().fold(0f32, |a, v| a.max(v.abs()));
                for (i, (a, b)) in fast.iter().zip(&direct).enumerate() {
                    assert!(
                        (a - b).abs() <= 1e-5 * scale,
                        "{n}x{h}x{w} {input}->{out} at {i}: {a} against {b}"
                    );
                }
            }
        }
    }
}
