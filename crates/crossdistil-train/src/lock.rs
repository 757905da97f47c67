//! One owner per run folder: an advisory lock on `RUN/.lock`, held for the life of a training
//! process.
//!
//! The lock is the operating system's file lock (`File::try_lock`), so it is released when the
//! process ends, however it ends (a `kill -9` included): a stale `.lock` file never blocks a
//! later run. The file records who holds it (pid, host, start time in UTC) so that a refused
//! process can name the holder. The file itself is never deleted, which would let two processes
//! lock two different files of the same name.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Result, TrainError};

/// The lock file of a run folder.
pub const LOCK_FILE: &str = ".lock";

/// The held lock of a run folder; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    /// The lock file, `RUN/.lock`.
    pub path: PathBuf,
}

impl RunLock {
    /// Creates `dir` if needed and takes its lock, or fails at once naming the holder.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir)
            .map_err(|e| TrainError::run(dir, format!("cannot create: {e}")))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| TrainError::run(&path, format!("cannot open the lock file: {e}")))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.split_whitespace().collect::<Vec<_>>().join(" ");
                let holder = if holder.is_empty() {
                    "a process that is just starting".to_string()
                } else {
                    holder
                };
                return Err(TrainError::run(
                    dir,
                    format!(
                        "the run folder is in use by another training process ({holder}); \
                         wait for it to end or train into another --out"
                    ),
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(TrainError::run(&path, format!("cannot lock: {e}")));
            }
        }
        let info = format!(
            "pid={} host={} started={}\n",
            std::process::id(),
            hostname(),
            utc_now()
        );
        let written = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| file.write_all(info.as_bytes()));
        if let Err(e) = written {
            return Err(TrainError::run(
                &path,
                format!("cannot write the lock file: {e}"),
            ));
        }
        Ok(RunLock { _file: file, path })
    }
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The current time as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
