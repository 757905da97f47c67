//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};

use crossdistil_data::SplitFractions;
use crossdistil_data::prepare::{PrepareOptions, Prepared};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The folder of format samples: `$CROSSDISTIL_SHARED_DATA`, else `../shared/data` beside the
/// workspace; `None` (and a SKIPPED line for `test`) when it is not there, as in a clone on its
/// own.
pub fn shared_data(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("CROSSDISTIL_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"));
    if !dir.is_dir() {
        skip(
            test,
            &format!(
                "the format samples are not in {} (set CROSSDISTIL_SHARED_DATA to their folder)",
                dir.display()
            ),
        );
        return None;
    }
    Some(dir)
}

pub fn opts(out: &Path, seed: u64) -> PrepareOptions {
    PrepareOptions {
        out: out.to_path_buf(),
        seed,
        fractions: SplitFractions::default(),
        rows_per_file: None,
    }
}

/// Says on the terminal, past the test harness's capture, that a test was skipped and why.
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// MovieLens-100K, fetched with the shared script; `None` (and a SKIPPED line) when it cannot be
/// had.
pub fn movielens(test: &str) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("CROSSDISTIL_ML100K") {
        return Some(PathBuf::from(dir));
    }
    let script = root().join("../shared/scripts/fetch-movielens-100k.sh");
    if !script.is_file() {
        skip(
            test,
            &format!(
                "MovieLens-100K is not here and {} is missing",
                script.display()
            ),
        );
        return None;
    }
    match std::process::Command::new("bash").arg(&script).output() {
        Ok(out) if out.status.success() => {
            let dir = String::from_utf8_lossy(&out.stdout)
                .lines()
                .last()
                .unwrap_or("")
                .trim()
                .to_string();
            Some(PathBuf::from(dir))
        }
        Ok(out) => {
            skip(
                test,
                &format!(
                    "MovieLens-100K could not be fetched: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            );
            None
        }
        Err(e) => {
            skip(test, &format!("MovieLens-100K could not be fetched: {e}"));
            None
        }
    }
}

/// No temporary file is left in `dir`, and no data set was written there.
pub fn assert_no_output(dir: &Path) {
    if !dir.exists() {
        return;
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(
            !name.ends_with(".part") && name != "data.parquet" && name != "dataset.toml",
            "{name} left behind in {}",
            dir.display()
        );
    }
}

pub fn prepared_ok(p: &Prepared) {
    assert!(p.dir.join("data.parquet").is_file());
    assert!(p.dir.join("dataset.toml").is_file());
}
