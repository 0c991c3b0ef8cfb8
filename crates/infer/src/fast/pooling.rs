//! Pooling on channel-major maps.

use rayon::prelude::*;

use super::profile;
use super::{Geometry, Maps};

/// MaxPool(3, stride 2, padding 1), the DenseNet and ResNet stems, into
/// `out` (`channels x output cols`); returns the output geometry.
pub(crate) fn max_3x3_s2(x: &Maps, out: &mut [f32]) -> Geometry {
    let g = x.g;
    let og = Geometry {
        n: g.n,
        h: (g.h - 1) / 2 + 1,
        w: (g.w - 1) / 2 + 1,
    };
    let (plane, oplane) = (g.h * g.w, og.h * og.w);
    assert_eq!(out.len(), x.channels * og.cols());
    profile::op(
        || "max pool 3x3 stride 2".into(),
        0,
        |_| {
            out.par_chunks_mut(oplane)
                .zip(x.data.par_chunks(plane))
                .for_each(|(o, p)| {
                    for oy in 0..og.h {
                        let ys = (2 * oy).saturating_sub(1)..(2 * oy + 2).min(g.h);
                        for ox in 0..og.w {
                            let xs = (2 * ox).saturating_sub(1)..(2 * ox + 2).min(g.w);
                            let mut m = f32::NEG_INFINITY;
                            for y in ys.clone() {
                                for v in &p[y * g.w + xs.start..y * g.w + xs.end] {
                                    m = m.max(*v);
                                }
                            }
                            o[oy * og.w + ox] = m;
                        }
                    }
                })
        },
    );
    og
}
