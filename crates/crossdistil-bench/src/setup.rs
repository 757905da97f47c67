//! The model of one child run.

use crossdistil_data::Dataset;
use crossdistil_train::RunConfig;
use crossdistil_train::{BuiltModel, build_model_for};

use crate::child::ChildArgs;
use crate::model::bench_config;

/// The configuration and the model of `a` for `ds`: every table at least `a.table_rows` rows,
/// the first `a.first_table_rows` when sweeping table sizes.
pub(crate) fn build(a: &ChildArgs, ds: &Dataset) -> anyhow::Result<(RunConfig, BuiltModel)> {
    let cfg = bench_config(a.model, a.crossdistil, a.workers, a.batch);
    let mut schema = ds.input_schema();
    for (i, (_, v)) in schema.sparse.iter_mut().enumerate() {
        *v = (*v).max(a.table_rows);
        if let (0, Some(big)) = (i, a.first_table_rows) {
            *v = big;
        }
    }
    let built = build_model_for(&cfg, &ds.spec, &schema)?;
    Ok((cfg, built))
}
