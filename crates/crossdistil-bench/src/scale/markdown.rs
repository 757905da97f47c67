//! What `scale.md` holds: the shape, how each figure is measured, and one table row per size.

use std::fmt::Write;

use super::report::{Phase, ScaleReport, ScaleRow};

/// `b` bytes in MiB below 1 GiB, in GiB above.
fn bytes(b: u64) -> String {
    let mib = b as f64 / (1u64 << 20) as f64;
    if mib < 1024.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{:.2} GiB", mib / 1024.0)
    }
}

/// A phase's rate and peak memory as two cells; dashes for a phase not run.
fn cells(p: Option<&Phase>) -> [String; 2] {
    match p {
        Some(p) => [format!("{:.0}", p.rows_per_s), bytes(p.peak_rss_bytes)],
        None => ["-".into(), "-".into()],
    }
}

/// `a / b` as `1.23x`, a dash when either is missing.
fn ratio(a: Option<&Phase>, b: Option<&Phase>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.peak_rss_bytes > 0 => {
            format!("{:.2}x", a.peak_rss_bytes as f64 / b.peak_rss_bytes as f64)
        }
        _ => "-".into(),
    }
}

/// One table row; `first` is the smallest size, which the peak memory is compared to.
fn row(out: &mut String, r: &ScaleRow, first: &ScaleRow) {
    let [prep_rate, prep_rss] = cells(r.prepare.as_ref());
    let [train_rate, train_rss] = cells(Some(&r.train));
    let [pred_rate, pred_rss] = cells(Some(&r.predict));
    let ratios = [
        ratio(r.prepare.as_ref(), first.prepare.as_ref()),
        ratio(Some(&r.train), Some(&first.train)),
        ratio(Some(&r.predict), Some(&first.predict)),
    ]
    .join(" / ");
    let _ = writeln!(
        out,
        "| {} | {} | {} | {prep_rate} | {prep_rss} | {train_rate} | {:.0} | {train_rss} | {pred_rate} | {pred_rss} | {ratios} |",
        r.rows,
        if r.stream { "stream" } else { "in memory" },
        bytes(r.disk_bytes),
        r.train_loop_rows_per_s,
    );
}

/// The Markdown report: a paragraph on the shape and on the model's size (the same at every
/// size, or a warning naming the counts that differ), how the figures are measured, then a
/// table with one row per size (and the in-memory comparison): rows, mode, disk bytes, then
/// rows/s and peak RSS of prepare, train and predict, and each phase's peak RSS over the
/// smallest size's.
pub fn scale_markdown(r: &ScaleReport) -> String {
    let s = &r.shape;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## Scale: {}, one epoch, batch {}\n",
        s.model.name(),
        s.batch
    );
    let _ = writeln!(
        out,
        "Synthetic data: {} sparse fields of {} values, each hashed into {} buckets \
         (embeddings of {}), {} dense features, {} tasks; split 80/10/10{}; {} cores.",
        s.fields,
        s.vocab,
        s.hash_buckets,
        s.embedding_dim,
        s.dense,
        s.tasks,
        if r.part_files {
            format!(", part files of {} rows", s.rows_per_file)
        } else {
            ", one Parquet file".into()
        },
        r.cores
    );
    match (r.same_model(), r.rows.first()) {
        (true, Some(first)) => {
            let _ = writeln!(
                out,
                "The same model and tables at every size: {} parameters.",
                first.parameters
            );
        }
        (false, _) => {
            let counts: Vec<String> = r
                .rows
                .iter()
                .map(|x| format!("{} parameters at {} rows", x.parameters, x.rows))
                .collect();
            let _ = writeln!(
                out,
                "**Warning: the model differs between sizes** ({}): its tables grew with the \
                 data, so peak memory is not comparable across sizes.",
                counts.join(", ")
            );
        }
        (true, None) => {}
    }
    let _ = writeln!(
        out,
        "\nRows/s over each child's wall time: prepare all rows; train the train split once \
         (loading, the epoch, validation and test at its end; \"loop\" is the training loop's \
         own rate); predict the test split. Peak RSS is the child's `ru_maxrss`; the last \
         column divides it by the smallest size's (prepare / train / predict).\n"
    );
    out.push_str(
        "| rows | mode | disk | prepare rows/s | prepare peak RSS | train rows/s | train loop rows/s | train peak RSS | predict rows/s | predict peak RSS | peak RSS / smallest |\n",
    );
    out.push_str("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    if let Some(first) = r.rows.first() {
        for x in &r.rows {
            row(&mut out, x, first);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scale::shape::ScaleShape;

    fn size(rows: usize, stream: bool, prepare: bool, rss: u64, parameters: u64) -> ScaleRow {
        ScaleRow {
            rows,
            stream,
            disk_bytes: rows as u64 * 100,
            prepare: prepare.then(|| Phase::new(rows, 2.0, rss)),
            train: Phase::new(rows * 8 / 10, 4.0, 2 * rss),
            train_loop_rows_per_s: rows as f64 / 2.0,
            predict: Phase::new(rows / 10, 1.0, rss),
            parameters,
        }
    }

    fn report(second_parameters: u64) -> ScaleReport {
        ScaleReport {
            shape: ScaleShape::DEFAULT,
            cores: 2,
            part_files: true,
            rows: vec![
                size(1_000_000, true, true, 1 << 30, 7),
                size(10_000_000, true, true, 3 << 29, second_parameters),
                size(1_000_000, false, false, 3 << 30, 7),
            ],
        }
    }

    #[test]
    fn the_table_of_a_fixed_report() {
        let md = scale_markdown(&report(7));
        let expected = "\
## Scale: shared-bottom, one epoch, batch 2048

Synthetic data: 8 sparse fields of 1000000 values, each hashed into 1048576 buckets (embeddings of 16), 4 dense features, 2 tasks; split 80/10/10, part files of 1000000 rows; 2 cores.
The same model and tables at every size: 7 parameters.
";
        assert!(md.starts_with(expected), "{md}");
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(
            rows,
            [
                "| rows | mode | disk | prepare rows/s | prepare peak RSS | train rows/s | train loop rows/s | train peak RSS | predict rows/s | predict peak RSS | peak RSS / smallest |",
                "| 1000000 | stream | 95.4 MiB | 500000 | 1.00 GiB | 200000 | 500000 | 2.00 GiB | 100000 | 1.00 GiB | 1.00x / 1.00x / 1.00x |",
                "| 10000000 | stream | 953.7 MiB | 5000000 | 1.50 GiB | 2000000 | 5000000 | 3.00 GiB | 1000000 | 1.50 GiB | 1.50x / 1.50x / 1.50x |",
                "| 1000000 | in memory | 95.4 MiB | - | - | 200000 | 500000 | 6.00 GiB | 100000 | 3.00 GiB | - / 3.00x / 3.00x |",
            ]
        );
    }

    #[test]
    fn a_model_that_changes_with_the_size_is_flagged() {
        let md = scale_markdown(&report(9));
        assert!(md.contains(
            "**Warning: the model differs between sizes** (7 parameters at 1000000 rows, 9 parameters at 10000000 rows, 7 parameters at 1000000 rows)"
        ));
        assert!(!md.contains("The same model"));
    }
}
