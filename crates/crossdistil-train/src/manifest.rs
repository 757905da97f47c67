//! `RUN/manifest.json`: the one commit point of a run folder.
//!
//! The manifest names every file of the committed state with its size and CRC-32, and holds the
//! [`TrainState`] and the number of committed `metrics.csv` rows. It is replaced atomically
//! (temporary file, fsync, rename, fsync of the folder) only after every file it references has
//! been written, fsynced and renamed into place, and the folder fsynced. Its own text is covered
//! by a checksum on its first line, so a damaged manifest is refused rather than misread.
//!
//! This module also holds the durable-write helpers and the crash-testing hook
//! ([`abort_point`]) that the run folder uses.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crossdistil_data::range_crc;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::run::TrainState;

/// The file name of the manifest.
pub const MANIFEST: &str = "manifest.json";
/// The layout version written in every manifest.
pub const FORMAT: u32 = 1;

/// One file of the committed state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The name inside the run folder.
    pub file: String,
    /// Its length in bytes.
    pub size: u64,
    /// CRC-32 (IEEE) of its bytes, 8 lowercase hex digits.
    pub crc32: String,
}

/// The committed part of `metrics.csv`: its first `rows` rows (after the header), which are its
/// first `size` bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsEntry {
    pub file: String,
    pub rows: usize,
    pub size: u64,
    pub crc32: String,
}

/// The state of a run folder at one commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    /// 0 when the run is created (configuration and encoders only), then one more per commit.
    pub generation: u64,
    pub config: FileEntry,
    pub encoders: FileEntry,
    /// Model, tables and optimiser state at the end of the last completed epoch.
    pub last: Option<FileEntry>,
    /// With tables sharded over the ranks of a distributed run: rank `r`'s shard of the tables
    /// and their optimiser state at `last`, at index `r` (`last` then holds the dense part).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub last_shards: Vec<FileEntry>,
    /// The same at the best validation so far.
    pub best: Option<FileEntry>,
    pub metrics: MetricsEntry,
    /// Set by the last commit of a finished run.
    pub report: Option<FileEntry>,
    pub state: TrainState,
}

impl Manifest {
    /// The files this manifest references (metrics.csv not included: it is checked by prefix).
    pub fn files(&self) -> Vec<&FileEntry> {
        let mut v = vec![&self.config, &self.encoders];
        v.extend(self.last.iter());
        v.extend(self.last_shards.iter());
        v.extend(self.best.iter());
        v.extend(self.report.iter());
        v
    }

    /// Writes the manifest of `dir` atomically: temporary file, fsync, rename, fsync of `dir`.
    /// This is the commit point of a checkpoint.
    pub fn commit(&self, dir: &Path) -> Result<()> {
        let path = dir.join(MANIFEST);
        let body = serde_json::to_string_pretty(self)
            .map_err(|e| TrainError::run(&path, e.to_string()))?;
        let text = format!("crc32 {}\n{body}\n", crc32_hex(body.as_bytes()));
        let tmp = temp_path(&path);
        write_synced(&tmp, text.as_bytes())?;
        abort_point("manifest-written");
        rename(&tmp, &path)?;
        abort_point("manifest-renamed");
        sync_dir(dir)?;
        abort_point("committed");
        Ok(())
    }

    /// Reads and checks the manifest of `dir`; `Ok(None)` when there is none.
    pub fn read(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(TrainError::run(&path, format!("cannot read: {e}"))),
        };
        let bad = |m: String| TrainError::run(&path, format!("damaged manifest: {m}"));
        let nl = bytes
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| bad("no checksum line".into()))?;
        let first = std::str::from_utf8(&bytes[..nl]).map_err(|_| bad("bad first line".into()))?;
        let expected = first
            .strip_prefix("crc32 ")
            .filter(|h| h.len() == 8)
            .ok_or_else(|| {
                bad(format!(
                    "first line `{first}` is not `crc32 <8 hex digits>`"
                ))
            })?;
        let body = bytes[nl + 1..]
            .strip_suffix(b"\n")
            .ok_or_else(|| bad("truncated".into()))?;
        let found = crc32_hex(body);
        if found != expected {
            return Err(bad(format!(
                "checksum mismatch: expected crc32 {expected}, found {found}"
            )));
        }
        let m: Manifest =
            serde_json::from_slice(body).map_err(|e| bad(format!("not a manifest: {e}")))?;
        if m.format != FORMAT {
            return Err(TrainError::run(
                &path,
                format!(
                    "layout version {} is not the {FORMAT} this build reads",
                    m.format
                ),
            ));
        }
        Ok(Some(m))
    }
}

/// CRC-32 (IEEE) of `bytes` as 8 lowercase hex digits.
pub fn crc32_hex(bytes: &[u8]) -> String {
    format!("{:08x}", crc32fast::hash(bytes))
}

/// The size and CRC-32 of a file (the data crate's streaming [`range_crc`] over all of it).
pub fn file_checksum(path: &Path) -> Result<(u64, String)> {
    let err = |e: std::io::Error| TrainError::run(path, format!("cannot read: {e}"));
    let mut f = File::open(path).map_err(err)?;
    let size = f.metadata().map_err(err)?.len();
    let crc = range_crc(&mut f, 0, size).map_err(err)?;
    Ok((size, format!("{crc:08x}")))
}

/// Checks that the file an entry names in `dir` has the entry's size and checksum.
pub fn verify(dir: &Path, e: &FileEntry) -> Result<PathBuf> {
    let path = dir.join(&e.file);
    if !path.is_file() {
        return Err(TrainError::run(
            &path,
            "missing: the manifest references it; the run folder is damaged",
        ));
    }
    let (size, crc) = file_checksum(&path)?;
    if size != e.size {
        return Err(TrainError::run(
            &path,
            format!(
                "damaged: {size} bytes where the manifest records {}",
                e.size
            ),
        ));
    }
    if crc != e.crc32 {
        return Err(TrainError::run(
            &path,
            format!(
                "damaged: checksum mismatch, expected crc32 {}, found {crc}",
                e.crc32
            ),
        ));
    }
    Ok(path)
}

/// The temporary name used while a file is written: `NAME.<pid>.part`.
pub use crossdistil_data::temp_path;

/// Writes `bytes` to `path` and fsyncs it (no rename).
pub fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let r = (|| {
        let mut f = File::create(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(path);
        TrainError::run(path, format!("cannot write: {e}"))
    })
}

/// fsyncs a folder, so that the renames inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| TrainError::run(dir, format!("cannot sync the folder: {e}")))
}

/// Writes `bytes` to `dir/name` through `NAME.<pid>.part` (fsynced, renamed) and returns its
/// entry. `point` names the crash-test points `<point>-written` and `<point>-renamed`.
pub fn write_file(dir: &Path, name: &str, bytes: &[u8], point: &str) -> Result<FileEntry> {
    let path = dir.join(name);
    let tmp = temp_path(&path);
    write_synced(&tmp, bytes)?;
    abort_point(&format!("{point}-written"));
    rename(&tmp, &path)?;
    abort_point(&format!("{point}-renamed"));
    Ok(FileEntry {
        file: name.to_string(),
        size: bytes.len() as u64,
        crc32: crc32_hex(bytes),
    })
}

/// Renames a finished temporary file into place; removes it when that fails.
pub fn rename(tmp: &Path, path: &Path) -> Result<()> {
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        TrainError::run(path, format!("cannot rename into place: {e}"))
    })
}

/// The crash-testing hook. When the environment variable `CROSSDISTIL_ABORT_AT` is
/// `<point>:<n>`, the process aborts (`std::process::abort`, no cleanup, like `kill -9`) the
/// n-th time it reaches the named point. The points are listed in [`ABORT_POINTS`]; the run
/// folder module documents where each one is.
pub fn abort_point(point: &str) {
    static TARGET: OnceLock<Option<(String, usize)>> = OnceLock::new();
    static SEEN: Mutex<Option<HashMap<String, usize>>> = Mutex::new(None);
    let target = TARGET.get_or_init(|| {
        let v = std::env::var("CROSSDISTIL_ABORT_AT").ok()?;
        let (p, n) = v.rsplit_once(':')?;
        Some((p.to_string(), n.parse().ok()?))
    });
    let Some((p, n)) = target else { return };
    if p != point {
        return;
    }
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let count = seen
        .get_or_insert_with(HashMap::new)
        .entry(p.clone())
        .or_insert(0);
    *count += 1;
    if *count == *n {
        eprintln!("CROSSDISTIL_ABORT_AT: aborting at {point} (time {n})");
        std::process::abort();
    }
}

/// Every crash-test point of the commit protocol (`CROSSDISTIL_ABORT_AT=<point>:<n>`), in the
/// order a run reaches them.
pub const ABORT_POINTS: &[&str] = &[
    "overwrite-manifest-removed",
    "config-written",
    "config-renamed",
    "encoders-written",
    "encoders-renamed",
    "metrics-written",
    "metrics-renamed",
    "best-written",
    "best-renamed",
    "last-written",
    "last-renamed",
    "manifest-written",
    "manifest-renamed",
    "committed",
    "old-removed",
    "report-written",
    "report-renamed",
];
