//! Heatmaps: panels of labelled cells, each coloured by a value on a diverging scale (blue
//! below 0, red above, white at 0) and annotated with a short text, for maps of paired
//! differences over two settings.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::draw::init_font;
use crate::error::{ExperimentError, Result};

/// One panel: `values[r][c]` at row `rows[r]` (bottom to top) and column `cols[c]`, with the
/// text `texts[r][c]` in the cell; a `None` value is drawn grey.
#[derive(Debug, Clone, PartialEq)]
pub struct Panel {
    /// The panel's title.
    pub title: String,
    /// The row labels, bottom to top.
    pub rows: Vec<String>,
    /// The column labels, left to right.
    pub cols: Vec<String>,
    /// `[rows][cols]`: the values that set the colours.
    pub values: Vec<Vec<Option<f64>>>,
    /// `[rows][cols]`: the text written in each cell.
    pub texts: Vec<Vec<String>>,
}

/// The colour of `v` on a diverging scale saturated at `|v| = max_abs`.
fn colour(v: Option<f64>, max_abs: f64) -> RGBColor {
    let Some(v) = v else {
        return RGBColor(200, 200, 200);
    };
    let t = (v / max_abs.max(1e-12)).clamp(-1.0, 1.0);
    let fade = |full: u8| (255.0 - (255.0 - f64::from(full)) * t.abs()) as u8;
    if t >= 0.0 {
        RGBColor(255, fade(60), fade(60))
    } else {
        RGBColor(fade(60), fade(110), 255)
    }
}

/// Draws `panels` in a grid of `columns` panels a row into the PNG `path`, under `title`, with
/// one colour scale for all, saturated at the largest `|value|`.
pub fn draw_heatmaps(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    panels: &[Panel],
    columns: usize,
) -> Result<()> {
    init_font()?;
    let columns = columns.clamp(1, panels.len().max(1));
    let rows = panels.len().div_ceil(columns).max(1);
    let max_abs = panels
        .iter()
        .flat_map(|p| p.values.iter().flatten().flatten())
        .fold(0.0f64, |m, v| m.max(v.abs()));
    let size = ((440 * columns).max(900) as u32, (60 + 380 * rows) as u32);
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 24))?;
    let areas = root.split_evenly((rows, columns));
    for (panel, area) in panels.iter().zip(&areas) {
        draw_panel(area, panel, x_label, y_label, max_abs)?;
    }
    root.present()
        .map_err(|e| ExperimentError::Plot(format!("cannot write {}: {e}", path.display())))?;
    Ok(())
}

fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    p: &Panel,
    x_label: &str,
    y_label: &str,
    max_abs: f64,
) -> Result<()> {
    let (nx, ny) = (p.cols.len() as i32, p.rows.len() as i32);
    if nx == 0 || ny == 0 {
        return Ok(());
    }
    // The cells fill [0, nx] x [0, ny]; the labels sit in the margins left and below.
    let mut chart = ChartBuilder::on(area)
        .caption(&p.title, ("sans-serif", 18))
        .margin(10)
        .build_cartesian_2d(-0.9..f64::from(nx), -0.55..f64::from(ny))?;
    let centred = |size: u32| {
        ("sans-serif", size)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center))
    };
    for (c, label) in p.cols.iter().enumerate() {
        chart.draw_series(std::iter::once(Text::new(
            label.clone(),
            (c as f64 + 0.5, -0.15),
            centred(13),
        )))?;
    }
    for (r, label) in p.rows.iter().enumerate() {
        chart.draw_series(std::iter::once(Text::new(
            label.clone(),
            (-0.3, r as f64 + 0.5),
            centred(13),
        )))?;
    }
    chart.draw_series(std::iter::once(Text::new(
        x_label.to_string(),
        (f64::from(nx) / 2.0, -0.42),
        centred(13),
    )))?;
    chart.draw_series(std::iter::once(Text::new(
        y_label.to_string(),
        (-0.72, f64::from(ny) / 2.0),
        ("sans-serif", 13)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center))
            .transform(FontTransform::Rotate270),
    )))?;
    for r in 0..ny {
        for c in 0..nx {
            let v = p.values[r as usize][c as usize];
            let (x, y) = (f64::from(c), f64::from(r));
            chart.draw_series(std::iter::once(Rectangle::new(
                [(x, y), (x + 1.0, y + 1.0)],
                colour(v, max_abs).filled(),
            )))?;
            let text = &p.texts[r as usize][c as usize];
            let n = text.lines().count() as i32;
            let style = centred(14);
            chart.draw_series(text.lines().enumerate().map(|(i, line)| {
                EmptyElement::at((x + 0.5, y + 0.5))
                    + Text::new(
                        line.to_string(),
                        (0, i as i32 * 16 - (n - 1) * 8),
                        style.clone(),
                    )
            }))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_is_white_at_zero_and_saturates() {
        assert_eq!(colour(Some(0.0), 1.0), RGBColor(255, 255, 255));
        assert_eq!(colour(Some(5.0), 1.0), RGBColor(255, 60, 60));
        assert_eq!(colour(Some(-1.0), 1.0), RGBColor(60, 110, 255));
        assert_eq!(colour(None, 1.0), RGBColor(200, 200, 200));
    }
}
