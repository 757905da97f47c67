//! One measured child process: its wall time and its own peak resident memory, read from the
//! kernel's accounting when it is reaped (`wait4`'s `ru_maxrss`).

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};

/// Wall time and peak memory of one child.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Seconds from spawn to exit.
    pub seconds: f64,
    /// The child's peak resident set, bytes (`ru_maxrss`, which Linux gives in KiB).
    pub peak_rss_bytes: u64,
}

/// Waits for `pid` with `wait4`, retrying on `EINTR`: its exit status and resource usage.
fn wait4(pid: libc::pid_t) -> std::io::Result<(ExitStatus, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero `rusage` is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid, exclusively borrowed out-pointers for the
        // duration of the call; `pid` is our own unreaped child.
        let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if got == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The last `n` lines of the file at `path` (empty when unreadable).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Runs `cmd` with its stdout and stderr written to `log`, and measures it. A child that
/// fails is an error naming `what`, with the end of its log.
pub fn run_measured(mut cmd: Command, log: &Path, what: &str) -> anyhow::Result<Measured> {
    let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let started = Instant::now();
    let child = cmd
        .spawn()
        .with_context(|| format!("{what}: cannot start {:?}", cmd.get_program()))?;
    // The child is reaped here rather than through `Child::wait`, which has no rusage.
    let pid = libc::pid_t::try_from(child.id()).context("a pid out of range")?;
    let (status, usage) = wait4(pid).with_context(|| format!("{what}: wait4"))?;
    let seconds = started.elapsed().as_secs_f64();
    drop(child);
    if !status.success() {
        bail!(
            "{what} failed ({status}); the end of {}:\n{}",
            log.display(),
            tail(log, 20)
        );
    }
    Ok(Measured {
        seconds,
        peak_rss_bytes: u64::try_from(usage.ru_maxrss).unwrap_or(0) * 1024,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child that touches about 64 MiB peaks above that; a failing one is reported.
    #[test]
    fn the_peak_of_a_child_is_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let mut c = Command::new("python3");
        c.args(["-c", "b = bytearray(64 << 20); print(len(b))"]);
        if let Ok(m) = run_measured(c, &log, "python") {
            assert!(m.peak_rss_bytes > 64 << 20, "{m:?}");
            assert!(m.seconds > 0.0);
        }
        let mut c = Command::new("sh");
        c.args(["-c", "echo broken >&2; exit 3"]);
        let e = run_measured(c, &log, "the failing child").unwrap_err();
        assert!(e.to_string().contains("the failing child failed"), "{e}");
        assert!(e.to_string().contains("broken"), "{e}");
    }
}
