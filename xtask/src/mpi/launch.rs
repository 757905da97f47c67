//! The launcher side of the MPI benchmark: finding `mpirun`, building `crossdistil` with MPI,
//! and the `mpirun` command of one job.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// What to install where MPI is missing.
const INSTALL_HINT: &str = "install Open MPI and libclang: \
    `apt-get install libopenmpi-dev openmpi-bin libclang-dev`";

/// The options of every `mpirun`: more ranks than cores allowed, idle ranks yielding their
/// core, and TCP (over loopback here: the path between machines) instead of shared memory.
pub const MPIRUN_OPTIONS: [&str; 7] = [
    "--oversubscribe",
    "--mca",
    "mpi_yield_when_idle",
    "1",
    "--mca",
    "btl",
    "self,tcp",
];

/// `name` on `PATH`, if there.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The `mpirun` on `PATH`, or an error saying what to install.
pub fn mpirun() -> anyhow::Result<PathBuf> {
    match on_path("mpirun") {
        Some(p) => Ok(p),
        None => bail!("mpirun not found on PATH; {INSTALL_HINT}"),
    }
}

/// Builds `crossdistil` with `--features mpi` (release, into cargo's target folder,
/// `CARGO_TARGET_DIR` included) and copies it to `dest`, so that a later build without MPI
/// does not replace the binary measured. A failed build is an error saying what to install.
pub fn build_mpi_cli(dest: &Path) -> anyhow::Result<PathBuf> {
    let built = crate::cli_exe_with(&["mpi"]).with_context(|| {
        format!(
            "cannot build crossdistil with MPI (`cargo build --release -p crossdistil-cli \
             --features mpi`, which needs an MPI library and libclang); {INSTALL_HINT}"
        )
    })?;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Copied next to `dest` then renamed, so that a running copy is never overwritten.
    let tmp = dest.with_extension("tmp");
    std::fs::copy(&built, &tmp)
        .with_context(|| format!("cannot copy {} to {}", built.display(), tmp.display()))?;
    std::fs::rename(&tmp, dest)?;
    Ok(dest.to_path_buf())
}

/// Whether this process runs as root, which `mpirun` refuses unless told.
fn is_root() -> bool {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `mpirun -np ranks [MPIRUN_OPTIONS] cli train --data data --config config --out run`, one
/// matrix thread per rank; as root with the variables that let `mpirun` run so.
pub fn train_job(
    mpirun: &Path,
    ranks: usize,
    cli: &Path,
    data: &Path,
    config: &Path,
    run: &Path,
) -> Command {
    let mut c = Command::new(mpirun);
    c.args(["-np", &ranks.to_string()])
        .args(MPIRUN_OPTIONS)
        .arg(cli)
        .args(["train", "--threads", "1", "--data"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .arg("--out")
        .arg(run);
    if is_root() {
        c.env("OMPI_ALLOW_RUN_AS_ROOT", "1")
            .env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_job_command_line() {
        let c = train_job(
            Path::new("/usr/bin/mpirun"),
            2,
            Path::new("bin/crossdistil"),
            Path::new("d"),
            Path::new("c.toml"),
            Path::new("r"),
        );
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "-np 2 --oversubscribe --mca mpi_yield_when_idle 1 --mca btl self,tcp \
             bin/crossdistil train --threads 1 --data d --config c.toml --out r"
        );
        assert!(on_path("sh").is_some());
        assert!(on_path("no-such-program-here").is_none());
    }
}
