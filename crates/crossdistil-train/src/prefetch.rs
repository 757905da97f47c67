//! Batch assembly overlapped with training: the next batch is gathered on a second thread while
//! the current one trains.

use crossdistil_data::Batch;

use crate::error::Result;

/// Runs `body` on every batch of `batches` in order, assembling up to two batches ahead on a
/// second thread. Stops at the first error (of the source or of `body`) or when `body` returns
/// `false`.
pub fn for_each_prefetched(
    batches: impl Iterator<Item = Result<Batch>> + Send,
    mut body: impl FnMut(Batch) -> Result<bool>,
) -> Result<()> {
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Batch>>(2);
        s.spawn(move || {
            for b in batches {
                let failed = b.is_err();
                if tx.send(b).is_err() || failed {
                    break;
                }
            }
        });
        for batch in rx {
            if !body(batch?)? {
                break;
            }
        }
        Ok(())
    })
}
