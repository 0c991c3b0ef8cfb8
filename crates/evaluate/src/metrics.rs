//! Binary classification metrics over scores and labels.

/// Area under the ROC curve (the Mann-Whitney statistic, ties counted
/// half); `None` without both a positive and a negative.
pub fn auroc(scores: &[f32], truth: &[bool]) -> Option<f64> {
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(truth.iter().copied()).collect();
    let positives = pairs.iter().filter(|p| p.1).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the positives' mid-ranks.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < pairs.len() {
        let mut j = i;
        while j < pairs.len() && pairs[j].0 == pairs[i].0 {
            j += 1;
        }
        let mid = (i + j + 1) as f64 / 2.0;
        rank_sum += mid * pairs[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    let p = positives as f64;
    Some((rank_sum - p * (p + 1.0) / 2.0) / (p * negatives as f64))
}

/// ROC curve points (false positive rate, true positive rate), from (0, 0)
/// to (1, 1), one point per distinct score.
pub fn roc_curve(scores: &[f32], truth: &[bool]) -> Vec<(f64, f64)> {
    let mut pairs: Vec<(f32, bool)> = scores.iter().copied().zip(truth.iter().copied()).collect();
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = pairs.iter().filter(|p| p.1).count().max(1) as f64;
    let negatives = pairs.iter().filter(|p| !p.1).count().max(1) as f64;
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut points = vec![(0.0, 0.0)];
    let mut i = 0;
    while i < pairs.len() {
        let s = pairs[i].0;
        while i < pairs.len() && pairs[i].0 == s {
            if pairs[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        points.push((fp / negatives, tp / positives));
    }
    points
}

/// Counts at an operating threshold (score >= threshold is positive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Confusion {
    pub tp: usize,
    pub fp: usize,
    pub tn: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (a + b > 0).then(|| a as f64 / (a + b) as f64)
}

impl Confusion {
    pub fn at(scores: &[f32], truth: &[bool], threshold: f32) -> Confusion {
        let mut c = Confusion::default();
        for (&s, &t) in scores.iter().zip(truth) {
            match (s >= threshold, t) {
                (true, true) => c.tp += 1,
                (true, false) => c.fp += 1,
                (false, false) => c.tn += 1,
                (false, true) => c.fn_ += 1,
            }
        }
        c
    }

    pub fn sensitivity(&self) -> Option<f64> {
        ratio(self.tp, self.fn_)
    }

    pub fn specificity(&self) -> Option<f64> {
        ratio(self.tn, self.fp)
    }

    pub fn ppv(&self) -> Option<f64> {
        ratio(self.tp, self.fp)
    }

    pub fn npv(&self) -> Option<f64> {
        ratio(self.tn, self.fn_)
    }
}

/// The operating threshold for a target sensitivity, as chosen on a
/// validation set: among thresholds whose sensitivity reaches `target`,
/// those with the best specificity, and of those the one that keeps the
/// most positives: midway between the highest negative score below the
/// positives it keeps and the lowest positive score above it. (Simply
/// taking the target-quantile positive score gives away sensitivity for
/// nothing when the classes separate well.)
pub fn threshold_for_sensitivity(scores: &[f32], truth: &[bool], target: f64) -> Option<f32> {
    let mut pos: Vec<f32> = scores
        .iter()
        .zip(truth)
        .filter(|(_, &t)| t)
        .map(|(&s, _)| s)
        .collect();
    if pos.is_empty() {
        return None;
    }
    pos.sort_by(|a, b| b.total_cmp(a));
    let needed = ((target * pos.len() as f64).ceil() as usize).clamp(1, pos.len());
    let at_target = pos[needed - 1];
    // The highest negative below the target threshold: every threshold in
    // (that negative, at_target] has the same specificity.
    let below = scores
        .iter()
        .zip(truth)
        .filter(|(&s, &t)| !t && s < at_target)
        .map(|(&s, _)| s)
        .fold(f32::NEG_INFINITY, f32::max);
    let lowest_kept = pos
        .iter()
        .copied()
        .filter(|&s| s > below)
        .fold(f32::INFINITY, f32::min);
    Some(if below.is_finite() {
        (below + lowest_kept) / 2.0
    } else {
        lowest_kept / 2.0
    })
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Bin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    pub mean_predicted: f64,
    pub fraction_positive: f64,
}

/// Expected calibration error over `bins` equal-width bins of the
/// predicted probability, and the non-empty bins.
pub fn calibration(scores: &[f32], truth: &[bool], bins: usize) -> (f64, Vec<Bin>) {
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&s, &t) in scores.iter().zip(truth) {
        let b = ((s.clamp(0.0, 1.0) as f64 * bins as f64) as usize).min(bins - 1);
        sums[b].0 += 1;
        sums[b].1 += s as f64;
        sums[b].2 += t as usize;
    }
    let n = scores.len().max(1) as f64;
    let mut ece = 0.0;
    let mut out = Vec::new();
    for (b, &(count, sum, pos)) in sums.iter().enumerate() {
        if count == 0 {
            continue;
        }
        let mean = sum / count as f64;
        let frac = pos as f64 / count as f64;
        ece += count as f64 / n * (mean - frac).abs();
        out.push(Bin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            count,
            mean_predicted: mean,
            fraction_positive: frac,
        });
    }
    (ece, out)
}

/// A 95 % percentile bootstrap interval of AUROC: `rounds` resamples with
/// replacement, from a seeded generator so a report is reproducible.
pub fn auroc_interval(
    scores: &[f32],
    truth: &[bool],
    rounds: usize,
    seed: u64,
) -> Option<(f64, f64)> {
    auroc(scores, truth)?;
    let n = scores.len();
    let mut state = seed | 1;
    let mut next = move || {
        // xorshift64*: plenty for resampling indices.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let mut values = Vec::with_capacity(rounds);
    let mut s = vec![0f32; n];
    let mut t = vec![false; n];
    for _ in 0..rounds {
        for k in 0..n {
            let i = (next() % n as u64) as usize;
            s[k] = scores[i];
            t[k] = truth[i];
        }
        if let Some(a) = auroc(&s, &t) {
            values.push(a);
        }
    }
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    Some((at(0.025), at(0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_matches_pair_counting() {
        let s = [0.1, 0.4, 0.35, 0.8, 0.4];
        let t = [false, false, true, true, true];
        // Pairs (pos, neg): (0.35,0.1)=1 (0.35,0.4)=0 (0.8,*)=2 (0.4,0.1)=1 (0.4,0.4)=0.5
        assert!((auroc(&s, &t).unwrap() - 4.5 / 6.0).abs() < 1e-12);
        assert_eq!(auroc(&s, &[true; 5]), None);
        let roc = roc_curve(&s, &t);
        assert_eq!(roc.first(), Some(&(0.0, 0.0)));
        assert_eq!(roc.last(), Some(&(1.0, 1.0)));
    }

    #[test]
    fn operating_point_and_calibration() {
        let s = [0.9, 0.8, 0.7, 0.2, 0.1];
        let t = [true, true, false, true, false];
        // 60 % sensitivity needs 0.8; no negative lies between 0.8 and the
        // 0.7 negative, so the threshold sits midway: 0.75.
        let th = threshold_for_sensitivity(&s, &t, 0.6).unwrap();
        assert!((th - 0.75).abs() < 1e-6, "{th}");
        // Separable classes: the threshold keeps every positive.
        let sep =
            threshold_for_sensitivity(&[0.9, 0.6, 0.2, 0.1], &[true, true, false, false], 0.5)
                .unwrap();
        assert!((sep - 0.4).abs() < 1e-6, "{sep}");
        let c = Confusion::at(&s, &t, th);
        assert_eq!((c.tp, c.fp, c.tn, c.fn_), (2, 0, 2, 1));
        assert_eq!(c.ppv(), Some(1.0));
        let (ece, bins) = calibration(&[0.05, 0.95], &[false, true], 10);
        assert!((ece - 0.05).abs() < 1e-6 && bins.len() == 2);
    }

    /// The bootstrap interval against the Hanley-McNeil normal
    /// approximation on a sample whose AUROC is known in closed form; a
    /// separable sample has no spread at all.
    #[test]
    fn auroc_interval_matches_the_normal_approximation() {
        // 200 negatives scored i/200, 200 positives scored i/200 + 0.3:
        // AUROC = 1 - 0.7^2 / 2 = 0.755 (ties count half).
        let n = 200;
        let mut s: Vec<f32> = (0..n).map(|i| i as f32 / n as f32).collect();
        s.extend((0..n).map(|i| i as f32 / n as f32 + 0.3));
        let t: Vec<bool> = (0..2 * n).map(|i| i >= n).collect();
        let a = auroc(&s, &t).unwrap();
        assert!((a - 0.755).abs() < 2e-3, "{a}");
        let (q1, q2) = (a / (2.0 - a), 2.0 * a * a / (1.0 + a));
        let nf = n as f64;
        let se = ((a * (1.0 - a) + (nf - 1.0) * (q1 - a * a) + (nf - 1.0) * (q2 - a * a))
            / (nf * nf))
            .sqrt();
        let (lo, hi) = auroc_interval(&s, &t, 1000, 7).unwrap();
        assert!(lo < a && a < hi, "{lo} {a} {hi}");
        let width = hi - lo;
        let expected = 2.0 * 1.96 * se;
        assert!(
            (width / expected - 1.0).abs() < 0.25,
            "bootstrap width {width}, normal approximation {expected}"
        );
        // Centred: each side within a third of the other.
        assert!(((a - lo) / (hi - a) - 1.0).abs() < 0.35, "{lo} {a} {hi}");
        assert_eq!(
            auroc_interval(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false], 200, 7),
            Some((1.0, 1.0))
        );
    }
}
