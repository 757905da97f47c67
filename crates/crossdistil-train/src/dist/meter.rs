//! What the ranks' exchanges cost: bytes and seconds, counted around a [`Comm`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::Comm;
use crate::error::Result;

/// A [`Comm`] that counts the bytes this rank sends and receives (its own part of a collective
/// excluded) and the time it spends in collectives, waiting included.
pub struct Metered {
    inner: Arc<dyn Comm>,
    sent: AtomicU64,
    received: AtomicU64,
    nanos: AtomicU64,
}

/// A reading of a [`Metered`] comm's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reading {
    /// Bytes sent to other ranks.
    pub sent: u64,
    /// Bytes received from other ranks.
    pub received: u64,
    /// Seconds spent in collectives.
    pub seconds: f64,
}

impl std::ops::Sub for Reading {
    type Output = Reading;
    fn sub(self, o: Reading) -> Reading {
        Reading {
            sent: self.sent - o.sent,
            received: self.received - o.received,
            seconds: self.seconds - o.seconds,
        }
    }
}

impl Metered {
    /// Counts around `inner`.
    pub fn new(inner: Arc<dyn Comm>) -> Self {
        Metered {
            inner,
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            nanos: AtomicU64::new(0),
        }
    }

    /// The counters now.
    pub fn reading(&self) -> Reading {
        Reading {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
            seconds: self.nanos.load(Ordering::Relaxed) as f64 * 1e-9,
        }
    }

    fn count(&self, sent: usize, f: impl FnOnce() -> Result<Vec<Vec<u8>>>) -> Result<Vec<Vec<u8>>> {
        let start = Instant::now();
        let got = f()?;
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let me = self.inner.rank();
        let received: usize = got
            .iter()
            .enumerate()
            .filter(|&(r, _)| r != me)
            .map(|(_, b)| b.len())
            .sum();
        self.sent.fetch_add(sent as u64, Ordering::Relaxed);
        self.received.fetch_add(received as u64, Ordering::Relaxed);
        Ok(got)
    }
}

impl Comm for Metered {
    fn rank(&self) -> usize {
        self.inner.rank()
    }

    fn size(&self) -> usize {
        self.inner.size()
    }

    fn all_gather(&self, mine: &[u8]) -> Result<Vec<Vec<u8>>> {
        let sent = mine.len() * (self.size() - 1);
        self.count(sent, || self.inner.all_gather(mine))
    }

    fn all_to_all(&self, to: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        let me = self.rank();
        let sent = to
            .iter()
            .enumerate()
            .filter(|&(r, _)| r != me)
            .map(|(_, b)| b.len())
            .sum();
        self.count(sent, || self.inner.all_to_all(to))
    }

    fn barrier(&self) -> Result<()> {
        self.inner.barrier()
    }
}

/// What the training steps of a distributed run cost, in `report.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RankCosts {
    /// The number of ranks.
    pub ranks: usize,
    /// Worker threads per rank.
    pub workers: usize,
    /// `sharded` or `replicated` tables.
    pub tables: String,
    /// Training steps measured (those of the last call, when resumed).
    pub steps: u64,
    /// Bytes a rank sent per step, the mean over the ranks.
    pub bytes_sent_per_step: f64,
    /// Bytes a rank received per step, the mean over the ranks.
    pub bytes_received_per_step: f64,
    /// Seconds per step, the mean over the ranks (forward, backward, exchanges, update).
    pub step_seconds: f64,
    /// The share of a step's time spent in exchanges, waiting for the other ranks included,
    /// the mean over the ranks.
    pub comm_share: f64,
}
