//! The plots of an experiment: validation AUC per epoch for each variant of a config, and
//! reliability diagrams of the calibrated teachers.

use std::collections::BTreeMap;
use std::path::Path;

use crossdistil_train::Report;

use crate::draw;
use crate::error::Result;
use crate::grid::Cell;

/// Mean validation AUC per epoch over seeds, from each run's `metrics.csv` (runs or rows that
/// cannot be read are skipped).
pub fn auc_curve(cell: &Cell, seeds: &[u64]) -> Vec<(f64, f64)> {
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for &s in seeds {
        let Ok(text) = std::fs::read_to_string(cell.run_dir(s).join("metrics.csv")) else {
            continue;
        };
        for (e, auc) in epoch_aucs(&text) {
            by_epoch.entry(e).or_default().push(auc);
        }
    }
    by_epoch
        .into_iter()
        .map(|(e, v)| (e as f64, v.iter().sum::<f64>() / v.len() as f64))
        .collect()
}

/// `(epoch, valid_mean_auc)` of every row of a `metrics.csv` that has both.
fn epoch_aucs(text: &str) -> Vec<(usize, f64)> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let (Some(e), Some(v)) = (
        cols.iter().position(|c| *c == "epoch"),
        cols.iter().position(|c| *c == "valid_mean_auc"),
    ) else {
        return Vec::new();
    };
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some((f.get(e)?.parse().ok()?, f.get(v)?.parse().ok()?))
        })
        .collect()
}

/// Draws the plots of an experiment named `name` into `out`: `<config>-valid-auc.png` for
/// every config, and `<config>-<variant>-teacher-reliability.png` (first seed, test split) for
/// every cell with calibrated teachers. Returns the files written.
pub fn draw_plots(name: &str, cells: &[Cell], seeds: &[u64], out: &Path) -> Result<Vec<String>> {
    let mut files = Vec::new();
    let Some(&first_seed) = seeds.first() else {
        return Ok(files);
    };
    let mut configs: Vec<String> = cells.iter().map(Cell::config_name).collect();
    configs.dedup();
    for config in &configs {
        let of_config = || cells.iter().filter(|c| &c.config_name() == config);
        let series: Vec<(String, Vec<(f64, f64)>)> = of_config()
            .map(|c| (c.variant.clone(), auc_curve(c, seeds)))
            .collect();
        let path = out.join(format!("{config}-valid-auc.png"));
        draw::lines(
            &path,
            &format!("{name}: {config}, validation mean AUC per epoch"),
            "epoch",
            "mean validation AUC (over seeds)",
            &series,
        )?;
        files.push(path.display().to_string());
        for c in of_config() {
            let Ok(r) = Report::read(&c.run_dir(first_seed).join("report.json")) else {
                continue;
            };
            let series: Vec<(String, Vec<(f64, f64)>)> = r
                .tasks
                .iter()
                .filter_map(|t| {
                    let bins = r.test.get(t)?.calibrated_teacher_bins.as_ref()?;
                    let pts = bins
                        .iter()
                        .filter_map(|b| Some((b.mean_pred?, b.frac_pos?)))
                        .collect();
                    Some((t.clone(), pts))
                })
                .collect();
            if series.is_empty() {
                continue;
            }
            let path = out.join(format!("{config}-{}-teacher-reliability.png", c.variant));
            draw::reliability(
                &path,
                &format!(
                    "{config} / {}: calibrated teacher (test, seed {first_seed})",
                    c.variant
                ),
                &series,
            )?;
            files.push(path.display().to_string());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_is_the_mean_over_seeds_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let cell = Cell {
            config: "c.toml".into(),
            variant: "v".into(),
            dir: dir.path().to_path_buf(),
        };
        for (s, rows) in [(1, "1,0.5,x\n2,0.7,x\n"), (2, "1,0.6,x\nbad\n")] {
            std::fs::create_dir_all(cell.run_dir(s)).unwrap();
            std::fs::write(
                cell.run_dir(s).join("metrics.csv"),
                format!("epoch,valid_mean_auc,other\n{rows}"),
            )
            .unwrap();
        }
        // Seed 3 has no file: skipped.
        let c = auc_curve(&cell, &[1, 2, 3]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].0, 1.0);
        assert!((c[0].1 - 0.55).abs() < 1e-12);
        assert_eq!(c[1], (2.0, 0.7));
        assert!(epoch_aucs("step,loss\n1,2\n").is_empty());
    }
}
