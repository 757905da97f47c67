//! Batch assembly overlapped with training: the next batch is gathered on a second thread while
//! the current one trains.

use crossdistil_data::{Batch, Batches};

use crate::error::Result;

/// Runs `body` on every batch of `batches` in order, assembling up to two batches ahead on a
/// second thread. Stops at the first error or when `body` returns `false`.
pub fn for_each_prefetched(
    batches: Batches<'_>,
    mut body: impl FnMut(Batch) -> Result<bool>,
) -> Result<()> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Batch>(2);
        s.spawn(move || {
            for b in batches {
                if tx.send(b).is_err() {
                    break;
                }
            }
        });
        for batch in rx {
            if !body(batch)? {
                break;
            }
        }
        Ok(())
    })
}
