//! PNG drawing with plotters: line charts and reliability diagrams, with text in a system
//! TrueType font.

use std::path::Path;

use crate::error::{ExperimentError, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Font files tried, in order, for the plots' text (`CROSSDISTIL_FONT` first).
const FONTS: [&str; 3] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a sans-serif font once; an error when none is found.
pub(crate) fn init_font() -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let mut paths: Vec<String> = std::env::var("CROSSDISTIL_FONT").into_iter().collect();
        paths.extend(FONTS.iter().map(|s| s.to_string()));
        for p in &paths {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return Ok(());
                }
            }
        }
        Err(format!(
            "no TrueType font found for plot labels (tried {}; set CROSSDISTIL_FONT)",
            paths.join(", ")
        ))
    })
    .clone()
    .map_err(ExperimentError::Plot)
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// One line per series: `(label, points)`.
pub(crate) fn lines(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    init_font()?;
    let pts = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return Ok(());
    }
    let pad = ((y1 - y0) * 0.08).max(1e-3);
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1.max(x0 + 1.0), (y0 - pad)..(y1 + pad))?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .y_label_formatter(&|v| format!("{v:.3}"))
        .draw()?;
    draw_series(&mut chart, series, SeriesLabelPosition::LowerRight)?;
    root.present()
        .map_err(|e| ExperimentError::Plot(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

/// A reliability diagram: `(label, [(mean predicted, observed rate)])` per series, and the
/// diagonal of perfect calibration.
pub(crate) fn reliability(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<()> {
    init_font()?;
    let root = BitMapBackend::new(path, (640, 640)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("mean predicted probability")
        .y_desc("observed positive rate")
        .draw()?;
    chart.draw_series(LineSeries::new(
        [(0.0, 0.0), (1.0, 1.0)],
        BLACK.mix(0.4).stroke_width(1),
    ))?;
    draw_series(&mut chart, series, SeriesLabelPosition::UpperLeft)?;
    root.present()
        .map_err(|e| ExperimentError::Plot(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

/// Every series as a coloured line with dots, and the legend.
fn draw_series<'a>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    series: &[(String, Vec<(f64, f64)>)],
    legend: SeriesLabelPosition,
) -> Result<()> {
    for (i, (label, p)) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(p.iter().copied(), c.stroke_width(2)))
            .map_err(|e| ExperimentError::Plot(e.to_string()))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(p.iter().map(|&pt| Circle::new(pt, 3, c.filled())))
            .map_err(|e| ExperimentError::Plot(e.to_string()))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(legend)
        .draw()
        .map_err(|e| ExperimentError::Plot(e.to_string()))?;
    Ok(())
}
