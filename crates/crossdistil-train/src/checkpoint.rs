//! A checkpoint as it is written: the dense tensors (parameters and optimiser moments), and
//! the embedding tables' buffers borrowed from the model, so that writing a checkpoint does
//! not copy the tables (which, with their row-wise moments, are most of a model's memory).
//!
//! The file is a plain safetensors file (little-endian F32 tensors), read back by
//! [`load_tensors`](crate::load_tensors) or candle's loader like any other.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use safetensors::{Dtype, View};

use crate::error::{Result, TrainError};

/// A model and optimiser state to write: named tensors, and named `[rows, cols]` buffers
/// borrowed from the tables.
pub struct Checkpoint<'a> {
    /// The dense tensors, by name.
    pub tensors: HashMap<String, Tensor>,
    /// The tables' buffers, by name: `(name, [rows, cols], row-major values)`.
    pub buffers: Vec<(String, [usize; 2], &'a [f32])>,
}

/// One tensor of the file: a dense tensor's values (copied out of candle, small) or a table's
/// buffer (borrowed).
struct Entry<'a> {
    shape: Vec<usize>,
    values: Cow<'a, [f32]>,
}

impl View for Entry<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }

    fn shape(&self) -> &[usize] {
        &self.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        if cfg!(target_endian = "little") {
            // SAFETY: an f32 slice is valid as bytes (no padding, any bit pattern of u8 is
            // valid, alignment 1 <= 4), the length is 4 bytes per value, and the bytes borrow
            // the slice for no longer than `self`.
            Cow::Borrowed(unsafe {
                std::slice::from_raw_parts(
                    self.values.as_ptr().cast::<u8>(),
                    size_of_val(self.values.as_ref()),
                )
            })
        } else {
            Cow::Owned(self.values.iter().flat_map(|v| v.to_le_bytes()).collect())
        }
    }

    fn data_len(&self) -> usize {
        4 * self.values.len()
    }
}

impl Checkpoint<'_> {
    /// Writes the checkpoint to `path` as a safetensors file, a table buffer at a time from the
    /// model's own memory. Every tensor must be F32.
    pub fn write(&self, path: &Path) -> Result<()> {
        let bad = |m: String| TrainError::run(path, format!("cannot write checkpoint: {m}"));
        let mut entries: Vec<(String, Entry<'_>)> = Vec::with_capacity(self.len());
        for (name, t) in &self.tensors {
            if t.dtype() != DType::F32 {
                return Err(bad(format!("{name} is {:?}, not F32", t.dtype())));
            }
            let values = t
                .flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .map_err(|e| bad(e.to_string()))?;
            let shape = t.dims().to_vec();
            entries.push((
                name.clone(),
                Entry {
                    shape,
                    values: Cow::Owned(values),
                },
            ));
        }
        for (name, shape, data) in &self.buffers {
            entries.push((
                name.clone(),
                Entry {
                    shape: shape.to_vec(),
                    values: Cow::Borrowed(data),
                },
            ));
        }
        safetensors::serialize_to_file(entries, None, path).map_err(|e| bad(e.to_string()))
    }

    /// The number of tensors.
    pub fn len(&self) -> usize {
        self.tensors.len() + self.buffers.len()
    }

    /// Whether there is no tensor.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every tensor as an owned candle tensor (the tables copied).
    pub fn to_tensors(&self) -> Result<HashMap<String, Tensor>> {
        let mut out = self.tensors.clone();
        for (name, shape, data) in &self.buffers {
            let t = Tensor::from_slice(data, (shape[0], shape[1]), &Device::Cpu)?;
            out.insert(name.clone(), t);
        }
        Ok(out)
    }
}
