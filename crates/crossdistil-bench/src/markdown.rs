//! The report as Markdown.

use crate::model::BenchModel;
use crate::report::{Report, Row, per_round};
use crate::shape::{DENSE, EMBEDDING_DIM, FIELDS, TASKS};

/// The report as Markdown tables: every configuration (median rows/s with the slowest and
/// fastest window, step time, evaluation rows/s, peak RSS), CrossDistil's cost over its
/// backbone, the ratios to the PyTorch peer when it ran (of the medians, and per round), and
/// the step time by the first field's table size.
pub fn markdown(r: &Report) -> String {
    let s = &r.shape;
    let mut out = format!(
        "Synthetic data: {} rows, {FIELDS} fields of vocabulary {}, dimension {EMBEDDING_DIM}, {DENSE} dense, {TASKS} tasks; batch {}; {} cores. \
         Training rows/s: median over {} run(s) of the median of {} windows of {} steps after {} warm-up steps (min and max over all windows).\n\n",
        s.rows, s.vocab, s.batch, r.cores, s.rounds, s.windows, s.window_steps, s.warmup_steps
    );
    out.push_str("| side | model | CrossDistil | workers | train rows/s | (min - max) | step ms | eval rows/s | peak RSS MiB |\n|---|---|---|---|---|---|---|---|---|\n");
    for x in r.rows.iter().filter(|x| !x.sweep) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} - {:.0} | {:.2} | {:.0} | {:.0} |\n",
            x.side,
            x.model.name(),
            if x.crossdistil { "yes" } else { "no" },
            x.workers,
            x.train_rows_per_s,
            x.train_min,
            x.train_max,
            x.step_ms,
            x.eval_rows_per_s,
            x.peak_rss_mib
        ));
    }
    out.push_str("\nCrossDistil's cost over its backbone (training rows/s):\n\n| model | workers | backbone | with CrossDistil | cost |\n|---|---|---|---|---|\n");
    for model in BenchModel::ALL {
        for x in r
            .rows
            .iter()
            .filter(|x| x.side == "crossdistil" && x.model == model && !x.crossdistil && !x.sweep)
        {
            if let Some(cd) = r.find("crossdistil", model, true, x.workers) {
                out.push_str(&format!(
                    "| {} | {} | {:.0} | {:.0} | {:+.1}% |\n",
                    model.name(),
                    x.workers,
                    x.train_rows_per_s,
                    cd.train_rows_per_s,
                    100.0 * (x.train_rows_per_s / cd.train_rows_per_s - 1.0)
                ));
            }
        }
    }
    if r.rows.iter().any(|x| x.side == "pytorch") {
        out.push_str("\nRatio crossdistil / PyTorch (training rows/s; PyTorch on all cores; peak RSS). `ratio` divides the medians; `per round` is the median (min - max) of the ratios of the two sides' runs in the same round, which ran minutes apart, so that the machine's drift between rounds cancels:\n\n| model | PyTorch rows/s | crossdistil workers | crossdistil rows/s | ratio | per round | RSS crossdistil / PyTorch MiB |\n|---|---|---|---|---|---|---|\n");
        for model in BenchModel::ALL {
            let Some(p) = r.find("pytorch", model, false, 1) else {
                continue;
            };
            for x in r.rows.iter().filter(|x| {
                x.side == "crossdistil" && x.model == model && !x.crossdistil && !x.sweep
            }) {
                let (mid, lo, hi) = per_round(x, p, |m| m.train_rows_per_s);
                out.push_str(&format!(
                    "| {} | {:.0} | {} | {:.0} | {:.2}x | {mid:.2}x ({lo:.2} - {hi:.2}) | {:.0} / {:.0} |\n",
                    model.name(),
                    p.train_rows_per_s,
                    x.workers,
                    x.train_rows_per_s,
                    x.train_rows_per_s / p.train_rows_per_s,
                    x.peak_rss_mib,
                    p.peak_rss_mib
                ));
            }
        }
    }
    out.push_str("\nStep time by the first field's table size (Shared-Bottom, 1 worker); `vs smallest, per round` is the median (min - max) over the rounds of the step time over the smallest table's in the same round:\n\n| table rows | step ms | train rows/s | vs smallest, per round | peak RSS MiB |\n|---|---|---|---|---|\n");
    let sweep: Vec<&Row> = r.rows.iter().filter(|x| x.sweep).collect();
    for x in &sweep {
        let (mid, lo, hi) = per_round(x, sweep[0], |m| m.step_ms);
        out.push_str(&format!(
            "| {} | {:.2} | {:.0} | {:+.1}% ({:+.1}% - {:+.1}%) | {:.0} |\n",
            x.first_table_rows,
            x.step_ms,
            x.train_rows_per_s,
            100.0 * (mid - 1.0),
            100.0 * (lo - 1.0),
            100.0 * (hi - 1.0),
            x.peak_rss_mib
        ));
    }
    out
}
