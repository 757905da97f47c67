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
    column_curve(cell, seeds, "valid_mean_auc")
}

/// The mean over seeds of the `metrics.csv` column `column`, per epoch: `(epoch, mean)` for
/// every epoch that some seed has (runs, rows or values that cannot be read are skipped).
pub fn column_curve(cell: &Cell, seeds: &[u64], column: &str) -> Vec<(f64, f64)> {
    let mut by_epoch: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    for &s in seeds {
        let Ok(text) = std::fs::read_to_string(cell.run_dir(s).join("metrics.csv")) else {
            continue;
        };
        for (e, v) in epoch_values(&text, column) {
            by_epoch.entry(e).or_default().push(v);
        }
    }
    by_epoch
        .into_iter()
        .map(|(e, v)| (e as f64, v.iter().sum::<f64>() / v.len() as f64))
        .collect()
}

/// `(epoch, value of column)` of every row of a `metrics.csv` that has both.
fn epoch_values(text: &str, column: &str) -> Vec<(usize, f64)> {
    let mut lines = text.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let cols: Vec<&str> = header.split(',').collect();
    let (Some(e), Some(v)) = (
        cols.iter().position(|c| *c == "epoch"),
        cols.iter().position(|c| *c == column),
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

/// The tasks whose teachers a cell's first readable `metrics.csv` records
/// (`valid_<task>_teacher_auc`), in column order.
fn teacher_tasks(cell: &Cell, seeds: &[u64]) -> Vec<String> {
    let header = seeds.iter().find_map(|&s| {
        let text = std::fs::read_to_string(cell.run_dir(s).join("metrics.csv")).ok()?;
        Some(text.lines().next()?.to_string())
    });
    header
        .unwrap_or_default()
        .split(',')
        .filter_map(|c| c.strip_prefix("valid_")?.strip_suffix("_teacher_auc"))
        .map(str::to_string)
        .collect()
}

/// A Markdown table of each teacher against its student over training: for every cell with
/// teachers and every task, the validation AUC of the teacher head minus the student's at each
/// epoch (mean over seeds), then both at the last epoch. Empty when no cell has teachers.
pub fn teacher_gap_table(cells: &[Cell], seeds: &[u64]) -> String {
    let mut rows = Vec::new();
    let mut epochs = 0;
    for c in cells {
        for task in teacher_tasks(c, seeds) {
            let student = column_curve(c, seeds, &format!("valid_{task}_auc"));
            let teacher = column_curve(c, seeds, &format!("valid_{task}_teacher_auc"));
            let gaps: Vec<f64> = student
                .iter()
                .zip(&teacher)
                .map(|((_, s), (_, t))| t - s)
                .collect();
            let (Some(s), Some(t)) = (student.last(), teacher.last()) else {
                continue;
            };
            epochs = epochs.max(gaps.len());
            rows.push((c.config_name(), c.variant.clone(), task, gaps, s.1, t.1));
        }
    }
    if rows.is_empty() {
        return String::new();
    }
    let mut md = String::from(
        "\nTeachers against their students over training: validation AUC of the teacher head \
         minus the student's, per epoch (mean over seeds; later epochs average the seeds that \
         reached them), and both at the last epoch.\n\n| config | variant | task |",
    );
    for e in 1..=epochs {
        md.push_str(&format!(" epoch {e} |"));
    }
    md.push_str(" student | teacher |\n|---|---|---|");
    md.push_str(&"---|".repeat(epochs + 2));
    md.push('\n');
    for (config, variant, task, gaps, s, t) in rows {
        md.push_str(&format!("| {config} | {variant} | {task} |"));
        for e in 0..epochs {
            match gaps.get(e) {
                Some(g) => md.push_str(&format!(" {g:+.4} |")),
                None => md.push_str(" - |"),
            }
        }
        md.push_str(&format!(" {s:.4} | {t:.4} |\n"));
    }
    md
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
        assert!(epoch_values("step,loss\n1,2\n", "valid_mean_auc").is_empty());
    }

    /// The gap table by hand: two seeds, two epochs (one seed stops after the first).
    #[test]
    fn teacher_gaps_are_means_over_seeds_per_epoch() {
        let dir = tempfile::tempdir().unwrap();
        let cell = Cell {
            config: "c.toml".into(),
            variant: "v".into(),
            dir: dir.path().to_path_buf(),
        };
        let header = "epoch,valid_mean_auc,valid_a_auc,valid_a_teacher_auc";
        for (s, rows) in [
            (1, "1,0,0.70,0.72\n2,0,0.74,0.73\n"),
            (2, "1,0,0.60,0.66\n"),
        ] {
            std::fs::create_dir_all(cell.run_dir(s)).unwrap();
            std::fs::write(
                cell.run_dir(s).join("metrics.csv"),
                format!("{header}\n{rows}"),
            )
            .unwrap();
        }
        let md = teacher_gap_table(std::slice::from_ref(&cell), &[1, 2]);
        // Epoch 1: teachers 0.69, students 0.65; epoch 2: seed 1 alone.
        assert!(
            md.contains("| c | v | a | +0.0400 | -0.0100 | 0.7400 | 0.7300 |"),
            "{md}"
        );
        assert!(md.contains("epoch 2 | student | teacher |"), "{md}");
        // No teachers, no table.
        let plain = Cell {
            dir: dir.path().join("none"),
            ..cell
        };
        assert_eq!(teacher_gap_table(&[plain], &[1]), "");
    }
}
