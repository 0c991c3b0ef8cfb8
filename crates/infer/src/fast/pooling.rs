//! Pooling on channel-major maps.

use rayon::prelude::*;

use super::profile;
use super::{Geometry, Maps};

/// The geometry `max_3x3_s2` produces from `g`.
pub(crate) fn max_3x3_s2_output(g: Geometry) -> Geometry {
    Geometry {
        n: g.n,
        h: (g.h - 1) / 2 + 1,
        w: (g.w - 1) / 2 + 1,
    }
}

/// MaxPool(3, stride 2, padding 1), the DenseNet and ResNet stems, into
/// `out` (`channels x output cols`).
pub(crate) fn max_3x3_s2(x: &Maps, out: &mut [f32]) {
    let g = x.g;
    let og = max_3x3_s2_output(g);
    let (plane, oplane) = (g.h * g.w, og.h * og.w);
    assert_eq!(out.len(), x.channels * og.cols());
    profile::op(
        || "max pool 3x3 stride 2".into(),
        0,
        |_| {
            out.par_chunks_mut(oplane)
                .zip(x.data.par_chunks(plane))
                .for_each_init(Vec::new, |rows, (o, p)| {
                    for oy in 0..og.h {
                        // The max of the (up to) three input rows, then of three
                        // neighbours along it: both passes run along rows.
                        let ys = (2 * oy).saturating_sub(1)..(2 * oy + 2).min(g.h);
                        rows.clear();
                        rows.extend_from_slice(&p[ys.start * g.w..][..g.w]);
                        for y in ys.start + 1..ys.end {
                            for (m, v) in rows.iter_mut().zip(&p[y * g.w..][..g.w]) {
                                *m = m.max(*v);
                            }
                        }
                        for (ox, m) in o[oy * og.w..][..og.w].iter_mut().enumerate() {
                            let x = 2 * ox;
                            let left = rows[x.saturating_sub(1)];
                            let right = rows[(x + 1).min(g.w - 1)];
                            *m = rows[x].max(left).max(right);
                        }
                    }
                })
        },
    );
}
