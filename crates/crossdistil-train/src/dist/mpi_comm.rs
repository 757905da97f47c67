//! The ranks of an MPI job (`mpirun -np N ...`) as a [`Comm`].

use std::sync::Mutex;

use mpi::Count;
use mpi::datatype::{Partition, PartitionMut};
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::*;

use super::Comm;
use crate::error::{Result, TrainError};

/// Whether this process was started by `mpirun` (Open MPI, MPICH or a PMI launcher such as
/// Slurm's `srun`), so that it should join the job.
pub fn launched_by_mpirun() -> bool {
    [
        "OMPI_COMM_WORLD_SIZE",
        "PMI_SIZE",
        "PMIX_RANK",
        "MPI_LOCALNRANKS",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some())
}

/// The world communicator and the MPI environment, finalised when dropped.
struct World {
    world: SimpleCommunicator,
    // Dropped after `world`: `MPI_Finalize` runs last.
    _universe: Universe,
}

// SAFETY: MPI is initialised with `MPI_THREAD_SERIALIZED` or above (checked in `init`), which
// allows calls from any thread as long as no two run at once; every call goes through the
// `Mutex` of `MpiComm`, which serialises them.
unsafe impl Send for World {}

/// The processes of an MPI job as the ranks of a [`Comm`]. Dropping it finalises MPI.
pub struct MpiComm {
    inner: Mutex<World>,
    rank: usize,
    size: usize,
}

fn count(n: usize, what: &str) -> Result<Count> {
    Count::try_from(n).map_err(|_| {
        TrainError::Distributed(format!(
            "a message of {n} bytes ({what}) exceeds MPI's 2^31 - 1; use smaller batches or tables"
        ))
    })
}

/// A buffer of `n` bytes whose address is a real allocation: Open MPI's `MPI_IN_PLACE` is the
/// address 1, which is where an empty `Vec<u8>` points, so an empty message from a plain
/// empty buffer would be taken for "in place".
fn buffer(n: usize) -> Vec<u8> {
    vec![0u8; n.max(1)]
}

fn displacements(counts: &[Count]) -> Vec<Count> {
    counts
        .iter()
        .scan(0, |acc, &c| {
            let d = *acc;
            *acc += c;
            Some(d)
        })
        .collect()
}

impl MpiComm {
    /// Initialises MPI (once per process: a second call is refused).
    pub fn init() -> Result<MpiComm> {
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)
            .ok_or_else(|| {
                TrainError::Distributed("MPI is already initialised in this process".into())
            })?;
        if threading < mpi::Threading::Serialized {
            return Err(TrainError::Distributed(format!(
                "the MPI library offers thread level {threading:?}; crossdistil needs Serialized"
            )));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        Ok(MpiComm {
            inner: Mutex::new(World {
                world,
                _universe: universe,
            }),
            rank,
            size,
        })
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ends every rank of the job with exit status `code` (`MPI_Abort`): what a rank does when
    /// it cannot go on, so that the others do not wait for it for ever.
    pub fn abort(&self, code: i32) -> ! {
        self.world().world.abort(code)
    }
}

impl Comm for MpiComm {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let w = self.world();
        let mut counts = vec![0 as Count; self.size];
        w.world
            .all_gather_into(&count(mine.len(), "all-gather")?, &mut counts[..]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        count(total, "all-gather")?;
        let displs = displacements(&counts);
        let mut send = buffer(mine.len());
        send[..mine.len()].copy_from_slice(mine);
        let mut recv = buffer(total);
        {
            let mut part = PartitionMut::new(&mut recv[..], &counts[..], &displs[..]);
            w.world
                .all_gather_varcount_into(&send[..mine.len()], &mut part);
        }
        Ok(counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| recv[d as usize..(d + c) as usize].to_vec())
            .collect())
    }

    fn all_to_all(&self, to: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        if to.len() != self.size {
            return Err(TrainError::Distributed(format!(
                "rank {}: all-to-all with {} parts for {} ranks",
                self.rank,
                to.len(),
                self.size
            )));
        }
        let w = self.world();
        let send_counts = to
            .iter()
            .map(|p| count(p.len(), "all-to-all"))
            .collect::<Result<Vec<_>>>()?;
        let send_displs = displacements(&send_counts);
        let len: usize = to.iter().map(Vec::len).sum();
        count(len, "all-to-all")?;
        let mut send = buffer(len);
        let mut at = 0;
        for p in to {
            send[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        let mut recv_counts = vec![0 as Count; self.size];
        w.world
            .all_to_all_into(&send_counts[..], &mut recv_counts[..]);
        let total: usize = recv_counts.iter().map(|&c| c as usize).sum();
        count(total, "all-to-all")?;
        let recv_displs = displacements(&recv_counts);
        let mut recv = buffer(total);
        {
            let part = Partition::new(&send[..], &send_counts[..], &send_displs[..]);
            let mut got = PartitionMut::new(&mut recv[..], &recv_counts[..], &recv_displs[..]);
            w.world.all_to_all_varcount_into(&part, &mut got);
        }
        Ok(recv_counts
            .iter()
            .zip(&recv_displs)
            .map(|(&c, &d)| recv[d as usize..(d + c) as usize].to_vec())
            .collect())
    }

    fn barrier(&self) -> Result<()> {
        self.world().world.barrier();
        Ok(())
    }
}
