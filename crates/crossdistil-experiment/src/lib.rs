#![doc = include_str!("../README.md")]
#![warn(missing_docs)]
//!
//! # Modules
//!
//! - [`Grid`], [`Cell`], [`merge_tables`]: the grid file and the cells it makes.
//! - [`Stat`], [`Paired`], [`paired()`]: summaries over seeds and the paired t-test.
//! - [`CellResult`], [`summarise`], [`summarise_cell`], [`add_paired`]: the results of a cell,
//!   read from its runs' reports, and their differences from the baseline.
//! - [`markdown()`]: the results as Markdown tables.
//! - [`draw_plots`], [`auc_curve`]: PNG plots (validation AUC per epoch, teacher reliability).
//! - [`draw_heatmaps`], [`Panel`]: PNG heatmaps of values over two settings (regime maps).
//! - [`run()`], [`Options`], [`Outcome`]: the whole experiment, runs in child processes.

mod draw;
mod error;
mod grid;
mod heatmap;
mod markdown;
mod plots;
mod runner;
mod seeds;
mod stats;
mod summary;

pub use error::{ExperimentError, Result};
pub use grid::{BASE_VARIANT, Cell, Grid, merge_tables};
pub use heatmap::{Panel, draw_heatmaps};
pub use markdown::markdown;
pub use plots::{auc_curve, column_curve, draw_plots, teacher_gap_table};
pub use runner::{Options, Outcome, PlannedRun, plan, run};
pub use seeds::{MAX_SEEDS, parse_seeds};
pub use stats::{Paired, Stat, paired};
pub use summary::{
    CellResult, METRICS, MetricTree, PAIRED_METRICS, add_paired, summarise, summarise_cell,
};
