//! Every file of an export, in an order that leaves no half-written export behind.

use std::path::PathBuf;

use crate::encoders::EncodersFile;
use crate::error::{ExportError, Result};
use crate::export::OnnxModel;
use crate::files::ExportPaths;
use crate::sample::Sample;

/// What [`write_files`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The files written, in the order written (the model last).
    pub files: Vec<PathBuf>,
    /// The sample's rows.
    pub sample_rows: usize,
}

/// Writes the export to `paths`: the encoders, the sample, the external data when the model
/// uses it, and the model last, each atomically (a temporary file renamed into place).
/// Existing files are refused unless `overwrite` ([`ExportPaths::check`]); with it, an
/// external data file that the new model does not use is removed. On an error, the files
/// written so far are removed.
pub fn write_files(
    paths: &ExportPaths,
    model: &OnnxModel<'_>,
    sample: &Sample,
    encoders: &EncodersFile,
    overwrite: bool,
) -> Result<Written> {
    paths.check(overwrite)?;
    let mut files = Vec::new();
    let result = write_each(paths, model, sample, encoders, &mut files);
    if result.is_err() {
        // No half-written export: the files this call wrote go again.
        for f in &files {
            let _ = std::fs::remove_file(f);
        }
    }
    result?;
    Ok(Written {
        files,
        sample_rows: sample.rows(),
    })
}

/// Writes the files in order, recording each one written in `files`.
fn write_each(
    paths: &ExportPaths,
    model: &OnnxModel<'_>,
    sample: &Sample,
    encoders: &EncodersFile,
    files: &mut Vec<PathBuf>,
) -> Result<()> {
    encoders.write(&paths.encoders)?;
    files.push(paths.encoders.clone());
    sample.write(&paths.sample)?;
    files.push(paths.sample.clone());
    if !model.uses_external_data() && paths.data.exists() {
        std::fs::remove_file(&paths.data)
            .map_err(|e| ExportError::file(&paths.data, format!("cannot remove: {e}")))?;
    }
    if let Some(data) = model.write(&paths.onnx)? {
        files.push(data);
    }
    files.push(paths.onnx.clone());
    Ok(())
}
