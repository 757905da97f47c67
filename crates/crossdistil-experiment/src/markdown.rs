//! The results as Markdown tables: the student's test metrics, the paired differences from
//! the baseline, and the teachers.

use std::fmt::Write;

use crate::stats::{Paired, Stat};
use crate::summary::CellResult;

const TEACHER_METRICS: [&str; 4] = [
    "teacher_auc",
    "teacher_multi_auc",
    "cal_teacher_logloss",
    "cal_teacher_ece",
];

fn fmt_stat(s: Option<&Stat>) -> String {
    s.map_or("-".into(), |s| format!("{:.4} ± {:.4}", s.mean, s.std))
}

fn fmt_paired(p: Option<&Paired>) -> String {
    match p {
        Some(p) => format!(
            "{:+.4} ({}/{}{})",
            p.mean_diff,
            p.wins,
            p.n,
            p.p_value.map_or(String::new(), |v| format!(", p={v:.3}"))
        ),
        None => "".into(),
    }
}

fn table_head(s: &mut String, header: &[String]) {
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
}

/// The Markdown of an experiment named `name` on the data described by `data`: a title, the
/// table of the student's test metrics (mean ± std), with a `baseline` the table of paired
/// differences from it (mean, seeds won / seeds, p-value), and the teachers' table when any
/// cell has teachers. The tasks are those of the first result.
pub fn markdown(name: &str, data: &str, baseline: Option<&str>, results: &[CellResult]) -> String {
    let mut s = String::new();
    let n = results.first().map_or(0, |r| r.seeds.len());
    let test = |r: &CellResult| r.metrics.get("test").cloned().unwrap_or_default();
    let tasks: Vec<String> = results
        .first()
        .map(|r| test(r).keys().cloned().collect())
        .unwrap_or_default();
    let _ = writeln!(s, "### {name}: mean ± std over {n} seeds (data `{data}`)\n");
    let has = |m: &str| {
        results
            .iter()
            .any(|r| test(r).values().any(|t| t.contains_key(m)))
    };
    let student: Vec<&str> = ["auc", "gauc", "multi_auc", "logloss"]
        .into_iter()
        .filter(|m| has(m))
        .collect();
    let metric = |r: &CellResult, split: &str, t: &str, m: &str| -> Option<Stat> {
        r.metrics.get(split)?.get(t)?.get(m).cloned()
    };
    // Test metrics of the student.
    let mut header = vec![
        "config".to_string(),
        "variant".to_string(),
        "valid mean AUC".to_string(),
    ];
    for t in &tasks {
        for m in &student {
            header.push(format!("test {t} {}", m.replace('_', "-")));
        }
    }
    header.extend(["epochs".into(), "train s".into()]);
    table_head(&mut s, &header);
    for r in results {
        let mut row = vec![
            r.config.clone(),
            r.variant.clone(),
            fmt_stat(Some(&r.valid_mean_auc)),
        ];
        for t in &tasks {
            for m in &student {
                row.push(fmt_stat(metric(r, "test", t, m).as_ref()));
            }
        }
        row.push(format!("{:.1}", r.epochs_run.mean));
        row.push(format!("{:.1}", r.train_seconds.mean));
        let _ = writeln!(s, "| {} |", row.join(" | "));
    }
    if let Some(b) = baseline {
        let _ = writeln!(
            s,
            "\nPaired difference from `{b}` over the same seeds: mean (seeds where the variant is higher / seeds, two-sided paired t-test p).\n"
        );
        let mut header = vec!["config".to_string(), "variant".to_string()];
        for split in ["valid", "test"] {
            for t in &tasks {
                for m in ["auc", "multi_auc"] {
                    header.push(format!("{split} {t} {}", m.replace('_', "-")));
                }
            }
        }
        table_head(&mut s, &header);
        for r in results.iter().filter(|r| r.variant != b) {
            let mut row = vec![r.config.clone(), r.variant.clone()];
            for split in ["valid", "test"] {
                for t in &tasks {
                    for m in ["auc", "multi_auc"] {
                        row.push(fmt_paired(
                            r.vs_baseline
                                .get(split)
                                .and_then(|x| x.get(t))
                                .and_then(|x| x.get(m)),
                        ));
                    }
                }
            }
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
    }
    if has("teacher_auc") {
        let _ = writeln!(
            s,
            "\nTeachers (test): ranking AUC and Multi-AUC of the teacher head, log loss and ECE of the calibrated teacher.\n"
        );
        let mut header = vec!["config".to_string(), "variant".to_string()];
        for t in &tasks {
            for m in TEACHER_METRICS {
                header.push(format!("{t} {}", m.replace('_', "-")));
            }
        }
        table_head(&mut s, &header);
        for r in results
            .iter()
            .filter(|r| test(r).values().any(|t| t.contains_key("teacher_auc")))
        {
            let mut row = vec![r.config.clone(), r.variant.clone()];
            for t in &tasks {
                for m in TEACHER_METRICS {
                    row.push(fmt_stat(metric(r, "test", t, m).as_ref()));
                }
            }
            let _ = writeln!(s, "| {} |", row.join(" | "));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::add_paired;
    use crate::summary::tests::result;

    #[test]
    fn tables_with_a_baseline() {
        let mut rs = vec![
            result("cfg", "base", &[0.70, 0.71, 0.72]),
            result("cfg", "new", &[0.72, 0.72, 0.75]),
        ];
        add_paired(&mut rs, "base");
        let md = markdown("exp", "data/x", Some("base"), &rs);
        assert!(
            md.starts_with("### exp: mean ± std over 3 seeds (data `data/x`)\n"),
            "{md}"
        );
        assert!(
            md.contains("| config | variant | valid mean AUC | test t auc | epochs | train s |")
        );
        assert!(
            md.contains("| cfg | base | 0.7100 ± 0.0100 | 0.7100 ± 0.0100 | 2.0 | 1.0 |"),
            "{md}"
        );
        assert!(md.contains("Paired difference from `base`"));
        // The new variant's row: test AUC +0.02 on all 3 seeds; no valid metrics, no multi-AUC.
        let p = &rs[1].vs_baseline["test"]["t"]["auc"];
        let want = format!(
            "| cfg | new |  |  | +0.0200 (3/3, p={:.3}) |  |",
            p.p_value.unwrap()
        );
        assert!(md.contains(&want), "{md}\nwanted {want}");
        assert!(!md.contains("Teachers"));
    }

    #[test]
    fn no_results_no_panic() {
        let md = markdown("empty", "d", None, &[]);
        assert!(md.contains("over 0 seeds"));
    }
}
