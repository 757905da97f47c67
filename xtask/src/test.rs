//! `cargo xtask test`: the project's tests, as CI runs them: the workspace's tests in the release
//! profile, then the MPI tests (the `mpi` feature, through `mpirun`) where an MPI library is
//! installed.

use std::process::Command;

use anyhow::{Context, bail};

/// What to install for the MPI tests on Debian or Ubuntu.
const INSTALL: &str = "apt-get install libopenmpi-dev openmpi-bin libclang-dev";

/// Whether the MPI tests can build and run here: `mpirun` starts and an MPI compiler wrapper
/// (which the bindings' build script asks for the library's flags) is on PATH.
fn have_mpi() -> bool {
    let runs = |exe: &str, arg: &str| {
        Command::new(exe)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    runs("mpirun", "--version") && (runs("mpicc", "--showme:version") || runs("mpicc", "-show"))
}

fn cargo(args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("+ cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(args)
        .status()
        .with_context(|| format!("cannot start {cargo}"))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Runs the tests; `mpi`: `Some(true)` requires the MPI tests, `Some(false)` leaves them out,
/// `None` runs them where MPI is installed.
pub fn run(mpi: Option<bool>) -> anyhow::Result<()> {
    cargo(&["test", "--workspace", "--release"])?;
    if mpi == Some(false) {
        eprintln!("the MPI tests left out (--no-mpi)");
        return Ok(());
    }
    if !have_mpi() {
        if mpi == Some(true) {
            bail!("the MPI tests need an MPI library, mpirun and libclang: {INSTALL}");
        }
        eprintln!("SKIPPED: the MPI tests (no MPI library here; {INSTALL} to run them)");
        return Ok(());
    }
    // The workspace's feature resolution, as in the run above (only the `mpi` feature added):
    // `-p crossdistil-cli` alone would resolve the shared crates' features differently and
    // rebuild them, tract's included. This also runs xtask's `tests/mpi.rs` a second time.
    cargo(&[
        "test",
        "--workspace",
        "--release",
        "--features",
        "crossdistil-cli/mpi",
        "--test",
        "mpi",
    ])
}
