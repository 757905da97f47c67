//! Predictions of a model over rows of a data set.

use crossdistil_data::{Batches, Dataset, Order};
use crossdistil_model::MultiTaskModel;

use crate::error::Result;

/// The model's probabilities for `rows`, one vector per task, in `rows` order.
pub fn predict(
    model: &MultiTaskModel,
    ds: &Dataset,
    rows: &[u32],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let t = model.n_tasks();
    let mut out = vec![Vec::with_capacity(rows.len()); t];
    for batch in Batches::new(ds, rows, batch_size, Order::Sequential) {
        let probs = model.predict_probs(&batch)?;
        for (i, p) in probs.iter().enumerate() {
            out[i % t].push(*p);
        }
    }
    Ok(out)
}
