//! Centre crops and resizes: area averaging (the project's own), and
//! torchxrayvision's defaults (its `XRayCenterCrop` and the scikit-image
//! resize its `XRayResizer` uses), reproduced so imported models see what
//! they were trained on.

/// The largest centred square of an `h` x `w` plane: (top, left, side).
/// Odd margins put the extra row or column after the crop.
pub fn centre_crop(h: usize, w: usize) -> (usize, usize, usize) {
    let side = h.min(w);
    ((h - side) / 2, (w - side) / 2, side)
}

/// torchxrayvision's `XRayCenterCrop`: the largest square, starting at
/// `h / 2 - side / 2` (integer halves), which is one row or column earlier
/// than [`centre_crop`] when that dimension is even and the side odd.
pub fn xrv_centre_crop(h: usize, w: usize) -> (usize, usize, usize) {
    let side = h.min(w);
    (h / 2 - side / 2, w / 2 - side / 2, side)
}

/// scikit-image's `transform.resize(image, shape, order=1, mode="constant",
/// preserve_range=True)` of a float32 plane, as torchxrayvision's default
/// `XRayResizer` calls it: when shrinking, scipy's `gaussian_filter` with
/// sigma `max(0, (factor - 1) / 2)` per axis (kernel truncated at 4 sigma,
/// zeros beyond the edges), then scipy's `zoom` with `grid_mode`: linear
/// interpolation at `(o + 0.5) * factor - 0.5`, zero where that falls
/// outside the input. Each pass is computed in f64 and stored as f32, as
/// scipy does on a float32 image.
pub fn skimage_resize(src: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    assert_eq!(src.len(), h * w, "plane size");
    let (fy, fx) = (h as f64 / out_h as f64, w as f64 / out_w as f64);
    let mut plane = src.to_vec();
    if out_h < h || out_w < w {
        // Rows (axis 0), then columns (axis 1), as gaussian_filter runs.
        plane = gaussian_axis(&plane, h, w, (fy - 1.0).max(0.0) / 2.0, true);
        plane = gaussian_axis(&plane, h, w, (fx - 1.0).max(0.0) / 2.0, false);
    }
    let ys = linear_taps(h, out_h, fy);
    let xs = linear_taps(w, out_w, fx);
    let mut out = vec![0f32; out_h * out_w];
    for (oy, ty) in ys.iter().enumerate() {
        for (ox, tx) in xs.iter().enumerate() {
            let mut v = 0f64;
            for &(y, wy) in ty {
                for &(x, wx) in tx {
                    v += wy * wx * plane[y * w + x] as f64;
                }
            }
            out[oy * out_w + ox] = v as f32;
        }
    }
    out
}

/// scipy's 1-D Gaussian correlation along one axis of an `h` x `w` plane
/// (mode "constant", cval 0, truncate 4); sigma 0 leaves it unchanged.
fn gaussian_axis(src: &[f32], h: usize, w: usize, sigma: f64, rows: bool) -> Vec<f32> {
    if sigma <= 1e-15 {
        return src.to_vec();
    }
    let radius = (4.0 * sigma + 0.5) as usize;
    let kernel: Vec<f64> = {
        let k: Vec<f64> = (0..=2 * radius)
            .map(|i| {
                let x = i as f64 - radius as f64;
                (-0.5 / (sigma * sigma) * x * x).exp()
            })
            .collect();
        let sum: f64 = k.iter().sum();
        k.iter().map(|v| v / sum).collect()
    };
    let (n, lines, stride, step) = if rows { (h, w, 1, w) } else { (w, h, w, 1) };
    let mut out = vec![0f32; src.len()];
    for line in 0..lines {
        let base = line * stride;
        for i in 0..n {
            let mut acc = 0f64;
            for (k, &kw) in kernel.iter().enumerate() {
                let j = i as isize + k as isize - radius as isize;
                if j >= 0 && (j as usize) < n {
                    acc += kw * src[base + j as usize * step] as f64;
                }
            }
            out[base + i * step] = acc as f32;
        }
    }
    out
}

/// For each of `n_out` samples, the input samples and weights of linear
/// interpolation at `(o + 0.5) * factor - 0.5` (none outside the input).
fn linear_taps(n_in: usize, n_out: usize, factor: f64) -> Vec<Vec<(usize, f64)>> {
    if n_in == 0 {
        return vec![Vec::new(); n_out];
    }
    (0..n_out)
        .map(|o| {
            let x = (o as f64 + 0.5) * factor - 0.5;
            if x < 0.0 || x > (n_in - 1) as f64 {
                return Vec::new();
            }
            let i = x.floor() as usize;
            let t = x - i as f64;
            if i + 1 < n_in && t > 0.0 {
                vec![(i, 1.0 - t), (i + 1, t)]
            } else {
                vec![(i, 1.0)]
            }
        })
        .collect()
}

/// Weights mapping `n_in` samples onto `n_out` by area averaging: each
/// output sample is the mean of the input interval it covers, with partial
/// weight for partly covered samples (the box filter of PIL and OpenCV's
/// INTER_AREA when shrinking; when enlarging it degenerates to nearest
/// neighbour over fractional boxes).
fn weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let start = o as f64 * scale;
            let end = (o + 1) as f64 * scale;
            let mut w = Vec::new();
            let first = start.floor() as usize;
            let last = (end.ceil() as usize).min(n_in);
            for i in first..last {
                let lo = start.max(i as f64);
                let hi = end.min(i as f64 + 1.0);
                if hi > lo {
                    w.push((i, (hi - lo) / scale));
                }
            }
            w
        })
        .collect()
}

/// Area-resize a row-major `h` x `w` plane to `out_h` x `out_w`.
pub fn area_resize(src: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    assert_eq!(src.len(), h * w, "plane size");
    area_resize_with(h, w, out_h, out_w, |y, x| src[y * w + x] as f64)
}

/// Area-resize an `h` x `w` region read sample by sample (`sample(y, x)`,
/// relative to the region), so a crop of a larger image or of 8-bit
/// display values is resized without being copied first. Rows are
/// resized one at a time (f64 accumulation) and added into the output
/// rows they cover, in the order of the input rows: no `h` x `out_w`
/// intermediate plane.
pub(crate) fn area_resize_with(
    h: usize,
    w: usize,
    out_h: usize,
    out_w: usize,
    sample: impl Fn(usize, usize) -> f64,
) -> Vec<f32> {
    let wx = weights(w, out_w);
    // For each input row, the output rows it covers and its weight there.
    let mut covers: Vec<Vec<(usize, f64)>> = vec![Vec::new(); h];
    for (oy, ws) in weights(h, out_h).into_iter().enumerate() {
        for (i, k) in ws {
            covers[i].push((oy, k));
        }
    }
    let mut acc = vec![0f64; out_h * out_w];
    let mut row = vec![0f64; out_w];
    for (y, cover) in covers.iter().enumerate() {
        if cover.is_empty() {
            continue;
        }
        for (r, ws) in row.iter_mut().zip(&wx) {
            *r = ws.iter().map(|&(x, k)| sample(y, x) * k).sum();
        }
        for &(oy, k) in cover {
            for (a, r) in acc[oy * out_w..(oy + 1) * out_w].iter_mut().zip(&row) {
                *a += r * k;
            }
        }
    }
    acc.into_iter().map(|v| v as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_blocks() {
        let src: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let out = area_resize(&src, 4, 4, 2, 2);
        assert_eq!(out, vec![2.5, 4.5, 10.5, 12.5]);
    }

    #[test]
    fn fractional_boxes_keep_the_mean() {
        let src: Vec<f32> = (0..49).map(|v| (v * 7 % 11) as f32).collect();
        let out = area_resize(&src, 7, 7, 3, 3);
        let mean_in: f32 = src.iter().sum::<f32>() / 49.0;
        let mean_out: f32 = out.iter().sum::<f32>() / 9.0;
        assert!((mean_in - mean_out).abs() < 1e-4);
    }

    #[test]
    fn identity_and_crop() {
        let src: Vec<f32> = (0..6).map(|v| v as f32).collect();
        assert_eq!(area_resize(&src, 2, 3, 2, 3), src);
        assert_eq!(centre_crop(5, 8), (0, 1, 5));
        assert_eq!(centre_crop(9, 4), (2, 0, 4));
        // XRayCenterCrop: one earlier when the length is even, the side odd.
        assert_eq!(xrv_centre_crop(100, 51), (25, 0, 51));
        assert_eq!(centre_crop(100, 51), (24, 0, 51));
        assert_eq!(xrv_centre_crop(9, 4), (2, 0, 4));
    }

    #[test]
    fn skimage_resize_keeps_a_constant_inside_and_darkens_its_edges() {
        // A constant plane: the interior stays (the Gaussian sums to one),
        // the edges take in the zeros beyond the border, as skimage does.
        let src = vec![100f32; 64 * 64];
        let out = skimage_resize(&src, 64, 64, 8, 8);
        assert!((out[3 * 8 + 3] - 100.0).abs() < 1e-3, "{}", out[3 * 8 + 3]);
        assert!(out[0] < 99.0, "{}", out[0]);
        // Same size: no filter, interpolation at the samples themselves.
        let ramp: Vec<f32> = (0..12).map(|v| v as f32).collect();
        assert_eq!(skimage_resize(&ramp, 3, 4, 3, 4), ramp);
        // An empty plane gives zeros, not a panic.
        assert_eq!(skimage_resize(&[], 0, 0, 2, 2), vec![0.0; 4]);
    }
}
