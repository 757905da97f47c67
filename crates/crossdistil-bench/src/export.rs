//! The initial weights for the PyTorch peer.

use std::collections::HashMap;
use std::path::Path;

use candle_core::Tensor;
use crossdistil_model::MultiTaskModel;
use crossdistil_train::save_tensors;

/// Writes the model's weights, without optimiser state, to `path` (safetensors): one tensor per
/// layer under its parameter name (packed experts unpacked), and the embedding tables
/// (`*.weight`) without their moments.
pub fn export_weights(model: &MultiTaskModel, path: &Path) -> anyhow::Result<()> {
    let mut tensors: HashMap<String, Tensor> = model.params().unpacked_tensors()?;
    tensors.extend(
        model
            .input()
            .save_tensors()?
            .into_iter()
            .filter(|(k, _)| k.ends_with(".weight")),
    );
    save_tensors(path, &tensors)?;
    Ok(())
}
