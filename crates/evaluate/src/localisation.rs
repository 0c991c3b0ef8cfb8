//! Heatmap localisation against ground-truth masks: the pointing game.
//!
//! For each image that has a finding and its mask, the class activation
//! map's strongest cell is a *hit* when the mask covers any part of that
//! cell (the image region the cell stands for). The hit rate is reported
//! with a Wilson 95 % interval beside the rate a cell drawn at random would
//! reach (the share of cells the mask touches, averaged over the images),
//! so a coarse map that merely covers a large finding is not mistaken for
//! localisation. Fong & Vedaldi's variant of Zhang et al.'s pointing game,
//! with the map's own cells as the tolerance.

use serde::Serialize;

/// One image's evidence: which cells of the map the mask touches, and the
/// map itself (both `height x width`, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct Pointing<'a> {
    pub map: &'a [f32],
    pub touched: &'a [bool],
}

/// One label's pointing game.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointingGame {
    pub label: String,
    /// Images with the finding and a mask.
    pub images: usize,
    pub hits: usize,
    pub hit_rate: Option<f64>,
    pub hit_rate_ci95: Option<(f64, f64)>,
    /// The expected hit rate of a cell drawn at random.
    pub chance: Option<f64>,
}

/// Whether the map's strongest cell (the first on a tie) is touched.
pub fn hit(p: &Pointing) -> bool {
    let best = p
        .map
        .iter()
        .enumerate()
        .fold(None::<(usize, f32)>, |b, (i, &v)| match b {
            Some((_, bv)) if bv >= v => b,
            _ if v.is_nan() => b,
            _ => Some((i, v)),
        });
    best.is_some_and(|(i, _)| p.touched.get(i).copied().unwrap_or(false))
}

/// The pointing game over a label's images.
pub fn pointing_game(label: &str, images: &[Pointing]) -> PointingGame {
    let n = images.len();
    let hits = images.iter().filter(|p| hit(p)).count();
    let chance = (n > 0).then(|| {
        images
            .iter()
            .map(|p| {
                p.touched.iter().filter(|&&t| t).count() as f64 / p.touched.len().max(1) as f64
            })
            .sum::<f64>()
            / n as f64
    });
    PointingGame {
        label: label.to_string(),
        images: n,
        hits,
        hit_rate: (n > 0).then(|| hits as f64 / n as f64),
        hit_rate_ci95: wilson(hits, n),
        chance,
    }
}

/// Which cells of a `height x width` map a mask touches. The map covers
/// the square `side x side` region of the image at (`top`, `left`); the
/// mask is the whole image, `columns` wide.
pub fn touched_cells(
    mask: &[bool],
    columns: usize,
    (top, left, side): (usize, usize, usize),
    height: usize,
    width: usize,
) -> Vec<bool> {
    let mut touched = vec![false; height * width];
    if side == 0 || height == 0 || width == 0 {
        return touched;
    }
    for y in 0..side {
        let row = (top + y) * columns + left;
        let Some(line) = mask.get(row..row + side) else {
            break;
        };
        let cy = y * height / side;
        for (x, &m) in line.iter().enumerate() {
            if m {
                touched[cy * width + x * width / side] = true;
            }
        }
    }
    touched
}

/// Wilson score interval for a proportion, 95 %.
pub fn wilson(successes: usize, n: usize) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (z, n, p) = (1.959964, n as f64, successes as f64 / n as f64);
    let centre = (p + z * z / (2.0 * n)) / (1.0 + z * z / n);
    let half = z / (1.0 + z * z / n) * (p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt();
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_strongest_cell_must_be_touched() {
        let touched = [false, true, false, false];
        assert!(hit(&Pointing {
            map: &[0.1, 0.9, 0.2, 0.3],
            touched: &touched
        }));
        assert!(!hit(&Pointing {
            map: &[0.1, 0.2, 0.2, 0.3],
            touched: &touched
        }));
        // Ties go to the first cell; NaN never wins.
        assert!(!hit(&Pointing {
            map: &[0.5, 0.5, 0.0, 0.0],
            touched: &touched
        }));
        assert!(hit(&Pointing {
            map: &[f32::NAN, 0.5, 0.0, 0.0],
            touched: &touched
        }));
    }

    #[test]
    fn a_game_reports_hits_beside_chance() {
        let t1 = [true, false, false, false];
        let t2 = [true, true, false, false];
        let g = pointing_game(
            "Effusion",
            &[
                Pointing {
                    map: &[1.0, 0.0, 0.0, 0.0],
                    touched: &t1,
                },
                Pointing {
                    map: &[0.0, 0.0, 0.0, 1.0],
                    touched: &t2,
                },
            ],
        );
        assert_eq!((g.images, g.hits, g.hit_rate), (2, 1, Some(0.5)));
        assert!((g.chance.unwrap() - 0.375).abs() < 1e-12);
        assert_eq!(pointing_game("x", &[]).hit_rate, None);
    }

    #[test]
    fn cells_follow_the_crop() {
        // A 4 x 6 image cropped to its centre 4 x 4 square (left 1), a
        // 2 x 2 map: the mask pixel at (3, 4) lies in the bottom-right
        // cell; the one at (0, 0) is outside the crop.
        let mut mask = vec![false; 24];
        mask[3 * 6 + 4] = true;
        mask[0] = true;
        assert_eq!(
            touched_cells(&mask, 6, (0, 1, 4), 2, 2),
            vec![false, false, false, true]
        );
    }

    #[test]
    fn wilson_matches_a_known_interval() {
        // 8 of 10: 0.4902 - 0.9433 (Wilson, 95 %).
        let (lo, hi) = wilson(8, 10).unwrap();
        assert!(
            (lo - 0.4902).abs() < 1e-3 && (hi - 0.9433).abs() < 1e-3,
            "{lo} {hi}"
        );
        assert_eq!(wilson(0, 0), None);
    }
}
