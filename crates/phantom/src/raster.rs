//! Drawing on a pixel grid in millimetres: the grid, strokes along
//! polylines, blurs and smooth noise.

/// A pixel grid over the detector: `columns x rows` pixels of `pitch` mm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    pub columns: usize,
    pub rows: usize,
    pub pitch: f64,
}

impl Grid {
    /// The grid covering `width_mm x height_mm` at `pitch` mm.
    pub fn covering(width_mm: f64, height_mm: f64, pitch: f64) -> Grid {
        Grid {
            columns: (width_mm / pitch).round().max(1.0) as usize,
            rows: (height_mm / pitch).round().max(1.0) as usize,
            pitch,
        }
    }

    pub fn len(&self) -> usize {
        self.columns * self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The centre of pixel (column, row), in mm.
    pub fn centre(&self, column: usize, row: usize) -> (f64, f64) {
        (
            (column as f64 + 0.5) * self.pitch,
            (row as f64 + 0.5) * self.pitch,
        )
    }

    /// Pixels whose centres lie within the box (mm), clipped to the grid:
    /// (first column, end column, first row, end row).
    pub fn span(&self, x0: f64, x1: f64, y0: f64, y1: f64) -> (usize, usize, usize, usize) {
        let clip = |v: f64, n: usize| ((v / self.pitch - 0.5).max(0.0) as usize).min(n);
        let c0 = clip(x0, self.columns);
        let c1 = (clip(x1, self.columns) + 2).min(self.columns);
        let r0 = clip(y0, self.rows);
        let r1 = (clip(y1, self.rows) + 2).min(self.rows);
        (c0, c1, r0, r1)
    }
}

pub fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// Path length (in cm) through a cylinder of radius `r` mm at distance `d`
/// mm from its axis.
pub fn chord_cm(r: f64, d: f64) -> f64 {
    if d >= r {
        0.0
    } else {
        0.2 * (r * r - d * d).sqrt()
    }
}

fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (qx, qy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    ((qx * qx + qy * qy).sqrt(), t)
}

/// Draw a tube along a polyline (image mm coordinates) whose radius runs
/// linearly from `r0` to `r1` along its length: each pixel gets
/// `profile(distance, radius)` from the nearest point, combined by max so
/// joints are not counted twice.
pub fn stroke(
    grid: &Grid,
    buf: &mut [f32],
    points: &[(f64, f64)],
    r0: f64,
    r1: f64,
    profile: impl Fn(f64, f64) -> f64,
) {
    if points.len() < 2 {
        return;
    }
    let rmax = r0.max(r1);
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for p in points {
        x0 = x0.min(p.0);
        x1 = x1.max(p.0);
        y0 = y0.min(p.1);
        y1 = y1.max(p.1);
    }
    let (c0, c1, rr0, rr1) = grid.span(x0 - rmax, x1 + rmax, y0 - rmax, y1 + rmax);
    let segments = points.len() - 1;
    for row in rr0..rr1 {
        for col in c0..c1 {
            let p = grid.centre(col, row);
            let mut best = (f64::MAX, 0.0);
            for (i, w) in points.windows(2).enumerate() {
                let (d, t) = segment_distance(p, w[0], w[1]);
                if d < best.0 {
                    best = (d, (i as f64 + t) / segments as f64);
                }
            }
            let r = r0 + (r1 - r0) * best.1;
            if best.0 < r {
                let v = profile(best.0, r) as f32;
                let cell = &mut buf[row * grid.columns + col];
                *cell = cell.max(v);
            }
        }
    }
}

/// A Gaussian blur of standard deviation `sigma` pixels, as three box
/// blurs (constant cost per pixel whatever the radius).
pub fn blur(data: &[f32], columns: usize, rows: usize, sigma: f64) -> Vec<f32> {
    let radius = (((4.0 * sigma * sigma + 1.0).sqrt() - 1.0) / 2.0).round() as usize;
    let mut a = data.to_vec();
    if radius == 0 {
        return a;
    }
    let mut b = vec![0f32; a.len()];
    for _ in 0..3 {
        box_pass(&a, &mut b, columns, rows, radius, true);
        box_pass(&b, &mut a, columns, rows, radius, false);
    }
    a
}

fn box_pass(src: &[f32], dst: &mut [f32], columns: usize, rows: usize, r: usize, horizontal: bool) {
    let (lines, len, stride, step) = if horizontal {
        (rows, columns, columns, 1)
    } else {
        (columns, rows, 1, columns)
    };
    let width = (2 * r + 1) as f64;
    for line in 0..lines {
        let base = line * stride;
        let at = |i: isize| src[base + (i.clamp(0, len as isize - 1) as usize) * step] as f64;
        let mut sum: f64 = (-(r as isize)..=r as isize).map(at).sum();
        for i in 0..len {
            dst[base + i * step] = (sum / width) as f32;
            sum += at(i as isize + r as isize + 1) - at(i as isize - r as isize);
        }
    }
}

/// Smooth value noise in [0, 1] at (x, y) in lattice units.
pub fn value_noise(seed: u64, x: f64, y: f64) -> f64 {
    let (xi, yi) = (x.floor(), y.floor());
    let (fx, fy) = (x - xi, y - yi);
    let h = |i: f64, j: f64| {
        let mut z = seed
            ^ (i as i64 as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
            ^ (j as i64 as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let s = |t: f64| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(fx), s(fy));
    let top = h(xi, yi) * (1.0 - sx) + h(xi + 1.0, yi) * sx;
    let bottom = h(xi, yi + 1.0) * (1.0 - sx) + h(xi + 1.0, yi + 1.0) * sx;
    top * (1.0 - sy) + bottom * sy
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blur_keeps_the_mean_and_spreads_a_point() {
        let mut d = vec![0f32; 41 * 41];
        d[20 * 41 + 20] = 1.0;
        let b = blur(&d, 41, 41, 3.0);
        let sum: f32 = b.iter().sum();
        assert!((sum - 1.0).abs() < 1e-3, "{sum}");
        assert!(b[20 * 41 + 20] < 0.05 && b[20 * 41 + 23] > 0.0);
    }

    #[test]
    fn stroke_draws_along_the_line_only() {
        let g = Grid::covering(20.0, 20.0, 1.0);
        let mut buf = vec![0f32; g.len()];
        stroke(
            &g,
            &mut buf,
            &[(2.0, 10.0), (18.0, 10.0)],
            2.0,
            2.0,
            |_, _| 1.0,
        );
        assert_eq!(buf[10 * 20 + 10], 1.0);
        assert_eq!(buf[2 * 20 + 10], 0.0);
    }
}
