//! The files of an export and their atomic writes.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{ExportError, Result};

/// The files an export writes, named after the model file `OUT.onnx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPaths {
    /// The model, `OUT.onnx`.
    pub onnx: PathBuf,
    /// Its external data, `OUT.onnx.data` (written only when the model uses external data).
    pub data: PathBuf,
    /// The sample, `OUT.sample.parquet`.
    pub sample: PathBuf,
    /// The encoders, `OUT.encoders.json`.
    pub encoders: PathBuf,
}

impl ExportPaths {
    /// The files of the model `onnx`: `OUT` is `onnx` without its `.onnx` extension.
    pub fn beside(onnx: &Path) -> Self {
        let stem = if onnx.extension().is_some_and(|e| e == "onnx") {
            onnx.with_extension("")
        } else {
            onnx.to_path_buf()
        };
        let with = |suffix: &str| {
            let mut name = stem.file_name().unwrap_or_default().to_os_string();
            name.push(suffix);
            stem.with_file_name(name)
        };
        let mut data = onnx.as_os_str().to_os_string();
        data.push(".data");
        ExportPaths {
            onnx: onnx.to_path_buf(),
            data: PathBuf::from(data),
            sample: with(".sample.parquet"),
            encoders: with(".encoders.json"),
        }
    }

    /// Every file, the model first.
    pub fn all(&self) -> [&Path; 4] {
        [&self.onnx, &self.data, &self.sample, &self.encoders]
    }

    /// Refuses to go on when a file exists (unless `overwrite`) or is a folder, or when the
    /// folder that receives them does not exist; the error names the path.
    pub fn check(&self, overwrite: bool) -> Result<()> {
        for p in self.all() {
            if p.is_dir() {
                return Err(ExportError::file(
                    p,
                    "is a folder; name the model file OUT.onnx",
                ));
            }
            if p.exists() && !overwrite {
                return Err(ExportError::file(
                    p,
                    "already exists; pass --overwrite to replace it",
                ));
            }
        }
        match self.onnx.parent() {
            Some(dir) if !dir.as_os_str().is_empty() && !dir.is_dir() => Err(ExportError::file(
                dir,
                "does not exist; create the folder first",
            )),
            _ => Ok(()),
        }
    }
}

/// Writes `path` atomically: `fill` writes a temporary file beside it, which is synced and
/// renamed into place; nothing is left behind on an error.
pub(crate) fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    let tmp = crossdistil_data::temp_path(path);
    let result = (|| {
        let file = std::fs::File::create(&tmp)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        w.flush()?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        ExportError::file(path, format!("cannot write: {e}"))
    })
}

/// Writes `bytes` to `path` atomically.
pub(crate) fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| w.write_all(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_beside_the_model() {
        let p = ExportPaths::beside(Path::new("out/model.onnx"));
        assert_eq!(p.data, Path::new("out/model.onnx.data"));
        assert_eq!(p.sample, Path::new("out/model.sample.parquet"));
        assert_eq!(p.encoders, Path::new("out/model.encoders.json"));
        let p = ExportPaths::beside(Path::new("m"));
        assert_eq!(p.sample, Path::new("m.sample.parquet"));
        assert_eq!(p.data, Path::new("m.data"));
    }

    #[test]
    fn existing_files_and_missing_folders_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = ExportPaths::beside(&dir.path().join("m.onnx"));
        p.check(false).unwrap();
        std::fs::write(&p.sample, b"x").unwrap();
        let e = p.check(false).unwrap_err().to_string();
        assert!(
            e.contains("m.sample.parquet") && e.contains("--overwrite"),
            "{e}"
        );
        p.check(true).unwrap();
        let q = ExportPaths::beside(&dir.path().join("no/m.onnx"));
        let e = q.check(true).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
    }
}
