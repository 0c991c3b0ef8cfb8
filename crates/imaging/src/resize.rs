//! Centre crop and area-averaging resize.

/// The largest centred square of an `h` x `w` plane: (top, left, side).
/// Odd margins put the extra row or column after the crop.
pub fn centre_crop(h: usize, w: usize) -> (usize, usize, usize) {
    let side = h.min(w);
    ((h - side) / 2, (w - side) / 2, side)
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
    let wx = weights(w, out_w);
    let wy = weights(h, out_h);
    // Rows first (h x out_w), then columns; f64 accumulation.
    let mut tmp = vec![0f64; h * out_w];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for (ox, ws) in wx.iter().enumerate() {
            tmp[y * out_w + ox] = ws.iter().map(|&(i, k)| row[i] as f64 * k).sum();
        }
    }
    let mut out = vec![0f32; out_h * out_w];
    for (oy, ws) in wy.iter().enumerate() {
        for ox in 0..out_w {
            out[oy * out_w + ox] = ws
                .iter()
                .map(|&(i, k)| tmp[i * out_w + ox] * k)
                .sum::<f64>() as f32;
        }
    }
    out
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
    }
}
