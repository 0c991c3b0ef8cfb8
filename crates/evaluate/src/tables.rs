//! The evaluation as Markdown tables, as `triaged evaluate` prints them
//! and docs/ quote them.

use crate::localisation::PointingGame;
use crate::Report;

fn f(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into())
}

fn ci(v: Option<(f64, f64)>) -> String {
    v.map(|(a, b)| format!("{a:.3}-{b:.3}"))
        .unwrap_or_else(|| "-".into())
}

/// The pointing game as a Markdown table (empty without masks).
pub fn localisation_table(games: &[PointingGame]) -> String {
    if games.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\nHeatmap localisation (pointing game: the heatmap's strongest cell touches the finding's mask):\n\n| label | images | hits | hit rate | 95 % CI | random cell |\n|---|---|---|---|---|---|\n",
    );
    for g in games {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            g.label,
            g.images,
            g.hits,
            f(g.hit_rate),
            ci(g.hit_rate_ci95),
            f(g.chance)
        );
    }
    s
}

/// The whole set and the grades as Markdown tables.
pub fn summary_tables(r: &Report) -> String {
    let mut s = String::from(
        "| label | n | pos | AUROC | 95 % CI | threshold | sens | spec | PPV | NPV | ECE |\n|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for l in &r.labels {
        let m = &l.metrics;
        s += &format!(
            "| {} | {} | {} | {} | {} | {:.3} | {} | {} | {} | {} | {:.3} |\n",
            l.label,
            m.n,
            m.positives,
            f(m.auroc),
            ci(m.auroc_ci95),
            l.threshold,
            f(m.sensitivity),
            f(m.specificity),
            f(m.ppv),
            f(m.npv),
            l.ece
        );
    }
    s += "\nBy grade (positives of the grade against all negatives):\n\n| label | grade | pos | AUROC | 95 % CI | sens |\n|---|---|---|---|---|---|\n";
    for l in &r.labels {
        for g in &l.by_grade {
            let m = &g.metrics;
            s += &format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                l.label,
                g.grade,
                m.positives,
                f(m.auroc),
                ci(m.auroc_ci95),
                f(m.sensitivity)
            );
        }
    }
    s
}

/// Every subgroup as a Markdown table (! = well below the whole).
pub fn subgroup_table(r: &Report) -> String {
    let mut s = String::from("\nBy subgroup (! = well below the whole):\n\n| label | subgroup | n | pos | AUROC | 95 % CI | sens | spec |\n|---|---|---|---|---|---|---|---|\n");
    for l in &r.labels {
        for g in &l.subgroups {
            let m = &g.metrics;
            s += &format!(
                "| {} | {}={}{} | {} | {} | {} | {} | {} | {} |\n",
                l.label,
                g.column,
                g.value,
                if g.flagged { " !" } else { "" },
                m.n,
                m.positives,
                f(m.auroc),
                ci(m.auroc_ci95),
                f(m.sensitivity),
                f(m.specificity)
            );
        }
    }
    s
}
