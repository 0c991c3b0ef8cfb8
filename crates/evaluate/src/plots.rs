//! ROC curves and reliability diagrams as PNG (plotters, bitmap backend,
//! with an embedded font so no system fonts are needed).

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::report::Report;

#[derive(Debug, thiserror::Error)]
#[error("cannot draw {path}: {detail}")]
pub struct PlotError {
    pub path: String,
    pub detail: String,
}

const COLOURS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

fn fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// A named curve of (x, y) points, and whether its points get markers.
type Series = (String, Vec<(f64, f64)>, bool);

fn draw(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: Vec<Series>,
) -> Result<(), Box<dyn std::error::Error>> {
    fonts();
    let root = BitMapBackend::new(path, (720, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()?;
    chart.draw_series(LineSeries::new(
        vec![(0.0, 0.0), (1.0, 1.0)],
        BLACK.mix(0.3),
    ))?;
    for (k, (name, points, markers)) in series.into_iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        chart
            .draw_series(LineSeries::new(points.clone(), colour.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        if markers {
            chart.draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, colour.filled())),
            )?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn wrap(path: &Path, r: Result<(), Box<dyn std::error::Error>>) -> Result<(), PlotError> {
    r.map_err(|e| PlotError {
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// Every label's ROC curve, with its AUROC and interval in the legend.
pub fn roc(report: &Report, title: &str, path: &Path) -> Result<(), PlotError> {
    let series = report
        .labels
        .iter()
        .map(|l| {
            let auc = match (l.metrics.auroc, l.metrics.auroc_ci95) {
                (Some(a), Some((lo, hi))) => format!("{a:.3} ({lo:.3}-{hi:.3})"),
                (Some(a), None) => format!("{a:.3}"),
                _ => "n/a".into(),
            };
            (format!("{} AUROC {auc}", l.label), l.roc.clone(), false)
        })
        .collect();
    wrap(
        path,
        draw(path, title, "1 - specificity", "sensitivity", series),
    )
}

/// Reliability diagram: mean predicted probability against the observed
/// fraction of positives per bin, with each label's ECE.
pub fn reliability(report: &Report, title: &str, path: &Path) -> Result<(), PlotError> {
    let series = report
        .labels
        .iter()
        .map(|l| {
            let pts = l
                .reliability
                .iter()
                .map(|b| (b.mean_predicted, b.fraction_positive))
                .collect();
            (format!("{} ECE {:.3}", l.label, l.ece), pts, true)
        })
        .collect();
    wrap(
        path,
        draw(
            path,
            title,
            "predicted probability",
            "observed fraction positive",
            series,
        ),
    )
}
