//! The report as Markdown.

use crate::child::PeerVariant;
use crate::model::BenchModel;
use crate::parity::PARITY_TOLERANCE;
use crate::report::{Report, Row, VsFastest, per_round, vs_fastest};
use crate::shape::{DENSE, EMBEDDING_DIM, FIELDS, TASKS};

/// The report as Markdown tables: every configuration (median rows/s with the slowest and
/// fastest window, step time, evaluation rows/s, peak RSS, the PyTorch peer's variant),
/// CrossDistil's cost over its backbone, and when the PyTorch peer ran: the ratios to its plain
/// variant without CrossDistil, to the faster of its variants and to each variant (of the
/// medians, and per round), and the parity checks; then the step time by the first field's
/// table size.
pub fn markdown(r: &Report) -> String {
    let s = &r.shape;
    let mut out = format!(
        "Synthetic data: {} rows, {FIELDS} fields of vocabulary {}, dimension {EMBEDDING_DIM}, {DENSE} dense, {TASKS} tasks; batch {}; {} cores. \
         Training rows/s: median over {} run(s) of the median of {} windows of {} steps after {} warm-up steps (min and max over all windows).\n\n",
        s.rows, s.vocab, s.batch, r.cores, s.rounds, s.windows, s.window_steps, s.warmup_steps
    );
    out.push_str(&rows_table(r));
    out.push_str(&cost_table(r));
    if r.rows.iter().any(|x| x.side == "pytorch") {
        out.push_str(&plain_ratio_table(r));
        out.push_str(&fastest_table(r));
        out.push_str(&variants_table(r));
    }
    if !r.parity.is_empty() {
        out.push_str(&parity_table(r));
    }
    out.push_str(&sweep_table(r));
    out
}

/// "yes" or "no".
fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// The PyTorch peer's variant and its dense Adam (`tuned (fused Adam)`); empty for
/// crossdistil's rows.
fn peer_cell(x: &Row) -> String {
    match &x.peer {
        Some(p) => format!("{} ({} Adam)", p.variant.name(), p.dense_adam),
        None => String::new(),
    }
}

/// Every configuration outside the table-size sweep.
fn rows_table(r: &Report) -> String {
    let mut out = String::from(
        "| side | model | CrossDistil | workers | train rows/s | (min - max) | step ms | eval rows/s | peak RSS MiB | PyTorch variant |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for x in r.rows.iter().filter(|x| !x.sweep) {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.0} | {:.0} - {:.0} | {:.2} | {:.0} | {:.0} | {} |\n",
            x.side,
            x.model.name(),
            yes_no(x.crossdistil),
            x.workers,
            x.train_rows_per_s,
            x.train_min,
            x.train_max,
            x.step_ms,
            x.eval_rows_per_s,
            x.peak_rss_mib,
            peer_cell(x)
        ));
    }
    out
}

/// Our rows of `model` with or without CrossDistil, one per worker count.
fn ours(r: &Report, model: BenchModel, cd: bool) -> impl Iterator<Item = &Row> {
    r.rows.iter().filter(move |x| {
        x.side == "crossdistil" && x.model == model && x.crossdistil == cd && !x.sweep
    })
}

/// CrossDistil's cost over its backbone, per model and worker count.
fn cost_table(r: &Report) -> String {
    let mut out = String::from(
        "\nCrossDistil's cost over its backbone (training rows/s):\n\n| model | workers | backbone | with CrossDistil | cost |\n|---|---|---|---|---|\n",
    );
    for model in BenchModel::ALL {
        for x in ours(r, model, false) {
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
    out
}

/// `ours / theirs` of the medians and per round, as `1.23x (1.20x, 1.10 - 1.30)`.
fn ratio_cell(ours: &Row, theirs: &Row) -> String {
    let (mid, lo, hi) = per_round(ours, theirs, |m| m.train_rows_per_s);
    format!(
        "{:.2}x ({mid:.2}x, {lo:.2} - {hi:.2})",
        ours.train_rows_per_s / theirs.train_rows_per_s
    )
}

/// The ratios to the plain PyTorch peer without CrossDistil.
fn plain_ratio_table(r: &Report) -> String {
    let mut out = String::from(
        "\nRatio crossdistil / PyTorch (the plain variant; without CrossDistil; training rows/s; PyTorch on all cores; peak RSS). `ratio` divides the medians; `per round` is the median (min - max) of the ratios of the two sides' runs in the same round, which ran minutes apart, so that the machine's drift between rounds cancels:\n\n| model | PyTorch rows/s | crossdistil workers | crossdistil rows/s | ratio | per round | RSS crossdistil / PyTorch MiB |\n|---|---|---|---|---|---|---|\n",
    );
    for model in BenchModel::ALL {
        let Some(p) = r.find_peer(model, false, PeerVariant::Plain) else {
            continue;
        };
        for x in ours(r, model, false) {
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
    out
}

/// How often each variant was the fastest of its round (`tuned 2/3, compiled 1/3`).
fn round_counts(v: &VsFastest<'_>) -> String {
    let n = v.round_fastest.len();
    PeerVariant::ALL
        .into_iter()
        .filter_map(|p| {
            let k = v.round_fastest.iter().filter(|&&x| x == p).count();
            (k > 0).then(|| format!("{} {k}/{n}", p.name()))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ratios to the faster PyTorch variant, with and without CrossDistil.
fn fastest_table(r: &Report) -> String {
    let mut out = String::from(
        "\nRatio crossdistil / the fastest PyTorch variant (training rows/s). `fastest` is the variant with the highest median, which `ratio` divides by; `per round` is the median (min - max) over the rounds of our run over the fastest variant's run of that round, and `fastest per round` counts which variant that was:\n\n| model | CrossDistil | fastest | PyTorch rows/s | crossdistil workers | crossdistil rows/s | ratio | per round | fastest per round | RSS crossdistil / PyTorch MiB |\n|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for model in BenchModel::ALL {
        for cd in [false, true] {
            let peers = r.peers(model, cd);
            for x in ours(r, model, cd) {
                let Some(v) = vs_fastest(x, &peers) else {
                    continue;
                };
                let (mid, lo, hi) = v.per_round;
                out.push_str(&format!(
                    "| {} | {} | {} | {:.0} | {} | {:.0} | {:.2}x | {mid:.2}x ({lo:.2} - {hi:.2}) | {} | {:.0} / {:.0} |\n",
                    model.name(),
                    yes_no(cd),
                    v.fastest.variant().map_or("", PeerVariant::name),
                    v.fastest.train_rows_per_s,
                    x.workers,
                    x.train_rows_per_s,
                    v.ratio,
                    round_counts(&v),
                    x.peak_rss_mib,
                    v.fastest.peak_rss_mib
                ));
            }
        }
    }
    out
}

/// The ratios to each PyTorch variant, with and without CrossDistil.
fn variants_table(r: &Report) -> String {
    let variants = r.variants();
    let names: Vec<&str> = variants.iter().map(|v| v.name()).collect();
    let mut out = format!(
        "\nRatio crossdistil / each PyTorch variant (training rows/s): the ratio of the medians (the median, min - max of the per-round ratios):\n\n| model | CrossDistil | crossdistil workers | crossdistil rows/s | vs {} |\n|---|---|---|---|{}\n",
        names.join(" | vs "),
        "---|".repeat(names.len())
    );
    for model in BenchModel::ALL {
        for cd in [false, true] {
            for x in ours(r, model, cd) {
                let cells: Vec<String> = variants
                    .iter()
                    .map(|&v| {
                        r.find_peer(model, cd, v)
                            .map_or(String::new(), |p| ratio_cell(x, p))
                    })
                    .collect();
                if cells.iter().all(String::is_empty) {
                    continue;
                }
                out.push_str(&format!(
                    "| {} | {} | {} | {:.0} | {} |\n",
                    model.name(),
                    yes_no(cd),
                    x.workers,
                    x.train_rows_per_s,
                    cells.join(" | ")
                ));
            }
        }
    }
    out
}

/// The parity checks.
fn parity_table(r: &Report) -> String {
    let mut out = format!(
        "\nParity: one training step on the same first batch from the same initial weights; the loss before and after it, crossdistil / PyTorch (at most {PARITY_TOLERANCE:e} apart):\n\n| model | CrossDistil | PyTorch variant | loss before | loss after | largest difference |\n|---|---|---|---|---|---|\n"
    );
    for c in &r.parity {
        out.push_str(&format!(
            "| {} | {} | {} | {:.7} / {:.7} | {:.7} / {:.7} | {:.1e} |\n",
            c.model.name(),
            yes_no(c.crossdistil),
            c.variant.name(),
            c.ours.loss_before,
            c.theirs.loss_before,
            c.ours.loss_after,
            c.theirs.loss_after,
            c.ours.difference(&c.theirs)
        ));
    }
    out
}

/// The step time by the first field's table size.
fn sweep_table(r: &Report) -> String {
    let mut out = String::from(
        "\nStep time by the first field's table size (Shared-Bottom, 1 worker); `vs smallest, per round` is the median (min - max) over the rounds of the step time over the smallest table's in the same round:\n\n| table rows | step ms | train rows/s | vs smallest, per round | peak RSS MiB |\n|---|---|---|---|---|\n",
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parity::{Parity, ParityCheck};
    use crate::report::fixtures::row;
    use crate::shape::Shape;
    use PeerVariant::{Plain, Tuned};

    /// Two rounds of MMoE: ours on 1 and 2 workers without CrossDistil and on 1 with it, the
    /// plain and the tuned peer with and without; the tuned peer is faster by its median
    /// without CrossDistil, the plain one with it.
    fn report() -> Report {
        let parity = |variant, cd, after| ParityCheck {
            model: BenchModel::Mmoe,
            crossdistil: cd,
            variant,
            ours: Parity {
                loss_before: 1.0,
                loss_after: 0.5,
                peer: None,
            },
            theirs: Parity {
                loss_before: 1.0,
                loss_after: after,
                peer: None,
            },
        };
        Report {
            shape: Shape::QUICK,
            cores: 2,
            rows: vec![
                row(None, false, 1, &[30.0, 36.0]),
                row(None, false, 2, &[60.0, 54.0]),
                row(Some(Plain), false, 1, &[20.0, 40.0]),
                row(Some(Tuned), false, 1, &[40.0, 30.0]),
                row(None, true, 1, &[24.0, 24.0]),
                row(Some(Plain), true, 1, &[12.0, 14.0]),
                row(Some(Tuned), true, 1, &[8.0, 16.0]),
            ],
            parity: vec![parity(Plain, false, 0.5), parity(Tuned, true, 0.500002)],
        }
    }

    /// The table of every configuration names each PyTorch row's variant and Adam.
    #[test]
    fn every_row_names_its_peer_variant() {
        let md = markdown(&report());
        assert!(
            md.contains("| crossdistil | mmoe | no | 1 | 33 | 30 - 36 | 30555.56 | 0 | 100 |  |\n")
        );
        assert!(md.contains(
            "| pytorch | mmoe | yes | 1 | 12 | 8 - 16 | 93750.00 | 0 | 100 | tuned (fused Adam) |\n"
        ));
    }

    /// The plain ratio table keeps its meaning: the plain variant without CrossDistil.
    #[test]
    fn the_plain_ratio_table_compares_with_the_plain_variant() {
        let md = markdown(&report());
        assert!(md.contains("| mmoe | 30 | 1 | 33 | 1.10x | 1.20x (0.90 - 1.50) | 100 / 100 |\n"));
        assert!(md.contains("| mmoe | 30 | 2 | 57 | 1.90x | 2.17x (1.35 - 3.00) | 100 / 100 |\n"));
    }

    /// Against the fastest variant: by median tuned (35) without CrossDistil and plain (13)
    /// with it; round by round the faster of each round.
    #[test]
    fn the_fastest_table_names_the_faster_variant() {
        let md = markdown(&report());
        // Rounds: 30 / max(20, 40) = 0.75 (tuned), 36 / max(40, 30) = 0.9 (plain).
        assert!(md.contains(
            "| mmoe | no | tuned | 35 | 1 | 33 | 0.94x | 0.82x (0.75 - 0.90) | plain 1/2, tuned 1/2 | 100 / 100 |\n"
        ));
        // With CrossDistil: 24 / max(12, 8) = 2 (plain), 24 / max(14, 16) = 1.5 (tuned).
        assert!(md.contains(
            "| mmoe | yes | plain | 13 | 1 | 24 | 1.85x | 1.75x (1.50 - 2.00) | plain 1/2, tuned 1/2 | 100 / 100 |\n"
        ));
    }

    /// Against each variant: one column per variant that ran.
    #[test]
    fn the_variants_table_has_a_column_per_variant() {
        let md = markdown(&report());
        assert!(md.contains("| model | CrossDistil | crossdistil workers | crossdistil rows/s | vs plain | vs tuned |\n|---|---|---|---|---|---|\n"));
        assert!(md.contains(
            "| mmoe | no | 1 | 33 | 1.10x (1.20x, 0.90 - 1.50) | 0.94x (0.97x, 0.75 - 1.20) |\n"
        ));
        assert!(md.contains(
            "| mmoe | yes | 1 | 24 | 1.85x (1.86x, 1.71 - 2.00) | 2.00x (2.25x, 1.50 - 3.00) |\n"
        ));
    }

    /// The parity table: both sides' losses and their largest difference.
    #[test]
    fn the_parity_table_lists_every_check() {
        let md = markdown(&report());
        assert!(md.contains(
            "| mmoe | no | plain | 1.0000000 / 1.0000000 | 0.5000000 / 0.5000000 | 0.0e0 |\n"
        ));
        assert!(md.contains(
            "| mmoe | yes | tuned | 1.0000000 / 1.0000000 | 0.5000000 / 0.5000020 | 2.0e-6 |\n"
        ));
    }
}
