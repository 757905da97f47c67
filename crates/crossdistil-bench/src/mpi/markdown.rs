//! What `mpi.md` holds: the shape, how each figure is measured, and one table row per
//! configuration.

use std::fmt::Write;

use super::report::{MpiReport, MpiRow};

/// `b` bytes in MiB below 1 GiB, in GiB above.
fn bytes(b: u64) -> String {
    let mib = b as f64 / (1u64 << 20) as f64;
    if mib < 1024.0 {
        format!("{mib:.1} MiB")
    } else {
        format!("{:.2} GiB", mib / 1024.0)
    }
}

/// One table row.
fn row(out: &mut String, r: &MpiRow) {
    let ratio = r
        .ratio_to_one_rank
        .map_or_else(|| "-".to_string(), |x| format!("{x:.2}x"));
    let _ = writeln!(
        out,
        "| {} | {} | {} | {:.0} | {ratio} | {:.1} | {:.1} | {:.1} | {} | {:.1} |",
        r.ranks,
        r.workers,
        r.layout.name(),
        r.rows_per_s,
        r.bytes_sent_per_step / 1024.0,
        100.0 * r.comm_share,
        1e3 * r.step_seconds,
        bytes(r.peak_rss_bytes),
        r.wall_seconds,
    );
}

/// The Markdown report: a paragraph on the data, model and launcher, how the figures are
/// measured, a table with one row per configuration (ranks, workers per rank, tables, rows/s,
/// its ratio to one rank, KiB sent per step by a rank, the share of a step spent
/// communicating, step ms, peak RSS of the largest process, wall seconds of the job), and the
/// command line that reproduces it.
pub fn mpi_markdown(r: &MpiReport) -> String {
    let s = &r.shape;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## MPI: {} with CrossDistil, one epoch, global batch {}\n",
        s.model.name(),
        s.batch
    );
    let _ = writeln!(
        out,
        "Synthetic data: {} rows ({} train), {} sparse fields of {} values, each hashed into {} \
         buckets (embeddings of {}, {} table parameters), {} dense features, {} tasks; {} \
         cores; {} round(s), the configurations alternating in each; `mpirun {}`.",
        r.data_rows,
        r.train_rows,
        s.fields,
        s.vocab,
        s.hash_buckets,
        s.embedding_dim,
        s.table_parameters(),
        s.dense,
        s.tasks,
        r.cores,
        r.rounds,
        r.mpirun_options.join(" ")
    );
    let _ = writeln!(
        out,
        "\nrows/s is the run's `rows_per_second` (train rows over the epoch and its validation, \
         on rank 0), the median over the rounds, and \"vs 1 rank\" divides it by the one-rank \
         run's. KiB sent per step and the communication share (the time in exchanges, waiting \
         for the other ranks included, over the step's) are the ranks' means from the report; \
         step ms too, and on one rank the global batch over rows/s. Peak RSS is the largest \
         process of the job (`ru_maxrss` of `mpirun`, the largest over the rounds); wall s is \
         the whole job (start-up, loading, the epoch, validation, test, checkpoints).\n"
    );
    out.push_str(
        "| ranks | workers | tables | rows/s | vs 1 rank | KiB sent/step | comm share % | step ms | peak RSS | wall s |\n",
    );
    out.push_str("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for x in &r.rows {
        row(&mut out, x);
    }
    let _ = writeln!(out, "\nReproduce: `{}`", r.command);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpi::config::{MpiLayout, mpi_shape};
    use crate::mpi::report::MpiRun;

    fn run(round: usize, ranks: usize, layout: MpiLayout, rows_per_s: f64) -> MpiRun {
        let several = ranks > 1;
        MpiRun {
            round,
            ranks,
            layout,
            workers: 1,
            rows_per_s,
            train_seconds: 10.0,
            bytes_sent_per_step: if several { 10_240.0 } else { 0.0 },
            bytes_received_per_step: if several { 10_240.0 } else { 0.0 },
            comm_share: if several { 0.25 } else { 0.0 },
            step_seconds: 2048.0 / rows_per_s,
            peak_rss_bytes: (1 << 30) + round as u64,
            wall_seconds: 20.0,
        }
    }

    #[test]
    fn the_table_of_a_fixed_report() {
        let runs = vec![
            run(0, 1, MpiLayout::Single, 1000.0),
            run(0, 2, MpiLayout::Sharded, 1500.0),
            run(0, 2, MpiLayout::Replicated, 1800.0),
            run(1, 1, MpiLayout::Single, 1200.0),
            run(1, 2, MpiLayout::Sharded, 1700.0),
            run(1, 2, MpiLayout::Replicated, 2000.0),
        ];
        let report = MpiReport {
            shape: mpi_shape(4096),
            data_rows: 20_000,
            train_rows: 16_000,
            cores: 2,
            rounds: 2,
            mpirun_options: vec!["--oversubscribe".into()],
            command: "cargo xtask bench --mpi".into(),
            rows: MpiRow::all(&runs),
            runs,
        };
        let md = mpi_markdown(&report);
        assert!(md.starts_with("## MPI: mmoe with CrossDistil, one epoch, global batch 2048\n"));
        let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
        assert_eq!(
            rows,
            [
                "| ranks | workers | tables | rows/s | vs 1 rank | KiB sent/step | comm share % | step ms | peak RSS | wall s |",
                "| 1 | 1 | - | 1100 | 1.00x | 0.0 | 0.0 | 1877.3 | 1.00 GiB | 20.0 |",
                "| 2 | 1 | sharded | 1600 | 1.45x | 10.0 | 25.0 | 1285.0 | 1.00 GiB | 20.0 |",
                "| 2 | 1 | replicated | 1900 | 1.73x | 10.0 | 25.0 | 1080.9 | 1.00 GiB | 20.0 |",
            ]
        );
        assert!(md.contains("Reproduce: `cargo xtask bench --mpi`"));
        assert_eq!(report.rows[0].rounds, 2);
        assert_eq!(report.rows[0].peak_rss_bytes, (1 << 30) + 1);
    }
}
