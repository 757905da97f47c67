//! The size of a trained model, read from its checkpoint's header alone.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Whether a checkpoint tensor holds optimiser state rather than the model: the dense
/// optimiser's moments (`adam.m.<name>`, crossdistil-train's `OPTIMIZER_PREFIX`) and the
/// tables' row-wise moments (`input.sparse.<field>.adam_m`).
fn optimiser_state(name: &str) -> bool {
    name.split('.').any(|segment| segment.starts_with("adam"))
}

/// The largest safetensors header read: far above any model's.
const MAX_HEADER: u64 = 64 << 20;

/// Elements of the model's tensors in a safetensors checkpoint (embedding tables included,
/// the optimiser's moments excluded), from the header's shapes, without reading the tensors: the
/// sum over tensors of the product of their shape.
pub fn checkpoint_parameters(path: &Path) -> anyhow::Result<u64> {
    let what = || format!("{}: not a safetensors checkpoint", path.display());
    let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).with_context(what)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER {
        bail!("{}: a header of {len} bytes", what());
    }
    let mut header = vec![0u8; len as usize];
    f.read_exact(&mut header).with_context(what)?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&header).with_context(what)?;
    let mut total = 0u64;
    for (name, t) in &header {
        if name == "__metadata__" || optimiser_state(name) {
            continue;
        }
        let shape = t["shape"]
            .as_array()
            .with_context(|| format!("{}: tensor {name} has no shape", what()))?;
        total += shape
            .iter()
            .map(|d| d.as_u64().unwrap_or(0))
            .product::<u64>();
    }
    Ok(total)
}

/// The best checkpoint of a trained run folder, as its manifest names it.
pub fn best_checkpoint(run: &Path) -> anyhow::Result<PathBuf> {
    let manifest = crossdistil_train::RunDir::new(run).manifest()?;
    let best = manifest
        .best
        .with_context(|| format!("{}: the run has no best checkpoint", run.display()))?;
    Ok(run.join(best.file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_from_the_header() {
        let dir = std::env::temp_dir().join(format!("cd-ckpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("c.safetensors");
        let header = br#"{"__metadata__":{},"emb.f0":{"dtype":"F32","shape":[5,4],"data_offsets":[0,80]},"w":{"dtype":"F32","shape":[3],"data_offsets":[80,92]},"adam.m.w":{"dtype":"F32","shape":[3],"data_offsets":[92,104]},"emb.f0.adam_v":{"dtype":"F32","shape":[5,4],"data_offsets":[104,184]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 184]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(checkpoint_parameters(&path).unwrap(), 23);
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(checkpoint_parameters(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
