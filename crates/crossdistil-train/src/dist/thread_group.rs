//! Ranks as threads of one process: a [`Comm`] for tests, examples and library users, with the
//! semantics of the MPI one and no MPI library. A member that is dropped (its thread returned,
//! failed or panicked) ends the group: the others' collectives return an error naming it
//! instead of waiting for ever, as `MPI_Abort` ends an MPI job.

use std::sync::{Arc, Condvar, Mutex};

use super::Comm;
use crate::error::{Result, TrainError};

/// The group's state: one mailbox per sender, the barrier's count and generation, and the first
/// member that left.
struct State {
    boxes: Vec<Vec<Vec<u8>>>,
    arrived: usize,
    generation: u64,
    gone: Option<usize>,
}

struct Shared {
    state: Mutex<State>,
    turn: Condvar,
    size: usize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until every member has arrived; an error once a member has left.
    fn wait(&self, rank: usize) -> Result<()> {
        let mut s = self.lock();
        let left = |gone: usize| {
            TrainError::Distributed(format!(
                "rank {rank}: rank {gone} of {} left the group",
                self.size
            ))
        };
        if let Some(g) = s.gone {
            return Err(left(g));
        }
        let generation = s.generation;
        s.arrived += 1;
        if s.arrived == self.size {
            s.arrived = 0;
            s.generation += 1;
            self.turn.notify_all();
            return Ok(());
        }
        while s.generation == generation {
            if let Some(g) = s.gone {
                return Err(left(g));
            }
            s = self.turn.wait(s).unwrap_or_else(|p| p.into_inner());
        }
        Ok(())
    }
}

/// One rank of a group of threads. [`ThreadGroup::new`] makes the group; hand one member to
/// each thread.
pub struct ThreadGroup {
    rank: usize,
    shared: Arc<Shared>,
}

impl ThreadGroup {
    /// The `size` ranks of a new group, rank `r` at index `r`.
    pub fn new(size: usize) -> Vec<ThreadGroup> {
        let size = size.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                boxes: vec![Vec::new(); size],
                arrived: 0,
                generation: 0,
                gone: None,
            }),
            turn: Condvar::new(),
            size,
        });
        (0..size)
            .map(|rank| ThreadGroup {
                rank,
                shared: shared.clone(),
            })
            .collect()
    }
}

impl Drop for ThreadGroup {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.gone.get_or_insert(self.rank);
        self.shared.turn.notify_all();
    }
}

impl Comm for ThreadGroup {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        self.all_to_all(&vec![mine.to_vec(); self.size()])
    }

    fn all_to_all(&self, to: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        if to.len() != self.size() {
            return Err(TrainError::Distributed(format!(
                "rank {}: all-to-all with {} parts for {} ranks",
                self.rank,
                to.len(),
                self.size()
            )));
        }
        self.shared.lock().boxes[self.rank] = to.to_vec();
        self.shared.wait(self.rank)?;
        let got = {
            let s = self.shared.lock();
            s.boxes.iter().map(|b| b[self.rank].clone()).collect()
        };
        // Nobody writes its next message before everyone has read this one.
        self.shared.wait(self.rank)?;
        Ok(got)
    }

    fn barrier(&self) -> Result<()> {
        self.shared.wait(self.rank)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_that_leaves_ends_the_others_collectives() {
        let mut group = ThreadGroup::new(3);
        let last = group.pop().unwrap();
        let results: Vec<String> = std::thread::scope(|s| {
            let handles: Vec<_> = group
                .iter()
                .map(|c| s.spawn(move || c.all_gather(&[1]).unwrap_err().to_string()))
                .collect();
            drop(last);
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for r in results {
            assert!(r.contains("rank 2 of 3 left the group"), "{r}");
        }
    }
}
