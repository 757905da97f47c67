//! `crossdistil`: multi-task recommendation training with cross-task knowledge distillation.
//!
//! Thin by design: parses arguments, calls the library crates, prints their results.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use crossdistil_data::{Dataset, Summary};

#[derive(Parser)]
#[command(name = "crossdistil", version, about, long_about = None)]
struct Cli {
    /// Log filter (also read from RUST_LOG), for example `info` or `crossdistil_data=debug`.
    #[arg(long, global = true, default_value = "warn")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a prepared data set: schema, rows per split, positive rates, label combinations.
    Inspect {
        /// A folder written by `cargo xtask prepare` (holding dataset.toml and data.parquet).
        dir: PathBuf,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Only these tasks, comma-separated, in this order (default: all, in priority order).
        #[arg(long, value_delimiter = ',')]
        tasks: Vec<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli.log);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logs(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect { dir, json, tasks } => {
            let ds = Dataset::load(&dir)?;
            let summary = if tasks.is_empty() {
                Summary::of(&ds)
            } else {
                let names = ds.spec.task_names();
                let chosen = tasks
                    .iter()
                    .map(|t| {
                        names.iter().position(|n| n == t).ok_or_else(|| {
                            anyhow::anyhow!(
                                "--tasks: `{t}` is not a task of {} (tasks: {})",
                                dir.display(),
                                names.join(", ")
                            )
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Summary::of_tasks(&ds, &chosen)
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                print!("{}", summary.to_table());
            }
        }
    }
    Ok(())
}
