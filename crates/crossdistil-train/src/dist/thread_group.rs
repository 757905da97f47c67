//! Ranks as threads of one process: a [`Comm`] for tests and examples, with the semantics of
//! the MPI one and no MPI library.

use std::sync::{Arc, Barrier, Mutex};

use super::Comm;
use crate::error::{Result, TrainError};

/// What the ranks of a [`ThreadGroup`] share: one mailbox per sender, and a barrier.
struct Shared {
    boxes: Mutex<Vec<Vec<Vec<u8>>>>,
    barrier: Barrier,
}

/// One rank of a group of threads. [`ThreadGroup::new`] makes the group; hand one member to
/// each thread.
pub struct ThreadGroup {
    rank: usize,
    size: usize,
    shared: Arc<Shared>,
}

impl ThreadGroup {
    /// The `size` ranks of a new group, rank `r` at index `r`.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            boxes: Mutex::new(vec![Vec::new(); size]),
            barrier: Barrier::new(size),
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                size,
                shared: shared.clone(),
            })
            .collect()
    }
}

impl Comm for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.all_to_all(&vec![mine.to_vec(); self.size])
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
        let poisoned = |_| TrainError::Distributed("a rank thread panicked".into());
        self.shared.boxes.lock().map_err(poisoned)?[self.rank] = to.to_vec();
        self.shared.barrier.wait();
        let got = {
            let boxes = self.shared.boxes.lock().map_err(poisoned)?;
            boxes.iter().map(|b| b[self.rank].clone()).collect()
        };
        // Nobody writes its next message before everyone has read this one.
        self.shared.barrier.wait();
        Ok(got)
    }

    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}
