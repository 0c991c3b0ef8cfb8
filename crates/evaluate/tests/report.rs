//! The report on constructed data where the right answers are known.

use evaluate::{evaluate, Sample, Setup};

/// 400 images: subgroup "good" perfectly separated, subgroup "poor"
/// scored at random; grades "severe" separated, "mild" not.
fn samples() -> Vec<Sample> {
    let mut state = 12345u64;
    let mut rand = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    (0..400)
        .map(|i| {
            let positive = i % 2 == 0;
            let group = if i % 4 < 2 { "good" } else { "poor" };
            let grade = if i % 8 == 0 { "severe" } else { "mild" };
            let score = match (group, positive, grade) {
                ("good", true, _) => 0.6 + 0.4 * rand(),
                ("good", false, _) => 0.4 * rand(),
                _ => rand(),
            };
            Sample {
                scores: vec![score],
                truth: vec![Some(positive)],
                grades: vec![positive.then(|| grade.to_string())],
                groups: vec![("site".into(), group.into())],
            }
        })
        .collect()
}

#[test]
fn subgroups_far_below_the_whole_are_flagged() {
    let setup = Setup {
        labels: vec!["Finding".into()],
        thresholds: vec![0.5],
        bootstrap_rounds: 300,
        ..Setup::default()
    };
    let report = evaluate(&setup, &samples());
    let l = &report.labels[0];
    let whole = l.metrics.auroc.unwrap();
    assert!(whole > 0.6 && whole < 0.9, "{whole}");
    let (lo, hi) = l.metrics.auroc_ci95.unwrap();
    assert!(lo < whole && whole < hi);
    let good = l.subgroups.iter().find(|g| g.value == "good").unwrap();
    let poor = l.subgroups.iter().find(|g| g.value == "poor").unwrap();
    assert_eq!(good.metrics.auroc, Some(1.0));
    assert!(!good.flagged);
    assert!(poor.flagged, "{:?}", poor.metrics);
    assert_eq!(l.metrics.n, 400);
    assert_eq!(l.metrics.positives, 200);
    let c = l.metrics.confusion;
    assert_eq!(c.tp + c.fp + c.tn + c.fn_, 400);
    assert!(!l.roc.is_empty() && l.roc.len() <= 200);

    let plots = tempfile::tempdir().unwrap();
    let roc = plots.path().join("roc.png");
    let rel = plots.path().join("reliability.png");
    evaluate::plots::roc(&report, "test", &roc).unwrap();
    evaluate::plots::reliability(&report, "test", &rel).unwrap();
    for p in [roc, rel] {
        let b = std::fs::read(&p).unwrap();
        assert!(
            b.starts_with(b"\x89PNG") && b.len() > 5000,
            "{}",
            p.display()
        );
    }
}

#[test]
fn unlabelled_images_are_left_out_and_grades_are_reported() {
    let mut s = samples();
    for x in s.iter_mut().take(10) {
        x.truth[0] = None;
    }
    let setup = Setup {
        labels: vec!["Finding".into()],
        thresholds: vec![0.5],
        bootstrap_rounds: 50,
        ..Setup::default()
    };
    let r = evaluate(&setup, &s);
    assert_eq!(r.labels[0].metrics.n, 390);
    let grades: Vec<&str> = r.labels[0]
        .by_grade
        .iter()
        .map(|g| g.grade.as_str())
        .collect();
    assert_eq!(grades, ["mild", "severe"]);
}
