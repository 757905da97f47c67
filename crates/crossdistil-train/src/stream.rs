//! Training on a data set read a row group at a time (`[train] stream = true`): memory is set
//! by the shuffle buffer, not by the number of rows.
//!
//! Reading: `readers` threads decode and encode row groups ([`Unit`]s) ahead of the consumer,
//! each into a channel of one chunk, taken in turn so that the chunks arrive in the order
//! asked for ([`read_ahead`]). At most `2 * readers` chunks are in flight.
//!
//! Shuffling ([`StreamedRows`]): epoch `e` reads the units in a seeded order
//! (`stream_seed(seed, e, 3)`), or in file order when the buffer holds the whole split. It keeps
//! the rows of its split, fills the buffer with whole units until it holds `shuffle_buffer`
//! rows, shuffles them (fill 0 with `stream_seed(seed, e, 1)`, the in-memory path's stream) and
//! cuts full batches; the rows short of a full batch go to the front of the next fill, so only
//! the epoch's last batch may be smaller. A buffer at least as large as the split therefore
//! gives exactly the batches of [`ShuffledRows`](crate::ShuffledRows) on the loaded data set.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

use crossdistil_data::{Batch, Chunk, DataSource, Dataset, Encoders, GatherBatch, Split, shuffled};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::Result;
use crate::trainer::{BatchSource, BoxedBatches, stream_seed};

/// The chunks of `units` of `source`, encoded with `encoders` on `readers` threads, in the
/// order of `units`. Dropping the iterator stops the threads after the unit each is on.
pub fn read_ahead(
    source: Arc<DataSource>,
    encoders: Arc<Encoders>,
    units: Vec<usize>,
    readers: usize,
) -> impl Iterator<Item = Result<Chunk>> + Send {
    let readers = readers.clamp(1, units.len().max(1));
    let units = Arc::new(units);
    let receivers: Vec<Receiver<Result<Chunk>>> = (0..readers)
        .map(|k| {
            let (tx, rx) = sync_channel(1);
            let (source, encoders, units) = (source.clone(), encoders.clone(), units.clone());
            std::thread::Builder::new()
                .name(format!("reader-{k}"))
                .spawn(move || {
                    for &u in units.iter().skip(k).step_by(readers) {
                        let chunk = source.chunk(u, &encoders).map_err(Into::into);
                        let failed = chunk.is_err();
                        if tx.send(chunk).is_err() || failed {
                            break;
                        }
                    }
                })
                .expect("the OS starts a reader thread");
            rx
        })
        .collect();
    let n = units.len();
    (0..n).map_while(move |i| receivers[i % readers].recv().ok())
}

/// The rows of `split` in a chunk, as a data set of their own.
fn rows_of(chunk: &Dataset, split: Split) -> Dataset {
    let rows: Vec<u32> = (0..chunk.rows() as u32)
        .filter(|&r| chunk.splits[r as usize] == split)
        .collect();
    if rows.len() == chunk.rows() {
        chunk.clone()
    } else {
        chunk.select(&rows)
    }
}

/// Mini-batches of one split of a streamed data set, shuffled per epoch through a buffer of
/// `shuffle_buffer` rows (see the module documentation).
pub struct StreamedRows {
    source: Arc<DataSource>,
    encoders: Arc<Encoders>,
    split: Split,
    batch_size: usize,
    seed: u64,
    buffer_rows: usize,
    readers: usize,
    /// The rows of `split` in each unit.
    unit_rows: Vec<usize>,
    /// This rank and the number of ranks: the rank reads every `ranks`-th unit of each epoch's
    /// order, from the `rank`-th.
    share: (usize, usize),
}

impl StreamedRows {
    /// Batches of `batch_size` rows of `split`; counts the split's rows per unit first (a pass
    /// over the split column alone).
    pub fn new(
        source: Arc<DataSource>,
        encoders: Arc<Encoders>,
        split: Split,
        batch_size: usize,
        seed: u64,
        buffer_rows: usize,
        readers: usize,
    ) -> Result<Self> {
        let unit_rows = source
            .split_counts()?
            .iter()
            .map(|c| c[split as usize])
            .collect();
        Ok(StreamedRows {
            source,
            encoders,
            split,
            batch_size: batch_size.max(1),
            seed,
            buffer_rows: buffer_rows.max(1),
            readers,
            unit_rows,
            share: (0, 1),
        })
    }

    /// The share of rank `rank` of `ranks` in a distributed run: every `ranks`-th unit of each
    /// epoch's (seeded, common) order, from the `rank`-th, so the ranks read disjoint units that
    /// cover the split; `batch_size` is then the rank's part of the global batch.
    pub fn with_rank_share(mut self, rank: usize, ranks: usize) -> Self {
        self.share = (rank, ranks.max(1));
        self
    }

    /// The rows of the split.
    pub fn rows(&self) -> usize {
        self.unit_rows.iter().sum()
    }

    /// The units of epoch `epoch` that hold rows of the split, in reading order.
    fn units(&self, epoch: usize) -> Vec<usize> {
        let mut units: Vec<usize> = (0..self.unit_rows.len())
            .filter(|&u| self.unit_rows[u] > 0)
            .collect();
        if self.rows() > self.buffer_rows {
            units.shuffle(&mut ChaCha8Rng::seed_from_u64(stream_seed(
                self.seed, epoch, 3,
            )));
        }
        let (rank, ranks) = self.share;
        if ranks > 1 {
            units = units.into_iter().skip(rank).step_by(ranks).collect();
        }
        units
    }
}

impl BatchSource for StreamedRows {
    fn epoch(&self, epoch: usize) -> Result<BoxedBatches<'_>> {
        let chunks = read_ahead(
            self.source.clone(),
            self.encoders.clone(),
            self.units(epoch),
            self.readers,
        );
        Ok(Box::new(Buffer {
            chunks: Box::new(chunks),
            split: self.split,
            batch_size: self.batch_size,
            buffer_rows: self.buffer_rows,
            // Rank 0 shuffles as one process does; the other ranks with their own streams.
            seed: stream_seed(self.seed, epoch, 1)
                ^ (self.share.0 as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93),
            fills: 0,
            carry: None,
            current: None,
            done: false,
        }))
    }

    fn batches_per_epoch(&self) -> Option<usize> {
        // With ranks, an estimate: the rank's shares differ from epoch to epoch.
        Some((self.rows() / self.share.1).div_ceil(self.batch_size))
    }
}

/// The shuffle buffer of one epoch.
struct Buffer {
    chunks: Box<dyn Iterator<Item = Result<Chunk>> + Send>,
    split: Split,
    batch_size: usize,
    buffer_rows: usize,
    seed: u64,
    fills: u64,
    /// Rows of the last fill that did not make a full batch.
    carry: Option<Dataset>,
    /// The filled buffer, its shuffled order and the next position in it.
    current: Option<(Dataset, Vec<u32>, usize)>,
    /// Whether the chunks are exhausted.
    done: bool,
}

impl Buffer {
    /// Fills the buffer from the carried rows and the next chunks; `false` when nothing is left.
    fn fill(&mut self) -> Result<bool> {
        let mut parts: Vec<Dataset> = self.carry.take().into_iter().collect();
        let mut rows: usize = parts.iter().map(Dataset::rows).sum();
        while rows < self.buffer_rows && !self.done {
            match self.chunks.next() {
                Some(chunk) => {
                    let part = rows_of(&chunk?.data, self.split);
                    rows += part.rows();
                    parts.push(part);
                }
                None => self.done = true,
            }
        }
        if rows == 0 {
            return Ok(false);
        }
        let data = Dataset::concat(&parts);
        drop(parts);
        // Fill 0 shuffles with the in-memory path's stream, so that a buffer holding the whole
        // split gives its batches.
        let seed = self.seed ^ self.fills.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.fills += 1;
        let all: Vec<u32> = (0..rows as u32).collect();
        let order = shuffled(&all, seed);
        self.current = Some((data, order, 0));
        Ok(true)
    }
}

impl Iterator for Buffer {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        loop {
            if let Some((data, order, pos)) = &mut self.current {
                let left = order.len() - *pos;
                if left >= self.batch_size || (left > 0 && self.done) {
                    let end = *pos + left.min(self.batch_size);
                    let batch = Batch::gather(data, &order[*pos..end]);
                    *pos = end;
                    return Some(Ok(batch));
                }
                if left > 0 {
                    self.carry = Some(data.select(&order[*pos..]));
                }
                self.current = None;
            }
            match self.fill() {
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => {
                    self.done = true;
                    self.carry = None;
                    return Some(Err(e));
                }
            }
        }
    }
}
